r"""The headline scores of a posterior predictive, one definition each: NLL, accuracy, RMSE and the expected
calibration error.

For people who score predictions themselves, from tensors or NumPy arrays of draws, and the one source of these
numbers in bayesdrop: the likelihoods' :meth:`~bayesdrop.Likelihood.metrics` (so :func:`bayesdrop.evaluate`,
``fit``'s ``test_*`` history, ``bayesdrop train``, ``bayesdrop report`` and ``bayesdrop compare``) and
:func:`bayesdrop.diagnostics.calibration` (from an ``arviz.InferenceData``) compute them here, so they report the
same numbers for the same draws.  :mod:`bayesdrop.diagnostics` hands them on under the same names
(``bd.diagnostics.nll`` is :func:`nll`).  The formulas: ``docs/analysis.md``.

Example
-------
>>> probs, logits = bd.predict(model, guide, x_test, num_samples=100, return_samples=True)  # (N, C), (S, N, C)
>>> bd.scoring.accuracy(probs, y_test), bd.scoring.expected_calibration_error(probs, y_test)
>>> bd.scoring.nll(model.log_likelihood(logits, y_test))  # log p(y_n | f_s(x_n)), (S, N)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["nll", "accuracy", "rmse", "expected_calibration_error"]


def nll(log_likelihood: Any) -> float:
    r"""The mean negative log predictive density of draws :math:`\log p(y_n \mid \theta_s)` ``(S, N)``:

    .. math:: \mathrm{NLL} = -\frac1N \sum_n \log \frac1S \sum_s p(y_n \mid \theta_s),

    computed in float64 by log-sum-exp (exact where a density underflows).  The one definition of the NLL of
    bayesdrop's reports (:func:`bayesdrop.diagnostics.calibration`, :meth:`bayesdrop.Likelihood.metrics`).
    """
    ll = _array(log_likelihood, "log_likelihood")
    if ll.ndim != 2 or ll.shape[0] < 1 or ll.shape[1] < 1:
        raise ValueError(f"`log_likelihood` must be (draws, points), got shape {ll.shape}")
    return float(-_logmeanexp(ll, 0).mean())


def accuracy(probs: Any, y: Any) -> float:
    r"""The fraction of points whose label ``y`` ``(N,)`` is the most probable class of the predictive
    :math:`\bar p_n = \frac1S \sum_s p_{sn}`, from class probabilities ``probs``: draws ``(S, N, C)`` or their
    mean ``(N, C)`` (float64; the first class wins a tie)."""
    p = _array(probs, "probs")
    if p.ndim not in (2, 3):
        raise ValueError(f"`probs` must be (draws, points, classes) or (points, classes), got shape {p.shape}")
    mean = p.mean(0) if p.ndim == 3 else p
    t = _labels(y, mean.shape[0], mean.shape[1])
    return float((mean.argmax(-1) == t).mean())


def rmse(mean: Any, y: Any) -> float:
    r"""The root mean squared error of the predictive mean :math:`\bar\mu_n = \frac1S \sum_s \mu_{sn}`, from the
    draws of the mean ``mean`` ``(S, N, ...)``, against targets ``y`` ``(N, ...)`` (every value of a forecast
    counts)."""
    mu = _array(mean, "mean")
    t = _array(y, "y")
    if mu.ndim < 2 or mu.shape[1:] != t.shape:
        raise ValueError(f"`mean` must be (draws, *y.shape) for `y` of shape {t.shape}, got {mu.shape}")
    return float(np.sqrt(((mu.mean(0) - t) ** 2).mean()))


def expected_calibration_error(probs: Any, y: Any, *, n_bins: int = 15) -> float:
    r"""ECE of predicted class probabilities ``probs`` (N, C) against labels ``y`` (N,).

    .. math:: \mathrm{ECE} = \sum_b \frac{|B_b|}{N}\,\big|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big|

    over ``n_bins`` equal-width confidence bins, as :func:`bayesdrop.diagnostics.calibration` reports
    it from an ``InferenceData``; this form takes tensors or arrays directly.
    """
    p = _array(probs, "probs")
    if p.ndim != 2:
        raise ValueError(f"`probs` must be (N, C), got shape {p.shape}")
    t = _labels(y, *p.shape)
    return float(_reliability(_check_probabilities(p, "probs"), t, _check_bins(n_bins))["ece"])


def _array(a: Any, name: str) -> np.ndarray:
    """``a`` (a tensor or array-like) as a float64 NumPy array."""
    if torch.is_tensor(a):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a tensor or an array of numbers, got {type(a).__name__}") from err


def _labels(y: Any, n: int, num_classes: int) -> np.ndarray:
    """``y`` as a NumPy array if it holds one integer label in ``[0, num_classes)`` per point of ``n``."""
    t = y.detach().cpu().numpy() if torch.is_tensor(y) else np.asarray(y)
    if t.shape != (n,):
        raise ValueError(f"`y` must hold one label per point, shape ({n},), got {t.shape}")
    if not np.issubdtype(t.dtype, np.integer) or t.min(initial=0) < 0 or t.max(initial=0) >= num_classes:
        raise ValueError(
            f"`y` must be integer labels in [0, {num_classes - 1}], got {t.dtype} in the range "
            f"[{t.min(initial=0)}, {t.max(initial=0)}]"
        )
    return t


def _logmeanexp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):  # every density 0: log 0 = -inf
        return (np.log(np.exp(a - m).mean(axis=axis, keepdims=True)) + m).squeeze(axis)


def _check_probabilities(p: np.ndarray, name: str) -> np.ndarray:
    """``p`` if every row is a probability vector (entries in [0, 1], summing to 1 within 1e-4), else ValueError."""
    sums = p.sum(-1)
    if (
        not np.isfinite(p).all()
        or p.min(initial=0) < 0
        or p.max(initial=0) > 1
        or np.abs(sums - 1).max(initial=0) > 1e-4
    ):
        raise ValueError(
            f"`{name}` must hold class probabilities (entries in [0, 1], rows summing to 1), got entries in "
            f"[{np.nanmin(p):.3g}, {np.nanmax(p):.3g}] and row sums in [{sums.min():.3g}, {sums.max():.3g}]"
        )
    return p


def _check_bins(n_bins: Any) -> int:
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"`n_bins` must be a positive int, got {n_bins!r}")
    return n_bins


def _reliability(probs: np.ndarray, y: np.ndarray, n_bins: int) -> dict[str, Any]:
    conf = probs.max(-1)
    correct = (probs.argmax(-1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)  # bin b is (edges[b], edges[b+1]]
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
    gap = np.abs(acc - mean_conf)
    filled = count > 0
    ece = float((count[filled] / len(y) * gap[filled]).sum())
    mce = float(gap[filled].max())
    return {"edges": edges, "count": count, "accuracy": acc, "confidence": mean_conf, "ece": ece, "mce": mce}
