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
* :func:`prune` builds a plain deterministic ``torch.nn`` module.  For
  ``torch.nn.Sequential`` networks pruned units and channels are removed
  physically (rows of one layer, columns of the next, across activations,
  pooling and ``Flatten``); a hidden unit whose incoming weights are all pruned
  is constant and is folded into the next layer's bias.  Other networks keep
  their structure, made of plain modules, with pruned weights zeroed.
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, field
from typing import cast

import torch
from pyro.nn import PyroModule

from .guides import DropoutGuide
from .nn import BayesianLayer, Linear

__all__ = [
    "LayerReport",
    "CompressionReport",
    "report",
    "log_alpha",
    "prune",
    "save",
    "load",
    "SparseLinear",
    "InputSelect",
]

# Modules applied element by element, and those that act channel by channel:
# pruning passes through both; constants fold through the first (their Pyro versions too).
_ELEMENTWISE = (
    torch.nn.ReLU,
    torch.nn.Tanh,
    torch.nn.Sigmoid,
    torch.nn.ELU,
    torch.nn.LeakyReLU,
    torch.nn.GELU,
    torch.nn.Identity,
    torch.nn.Dropout,
)
_UNITWISE = (*_ELEMENTWISE, torch.nn.MaxPool1d, torch.nn.MaxPool2d, torch.nn.AvgPool1d, torch.nn.AvgPool2d)


@dataclass
class LayerReport:
    """One layer of a :class:`CompressionReport`."""

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
    """Per-layer sparsity of a trained network (see :func:`report`)."""

    layers: list[LayerReport]
    architecture: str
    threshold: float | None
    params_pruned: int = 0
    params_dense: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def weights(self) -> int:
        return sum(r.weights for r in self.layers)

    @property
    def nonzero(self) -> int:
        return sum(r.nonzero for r in self.layers)

    @property
    def ratio(self) -> float:
        """Whole-network compression ratio ``|W| / |W != 0|``."""
        return self.weights / max(self.nonzero, 1)

    @property
    def sparsity(self) -> float:
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
    values = guide.point_values(pruned=True, threshold=threshold)
    out = {}
    for name, layer, params in guide.pairs():
        masks = layer.method.keep_masks(layer, params, threshold)
        out[name] = _Point(layer.fold(values[name]), layer.kept_weights(masks), values[name])
    return out


@torch.no_grad()
def report(model: torch.nn.Module, guide: DropoutGuide, threshold: float | None = None) -> CompressionReport:
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
    """
    pairs = _layers(model, guide)
    points = _points(guide, threshold)
    pruned, plain = _prune(model, guide, points, sparse=False)
    structural = isinstance(_net(model), torch.nn.Sequential)
    rows = []
    for name, layer, _ in pairs:
        if "weight" not in layer.weight_sites:
            continue
        out = plain[name]
        w, keep = points[name].weights["weight"], points[name].kept["weight"]
        units = _unit_axis_keep(keep & (w != 0))
        width = cast(int, out.in_channels if hasattr(out, "in_channels") else out.in_features)
        kept = width if structural else int(units.sum())
        stored = cast(torch.Tensor, out.weight)  # what the pruned network stores: removed units' weights count as 0
        nonzero = int((stored != 0).sum())
        rows.append(LayerReport(name, type(layer).__name__, keep.numel(), nonzero, units.numel(), kept))
    if not rows:
        raise ValueError("`model` has no Bayesian layer with weights to report on")
    if structural and isinstance(pruned, torch.nn.Sequential) and isinstance(pruned[0], InputSelect):
        rows[0].units_in_kept = int(pruned[0].index.numel())
    layers = [plain[r.name] for r in rows]
    outs = [m.out_channels if hasattr(m, "out_channels") else m.out_features for m in layers]
    # Structural: inputs kept, then each layer's output units (channels for conv layers).
    widths = [rows[0].units_in_kept, *outs] if structural else [r.units_in_kept for r in rows] + outs[-1:]
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


@torch.no_grad()
def log_alpha(model: torch.nn.Module, guide: DropoutGuide) -> torch.Tensor:
    r""":math:`\log\alpha` of every weight of a Gaussian-family network, as one flat tensor in layer order.

    Per-unit and per-layer values are broadcast to the weights they scale, so
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
                noise = next(n for n in layer.noise_sites.values() if n.weight == site.name)
                la = layer.method.log_alpha(layer, params, noise.name).reshape(-1)
                la = la.reshape((1,) * site.unit_dim + (-1,) + (1,) * (len(site.shape) - site.unit_dim - 1))
            flat.append(la.expand(site.shape).reshape(-1))
    return torch.cat(flat)


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
    model: torch.nn.Module, guide: DropoutGuide, threshold: float | None = None, *, sparse: bool = False
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
        inside).  Its outputs equal those of ``guide.mean_network(pruned=True, threshold=threshold)``.
    """
    _layers(model, guide)
    return _prune(model, guide, _points(guide, threshold), sparse)[0]


def _prune(
    model: torch.nn.Module, guide: DropoutGuide, points: dict[str, _Point], sparse: bool
) -> tuple[torch.nn.Module, dict[str, torch.nn.Module]]:
    """The pruned plain network and, per Bayesian layer name (as in ``guide.pairs()``), its plain module."""
    net = _net(model)
    prefix = "net." if net is not model else ""
    if isinstance(net, torch.nn.Sequential):
        names = {id(layer): name for name, layer, _ in guide.pairs()}
        by_id = {id(layer): points[names[id(layer)]] for _, layer, _ in guide.pairs()}
        seq, seq_plain = _prune_sequential(list(net), by_id, sparse)
        return _finish(seq), {names[id(net[j])]: seq_module for j, seq_module in seq_plain.items()}
    out = _plainified(net)
    plain = {}
    for name, layer, _ in guide.pairs():
        pt = points[name]
        if "weight" in layer.weight_sites and len(layer.weight_sites) == 1:
            new = _plain(layer, pt.weights["weight"] * pt.kept["weight"], layer.bias, sparse)
        else:
            new = layer.to_plain(pt.values)
        _set_submodule(out, name.removeprefix(prefix), new)
        plain[name] = new
    return _finish(out), plain


def _finish(m: torch.nn.Module) -> torch.nn.Module:
    m = m.cpu().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _set_submodule(root: torch.nn.Module, path: str, new: torch.nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, new)


def _prune_sequential(
    mods: list[torch.nn.Module], points: dict[int, _Point], sparse: bool
) -> tuple[torch.nn.Sequential, dict[int, torch.nn.Module]]:
    # Effective dense weights, biases and the input units each Bayesian weight layer keeps; weightless Bayesian
    # layers become their plain module and stop unit removal across them.
    layers = {i: m for i, m in enumerate(mods) if isinstance(m, BayesianLayer) and list(m.weight_sites) == ["weight"]}
    idx = list(layers)
    W = {i: (points[id(mods[i])].weights["weight"] * points[id(mods[i])].kept["weight"]).clone() for i in idx}
    B = {i: (m.bias.detach().clone() if m.bias is not None else None) for i, m in layers.items()}
    between_ok = {
        i: all(isinstance(m, _UNITWISE + (torch.nn.Flatten,)) for m in mods[p + 1 : i])
        for p, i in zip(idx[:-1], idx[1:])
    }

    # Fold constant hidden units (all incoming weights pruned) of Linear -> elementwise -> Linear chains.
    for p, i in zip(idx[:-1], idx[1:]):
        mid = mods[p + 1 : i]
        if (
            isinstance(mods[p], Linear)
            and isinstance(mods[i], Linear)
            and all(isinstance(m, _ELEMENTWISE) for m in mid)
        ):
            dead = (W[p] == 0).all(dim=1)
            bias_p = B[p]
            if dead.any() and bias_p is not None:
                const = bias_p.clone()
                for m in mid:
                    const = m(const)
                const = torch.where(dead, const, torch.zeros_like(const))
                bias_i = B[i]
                if bias_i is None:
                    bias_i = torch.zeros(W[i].shape[0], dtype=W[i].dtype)
                B[i] = bias_i + W[i] @ const
                W[i][:, dead] = 0

    keep_in = {i: _unit_axis_keep(W[i] != 0) for i in idx}
    # Output units of layer p survive when the next layer reads them.
    keep_out = {i: torch.ones(W[i].shape[0], dtype=torch.bool) for i in idx}
    for p, i in zip(idx[:-1], idx[1:]):
        if not between_ok[i]:
            keep_in[i] = torch.ones_like(keep_in[i])
            continue
        k = keep_in[i]
        flat = any(isinstance(m, torch.nn.Flatten) for m in mods[p + 1 : i]) and not isinstance(mods[p], Linear)
        if flat:
            k = k.reshape(W[p].shape[0], -1).any(dim=1)  # a channel survives if any of its positions is read
        if not isinstance(mods[p], Linear) and not k.any():
            # torch has no Conv2d without output channels: keep one, which the next layer reads with zero weights.
            k = torch.zeros_like(k)
            k[0] = True
        keep_in[i] = k.repeat_interleave(keep_in[i].numel() // k.numel()) if flat else k
        keep_out[p] = k
    out: list[torch.nn.Module] = []
    plain: dict[int, torch.nn.Module] = {}
    first = idx[0] if idx else None
    if first is not None and not keep_in[first].all():
        dim = 1 - len(layers[first].weight_sites["weight"].shape)  # the input units: -1 (Linear), -3 (Conv2d), ...
        out.append(InputSelect(keep_in[first].nonzero().squeeze(1), dim=dim))
    for j, m in enumerate(mods):
        if isinstance(m, BayesianLayer) and j not in W:
            plain[j] = m.to_plain(points[id(m)].values)
            out.append(plain[j])
        elif j not in W:
            out.append(_plainified(m))
        else:
            w = W[j][keep_out[j]][:, keep_in[j]]
            bias_j = B[j]
            b = None if bias_j is None else bias_j[keep_out[j]]
            plain[j] = _plain(layers[j], w, b, sparse)
            out.append(plain[j])
    return torch.nn.Sequential(*out), plain


def save(module: torch.nn.Module, path: str | os.PathLike, example: torch.Tensor) -> None:
    """Save a pruned module with ``torch.export`` (a ``.pt2`` program, no pickled code).

    ``example`` is one input batch; the batch dimension is exported as dynamic.
    """
    program = torch.export.export(module, (example[:2],), dynamic_shapes=[{0: torch.export.Dim("batch")}])
    torch.export.save(program, path)


def load(path: str | os.PathLike) -> torch.nn.Module:
    """Load a module written by :func:`save`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`path` {os.fspath(path)!r} does not exist")
    return torch.export.load(path).module()
