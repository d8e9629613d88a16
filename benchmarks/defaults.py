"""The defaults matrix, full tier: every registered method under the library's defaults, three seeds.

Protocol (:mod:`bayesdrop.experiments.defaults`): ``bd.models.mlp`` with the data set's widths, ``bd.Classifier`` /
``bd.Regressor``, ``bd.DropoutGuide`` and ``bd.fit`` with every argument at its default except ``epochs`` (the
data set's full budget, the same for every method) and the seed; the floor is a plain PyTorch network of the same
widths (``nn.Dropout(0.5)`` on the hidden units, Adam at torch's default learning rate, the same batch size and
epochs).  Reported: mean and standard deviation over the seeds of the test error (classification, MC predictive)
or of the test RMSE where the training data are (regression), the gap to the floor, the fewest weights kept in a
layer, and the collapse warnings.  ``tests/test_defaults.py`` asserts the same on seed 0.

Usage::

    python benchmarks/defaults.py [--seeds 3] [--jobs 2] [--datasets digits mnist1d toy-regression]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import sys
import time

import torch
from _common import RESULTS, device_name, write_results

import bayesdrop as bd
from bayesdrop.experiments import defaults as D


def one(job: tuple[str, str, int]) -> dict:
    """One case in a worker process with one thread (``--jobs`` of them share the machine)."""
    torch.set_num_threads(1)
    method, dataset, seed = job
    epochs = D.SETTINGS[dataset].full_epochs
    t0 = time.perf_counter()
    case = (
        D.run_floor(dataset, epochs=epochs, seed=seed)
        if method == "floor"
        else D.run_method(method, dataset, epochs=epochs, seed=seed)
    )
    value = case.rmse if dataset == "toy-regression" else case.error
    return {"method": method, "dataset": dataset, "seed": seed, "value": value, "kept": case.kept,
            "warnings": len(case.warnings), "seconds": time.perf_counter() - t0}  # fmt: skip


def _within(row: dict, floor: float, regression: bool) -> bool:
    """The assertions of ``tests/test_defaults.py`` for one run against the floor of its seed."""
    close = row["value"] <= (D.RMSE_TOLERANCE * floor if regression else floor + D.ERROR_TOLERANCE)
    return close and row["kept"] >= 1 and row["warnings"] == 0


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def markdown(rows: list[dict], command: str, seeds: int) -> str:
    lines = [
        "# The defaults matrix (full tier)",
        "",
        f"Command: `{command}`; {device_name(torch.device('cpu'))}, one thread per run.",
        "",
        "Every method with every default of `bd.models.mlp`, `bd.Classifier`/`bd.Regressor`, `bd.DropoutGuide` and "
        "`bd.fit` except `epochs` and the seed (protocol in `bayesdrop/experiments/defaults.py`).  `floor`: plain "
        "PyTorch, `nn.Dropout(0.5)` on the hidden units, Adam at torch's default lr, same widths, batch and "
        f"epochs.  Mean ± standard deviation over {seeds} seeds.  Tolerances of `tests/test_defaults.py` (seed 0): "
        f"error at most {D.ERROR_TOLERANCE} points above the floor's, RMSE at most {D.RMSE_TOLERANCE:.2f}x the "
        "floor's, at least one weight kept per layer, no collapse warning.",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        setting = D.SETTINGS[dataset]
        regression = dataset == "toy-regression"
        metric = "test RMSE (where the data are)" if regression else "test error %"
        rs = [r for r in rows if r["dataset"] == dataset]
        floor = _stats([r["value"] for r in rs if r["method"] == "floor"])[0]
        lines += [
            "",
            f"## {dataset}: MLP {'-'.join(map(str, setting.hidden))} hidden, {setting.full_epochs} epochs",
            "",
            f"| method | {metric} | {'ratio to' if regression else 'gap to'} floor (mean) | seeds within the "
            "tolerance of their floor | fewest weights kept in a layer | collapse warnings | s per run |",
            "|---|---|---|---|---|---|---|",
        ]
        floors = {r["seed"]: r["value"] for r in rs if r["method"] == "floor"}
        for method in dict.fromkeys(r["method"] for r in rs):
            mr = [r for r in rs if r["method"] == method]
            mean, sd = _stats([r["value"] for r in mr])
            rel = f"{mean / floor:.2f}x" if regression else f"{mean - floor:+.2f}"
            ok = sum(_within(r, floors[r["seed"]], regression) for r in mr) if method != "floor" else len(mr)
            lines.append(
                f"| {method} | {mean:.{4 if regression else 2}f} ± {sd:.{4 if regression else 2}f} | {rel} | "
                f"{ok} of {len(mr)} | {min(r['kept'] for r in mr)} | {sum(r['warnings'] for r in mr)} | "
                f"{statistics.mean(r['seconds'] for r in mr):.0f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--datasets", nargs="+", default=list(D.SETTINGS), choices=list(D.SETTINGS))
    ap.add_argument("--methods", nargs="+", default=bd.methods.names())
    ap.add_argument("--out", default=str(RESULTS / "defaults.md"))
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        ap.error("--seeds and --jobs must be positive")
    for m in args.methods:
        bd.methods.get(m)  # unknown names fail before any training
    jobs = [(m, d, s) for d in args.datasets for m in ["floor", *args.methods] for s in range(args.seeds)]
    with cf.ProcessPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(one, jobs))
    command = " ".join(["python benchmarks/defaults.py", *argv])
    write_results(markdown(rows, command, args.seeds), args.out)
    return rows


if __name__ == "__main__":
    main()
