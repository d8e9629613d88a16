"""``write_report``: a markdown summary of a posterior predictive with its figures.

For the command line's ``bayesdrop report`` and anyone who wants one page per run: predictive performance and
calibration, uncertainty, out-of-distribution detection and selective prediction, PSIS-LOO on the training data
checked against the held-out density, dropout rates, training curves and the figures of
:mod:`~bayesdrop.diagnostics.plots`.

Example
-------
>>> bd.diagnostics.write_report(idata, "runs/vbd/report", idata_train=idata_train, history=result.history)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write_json, atomic_write_text, check_path, named_os_error
from . import arviz as _arviz
from .detection import SCORES, accuracy_rejection, ood
from .metrics import _task, calibration, loo_check, loo_summary, uncertainty
from .plots import (
    keep_probabilities,
    plot_dropout_rates,
    plot_entropy,
    plot_forecast_steps,
    plot_loo_pit,
    plot_ood,
    plot_ppc,
    plot_predictive_band,
    plot_reliability,
    plot_training,
)

__all__ = ["write_report"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if math.isfinite(v) else str(v)
    return str(v)


def _draw_count(idata: Any) -> int:
    ll = idata.log_likelihood if "log_likelihood" in _arviz.groups(idata) else idata.posterior_predictive
    return int(ll.sizes["chain"] * ll.sizes["draw"])


def _loo_lines(loo: dict[str, Any], where: str) -> list[str]:
    lines = [
        f"PSIS-LOO and WAIC on the {where} ({loo['n_data_points']} points, {loo['n_samples']} draws):",
        "",
        "| elpd_loo | se | p_loo | lppd | elpd_waic | p_waic |",
        "|---|---|---|---|---|---|",
        f"| {loo['elpd_loo']:.2f} | {loo['se']:.2f} | {loo['p_loo']:.2f} | {loo['lppd']:.2f} | "
        f"{loo['elpd_waic']:.2f} | {loo['p_waic']:.2f} |",
        "",
        f"Pareto k (ArviZ's threshold for {loo['n_samples']} draws: {loo['good_k']:.2f}; max {loo['k_max']:.2f}):",
        "",
        "| k <= 0.5 | 0.5 < k <= 0.7 | 0.7 < k <= 1 | k > 1 | k > threshold |",
        "|---|---|---|---|---|",
        f"| {loo['k<=0.5']} | {loo['0.5<k<=0.7']} | {loo['0.7<k<=1']} | {loo['k>1']} | {loo['k>good_k']} |",
        "",
    ]
    if loo["k>good_k"]:
        lines += [
            f"{loo['k>good_k']} of {loo['n_data_points']} points have k above the threshold: importance sampling "
            "with these draws is unreliable for them, so elpd_loo and p_loo are rough.  PSIS-LOO reweights the "
            "draws as if they came from the exact posterior; a variational q whose spread is not set by the data "
            "(dropout's fixed mask law) is far from it (`docs/analysis.md`).  lppd is the Monte Carlo log "
            "predictive density.  K-fold cross-validation needs no such assumption: `bayesdrop report RUN --kfold "
            "10`, or `bd.diagnostics.kfold`.",
            "",
        ]
    return lines


def write_report(
    idata: Any,
    out_dir: str | os.PathLike,
    *,
    title: str = "bayesdrop report",
    header: Sequence[str] = (),
    train: Any = None,
    n_bins: int = 15,
    idata_train: Any = None,
    history: Any = None,
    kfold: dict[str, Any] | None = None,
) -> Path:
    """Write the plots (PNG) and a markdown summary ``report.md`` into ``out_dir``.

    The summary has the calibration metrics of the test data, the mean uncertainties (of the ``predictions``
    group too, labelled by ``idata.attrs["predictions_label"]`` when set), for a classifier with a ``predictions``
    group the out-of-distribution detection of those inputs (:func:`~bayesdrop.diagnostics.ood`) and the
    accuracy-rejection areas, PSIS-LOO and WAIC with the Pareto k counts, the learned dropout rates per layer and
    links to the plots; ``report_metrics.json`` holds the same numbers.

    Parameters
    ----------
    idata : arviz.InferenceData
        Of the test data, from :func:`~bayesdrop.to_inference_data` (with out-of-distribution inputs as
        ``predictions``, optionally).
    out_dir : str or os.PathLike
        Directory (created, with its parents, if needed; an existing one is written into).
    title : str
        Markdown title.
    header : sequence of str
        Lines written under the title (e.g. the run configuration): a list or tuple of strings, one per line; a
        single string is refused (pass ``[line]``), not written one character per line.
    train : split or (x, y), optional
        Training data for the regression band plot.
    n_bins : int
        Bins of the ECE and the reliability diagram.
    idata_train : arviz.InferenceData, optional
        Of the training data: PSIS-LOO is computed on it and checked against the test lppd per point times the
        number of training points (:func:`~bayesdrop.diagnostics.metrics.loo_check`), and the LOO-PIT of a regression is
        drawn from it.  Without it, LOO is computed on the test points (an estimate of little use: the posterior
        never saw them).
    history : FitResult or dict, optional
        ``FitResult.history`` (or a run's ``history.json``): the training curves.
    kfold : dict, optional
        K-fold cross-validation against the test data (:func:`~bayesdrop.diagnostics.kfold_check`): a section
        of its own, beside PSIS-LOO.

    Returns
    -------
    pathlib.Path
        The path of ``report.md``.

    Raises
    ------
    TypeError
        If ``out_dir`` is not a ``str`` or ``os.PathLike``, ``title`` is not a str, ``header`` is not a sequence
        of strings (a single str included), or ``idata`` is not an InferenceData.
    ValueError
        If ``out_dir`` is empty or exists and is not a directory (a file), or ``idata`` has no posterior
        predictive this report reads.
    OSError
        If ``out_dir`` cannot be created (a parent that is a file, permission denied), naming it.
    """
    out = Path(check_path(out_dir, "out_dir", "the report's directory"))
    if out.exists() and not out.is_dir():
        raise ValueError(f"`out_dir` {str(out)!r} exists and is not a directory: give a directory (created if needed)")
    if not isinstance(title, str):
        raise TypeError(f"`title` must be a str, got {type(title).__name__}")
    lines_of = "`header` must be a sequence of str (a list or tuple, one str per line)"
    if isinstance(header, str):
        raise TypeError(f"{lines_of}, got a str, which would be written one character per line: pass [{header!r}]")
    if not isinstance(header, Sequence) or isinstance(header, bytes):
        raise TypeError(f"{lines_of}, got {type(header).__name__}")
    if bad := [type(line).__name__ for line in header if not isinstance(line, str)]:
        raise TypeError(f"{lines_of}, got a {type(header).__name__} with an item of type {bad[0]}")
    task = _task(idata, "posterior_predictive")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise named_os_error(err, out, "creating the report directory `out_dir`") from err
    cal = calibration(idata, n_bins=n_bins)
    check = loo_check(idata_train, idata) if idata_train is not None else None
    loo = check if check is not None else loo_summary(idata)
    loo_idata = idata_train if idata_train is not None else idata
    has_ood = task == "classification" and "predictions" in _arviz.groups(idata)
    label = str(idata.attrs.get("predictions_label", "predictions"))
    detection = ood(idata) if has_ood else None
    rejection = {s: accuracy_rejection(idata, score=s) for s in SCORES} if task == "classification" else {}
    plots: list[tuple[str, str]] = []

    def save(name: str, caption: str, make: Any) -> None:
        fig = make(path=out / name)
        plots.append((name, caption))
        del fig

    if history is not None:
        save("training.png", "Training curves", lambda path: plot_training(history, path=path))
    if task == "classification":
        save("reliability.png", "Reliability diagram", lambda path: plot_reliability(idata, n_bins=n_bins, path=path))
        save(
            "entropy.png",
            "Entropy and mutual information, correct vs wrong",
            lambda path: plot_entropy(idata, path=path),
        )
        if has_ood:
            save(
                "ood.png",
                f"Out-of-distribution detection (test inputs against {label}) and accuracy-rejection curves",
                lambda path: plot_ood(idata, label_out=label, path=path),
            )
    elif "time" in idata.posterior_predictive["y"].dims:  # a forecast: LOO is per window, the PIT per value
        save("forecast_steps.png", "Forecast by step", lambda path: plot_forecast_steps(idata, path=path))
    else:
        where = "training data" if idata_train is not None else "test data"
        save("loo_pit.png", f"LOO-PIT ({where})", lambda path: plot_loo_pit(loo_idata, path=path))
        if (
            "constant_data" in _arviz.groups(idata)
            and "x" in idata.constant_data
            and idata.constant_data["x"].shape[1] == 1
        ):
            save(
                "predictive_band.png",
                "Predictive band",
                lambda path: plot_predictive_band(idata, train=train, path=path),
            )
    save("ppc.png", "Posterior predictive check", lambda path: plot_ppc(idata, path=path))
    if keep_probabilities(idata):
        save("dropout_rates.png", "Learned dropout rates per layer", lambda path: plot_dropout_rates(idata, path=path))

    lines = [f"# {title}", ""]
    lines += [*header, ""] if header else []
    n_test = idata.observed_data.sizes.get("obs_id", "?")
    scheme = (
        "each draw one network, its masks shared by every input"
        if idata.attrs.get("bayesdrop_noise", "shared") == "shared"
        else "masks drawn afresh for every input"
    )
    lines += [
        f"{_draw_count(idata)} independent draws from the variational posterior (one chain; {scheme}), "
        f"{n_test} test points.",
        "",
    ]
    lines += ["## Predictive performance and calibration", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in cal.items()]
    lines += [""]
    unc_rows = [("test", uncertainty(idata))]
    if "predictions" in _arviz.groups(idata):
        unc_rows.append((label, uncertainty(idata, group="predictions")))
    lines += ["## Uncertainty (means over points)", ""]
    if task == "classification":
        lines += [
            "| inputs | predictive entropy | expected entropy (aleatoric) | mutual information (epistemic) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {u['predictive_entropy'].mean():.4f} | {u['expected_entropy'].mean():.4f} | "
            f"{u['mutual_information'].mean():.4f} |"
            for name, u in unc_rows
        ]
    else:
        lines += ["| inputs | predictive std | epistemic std | aleatoric std |", "|---|---|---|---|"]
        lines += [
            f"| {name} | {u['std'].mean():.4f} | {u['epistemic_std'].mean():.4f} | {u['aleatoric_std'].mean():.4f} |"
            for name, u in unc_rows
        ]
    lines += [""]
    if detection is not None:
        lines += [
            "## Out-of-distribution detection",
            "",
            f"The {detection['n_in']} test inputs against {detection['n_out']} inputs of {label} (the positives); "
            "a higher entropy or mutual information, a lower maximum probability flags an input.",
            "",
            "| score | AUROC | AUPR | FPR at 95% TPR | mean (test) | mean (out of distribution) |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {s} | {detection[s]['auroc']:.4f} | {detection[s]['aupr']:.4f} | {detection[s]['fpr95']:.4f} | "
            f"{detection[s]['mean_in']:.4f} | {detection[s]['mean_out']:.4f} |"
            for s in SCORES
        ]
        lines += [""]
    if rejection:
        lines += [
            "## Selective prediction (test inputs)",
            "",
            "Area under the accuracy-rejection curve (mean accuracy on the kept inputs over the rejected fractions "
            "0 to 1, the most uncertain rejected first); the oracle rejects the errors first.",
            "",
            "| score | area | oracle area | accuracy with nothing rejected |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {s} | {r['area']:.4f} | {r['oracle_area']:.4f} | {r['base_accuracy']:.4f} |"
            for s, r in rejection.items()
        ]
        lines += [""]
    lines += ["## PSIS-LOO and WAIC", ""]
    lines += _loo_lines(loo, "training data" if check is not None else "test data")
    if check is not None:
        verdict = "within" if check["within_3se"] else "outside"
        lines += [
            f"Held-out check: the test lppd per point ({check['test_lppd_per_point']:.4f}) times the "
            f"{check['n_train']} training points is {check['reference']:.2f}; elpd_loo lies {check['z']:+.2f} "
            f"standard errors from it ({verdict} 3; {check['z_combined']:+.2f} with the reference's own standard "
            f"error, {check['reference_se']:.2f}, from {check['n_test']} test points), and p_loo is "
            f"{100 * check['p_loo_fraction']:.1f}% of the training points.",
            "",
        ]
    lines += [f"ArviZ warned: {w}" for w in loo["warnings"]] + ([""] if loo["warnings"] else [])
    if kfold is not None:
        verdict = "within" if kfold["within_3se"] else "outside"
        lines += [
            f"## {kfold['k']}-fold cross-validation",
            "",
            f"elpd_kfold {kfold['elpd_kfold']:.2f} ± {kfold['se']:.2f} over the {kfold['n_data_points']} training "
            f"points, each scored by the model refitted without its fold (Vehtari et al. 2017).  Held-out check: "
            f"{kfold['z']:+.2f} standard errors from the test lppd per point times the training points, "
            f"{kfold['reference']:.2f} ({verdict} 3; {kfold['z_combined']:+.2f} with the reference's own standard "
            f"error).",
            "",
        ]
    rates = keep_probabilities(idata)
    if rates:
        lines += [
            "## Dropout rates (1 - keep probability)",
            "",
            "| layer | per | count | mean | min | max |",
            "|---|---|---|---|---|---|",
        ]
        for layer, da in rates.items():
            values = np.asarray(da.values, dtype=np.float64)
            rate = 1.0 - (values.reshape(-1, *da.shape[2:])[0] if "draw" in da.dims else values).reshape(-1)
            per = "weight" if any(str(d).endswith((".out", ".in")) for d in da.dims) else "unit"
            lines.append(f"| {layer} | {per} | {rate.size} | {rate.mean():.4f} | {rate.min():.4f} | {rate.max():.4f} |")
    lines += ["", "## Plots", ""]
    for name, caption in plots:
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    metrics: dict[str, Any] = {"calibration": cal, "loo": loo}
    if kfold is not None:
        metrics["kfold"] = kfold
    metrics["uncertainty"] = {
        name: {k: float(np.mean(v)) for k, v in u.items() if k != "prediction"} for name, u in unc_rows
    }
    if detection is not None:
        metrics["ood"] = {"label": label, **detection}
    if rejection:
        metrics["accuracy_rejection"] = {
            s: {k: v for k, v in r.items() if k in ("area", "oracle_area", "base_accuracy")}
            for s, r in rejection.items()
        }
    atomic_write_json(out / "report_metrics.json", metrics)
    return path
