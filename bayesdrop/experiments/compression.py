r"""Compression and architecture selection: LeNet-300-100 and LeNet-5 analogs pruned by learned dropout rates.

For maintainers and for users choosing a method to compress a network: ``benchmarks/compression.py`` is the command
line that writes ``benchmarks/results/compression.md``, ``tests/test_compression_benchmark.py`` checks what it
writes and the digits claims.

Protocol (Molchanov et al. 2017; Liu et al. 2019, Tables 4-5; Srinivas & Babu 2016, Table 1): train each network
with ``bd.fit`` (Adam, batch 128, a linear KL warm-up over the first half of the epochs: without it the per-weight
methods prune everything on these small data sets), then

* report per-layer sparsity, the compression ratio :math:`|W| / |W \ne 0|`, the units kept and the parameter count
  with :func:`bayesdrop.compress.report`;
* build the structurally pruned plain network with :func:`bayesdrop.compress.prune` (removed units are cut out of
  the weight matrices; per-weight pruning leaves zeros in a matrix of the same shape) and evaluate its test
  accuracy (deterministic pass);
* compare its forward time with the *dense mean network* of the same trained model at batch 1024, in the same
  process: a plain ``torch.nn.Sequential`` with the original shape and the posterior-mean weights, unmasked (the
  network ``guide.mean_network()`` computes, checked to 1e-5), so that both sides are plain PyTorch and the
  ratio measures only the pruning.  Times are the median of interleaved repeats (dense, pruned, sparse, dense,
  ...) on the CPU; ``sparse`` is the pruned network with its ``Linear`` weights stored as sparse COO tensors
  (``prune(..., sparse=True)``), the only way per-weight sparsity can save time.

Networks: ``mlp`` is ``in-300-100-classes`` (LeNet-300-100; 784-300-100-10 on MNIST); ``lenet5`` is LeNet-5-Caffe,
conv(20, 5x5) - pool - conv(50, 5x5) - pool - fc(500) - fc(classes), with padded convolutions on the 8x8 digits
and 1x5 kernels on the length-40 MNIST-1D signals (as ``1 x 40`` images).

Methods (``--methods``):

* ``dense``: ``bernoulli`` with ``p = 0`` (MAP under the N(0, 1) weight prior): the accuracy baseline, trained with
  the same budget and seed;
* ``vbd``: variational Bayesian dropout, one alpha per weight (Liu et al. 2019, eq. 18);
* ``vbd-unit``: ``vbd`` with ``granularity="unit"`` (eq. 19, one alpha per input unit / channel);
* ``sparse-vd``: sparse variational dropout (Molchanov et al. 2017);
* ``vd-unit``: ``vd`` with ``granularity="unit"`` and ``max_log_alpha=None`` (without the bound alpha <= 1 no unit
  could reach the pruning threshold log alpha = 3);
* ``sal``: Stochastic Architecture Learning (Srinivas & Babu 2016) with ``a = 0.009, b = 0.9`` (b / a = 100),
  prior strength N / 300 and the sharp-rise threshold, as :mod:`bayesdrop.experiments.sal_width`;
* ``sbp``: structured Bayesian pruning (Neklyudov et al. 2017), log-normal noise per input unit / channel, pruned
  where its signal-to-noise ratio is below 1.

In ``lenet5`` the structured methods (``vbd-unit``, ``vd-unit``, ``sal``, ``sbp``) leave the first convolution plain
(``bernoulli``, p = 0): its only input unit is the image's single channel.  Units are pruned at each method's
default threshold (log alpha >= 3 for the Gaussian families, SNR < 1 for ``sbp``).  ``--seeds N`` repeats every row
with training seeds 0 .. N - 1 (each against the ``dense`` row of its seed).

Usage::

    python benchmarks/compression.py                                  # digits and mnist1d, both networks
    python benchmarks/compression.py --datasets digits --archs mlp    # the 64-300-100-10 claims only
    python benchmarks/compression.py --mnist-dir ~/data/mnist         # adds MNIST

``make bench`` runs it after ``benchmarks/speed.py``.

Example
-------
>>> import bayesdrop as bd
>>> from bayesdrop.experiments import compression
>>> res = compression.train_one(bd.data.load("digits"), "mlp", "vbd", epochs=300, lr=3e-3)  # doctest: +SKIP
>>> res.report.ratio, res.acc_pruned, res.speedup  # |W| / |W != 0|, accuracy, dense / pruned time  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pyro
import torch
from pyro.nn import PyroModule

import bayesdrop as bd
from bayesdrop.data import Split
from bayesdrop.nn import BayesianLayer

from .report_io import device_name, script_parser, write_results

__all__ = [
    "ARCHS",
    "BUDGETS",
    "DATASETS",
    "METHODS",
    "MethodSpec",
    "Result",
    "build_net",
    "dense_module",
    "forward_times",
    "hidden_units",
    "inputs",
    "main",
    "mean_output",
    "run",
    "to_markdown",
    "train_one",
]

ARCHS = ("mlp", "lenet5")
DATASETS = ("digits", "mnist1d")
# (dataset, arch) -> (epochs, lr) of the default run.  digits/mlp is the budget of the claims (tests/
# test_compression_benchmark.py); the others are smaller so that the whole run stays near 20 minutes on 2 CPU cores.
BUDGETS: dict[tuple[str, str], tuple[int, float]] = {
    ("digits", "mlp"): (300, 3e-3),
    ("digits", "lenet5"): (100, 3e-3),
    ("mnist1d", "mlp"): (60, 3e-3),
    ("mnist1d", "lenet5"): (40, 3e-3),
    ("mnist", "mlp"): (50, 1e-3),
    ("mnist", "lenet5"): (50, 1e-3),
}
SAL_STRENGTH_PER_EXAMPLE = 1 / 300


@dataclass(frozen=True)
class MethodSpec:
    """One method of the benchmark: registry name, hyper-parameters and pruning threshold."""

    key: str
    label: str
    name: str
    hyper: dict[str, Any] = field(default_factory=dict)
    threshold: float | str | None = None
    structured: bool = False

    def build(self, num_data: int) -> bd.methods.Method:
        """The method, with the SAL prior strength scaled to ``num_data`` training examples."""
        hyper = dict(self.hyper)
        if self.name == "sal":
            hyper["strength"] = SAL_STRENGTH_PER_EXAMPLE * num_data
        return bd.methods.get(self.name, **hyper)


METHODS: dict[str, MethodSpec] = {
    m.key: m
    for m in (
        MethodSpec("dense", "dense (bernoulli p=0)", "bernoulli", {"p": 0.0}),
        MethodSpec("vbd", "vbd (weight)", "vbd"),
        MethodSpec("vbd-unit", "vbd (unit)", "vbd", {"granularity": "unit"}, structured=True),
        MethodSpec("sparse-vd", "sparse-vd", "sparse-vd"),
        MethodSpec("vd-unit", "vd (unit)", "vd", {"granularity": "unit", "max_log_alpha": None}, structured=True),
        MethodSpec("sal", "sal (b/a = 100)", "sal", {"a": 0.009, "b": 0.9}, threshold="sharp-rise", structured=True),
        MethodSpec("sbp", "sbp", "sbp", structured=True),
    )
}


# -- data and networks ---------------------------------------------------------------------------------------------
def inputs(ds: bd.data.Dataset, arch: str, split: Split) -> Split:
    """The split as the network reads it: flat for ``mlp``, ``(C, H, W)`` images for ``lenet5``."""
    if arch == "mlp":
        return split
    x = ds.images(split)
    if x.dim() == 3:  # (N, C, L) signals -> (N, C, 1, L)
        x = x.unsqueeze(-2)
    return Split(x, split.y)


def build_net(arch: str, spec: MethodSpec, example: torch.Tensor, num_classes: int, num_data: int) -> PyroModule:
    """The ``mlp`` (``in-300-100-classes``) or ``lenet5`` network of ``spec``'s method for inputs like ``example``;
    in ``lenet5`` the structured methods leave the first convolution plain."""
    method = spec.build(num_data)
    if arch == "mlp":
        return bd.models.mlp(example.shape[-1], [300, 100], num_classes, method)
    if arch == "lenet5":
        first = bd.methods.get("bernoulli", p=0.0) if spec.structured else None
        return bd.models.lenet5(tuple(example.shape[1:]), num_classes, method, input_method=first)
    raise ValueError(f"`arch` must be one of {ARCHS}, got {arch!r}")


def dense_module(model: bd.Classifier, guide: bd.DropoutGuide) -> torch.nn.Sequential:
    """The unpruned mean network as plain PyTorch: every layer at its original shape, posterior-mean weights with
    the noise means folded in (``layer.fold`` of ``guide.point_values(pruned=False)``, no mask), on the CPU in eval
    mode."""
    names = {id(layer): name for name, layer, _ in guide.pairs()}
    mods: list[torch.nn.Module] = []
    with torch.no_grad():
        values = guide.point_values(pruned=False)
        for m in cast(torch.nn.Sequential, model.net):
            if not isinstance(m, BayesianLayer):
                mods.append(copy.deepcopy(m))
                continue
            w = m.fold(values[names[id(m)]])["weight"]
            plain: torch.nn.Linear | torch.nn.Conv2d
            if isinstance(m, bd.nn.Linear):
                plain = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
            else:
                plain = torch.nn.Conv2d(
                    m.in_channels,
                    m.out_channels,
                    m.kernel_size,
                    m.stride,
                    m.padding,
                    m.dilation,
                    bias=m.bias is not None,
                )
            plain.weight.copy_(w.detach())
            if m.bias is not None and plain.bias is not None:  # plain has a bias exactly when m has
                plain.bias.copy_(m.bias.detach())
            mods.append(plain)
    out = torch.nn.Sequential(*mods).cpu().eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out


@torch.no_grad()
def mean_output(
    model: bd.Classifier, guide: bd.DropoutGuide, x: torch.Tensor, spec: MethodSpec, pruned: bool
) -> torch.Tensor:
    """Output of ``guide.mean_network(pruned, threshold)`` (the network :func:`bd.compress.prune` exports)."""
    return guide.mean_network(pruned=pruned, threshold=spec.threshold)(x)


# -- timing ----------------------------------------------------------------------------------------------------------
@torch.inference_mode()
def forward_times(
    modules: dict[str, torch.nn.Module], x: torch.Tensor, repeats: int, min_seconds: float = 0.02
) -> dict[str, float]:
    """Median seconds per forward pass of each module on ``x``: interleaved repeats, each of enough passes to last
    ``min_seconds`` (calibrated on the slowest module), after a warm-up.

    Denormal floats are flushed to zero while timing (``torch.set_flush_denormal``): in the unpruned mean network of
    a structured method the weights of pruned units get no gradient from the data and decay under the Gaussian prior
    into denormal floats (1.4e-45 for ``sbp`` after 300 epochs), which a CPU multiplies up to 100x slower; the
    comparison measures the pruning, not that (measured on ``sbp``'s digits MLP: 115 ms a pass without flushing,
    1.6 ms with).
    """
    flushed = torch.set_flush_denormal(True)
    try:
        for m in modules.values():
            m(x)
        single = {k: _time(m, x, 1) for k, m in modules.items()}
        inner = max(1, math.ceil(min_seconds / max(max(single.values()), 1e-6)))
        samples: dict[str, list[float]] = {k: [] for k in modules}
        for _ in range(repeats):
            for k, m in modules.items():
                samples[k].append(_time(m, x, inner))
    finally:
        if flushed:
            torch.set_flush_denormal(False)
    return {k: statistics.median(v) for k, v in samples.items()}


def _time(m: torch.nn.Module, x: torch.Tensor, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        m(x)
    return (time.perf_counter() - t0) / n


# -- one run -----------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    """One (data set, network, method) row, with the trained objects for inspection."""

    dataset: str
    arch: str
    method: str
    label: str
    epochs: int
    lr: float
    acc_mean: float  # unpruned mean network (weight-scaling / posterior means)
    acc_pruned: float  # the pruned plain network
    report: bd.compress.CompressionReport
    hidden_kept: int
    hidden_total: int
    params_pruned: int  # counted on the pruned module
    params_dense: int  # counted on the dense mean network
    max_abs_diff: float  # |pruned(x) - masked mean network(x)|, max over the test set
    t_dense: float | None
    t_pruned: float | None
    t_sparse: float | None
    train_seconds: float
    collapsed: bool
    model: Any = field(repr=False, default=None)
    guide: Any = field(repr=False, default=None)
    pruned: Any = field(repr=False, default=None)
    acc_dense: float | None = None  # the `dense` row of the same data set, network and seed, filled in by `run`
    seed: int = 0

    @property
    def speedup(self) -> float | None:
        """Dense over pruned forward time; ``None`` without timing."""
        return None if self.t_pruned is None or self.t_dense is None else self.t_dense / self.t_pruned

    @property
    def sparse_speedup(self) -> float | None:
        """Dense over sparse forward time; ``None`` without timing."""
        return None if self.t_sparse is None or self.t_dense is None else self.t_dense / self.t_sparse


def hidden_units(architecture: str) -> list[int]:
    """Hidden widths of a report's architecture string (without the input and output entries)."""
    return [int(v) for v in architecture.split("-")[1:-1]]


def train_one(
    ds: bd.data.Dataset,
    arch: str,
    method: str,
    *,
    epochs: int,
    lr: float,
    kl_warmup: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    device: str = "auto",
    timing_batch: int = 1024,
    repeats: int = 15,
    max_train: int | None = None,
) -> Result:
    """Train one method on one network, prune it and time the pruned against the dense mean network.

    ``kl_warmup`` defaults to ``epochs // 2``; ``max_train`` keeps the first examples of the training set only
    (for quick checks); ``repeats=0`` skips the timing.
    """
    spec = METHODS[method]
    threshold = spec.threshold
    assert ds.num_classes is not None, "a classification data set"
    train, test = inputs(ds, arch, ds.train), inputs(ds, arch, ds.test)
    if max_train is not None:
        train = Split(train.x[:max_train], train.y[:max_train])
    n = len(train)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    net = build_net(arch, spec, train.x, ds.num_classes, n)
    model = bd.Classifier(net, num_data=n)
    guide = bd.DropoutGuide(model)
    warm = epochs // 2 if kl_warmup is None else kl_warmup
    t0 = time.perf_counter()
    bd.fit(
        model, guide, train, epochs=epochs, lr=lr, batch_size=batch_size, kl_warmup=warm, seed=seed,
        lr_decay=None, device=device, progress=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    model.cpu(), guide.cpu()
    model.eval()

    rep = bd.compress.report(model, guide, threshold=threshold)
    pruned = bd.compress.prune(model, guide, threshold=threshold)
    dense = dense_module(model, guide)
    with torch.no_grad():
        ref_dense = mean_output(model, guide, test.x, spec, pruned=False)
        gap = (dense(test.x) - ref_dense).abs().max().item()
        if gap > 1e-4 * max(1.0, ref_dense.abs().max().item()):
            raise RuntimeError(f"dense mean network differs from guide.mean_network() by {gap:.3g}")
        acc_mean = (ref_dense.argmax(-1) == test.y).float().mean().item()
        masked = mean_output(model, guide, test.x, spec, pruned=True)
        widths = [int(v) for v in rep.architecture.split("-")]
        collapsed = min(widths) == 0  # a layer lost every unit: the network is constant
        out = pruned(test.x)
        diff = (out - masked).abs().max().item()
        acc_pruned = (out.argmax(-1) == test.y).float().mean().item()

    t_dense = t_pruned = t_sparse = None
    if repeats > 0 and not collapsed:
        x = (
            train.x
            if len(train) >= timing_batch
            else train.x.repeat((timing_batch // len(train) + 1,) + (1,) * (train.x.dim() - 1))
        )
        x = x[:timing_batch].contiguous()
        sparse = bd.compress.prune(model, guide, threshold=threshold, sparse=True)
        times = forward_times({"dense": dense, "pruned": pruned, "sparse": sparse}, x, repeats)
        t_dense, t_pruned, t_sparse = times["dense"], times["pruned"], times["sparse"]

    hidden = hidden_units(rep.architecture)
    total = [
        layer.out_channels if isinstance(layer, bd.nn.Conv2d) else layer.out_features
        for _, layer in bd.nn.bayesian_layers(net)
    ][:-1]
    return Result(
        dataset=ds.name,
        arch=arch,
        method=method,
        label=spec.label,
        epochs=epochs,
        lr=lr,
        acc_mean=acc_mean,
        acc_pruned=acc_pruned,
        report=rep,
        hidden_kept=sum(hidden),
        hidden_total=sum(total),
        params_pruned=sum(p.numel() for p in pruned.parameters()),
        params_dense=sum(p.numel() for p in dense.parameters()),
        max_abs_diff=diff,
        t_dense=t_dense,
        t_pruned=t_pruned,
        t_sparse=t_sparse,
        train_seconds=seconds,
        collapsed=collapsed,
        model=model,
        guide=guide,
        pruned=pruned,
        seed=seed,
    )


def run(
    datasets: Sequence[bd.data.Dataset],
    archs: Sequence[str] = ARCHS,
    methods: Sequence[str] = tuple(METHODS),
    *,
    epochs: int | None = None,
    lr: float | None = None,
    seeds: Sequence[int] = (0,),
    verbose: bool = False,
    **kw: Any,
) -> list[Result]:
    """Every (data set, network, training seed, method); ``epochs`` / ``lr`` override :data:`BUDGETS`.  The
    ``dense`` method is always trained (first) as the accuracy baseline of its data set, network and seed."""
    methods = ["dense", *(m for m in methods if m != "dense")]
    results = []
    for ds in datasets:
        for arch in archs:
            e, r = BUDGETS.get((ds.name, arch), (50, 1e-3))
            e, r = epochs or e, lr or r
            for seed in seeds:
                rows = []
                for method in methods:
                    res = train_one(ds, arch, method, epochs=e, lr=r, seed=seed, **kw)
                    rows.append(res)
                    if verbose:
                        print(
                            f"{ds.name} {arch} {method} seed {seed}: acc {res.acc_mean:.4f} -> {res.acc_pruned:.4f}, "
                            f"{res.report.ratio:.1f}x, {res.report.architecture}, speed-up {res.speedup}, "
                            f"{res.train_seconds:.0f} s",
                            file=sys.stderr,
                            flush=True,
                        )
                for res in rows:
                    res.acc_dense = rows[0].acc_pruned
                results += rows
    return results


# -- markdown ------------------------------------------------------------------------------------------------------------
def _ms(t: float | None) -> str:
    return "—" if t is None else f"{1e3 * t:.3f}"


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}x"


def to_markdown(results: Sequence[Result], header: str) -> str:
    """The Markdown record: title, ``header`` (command and machine), the legend and one table row per result."""
    lines = [
        "# Compression and architecture selection",
        "",
        header,
        "",
        "Accuracy (%) on the test set of the deterministic networks: *mean* is the unpruned posterior-mean network "
        "(`guide.mean_network()`), *pruned* the plain network of `bd.compress.prune`; Δ is *pruned* minus the "
        "`dense` row of the same data set, network and seed (bernoulli p = 0, same budget), in percentage "
        "points.  |W|/|W≠0| and sparsity count weights (no biases); per-layer sparsity is listed in layer order.  "
        "Architecture: input units kept, then the units (channels) of each layer.  Hidden units: kept / total.  "
        "Forward times: batch 1024 on the CPU, dense = the unpruned mean network as plain PyTorch (same shapes, "
        "posterior means), pruned = `bd.compress.prune`, sparse = `prune(..., sparse=True)`; speed-up = "
        "dense / pruned.",
        "",
        "| data | network | method | seed | epochs | lr | acc mean | acc pruned | Δ vs dense | \\|W\\|/\\|W≠0\\| | sparsity % "
        "| per-layer sparsity % | architecture | hidden units | params | dense ms | pruned ms | speed-up "
        "| sparse ms | sparse speed-up | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        per_layer = "/".join(f"{layer.sparsity:.1f}" for layer in r.report.layers)
        assert r.acc_dense is not None, "set by `run`"
        delta = 100 * (r.acc_pruned - r.acc_dense)
        arch = r.report.architecture + (" (collapsed)" if r.collapsed else "")
        lines.append(
            f"| {r.dataset} | {r.arch} | {r.label} | {r.seed} | {r.epochs} | {r.lr:g} | {100 * r.acc_mean:.2f} | "
            f"{100 * r.acc_pruned:.2f} | {delta:+.2f} | {r.report.ratio:.1f} | {r.report.sparsity:.1f} | {per_layer} | "
            f"{arch} | {r.hidden_kept}/{r.hidden_total} | {r.params_pruned} / {r.params_dense} | {_ms(r.t_dense)} | "
            f"{_ms(r.t_pruned)} | {_x(r.speedup)} | {_ms(r.t_sparse)} | {_x(r.sparse_speedup)} | {r.train_seconds:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(
    argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/compression.md"
) -> list[Result]:
    """The command line of ``benchmarks/compression.py``: train, prune and time every row, write the record.

    ``argv`` and ``default_out`` as :func:`~bayesdrop.experiments.report_io.script_parser` says.

    Returns
    -------
    list of Result
        One per (data set, network, method), in the order of the table.
    """
    ap = script_parser(__doc__)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files (adds MNIST)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs for every run (default: per data set/network)")
    ap.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: per data set/network)")
    ap.add_argument("--kl-warmup", type=int, default=None, help="KL warm-up epochs (default: epochs // 2)")
    ap.add_argument("--seed", type=int, default=0, help="the training seed (one run per row)")
    ap.add_argument("--seeds", type=int, default=None, help="repeat every row with training seeds 0 .. N - 1")
    ap.add_argument("--device", default="auto", help="training device; evaluation and timing run on the CPU")
    ap.add_argument("--repeats", type=int, default=15, help="timing repeats (0: no timing)")
    ap.add_argument("--timing-batch", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for training and timing")
    ap.add_argument("--max-train", type=int, default=None, help="use only the first N training examples")
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    for flag in ("epochs", "kl_warmup", "max_train", "threads", "seeds"):
        v = getattr(args, flag)
        if v is not None and v < (0 if flag == "kl_warmup" else 1):
            ap.error(f"--{flag.replace('_', '-')} must be positive")
    if args.repeats < 0 or args.timing_batch < 1:
        ap.error("--repeats must be >= 0 and --timing-batch >= 1")
    torch.set_num_threads(args.threads)
    loaded = [bd.data.load(name) for name in args.datasets]
    if args.mnist_dir:
        loaded.append(bd.data.load_mnist(args.mnist_dir))
    t0 = time.perf_counter()
    results = run(
        loaded,
        args.archs,
        args.methods,
        epochs=args.epochs,
        lr=args.lr,
        kl_warmup=args.kl_warmup,
        seeds=range(args.seeds) if args.seeds else (args.seed,),
        device=args.device,
        timing_batch=args.timing_batch,
        repeats=args.repeats,
        max_train=args.max_train,
        verbose=True,
    )
    command = "python benchmarks/compression.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (
        f"Command: `{command.strip()}` (`make bench` runs it with the defaults); training on "
        f"{device_name(bd.infer.resolve_device(args.device))}; evaluation and timing on the CPU "
        f"({torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}); seed(s) "
        f"{', '.join(map(str, range(args.seeds))) if args.seeds else args.seed}; "
        f"Adam, batch 128, KL warm-up over the first {'half of the' if args.kl_warmup is None else args.kl_warmup} "
        f"epochs; timing: median of {args.repeats} interleaved repeats.  Total wall time "
        f"{(time.perf_counter() - t0) / 60:.1f} min."
    )
    write_results(to_markdown(results, header), args.out)
    return results
