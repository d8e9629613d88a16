"""Monte Carlo prediction: the S networks drawn at once (vectorised) against one pass per network, in one process.

For users choosing ``bd.predict(..., parallel=True)`` and for maintainers checking what it buys:
``benchmarks/predict_speed.py`` is the command line that writes ``benchmarks/results/predict_speed.md``;
``tests/test_predict_speed_benchmark.py`` checks the protocol on a small network.

Protocol: for each configuration (:data:`CONFIGS`: a data set's test inputs, a network of ``bd.models`` with one
method, S draws and a batch size), the model and guide are built from seed 0 (untrained: the cost of a pass does
not depend on the weights' values), and ``bd.predict`` runs ``--repeats`` times with ``parallel=False`` (one forward
pass per drawn network, :class:`~bayesdrop.posterior.PosteriorSampler`) and ``parallel=True`` (the S networks in
one ``pyro.plate``, their draws folded into the batch axis: :class:`~bayesdrop.sites.Draws`), alternating, after
one warm-up call of each.  Reported: the median time of each (on a CPU with one torch thread the CPU time of the
timing thread, which a virtual machine's stolen time does not inflate; wall time otherwise) and the ratio of the
medians (looped over
vectorised: above 1, the vectorised pass is faster), with the memory each pass holds at once, from the layer
widths: the activations of ``S x batch`` examples, and the vectorised Gaussian weights' ``S`` copies.

Usage::

    python benchmarks/predict_speed.py [--device auto] [--repeats 5] [--parts mc per-pass weight-scaling]
                                       [--out benchmarks/results/predict_speed.md]

``--parts`` picks the sections (all three by default): the MC rows, the networks per vectorised pass, and
``rule="weight-scaling"`` against one plain forward pass.

Example
-------
>>> import torch
>>> from bayesdrop.experiments import predict_speed
>>> row = predict_speed.measure(predict_speed.CONFIGS[0], torch.device("cpu"), repeats=1)  # doctest: +SKIP
>>> row["ratio"]  # looped time over vectorised time  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pyro
import torch
import torch.nn.functional as F

import bayesdrop as bd
from bayesdrop.distributions import base_distribution
from bayesdrop.infer.plain import weight_scaling_network
from bayesdrop.infer.predict import auto_parallel
from bayesdrop.methods.classic import BernoulliDropout

from .report_io import device_name, quoted_command, script_parser, write_results

__all__ = [
    "CONFIGS",
    "Config",
    "build",
    "PER_PASS",
    "hand_written",
    "measure",
    "measure_per_pass",
    "measure_weight_scaling",
    "main",
]


@dataclass(frozen=True)
class Config:
    """One row: ``arch`` (``"mlp"``, ``"lenet5"`` or ``"lstm"``) with ``hidden`` widths on ``dataset``'s test
    inputs (the first ``num_inputs``), ``method``, ``samples`` draws, ``batch_size`` inputs per pass."""

    dataset: str
    arch: str
    hidden: tuple[int, ...]
    method: str
    samples: int
    batch_size: int
    num_inputs: int

    @property
    def network(self) -> str:
        """The network in words, e.g. ``"MLP 40-1024-1024-10"``."""
        widths = "-".join(str(w) for w in self.hidden)
        return {"mlp": "MLP", "lenet5": "LeNet-5", "lstm": "LSTM"}[self.arch] + f" {widths}"


CONFIGS = [
    Config("digits", "mlp", (300, 100), "bernoulli", 100, 360, 360),
    Config("digits", "mlp", (300, 100), "sparse-vd", 100, 360, 360),
    Config("digits", "mlp", (300, 100), "vbd", 100, 360, 360),
    Config("mnist1d", "mlp", (1024, 1024), "bernoulli", 100, 100, 1000),
    Config("mnist1d", "mlp", (1024, 1024), "sparse-vd", 30, 100, 1000),
    Config("mnist1d", "mlp", (1024, 1024), "vbd", 30, 100, 1000),
    Config("digits", "lenet5", (20, 50, 500), "bernoulli", 100, 360, 360),
    Config("mnist1d", "lstm", (64,), "variational-rnn", 50, 250, 1000),
]


def build(config: Config) -> tuple[bd.Likelihood, bd.DropoutGuide, torch.Tensor, int]:
    """The model, its guide, the inputs and the largest layer width of ``config`` (seed 0)."""
    torch.manual_seed(0)
    ds = bd.data.load(config.dataset)
    classes = ds.num_classes
    assert classes is not None  # digits and mnist1d are classification data
    if config.arch == "mlp":
        x = ds.test.x[: config.num_inputs]
        net: torch.nn.Module = bd.models.mlp(x.shape[1], list(config.hidden), classes, config.method)
        width = max(config.hidden)
    elif config.arch == "lenet5":
        x = ds.images("test")[: config.num_inputs]
        c1, c2, hidden = config.hidden
        net = bd.models.lenet5(tuple(x.shape[1:]), classes, config.method, channels=(c1, c2), hidden=hidden)
        width = c1 * x.shape[-1] * x.shape[-2]  # the first convolution's output map per example
    else:
        x = ds.test.x[: config.num_inputs].unsqueeze(-1)  # a signal read as a sequence of one feature
        net = bd.models.rnn(1, config.hidden[0], classes, config.method)
        width = 4 * config.hidden[0] * x.shape[1]  # the gates of every step
    model = bd.Classifier(net, num_data=len(x))
    guide = bd.DropoutGuide(model)
    guide(x[:2])
    return model, guide, x, width


def _thread_clock(device: torch.device) -> bool:
    """Whether :func:`_alternate` times ``device`` by the CPU time of the timing thread (a CPU, one torch thread)."""
    return device.type == "cpu" and torch.get_num_threads() == 1


def _clock_words(device: torch.device) -> str:
    """The record's words for :func:`_alternate`'s clock on ``device``."""
    return "CPU time of the timing thread" if _thread_clock(device) else "wall time"


def _alternate(
    runs: dict[Any, Callable[[], Any]], repeats: int, device: torch.device, calls: int = 1
) -> dict[Any, float]:
    """Median seconds of one call of each of ``runs``, timed in turn ``repeats`` times after one warm-up of each,
    every timing a loop of ``calls`` calls (divided by it), the device synchronised around every timing: on a CPU
    with one torch thread the CPU time of the timing thread (``time.thread_time``: what the machine's other work
    and a virtual machine's stolen time do not add to), else wall time."""
    clock = time.thread_time if _thread_clock(device) else time.perf_counter
    times: dict[Any, list[float]] = {key: [] for key in runs}
    for i in range(repeats + 1):
        for key, run in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = clock()
            for _ in range(calls):
                run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:  # the first timing of each warms up
                times[key].append((clock() - start) / calls)
    return {key: statistics.median(t) for key, t in times.items()}


def measure(config: Config, device: torch.device, repeats: int = 5) -> dict[str, Any]:
    """Time ``bd.predict`` looped and vectorised on ``config``; the row's figures."""
    model, guide, x, width = build(config)
    model.to(device)
    guide.to(device)
    x = x.to(device)
    runs: dict[Any, Callable[[], Any]] = {
        p: functools.partial(
            bd.predict, model, guide, x, num_samples=config.samples, parallel=p, batch_size=config.batch_size
        )
        for p in (False, True, "auto")
    }
    floors = hand_written(model, guide, x)
    for name, fn in (floors or {}).items():
        runs[name] = functools.partial(torch.no_grad()(fn), x, config.samples, config.batch_size)
    times = _alternate(runs, repeats, device)
    looped, vectorised = times[False], times[True]
    best = min((times[k], k) for k in floors) if floors else None
    model.eval()
    picked = auto_parallel(model, guide, x[: config.batch_size], config.samples)
    gaussian = bd.methods.get(config.method).capabilities.lrt
    params = sum(p.numel() for n, p in guide.named_parameters() if n.endswith("weight"))
    return {
        "config": config,
        "looped": looped,
        "vectorised": vectorised,
        "ratio": looped / vectorised,
        "auto": times["auto"],
        "floor": best,  # (seconds, "sequential" or "vectorised") of the faster hand-written loop, or None
        "auto_per_pass": config.samples if picked is True else int(picked),
        "activations_mib": config.samples * config.batch_size * width * 4 / 2**20,
        "weights_mib": (config.samples if gaussian else 1) * params * 4 / 2**20,
    }


def hand_written(model: bd.Likelihood, guide: bd.DropoutGuide, x: torch.Tensor) -> dict[str, Any] | None:
    """The floor of an MLP's MC prediction: the same network and law written with plain torch, one pass per network
    (``"sequential"``) and the S networks in one pass (``"vectorised"``); ``None`` for other networks and methods.

    ``bernoulli``: each layer ``F.dropout(x, p)`` (inverted, the layer's rate) and ``F.linear`` with the guide's point
    weights.  Gaussian weights (``sparse-vd``, ``vbd``, ``vd``): each network's weights drawn as ``loc + scale * eps``
    from the guide's Normal sites, then ``F.linear`` (sequential) or one batched matrix product per layer
    (vectorised).  Both return the class probabilities averaged over the networks, ``(N, C)``.

    Returns
    -------
    dict or None
        ``"sequential"`` and ``"vectorised"``: functions of ``(x, num_samples, batch_size)``.
    """
    layers = [m for m in model.modules() if isinstance(m, bd.nn.Linear)]
    methods = {layer.method.name for layer in layers}
    if not layers or len(layers) != len(list(bd.nn.bayesian_layers(model))):
        return None
    relu = [True] * (len(layers) - 1) + [False]
    if methods <= {"bernoulli"}:
        weights = [guide.layer_guide(layer).weight.detach() for layer in layers]
        rates = [cast(BernoulliDropout, layer.method).p for layer in layers]

        def one(xb: torch.Tensor) -> torch.Tensor:
            for w, b, p, act in zip(weights, [m.bias for m in layers], rates, relu):
                xb = F.linear(F.dropout(xb, p, training=p > 0), w, b)
                xb = xb.relu() if act else xb
            return xb.softmax(-1)

        def sequential(x: torch.Tensor, s: int, batch: int) -> torch.Tensor:
            return torch.cat([torch.stack([one(xb) for _ in range(s)]).mean(0) for xb in x.split(batch)])

        def vectorised(x: torch.Tensor, s: int, batch: int) -> torch.Tensor:
            return torch.cat([one(xb.repeat(s, 1)).unflatten(0, (s, -1)).mean(0) for xb in x.split(batch)])

        return {"sequential": sequential, "vectorised": vectorised}
    trace = pyro.poutine.trace(guide).get_trace(x[:1])  # the guide's weight laws
    normals = []
    for layer in layers:
        fn = base_distribution(cast(torch.distributions.Distribution, trace.nodes[layer.site("weight")]["fn"]))
        if not isinstance(fn, torch.distributions.Normal):
            return None
        normals.append((fn.loc.detach(), fn.scale.detach(), layer.bias))

    def sequential_g(x: torch.Tensor, s: int, batch: int) -> torch.Tensor:
        total = torch.zeros(len(x), layers[-1].out_features, dtype=x.dtype, device=x.device)
        for _ in range(s):
            ws = [loc + scale * torch.randn_like(loc) for loc, scale, _ in normals]
            for i, xb in enumerate(x.split(batch)):
                for w, (_, _, b), act in zip(ws, normals, relu):
                    xb = F.linear(xb, w, b)
                    xb = xb.relu() if act else xb
                total[i * batch : i * batch + len(xb)] += xb.softmax(-1)
        return total / s

    def vectorised_g(x: torch.Tensor, s: int, batch: int) -> torch.Tensor:
        ws = [
            loc + scale * torch.randn((s, *loc.shape), dtype=loc.dtype, device=loc.device) for loc, scale, _ in normals
        ]
        out = []
        for xb in x.split(batch):
            h = xb.expand(s, *xb.shape)
            for w, (_, _, b), act in zip(ws, normals, relu):
                h = torch.baddbmm(b if b is not None else h.new_zeros(()), h, w.transpose(1, 2))
                h = h.relu() if act else h
            out.append(h.softmax(-1).mean(0))
        return torch.cat(out)

    return {"sequential": sequential_g, "vectorised": vectorised_g}


PER_PASS = (2, 5, 10, 25)  #: networks per vectorised pass timed by :func:`measure_per_pass` (besides 1 and S)


def measure_per_pass(
    config: Config, device: torch.device, repeats: int = 3, per_pass: Sequence[int] = PER_PASS
) -> dict[str, Any]:
    """Time ``bd.predict(..., parallel=k)`` for one network per pass, each ``k`` of ``per_pass`` below S, and all S
    in one pass: what ``parallel="auto"``'s count on a CPU rests on.  Medians after a warm-up, alternating.

    Returns
    -------
    dict
        ``config`` and ``seconds``: ``{k: median seconds}``, ``k = 1`` one pass per network, ``k = S`` all at once.
    """
    model, guide, x, _ = build(config)
    model.to(device)
    guide.to(device)
    x = x.to(device)
    counts = [1, *(k for k in per_pass if 1 < k < config.samples), config.samples]
    runs: dict[Any, Callable[[], Any]] = {
        k: functools.partial(
            bd.predict,
            model,
            guide,
            x,
            num_samples=config.samples,
            parallel=False if k == 1 else k,
            batch_size=config.batch_size,
        )
        for k in counts
    }
    return {"config": config, "seconds": _alternate(runs, repeats, device)}


PARTS = ("mc", "per-pass", "weight-scaling")  #: the sections of the record: MC rows, networks per pass, the rule
WEIGHT_SCALING_SECONDS = 0.05  #: :func:`measure_weight_scaling` times loops of calls lasting at least this long


def measure_weight_scaling(config: Config, device: torch.device, repeats: int = 5) -> dict[str, Any]:
    """Time ``bd.predict(..., rule="weight-scaling")`` against its floor, one plain forward pass per batch of the
    test-time network it keeps (:func:`~bayesdrop.infer.plain.weight_scaling_network`, the module of
    :func:`bayesdrop.compress.mean_module`) and a softmax, alternating, medians after a warm-up,
    each timing a loop of as many calls as last :data:`WEIGHT_SCALING_SECONDS` (a digits pass takes half a
    millisecond, within the timer's and the machine's noise).

    Returns
    -------
    dict
        ``config``, ``bd`` and ``plain`` (median seconds of a prediction of the inputs) and ``ratio`` (bd / plain).
    """
    model, guide, x, _ = build(config)
    model.to(device)
    guide.to(device)
    x = x.to(device)
    # the very module bd.predict runs (weight_scaling_network's cache): what differs is bd.predict's own work
    plain = weight_scaling_network(model, guide)

    def floor() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([plain(xb).softmax(-1) for xb in x.split(config.batch_size)])

    runs = {
        "bd": lambda: bd.predict(model, guide, x, rule="weight-scaling", batch_size=config.batch_size),
        "plain": floor,
    }
    one = _alternate({"plain": floor}, 1, device)["plain"]  # calls per timing: a sub-millisecond call is noise
    times = _alternate(runs, repeats, device, calls=max(1, math.ceil(WEIGHT_SCALING_SECONDS / one)))
    ours, floor_s = times["bd"], times["plain"]
    return {"config": config, "bd": ours, "plain": floor_s, "ratio": ours / floor_s}


def _cells(r: dict[str, Any]) -> str:
    c: Config = r["config"]
    return (
        f"| {c.dataset} | {c.network} | {c.method} | {c.samples} | {c.batch_size} | {r['looped']:.3f} | "
        f"{r['vectorised']:.3f} | {r['ratio']:.2f}x | {r['auto']:.3f} ({r['auto_per_pass'] or 'one'}) | "
        + (f"{r['floor'][0]:.3f} ({r['floor'][1]}) | {r['auto'] / r['floor'][0]:.2f}x | " if r["floor"] else "| | ")
        + f"{r['activations_mib']:.0f} | {r['weights_mib']:.1f} |"
    )


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/predict_speed.md") -> int:
    """The command line of ``benchmarks/predict_speed.py``: measure every row and write the Markdown record.

    Returns
    -------
    int
        The exit status, 0.
    """
    ap = script_parser(__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(default_out))
    ap.add_argument(
        "--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="the sections to measure (default: all)"
    )
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be a positive int")
    device = bd.infer.resolve_device(args.device)
    lines = [
        "# Monte Carlo prediction: vectorised draws against one pass per network",
        "",
        f"Device: {device_name(device)}.  `bd.predict(..., num_samples=S, batch_size=B)` with `parallel=False` (one "
        "forward pass per drawn network: of the plain modules, `bd.infer.plain`, for networks that draw nothing per "
        "example) and `parallel=True` (the S networks in one `pyro.plate`, folded into the "
        f"batch axis); median of {args.repeats} timed calls each, alternating, after one warm-up call of each ("
        f"{_clock_words(device)}).  "
        "Ratio: looped time over vectorised time (above 1: the vectorised pass is faster).  Default: "
        '`parallel="auto"`, `bd.predict`\'s default, and in brackets what it chose (networks per vectorised pass, '
        "or one pass per network).  Hand-written: the faster of two plain-torch loops of the same MLP and law, one "
        "pass per network and the S networks in one pass (`hand_written`), and `bd.predict`'s default over it "
        "(target: at most 1.10x).  Memory of one pass: the "
        "widest layer's activations for S x B examples (float32), and the weights the draws hold (S copies for "
        "Gaussian weights, one for point estimates).",
        f"Command: `{quoted_command('benchmarks/predict_speed.py', list(argv) if argv is not None else sys.argv[1:])}`",
        "",
    ]
    if "mc" in args.parts:
        lines += [
            "| data | network | method | S | B | looped s | vectorised s | ratio | default s | hand-written s | "
            "default / hand-written | activations MiB | weights MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [_cells(measure(c, device, args.repeats)) for c in CONFIGS]
    if "per-pass" in args.parts:
        swept = [measure_per_pass(c, device, args.repeats) for c in CONFIGS]
        counts = sorted({k for r in swept for k in r["seconds"] if k not in (1, r["config"].samples)})
        lines += [
            "",
            "## Networks per pass",
            "",
            "`bd.predict(..., parallel=k)`: seconds with one pass per network, and each count k over it (below 1: "
            "faster), all S networks in one pass last; medians of the same repeats.",
            "",
            "| data | network | method | S | one per pass s | " + " | ".join(f"k = {k}" for k in counts) + " | all S |",
            "|---|---|---|---|---|" + "---|" * (len(counts) + 1),
        ]
        for r in swept:
            c, sec = r["config"], r["seconds"]
            cells = [f"{sec[k] / sec[1]:.2f}" if k in sec else "" for k in [*counts, c.samples]]
            lines.append(
                f"| {c.dataset} | {c.network} | {c.method} | {c.samples} | {sec[1]:.3f} | " + " | ".join(cells) + " |"
            )
    if "weight-scaling" in args.parts:
        scaled = [measure_weight_scaling(c, device, args.repeats) for c in CONFIGS]
        lines += [
            "",
            '## The deterministic rule: `rule="weight-scaling"` against one plain forward pass',
            "",
            '`bd.predict(..., rule="weight-scaling", batch_size=B)` (the cached plain module of '
            "`bd.compress.mean_module`) against calling that module on each batch and taking the softmax: seconds per "
            f"call, median of {args.repeats} timings each, alternating, after a warm-up, each timing a loop of as "
            f"many calls as last {WEIGHT_SCALING_SECONDS * 1000:.0f} ms.  Target: at most 1.10x.",
            "",
            "| data | network | method | inputs | B | plain forward s | bd.predict s | ratio |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['config'].dataset} | {r['config'].network} | {r['config'].method} | {r['config'].num_inputs} "
            f"| {r['config'].batch_size} | {r['plain']:.5f} | {r['bd']:.5f} | {r['ratio']:.2f}x |"
            for r in scaled
        ]
    write_results("\n".join(lines), args.out)
    return 0
