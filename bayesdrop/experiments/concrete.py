"""Concrete dropout's learned drop rates (Gal, Hron & Kendall 2017) against a grid search, and as the data grow.

For maintainers and for users deciding whether to learn the drop rate instead of searching for it:
``benchmarks/concrete.py`` is the command line that writes ``benchmarks/results/concrete.md``,
``tests/test_concrete.py`` checks what is written and (marked ``slow``) a reduced version of the claims.

Protocol: an MLP (``bd.models.mlp``) with the hidden widths of the defaults matrix for ``--dataset`` (digits
64-300-100-10, MNIST-1D 40-100-100-10; MNIST's 5000-image subset ``mnist5k`` and MNIST from ``--mnist-dir``:
Srivastava et al.'s 784-1024-1024-10), trained with ``bd.fit``'s defaults (Adam, lr 1e-2 decayed linearly, batch
128) for ``--epochs``, on the data set's training set (1437 digits, 4000 MNIST-1D signals, 4000 ``mnist5k``
images, 60000 MNIST images) less a
validation split of ``--val-fraction`` (stratified by nothing: a random subset, the same for every run), for
``--seeds`` training seeds.

(a) *Learned against the best fixed rate.*  ``concrete`` with its defaults learns one drop rate per layer.  The
    grid is ``bernoulli`` with each ``p`` of ``--grid`` on the hidden units and none on the inputs, under the same
    prior as ``concrete`` (``prior_scale = sqrt(1 - p) / l``, the relation of ``bayesdrop.methods.classic``), so
    that each grid point is Concrete dropout's objective at a fixed ``p``.  The best grid ``p`` has the lowest mean
    validation NLL (MC predictive, ``bd.evaluate``).  Claim: the mean learned ``p`` of each hidden layer is within
    0.1 of it (the input layer, whose rate the grid does not vary, is reported without a claim).
(b) *The learned rate as the data grow.*  ``concrete`` on the first 25 %, 50 % and 100 % of the same training
    examples, with the epochs scaled by 1 / fraction so that every run takes the same number of optimisation steps
    (else the smaller sets would simply move ``p`` less far from its initial 0.1).  Claim (the paper's figure of p
    against the number of training points): the mean ``p`` of each hidden layer decreases as the data grow.

Usage::

    python benchmarks/concrete.py [--dataset {digits,mnist1d,mnist5k,mnist}] [--mnist-dir DIR] [--seeds 3] [--epochs E]
        [--grid 0.1 0.2 0.3 0.4 0.5 0.6]

Example
-------
>>> from bayesdrop.experiments import concrete as C
>>> rows = C.run(seeds=1, epochs=2, grid=(0.1, 0.5), fractions=(0.5, 1.0))  # doctest: +SKIP
>>> print(C.markdown(rows, "python benchmarks/concrete.py"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyro
import torch

import bayesdrop as bd

from ..methods.concrete import LENGTH_SCALE
from .defaults import MLP_HIDDEN
from .report_io import chosen_epochs, dataset_arguments, device_name, script_parser, write_results
from .runs import load_dataset

__all__ = ["DATASETS", "GRID", "FRACTIONS", "TOLERANCE", "splits", "one_run", "run", "summary", "markdown", "main"]

GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # the fixed drop rates of the grid search
FRACTIONS = (0.25, 0.5, 1.0)  # shares of the training examples in (b)
TOLERANCE = 0.1  # |learned p - best grid p| of a hidden layer that counts as found
DATASETS = ("digits", "mnist1d", "mnist5k", "mnist")
# epochs on the full training part (hidden widths: defaults.MLP_HIDDEN); mnist5k's 40 are 1000 steps on its 3200
EPOCHS = {"digits": 100, "mnist1d": 60, "mnist5k": 40, "mnist": 20}
VAL_FRACTION = 0.2


def splits(
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
    dataset: str = "digits",
    mnist_dir: str | os.PathLike[str] | None = None,
) -> tuple[bd.data.Split, bd.data.Split, bd.data.Split]:
    """The training set of ``dataset`` (MNIST from the IDX files in ``mnist_dir``) split into training and
    validation parts (a random permutation drawn from ``seed``), and its test set."""
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {dataset!r}")
    ds = load_dataset(dataset, mnist_dir)
    perm = torch.randperm(len(ds.train), generator=torch.Generator().manual_seed(seed))
    n_val = round(val_fraction * len(ds.train))
    val, train = perm[:n_val], perm[n_val:]
    return (
        bd.data.Split(ds.train.x[train], ds.train.y[train]),
        bd.data.Split(ds.train.x[val], ds.train.y[val]),
        ds.test,
    )


def one_run(
    method: str,
    p: float | None,
    fraction: float,
    seed: int,
    epochs: int,
    val_fraction: float = VAL_FRACTION,
    length_scale: float = LENGTH_SCALE,
    dataset: str = "digits",
    mnist_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train ``concrete`` (``p=None``) or the grid's ``bernoulli`` at ``p`` on the first ``fraction`` of the training
    part of ``dataset``, for ``round(epochs / fraction)`` epochs, with training seed ``seed``; both under the prior
    length-scale ``length_scale`` (``concrete``'s default unless given).

    Returns
    -------
    dict
        ``method``, ``p`` (the grid's rate, NaN for ``concrete``), ``fraction``, ``n`` (training examples), ``seed``,
        ``epochs``, ``length_scale``; ``learned`` (the learned drop rate per layer, empty for ``bernoulli``), ``val_nll``,
        ``test_error`` (%) and ``s`` (training seconds).
    """
    train, val, test = splits(val_fraction, dataset=dataset, mnist_dir=mnist_dir)
    features, classes, hidden_widths = train.x.shape[1], 10, list(MLP_HIDDEN[dataset])
    n = round(fraction * len(train))
    train = bd.data.Split(train.x[:n], train.y[:n])
    pyro.set_rng_seed(seed)  # the initial weights: a run must not depend on the runs before it
    if method == "concrete":
        net = bd.models.mlp(features, hidden_widths, classes, "concrete", length_scale=length_scale)
    else:
        assert p is not None
        hidden = bd.methods.get("bernoulli", p=p, prior_scale=math.sqrt(1 - p) / length_scale)
        inputs = bd.methods.get("bernoulli", p=0.0, prior_scale=1 / length_scale)
        net = bd.models.mlp(features, hidden_widths, classes, hidden, input_method=inputs)
    model = bd.Classifier(net, num_data=n)
    guide = bd.DropoutGuide(model)
    run_epochs = round(epochs / fraction)
    t0 = time.perf_counter()
    with pyro.validation_enabled(False):
        bd.fit(model, guide, train, epochs=run_epochs, seed=seed, progress=False)
    seconds = time.perf_counter() - t0
    pyro.set_rng_seed(seed)
    val_nll = bd.evaluate(model, guide, val, num_samples=100)["nll"]
    test_error = 100 * (1 - bd.evaluate(model, guide, test, num_samples=100)["acc"])
    learned = [1 - float(r[0]) for r in bd.dropout_rates(model, guide).values()] if method == "concrete" else []
    return {
        "method": method, "p": math.nan if p is None else p, "fraction": fraction, "n": n, "seed": seed,
        "epochs": run_epochs, "length_scale": length_scale, "dataset": dataset,
        "arch": "-".join(map(str, (features, *hidden_widths, classes))), "learned": learned, "val_nll": val_nll, "test_error": test_error, "s": seconds,
    }  # fmt: skip


def run(
    seeds: int = 3,
    epochs: int = 100,
    grid: Sequence[float] = GRID,
    fractions: Sequence[float] = FRACTIONS,
    val_fraction: float = VAL_FRACTION,
    length_scale: float = LENGTH_SCALE,
    dataset: str = "digits",
    mnist_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Every run of (a) and (b) on ``dataset``: ``concrete`` at every fraction (the full one serving (a)) and the
    grid on the full training part, for every seed; one row per run."""
    args = (val_fraction, length_scale, dataset, mnist_dir)
    rows = [one_run("concrete", None, f, s, epochs, *args) for f in fractions for s in range(seeds)]
    rows += [one_run("bernoulli", p, 1.0, s, epochs, *args) for p in grid for s in range(seeds)]
    return rows


def _mean_rates(rows: Sequence[dict[str, Any]]) -> list[float]:
    return [statistics.mean(r["learned"][i] for r in rows) for i in range(len(rows[0]["learned"]))]


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The claims from the rows of :func:`run`.

    Returns
    -------
    dict
        ``grid`` (per grid ``p``: mean validation NLL and test error), ``best_p``, ``learned`` (mean learned rate
        per layer on the full training part), ``concrete_val_nll``, ``concrete_test_error``, ``found`` (per hidden
        layer: ``|learned - best_p| <= TOLERANCE``), ``by_fraction`` (fraction to mean learned rate per layer) and
        ``decreasing`` (per hidden layer: the mean rate falls strictly from each fraction to the next larger).
    """
    concrete = [r for r in rows if r["method"] == "concrete"]
    full = max(r["fraction"] for r in concrete)
    grid: dict[float, dict[str, float]] = {}
    for p in sorted({r["p"] for r in rows if r["method"] == "bernoulli"}):
        rs = [r for r in rows if r["method"] == "bernoulli" and r["p"] == p]
        grid[p] = {
            "val_nll": statistics.mean(r["val_nll"] for r in rs),
            "test_error": statistics.mean(r["test_error"] for r in rs),
        }
    best_p = min(grid, key=lambda p: grid[p]["val_nll"]) if grid else math.nan
    at_full = [r for r in concrete if r["fraction"] == full]
    learned = _mean_rates(at_full)
    fractions = sorted({r["fraction"] for r in concrete})
    by_fraction = {f: _mean_rates([r for r in concrete if r["fraction"] == f]) for f in fractions}
    hidden = range(1, len(learned))  # the input layer's rate is not what the grid varies
    return {
        "grid": grid,
        "best_p": best_p,
        "learned": learned,
        "concrete_val_nll": statistics.mean(r["val_nll"] for r in at_full),
        "concrete_test_error": statistics.mean(r["test_error"] for r in at_full),
        "found": {i: abs(learned[i] - best_p) <= TOLERANCE for i in hidden},
        "by_fraction": by_fraction,
        "decreasing": {
            i: all(by_fraction[a][i] > by_fraction[b][i] for a, b in zip(fractions, fractions[1:])) for i in hidden
        },
    }


def _layer(i: int) -> str:
    return "input" if i == 0 else f"hidden {i}"


def markdown(rows: Sequence[dict[str, Any]], command: str) -> str:
    """The Markdown record: the two claims (from :func:`summary`), then every run; ``command`` is quoted."""
    s = summary(rows)
    seeds = len({r["seed"] for r in rows})
    full = [r for r in rows if r["method"] == "concrete" and r["fraction"] == max(s["by_fraction"])]
    n, epochs, scale = full[0]["n"], full[0]["epochs"], full[0].get("length_scale", LENGTH_SCALE)
    dataset = full[0].get("dataset", "digits")
    widths = full[0].get("arch", "64-300-100-10")
    lines = [
        f"# Concrete dropout: learned drop rates on {dataset}",
        "",
        f"Command: `{command}`; {device_name(torch.device('cpu'))}.",
        "",
        f"{dataset} {widths} MLP, `bd.fit` defaults, {seeds} seed(s), {n} training examples (the training set "
        f"less a random validation split), {epochs} epochs on the full part, prior length-scale l = {scale:g}; protocol in "
        "`bayesdrop/experiments/concrete.py`.  A layer's p is the drop rate of its *inputs* (layer 0: the data).",
        "",
        "## (a) Learned p against the best fixed p of the grid",
        "",
        "Grid: `bernoulli` with p on the hidden units, none on the inputs, under `concrete`'s prior; best p by mean "
        "validation NLL.",
        "",
        "| grid p | validation NLL | test error % |",
        "|---|---|---|",
    ]
    lines += [f"| {p:g} | {g['val_nll']:.4f} | {g['test_error']:.2f} |" for p, g in s["grid"].items()]
    lines += [
        f"| concrete (learned) | {s['concrete_val_nll']:.4f} | {s['concrete_test_error']:.2f} |",
        "",
        f"Best grid p: {s['best_p']:g}.",
        "",
        f"| layer | mean learned p | best grid p | within {TOLERANCE:g} |",
        "|---|---|---|---|",
    ]
    for i, p in enumerate(s["learned"]):
        found = "no claim (the grid keeps the inputs)" if i == 0 else ("yes" if s["found"][i] else "**no**")
        lines.append(f"| {_layer(i)} | {p:.3f} | {s['best_p']:g} | {found} |")
    lines += [
        "",
        "## (b) Learned p as the training set grows",
        "",
        "Epochs scaled by 1 / fraction: every run takes the same number of optimisation steps.",
        "",
        "| layer | " + " | ".join(f"{100 * f:g} % (n = {round(f * n)})" for f in s["by_fraction"]) + " | decreasing |",
        "|---|" + "---|" * len(s["by_fraction"]) + "---|",
    ]
    for i in range(len(s["learned"])):
        trend = "no claim" if i == 0 else ("yes" if s["decreasing"][i] else "**no**")
        lines.append(
            f"| {_layer(i)} | " + " | ".join(f"{ps[i]:.3f}" for ps in s["by_fraction"].values()) + f" | {trend} |"
        )
    lines += [
        "",
        "## Runs",
        "",
        "| method | grid p | fraction | n | seed | epochs | learned p per layer | validation NLL | test error % | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = "" if r["p"] != r["p"] else f"{r['p']:g}"
        learned = ", ".join(f"{x:.3f}" for x in r["learned"])
        lines.append(
            f"| {r['method']} | {p} | {r['fraction']:g} | {r['n']} | {r['seed']} | {r['epochs']} | {learned} | "
            f"{r['val_nll']:.4f} | {r['test_error']:.2f} | {r['s']:.0f} |"
        )
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/concrete.md"
) -> list[dict[str, Any]]:
    """The command line of ``benchmarks/concrete.py``: run (a) and (b) and write the record.

    ``argv`` and ``default_out`` as :func:`~bayesdrop.experiments.report_io.script_parser` says.

    Returns
    -------
    list of dict
        One row per run, as :func:`one_run`.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = script_parser(__doc__)
    dataset_arguments(ap, DATASETS, "default: 100 for digits, 60 for MNIST-1D, 40 for mnist5k, 20 for MNIST")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--grid", type=float, nargs="+", default=list(GRID))
    ap.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    ap.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    ap.add_argument("--length-scale", type=float, default=LENGTH_SCALE)
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    epochs = chosen_epochs(ap, args, EPOCHS)
    rows = run(
        args.seeds, epochs, args.grid, args.fractions, args.val_fraction, args.length_scale, args.dataset,
        args.mnist_dir,
    )  # fmt: skip
    command = " ".join(["python benchmarks/concrete.py", *argv])
    write_results(markdown(rows, command), args.out)
    return rows
