"""``write_report``: a markdown summary of a posterior predictive with its figures.

For the command line's ``bayesdrop report`` and anyone who wants one page per run: predictive performance and
calibration, uncertainty, LOO, dropout rates and the figures of :mod:`~bayesdrop.diagnostics.plots`.

Example
-------
>>> bd.diagnostics.write_report(idata, "runs/vbd/report")
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import _draws, _task, calibration, loo_summary, uncertainty
from .plots import (
    plot_dropout_rates,
    plot_entropy,
    plot_forecast_steps,
    plot_loo_pit,
    plot_ppc,
    plot_predictive_band,
    plot_reliability,
)

__all__ = ["write_report"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if math.isfinite(v) else str(v)
    return str(v)


def write_report(
    idata: Any,
    out_dir: str | os.PathLike,
    *,
    title: str = "bayesdrop report",
    header: Sequence[str] = (),
    train: Any = None,
    n_bins: int = 15,
) -> Path:
    """Write the plots (PNG) and a markdown summary ``report.md`` into ``out_dir``.

    The summary has the calibration metrics, the mean uncertainties (of the
    ``predictions`` group too, labelled by ``idata.attrs["predictions_label"]``
    when set), PSIS-LOO and WAIC with the Pareto k counts, the learned dropout
    rates per layer and links to the plots; ``report_metrics.json`` holds the
    same numbers.

    Parameters
    ----------
    idata : arviz.InferenceData
        From :func:`to_inference_data`.
    out_dir : path
        Directory (created if needed).
    title : str
        Markdown title.
    header : sequence of str
        Lines written under the title (e.g. the run configuration).
    train : split or (x, y), optional
        Training data for the regression band plot.
    n_bins : int
        Bins of the ECE and the reliability diagram.

    Returns
    -------
    pathlib.Path
        The path of ``report.md``.
    """
    task = _task(idata, "posterior_predictive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cal = calibration(idata, n_bins=n_bins)
    loo = loo_summary(idata)
    plots: list[tuple[str, str]] = []

    def save(name: str, caption: str, make: Any) -> None:
        fig = make(path=out / name)
        plots.append((name, caption))
        del fig

    if task == "classification":
        save("reliability.png", "Reliability diagram", lambda path: plot_reliability(idata, n_bins=n_bins, path=path))
        save(
            "entropy.png",
            "Entropy and mutual information, correct vs wrong",
            lambda path: plot_entropy(idata, path=path),
        )
    elif "time" in idata.posterior_predictive["y"].dims:  # a forecast: LOO is per window, the PIT per value
        save("forecast_steps.png", "Forecast by step", lambda path: plot_forecast_steps(idata, path=path))
    else:
        save("loo_pit.png", "LOO-PIT", lambda path: plot_loo_pit(idata, path=path))
        if "constant_data" in idata.groups() and "x" in idata.constant_data and idata.constant_data["x"].shape[1] == 1:
            save(
                "predictive_band.png",
                "Predictive band",
                lambda path: plot_predictive_band(idata, train=train, path=path),
            )
    save("ppc.png", "Posterior predictive check", lambda path: plot_ppc(idata, path=path))
    save("dropout_rates.png", "Learned dropout rates per layer", lambda path: plot_dropout_rates(idata, path=path))

    lines = [f"# {title}", ""]
    lines += [*header, ""] if header else []
    n_draws = idata.posterior.sizes["draw"] * idata.posterior.sizes["chain"]
    lines += [
        f"{n_draws} independent draws from the variational posterior (one chain), "
        f"{idata.observed_data.sizes['obs_id'] if 'obs_id' in idata.observed_data.sizes else '?'} test points.",
        "",
    ]
    lines += ["## Predictive performance and calibration", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in cal.items()]
    lines += [""]
    unc_rows = [("test", uncertainty(idata))]
    if "predictions" in idata.groups():
        unc_rows.append(
            (str(idata.attrs.get("predictions_label", "predictions")), uncertainty(idata, group="predictions"))
        )
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
    lines += [
        "",
        "## PSIS-LOO and WAIC",
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
            f"{loo['k>good_k']} of {loo['n_data_points']} points have k above the threshold: "
            "importance sampling with these draws is unreliable for them, so elpd_loo and p_loo are rough "
            "(with per-example masks PSIS treats the masks as posterior draws; see `LOO on dropout draws` in "
            "bayesdrop.diagnostics).  lppd is the Monte Carlo log predictive density.",
            "",
        ]
    lines += [f"ArviZ warned: {w}" for w in loo["warnings"]] + ([""] if loo["warnings"] else [])
    lines += [
        "## Dropout rates (1 - keep probability)",
        "",
        "| layer | units | mean | min | max |",
        "|---|---|---|---|---|",
    ]
    for v in idata.posterior.data_vars:
        if str(v).endswith(".keep_prob"):
            rate = 1.0 - _draws(idata.posterior[v])[0].reshape(-1)
            lines.append(
                f"| {str(v)[: -len('.keep_prob')]} | {rate.size} | {rate.mean():.4f} | {rate.min():.4f} | {rate.max():.4f} |"
            )
    lines += ["", "## Plots", ""]
    for name, caption in plots:
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    metrics = {"calibration": cal, "loo": loo}
    metrics["uncertainty"] = {
        name: {k: float(np.mean(v)) for k, v in u.items() if k != "prediction"} for name, u in unc_rows
    }
    (out / "report_metrics.json").write_text(json.dumps(metrics, indent=1))
    return path
