r"""Compression: sparsity reports and pruning to a smaller plain network.

Every layer exports its test-time weights from the posterior means of its
sites (``guide.point_values()``, the values of the
:class:`~bayesdrop.handlers.PosteriorMean` network) folded into effective
weights (``layer.fold``: the weights with the mean of the noise on their inputs
multiplied in), and the weights that survive its method's pruning rule
(``layer.kept_weights(method.keep_masks(...))``: log alpha below 3 for the
Gaussian family, gates above a threshold for Generalized Dropout).  From these:

* :func:`report` counts, per layer, weights and non-zero weights, the sparsity,
  the compression ratio :math:`|W| / |W \ne 0|` (Molchanov et al. 2017, Liu et
  al. 2019 Tables 4-5) and the units kept, with the architecture written as in
  Srinivas & Babu (2016) Table 1, e.g. ``64-18-50-10``.
* :func:`prune` builds a plain deterministic ``torch.nn`` module with pruned
  weights zeroed, and removes units and channels that no later layer reads
  physically (rows of one layer, columns of the next, across activations,
  batch norms, pooling and flattening); a hidden unit whose incoming weights
  are all pruned is constant and is folded into the next layer's bias.  A
  ``torch.nn.Sequential`` network is read in order; any other network through
  a ``torch.fx`` trace, and comes back as its own class with smaller layers.
  Where the units of a layer go anywhere else (a residual add, a concatenation,
  a reshape, an untraceable ``forward``) its shapes stay; :func:`prune` says
  exactly when they shrink.
"""

from __future__ import annotations

import copy
import math
import operator
import os
import warnings
from collections import Counter
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any, TypeGuard, cast

import torch
import torch.fx
import torch.nn.functional as F
from pyro.nn import PyroModule

from .fileio import atomic_write, check_path
from .guides import DropoutGuide
from .likelihoods import Likelihood
from .nn import GRU, LSTM, BayesianLayer, Conv1d, Conv2d, Linear, WindowPool
from .posterior import device_of

__all__ = [
    "mean_module",
    "mean_module_parts",
    "LayerReport",
    "CompressionReport",
    "report",
    "log_alpha",
    "check_pt2",
    "prune",
    "save",
    "load",
    "SparseLinear",
    "InputSelect",
    "NoPlainNetwork",
]


@dataclass
class LayerReport:
    """One layer of a :class:`CompressionReport`.

    Attributes
    ----------
    name : str
        The layer's name in the guide (``guide.pairs()``); for a recurrent layer, one row per weight site, named
        ``f"{name}.{site}"`` (e.g. ``"rnn.weight_ih_l0"``).
    kind : str
        The class name of the Bayesian layer, e.g. ``"Linear"``, ``"Conv2d"``, ``"LSTM"``.
    weights : int
        Entries of the layer's weight (its ``weight`` site, or the recurrent weight site), pruned or not; biases are
        not counted.
    nonzero : int
        Non-zero entries of that weight in the network :func:`prune` builds: weights the method prunes, and the
        weights of units removed because no later layer reads them, count as zero.
    units_in : int
        Input units of the weight (its axis 1: the columns of a linear or recurrent weight, the input channels of
        a convolution's).
    units_in_kept : int
        Input units kept: the layer's input width in the pruned network when it is pruned as a ``Sequential`` or
        its inputs shrank, otherwise the input units with at least one non-zero kept weight; all ``units_in`` for
        a recurrent weight (whose shapes stay).
    """

    name: str
    kind: str
    weights: int
    nonzero: int
    units_in: int
    units_in_kept: int

    @property
    def sparsity(self) -> float:
        """Fraction of weights pruned, in percent."""
        return 100.0 * (1 - self.nonzero / self.weights)

    @property
    def ratio(self) -> float:
        """Compression ratio ``|W| / |W != 0|``."""
        return self.weights / max(self.nonzero, 1)


@dataclass
class CompressionReport:
    """Per-layer sparsity of a trained network (see :func:`report`).

    Attributes
    ----------
    layers : list of LayerReport
        One row per Bayesian layer with a ``weight`` site, in the guide's layer order (one per weight site of a
        recurrent layer).
    architecture : str
        The network's widths after pruning joined by ``-``, e.g. ``"64-18-50-10"`` (see :func:`report`).
    threshold : float, str or None
        The pruning threshold given to :func:`report` and passed to every layer's method (``None``: each method's
        default; a string: a rule the methods name).
    params_pruned : int
        Parameters of the dense network :func:`prune` builds (its stored entries, zeroed ones included); 0 by
        default.
    params_dense : int
        Parameters of the unpruned network: those of ``model.net`` (plain layers, the Bayesian layers' biases)
        plus the entries of every Bayesian weight site; 0 by default.
    extra : dict
        Free entries for the caller (empty by default); :func:`report` leaves it empty and :meth:`to_markdown`
        does not print it.
    """

    layers: list[LayerReport]
    architecture: str
    threshold: float | str | None
    params_pruned: int = 0
    params_dense: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def weights(self) -> int:
        """Weights of all rows: the sum of the layers' ``weights``."""
        return sum(r.weights for r in self.layers)

    @property
    def nonzero(self) -> int:
        """Non-zero weights of all rows: the sum of the layers' ``nonzero``."""
        return sum(r.nonzero for r in self.layers)

    @property
    def ratio(self) -> float:
        """Whole-network compression ratio ``|W| / |W != 0|``."""
        return self.weights / max(self.nonzero, 1)

    @property
    def sparsity(self) -> float:
        """Fraction of the weights of all rows pruned, in percent: ``100 * (1 - nonzero / weights)``."""
        return 100.0 * (1 - self.nonzero / self.weights)

    def to_markdown(self) -> str:
        """The report as a markdown table (layout of Liu et al. 2019, Tables 4-5)."""
        lines = [
            "| layer | type | weights | non-zero | sparsity % | \\|W\\|/\\|W≠0\\| | input units kept |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.layers:
            lines.append(
                f"| {r.name} | {r.kind} | {r.weights} | {r.nonzero} | {r.sparsity:.1f} | {r.ratio:.1f} | {r.units_in_kept}/{r.units_in} |"
            )
        lines.append(f"| **total** | | {self.weights} | {self.nonzero} | {self.sparsity:.1f} | {self.ratio:.1f} | |")
        lines.append("")
        lines.append(
            f"Architecture after pruning: `{self.architecture}`; parameters {self.params_dense} -> {self.params_pruned}."
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


def _unit_axis_keep(keep: torch.Tensor) -> torch.Tensor:
    """Input units (Linear columns / Conv2d input channels) with any weight kept."""
    dims = [0, *range(2, keep.dim())]
    return keep.any(dim=dims) if keep.dim() > 1 else keep


def _layers(model: torch.nn.Module, guide: DropoutGuide):
    if not isinstance(guide, DropoutGuide) or guide.model is not model:
        raise ValueError("`guide` must be the DropoutGuide built for `model`")
    if guide._order is None:
        raise RuntimeError("call the guide once (e.g. guide(x)) before compressing")
    return guide.pairs()


@dataclass
class _Point:
    """A Bayesian layer's test-time weights: effective (noise means folded in, pruned entries zeroed), which of
    them the method keeps, and the site values they come from."""

    weights: dict[str, torch.Tensor]
    kept: dict[str, torch.Tensor]
    values: dict[str, torch.Tensor]


@torch.no_grad()
def _points(guide: DropoutGuide, threshold: float | str | None) -> dict[str, _Point]:
    if isinstance(threshold, str):  # a named rule: every pruning layer's method must know it
        for name, layer, _ in guide.pairs():
            method = layer.method
            if method.pruning_rule() is not None and threshold not in method.threshold_rules:
                rules = method.threshold_rules
                known = f"knows {', '.join(map(repr, rules))}" if rules else "knows no named rule"
                raise ValueError(
                    f"`threshold` {threshold!r} is not a pruning rule of layer {name!r}'s method {method.name!r}, "
                    f"which {known}: give a number, or None for each method's own threshold"
                )
    values = guide.point_values(pruned=True, threshold=threshold)
    out = {}
    for name, layer, params in guide.pairs():
        masks = layer.method.keep_masks(layer, params, threshold)
        out[name] = _Point(layer.fold(values[name]), layer.kept_weights(masks), values[name])
    return out


@torch.no_grad()
def report(model: torch.nn.Module, guide: DropoutGuide, threshold: float | str | None = None) -> CompressionReport:
    """Per-layer sparsity, compression ratio and units kept.

    Parameters
    ----------
    model, guide
        A trained likelihood and its guide.
    threshold
        Pruning threshold passed to every layer's method (``None``: each
        method's default, e.g. log alpha > 3 for Gaussian families).

    Notes
    -----
    A layer's non-zero weights are those of the network :func:`prune` builds:
    weights that the method prunes, and all weights of units that no later
    layer reads (e.g. the outgoing units of a layer whose gates in the next
    layer are closed), count as zero.  So ``ratio`` is the compression of the
    pruned network for per-weight and structured methods alike.  Plain layers
    of the network are not rows of the report; their parameters count in both
    totals.

    ``architecture`` is the network's widths after pruning: for a ``Sequential`` the inputs kept, then each layer's
    output units (channels of a convolution), the shapes of :func:`prune`'s modules.  Another network is pruned
    along its ``torch.fx`` trace, where a unit may stay for a reason of shape (a residual sum keeps its unit axis
    whole, the first layer keeps all its inputs): there it lists, per layer, the input units read with a non-zero
    weight, then the last layer's outputs, which can be fewer than the modules' shapes.

    A recurrent layer (``bd.nn.LSTM``, ``bd.nn.GRU``) has one row per weight
    site, per layer and direction (``f"{name}.weight_ih_l0"``,
    ``f"{name}.weight_hh_l0"``, ...), whose units are the columns of that
    weight (the layer's inputs, or its hidden state); its biases count in both
    totals as plain parameters.  :func:`prune` zeroes its pruned weights but
    keeps its shapes (``torch.nn.LSTM`` / ``GRU`` cannot drop input units), so
    all its input units count as kept, even where every weight of a column is
    pruned.  In ``architecture`` each of its layers is one width, its inputs,
    followed by ``hidden_size * directions``.
    """
    pairs = _layers(model, guide)
    points = _points(guide, threshold)
    pruned, plain = _prune(model, guide, points, sparse=False)
    structural = _sequential(_net(model), guide)
    rows: list[LayerReport] = []
    stages: list[tuple[LayerReport, int]] = []  # per layer of units: the row of its inputs and its outputs' width
    for name, layer, _ in pairs:
        if isinstance(layer, LSTM | GRU):
            sites = {site: _recurrent_row(name, layer, site, points[name], plain[name]) for site in layer.weight_sites}
            rows += sites.values()
            width = layer.hidden_size * len(layer.directions)
            stages += [(sites[f"weight_ih_l{k}"], width) for k in range(layer.num_layers)]
            continue
        if "weight" not in layer.weight_sites:
            continue
        out = plain[name]
        w, keep = points[name].weights["weight"], points[name].kept["weight"]
        units = _unit_axis_keep(keep & (w != 0))
        width = cast(int, out.in_channels if hasattr(out, "in_channels") else out.in_features)
        kept = width if structural or width < units.numel() else int(units.sum())  # its inputs shrunk, or not
        stored = cast(torch.Tensor, out.weight)  # what the pruned network stores: removed units' weights count as 0
        nonzero = int((stored != 0).sum())
        rows.append(LayerReport(name, type(layer).__name__, keep.numel(), nonzero, units.numel(), kept))
        stages.append((rows[-1], cast(int, out.out_channels if hasattr(out, "out_channels") else out.out_features)))
    if not rows:
        raise ValueError("`model` has no Bayesian layer with weights to report on")
    if structural and isinstance(pruned, torch.nn.Sequential) and isinstance(pruned[0], InputSelect):
        stages[0][0].units_in_kept = int(pruned[0].index.numel())  # the first layer's inputs (see `prune`)
    outs = [width for _, width in stages]
    # Structural: inputs kept, then each layer's output units (channels for conv layers).
    widths = [stages[0][0].units_in_kept, *outs] if structural else [r.units_in_kept for r, _ in stages] + outs[-1:]
    net = _net(model)
    dense = sum(p.numel() for p in net.parameters())  # plain layers and the Bayesian layers' biases
    dense += sum(s.shape.numel() for _, layer, _ in pairs for s in layer.weight_sites.values())
    return CompressionReport(
        rows,
        "-".join(map(str, widths)),
        threshold,
        params_pruned=sum(p.numel() for p in pruned.parameters()),
        params_dense=dense,
    )


def _recurrent_row(name: str, layer: LSTM | GRU, site: str, point: _Point, plain: torch.nn.Module) -> LayerReport:
    """The row of the weight site ``site`` of the recurrent layer ``name``, whose plain module in the pruned network
    is ``plain`` (a ``torch.nn.LSTM`` / ``GRU`` of the same shapes): its units are the columns of the weight, all
    kept."""
    keep = point.kept[site]
    stored = cast(torch.Tensor, getattr(plain, site))  # the effective weights with the pruned ones zeroed
    units = keep.shape[1]
    return LayerReport(f"{name}.{site}", type(layer).__name__, keep.numel(), int((stored != 0).sum()), units, units)


@torch.no_grad()
def log_alpha(model: torch.nn.Module, guide: DropoutGuide) -> torch.Tensor:
    r""":math:`\log\alpha` of every weight of a Gaussian-family network, as one flat tensor in layer order.

    Per-unit and per-layer values are broadcast to the weights they scale (:math:`-\infty` for a weight without
    noise on its inputs: an LSTM's ``weight_hh`` under ``vbd`` per unit), so
    ``(log_alpha(model, guide) > 3).float().mean()`` is the fraction of weights
    that Molchanov et al.'s (2017) threshold prunes.

    Raises
    ------
    TypeError
        If a layer's method has no :math:`\log\alpha` (only ``vd``, ``sparse-vd`` and ``vbd`` have one).
    """
    flat = []
    for name, layer, params in _layers(model, guide):
        if not hasattr(layer.method, "log_alpha"):
            raise TypeError(
                f"layer {name!r} uses {layer.method.name!r}, which has no log alpha (vd, sparse-vd and vbd do)"
            )
        for site in layer.weight_sites.values():
            if "weight" in layer.method.capabilities.sites:  # log alpha of the weights themselves
                la = layer.method.log_alpha(layer, params, site.name)
            else:  # per unit of the noise on the weight's inputs (vbd per unit), spread along its unit axis
                noise = next((n for n in layer.drawn_noise_sites.values() if n.weight == site.name), None)
                if noise is None:  # no noise on its inputs (an LSTM's weight_hh under vbd): alpha = 0
                    flat.append(layer.like.new_full((site.shape.numel(),), -math.inf))
                    continue
                la = layer.method.log_alpha(layer, params, noise.name).reshape(-1)
                la = la.reshape((1,) * site.unit_dim + (-1,) + (1,) * (len(site.shape) - site.unit_dim - 1))
            flat.append(la.expand(site.shape).reshape(-1))
    return torch.cat(flat)


class NoPlainNetwork(ValueError):
    """A network whose test-time rule has no plain-weight equivalent (Standout, RNNDrop, recurrent dropout), asked
    for one by :func:`prune`."""


class InputSelect(torch.nn.Module):
    """Keeps the input features (or channels, ``dim=-3``) listed in ``index``."""

    index: torch.Tensor

    def __init__(self, index: torch.Tensor, dim: int = -1):
        super().__init__()
        self.register_buffer("index", index.clone())
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(self.dim, self.index)

    def extra_repr(self) -> str:
        return f"{self.index.numel()} kept, dim={self.dim}"


class SparseLinear(torch.nn.Module):
    """``y = x W^T + b`` with ``W`` stored as a sparse COO tensor."""

    weight: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight.to_sparse().coalesce())
        self.bias = None if bias is None else torch.nn.Parameter(bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sparse.mm(self.weight, x.reshape(-1, self.in_features).T).T.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def _plain(layer: BayesianLayer, w: torch.Tensor, b: torch.Tensor | None, sparse: bool) -> torch.nn.Module:
    """The plain module of a weight layer with weights ``w`` (possibly with fewer units) and bias ``b``."""
    if sparse and isinstance(layer, Linear):
        return SparseLinear(w, b)
    with warnings.catch_warnings():  # a layer that lost every unit: torch warns that its init is a no-op
        warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
        return layer.to_plain({"weight": w}, bias=b)


def _net(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "net", model)


def _plainified(module: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``module`` in which every ``PyroModule[cls]`` (made by ``bd.bayesianize`` and
    ``PyroModule[...]``) is its plain ``cls`` again; classes written as subclasses of ``PyroModule`` stay."""
    out = copy.deepcopy(module)
    for m in out.modules():
        base = type(m).__bases__[0]
        if isinstance(m, PyroModule) and not isinstance(m, BayesianLayer) and PyroModule[base] is type(m):
            m.__class__ = base  # PyroModule[base], the class Pyro made: the plain class again
            for attr in ("_pyro_name", "_pyro_context", "_pyro_params", "_pyro_samples"):
                m.__dict__.pop(attr, None)
    return out


@torch.no_grad()
def prune(
    model: torch.nn.Module, guide: DropoutGuide, threshold: float | str | None = None, *, sparse: bool = False
) -> torch.nn.Module:
    """A plain deterministic ``torch.nn`` module from the posterior point estimates.

    Parameters
    ----------
    model, guide
        A trained likelihood (or any module with Bayesian layers) and its guide.
    threshold
        Pruning threshold for every layer's method (``None``: method defaults).
    sparse
        Store ``Linear`` weights as sparse COO tensors (:class:`SparseLinear`).

    Returns
    -------
    torch.nn.Module
        The network in eval mode, on the CPU, made of plain ``torch.nn`` modules (``PyroModule[...]`` containers
        back to their ``torch.nn`` classes; your own ``PyroModule`` subclasses keep their class, with plain layers
        inside).  Its outputs equal those of ``guide.mean_network(pruned=True, threshold=threshold)``.  A
        ``torch.nn.Sequential`` whose items are the Bayesian layers comes back as a new ``torch.nn.Sequential``;
        any other network as a copy of its own class whose layers are replaced by plain, possibly smaller, ones (its
        ``forward`` is unchanged), which :func:`save` exports as it does a ``Sequential``.

    Notes
    -----
    Pruned weights are zeroed in every case.  Units are removed physically (rows of a ``Linear``, output channels
    of a convolution, and the matching inputs of the layer that reads them) between a *producer* and a *consumer*,
    two ``bd.nn.Linear`` / ``Conv1d`` / ``Conv2d`` layers, when the producer's output goes to the consumer and
    nowhere else, through operations that act on each unit by itself:

    * elementwise: activations and (eval-mode) dropout as modules (``ReLU``, ``Tanh``, ``GELU``, ``Dropout``, ...),
      functions (``F.relu``, ``torch.tanh``, ...) or tensor methods (``x.relu()``), and arithmetic with a Python
      number (``x + 1.0``);
    * after a ``ConvNd``: ``N``-d pooling (max, average, adaptive) and ``BatchNormNd`` (which loses the removed
      channels' statistics and affine parameters), then at most one flatten from the channel axis to the last
      (``nn.Flatten()``, ``torch.flatten(x, 1)``, ``x.flatten(1)``) into a ``Linear``, in which channel ``c`` is a
      block of input features, or else a ``ConvNd`` consumer;
    * after a ``Linear``: at most one flatten that ends at the last axis, into a ``Linear``.

    A producer unit survives when the consumer reads it (a channel: when any of its input features is read); a
    convolution keeps at least one channel, and the first layer at least one input.  Between two ``Linear`` layers joined by elementwise operations only, a
    unit whose incoming weights are all pruned is constant: it folds into the consumer's bias and goes.  In a
    ``Sequential`` whose items are the Bayesian layers the layers are taken in order, and the first layer's unread
    inputs are dropped by an :class:`InputSelect` (unless a recurrent layer comes before it).  In any other network
    the chains are read from the ``torch.fx`` graph of the plain network (``torch.fx.Tracer``, ``torch.nn`` modules
    as leaves), and its input features stay.  Recurrent layers (``bd.nn.LSTM``, ``GRU``) keep their shapes.

    Shapes do not shrink (weights are only zeroed) where a unit axis goes anywhere else: into a residual add,
    a concatenation, a reshape or ``view``, a second use of the tensor, any operation not listed (``BatchNorm1d``
    after a ``Linear`` among them: what it normalises depends on the input's rank), a layer of another kind, a
    layer called twice or whose parameters the ``forward`` reads itself; and nowhere in a network that
    ``torch.fx`` cannot trace (data-dependent control flow) or whose graph changes once its layers are smaller (a
    ``forward`` that reads a layer's size).

    Raises
    ------
    ValueError
        If a layer's method has no plain test-time network (``capabilities.plain_export``): it scales its units by
        keep probabilities computed from the input (Standout), or a recurrent cell or update by the noise's mean
        (RNNDrop, recurrent dropout).
    TypeError
        If ``sparse`` is not a bool.
    """
    if not isinstance(sparse, bool):
        raise TypeError(f"`sparse` must be True or False, got {sparse!r}")
    _check_plain_export(model, guide)
    return _prune(model, guide, _points(guide, threshold), sparse)[0]


def _check_plain_export(model: torch.nn.Module, guide: DropoutGuide) -> None:
    """``ValueError`` naming the first layer whose method has no plain test-time network."""
    for name, layer, _ in _layers(model, guide):
        caps = layer.method.capabilities
        if not caps.plain_export:
            why = (
                "scales each unit by a keep probability computed from its input"
                if caps.input_dependent
                else f"scales the recurrent {' and '.join(sorted(caps.noise_roles))} by the noise's mean"
            )
            raise NoPlainNetwork(
                f"layer {name!r} uses {layer.method.name!r}, whose test-time network {why}: it has no plain-weight "
                "equivalent to export; predict with bd.predict(..., rule='weight-scaling') instead"
            )


@torch.no_grad()
def mean_module(model: torch.nn.Module, guide: DropoutGuide) -> torch.nn.Module:
    """The deterministic test-time network as a plain ``torch.nn`` module, nothing pruned, on the model's device.

    The weight-scaling rule of dropout (Goodfellow et al. 2016, sec. 7.12: each layer's weights scaled by its
    inputs' keep probabilities), the posterior-mean network of the Gaussian family, each pooling method's test-time
    pooling: the outputs of ``guide.mean_network()`` (equal to rounding), computed by plain modules.
    :func:`bayesdrop.predict` with ``rule="weight-scaling"`` runs it, built once and kept until a parameter or
    buffer of the model or guide changes.

    Parameters
    ----------
    model, guide
        A trained likelihood (or any module with Bayesian layers) and its guide, already run once.

    Returns
    -------
    torch.nn.Module
        The network in eval mode, its parameters without gradients; built as :func:`prune` builds its dense
        modules (the same classes and structure).

    Raises
    ------
    ValueError
        As :func:`prune`, for a method without a plain test-time network (Standout, RNNDrop, recurrent dropout).
    """
    return mean_module_parts(model, guide)[0]


def mean_module_parts(model: torch.nn.Module, guide: DropoutGuide) -> tuple[torch.nn.Module, dict[str, str]]:
    """:func:`mean_module` and, for each Bayesian layer with the one weight site ``weight`` (by its name in
    ``guide.pairs()``), the path in it of its plain module, whose ``weight`` parameter is the layer's effective
    weights (:meth:`~bayesdrop.nn.BayesianLayer.fold`): with other effective weights in their place, the module
    computes the network at other site values (a drawn network: :class:`bayesdrop.infer.plain.PlainDraws`)."""
    _check_plain_export(model, guide)
    values = guide.point_values()
    points = {
        name: _Point(layer.fold(values[name]), layer.kept_weights({}), values[name]) for name, layer, _ in guide.pairs()
    }
    net, plain = _prune(model, guide, points, sparse=False)
    where = {id(m): path for path, m in net.named_modules()}
    paths = {name: where[id(plain[name])] for name, layer, _ in guide.pairs() if _one_weight(layer)}
    return net.to(device_of(model, guide)), paths


def _sequential(net: torch.nn.Module, guide: DropoutGuide) -> TypeGuard[torch.nn.Sequential]:
    """Whether ``net`` is pruned as a ``Sequential``: every Bayesian layer one of its items."""
    items = {id(m) for m in net} if isinstance(net, torch.nn.Sequential) else set()
    return bool(items) and all(id(layer) in items for _, layer, _ in guide.pairs())


def _prune(
    model: torch.nn.Module, guide: DropoutGuide, points: dict[str, _Point], sparse: bool
) -> tuple[torch.nn.Module, dict[str, torch.nn.Module]]:
    """The pruned plain network and, per Bayesian layer name (as in ``guide.pairs()``), its plain module in it."""
    net = _net(model)
    pairs = guide.pairs()
    if _sequential(net, guide):
        seq, plain = _prune_sequential(list(net), {id(layer): name for name, layer, _ in pairs}, points, sparse)
        return _finish(seq), plain
    layers = {name: layer for name, layer, _ in pairs if _one_weight(layer)}
    prefix = "net." if net is not model else ""
    paths = {name: "" if name == "net" and prefix else name.removeprefix(prefix) for name, _, _ in pairs}
    out = _plainified(net).eval()
    for name, layer, _ in pairs:  # dense plain modules, which `build` replaces for the weight layers
        pt = points[name]
        dense = _plain(layer, _masked(pt), layer.bias, False) if name in layers else layer.to_plain(pt.values)
        out = _replace(out, paths[name], dense)
    where = {id(m): path for path, m in out.named_modules()}

    def build(chains: list[_Chain]) -> torch.nn.Module:
        modules, _, norms = _shrink(layers, points, chains, (), sparse)
        new = copy.deepcopy(out)
        for name, module in modules.items():
            new = _replace(new, paths[name], module)
        for key, norm in norms.items():
            new = _replace(new, where[key], norm)
        return new

    graph = _trace(out)
    chains = [] if graph is None else _traced_chains(out, graph, {paths[n]: (n, layer) for n, layer in layers.items()})
    pruned = build(chains)
    if chains and str(_trace(pruned)) != str(graph):  # the forward depends on the layers' sizes: keep them
        pruned = build([])
    return _finish(pruned), {name: pruned.get_submodule(path) for name, path in paths.items()}


def _finish(m: torch.nn.Module) -> torch.nn.Module:
    m = m.cpu().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _replace(root: torch.nn.Module, path: str, new: torch.nn.Module) -> torch.nn.Module:
    """``root`` with its submodule at ``path`` set to ``new`` (``new`` itself for the empty path)."""
    if not path:
        return new
    parent_path, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent_path) if parent_path else root, leaf, new)
    return root


def _one_weight(m: torch.nn.Module) -> bool:
    """A Bayesian layer whose only weight site is ``weight`` (rebuilt from its effective weights)."""
    return isinstance(m, BayesianLayer) and list(m.weight_sites) == ["weight"]


def _chainable(m: torch.nn.Module) -> bool:
    """A layer whose output units :func:`prune` can remove: a ``Linear``, ``Conv1d`` or ``Conv2d``."""
    return isinstance(m, Linear | Conv1d | Conv2d) and _one_weight(m)


def _dims(layer: BayesianLayer) -> int:
    """The number of spatial dimensions of a weight layer (0 for a ``Linear``)."""
    return len(layer.weight_sites["weight"].shape) - 2


def _masked(pt: _Point) -> torch.Tensor:
    """A layer's effective weights with the pruned ones zeroed."""
    return pt.weights["weight"] * pt.kept["weight"]


# -- which units of a layer the next one reads -------------------------------------------------------------------
# Elementwise operations: units pass through them one to one, and constant units fold through them.
_ELEMENTWISE = (
    torch.nn.ReLU,
    torch.nn.ReLU6,
    torch.nn.Tanh,
    torch.nn.Sigmoid,
    torch.nn.ELU,
    torch.nn.SELU,
    torch.nn.CELU,
    torch.nn.LeakyReLU,
    torch.nn.GELU,
    torch.nn.SiLU,
    torch.nn.Mish,
    torch.nn.Softplus,
    torch.nn.Hardtanh,
    torch.nn.Hardswish,
    torch.nn.Hardsigmoid,
    torch.nn.Identity,
    torch.nn.Dropout,  # the network is in eval mode
    torch.nn.AlphaDropout,
)
_ELEMENTWISE_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset(
    {torch.relu, torch.tanh, torch.sigmoid, F.relu, F.relu6, F.elu, F.selu, F.celu, F.leaky_relu, F.gelu, F.silu}
    | {F.mish, F.softplus, F.hardtanh, F.hardswish, F.hardsigmoid, F.tanh, F.sigmoid}
)
_ELEMENTWISE_METHODS = frozenset({"relu", "relu_", "tanh", "tanh_", "sigmoid", "sigmoid_"})
_SCALAR_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset(
    {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg}
)  # elementwise with Python numbers
# Per-channel operations on the feature maps of a convolution, by the number of spatial dimensions they expect.
_POOLS: dict[type[torch.nn.Module], int] = {
    torch.nn.MaxPool1d: 1,
    torch.nn.AvgPool1d: 1,
    torch.nn.AdaptiveAvgPool1d: 1,
    torch.nn.AdaptiveMaxPool1d: 1,
    torch.nn.MaxPool2d: 2,
    torch.nn.AvgPool2d: 2,
    torch.nn.AdaptiveAvgPool2d: 2,
    torch.nn.AdaptiveMaxPool2d: 2,
}
_POOL_FUNCTIONS: dict[Callable[..., Any], int] = {
    F.max_pool1d: 1,
    F.avg_pool1d: 1,
    F.adaptive_avg_pool1d: 1,
    F.adaptive_max_pool1d: 1,
    F.max_pool2d: 2,
    F.avg_pool2d: 2,
    F.adaptive_avg_pool2d: 2,
    F.adaptive_max_pool2d: 2,
}
_Norm = torch.nn.BatchNorm1d | torch.nn.BatchNorm2d


@dataclass(frozen=True)
class _Op:
    """An operation between two weight layers that acts on each unit by itself.

    ``kind`` is ``"elementwise"`` (``fn``: the operation, which constant units fold through), ``"pool"`` or
    ``"norm"`` (per channel of feature maps with ``dims`` spatial dimensions; a norm ``module`` loses the removed
    channels) or ``"flatten"`` (dimensions ``start`` to ``end``).
    """

    kind: str
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    dims: int = 0
    module: _Norm | None = None
    start: int = 0
    end: int = -1


@dataclass(frozen=True)
class _Chain:
    """The output units of layer ``producer`` read by layer ``consumer`` only, through ``ops``.

    ``layout`` says which inputs of the consumer read unit ``u`` of the producer's ``U``: ``"same"`` input ``u``,
    ``"blocks"`` inputs ``u * n`` to ``(u + 1) * n - 1`` (feature maps flattened into a ``Linear``),
    ``"interleaved"`` inputs ``u``, ``u + U``, ... (a flatten whose last axis is the units of a ``Linear``).
    """

    producer: str
    consumer: str
    ops: tuple[_Op, ...]
    layout: str


def _module_op(m: torch.nn.Module) -> _Op | None:
    """What the plain module ``m`` (in eval mode) does to units, or ``None`` if it is not a per-unit operation."""
    if isinstance(m, BayesianLayer):  # a pooling layer acts on each channel by itself; weight layers are not ops
        return _Op("pool", dims=len(m.pool_sites["pool"].unit_shape) - 2) if "pool" in m.pool_sites else None
    if isinstance(m, WindowPool):
        return _Op("pool", dims=m.dims)
    if isinstance(m, _ELEMENTWISE):
        return _Op("elementwise", fn=m)
    if isinstance(m, torch.nn.Flatten):
        return _Op("flatten", start=m.start_dim, end=m.end_dim)
    if isinstance(m, _Norm):
        return _Op("norm", dims=1 if isinstance(m, torch.nn.BatchNorm1d) else 2, module=m)
    dims = next((d for cls, d in _POOLS.items() if isinstance(m, cls)), None)
    if dims is not None and not getattr(m, "return_indices", False):
        return _Op("pool", dims=dims)
    return None


def _flatten_op(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Op | None:
    """``torch.flatten(x, *args, **kwargs)`` or ``x.flatten(*args, **kwargs)``."""
    start = args[0] if args else kwargs.get("start_dim", 0)
    end = args[1] if len(args) > 1 else kwargs.get("end_dim", -1)
    return _Op("flatten", start=start, end=end) if isinstance(start, int) and isinstance(end, int) else None


def _node_op(node: torch.fx.Node, src: torch.fx.Node, root: torch.nn.Module) -> _Op | None:
    """What the traced ``node`` does to the units of its input ``src``, or ``None`` if it is not a per-unit
    operation of ``src`` alone (other tensors, ``src`` used twice, an unknown function)."""
    uses: list[torch.fx.Node] = []
    torch.fx.node.map_arg((node.args, node.kwargs), uses.append)
    if uses != [src]:
        return None
    args, kwargs, target = node.args, dict(node.kwargs), node.target
    if node.op == "call_module":
        return _module_op(root.get_submodule(str(target))) if args == (src,) and not kwargs else None
    if node.op == "call_function" and target in _SCALAR_FUNCTIONS:
        if kwargs or not all(a is src or isinstance(a, int | float) for a in args):
            return None
        return _Op("elementwise", fn=lambda t: target(*(t if a is src else a for a in args)))
    if not args or args[0] is not src:
        return None
    rest = args[1:]
    if node.op == "call_method":
        if target in _ELEMENTWISE_METHODS:
            return _Op("elementwise", fn=lambda t: getattr(t, str(target))(*rest, **kwargs))
        return _flatten_op(rest, kwargs) if target == "flatten" else None
    if node.op != "call_function":
        return None
    if target in _ELEMENTWISE_FUNCTIONS:
        return _Op("elementwise", fn=lambda t: target(t, *rest, **kwargs))
    if target is F.dropout and (rest[1] if len(rest) > 1 else kwargs.get("training", True)) is False:
        return _Op("elementwise", fn=lambda t: t)
    if target in _POOL_FUNCTIONS:
        return _Op("pool", dims=_POOL_FUNCTIONS[target])
    return _flatten_op(rest, kwargs) if target is torch.flatten else None


def _chain(
    producer: tuple[str, BayesianLayer], ops: list[_Op | None], consumer: tuple[str, BayesianLayer]
) -> _Chain | None:
    """The chain from ``producer`` through ``ops`` into ``consumer`` (names and layers) if every output unit of
    the producer reaches inputs of the consumer of its own (see :func:`prune`), else ``None``."""
    (p_name, p), (c_name, c) = producer, consumer
    if not (_chainable(p) and _chainable(c)):
        return None
    dims, units = _dims(p), p.weight_sites["weight"].shape[0]  # dims: 0 for a Linear
    layout = "same"
    for op in ops:
        if op is None:
            return None
        if op.kind == "elementwise":
            continue
        if layout != "same":
            return None  # after a flatten, only elementwise operations keep the features apart
        if op.kind == "flatten":
            rank = dims + 2
            if not dims and op.end == -1:
                layout = "interleaved"  # the units, the last axis, are the innermost of the flattened ones
            elif dims and op.start in (1, 1 - rank) and op.end in (-1, rank - 1):
                layout = "blocks"
            else:
                return None
        elif op.dims != dims or (op.module is not None and op.module.num_features != units):
            return None  # pools and norms of other feature maps (or of a Linear's outputs)
    reads = isinstance(c, Linear) if layout != "same" or not dims else _dims(c) == dims
    width = c.weight_sites["weight"].shape[1]
    if not reads or (width != units if layout == "same" else width % units):
        return None
    return _Chain(p_name, c_name, tuple(op for op in ops if op is not None), layout)


class _Tracer(torch.fx.Tracer):
    """``torch.fx`` tracer that keeps this module's layers (:class:`SparseLinear`, ...) as calls, as ``torch.nn``
    layers are."""

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, SparseLinear | InputSelect) or super().is_leaf_module(m, module_qualified_name)


def _trace(module: torch.nn.Module) -> torch.fx.Graph | None:
    """The ``torch.fx`` graph of ``module`` (traced on a copy: tracing may add constants to its root), or ``None``
    where it cannot be traced (data-dependent control flow, ...)."""
    try:
        return _Tracer().trace(copy.deepcopy(module))
    except Exception:  # whatever stops the trace, the network keeps its shapes
        return None


def _traced_chains(
    root: torch.nn.Module, graph: torch.fx.Graph, layers: dict[str, tuple[str, BayesianLayer]]
) -> list[_Chain]:
    """The chains between the weight layers of ``root`` (``layers``: by path, their name and Bayesian layer) in
    its traced ``graph``, in the order of the producers."""
    nodes = list(graph.nodes)
    calls = Counter(id(root.get_submodule(str(n.target))) for n in nodes if n.op == "call_module")
    reads = [str(n.target) for n in nodes if n.op == "get_attr"]

    def once(path: str) -> bool:  # called once, and its parameters not read by the forward
        return calls[id(root.get_submodule(path))] == 1 and not any(r.startswith(f"{path}.") for r in reads)

    chains = []
    for node in nodes:
        start = str(node.target)
        if node.op != "call_module" or start not in layers or not once(start):
            continue
        ops: list[_Op | None] = []
        cur = node
        while len(cur.users) == 1:
            (nxt,) = cur.users
            target = str(nxt.target)
            if nxt.op == "call_module" and target in layers:
                direct = nxt.args == (cur,) and not nxt.kwargs and once(target)
                chain = _chain(layers[start], ops, layers[target]) if direct else None
                chains += [chain] if chain is not None else []
                break
            op = _node_op(nxt, cur, root)
            if op is None or (op.kind == "norm" and not once(target)):
                break
            ops.append(op)
            cur = nxt
    return chains


def _sliced_norm(norm: _Norm, keep: torch.Tensor) -> torch.nn.Module:
    """A copy of the batch norm ``norm`` restricted to the channels ``keep``."""
    new = copy.deepcopy(norm)
    new.num_features = int(keep.sum())
    for name in ("weight", "bias", "running_mean", "running_var"):
        t = getattr(norm, name)
        if t is not None:
            kept = t.detach()[keep.to(t.device)].clone()
            setattr(new, name, torch.nn.Parameter(kept, t.requires_grad) if name in ("weight", "bias") else kept)
    return new


def _shrink(
    layers: dict[str, BayesianLayer],
    points: dict[str, _Point],
    chains: list[_Chain],
    select: Container[str],
    sparse: bool,
) -> tuple[dict[str, torch.nn.Module], dict[str, torch.Tensor], dict[int, torch.nn.Module]]:
    """The plain modules of the weight layers ``layers`` (by name) with the units that ``chains`` (in order) make
    unread removed, the input units each keeps (computed from its weights for the layers in ``select``, whose
    caller drops the unread ones; all for layers that no chain reaches), and the sliced batch norms of the chains
    by ``id`` of the module they replace."""
    W = {n: _masked(points[n]).clone() for n in layers}
    B = {n: (m.bias.detach().clone() if m.bias is not None else None) for n, m in layers.items()}

    # Fold constant hidden units (all incoming weights pruned) of Linear -> elementwise -> Linear chains.
    for ch in chains:
        p, i = ch.producer, ch.consumer
        bias_p = B[p]
        elementwise = all(op.kind == "elementwise" for op in ch.ops)
        if not (isinstance(layers[p], Linear) and isinstance(layers[i], Linear) and elementwise) or bias_p is None:
            continue
        dead = (W[p] == 0).all(dim=1)
        if dead.any():
            const = bias_p.clone()
            for op in ch.ops:
                const = cast(Callable[..., Any], op.fn)(const)
            const = torch.where(dead, const, torch.zeros_like(const))
            bias_i = B[i]
            if bias_i is None:
                bias_i = torch.zeros(W[i].shape[0], dtype=W[i].dtype, device=W[i].device)
            B[i] = bias_i + W[i] @ const
            W[i][:, dead] = 0

    def every(n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.ones(n, dtype=torch.bool, device=like.device)

    # Output units survive when the next layer reads them with a weight of a row it keeps: from the last chain
    # back, so that a unit read only by rows a later chain removes goes too (a conv channel read by unread fc rows),
    # until nothing changes (a branching trace may take several passes; the kept sets only shrink).
    keep_out = {n: every(W[n].shape[0], W[n]) for n in layers}
    for _ in range(len(chains) + 1):
        changed = False
        for ch in reversed(chains):
            p, i = ch.producer, ch.consumer
            k, units = _unit_axis_keep(W[i][keep_out[i]] != 0), W[p].shape[0]
            if ch.layout == "blocks":
                k = k.reshape(units, -1).any(dim=1)  # a channel survives if any of its positions is read
            elif ch.layout == "interleaved":
                k = k.reshape(-1, units).any(dim=0)
            if not isinstance(layers[p], Linear) and not k.any():
                # torch has no Conv2d without output channels: keep one, which the next layer reads with zero weights.
                k = torch.zeros_like(k)
                k[0] = True
            changed |= not torch.equal(k, keep_out[p])
            keep_out[p] = k
        if not changed:
            break
    keep_in = {
        n: _unit_axis_keep(W[n][keep_out[n]] != 0) if n in select else every(W[n].shape[1], W[n]) for n in layers
    }
    for n in layers:
        if (
            n in select and not keep_in[n].any()
        ):  # every input pruned: one stays, read with zero weights (no layer of no inputs)
            keep_in[n][0] = True
    for ch in chains:
        p, i = ch.producer, ch.consumer
        per = W[i].shape[1] // W[p].shape[0]  # inputs of the consumer per unit
        k = keep_out[p]
        keep_in[i] = k.repeat_interleave(per) if ch.layout == "blocks" else k.repeat(per)
    modules = {}
    for n, layer in layers.items():
        bias = B[n]
        b = None if bias is None else bias[keep_out[n]]
        modules[n] = _plain(layer, W[n][keep_out[n]][:, keep_in[n]], b, sparse)
    norms = {
        id(op.module): _sliced_norm(op.module, keep_out[ch.producer])
        for ch in chains
        for op in ch.ops
        if op.module is not None and not keep_out[ch.producer].all()
    }
    return modules, keep_in, norms


def _prune_sequential(
    mods: list[torch.nn.Module], names: dict[int, str], points: dict[str, _Point], sparse: bool
) -> tuple[torch.nn.Sequential, dict[str, torch.nn.Module]]:
    """A ``Sequential`` network's items (``names``: the Bayesian layers' names by ``id``) pruned: the chains
    between consecutive weight layers, with an :class:`InputSelect` for the first one's unread inputs."""
    plain_mods = [m if isinstance(m, BayesianLayer) else _plainified(m).eval() for m in mods]
    idx = [j for j, m in enumerate(mods) if _one_weight(m)]
    named = {j: (names[id(mods[j])], cast(BayesianLayer, mods[j])) for j in idx}
    chains = [
        ch
        for p, i in zip(idx[:-1], idx[1:])
        if (ch := _chain(named[p], [_module_op(m) for m in plain_mods[p + 1 : i]], named[i])) is not None
    ]
    # The network's inputs are the first weight layer's only where no other layer with weights (a recurrent layer,
    # which keeps its shapes) reads them before it.
    read = bool(idx) and not any(isinstance(m, BayesianLayer) and m.weight_sites for m in mods[: idx[0]])
    first = named[idx[0]] if read else None
    select = {first[0]} if first is not None else set()
    modules, keep_in, norms = _shrink(dict(named.values()), points, chains, select, sparse)
    out: list[torch.nn.Module] = []
    plain: dict[str, torch.nn.Module] = {}
    for m in plain_mods:
        if isinstance(m, BayesianLayer):
            name = names[id(m)]
            if first is not None and name == first[0] and not keep_in[name].all():
                # right before the layer: a module before it (a Flatten, a LayerNorm) may reshape or mix its inputs
                dim = 1 - len(first[1].weight_sites["weight"].shape)  # the input units: -1 (Linear), -3 (Conv2d)
                out.append(InputSelect(keep_in[name].nonzero().squeeze(1), dim=dim))
            plain[name] = modules[name] if name in modules else m.to_plain(points[name].values)
            m = plain[name]
        out.append(norms.get(id(m), m))
    return torch.nn.Sequential(*out), plain


def save(module: torch.nn.Module, path: str | os.PathLike, example: torch.Tensor) -> None:
    """Save a pruned module with ``torch.export`` (a ``.pt2`` program: the graph as JSON, the weights as raw
    tensors, nothing pickled).

    ``example`` gives the shape and dtype of one input; the program is traced on zeros of that shape (two rows,
    the batch dimension exported as dynamic), so the file holds no data.  Written atomically: an interrupted save
    leaves ``path`` as it was.

    Parameters
    ----------
    module : torch.nn.Module
        A plain deterministic network: the one :func:`prune` (pruned) or :func:`mean_module` (nothing pruned)
        builds from a trained model and guide, or any ``torch.nn`` module without Bayesian layers.
    path : str or os.PathLike
        The ``.pt2`` file to write; its directory must exist.
    example : torch.Tensor
        A batch ``(N, ...)`` of inputs (N >= 1), for their shape and dtype.

    Raises
    ------
    TypeError
        If ``module`` is not a ``torch.nn.Module``, or is a Bayesian one: a :class:`~bayesdrop.DropoutGuide`, a
        likelihood or a network holding Bayesian layers (``bd.nn``), whose forward samples noise and which
        ``torch.export`` cannot trace; save ``prune(model, guide)`` or ``mean_module(model, guide)`` instead.
        If ``path`` is not a ``str`` or ``os.PathLike``.
    ValueError
        If ``example`` is not a batch of inputs, if the module does not run on zeros like it (a wrong shape or
        dtype, checked eagerly before the export), or if the module holds :class:`SparseLinear` layers
        (``prune(..., sparse=True)``), which ``torch.export`` cannot trace; if ``path`` is empty.
    """
    _check_plain_module(module)
    path = check_path(path, "path", "the .pt2 file to write")
    if not torch.is_tensor(example) or example.dim() < 1 or len(example) == 0:
        raise ValueError("`example` must be a tensor of inputs (N, ...) with N >= 1, to give the input shape")
    sparse = [name or "<root>" for name, m in module.named_modules() if isinstance(m, SparseLinear)]
    if sparse:
        raise ValueError(
            f"`module` holds SparseLinear layers ({', '.join(sparse)}), whose sparse matrix products torch.export "
            "cannot trace: save the dense pruned network (bd.compress.prune(model, guide)), which holds the same "
            "weights, and convert it after loading"
        )
    zeros = torch.zeros((2, *example.shape[1:]), dtype=example.dtype, device=example.device)
    buffers = [(b, b.clone()) for b in module.buffers()]  # a batch norm in training mode updates its statistics
    try:  # eagerly first: the export's tracing checks neither indices nor dtypes, and would save a broken program
        with torch.no_grad():
            module(zeros)
    except (RuntimeError, IndexError, TypeError, ValueError) as err:
        raise ValueError(
            f"`module` cannot run on inputs like `example` (shape {tuple(example.shape)}, {example.dtype}): {err}"
        ) from err
    finally:
        with torch.no_grad():
            for b, before in buffers:
                b.copy_(before)
    with warnings.catch_warnings():  # an LSTM/GRU refreshes its flat weights in forward; the program holds them
        warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights", category=UserWarning)
        program = torch.export.export(module, (zeros,), dynamic_shapes=[{0: torch.export.Dim("batch")}])
    atomic_write(path, lambda f: torch.export.save(program, f))  # a unique temporary file, then renamed


def _check_plain_module(module: Any) -> None:
    """``TypeError`` unless ``module`` is a plain ``torch.nn.Module``: not a guide, and no Bayesian layer in it."""
    remedy = (
        "save the plain network that bd.compress.prune(model, guide) (pruned) or bd.compress.mean_module(model, "
        "guide) (nothing pruned) returns"
    )
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"`module` must be a plain torch.nn.Module ({remedy}), got {type(module).__name__}")
    if isinstance(module, DropoutGuide | Likelihood):
        kind = "bd.DropoutGuide" if isinstance(module, DropoutGuide) else f"likelihood ({type(module).__name__})"
        raise TypeError(f"`module` is a {kind}, which torch.export cannot trace: {remedy}")
    bayesian = [name or "<root>" for name, m in module.named_modules() if isinstance(m, BayesianLayer)]
    if bayesian:
        shown = ", ".join(map(repr, bayesian[:3])) + (", ..." if len(bayesian) > 3 else "")
        raise TypeError(
            f"`module` ({type(module).__name__}) holds Bayesian layers ({shown}), whose forward draws noise and "
            f"which torch.export cannot trace: {remedy}"
        )


_PT2_META = ("archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id")
_PT2_PAYLOADS = {"weights": "weight_", "constants": "tensor_constant"}  # folder under data/ -> file name prefix


def check_pt2(path: str | os.PathLike) -> None:
    """Refuse a ``.pt2`` archive that :func:`load` should not open: anything but the JSON graph, raw tensors and
    sample inputs that load with ``torch.load(weights_only=True)``.

    ``torch.export.load`` unpickles (``weights_only=False``) the weights and constants an archive marks
    ``use_pickle``, a legacy ``data/weights/<model>.pt`` or ``data/constants/<model>.pt`` file, its custom and
    opaque objects, and sample inputs that ``weights_only=True`` cannot read: a crafted file runs code on load.
    This reads the archive as a zip, without unpickling anything, and accepts an exact list of entries: the
    format's metadata, each program ``models/<model>.json`` with its ``<model>_weights_config.json`` and
    ``<model>_constants_config.json``, the raw payload files those configurations name (none pickled), and
    sample inputs of plain tensors.

    Raises
    ------
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike``.
    ValueError
        If the file is not a zip archive of a ``.pt2`` program, or holds a pickled payload or any entry outside
        that list, naming the entry; if ``path`` is empty.
    """
    import io
    import json
    import zipfile

    name = check_path(path, "path", "a .pt2 file")
    try:
        archive = zipfile.ZipFile(name)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{name}: not a .pt2 archive ({exc})") from None
    with archive:
        entries = [e for e in archive.namelist() if not e.endswith("/")]
        roots = {e.split("/", 1)[0] for e in entries}
        if len(roots) != 1 or f"{next(iter(roots))}/archive_format" not in entries:
            raise ValueError(f"{name}: not a .pt2 archive (no single root folder with an archive_format)")
        root = next(iter(roots))
        if archive.read(f"{root}/archive_format").strip() != b"pt2":
            raise ValueError(f"{name}: archive_format is not 'pt2'")
        rels = {e[len(root) + 1 :]: e for e in entries}
        models = [r[len("models/") : -len(".json")] for r in rels if r.startswith("models/") and r.endswith(".json")]
        allowed = set(_PT2_META) | {f"models/{m}.json" for m in models}
        for model in models:
            for kind, prefix in _PT2_PAYLOADS.items():
                config_name = f"data/{kind}/{model}_{kind}_config.json"
                allowed.add(config_name)
                if config_name not in rels:
                    continue
                try:
                    config = json.loads(archive.read(rels[config_name])).get("config", {})
                    metas = [(str(fqn), meta, str(meta.get("path_name", ""))) for fqn, meta in config.items()]
                except (ValueError, AttributeError, TypeError) as exc:
                    raise ValueError(f"{name}: {config_name} is not a payload configuration ({exc})") from None
                for fqn, meta, path_name in metas:
                    if meta.get("use_pickle") or not path_name.startswith(prefix) or "/" in path_name:
                        raise ValueError(f"{name}: {kind} entry {fqn!r} ({path_name}) is pickled; refused")
                    allowed.add(f"data/{kind}/{path_name}")
        # torch.export.load unpickles a legacy <model>.pt weights or constants file whatever the configs say
        allowed -= {f"data/{kind}/{model}.pt" for kind in _PT2_PAYLOADS for model in models}
        for rel, entry in rels.items():
            if rel.startswith("data/sample_inputs/") and rel.endswith(".pt") and rel[19:-3] in models:
                try:
                    torch.load(io.BytesIO(archive.read(entry)), weights_only=True)
                except Exception as exc:  # anything weights_only cannot read would be unpickled by torch.export
                    raise ValueError(f"{name}: sample inputs {rel} are not plain tensors ({exc}); refused") from None
            elif rel not in allowed:
                raise ValueError(f"{name}: unexpected entry {rel!r} in a .pt2 archive; refused")
        bad = archive.testzip()  # torch.export.load does not check the CRC-32s: a flipped bit would load
        if bad is not None:
            raise ValueError(f"{name}: the file is corrupt: the bytes of its entry {bad!r} do not match their checksum")


def load(path: str | os.PathLike) -> torch.nn.Module:
    """Load the module written by :func:`save` to ``path`` (a ``.pt2`` file), after :func:`check_pt2` has found
    nothing pickled in the file.

    Raises
    ------
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike``.
    IsADirectoryError
        If ``path`` is a directory.
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If :func:`check_pt2` refuses the file, or ``torch.export`` cannot load it; if ``path`` is empty.
    """
    path = check_path(path, "path", "a .pt2 file written by bd.compress.save")
    if os.path.isdir(path):
        raise IsADirectoryError(f"`path` {os.fspath(path)!r} is a directory, not a .pt2 file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`path` {os.fspath(path)!r} does not exist")
    check_pt2(path)
    try:
        return torch.export.load(path).module()
    except Exception as err:  # an archive that passed the check but does not deserialise (an entry missing, ...)
        raise ValueError(
            f"`path` {os.fspath(path)!r} is not a loadable .pt2 model: {type(err).__name__}: {err}"
        ) from err
