r"""Architecture selection with SAL (Srinivas & Babu 2016, section 4.1.5, Table 1).

For maintainers and for users who let SAL choose the widths of a network: ``benchmarks/sal_width.py`` is the command
line that writes ``benchmarks/results/sal_width.md``, ``tests/test_generalized.py`` runs the protocol at a small
budget.

Protocol: train a LeNet-like network (conv 20 - conv 50 - fc 500 - fc classes,
as in Table 1) with Stochastic Architecture Learning on every layer but the
first (whose gates would select input pixels, not units), for
``b / a`` in {1, 10, 100}; then prune the units (feature maps, hidden units)
whose learned keep probability ``k`` falls below the sharp rise of the sorted
gate values (:func:`bayesdrop.methods.generalized.sharp_rise`, Fig. 2i) and
report the architecture, the test error of the pruned deterministic network
(re-scaling rule, section 2.4) and its parameter count next to the dense
baseline (the same network without dropout).

The Beta parameters keep ``sqrt(a b) = 0.09`` fixed while ``b / a`` grows, so
that both a < 1 and b < 1 (SAL): (0.09, 0.09), (0.028, 0.28), (0.009, 0.9).
With eq. 7 the loss pushes a gate towards 0 with weight ``1 - a`` and towards 1
with weight ``1 - b``; a larger ``b / a`` therefore means more gates at 0
(smaller networks).  The prior strength (see the module docstring of
:mod:`bayesdrop.methods.generalized`) is ``strength = N / 300`` for a training
set of N examples (the Beta prior of each gate weighs as much as 1/300 of the
data, whatever the data-set size), switched on gradually over the first third
of the epochs (``kl_warmup``): a stronger or sudden prior pushes every gate of
the 500-unit layer to 0 before the likelihood has singled out the useful
units, and the network collapses.  Gates start at 0.5 (the ``sal`` preset).

Data: ``digits`` (8x8 images, padded convolutions), ``mnist1d`` (signals of
length 40 as 1 x 40 images with 1 x 5 kernels), and MNIST when ``--mnist-dir``
is given (the 28 x 28 LeNet-5 of Table 1).

Usage::

    python benchmarks/sal_width.py [--epochs 40] [--datasets digits,mnist1d] [--mnist-dir DIR]
                                   [--out benchmarks/results/sal_width.md]

Example
-------
>>> import bayesdrop as bd
>>> from bayesdrop.experiments import sal_width
>>> row = sal_width.train_one(bd.data.load("digits"), 100, epochs=40)  # SAL with b / a = 100  # doctest: +SKIP
>>> row.architecture, row.error, row.params  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyro
import torch

import bayesdrop as bd
from bayesdrop.data import Split

from .report_io import device_name, write_results

__all__ = [
    "GEOMETRIC_MEAN",
    "RATIOS",
    "STRENGTH_PER_EXAMPLE",
    "Row",
    "hidden_widths",
    "layer_widths",
    "main",
    "run",
    "sal_prior",
    "to_markdown",
    "train_one",
]

RATIOS = (1, 10, 100)
GEOMETRIC_MEAN = 0.09  # sqrt(a b) of the SAL priors
STRENGTH_PER_EXAMPLE = 1 / 300  # strength = N / 300


def sal_prior(ratio: float, geometric_mean: float = GEOMETRIC_MEAN) -> tuple[float, float]:
    """``(a, b)`` with ``b / a = ratio`` and ``sqrt(a b) = geometric_mean`` (both < 1 for SAL)."""
    a, b = geometric_mean / math.sqrt(ratio), geometric_mean * math.sqrt(ratio)
    if not (0 < a < 1 and 0 < b < 1):
        raise ValueError(f"`ratio` {ratio} gives a = {a:.3g}, b = {b:.3g}; SAL needs both in (0, 1)")
    return a, b


def _image_split(ds: bd.data.Dataset, split: str) -> Split:
    x = ds.images(split)
    if x.dim() == 3:  # (N, C, L) signals -> (N, C, 1, L)
        x = x.unsqueeze(-2)
    return Split(x, getattr(ds, split).y)


@dataclass
class Row:
    """One line of the results table."""

    dataset: str
    method: str
    architecture: str
    error: float
    params: int
    seconds: float
    a: float | None = None
    b: float | None = None
    error_unpruned: float | None = None


def train_one(
    ds: bd.data.Dataset,
    ratio: float | None,
    *,
    epochs: int,
    lr: float = 5e-3,
    batch_size: int = 128,
    seed: int = 0,
    strength_per_example: float = STRENGTH_PER_EXAMPLE,
    kl_warmup: int | None = None,
) -> Row:
    """Train the dense baseline (``ratio=None``) or SAL with ``b / a = ratio``; prune; evaluate."""
    assert ds.num_classes is not None, "a classification data set"
    train, test = _image_split(ds, "train"), _image_split(ds, "test")
    n = len(train)
    if ratio is None:
        method, a, b = bd.methods.get("bernoulli", p=0.0), None, None
    else:
        a, b = sal_prior(ratio)
        method = bd.methods.get("sal", a=a, b=b, strength=strength_per_example * n)
    pyro.set_rng_seed(seed)
    # conv(20) - conv(50) - fc(500) - fc(classes), SAL on every layer but the first (its gates would select pixels)
    net = bd.models.lenet5(
        tuple(train.x.shape[1:]), ds.num_classes, method, input_method=bd.methods.get("bernoulli", p=0.0)
    )
    model = bd.Classifier(net, num_data=n)
    guide = bd.DropoutGuide(model)
    t0 = time.perf_counter()
    warm = epochs // 3 if kl_warmup is None else kl_warmup
    # The protocol recorded in results/sal_width.md (constant lr, warm-up over a third), not the library defaults.
    bd.fit(model, guide, train, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, kl_warmup=warm, lr_decay=None,
           progress=False)  # fmt: skip
    seconds = time.perf_counter() - t0
    threshold = None if ratio is None else "sharp-rise"
    widths = layer_widths(model, guide, threshold)
    unpruned = 1 - bd.evaluate(model, guide, test, rule="weight-scaling")["acc"]
    if min(widths) == 0:  # a layer lost every unit: the network is constant, nothing to export
        error, params = _error(model, guide, test, threshold), 0
    else:
        pruned = bd.compress.prune(model, guide, threshold=threshold)
        with torch.no_grad():
            error = (pruned(test.x).argmax(-1) != test.y).float().mean().item()
        params = sum(p.numel() for p in pruned.parameters())
    arch = "-".join(map(str, [*widths, ds.num_classes]))
    name = "baseline" if ratio is None else f"SAL [b/a = {ratio:g}]"
    return Row(ds.name, name, arch, error, params, seconds, a, b, unpruned)


def layer_widths(model: bd.Classifier, guide: bd.DropoutGuide, threshold: str | None) -> list[int]:
    """Units kept in conv 1, conv 2 and fc 1 (Table 1's architecture without the output layer).

    Gates sit on each layer's inputs: those of conv 2 select conv 1's feature
    maps, those of fc 1 (one per flattened position) keep a feature map of
    conv 2 when any of its positions survives, those of fc 2 select fc 1's units.
    """
    keeps = []
    for _, layer, params in guide.pairs()[1:]:
        keep = layer.kept_weights(layer.method.keep_masks(layer, params, threshold))["weight"]
        keeps.append(keep.any(0).reshape(keep.shape[1], -1).any(-1) if keep.dim() > 2 else keep.any(0))
    conv1, fc1_inputs, fc1 = keeps
    conv2 = fc1_inputs.reshape(50, -1).any(-1)
    return [int(conv1.sum()), int(conv2.sum()), int(fc1.sum())]


@torch.no_grad()
def _error(model: bd.Classifier, guide: bd.DropoutGuide, test: Split, threshold: str | None) -> float:
    out = guide.mean_network(pruned=True, threshold=threshold)(test.x)
    return (out.argmax(-1) != test.y).float().mean().item()


def run(
    datasets: Sequence[str] = ("digits", "mnist1d"),
    *,
    epochs: int = 40,
    ratios: Sequence[float] = RATIOS,
    mnist_dir: str | None = None,
    seed: int = 0,
    verbose: bool = False,
) -> list[Row]:
    """The Table 1 protocol on each data set: the dense baseline, then SAL for each ratio."""
    loaded = [bd.data.load(name) for name in datasets]
    if mnist_dir is not None:
        loaded.append(bd.data.load_mnist(mnist_dir))
    rows = []
    for ds in loaded:
        for ratio in (None, *ratios):
            row = train_one(ds, ratio, epochs=epochs, seed=seed)
            if verbose:
                print(row, file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def hidden_widths(row: Row) -> list[int]:
    """The widths of the pruned layers (feature maps of conv 1 and 2, fc units), without the output."""
    return [int(w) for w in row.architecture.split("-")[:-1]]


def to_markdown(rows: Sequence[Row], epochs: int) -> str:
    """The Markdown record of ``rows`` trained for ``epochs``, next to the paper's MNIST figures."""
    lines = [
        "# SAL architecture selection (Srinivas & Babu 2016, Table 1 protocol)",
        "",
        f"`python benchmarks/sal_width.py --epochs {epochs}`; {device_name(torch.device('cpu'))}.  LeNet-like conv(20)-conv(50)-fc(500)-fc; "
        "SAL gates on the inputs of every layer but the first (per feature map for the convolution); "
        "strength = N / 300 (warmed up over the first third of the epochs), gates start at 0.5; units pruned below the sharp rise of sorted k; error of the "
        "pruned deterministic network (re-scaling rule).",
        "",
        "| data | method | a | b | architecture | error % (pruned) | error % (before pruning) | params | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a = "" if r.a is None else f"{r.a:.3g}"
        b = "" if r.b is None else f"{r.b:.3g}"
        params = f"{r.params / 1000:.1f}k"
        assert r.error_unpruned is not None, "set by `train_one`"
        lines.append(
            f"| {r.dataset} | {r.method} | {a} | {b} | {r.architecture} | {100 * r.error:.2f} | "
            f"{100 * r.error_unpruned:.2f} | {params} | {r.seconds:.0f} |"
        )
    lines += [
        "",
        "Paper (MNIST, LeNet 20-50-500-10, 0.82 %): b/a = 1: 18-50-296-10 (0.69 %, 263k); "
        "b/a = 10: 11-33-38-10 (0.84 %, 29.8k); b/a = 100: 7-13-16-10 (1.14 %, 5.9k).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/sal_width.md") -> None:
    """The command line of ``benchmarks/sal_width.py``: the Table 1 protocol on each data set, then the record.

    ``argv`` and ``default_out`` as :func:`~bayesdrop.experiments.report_io.script_parser` says.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--datasets", default="digits,mnist1d", help="comma-separated: digits, mnist1d")
    parser.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(default_out))
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be positive")
    datasets = [d for d in args.datasets.split(",") if d]
    rows = run(datasets, epochs=args.epochs, mnist_dir=args.mnist_dir, seed=args.seed, verbose=True)
    text = to_markdown(rows, args.epochs)
    write_results(text, args.out)
