"""``bd.bayesianize``: turn an existing ``torch.nn`` model into a Bayesian one.

For users with a PyTorch model: its ``Linear``, ``Conv1d``, ``Conv2d``, ``Embedding``, ``LSTM`` and ``GRU`` layers
become :mod:`bayesdrop.nn` layers with one method (the recurrent ones with ``recurrent_method``), its dropout modules become identities (the method supplies the noise; a ``Dropout1d``/``Dropout2d``
asks the next convolution for one draw per feature map), its pooling layers take a pool method if one is given, and
every other module kind with parameters is left deterministic with a warning that names it (a block of the user's
with a parameter of its own besides its layers: that parameter, while its layers are converted).  The layers keep
the dtype and device of the modules they replace; a weight layer registered under two names is refused, and tied
weights are untied with a warning (a bayesdrop layer samples its sites once per forward pass, under one name).

Example
-------
>>> net = bd.bayesianize(torchvision_like_cnn, method="sparse-vd")    # in place: net is torchvision_like_cnn
>>> other = bd.bayesianize(make_torch_cnn(), "bernoulli", p=0.3, pool_method="maxpool-dropout")
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, cast

import torch
import torch.fx
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
# Layers whose method, when they read the network's inputs, follows the input rule (Method.input_layer).
_INPUT_RULE_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)
# Poolings no pool method randomises (their windows depend on the input's size): named when a pool_method is given.
_PLAIN_POOLS = (
    torch.nn.AdaptiveMaxPool1d,
    torch.nn.AdaptiveMaxPool2d,
    torch.nn.AdaptiveAvgPool1d,
    torch.nn.AdaptiveAvgPool2d,
    torch.nn.LPPool1d,
    torch.nn.LPPool2d,
)
# Kinds whose parameters are point estimates by design (normalisation layers): left as they are, without a warning.
_DETERMINISTIC = (
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
)
# The weight layers bayesianize replaces (exactly these classes: a subclass's forward may differ).
_WEIGHT_LAYERS = (
    torch.nn.Linear,
    torch.nn.Conv1d,
    torch.nn.Conv2d,
    torch.nn.Embedding,
    torch.nn.LSTM,
    torch.nn.GRU,
)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_weight_layer(mod: torch.nn.Module) -> bool:
    return type(mod) in _WEIGHT_LAYERS


def _own_parameters(mod: torch.nn.Module) -> list[str]:
    """Names of the parameters ``mod`` holds itself (not its submodules'), when they are not point estimates by
    design (a normalisation layer's)."""
    if isinstance(mod, _DETERMINISTIC):
        return []
    return [name for name, p in mod._parameters.items() if p is not None]


def _opaque(mod: torch.nn.Module) -> bool:
    """Whether bayesianize leaves ``mod`` and everything under it as they are: a module of another kind with
    parameters of its own and no submodules (a ``Linear`` subclass), or a ``torch.nn`` layer with parameters of its
    own (a ``MultiheadAttention``, whose ``forward`` reads its projections' weights directly).  A module of the
    user's with parameters of its own *and* submodules (a block with a learned scale) is a container: its
    submodules are converted."""
    if not _own_parameters(mod):
        return False
    torch_kind = type(mod).__module__.split(".")[0] == "torch"
    return torch_kind or not any(child is not None for child in mod._modules.values())


def _placements(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Every (path, module) bayesianize visits, a module registered under several names once per name (unlike
    ``named_modules``, which drops the repeats)."""
    out: list[tuple[str, torch.nn.Module]] = []

    def walk(mod: torch.nn.Module, path: str) -> None:
        out.append((path, mod))
        if _is_weight_layer(mod) or _opaque(mod):
            return
        for name, child in mod._modules.items():
            if child is not None:
                walk(child, _join(path, name))

    walk(module, "")
    return out


def _check_sharing(module: torch.nn.Module) -> list[str]:
    """Refuse a weight layer registered under several names; describe the parameters that converted layers share
    with other modules (tied weights), which the conversion unties."""
    where: dict[int, list[str]] = {}
    for path, mod in _placements(module):
        if _is_weight_layer(mod):
            where.setdefault(id(mod), []).append(path or "<root>")
    for paths in where.values():
        if len(paths) > 1:
            names = " and ".join(repr(p) for p in paths)
            raise ValueError(
                f"bayesianize: {names} are one layer registered under {len(paths)} names; a bayesdrop layer draws "
                "its weights and noise as Pyro sites of one name, once per forward pass, so a layer shared by "
                "several places of the network cannot be made Bayesian (the second call fails with 'Multiple "
                "sample sites named ...'): give each name a layer of its own (copy.deepcopy: separate weights), "
                "or delete the alias if only one name is called"
            )
    owners: dict[int, list[tuple[str, int]]] = {}  # parameter -> (its path, its module) for every module holding it
    for path, mod in module.named_modules():  # each module once, under its first name
        for name, p in mod.named_parameters(recurse=False):
            owners.setdefault(id(p), []).append((_join(path, name), id(mod)))
    messages = []
    for held in owners.values():
        if len({m for _, m in held}) > 1 and any(m in where for _, m in held):
            names = " and ".join(p for p, _ in held)
            messages.append(
                f"{names} are one tensor (tied weights), which is not kept: their layers become Bayesian layers "
                "with weights of their own, each starting from the tensor's current value, and train apart"
            )
    return messages


def _placed(new: BayesianLayer, like: torch.Tensor | None) -> BayesianLayer:
    """``new`` on the device and in the floating dtype of ``like`` (the module it replaces keeps its place)."""
    if like is None or not like.is_floating_point():
        return new
    return new.to(device=like.device, dtype=like.dtype)


def _first_parameter(mod: torch.nn.Module) -> torch.Tensor | None:
    return next((t for t in (*mod.parameters(), *mod.buffers()) if t.is_floating_point()), None)


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
    new = _placed(new, _first_parameter(mod))
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
    new = _placed(Embedding(mod.num_embeddings, mod.embedding_dim, m), mod.weight)
    with torch.no_grad():
        new.init_value("weight").copy_(mod.weight)
    return new


class _LeafTracer(torch.fx.Tracer):
    """torch.fx's tracer, with the bayesdrop layers a user placed (a ``bd.nn.Dropout``) as leaves: their Pyro sample
    statements are not traced into."""

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, BayesianLayer) or super().is_leaf_module(m, module_qualified_name)


def _input_layers(module: torch.nn.Module) -> tuple[set[str], str | None]:
    """The paths of the ``Linear`` / ``Conv1d`` / ``Conv2d`` layers that read the module's inputs: through modules
    and functions without weights of their own (a ``Flatten``, an activation, a reshape, a normalisation) and of
    the inputs alone (not a residual sum with a layer's output), found on a ``torch.fx`` trace, with why none were
    found where the module cannot be traced (``None`` otherwise)."""
    try:
        graph = _LeafTracer().trace(module)
    except Exception as err:  # control flow on values, unsupported calls: torch.fx says which
        return set(), f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    from_input: set[torch.fx.Node] = set()  # nodes computed from the inputs alone, by no weight layer
    found: set[str] = set()
    for node in graph.nodes:
        tensors = [a for a in node.all_input_nodes if a.op != "get_attr"]  # a module's constants are no input
        if node.op == "placeholder":
            from_input.add(node)
        elif tensors and all(a in from_input for a in tensors):  # a residual sum mixes in computed features
            if node.op == "call_module":
                sub = module.get_submodule(str(node.target))
                if type(sub) in _INPUT_RULE_LAYERS:
                    found.add(str(node.target))
                    continue
                if _is_weight_layer(sub) or (_own_parameters(sub) and not isinstance(sub, _DETERMINISTIC)):
                    continue  # a recurrent layer, an embedding, an attention: what follows reads its outputs
            from_input.add(node)
    return found, None


def _fan_in(mod: torch.nn.Module) -> int:
    """The inputs one unit of a ``Linear`` or a convolution sums: ``in_features``, or ``in_channels`` times the
    kernel's size."""
    weight = cast(torch.Tensor, mod.weight)
    return math.prod(weight.shape[1:])


def _fast_paths_off(module: torch.nn.Module) -> None:
    """Turn off the fused inference path of torch's transformer encoders that hold converted layers.

    In eval mode ``TransformerEncoderLayer`` and ``TransformerEncoder`` read ``linear1.weight`` and the other weights
    of their submodules and run one fused kernel: with bayesdrop layers, whose weights are Pyro sites drawn in their
    own ``forward``, that would fail, or compute a network without the method's noise.  Each path checks a flag of
    its module before it reads a weight: ``activation_relu_or_gelu`` (0: "not ReLU or GELU", the activation itself
    is ``activation``) and ``use_nested_tensor``; both are set to take the plain path."""
    for mod in module.modules():
        if not any(isinstance(m, BayesianLayer) for m in mod.modules()):
            continue
        if isinstance(mod, torch.nn.TransformerEncoderLayer):
            mod.activation_relu_or_gelu = 0
        elif isinstance(mod, torch.nn.TransformerEncoder):
            mod.use_nested_tensor = False


def bayesianize(
    module: torch.nn.Module,
    method: str | Method = "bernoulli",
    *,
    input_method: str | Method | None = None,
    pool_method: str | Method | None = None,
    recurrent_method: str | Method | None = None,
    **hyper: Any,
) -> PyroModule:
    """Turn a ``torch.nn`` model into a Bayesian one, in place.

    Every ``torch.nn.Linear``, ``Conv1d``, ``Conv2d`` and ``Embedding`` (exactly these classes; an embedding's
    noise drops whole word types) becomes the :mod:`bayesdrop.nn` layer with ``method``, whose guide starts from the
    module's current weights, so a pre-trained network can be refined; it keeps the replaced module's dtype and
    device (a ``module.double()`` trains in float64).  Dropout modules become identities: the method supplies the
    noise, at its own rate (a ``UserWarning`` lists the modules whose ``p`` differs from a fixed-rate method's); a
    ``Dropout1d`` or ``Dropout2d`` (whole feature maps, Tompson et al. 2015) makes the next convolution of
    its container draw the noise once per input feature map (``noise="channel"``, spatial dropout), where the
    method can.  With ``pool_method`` every ``MaxPool1d/2d`` and ``AvgPool1d/2d`` whose pooling it randomises
    becomes the :mod:`bayesdrop.nn` pooling layer with it (others stay plain, with a warning).  The layers that
    read the module's inputs take the method's input rule, as :mod:`bayesdrop.models` does (``input_method``).
    Normalisation layers keep their parameters as point estimates.  ``LSTM`` and ``GRU`` become ``bd.nn.LSTM`` /
    ``GRU`` with ``recurrent_method``.  A weight layer whose parameters are all frozen (``requires_grad=False``, a
    pre-trained backbone) stays plain and frozen, with a ``UserWarning`` naming it.  In a ``TransformerEncoder`` or
    ``TransformerEncoderLayer`` the feed-forward ``Linear`` layers are converted and torch's fused inference path,
    which reads their weights directly, is turned off.  Any other module with parameters of its own (a subclass of
    ``Linear`` whose ``forward`` may differ, a ``MultiheadAttention`` that reads its projections' weights directly)
    stays deterministic, with a ``UserWarning`` naming it.  A module of your own that holds parameters itself besides
    submodules (a block with a learned ``scale``, a root with a temperature) is a container: its submodules are
    converted, and the parameters it holds itself stay point estimates, with a ``UserWarning`` naming them.  The
    module is converted to a :class:`~pyro.nn.PyroModule` so that site and parameter names follow the module tree;
    called on its own, outside Pyro's handlers, it draws from the prior: predict with :func:`bayesdrop.predict`
    or ``guide.mean_network()``.

    A bayesdrop layer samples its sites once per forward pass, under one name, so a weight layer registered under
    several names (``self.b = self.a``, a layer shared by two places) is refused (``ValueError``), and parameters
    tied between a converted layer and another module (``decoder.weight = embedding.weight``) are untied: each
    layer gets weights of its own, starting from the shared value, with a ``UserWarning`` naming them.  A dropout
    or pooling module registered under several names becomes one module per name.

    Parameters
    ----------
    module : torch.nn.Module
        A plain ``torch.nn`` model (one that holds no :mod:`bayesdrop.nn` layer yet).
    method : str or Method
        The method of every weight layer (``bd.methods.names(role="layer")``); ``**hyper`` its hyper-parameters.
    input_method : str or Method, optional
        The method of the ``Linear`` and convolution layers that read the module's inputs (through modules without
        weights: a ``Flatten``, an activation, a normalisation), found on a ``torch.fx`` trace; a layer or input
        method (``"cutout"``).  Default: ``method.input_layer(fan_in)``, the input rule of
        :func:`bayesdrop.models.mlp` (fixed rates: 0.2 from 64 inputs per unit, no noise below; ``vd``: its bound),
        ``fan_in`` being ``in_features`` or ``in_channels`` times the kernel's size.  ``input_method=method`` gives
        those layers the method's own rate.  A module ``torch.fx`` cannot trace (control flow on values) is
        converted without the rule, with a ``UserWarning``.
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
        If no layer can be converted, if ``module`` already holds :mod:`bayesdrop.nn` layers (it was bayesianized:
        build the method into a fresh copy of the torch model instead), or if a weight layer is registered under
        several names.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module, got {type(module).__name__}")
    held = bayesian_layers(module)
    if held and not any(_is_weight_layer(mod) for mod in module.modules()):
        layers = ", ".join(f"{n or '<root>'} ({layer.method.name or type(layer.method).__name__})" for n, layer in held)
        raise ValueError(
            f"`module` already holds bayesdrop layers: {layers}, and no torch.nn weight layer to convert; "
            "bayesianize keeps the methods of the bayesdrop layers it finds: call it on a fresh copy of the torch "
            "model to use another method"
        )
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
    im = None if input_method is None else resolve(input_method)
    if im is not None and im.capabilities.role not in ("layer", "input"):
        raise ValueError(
            f"`input_method` must be a layer or input method, got {im.name!r} (a {im.capabilities.role} method)"
        )
    inputs, untraced = _input_layers(module)  # before any change: the trace reads the torch model
    rule_matters = im is not None or type(m).input_layer is not Method.input_layer
    tied = _check_sharing(module)  # before any change: a refused module is left as it was
    channel = "noise" in m.capabilities.sites and _takes_channel_noise(m)
    like = _first_parameter(module)  # dtype and device of the layers that replace parameterless modules (pools)
    skipped: dict[str, list[str]] = {}
    own: dict[str, list[str]] = {}  # containers' own parameters, left deterministic
    unmatched: list[str] = []  # channel dropouts without a convolution after them in their Sequential
    plain_pools: dict[str, list[str]] = {}  # pooling layers the pool method does not randomise
    visited: set[int] = set()  # containers whose children are converted (a container under two names: once)
    rates: dict[str, float] = {}  # the dropout modules replaced, with their rates
    frozen: list[str] = []  # weight layers whose parameters all have requires_grad=False, left plain

    def convert(mod: torch.nn.Module, path: str, noise: str = "element") -> torch.nn.Module:
        if isinstance(mod, BayesianLayer):  # placed by the user (bd.nn.Dropout, a bd.nn.LSTM): kept as it is
            return mod
        if _is_weight_layer(mod) and not any(p.requires_grad for p in mod.parameters()):
            frozen.append(path or "<root>")  # frozen by the user (a pre-trained backbone): stays plain and frozen
            return mod
        lm = m  # the layers that read the inputs: the input rule, or input_method
        if path in inputs:
            lm = m.input_layer(_fan_in(mod)) if im is None else im
        if type(mod) is torch.nn.Linear:
            new: BayesianLayer = Linear(mod.in_features, mod.out_features, lm, bias=mod.bias is not None)
        elif type(mod) is torch.nn.Conv1d or type(mod) is torch.nn.Conv2d:
            new = _conv(mod, lm, noise)
        elif type(mod) is torch.nn.LSTM or type(mod) is torch.nn.GRU:
            return _recurrent(mod, rm, path)
        elif type(mod) is torch.nn.Embedding:
            return _embedding(mod, m, path)
        elif isinstance(mod, _DROPOUT):
            if isinstance(mod, _CHANNEL_DROPOUT):  # not an item of a Sequential before a convolution
                unmatched.append(path)
            rates[path or "<root>"] = mod.p
            return torch.nn.Identity()
        elif isinstance(mod, _PLAIN_POOLS) and pm is not None:
            plain_pools.setdefault(type(mod).__name__, []).append(path or "<root>")
            return mod
        elif type(mod) in _POOLS and pm is not None:
            if _POOLS[type(mod)][1] not in pm.capabilities.pools:
                plain_pools.setdefault(type(mod).__name__, []).append(path or "<root>")
                return mod
            return _placed(_pool(mod, pm, path), like)
        else:
            if id(mod) in visited:
                return mod
            visited.add(id(mod))
            if _opaque(mod):
                skipped.setdefault(type(mod).__name__, []).append(path or "<root>")
                return mod
            if _own_parameters(mod):
                own.setdefault(type(mod).__name__, []).extend(_join(path, n) for n in _own_parameters(mod))
            children(mod, path)
            return mod
        new = _placed(new, mod.weight)
        with torch.no_grad():
            new.init_value("weight").copy_(mod.weight)
            if mod.bias is not None:
                assert new.bias is not None  # built with `bias=mod.bias is not None`
                new.bias.copy_(mod.bias)
        return new

    def children(mod: torch.nn.Module, path: str) -> None:
        """Convert ``mod``'s children, a child under several names once per name (``named_children`` would skip
        the repeats); in a ``Sequential`` a ``Dropout1d``/``Dropout2d`` item gives the next convolution item one
        noise draw per input feature map (the dropout's own place in the computation)."""
        pending: str | None = None
        for name, child in list(mod._modules.items()):
            if child is None:
                continue
            child_path = _join(path, name)
            if isinstance(mod, torch.nn.Sequential) and isinstance(child, _CHANNEL_DROPOUT):
                pending = child_path
                rates[child_path] = child.p
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
    _fast_paths_off(out)
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
    messages += [
        f"the parameters that {kind} holds itself stay deterministic (point estimates; its submodules are "
        f"converted): {', '.join(paths)}"
        for kind, paths in own.items()
    ]
    messages += tied
    messages += [
        f"torch.fx cannot trace the module ({untraced}), so the layers that read its inputs are not known and take "
        f"{name!r} like the others, not its input rule (Method.input_layer){' or input_method' if im else ''}"
    ] * bool(untraced and rule_matters)
    messages += [
        f"{', '.join(frozen)} are frozen (no parameter requires a gradient) and stay plain, deterministic and frozen; "
        "set requires_grad=True before bayesianize to make them Bayesian"
    ] * bool(frozen)
    own_p = getattr(m, "p", None)  # a fixed-rate method's rate
    changed = {k: p for k, p in rates.items() if own_p is not None and p != own_p}
    if changed:
        listed = ", ".join(f"{k} (p={p:g})" for k, p in changed.items())
        messages.append(
            f"the dropout modules {listed} became identities: the converted layers draw {name}'s noise at its own "
            f"p={own_p:g}"
            + (
                f" (those reading the network's inputs, {', '.join(sorted(inputs))}, at its input rule: "
                "Method.input_layer)"
                if inputs and rule_matters and im is None
                else ""
            )
            + f"; pass p=... (`bd.bayesianize(module, {name!r}, p=...)`) for another rate"
        )
    for message in messages:
        warnings.warn(f"bayesianize: {message}", UserWarning, stacklevel=2)
    if not bayesian_layers(out):
        why = f" (the frozen ones stay plain: {', '.join(frozen)})" if frozen else ""
        raise ValueError(f"`module` has no torch.nn.Linear, Conv1d or Conv2d layer to make Bayesian{why}")
    _to_pyro_module(out)
    return cast(PyroModule, out)  # to_pyro_module_ changed its class in place


def _to_pyro_module(module: torch.nn.Module) -> None:
    """Pyro's ``to_pyro_module_(module)``, recursive as it is (each child converted before its parent sets it
    again, so that the names of nested plain submodules follow the tree), past a child set to None, which torch
    allows (``register_module(name, None)``, or ``net.head = None`` after a head) and Pyro's own recursion
    refuses with a TypeError."""
    children = [(name, child) for name, child in module._modules.items() if child is not None]
    for _, child in children:
        _to_pyro_module(child)
    if isinstance(module, PyroModule):  # to_pyro_module_ sets nothing again in a PyroModule without recursing
        for name, child in children:
            setattr(module, name, child)
    else:
        to_pyro_module_(module, recurse=False)
