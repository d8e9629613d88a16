"""Monte Carlo prediction: the S networks drawn at once (vectorised) against one pass per network, in one process.

For users choosing ``bd.predict(..., parallel=True)`` and for maintainers checking what it buys:
``benchmarks/predict_speed.py`` is the command line that writes ``benchmarks/results/predict_speed.md``;
``tests/test_predict_speed_benchmark.py`` checks the protocol on a small network.

Protocol: for each configuration (:data:`CONFIGS`: a data set's test inputs, a network of ``bd.models`` with one
method, S draws and a batch size), the model and guide are built from seed 0 (untrained: the cost of a pass does
not depend on the weights' values), and ``bd.predict`` runs ``--repeats`` times with ``parallel=False`` (one forward
pass per drawn network, :class:`~bayesdrop.posterior.PosteriorSampler`) and ``parallel=True`` (the S networks in
one ``pyro.plate``, their draws folded into the batch axis: :class:`~bayesdrop.sites.Draws`), alternating, after
one warm-up call of each.  Reported: the median wall time of each and the ratio of the medians (looped over
vectorised: above 1, the vectorised pass is faster), with the memory each pass holds at once, from the layer
widths: the activations of ``S x batch`` examples, and the vectorised Gaussian weights' ``S`` copies.

Usage::

    python benchmarks/predict_speed.py [--device auto] [--repeats 5] [--out benchmarks/results/predict_speed.md]

Example
-------
>>> import torch
>>> from bayesdrop.experiments import predict_speed
>>> row = predict_speed.measure(predict_speed.CONFIGS[0], torch.device("cpu"), repeats=1)  # doctest: +SKIP
>>> row["ratio"]  # looped time over vectorised time  # doctest: +SKIP
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import bayesdrop as bd
from bayesdrop.infer.predict import Parallel, auto_parallel

from .report_io import device_name, quoted_command, script_parser, write_results

__all__ = ["CONFIGS", "Config", "build", "measure", "measure_weight_scaling", "main"]


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
    Config("mnist1d", "mlp", (1024, 1024), "bernoulli", 100, 100, 1000),
    Config("mnist1d", "mlp", (1024, 1024), "sparse-vd", 30, 100, 1000),
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


def measure(config: Config, device: torch.device, repeats: int = 5) -> dict[str, Any]:
    """Time ``bd.predict`` looped and vectorised on ``config``; the row's figures."""
    model, guide, x, width = build(config)
    model.to(device)
    guide.to(device)
    x = x.to(device)
    settings: tuple[Parallel, ...] = (False, True, "auto")
    times: dict[Parallel, list[float]] = {p: [] for p in settings}
    for i in range(repeats + 1):
        for parallel in settings:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            bd.predict(model, guide, x, num_samples=config.samples, parallel=parallel, batch_size=config.batch_size)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:  # the first call of each warms up
                times[parallel].append(time.perf_counter() - start)
    looped, vectorised = statistics.median(times[False]), statistics.median(times[True])
    picked = auto_parallel(model, guide, x[: config.batch_size], config.samples) if device.type == "cuda" else False
    gaussian = bd.methods.get(config.method).capabilities.lrt
    params = sum(p.numel() for n, p in guide.named_parameters() if n.endswith("weight"))
    return {
        "config": config,
        "looped": looped,
        "vectorised": vectorised,
        "ratio": looped / vectorised,
        "auto": statistics.median(times["auto"]),
        "auto_per_pass": config.samples if picked is True else int(picked),
        "activations_mib": config.samples * config.batch_size * width * 4 / 2**20,
        "weights_mib": (config.samples if gaussian else 1) * params * 4 / 2**20,
    }


def measure_weight_scaling(config: Config, device: torch.device, repeats: int = 5) -> dict[str, Any]:
    """Time ``bd.predict(..., rule="weight-scaling")`` against its floor, one plain forward pass per batch of the
    test-time network (:func:`bayesdrop.compress.mean_module`) and a softmax, alternating, medians after a warm-up.

    Returns
    -------
    dict
        ``config``, ``bd`` and ``plain`` (median seconds of a prediction of the inputs) and ``ratio`` (bd / plain).
    """
    model, guide, x, _ = build(config)
    model.to(device)
    guide.to(device)
    x = x.to(device)
    plain = bd.compress.mean_module(model, guide)
    times: dict[str, list[float]] = {"bd": [], "plain": []}

    def floor() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([plain(xb).softmax(-1) for xb in x.split(config.batch_size)])

    runs = {
        "bd": lambda: bd.predict(model, guide, x, rule="weight-scaling", batch_size=config.batch_size),
        "plain": floor,
    }
    for i in range(repeats + 1):
        for name, run in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                times[name].append(time.perf_counter() - start)
    ours, floor_s = statistics.median(times["bd"]), statistics.median(times["plain"])
    return {"config": config, "bd": ours, "plain": floor_s, "ratio": ours / floor_s}


def _cells(r: dict[str, Any]) -> str:
    c: Config = r["config"]
    return (
        f"| {c.dataset} | {c.network} | {c.method} | {c.samples} | {c.batch_size} | {r['looped']:.3f} | "
        f"{r['vectorised']:.3f} | {r['ratio']:.2f}x | {r['auto']:.3f} ({r['auto_per_pass'] or 'one'}) | "
        f"{r['activations_mib']:.0f} | {r['weights_mib']:.1f} |"
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
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be a positive int")
    device = bd.infer.resolve_device(args.device)
    rows = [measure(c, device, args.repeats) for c in CONFIGS]
    lines = [
        "# Monte Carlo prediction: vectorised draws against one pass per network",
        "",
        f"Device: {device_name(device)}.  `bd.predict(..., num_samples=S, batch_size=B)` with `parallel=False` (one "
        "forward pass per drawn network) and `parallel=True` (the S networks in one `pyro.plate`, folded into the "
        f"batch axis); median of {args.repeats} timed calls each, alternating, after one warm-up call of each.  "
        "Ratio: looped time over vectorised time (above 1: the vectorised pass is faster).  Default: "
        '`parallel="auto"`, `bd.predict`\'s default, and in brackets what it chose (networks per vectorised pass, '
        "or one pass per network).  Memory of one pass: the "
        "widest layer's activations for S x B examples (float32), and the weights the draws hold (S copies for "
        "Gaussian weights, one for point estimates).",
        f"Command: `{quoted_command('benchmarks/predict_speed.py', list(argv) if argv is not None else sys.argv[1:])}`",
        "",
        "| data | network | method | S | B | looped s | vectorised s | ratio | default s | activations MiB "
        "| weights MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_cells(r) for r in rows]
    scaled = [measure_weight_scaling(c, device, args.repeats) for c in CONFIGS]
    lines += [
        "",
        '## The deterministic rule: `rule="weight-scaling"` against one plain forward pass',
        "",
        '`bd.predict(..., rule="weight-scaling", batch_size=B)` (the cached plain module of '
        "`bd.compress.mean_module`) against calling that module on each batch and taking the softmax; median of "
        f"{args.repeats} calls each, alternating, after a warm-up.  Target: at most 1.10x.",
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
