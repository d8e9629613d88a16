r"""Figures of a posterior predictive: reliability diagram, posterior predictive checks, LOO-PIT, dropout rates,
entropy of right and wrong predictions, predictive bands of a 1-D regression, out-of-distribution scores and
training curves.

For people who look at a model's uncertainty.  Each function reads an ``arviz.InferenceData`` (the training curves:
``FitResult.history``) and returns a matplotlib figure, written to ``path`` when given; every panel has a title and
labelled axes.

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

from ..checks import check_range, integer
from ..fileio import atomic_write
from . import arviz as _arviz
from .detection import SCORES, _probability_draws, accuracy_rejection, roc_auc, roc_curve, scores
from .inference_data import _batches, _np
from .metrics import (
    _check_group,
    _class_draws,
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
    "plot_training",
    "plot_ood",
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
    if path is not None:  # written atomically: an interrupted report leaves the previous figure
        fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
        atomic_write(path, lambda f: fig.savefig(f, dpi=100, format=fmt))
    return fig


def plot_reliability(idata: Any, *, n_bins: int = 15, path: str | os.PathLike | None = None) -> Any:
    """Reliability diagram: accuracy against confidence per bin, with the bin counts below.

    ``n_bins`` (default 15) is the number of equal-width confidence bins on [0, 1], as in
    :func:`~bayesdrop.diagnostics.reliability`; the title gives the ECE and MCE over these bins.
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
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence (max predictive probability)",
        ylabel="accuracy",
        title=f"Reliability (ECE {rel['ece']:.3f}, MCE {rel['mce']:.3f})",
    )
    ax.legend(loc="upper left", fontsize="small")
    ax_count.bar(centers, rel["count"], width=width, edgecolor="k", color="0.7")
    ax_count.set(xlim=(0, 1), xlabel="confidence (max predictive probability)", ylabel="points", title="Points per bin")
    return _finish(fig, path)


def plot_ppc(
    idata: Any,
    *,
    num_pp_samples: int = 50,
    seed: int = 0,
    interval: float = 0.9,
    path: str | os.PathLike | None = None,
) -> Any:
    """Posterior predictive check of ``y``: replicated data of the draws against the observed data.

    Classification (integer ``y``): the frequency of each class among the observed labels against its frequency
    among the replicated labels of each draw (median and central ``interval`` over the draws): a class the model
    over- or under-predicts lies off its interval.  Regression: ``az.plot_ppc``'s densities of ``num_pp_samples``
    replicated data sets against the observed one.

    ``seed`` (default 0) is the random seed with which ``az.plot_ppc`` picks the ``num_pp_samples`` replicated data
    sets of a regression under ArviZ 0.2x; a classification uses every draw and ArviZ 1.x picks its own, so there it
    has no effect.
    """
    _group(idata, "posterior_predictive", ["y"])
    _group(idata, "observed_data", ["y"])
    num_pp_samples = integer(num_pp_samples, "num_pp_samples", "draws to plot")
    interval = check_range("interval", interval, 0.0, 1.0, lo_open=True, hi_open=True, what="a probability")
    n_draws = idata.posterior_predictive.sizes["chain"] * idata.posterior_predictive.sizes["draw"]
    discrete = np.issubdtype(idata.observed_data["y"].dtype, np.integer)
    if discrete:
        y = np.asarray(idata.observed_data["y"].values).reshape(-1)
        y_rep = _draws(idata.posterior_predictive["y"]).astype(np.int64).reshape(n_draws, -1)
        n_classes = int(max(y.max(initial=0), y_rep.max(initial=0))) + 1
        if "class" in idata.posterior_predictive.coords:
            n_classes = max(n_classes, idata.posterior_predictive.sizes["class"])
        observed = np.bincount(y, minlength=n_classes) / len(y)
        replicated = np.stack([np.bincount(r, minlength=n_classes) / len(r) for r in y_rep])
        lo, mid, hi = np.quantile(replicated, [(1 - interval) / 2, 0.5, (1 + interval) / 2], axis=0)
        classes = np.arange(n_classes)
        fig, axes = _figure(1, 1, (max(5.0, 0.5 * n_classes + 2.0), 4.0))
        ax = axes[0, 0]
        ax.bar(classes, observed, color="0.8", edgecolor="k", label="observed")
        ax.errorbar(
            classes,
            mid,
            yerr=[mid - lo, hi - mid],
            fmt="o",
            color="tab:blue",
            capsize=3,
            label=f"replicated: median and {100 * interval:g}% interval over {n_draws} draws",
        )
        ax.set(
            xticks=classes,
            xlabel="class",
            ylabel="frequency",
            title="Posterior predictive check: class frequencies",
            ylim=(0, None),
        )
        ax.legend(fontsize="small")
        return _finish(fig, path)
    fig, axes = _figure(1, 1, (6.0, 4.0))
    _arviz.plot_ppc(
        idata,
        ax=axes[0, 0],
        var_names=["y"],
        num_pp_samples=min(num_pp_samples, n_draws),
        random_seed=seed,
        kind="kde",
    )
    axes[0, 0].set(title="Posterior predictive check", xlabel="y", ylabel="density")
    return _finish(fig, path)


def plot_loo_pit(idata: Any, *, ecdf: bool = False, path: str | os.PathLike | None = None) -> Any:
    """``az.plot_loo_pit`` for a regression predictive (LOO-PIT values should look uniform).

    ``ecdf`` (default False) plots the ECDF of the LOO-PIT values minus the uniform CDF instead of their density
    against the uniform one.
    """
    if _task(idata, "posterior_predictive") != "regression":
        raise ValueError("`idata` holds a classification predictive; LOO-PIT is plotted for regression")
    _group(idata, "log_likelihood", ["y"])
    fig, axes = _figure(1, 1, (5.0, 4.0))
    with warnings.catch_warnings():
        # ArviZ's PSIS warning about large Pareto k: reported by loo_summary and the report
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        _arviz.plot_loo_pit(idata, ax=axes[0, 0], y="y", ecdf=ecdf)
    axes[0, 0].set(
        title="LOO-PIT (uniform if calibrated)",
        xlabel="LOO probability integral transform",
        ylabel="ECDF minus uniform CDF" if ecdf else "density",
    )
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


def keep_probabilities(idata: Any) -> dict[str, Any]:
    """The ``{layer}.keep_prob`` variables of ``idata``, by layer: from ``point_estimates`` (the rates of every
    registered method are point estimates) or, for random rates, their draws in ``posterior``."""
    out = {}
    for group in ("point_estimates", "posterior"):
        if group in _arviz.groups(idata):
            ds = _arviz.group(idata, group)
            out.update({str(v)[: -len(".keep_prob")]: ds[v] for v in ds.data_vars if str(v).endswith(".keep_prob")})
    return out


def plot_dropout_rates(idata: Any, *, path: str | os.PathLike | None = None) -> Any:
    """Histogram of the dropout rates :math:`1 - \\text{keep}` of each layer (``{layer}.keep_prob``), per input
    unit, or per weight for methods with a rate per weight."""
    rates = keep_probabilities(idata)
    if not rates:
        raise ValueError("`idata` has no `{layer}.keep_prob` variables (point_estimates or posterior)")
    fig, axes = _figure(1, len(rates), (3.5, 3.0))
    bins = np.linspace(0, 1, 21)
    for ax, (layer, da) in zip(axes[0], rates.items()):
        random = "draw" in da.dims
        values = _draws(da) if random else np.asarray(da.values, dtype=np.float64)[None]
        rate = 1.0 - values.reshape(-1)
        per_weight = any(str(d).endswith((".out", ".in")) for d in da.dims)
        # weights 1/S: the bars count units or weights (averaged over draws when the rates are random)
        ax.hist(rate, bins=bins, weights=np.full(rate.size, 1.0 / len(values)), color="tab:blue", edgecolor="k")
        ax.set(title=f"{layer} (mean {rate.mean():.2f})", xlabel="dropout rate (1 - keep probability)", xlim=(0, 1))
        ax.set_ylabel("weights" if per_weight else "units")
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
        ax.set(xlabel=label, ylabel="density", title=label.split(" (")[0].capitalize() + ": correct vs wrong")
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
    predictive (bisection on its CDF), one band per probability mass in
    ``levels`` (default ``(0.5, 0.9)``; each in (0, 1), drawn widest first).
    Observed targets are drawn for the
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
        passes = list(_batches(train, "train", None, labelled=True)[1])
        if not passes or passes[0][1] is None:
            raise ValueError("`train` must include targets y")
        xt, yt = (np.concatenate([_np(b[i]) for b in passes]) for i in (0, 1))
        ax.scatter(xt[:, 0], yt, s=8, color="tab:orange", alpha=0.8, label="training points")
    ax.set(xlabel="x", ylabel="y", title="Posterior predictive")
    ax.legend(fontsize="small")
    return _finish(fig, path)


_CURVES = (  # panel title, y label, history keys (training then held-out)
    ("Loss", "-ELBO per training point (nats)", ("elbo",)),
    ("Negative log-likelihood", "NLL per point (nats)", ("nll", "test_nll")),
    ("KL term", "KL (nats)", ("kl",)),
    ("Accuracy", "accuracy", ("train_acc", "test_acc")),
    ("RMSE", "RMSE", ("train_rmse", "test_rmse")),
)


def plot_training(history: Any, *, path: str | os.PathLike | None = None) -> Any:
    """Training curves per epoch from ``FitResult.history`` (or the ``history.json`` of a run): the loss
    (-ELBO per point), the NLL (training, and held-out when ``fit`` had ``test`` data), the KL term and the
    accuracy (or RMSE); a panel per quantity the history has."""
    hist = getattr(history, "history", history)
    if not isinstance(hist, dict) or not hist:
        raise TypeError(f"`history` must be a FitResult or its non-empty history dict, got {type(history).__name__}")
    panels = [(t, yl, [k for k in keys if hist.get(k)]) for t, yl, keys in _CURVES]
    panels = [p for p in panels if p[2]]
    if not panels:
        raise ValueError(f"`history` has none of the curves {[k for *_, keys in _CURVES for k in keys]}")
    fig, axes = _figure(1, len(panels), (3.6, 3.0))
    for ax, (title, ylabel, keys) in zip(axes[0], panels):
        for key in keys:
            values = np.asarray(hist[key], dtype=np.float64)
            label = "held-out" if key.startswith("test_") else "training"
            ax.plot(np.arange(1, len(values) + 1), values, marker="o" if len(values) < 30 else None, label=label)
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        if len(keys) > 1:
            ax.legend(fontsize="small")
    return _finish(fig, path)


_SCORE_LABELS = {
    "predictive_entropy": "predictive entropy (nats)",
    "mutual_information": "mutual information (nats)",
    "max_probability": "max predictive probability",
}


def plot_ood(
    idata_in: Any,
    idata_out: Any = None,
    *,
    score: str = "mutual_information",
    label_out: str = "out of distribution",
    path: str | os.PathLike | None = None,
) -> Any:
    """Out-of-distribution detection by ``score``: its histogram on in- and out-of-distribution inputs, the ROC
    curve of every score (AUROC in the legend) and, when ``idata_in`` is an InferenceData with observed labels,
    the accuracy-rejection curves of the in-distribution inputs (``idata_in`` and ``idata_out`` as
    :func:`~bayesdrop.diagnostics.ood`'s).  ``label_out`` (default ``"out of distribution"``) names the
    out-of-distribution inputs in the histogram's legend."""
    if score not in SCORES:
        raise ValueError(f"`score` must be one of {SCORES}, got {score!r}")
    if idata_out is None:
        if not _arviz.is_inference_data(idata_in):
            raise ValueError("`idata_out` is required unless `idata_in` is an InferenceData with a predictions group")
        p_in, p_out = _class_draws(idata_in, "posterior_predictive"), _class_draws(idata_in, "predictions")
    else:
        p_in = _probability_draws(idata_in, "idata_in", "posterior_predictive")
        p_out = _probability_draws(idata_out, "idata_out", "posterior_predictive")
    s_in, s_out = scores(p_in), scores(p_out)
    labels = np.r_[np.zeros(p_in.shape[1], dtype=np.int64), np.ones(p_out.shape[1], dtype=np.int64)]
    auroc = {name: roc_auc(labels, np.r_[s_in[name], s_out[name]]) for name in SCORES}
    labelled = _arviz.is_inference_data(idata_in) and "observed_data" in _arviz.groups(idata_in)
    fig, axes = _figure(1, 3 if labelled else 2, (4.2, 3.4))
    ax = axes[0, 0]
    sign = -1.0 if score == "max_probability" else 1.0  # the maximum probability itself, not the negated score
    v_in, v_out = sign * s_in[score], sign * s_out[score]
    bins = np.linspace(min(v_in.min(), v_out.min()), max(v_in.max(), v_out.max()) + 1e-12, 31)
    ax.hist(v_in, bins=bins, density=True, alpha=0.6, color="tab:blue", label=f"in distribution (n={len(v_in)})")
    ax.hist(v_out, bins=bins, density=True, alpha=0.6, color="tab:red", label=f"{label_out} (n={len(v_out)})")
    ax.set(xlabel=_SCORE_LABELS[score], ylabel="density", title=f"Scores (AUROC {auroc[score]:.3f})")
    ax.legend(fontsize="small")
    ax = axes[0, 1]
    for name in SCORES:
        fpr, tpr, _ = roc_curve(labels, np.r_[s_in[name], s_out[name]])
        ax.plot(fpr, tpr, label=f"{_SCORE_LABELS[name].split(' (')[0]} (AUROC {auroc[name]:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(
        xlabel="false-positive rate (in distribution flagged)",
        ylabel="true-positive rate (out of distribution flagged)",
        title="ROC curves",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(fontsize="small", loc="lower right")
    if labelled:
        ax = axes[0, 2]
        curve: dict[str, Any] = {}
        for name in SCORES:
            curve = accuracy_rejection(idata_in, score=name)
            label = f"{_SCORE_LABELS[name].split(' (')[0]} (area {curve['area']:.3f})"
            ax.plot(curve["rejection"], curve["accuracy"], label=label)
        kept = 1.0 - curve["rejection"]
        oracle = np.minimum(1.0, curve["base_accuracy"] / np.maximum(kept, 1e-12))
        ax.plot(curve["rejection"], oracle, "k:", lw=1, label=f"oracle (area {curve['oracle_area']:.3f})")
        ax.set(
            xlabel="fraction rejected (most uncertain first)",
            ylabel="accuracy on the rest",
            title="Accuracy-rejection (in distribution)",
            xlim=(0, 1),
        )
        ax.legend(fontsize="small", loc="lower right")
    return _finish(fig, path)
