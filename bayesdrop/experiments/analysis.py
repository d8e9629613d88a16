r"""PSIS-LOO on posterior draws against the held-out density, and out-of-distribution detection, on digits and the
toy regression.

For maintainers and for users who read ``bayesdrop report``'s LOO and OOD sections: ``benchmarks/analysis.py`` is
the command line that writes ``benchmarks/results/analysis.md``; ``tests/test_analysis.py`` checks the bounds at
a small budget.

Protocol.  Digits: the default MLP (``bd.models.mlp(64, [300, 100], 10, method)``) trained by ``bd.fit``'s
defaults (10 epochs, batch 128, lr 1e-2 decayed linearly, the method's KL warm-up), seeds 0, 1, 2, for
``bernoulli`` (MC dropout), ``vbd`` and ``sparse-vd``.  Then 200 draws from q (seed 0):

* PSIS-LOO (Vehtari et al. 2017) of the 1437 training points, from draws that are posterior samples (each draw one
  network, its masks shared by every input, Gal & Ghahramani 2016: ``noise="shared"``) and, for comparison, from
  draws with a mask per input (``noise="per-example"``);
* the reference: the lppd per point of the 360 test points times 1437, what elpd_loo estimates; ``z`` is the
  difference in ArviZ's standard errors of elpd_loo, ``z (both SEs)`` divides by both standard errors (the
  reference's own, from 360 points, is the larger);
* out-of-distribution detection of 360 inputs of uniform noise of the inputs' shape on their range [0, 1]: AUROC of
  the mutual information, the predictive entropy and the maximum probability.

The bounds checked: :math:`|z| \le 3` and :math:`p_\mathrm{loo} < 0.1\, n`; mutual-information AUROC >= 0.9 for
``bernoulli``.  Toy regression: ``bayesdrop train --dataset toy-regression`` with its defaults (MC dropout,
``mlp:300,100``, 50 epochs) then ``bayesdrop report --kfold 10``; the report's elpd_loo against the same bound, the
reference from the test points inside the training inputs' support (the test inputs span [-5, 5], the gap and
beyond the training range included: new points drawn like the training points, what elpd estimates, lie inside).
K-fold cross-validation (Vehtari et al. 2017, section 2.3; ``bd.diagnostics.kfold``, 10 folds, the row's training
recipe refitted on each 9 folds with the optimisation steps of the fit on all points) against the same reference: :math:`|z| \le 3`.

Usage::

    python benchmarks/analysis.py [--seeds 0,1,2] [--methods bernoulli,vbd,sparse-vd] [--num-samples 200]
                                  [--kfold 10] [--out benchmarks/results/analysis.md]

Example
-------
>>> from bayesdrop.experiments import analysis
>>> row = analysis.digits_row("vbd", seed=0)  # doctest: +SKIP
>>> row["z"], row["p_loo_fraction"], row["auroc_mi"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import bayesdrop as bd

from .compare import uniform_noise
from .report_io import device_name, quoted_command, script_parser, write_results

__all__ = ["digits_row", "toy_row", "run", "to_markdown", "main"]

METHODS = ("bernoulli", "vbd", "sparse-vd")


def digits_row(method: str, seed: int = 0, num_samples: int = 200, kfold: int = 10) -> dict[str, Any]:
    """Train the default MLP with ``method`` on digits (``bd.fit`` defaults, ``seed``) and measure PSIS-LOO of the
    training data (shared and per-example draws) and ``kfold``-fold cross-validation (0: none) against the test
    lppd times n, and OOD detection of uniform noise.  Returns one row (the keys of :func:`to_markdown`)."""
    data = bd.data.load("digits")

    def build(num_data: int) -> tuple[bd.Likelihood, bd.DropoutGuide]:
        torch.manual_seed(seed)
        model = bd.Classifier(bd.models.mlp(64, [300, 100], 10, method=method), num_data=num_data)
        return model, bd.DropoutGuide(model)

    model, guide = build(len(data.train))
    t0 = time.perf_counter()
    bd.fit(model, guide, data.train, seed=seed, progress=False)
    seconds = time.perf_counter() - t0
    noise = uniform_noise(data.train.x, len(data.test.x), seed=seed)
    idata = bd.to_inference_data(model, guide, data.test, num_samples, predictions=noise, seed=0)
    shared = bd.diagnostics.loo_check(bd.to_inference_data(model, guide, data.train, num_samples, seed=0), idata)
    per_example = bd.diagnostics.loo_check(
        bd.to_inference_data(model, guide, data.train, num_samples, seed=0, noise="per-example"), idata
    )
    detection = bd.diagnostics.ood(idata)
    cal = bd.diagnostics.calibration(idata)
    cv = _kfold_columns(
        bd.diagnostics.kfold_check(
            bd.diagnostics.kfold(build, data.train, kfold, num_samples=num_samples, seed=seed, progress=False), idata
        )
        if kfold
        else None
    )
    return {
        "data": "digits",
        "method": method,
        "seed": seed,
        "test accuracy": cal["accuracy"],
        "test nll": cal["nll"],
        **{k: shared[k] for k in ("elpd_loo", "se", "p_loo", "reference", "reference_se", "z", "z_combined")},
        **{k: shared[k] for k in ("p_loo_fraction", "within_3se", "k>good_k", "n_train")},
        "per-example elpd_loo": per_example["elpd_loo"],
        "per-example p_loo": per_example["p_loo"],
        "auroc_mi": detection["mutual_information"]["auroc"],
        "auroc_entropy": detection["predictive_entropy"]["auroc"],
        "auroc_max_probability": detection["max_probability"]["auroc"],
        "fit seconds": seconds,
        **cv,
    }


def _kfold_columns(check: dict[str, Any] | None) -> dict[str, Any]:
    """The K-fold entries of a row (NaN without K-fold)."""
    keys = ("elpd_kfold", "se", "z", "k")
    if check is None:
        return {f"kfold {key}": float("nan") for key in keys}
    return {f"kfold {key}": check[key] for key in keys}


def _command(*argv: str) -> None:
    """``bayesdrop *argv`` as a user runs it, in a process of its own (its report is not shown here)."""
    done = subprocess.run([sys.executable, "-m", "bayesdrop.cli", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`bayesdrop {' '.join(argv)}` failed (exit {done.returncode}):\n{done.stderr[-2000:]}")


def toy_row(seed: int = 0, num_samples: int = 200, kfold: int = 10) -> dict[str, Any]:
    """``bayesdrop train --dataset toy-regression`` (its defaults, ``--seed``) then ``bayesdrop report --kfold
    kfold``: the report's PSIS-LOO and K-fold (``report_metrics.json``) against the lppd per point of the test
    points inside the training inputs' support (not the gap, not beyond their range) times n."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "toy"
        _command("train", "--dataset", "toy-regression", "--seed", str(seed), "--quiet", "--out", str(run))
        _command("report", str(run), "--num-samples", str(num_samples), "--kfold", str(kfold))
        metrics = json.loads((run / "report_metrics.json").read_text())
        # the test inputs span [-5, 5], the gap and beyond the training range included; elpd of the training
        # points estimates the density of new points drawn like them: the reference takes the test points there
        idata = bd.diagnostics.load_netcdf(run / "inference_data.nc")
    loo, cal = metrics["loo"], metrics["calibration"]
    data = bd.data.load("toy-regression")
    x = idata.constant_data["x"].values[:, 0]
    (lo, hi), (g_lo, g_hi) = data.x_range or (-3.0, 3.0), data.gap or (0.0, 0.0)
    inside = idata.isel(obs_id=((x >= lo) & (x <= hi) & ((x <= g_lo) | (x >= g_hi))).nonzero()[0])
    n = loo["n_data_points"]
    ref = bd.diagnostics.metrics.against_reference(loo["elpd_loo"], loo["se"], n, inside)
    loo = {**loo, **ref}
    cv = metrics.get("kfold")
    if cv is not None:
        cv = {**cv, **bd.diagnostics.metrics.against_reference(cv["elpd_kfold"], cv["se"], n, inside)}
    return {
        "data": "toy-regression",
        "method": "bernoulli",
        "seed": seed,
        "test accuracy": float("nan"),
        "test nll": cal["nll"],
        **{k: loo[k] for k in ("elpd_loo", "se", "p_loo", "reference", "reference_se", "z", "z_combined")},
        **{k: loo[k] for k in ("p_loo_fraction", "within_3se", "k>good_k", "n_train")},
        "per-example elpd_loo": float("nan"),
        "per-example p_loo": float("nan"),
        "auroc_mi": float("nan"),
        "auroc_entropy": float("nan"),
        "auroc_max_probability": float("nan"),
        "fit seconds": float("nan"),
        **_kfold_columns(cv),
    }


def run(
    methods: Sequence[str] = METHODS,
    seeds: Sequence[int] = (0, 1, 2),
    num_samples: int = 200,
    toy: bool = True,
    kfold: int = 10,
) -> list[dict[str, Any]]:
    """Every (method, seed) on digits, then the toy-regression report for each seed."""
    rows = [digits_row(m, s, num_samples, kfold) for m in methods for s in seeds]
    if toy:
        rows += [toy_row(s, num_samples, kfold) for s in seeds]
    return rows


def _f(v: Any, spec: str) -> str:
    return "–" if isinstance(v, float) and v != v else format(v, spec)


def to_markdown(rows: list[dict[str, Any]], command: str, num_samples: int) -> str:
    """The record: the protocol, one row per run, and which bounds hold."""
    lines = [
        "# PSIS-LOO and K-fold cross-validation against the held-out density; out-of-distribution detection",
        "",
        f"Command: `{command}`.  Machine: {device_name(torch.device('cpu'))}.",
        "",
        f"{num_samples} draws from q (seed 0).  elpd_loo: PSIS-LOO of the training points from draws that are "
        "posterior samples (each draw one network, its masks shared by every input); reference: the test lppd per "
        "point times n_train (toy regression: of the test points inside the training inputs' support); z: "
        "(elpd_loo - reference) / ArviZ's SE; z (both SEs): divided by both standard errors, the reference's own "
        "from the test points; per-example: the same LOO from draws with a mask per input; K-fold: elpd_kfold of "
        "the training points, each scored by the model refitted without its fold (`bd.diagnostics.kfold`: the "
        "same recipe and seed, each fold's fit with the optimisation steps of the fit on all points, the same "
        "draws), and its z against the same reference.  AUROC: the test inputs against as many inputs of uniform "
        "noise of the inputs' shape on [0, 1].",
        "",
        "| data | method | seed | test acc | test NLL | elpd_loo ± se | p_loo (% of n) | k > thr | reference ± se "
        "| z | z (both SEs) | within 3 SE, p_loo < 10 % | per-example elpd_loo (p_loo) | K-fold elpd ± se | z K-fold "
        "| AUROC MI | AUROC H | AUROC max p |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = bool(r["within_3se"]) and r["p_loo_fraction"] < 0.1
        lines.append(
            f"| {r['data']} | {r['method']} | {r['seed']} | {_f(r['test accuracy'], '.4f')} | "
            f"{r['test nll']:.4f} | {r['elpd_loo']:.1f} ± {r['se']:.1f} | {r['p_loo']:.1f} "
            f"({100 * r['p_loo_fraction']:.1f}) | {r['k>good_k']} | {r['reference']:.1f} ± {r['reference_se']:.1f} "
            f"| {r['z']:+.2f} | {r['z_combined']:+.2f} | {'yes' if ok else 'no'} | "
            f"{_f(r['per-example elpd_loo'], '.1f')} ({_f(r['per-example p_loo'], '.1f')}) | "
            f"{_f(r['kfold elpd_kfold'], '.1f')} ± {_f(r['kfold se'], '.1f')} | {_f(r['kfold z'], '+.2f')} | "
            f"{_f(r['auroc_mi'], '.4f')} | {_f(r['auroc_entropy'], '.4f')} | {_f(r['auroc_max_probability'], '.4f')} |"
        )
    lines += ["", "Bounds (runs that meet them, of the runs):", ""]
    for data, method in dict.fromkeys((r["data"], r["method"]) for r in rows):
        group = [r for r in rows if r["data"] == data and r["method"] == method]
        loo_ok = sum(bool(r["within_3se"]) and r["p_loo_fraction"] < 0.1 for r in group)
        both_ok = sum(abs(r["z_combined"]) <= 3 and r["p_loo_fraction"] < 0.1 for r in group)
        line = (
            f"- {data}, {method}: |z| <= 3 and p_loo < 10 % of n in {loo_ok} of {len(group)} "
            f"({both_ok} of {len(group)} with both standard errors)"
        )
        folds = [r for r in group if r["kfold z"] == r["kfold z"]]
        if folds:
            k = ", ".join(sorted({str(r["kfold k"]) for r in folds}))
            line += f"; {k}-fold |z| <= 3 in {sum(abs(r['kfold z']) <= 3 for r in folds)} of {len(folds)}"
        if data == "digits":
            line += f"; mutual-information AUROC >= 0.9 in {sum(r['auroc_mi'] >= 0.9 for r in group)} of {len(group)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/analysis.md") -> None:
    """The command line of ``benchmarks/analysis.py`` (``argv`` and ``default_out`` as
    :func:`~bayesdrop.experiments.report_io.script_parser` says)."""
    parser = script_parser(__doc__)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods (digits)")
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--no-toy", action="store_true", help="skip the toy-regression report")
    parser.add_argument("--kfold", type=int, default=10, help="folds of the K-fold cross-validation (0: none)")
    parser.add_argument("--out", default=str(default_out))
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    if args.num_samples < 1 or not seeds or not methods or args.kfold == 1 or args.kfold < 0:
        parser.error("--num-samples must be positive; --seeds and --methods not empty; --kfold 0 or >= 2")
    rows = run(methods, seeds, args.num_samples, toy=not args.no_toy, kfold=args.kfold)
    command = quoted_command("benchmarks/analysis.py", list(sys.argv[1:] if argv is None else argv))
    write_results(to_markdown(rows, command, args.num_samples), args.out)
