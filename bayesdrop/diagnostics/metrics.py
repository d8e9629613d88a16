r"""Predictive performance, calibration and uncertainty from an ``arviz.InferenceData``.

For people who evaluate a posterior predictive: accuracy, NLL, Brier score, ECE / MCE (Naeini et al. 2015; Guo et
al. 2017), reliability diagrams' data, PIT and interval coverage for regression, the entropy decomposition into
aleatoric and epistemic parts (Gal 2016; Depeweg et al. 2018) and PSIS-LOO.  Every function reads the
InferenceData only, so it works for every method and for InferenceData built elsewhere with the same variables.
The formulas: ``docs/analysis.md``.

The four headline metrics have one definition each, on arrays of draws, in :mod:`bayesdrop.scoring`, handed on
here under the same names: :func:`nll`, :func:`accuracy`, :func:`expected_calibration_error` and :func:`rmse`.
:func:`calibration` computes them from an InferenceData, the likelihoods' :meth:`~bayesdrop.Likelihood.metrics`
from output draws (so :func:`bayesdrop.evaluate`, ``fit``'s ``test_*`` history, ``bayesdrop train``,
``bayesdrop report`` and ``bayesdrop compare`` report the same numbers for the same draws).

Example
-------
>>> bd.diagnostics.calibration(idata)["ece"]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..scoring import (
    _check_bins,
    _check_probabilities,
    _logmeanexp,
    _reliability,
    accuracy,
    expected_calibration_error,
    nll,
    rmse,
)
from . import arviz as _arviz

__all__ = [
    "nll",
    "accuracy",
    "rmse",
    "expected_calibration_error",
    "calibration",
    "reliability",
    "pit",
    "uncertainty",
    "loo_summary",
    "loo_check",
    "compare_loo",
]

_GROUPS = ("posterior_predictive", "predictions")


def _require_idata(idata: Any) -> None:
    if not _arviz.is_inference_data(idata):
        raise TypeError(
            f"`idata` must be an arviz.InferenceData (see bd.to_inference_data), got {type(idata).__name__}"
        )


def _group(idata: Any, group: str, need: Sequence[str] = ()) -> Any:
    _require_idata(idata)
    if group not in _arviz.groups(idata):
        raise ValueError(f"`idata` has no {group!r} group (groups: {_arviz.groups(idata)})")
    ds = _arviz.group(idata, group)
    missing = [v for v in need if v not in ds]
    if missing:
        raise ValueError(f"`idata`: group {group!r} lacks the variable(s) {missing} (has {list(ds.data_vars)})")
    return ds


def _task(idata: Any, group: str) -> str:
    ds = _group(idata, group)
    if "probs" in ds:
        return "classification"
    if "mu" in ds:
        return "regression"
    raise ValueError(f"`idata`: group {group!r} needs `probs` (classification) or `mu` (regression)")


def _draws(da: Any) -> np.ndarray:
    """Stack (chain, draw) of a DataArray into one leading axis: ``(S, ...)`` float64."""
    if "chain" not in da.dims or "draw" not in da.dims:
        raise ValueError(f"`idata`: variable {da.name!r} must have chain and draw dimensions, has {da.dims}")
    da = da.transpose("chain", "draw", ...)
    return np.asarray(da.values, dtype=np.float64).reshape(-1, *da.shape[2:])


def _observed(idata: Any, shape: tuple[int, ...]) -> np.ndarray:
    y = np.asarray(_group(idata, "observed_data", ["y"])["y"].values)
    if y.shape != shape:
        raise ValueError(f"`idata`: observed_data y has shape {y.shape}, expected {shape}")
    return y


def _class_draws(idata: Any, group: str) -> np.ndarray:
    p = _draws(_group(idata, group, ["probs"])["probs"])
    if p.ndim != 3:
        raise ValueError(f"`idata`: `probs` must be (chain, draw, point, class), got {p.ndim + 1} dimensions")
    return _check_probabilities(p, "idata.probs")


def _regression_draws(idata: Any, group: str) -> tuple[np.ndarray, np.ndarray]:
    mu = _draws(_group(idata, group, ["mu"])["mu"])
    const = "constant_data" if group == "posterior_predictive" else "predictions_constant_data"
    if const not in _arviz.groups(idata) or "noise_scale" not in _arviz.group(idata, const):
        raise ValueError(f"`idata`: a regression predictive needs the observation noise `noise_scale` in {const!r}")
    sigma = np.asarray(_arviz.group(idata, const)["noise_scale"].values, dtype=np.float64)
    if mu.ndim < 2 or sigma.shape != mu.shape[1:]:
        raise ValueError(
            "`idata`: `mu` must be (chain, draw, point, ...) and `noise_scale` (point, ...) with the same dimensions "
            f"after the draws, got {mu.shape}, {sigma.shape}"
        )
    if not (sigma > 0).all():
        raise ValueError("`idata`: `noise_scale` must be > 0")
    return mu, sigma


def _log_likelihood(idata: Any) -> np.ndarray | None:
    """:math:`\\log p(y_n \\mid \\theta_s)` ``(S, N)`` from ``log_likelihood``, if present."""
    if "log_likelihood" not in _arviz.groups(idata) or "y" not in idata.log_likelihood:
        return None
    return _draws(idata.log_likelihood["y"])


def _lppd_points(idata: Any) -> np.ndarray | None:
    """:math:`\\log \\frac1S \\sum_s p(y_n \\mid \\theta_s)` per point from ``log_likelihood``, if present."""
    ll = _log_likelihood(idata)
    return None if ll is None else _logmeanexp(ll, 0)


def _entropy(p: np.ndarray) -> np.ndarray:
    from scipy.special import xlogy

    return -xlogy(p, p).sum(-1)


def _check_group(group: Any) -> str:
    if group not in _GROUPS:
        raise ValueError(f"`group` must be one of {list(_GROUPS)}, got {group!r}")
    return group


def reliability(idata: Any, *, n_bins: int = 15) -> dict[str, Any]:
    """Per-bin accuracy and confidence of a classifier's predictive (the reliability diagram's data).

    Parameters
    ----------
    idata : arviz.InferenceData
        With ``posterior_predictive.probs`` ``(chain, draw, N, C)`` and ``observed_data.y`` ``(N,)``.
    n_bins : int
        Number of equal-width confidence bins; bin b covers ``((b-1)/n_bins, b/n_bins]``.

    Returns
    -------
    dict
        ``edges`` ``(n_bins + 1,)``, ``count``, ``accuracy`` and ``confidence``
        ``(n_bins,)`` (NaN in empty bins), ``ece`` and ``mce`` (floats).
    """
    n_bins = _check_bins(n_bins)
    if _task(idata, "posterior_predictive") != "classification":
        raise ValueError("`idata` holds a regression predictive; reliability diagrams are for classification")
    probs = _class_draws(idata, "posterior_predictive").mean(0)
    return _reliability(probs, _observed(idata, probs.shape[:1]), n_bins)


def _pit(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr((y[None] - mu) / sigma[None]).mean(0)


def pit(idata: Any) -> np.ndarray:
    r"""Probability integral transform :math:`F_n(y_n) = \frac1S \sum_s \Phi((y_n - \mu_{sn}) / \sigma_n)`.

    Exact for the Gaussian-mixture predictive of a regression model; uniform
    on [0, 1] when the predictive is calibrated.

    Parameters
    ----------
    idata : arviz.InferenceData
        With ``posterior_predictive.mu``, ``constant_data.noise_scale`` and ``observed_data.y``.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` values in [0, 1] (``(N, H)`` for a forecast of H steps).
    """
    if _task(idata, "posterior_predictive") != "regression":
        raise ValueError("`idata` holds a classification predictive; PIT is computed for regression")
    mu, sigma = _regression_draws(idata, "posterior_predictive")
    return _pit(mu, sigma, _observed(idata, mu.shape[1:]).astype(np.float64))


def calibration(idata: Any, *, n_bins: int = 15, levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95)) -> dict[str, float]:
    r"""Accuracy and calibration of the posterior predictive against ``observed_data``.

    Classification (from ``posterior_predictive.probs``): ``accuracy``,
    ``nll``, ``brier``, ``ece``, ``mce`` (``n_bins`` equal-width bins) and
    ``mean_confidence``.  Regression (from ``posterior_predictive.mu`` and
    ``constant_data.noise_scale``): ``rmse`` of the predictive mean, ``nll``,
    ``coverage_{100 m}`` for each central interval of mass m in ``levels``,
    ``pit_ks`` (Kolmogorov-Smirnov distance of the PIT values from uniform)
    and ``mean_std``.  Formulas in the module docstring.  For a forecast of H steps per point
    (``Regressor(horizon=H)``) every value counts in ``rmse``, the coverages, ``pit_ks`` and ``mean_std``; ``nll``
    stays per point, the joint density of its H values.

    ``nll`` is :math:`-\frac1N \sum_n \log \frac1S \sum_s p(y_n \mid \theta_s)`,
    from ``log_likelihood`` when present (exact in log space), else from the
    averaged probabilities / the Gaussian mixture.

    Parameters
    ----------
    idata : arviz.InferenceData
    n_bins : int
        Bins of the ECE / MCE (>= 1).
    levels : sequence of float
        Masses in (0, 1) of the central intervals whose coverage is reported.

    Returns
    -------
    dict of str to float
    """
    n_bins = _check_bins(n_bins)
    levels = tuple(levels)
    if not levels or not all(isinstance(m, (int, float)) and 0 < m < 1 for m in levels):
        raise ValueError(f"`levels` must be a non-empty sequence of numbers in (0, 1), got {levels!r}")
    task = _task(idata, "posterior_predictive")
    ll = _log_likelihood(idata)
    if task == "classification":
        draws = _class_draws(idata, "posterior_predictive")
        probs = draws.mean(0)
        y = _observed(idata, probs.shape[:1]).astype(np.int64)
        if y.min() < 0 or y.max() >= probs.shape[1]:
            raise ValueError(f"`idata`: observed labels must lie in [0, {probs.shape[1] - 1}]")
        if ll is None:  # log p(y_n | theta_s) from the stored probabilities
            with np.errstate(divide="ignore"):
                ll = np.log(draws[:, np.arange(len(y)), y])
        onehot = np.eye(probs.shape[1])[y]
        rel = _reliability(probs, y, n_bins)
        return {
            "accuracy": accuracy(draws, y),
            "nll": nll(ll),
            "brier": float(((probs - onehot) ** 2).sum(-1).mean()),
            "ece": rel["ece"],
            "mce": rel["mce"],
            "mean_confidence": float(probs.max(-1).mean()),
            "n_bins": n_bins,
        }
    mu, sigma = _regression_draws(idata, "posterior_predictive")
    y = _observed(idata, mu.shape[1:]).astype(np.float64)
    if ll is None:  # the joint density of each point's values (a forecast's steps)
        from scipy.stats import norm

        ll = norm.logpdf(y[None], mu, sigma[None]).reshape(*mu.shape[:2], -1).sum(-1)
    u = _pit(mu, sigma, y)
    out = {"rmse": rmse(mu, y), "nll": nll(ll)}
    for m in levels:
        out[f"coverage_{100 * m:g}"] = float(((u >= (1 - m) / 2) & (u <= (1 + m) / 2)).mean())
    s = np.sort(u.ravel())
    i = np.arange(1, len(s) + 1)
    out["pit_ks"] = float(max((i / len(s) - s).max(), (s - (i - 1) / len(s)).max()))
    out["mean_std"] = float(np.sqrt(mu.var(0) + sigma**2).mean())
    return out


def uncertainty(idata: Any, *, group: str = "posterior_predictive") -> dict[str, np.ndarray]:
    r"""Per-point predictive uncertainty and its decomposition.

    Classification (from ``probs``), in nats:
    ``predictive_entropy`` :math:`H[\bar p_n]`, ``expected_entropy``
    :math:`\frac1S \sum_s H[p_{sn}]` (aleatoric), ``mutual_information``
    :math:`H[\bar p_n] - \frac1S \sum_s H[p_{sn}]` (epistemic), plus
    ``confidence`` :math:`\max_c \bar p_{nc}` and ``prediction``
    :math:`\arg\max_c \bar p_{nc}`.  Regression (from ``mu`` and
    ``noise_scale``): ``mean`` :math:`\frac1S\sum_s \mu_{sn}`, ``std``
    :math:`\sqrt{\mathrm{Var}_s[\mu_{sn}] + \sigma_n^2}`, ``epistemic_std``
    :math:`\sqrt{\mathrm{Var}_s[\mu_{sn}]}` and ``aleatoric_std`` :math:`\sigma_n`.

    Parameters
    ----------
    idata : arviz.InferenceData
    group : {"posterior_predictive", "predictions"}
        Which predictive to read (``predictions``: the new inputs).

    Returns
    -------
    dict of str to numpy.ndarray
        Arrays of shape ``(N,)`` (regression: ``(N, H)`` for a forecast of H steps).
    """
    group = _check_group(group)
    if _task(idata, group) == "classification":
        p = _class_draws(idata, group)
        mean = p.mean(0)
        h = _entropy(mean)
        eh = _entropy(p).mean(0)
        return {
            "predictive_entropy": h,
            "expected_entropy": eh,
            "mutual_information": h - eh,
            "confidence": mean.max(-1),
            "prediction": mean.argmax(-1),
        }
    mu, sigma = _regression_draws(idata, group)
    var = mu.var(0)
    return {
        "mean": mu.mean(0),
        "std": np.sqrt(var + sigma**2),
        "epistemic_std": np.sqrt(var),
        "aleatoric_std": sigma,
    }


def _check_loo_draws(idata: Any, where: str) -> None:
    """The ``log_likelihood`` group with ``y`` is there and has the 2 draws or more that PSIS-LOO needs."""
    _group(idata, "log_likelihood", ["y"])
    ll = _log_likelihood(idata)
    assert ll is not None  # checked just above
    _arviz.check_psis_draws(len(ll), where)


def loo_summary(idata: Any) -> dict[str, Any]:
    r"""PSIS-LOO and WAIC (``az.loo``, ``az.waic``) with the Pareto k counts.

    Returns ``elpd_loo``, ``se``, ``p_loo``, ``lppd``
    (:math:`\sum_n \log \frac1S \sum_s p(y_n \mid \theta_s)`), ``elpd_waic``,
    ``se_waic``, ``p_waic``, ``good_k`` (ArviZ's sample-size dependent
    threshold :math:`\min(1 - 1/\log_{10} S, 0.7)`), ``k_max``, the counts
    ``k<=0.5``, ``0.5<k<=0.7``, ``0.7<k<=1``, ``k>1`` and ``k>good_k``, and
    ``warnings`` (the texts ArviZ warned with, recorded rather than shown).
    Variational draws often give many large k: report them, do not hide them.

    The draws must be posterior samples, each one network for all points (``bd.to_inference_data(...,
    noise="shared")``, the default); for draws with per-example masks ``warnings`` says that the estimate is
    biased.  PSIS-LOO reweights the draws by :math:`1 / p(y_n \mid \theta_s)`, which is right for the exact
    posterior (Vehtari et al. 2017); for a variational q it is right as far as q is the posterior
    (``docs/analysis.md``: where it is not, e.g. dropout's fixed mask law, many k exceed the threshold).

    Raises
    ------
    ValueError
        If ``idata`` has no ``log_likelihood`` of ``y``, or fewer than 2 draws (PSIS-LOO needs at least 2).
    """
    return _loo_summary(idata, "`idata`")


def _loo_summary(idata: Any, where: str) -> dict[str, Any]:
    """:func:`loo_summary`, its errors naming the argument ``where``."""
    _check_loo_draws(idata, where)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loo = _arviz.loo(idata, pointwise=True, var_name="y")
        waic = _arviz.waic(idata, pointwise=True, var_name="y")
    k = np.asarray(loo["pareto_k"].values, dtype=np.float64)
    good_k = float(loo["good_k"])
    lppd = _lppd_points(idata)
    assert lppd is not None  # the log_likelihood group and its y are there (checked above)
    return {
        "elpd_loo": float(loo["elpd_loo"]),
        "se": float(loo["se"]),
        "p_loo": float(loo["p_loo"]),
        "lppd": float(lppd.sum()),
        "elpd_waic": float(waic["elpd_waic"]),
        "se_waic": float(waic["se"]),
        "p_waic": float(waic["p_waic"]),
        "n_samples": int(loo["n_samples"]),
        "n_data_points": int(loo["n_data_points"]),
        "good_k": good_k,
        "k_max": float(k.max()),
        "k<=0.5": int((k <= 0.5).sum()),
        "0.5<k<=0.7": int(((k > 0.5) & (k <= 0.7)).sum()),
        "0.7<k<=1": int(((k > 0.7) & (k <= 1)).sum()),
        "k>1": int((k > 1).sum()),
        "k>good_k": int((k > good_k).sum()),
        "warnings": sorted({" ".join(str(w.message).split()) for w in caught}) + _noise_warning(idata),
    }


def _noise_warning(idata: Any) -> list[str]:
    if idata.attrs.get("bayesdrop_noise") == "per-example":
        return [
            "the draws give every point its own masks (noise='per-example'): they are not posterior samples, and "
            "elpd_loo, p_loo and WAIC are biased; use bd.to_inference_data(..., noise='shared')"
        ]
    return []


def loo_check(idata_train: Any, idata_test: Any) -> dict[str, Any]:
    r"""PSIS-LOO on the training data against the held-out log predictive density.

    ``elpd_loo`` of the training points estimates the log predictive density of :math:`n` new points
    (Vehtari et al. 2017); the test set measures it directly: ``reference`` is the test lppd per point times
    :math:`n`, :math:`n \cdot \frac1{N'}\sum_{m} \log \frac1S \sum_s p(\tilde y_m \mid \theta_s)`.  ``z`` is their
    difference in ArviZ's standard errors of ``elpd_loo``; ``within_3se`` whether :math:`|z| \le 3`;
    ``p_loo_fraction`` is :math:`p_\mathrm{loo} / n` (the effective number of parameters per training point; a
    large value says the draws spread more than the data constrain them).  The reference has its own sampling
    error, ``reference_se`` (:math:`n / \sqrt{N'}` times the standard deviation of the test points' lppd);
    ``z_combined`` divides the difference by both standard errors combined.

    Parameters
    ----------
    idata_train : arviz.InferenceData
        Of the training data (:func:`~bayesdrop.to_inference_data` on the training split).
    idata_test : arviz.InferenceData
        Of held-out data, with ``log_likelihood``.

    Returns
    -------
    dict
        :func:`loo_summary`'s entries plus ``n_train``, ``n_test``, ``test_lppd_per_point``, ``reference``,
        ``reference_se``, ``z``, ``z_combined``, ``within_3se`` and ``p_loo_fraction``.
    """
    loo = _loo_summary(idata_train, "`idata_train`")
    return {
        **loo,
        "n_train": loo["n_data_points"],
        **against_reference(loo["elpd_loo"], loo["se"], loo["n_data_points"], idata_test),
        "p_loo_fraction": loo["p_loo"] / loo["n_data_points"],
    }


def against_reference(elpd: float, se: float, n: int, idata_test: Any) -> dict[str, Any]:
    r"""An estimate ``elpd`` ± ``se`` of the expected log predictive density of :math:`n` new points (PSIS-LOO or
    K-fold of :math:`n` training points) against what held-out data measure: ``reference``, the test lppd per point
    times :math:`n`, with its own standard error ``reference_se`` (:math:`n / \sqrt{N'}` times the standard
    deviation of the :math:`N'` test points' lppd); ``z`` the difference in ``se``, ``z_combined`` in both standard
    errors combined, ``within_3se`` whether :math:`|z| \le 3`; ``n_test`` and ``test_lppd_per_point``."""
    test = _lppd_points(idata_test)
    if test is None:
        raise ValueError("`idata_test` needs a log_likelihood group (bd.to_inference_data of labelled data)")
    per_point = float(test.mean())
    reference = per_point * n
    reference_se = float(n * test.std(ddof=1) / np.sqrt(len(test))) if len(test) > 1 else float("nan")
    z = (elpd - reference) / se if se > 0 else float("nan")
    return {
        "n_test": int(len(test)),
        "test_lppd_per_point": per_point,
        "reference": reference,
        "reference_se": reference_se,
        "z": z,
        "z_combined": (elpd - reference) / float(np.hypot(se, reference_se)),
        "within_3se": bool(abs(z) <= 3),
    }


def compare_loo(idatas: dict[str, Any]) -> list[dict[str, Any]]:
    """Rank models by PSIS-LOO (``az.compare`` with stacking weights) from their InferenceData, by name.

    Each InferenceData should hold the log-likelihood of the same (training) points under posterior draws
    (``bd.to_inference_data(model, guide, data.train)``).  Returns one row per model, best first: ``name``,
    ``rank``, ``elpd_loo``, ``se``, ``p_loo``, ``elpd_diff`` (to the best), ``dse`` (the standard error of that
    difference), ``weight`` and ``warning`` (ArviZ's flag: large Pareto k or other trouble).  Each needs at least
    2 draws (a ``ValueError`` naming the model otherwise).
    """
    if not isinstance(idatas, dict) or len(idatas) < 2:
        raise ValueError("`idatas` must be a dict of at least two InferenceData, by model name")
    elpd = {}
    with warnings.catch_warnings():  # the Pareto-k notes: counted by loo_summary, flagged in `warning`
        warnings.simplefilter("ignore")
        for name, idata in idatas.items():
            _check_loo_draws(idata, f"`idatas[{name!r}]`")
            elpd[str(name)] = _arviz.loo(idata, pointwise=True, var_name="y")
        table = _arviz.compare(elpd)
    rows = []
    for name, row in table.iterrows():
        rows.append(
            {
                "name": str(name),
                "rank": int(row["rank"]),
                "elpd_loo": float(row["elpd_loo"]),
                "se": float(row["se"]),
                "p_loo": float(row["p_loo"]),
                "elpd_diff": float(row["elpd_diff"]),
                "dse": float(row["dse"]),
                "weight": float(row["weight"]),
                "warning": bool(row["warning"]),
            }
        )
    return sorted(rows, key=lambda r: r["rank"])
