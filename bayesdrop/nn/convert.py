"""``bd.bayesianize``: turn an existing ``torch.nn`` model into a Bayesian one.

For users with a PyTorch model: its ``Linear``, ``Conv1d`` and ``Conv2d`` layers become :mod:`bayesdrop.nn` layers
with one method, its dropout modules become identities (the method supplies the noise), and every other module
kind with parameters is left deterministic with a warning that names it.

Example
-------
>>> net = bd.bayesianize(torchvision_like_cnn, method="sparse-vd")
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, cast

import torch
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_

from ..methods import Method, resolve
from .base import BayesianLayer, bayesian_layers
from .conv import Conv1d, Conv2d
from .linear import Linear

__all__ = ["bayesianize"]

_DROPOUT = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.AlphaDropout)
# Kinds whose parameters are point estimates by design (normalisation layers): left as they are, without a warning.
_DETERMINISTIC = (
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
)


def _conv(mod: torch.nn.Conv1d | torch.nn.Conv2d, m: Method) -> BayesianLayer:
    if mod.groups != 1 or mod.padding_mode != "zeros" or isinstance(mod.padding, str):
        raise ValueError(
            f"bayesianize supports {type(mod).__name__} with groups=1 and zero padding given as ints, got "
            f"groups={mod.groups}, padding={mod.padding!r}, padding_mode={mod.padding_mode!r}"
        )
    # `Callable`: the module's tuples have the length its class's signature asks for, which their type cannot say
    cls: Callable[..., BayesianLayer] = Conv1d if type(mod) is torch.nn.Conv1d else Conv2d
    bias = mod.bias is not None
    return cls(mod.in_channels, mod.out_channels, mod.kernel_size, m, mod.stride, mod.padding, mod.dilation, bias)


def bayesianize(module: torch.nn.Module, method: str | Method = "bernoulli", **hyper: Any) -> PyroModule:
    """Turn a ``torch.nn`` model into a Bayesian one, in place.

    Every ``torch.nn.Linear``, ``torch.nn.Conv1d`` and ``torch.nn.Conv2d`` (exactly these classes) becomes the
    :mod:`bayesdrop.nn` layer with ``method``, whose guide starts from the module's current weights, so a
    pre-trained network can be refined.  Dropout modules become identities: the method supplies the noise.
    Normalisation layers keep their parameters as point estimates.  Any other module with parameters of its own (an
    ``LSTM``, an ``Embedding``, a subclass of ``Linear`` whose ``forward`` may differ, a ``MultiheadAttention``
    that reads its projections' weights directly) stays deterministic, with a ``UserWarning`` naming it.  The
    module is converted to a :class:`~pyro.nn.PyroModule` so that site and parameter names follow the module tree.

    Returns
    -------
    PyroModule
        The converted module: ``module`` itself, or, when ``module`` is a single layer, its Bayesian replacement.

    Raises
    ------
    TypeError
        If ``module`` is not a ``torch.nn.Module``.
    ValueError
        If no layer can be converted.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module, got {type(module).__name__}")
    m = resolve(method, **hyper)
    skipped: dict[str, list[str]] = {}

    def convert(mod: torch.nn.Module, path: str) -> torch.nn.Module:
        if isinstance(mod, BayesianLayer):
            return mod
        if type(mod) is torch.nn.Linear:
            new: BayesianLayer = Linear(mod.in_features, mod.out_features, m, bias=mod.bias is not None)
        elif type(mod) is torch.nn.Conv1d or type(mod) is torch.nn.Conv2d:
            new = _conv(mod, m)
        elif isinstance(mod, _DROPOUT):
            return torch.nn.Identity()
        else:
            if not isinstance(mod, _DETERMINISTIC) and any(True for _ in mod.parameters(recurse=False)):
                skipped.setdefault(type(mod).__name__, []).append(path or "<root>")
            else:
                for name, child in list(mod.named_children()):
                    setattr(mod, name, convert(child, f"{path}.{name}" if path else name))
            return mod
        with torch.no_grad():
            new.init_value("weight").copy_(mod.weight)
            if mod.bias is not None:
                assert new.bias is not None  # built with `bias=mod.bias is not None`
                new.bias.copy_(mod.bias)
        return new

    out = convert(module, "")
    for kind, paths in skipped.items():
        warnings.warn(
            f"bayesianize: {kind} is not supported by {m.name or type(m).__name__!s} and stays deterministic "
            f"(its parameters are point estimates): {', '.join(paths)}",
            UserWarning,
            stacklevel=2,
        )
    if not bayesian_layers(out):
        raise ValueError("`module` has no torch.nn.Linear, Conv1d or Conv2d layer to make Bayesian")
    to_pyro_module_(out)  # recursive: names of nested plain submodules follow the tree too
    return cast(PyroModule, out)  # to_pyro_module_ changed its class in place
