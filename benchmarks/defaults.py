"""The defaults matrix, full tier: every registered method under the library's defaults, three seeds.

Protocol (:mod:`bayesdrop.experiments.defaults`): ``bd.models.mlp`` with the data set's widths, ``bd.Classifier`` /
``bd.Regressor``, ``bd.DropoutGuide`` and ``bd.fit`` with every argument at its default except ``epochs`` (the
data set's full budget, the same for every method) and the seed; the floor is a plain PyTorch network of the same
widths (``nn.Dropout(0.5)`` on the hidden units, Adam at torch's default learning rate, the same batch size and
epochs).  Reported: mean and standard deviation over the seeds of the test error (classification, MC predictive)
or of the test RMSE where the training data are (regression), the gap to the floor, the fewest weights kept in a
layer, and the collapse warnings.  ``tests/test_defaults.py`` asserts the same on seed 0.

The convolutional methods (the pool methods and ``cutout``) are judged on the LeNet-5 analog (``--arch lenet5``,
``bd.models.lenet5`` without other noise against the same LeNet-5 in plain PyTorch), into
``benchmarks/results/defaults_cnn.md``; the recurrent methods on the digits read as sequences (``--arch rnn``,
``bd.models.rnn`` against a plain PyTorch LSTM), into ``benchmarks/results/defaults_rnn.md``.

Usage::

    python benchmarks/defaults.py [--seeds 3] [--jobs 2] [--datasets digits mnist1d toy-regression]
    python benchmarks/defaults.py --arch lenet5 [--seeds 3] [--jobs 2] [--datasets digits mnist1d]
    python benchmarks/defaults.py --arch rnn [--seeds 3] [--jobs 2]
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


def one(job: tuple[str, str, int, str]) -> dict:
    """One case in a worker process with one thread (``--jobs`` of them share the machine)."""
    torch.set_num_threads(1)
    method, dataset, seed, arch = job
    epochs = D.settings(arch)[dataset].full_epochs
    t0 = time.perf_counter()
    case = (
        D.run_floor(dataset, epochs=epochs, seed=seed, arch=arch)
        if method == "floor"
        else D.run_method(method, dataset, epochs=epochs, seed=seed, arch=arch)
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


def markdown(rows: list[dict], command: str, seeds: int, arch: str = "mlp") -> str:
    network = {
        "mlp": "`bd.models.mlp`",
        "lenet5": "`bd.models.lenet5` (no other noise, the method in its place)",
        "rnn": "`bd.models.rnn` (an LSTM read at its last step, on the digits' 8 rows of 8)",
    }[arch]
    floor = {"mlp": "PyTorch", "lenet5": "PyTorch LeNet-5", "rnn": "PyTorch LSTM"}[arch]
    lines = [
        "# The defaults matrix (full tier)" + {"mlp": "", "lenet5": ": LeNet-5 analog", "rnn": ": recurrent"}[arch],
        "",
        f"Command: `{command}`; {device_name(torch.device('cpu'))}, one thread per run.",
        "",
        f"Every method with every default of {network}, `bd.Classifier`/`bd.Regressor`, `bd.DropoutGuide` and "
        f"`bd.fit` except `epochs` and the seed (protocol in `bayesdrop/experiments/defaults.py`).  `floor`: plain "
        f"{floor}, `nn.Dropout(0.5)` on the hidden units, Adam at torch's default lr, same widths, batch and "
        f"epochs.  Mean ± standard deviation over {seeds} seeds.  Tolerances of `tests/test_defaults.py` (seed 0): "
        f"error at most {D.ERROR_TOLERANCE} points above the floor's, RMSE at most {D.RMSE_TOLERANCE:.2f}x the "
        "floor's, at least one weight kept per layer, no collapse warning.",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        setting = D.settings(arch)[dataset]
        regression = dataset == "toy-regression"
        metric = "test RMSE (where the data are)" if regression else "test error %"
        rs = [r for r in rows if r["dataset"] == dataset]
        floor = _stats([r["value"] for r in rs if r["method"] == "floor"])[0]
        lines += [
            "",
            f"## {dataset}: {({'mlp': 'MLP', 'lenet5': 'LeNet-5, dense', 'rnn': 'LSTM'})[arch]} "
            f"{'-'.join(map(str, setting.hidden))} "
            f"hidden, {setting.full_epochs} epochs",
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
    ap.add_argument("--arch", default="mlp", choices=D.ARCHS)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--datasets", nargs="+", default=None, help="default: every data set of the --arch")
    ap.add_argument("--methods", nargs="+", default=None, help="default: every method the --arch judges")
    ap.add_argument("--out", default=None, help="default: results/defaults.md (mlp), results/defaults_cnn.md")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        ap.error("--seeds and --jobs must be positive")
    settings = D.settings(args.arch)
    datasets = args.datasets or list(settings)
    if unknown := sorted(set(datasets) - set(settings)):
        ap.error(f"--datasets {unknown}: --arch {args.arch} takes {sorted(settings)}")
    layer_methods = bd.methods.names(role="layer")
    judged = {
        "mlp": layer_methods,
        "lenet5": bd.methods.names(role="pool") + [m for m in bd.methods.names(role="input") if m not in layer_methods],
        "rnn": bd.methods.names(role="recurrent"),
    }
    methods = args.methods or judged[args.arch]
    for m in methods:
        bd.methods.get(m)  # unknown names fail before any training
        if m not in judged[args.arch]:
            arch = next(a for a, names in judged.items() if m in names)
            ap.error(f"--methods {m!r} is judged with --arch {arch}")
    out = args.out or str(
        RESULTS / {"mlp": "defaults.md", "lenet5": "defaults_cnn.md", "rnn": "defaults_rnn.md"}[args.arch]
    )
    jobs = [(m, d, s, args.arch) for d in datasets for m in ["floor", *methods] for s in range(args.seeds)]
    with cf.ProcessPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(one, jobs))
    command = " ".join(["python benchmarks/defaults.py", *argv])
    write_results(markdown(rows, command, args.seeds, args.arch), out)
    return rows


if __name__ == "__main__":
    main()
