"""``bd.bayesianize``: turn an existing ``torch.nn`` model into a Bayesian one.

For users with a PyTorch model: its ``Linear``, ``Conv1d``, ``Conv2d``, ``Embedding``, ``LSTM`` and ``GRU`` layers
become :mod:`bayesdrop.nn` layers with one method (the recurrent ones with ``recurrent_method``), its dropout modules become identities (the method supplies the noise; a ``Dropout1d``/``Dropout2d``
asks the next convolution for one draw per feature map), its pooling layers take a pool method if one is given, and
every other module kind with parameters is left deterministic with a warning that names it.

Example
-------
>>> net = bd.bayesianize(torchvision_like_cnn, method="sparse-vd")
>>> net = bd.bayesianize(torch_cnn, "bernoulli", pool_method="maxpool-dropout")
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
from .embedding import Embedding
from .linear import Linear
from .pooling import AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .recurrent import GRU, LSTM

__all__ = ["bayesianize"]

_DROPOUT = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.AlphaDropout)
# Dropout of whole feature maps (Tompson et al. 2015): the next convolution draws its noise per input feature map.
_CHANNEL_DROPOUT = (torch.nn.Dropout1d, torch.nn.Dropout2d)
_POOLS: dict[type[torch.nn.Module], tuple[Callable[..., BayesianLayer], str]] = {
    torch.nn.MaxPool1d: (MaxPool1d, "max"),
    torch.nn.MaxPool2d: (MaxPool2d, "max"),
    torch.nn.AvgPool1d: (AvgPool1d, "avg"),
    torch.nn.AvgPool2d: (AvgPool2d, "avg"),
}
# Kinds whose parameters are point estimates by design (normalisation layers): left as they are, without a warning.
_DETERMINISTIC = (
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
)


def _conv(mod: torch.nn.Conv1d | torch.nn.Conv2d, m: Method, noise: str) -> BayesianLayer:
    if mod.groups != 1 or mod.padding_mode != "zeros" or isinstance(mod.padding, str):
        raise ValueError(
            f"bayesianize supports {type(mod).__name__} with groups=1 and zero padding given as ints, got "
            f"groups={mod.groups}, padding={mod.padding!r}, padding_mode={mod.padding_mode!r}"
        )
    # `Callable`: the module's tuples have the length its class's signature asks for, which their type cannot say
    cls: Callable[..., BayesianLayer] = Conv1d if type(mod) is torch.nn.Conv1d else Conv2d
    bias = mod.bias is not None
    args = (mod.in_channels, mod.out_channels, mod.kernel_size, m, mod.stride, mod.padding, mod.dilation, bias)
    return cls(*args, noise=noise)


def _pool(mod: torch.nn.Module, m: Method, path: str) -> BayesianLayer:
    cls, _ = _POOLS[type(mod)]
    padding, ceil = getattr(mod, "padding", 0), getattr(mod, "ceil_mode", False)
    dilation, indices = getattr(mod, "dilation", 1), getattr(mod, "return_indices", False)
    if padding not in (0, (0,), (0, 0)) or ceil or dilation not in (1, (1,), (1, 1)) or indices:
        raise ValueError(
            f"bayesianize: the pooling layer {path or '<root>'!r} ({type(mod).__name__}) has padding={padding!r}, "
            f"dilation={dilation!r}, ceil_mode={ceil!r}, return_indices={indices!r}; bd.nn pooling layers take "
            "none of these (padding 0, dilation 1, ceil_mode and return_indices False)"
        )
    stride = getattr(mod, "stride", None)
    return cls(getattr(mod, "kernel_size"), stride if stride else None, method=m)  # noqa: B009 -- every pool has it


def _takes_channel_noise(m: Method) -> bool:
    """Whether ``m`` can draw one noise per feature map (``noise="channel"``): methods of per-element noise refuse."""
    try:
        Conv1d(1, 1, 1, m, noise="channel")
    except ValueError:
        return False
    return True


def _recurrent(mod: torch.nn.LSTM | torch.nn.GRU, m: Method, path: str) -> BayesianLayer:
    if getattr(mod, "proj_size", 0):
        raise ValueError(
            f"bayesianize: the LSTM {path or '<root>'!r} has proj_size={mod.proj_size}, which bd.nn.LSTM lacks"
        )
    cls: Callable[..., BayesianLayer] = LSTM if type(mod) is torch.nn.LSTM else GRU
    new = cls(mod.input_size, mod.hidden_size, mod.num_layers, m, mod.bias, mod.batch_first, mod.bidirectional)
    with torch.no_grad():
        for name, p in mod.named_parameters():
            (new.init_value(name) if name.startswith("weight") else getattr(new, name)).copy_(p)
    return new


def _embedding(mod: torch.nn.Embedding, m: Method, path: str) -> BayesianLayer:
    if mod.padding_idx is not None or mod.max_norm is not None or mod.sparse:
        raise ValueError(
            f"bayesianize: the Embedding {path or '<root>'!r} has padding_idx={mod.padding_idx!r}, "
            f"max_norm={mod.max_norm!r}, sparse={mod.sparse!r}; bd.nn.Embedding takes none of these"
        )
    new = Embedding(mod.num_embeddings, mod.embedding_dim, m)
    with torch.no_grad():
        new.init_value("weight").copy_(mod.weight)
    return new


def bayesianize(
    module: torch.nn.Module,
    method: str | Method = "bernoulli",
    *,
    pool_method: str | Method | None = None,
    recurrent_method: str | Method | None = None,
    **hyper: Any,
) -> PyroModule:
    """Turn a ``torch.nn`` model into a Bayesian one, in place.

    Every ``torch.nn.Linear``, ``Conv1d``, ``Conv2d`` and ``Embedding`` (exactly these classes; an embedding's
    noise drops whole word types) becomes the :mod:`bayesdrop.nn` layer with ``method``, whose guide starts from the module's current weights, so a
    pre-trained network can be refined.  Dropout modules become identities: the method supplies the noise; a
    ``Dropout1d`` or ``Dropout2d`` (whole feature maps, Tompson et al. 2015) makes the next convolution of its
    container draw the noise once per input feature map (``noise="channel"``, spatial dropout), where the method
    can.  With ``pool_method`` every ``MaxPool1d/2d`` and ``AvgPool1d/2d`` whose pooling it randomises becomes the
    :mod:`bayesdrop.nn` pooling layer with it (others stay plain, with a warning).
    Normalisation layers keep their parameters as point estimates.  ``LSTM`` and ``GRU`` become ``bd.nn.LSTM`` /
    ``GRU`` with ``recurrent_method``.  Any other module with parameters of its own (a subclass of ``Linear`` whose
    ``forward`` may differ, a ``MultiheadAttention`` that reads its projections' weights directly) stays
    deterministic, with a ``UserWarning`` naming it.  The
    module is converted to a :class:`~pyro.nn.PyroModule` so that site and parameter names follow the module tree.

    Parameters
    ----------
    module : torch.nn.Module
    method : str or Method
        The method of every weight layer (``bd.methods.names(role="layer")``); ``**hyper`` its hyper-parameters.
    pool_method : str or Method, optional
        A method for the pooling layers (``bd.methods.names(role="pool")``).
    recurrent_method : str or Method, optional
        The method of the ``LSTM`` and ``GRU`` layers (a recurrent method, ``bd.methods.names(role="recurrent")``,
        or a layer method); default ``method``.  Their own ``dropout`` argument is dropped (the method supplies the
        noise).

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
    if m.capabilities.role != "layer":
        what, where = {
            "input": ("a network's inputs", "put it on the first layer by hand"),
            "pool": ("pooling layers", "pass it as pool_method="),
            "recurrent": ("recurrent layers", "pass it as recurrent_method="),
        }[m.capabilities.role]
        raise ValueError(f"`method` {m.name!r} is a method for {what}; {where}")
    pm = None if pool_method is None else resolve(pool_method)
    if pm is not None and pm.capabilities.role != "pool":
        raise ValueError(f"`pool_method` must be a method for pooling layers, got {pm.name!r}")
    rm = m if recurrent_method is None else resolve(recurrent_method)
    if rm.capabilities.role not in ("layer", "recurrent"):
        raise ValueError(f"`recurrent_method` must be a recurrent or layer method, got {rm.name!r}")
    channel = "noise" in m.capabilities.sites and _takes_channel_noise(m)
    skipped: dict[str, list[str]] = {}
    unmatched: list[str] = []  # channel dropouts without a convolution after them in their Sequential
    plain_pools: dict[str, list[str]] = {}  # pooling layers the pool method does not randomise

    def convert(mod: torch.nn.Module, path: str, noise: str = "element") -> torch.nn.Module:
        if isinstance(mod, BayesianLayer):
            return mod
        if type(mod) is torch.nn.Linear:
            new: BayesianLayer = Linear(mod.in_features, mod.out_features, m, bias=mod.bias is not None)
        elif type(mod) is torch.nn.Conv1d or type(mod) is torch.nn.Conv2d:
            new = _conv(mod, m, noise)
        elif type(mod) is torch.nn.LSTM or type(mod) is torch.nn.GRU:
            return _recurrent(mod, rm, path)
        elif type(mod) is torch.nn.Embedding:
            return _embedding(mod, m, path)
        elif isinstance(mod, _DROPOUT):
            if isinstance(mod, _CHANNEL_DROPOUT):  # not an item of a Sequential before a convolution
                unmatched.append(path)
            return torch.nn.Identity()
        elif type(mod) in _POOLS and pm is not None:
            if _POOLS[type(mod)][1] not in pm.capabilities.pools:
                plain_pools.setdefault(type(mod).__name__, []).append(path or "<root>")
                return mod
            return _pool(mod, pm, path)
        else:
            if not isinstance(mod, _DETERMINISTIC) and any(True for _ in mod.parameters(recurse=False)):
                skipped.setdefault(type(mod).__name__, []).append(path or "<root>")
            else:
                children(mod, path)
            return mod
        with torch.no_grad():
            new.init_value("weight").copy_(mod.weight)
            if mod.bias is not None:
                assert new.bias is not None  # built with `bias=mod.bias is not None`
                new.bias.copy_(mod.bias)
        return new

    def children(mod: torch.nn.Module, path: str) -> None:
        """Convert ``mod``'s children; in a ``Sequential`` a ``Dropout1d``/``Dropout2d`` item gives the next
        convolution item one noise draw per input feature map (the dropout's own place in the computation)."""
        pending: str | None = None
        for name, child in list(mod.named_children()):
            child_path = f"{path}.{name}" if path else name
            if isinstance(mod, torch.nn.Sequential) and isinstance(child, _CHANNEL_DROPOUT):
                pending = child_path
                setattr(mod, name, torch.nn.Identity())
                continue
            conv = type(child) is torch.nn.Conv1d or type(child) is torch.nn.Conv2d
            if pending is not None and (conv or type(child) is torch.nn.Linear):
                if not (conv and channel):
                    unmatched.append(pending)
                setattr(mod, name, convert(child, child_path, "channel" if conv and channel else "element"))
                pending = None
                continue
            setattr(mod, name, convert(child, child_path))
        if pending is not None:
            unmatched.append(pending)

    out = convert(module, "")
    name = m.name or type(m).__name__
    messages = [
        f"{', '.join(unmatched)} drop whole feature maps, which {name!r} cannot give there (no convolution follows "
        "in the same Sequential, or the method draws per element): they became identities, and the method's noise "
        "is drawn per element"
    ] * bool(unmatched)
    messages += [
        f"{pm.name if pm is not None else ''!r} does not randomise {kind}, which stays plain: {', '.join(paths)}"
        for kind, paths in plain_pools.items()
    ]
    messages += [
        f"{kind} is not supported by {name!s} and stays deterministic (its parameters are point estimates): "
        f"{', '.join(paths)}"
        for kind, paths in skipped.items()
    ]
    for message in messages:
        warnings.warn(f"bayesianize: {message}", UserWarning, stacklevel=2)
    if not bayesian_layers(out):
        raise ValueError("`module` has no torch.nn.Linear, Conv1d or Conv2d layer to make Bayesian")
    to_pyro_module_(out)  # recursive: names of nested plain submodules follow the tree too
    return cast(PyroModule, out)  # to_pyro_module_ changed its class in place
