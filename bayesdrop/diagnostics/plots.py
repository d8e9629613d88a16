"""Figures of a posterior predictive: reliability diagram, posterior predictive checks, LOO-PIT, dropout rates,
entropy of right and wrong predictions, predictive bands of a 1-D regression.

For people who look at a model's uncertainty.  Each function reads an ``arviz.InferenceData`` and returns a
matplotlib figure, written to ``path`` when given.

Example
-------
>>> bd.diagnostics.plot_reliability(idata, path="reliability.png")
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import arviz as _arviz
from .inference_data import _data, _np
from .metrics import (
    _check_group,
    _draws,
    _group,
    _observed,
    _regression_draws,
    _task,
    reliability,
    uncertainty,
)

__all__ = [
    "plot_reliability",
    "plot_ppc",
    "plot_loo_pit",
    "plot_dropout_rates",
    "plot_entropy",
    "plot_predictive_band",
    "plot_forecast_steps",
]


def _figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (5.0, 4.0)) -> tuple[Any, Any]:
    """A figure independent of pyplot (no backend or global state involved) and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _finish(fig: Any, path: str | os.PathLike | None) -> Any:
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)
    return fig


def plot_reliability(idata: Any, *, n_bins: int = 15, path: str | os.PathLike | None = None) -> Any:
    """Reliability diagram: accuracy against confidence per bin, with the bin counts below.

    Returns the ``matplotlib.figure.Figure``; saved as PNG to ``path`` when given.
    """
    rel = reliability(idata, n_bins=n_bins)
    fig, axes = _figure(2, 1, (5.0, 2.6))
    ax, ax_count = axes[0, 0], axes[1, 0]
    edges = rel["edges"]
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    filled = rel["count"] > 0
    ax.bar(centers[filled], rel["accuracy"][filled], width=width[filled], edgecolor="k", label="accuracy")
    ax.bar(
        centers[filled],
        rel["confidence"][filled],
        width=width[filled],
        fill=False,
        edgecolor="tab:red",
        hatch="//",
        label="mean confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(
        xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=f"Reliability (ECE {rel['ece']:.3f}, MCE {rel['mce']:.3f})"
    )
    ax.legend(loc="upper left", fontsize="small")
    ax_count.bar(centers, rel["count"], width=width, edgecolor="k", color="0.7")
    ax_count.set(xlim=(0, 1), xlabel="confidence (max predictive probability)", ylabel="points")
    return _finish(fig, path)


def plot_ppc(idata: Any, *, num_pp_samples: int = 50, seed: int = 0, path: str | os.PathLike | None = None) -> Any:
    """``az.plot_ppc`` of ``y``: replicated data of the draws against the observed data."""
    _group(idata, "posterior_predictive", ["y"])
    _group(idata, "observed_data", ["y"])
    if not isinstance(num_pp_samples, int) or num_pp_samples < 1:
        raise ValueError(f"`num_pp_samples` must be a positive int, got {num_pp_samples!r}")
    n_draws = idata.posterior_predictive.sizes["chain"] * idata.posterior_predictive.sizes["draw"]
    discrete = np.issubdtype(idata.observed_data["y"].dtype, np.integer)
    fig, axes = _figure(1, 1, (6.0, 4.0))
    _arviz.plot_ppc(
        idata,
        ax=axes[0, 0],
        var_names=["y"],
        num_pp_samples=min(num_pp_samples, n_draws),
        random_seed=seed,
        kind="kde",
    )
    axes[0, 0].set_title("Posterior predictive check" + (" (class labels)" if discrete else ""))
    return _finish(fig, path)


def plot_loo_pit(idata: Any, *, ecdf: bool = False, path: str | os.PathLike | None = None) -> Any:
    """``az.plot_loo_pit`` for a regression predictive (LOO-PIT values should look uniform)."""
    if _task(idata, "posterior_predictive") != "regression":
        raise ValueError("`idata` holds a classification predictive; LOO-PIT is plotted for regression")
    _group(idata, "log_likelihood", ["y"])
    fig, axes = _figure(1, 1, (5.0, 4.0))
    with warnings.catch_warnings():
        # ArviZ's PSIS warning about large Pareto k: reported by loo_summary and the report
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        _arviz.plot_loo_pit(idata, ax=axes[0, 0], y="y", ecdf=ecdf)
    axes[0, 0].set_title("LOO-PIT")
    return _finish(fig, path)


def plot_forecast_steps(idata: Any, *, path: str | os.PathLike | None = None) -> Any:
    """A forecast's predictive by step (``Regressor(horizon=H)``: ``y`` with a ``time`` dimension): the mean
    predictive standard deviation, its epistemic and aleatoric parts, and the RMSE of the predictive mean, each
    averaged over the test points, against the step ahead."""
    if _task(idata, "posterior_predictive") != "regression" or "time" not in idata.posterior_predictive["y"].dims:
        raise ValueError("`idata` must hold a forecast: a regression predictive whose `y` has a `time` dimension")
    u = uncertainty(idata)
    mu, _ = _regression_draws(idata, "posterior_predictive")
    y = _observed(idata, mu.shape[1:]).astype(np.float64)
    steps = np.asarray(idata.posterior_predictive["time"].values)
    fig, axes = _figure(1, 1, (5.5, 4.0))
    ax = axes[0, 0]
    ax.plot(steps, u["std"].mean(0), "o-", label="predictive std")
    ax.plot(steps, u["epistemic_std"].mean(0), "s--", label="epistemic std (spread of the draws)")
    ax.plot(steps, u["aleatoric_std"].mean(0), ":", color="0.4", label="aleatoric std (noise per step)")
    ax.plot(steps, np.sqrt(((mu.mean(0) - y) ** 2).mean(0)), "^-", color="k", label="RMSE of the mean")
    ax.set_xlabel("steps ahead")
    ax.set_ylabel("target units")
    ax.set_ylim(0, None)
    ax.set_title("Forecast by step")
    ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_dropout_rates(idata: Any, *, path: str | os.PathLike | None = None) -> Any:
    """Histogram of the dropout rates :math:`1 - \\text{keep}` of each layer (``posterior.*.keep_prob``)."""
    post = _group(idata, "posterior")
    names = [v for v in post.data_vars if str(v).endswith(".keep_prob")]
    if not names:
        raise ValueError("`idata`: the posterior has no `{layer}.keep_prob` variables")
    fig, axes = _figure(1, len(names), (3.5, 3.0))
    bins = np.linspace(0, 1, 21)
    for ax, name in zip(axes[0], names):
        draws = _draws(post[name])
        rate = 1.0 - draws.reshape(-1)
        # weights 1/S: the bars count units (averaged over draws when the rates are random)
        ax.hist(rate, bins=bins, weights=np.full(rate.size, 1.0 / len(draws)), color="tab:blue", edgecolor="k")
        layer = str(name)[: -len(".keep_prob")]
        ax.set(title=f"{layer} (mean {rate.mean():.2f})", xlabel="dropout rate", xlim=(0, 1))
    axes[0, 0].set_ylabel("units")
    return _finish(fig, path)


def plot_entropy(idata: Any, *, path: str | os.PathLike | None = None) -> Any:
    """Predictive entropy and mutual information of correct against wrong predictions."""
    u = uncertainty(idata)
    y = _observed(idata, u["prediction"].shape[:1])
    correct = u["prediction"] == y
    fig, axes = _figure(1, 2, (4.5, 3.5))
    for ax, key, label in (
        (axes[0, 0], "predictive_entropy", "predictive entropy (nats)"),
        (axes[0, 1], "mutual_information", "mutual information (nats)"),
    ):
        v = u[key]
        bins = np.linspace(0, max(float(v.max()), 1e-6), 26)
        for mask, name, color in ((correct, "correct", "tab:green"), (~correct, "wrong", "tab:red")):
            if mask.any():
                ax.hist(
                    v[mask],
                    bins=bins,
                    density=True,
                    alpha=0.5,
                    color=color,
                    label=f"{name} (n={int(mask.sum())}, mean {v[mask].mean():.3f})",
                )
        ax.set(xlabel=label, ylabel="density")
        ax.legend(fontsize="small")
    return _finish(fig, path)


def _mixture_quantiles(mu: np.ndarray, sigma: np.ndarray, q: float, iters: int = 60) -> np.ndarray:
    """Quantile q of each point's Gaussian mixture :math:`\\frac1S\\sum_s N(\\mu_{sn}, \\sigma_n^2)` by bisection."""
    from scipy.special import ndtr

    lo = mu.min(0) - 10 * sigma
    hi = mu.max(0) + 10 * sigma
    for _ in range(iters):
        mid = (lo + hi) / 2
        below = ndtr((mid[None] - mu) / sigma[None]).mean(0) < q
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def plot_predictive_band(
    idata: Any,
    *,
    group: str = "posterior_predictive",
    levels: Sequence[float] = (0.5, 0.9),
    train: Any = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """Predictive mean and central bands of a 1-D regression against x.

    The bands are the exact central intervals of the Gaussian-mixture
    predictive (bisection on its CDF).  Observed targets are drawn for the
    ``posterior_predictive`` group; ``train`` (a split or ``(x, y)``) adds the
    training points.
    """
    group = _check_group(group)
    if _task(idata, group) != "regression":
        raise ValueError("`idata` holds a classification predictive; the band plot is for regression")
    levels = sorted(levels, reverse=True)
    if not levels or not all(0 < m < 1 for m in levels):
        raise ValueError(f"`levels` must be numbers in (0, 1), got {levels!r}")
    const = "constant_data" if group == "posterior_predictive" else "predictions_constant_data"
    x = np.asarray(_group(idata, const, ["x"])["x"].values, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 1:
        raise ValueError(f"`idata`: the band plot needs one input feature, x has shape {x.shape}")
    x = x[:, 0]
    mu, sigma = _regression_draws(idata, group)
    order = np.argsort(x)
    fig, axes = _figure(1, 1, (7.0, 4.0))
    ax = axes[0, 0]
    for i, m in enumerate(levels):
        lo = _mixture_quantiles(mu, sigma, (1 - m) / 2)
        hi = _mixture_quantiles(mu, sigma, (1 + m) / 2)
        ax.fill_between(
            x[order],
            lo[order],
            hi[order],
            color="tab:blue",
            alpha=0.15 + 0.15 * i,
            label=f"{100 * m:g}% central interval",
        )
    ax.plot(x[order], mu.mean(0)[order], color="tab:blue", lw=2, label="predictive mean")
    if group == "posterior_predictive":
        ax.scatter(x, _observed(idata, (len(x),)), s=6, color="k", alpha=0.5, label="test points")
    if train is not None:
        xt, yt = _data(train, "train")
        if yt is None:
            raise ValueError("`train` must include targets y")
        ax.scatter(_np(xt[:, 0]), _np(yt), s=8, color="tab:orange", alpha=0.8, label="training points")
    ax.set(xlabel="x", ylabel="y", title="Posterior predictive")
    ax.legend(fontsize="small")
    return _finish(fig, path)
