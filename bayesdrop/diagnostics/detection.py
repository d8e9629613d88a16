r"""Out-of-distribution detection and selective prediction from posterior predictive draws.

For people who ask whether a model knows what it does not know.  Two questions, each answered from the class
probabilities of the draws:

* **Detection** (:func:`ood`): does an uncertainty score separate in-distribution inputs from out-of-distribution
  ones?  The scores are the predictive entropy :math:`H[\bar p_n]`, the mutual information
  :math:`H[\bar p_n] - \frac1S\sum_s H[p_{sn}]` between the label and the weights (the epistemic part; Gal 2016,
  Depeweg et al. 2018) and the maximum predictive probability :math:`\max_c \bar p_{nc}` (Hendrycks & Gimpel 2017;
  low is uncertain).  For each: the area under the ROC curve (AUROC), the average precision (AUPR, the area under
  the precision-recall curve) and the false-positive rate at 95 % true-positive rate (FPR95).
* **Selective prediction** (:func:`accuracy_rejection`): reject the inputs the model is least sure of; how
  accurate is it on the rest?  The accuracy-rejection curve (Nadeem et al. 2009) and its area.

The ranking metrics are computed here (NumPy, no scikit-learn), with ties handled as
``sklearn.metrics.roc_auc_score``, ``average_precision_score`` and ``roc_curve`` handle them (a tie of an
out-of-distribution and an in-distribution input counts one half in the AUROC; the precision-recall and ROC curves
have one point per distinct score).

Example
-------
>>> idata = bd.to_inference_data(model, guide, data.test, predictions=noise)
>>> bd.diagnostics.ood(idata)["mutual_information"]["auroc"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..checks import check_range
from ..scoring import _check_probabilities
from . import arviz as _arviz
from .metrics import _class_draws, _entropy, _require_idata, _task

__all__ = ["SCORES", "scores", "ood", "roc_auc", "average_precision", "fpr_at_tpr", "roc_curve", "accuracy_rejection"]

#: the uncertainty scores, each oriented so that a higher value means "more likely out of distribution"
SCORES = ("predictive_entropy", "mutual_information", "max_probability")


def _probability_draws(source: Any, name: str, group: str) -> np.ndarray:
    """Class probability draws ``(S, N, C)`` from an InferenceData's ``group`` or from an array."""
    if source is None:
        raise ValueError(f"`{name}` is required")
    if _is_idata(source):
        if _task(source, group) != "classification":
            raise ValueError(
                f"`{name}` holds a regression predictive; out-of-distribution scores need class probabilities"
            )
        return _class_draws(source, group)
    try:
        p = source.detach().cpu().numpy() if torch.is_tensor(source) else source
        p = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"`{name}` must be an arviz.InferenceData or class probabilities (draws, points, classes), "
            f"got {type(source).__name__}"
        ) from err
    if p.ndim == 2:  # one draw (a deterministic network)
        p = p[None]
    if p.ndim != 3 or p.shape[1] < 1 or p.shape[2] < 2:
        raise ValueError(f"`{name}` must be class probabilities (draws, points, classes), got shape {p.shape}")
    return _check_probabilities(p, name)


def _is_idata(obj: Any) -> bool:
    return bool(_arviz.is_inference_data(obj))


def _check_scores(score: Any) -> tuple[str, ...]:
    names = tuple(SCORES) if score is None else (score,) if isinstance(score, str) else tuple(score)
    bad = [s for s in names if s not in SCORES]
    if not names or bad:
        raise ValueError(f"`score` must be one of {SCORES} (or a sequence of them), got {score!r}")
    return names


def scores(probs: Any) -> dict[str, np.ndarray]:
    r"""The uncertainty scores of class probability draws ``probs`` ``(S, N, C)``, each ``(N,)`` and higher for
    more uncertain inputs: ``predictive_entropy`` and ``mutual_information`` (nats) and ``max_probability`` as
    :math:`-\max_c \bar p_{nc}` (negated, so that a higher score is more uncertain as for the others)."""
    p = _probability_draws(probs, "probs", "posterior_predictive")
    mean = p.mean(0)
    h = _entropy(mean)
    return {
        "predictive_entropy": h,
        "mutual_information": h - _entropy(p).mean(0),
        "max_probability": -mean.max(-1),
    }


def _binary(labels: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels)
    s = np.asarray(values, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"`labels` and `values` must be 1-D of the same length, got {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("`labels` must be 0 (in distribution) or 1 (out of distribution)")
    if not np.isfinite(s).all():
        raise ValueError("`values` must be finite")
    y = y.astype(np.int64)
    if y.min() == y.max():
        raise ValueError("`labels` must contain both classes (0 and 1)")
    return y, s


def roc_curve(labels: Any, values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve of ``values`` (higher: more likely positive) for binary ``labels``: false- and true-positive
    rates ``(K + 1,)`` from ``(0, 0)``, one point per distinct value from the highest down, and those thresholds
    (``inf`` first); the points of ``sklearn.metrics.roc_curve(drop_intermediate=False)``."""
    y, s = _binary(labels, values)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the last index of each group of equal values
    tps = np.cumsum(y)[last].astype(np.float64)
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_auc(labels: Any, values: Any) -> float:
    """The area under the ROC curve of ``values`` (``(N,)`` finite scores, higher: more likely positive) for the
    binary ``labels`` (``(N,)``, 1 positive and 0 negative, both present): the probability that a positive scores
    above a negative, a tie counting one half (the Mann-Whitney statistic), as ``sklearn.metrics.roc_auc_score``."""
    y, s = _binary(labels, values)
    from scipy.stats import rankdata

    ranks = rankdata(s)  # average ranks of ties
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(labels: Any, values: Any) -> float:
    r"""Average precision :math:`\sum_k (R_k - R_{k-1}) P_k` over the thresholds at the distinct ``values`` from
    the highest down (precision :math:`P_k` and recall :math:`R_k` of the inputs scoring at least the k-th value,
    :math:`R_0 = 0`), as ``sklearn.metrics.average_precision_score``: the area under the precision-recall curve
    without interpolation.  ``labels`` ``(N,)`` are 1 for a positive and 0 for a negative (both present) and
    ``values`` ``(N,)`` their finite scores, higher for more likely positive."""
    y, s = _binary(labels, values)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last].astype(np.float64)
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_at_tpr(labels: Any, values: Any, tpr: float = 0.95) -> float:
    """The lowest false-positive rate among the thresholds whose true-positive rate is at least ``tpr``: with
    out-of-distribution inputs as positives, the fraction of in-distribution inputs flagged when 95 % of the
    out-of-distribution ones are (FPR95, the default ``tpr=0.95``; ``tpr`` in (0, 1]).  ``labels`` ``(N,)`` are 1
    for a positive and 0 for a negative (both present) and ``values`` ``(N,)`` their finite scores, higher for more
    likely positive, as for :func:`roc_curve`."""
    tpr = check_range("tpr", tpr, 0.0, 1.0, lo_open=True, what="a true-positive rate")
    fpr, tp_rate, _ = roc_curve(labels, values)
    return float(fpr[tp_rate >= tpr - 1e-12].min())


def ood(
    idata_in: Any,
    idata_out: Any = None,
    *,
    score: str | Sequence[str] | None = None,
    group_in: str = "posterior_predictive",
    group_out: str | None = None,
) -> dict[str, Any]:
    """How well each uncertainty score tells out-of-distribution inputs from in-distribution ones.

    Out-of-distribution inputs are the positives and a higher score flags an input (see :func:`scores`); for each
    score: ``auroc`` (:func:`roc_auc`), ``aupr`` (:func:`average_precision`, out-of-distribution as positives),
    ``fpr95`` (:func:`fpr_at_tpr` at 95 %) and the mean score of either set (``mean_in``, ``mean_out``; of the
    maximum probability itself, not negated).

    Parameters
    ----------
    idata_in : arviz.InferenceData or array
        The in-distribution predictive: an InferenceData (its ``group_in``, ``posterior_predictive`` by default)
        or class probabilities ``(S, N, C)`` (one draw ``(N, C)`` also).
    idata_out : arviz.InferenceData or array, optional
        The out-of-distribution predictive, likewise (its ``group_out``: ``posterior_predictive`` by default); if
        omitted, the ``predictions`` group of ``idata_in`` (``bd.to_inference_data(..., predictions=ood_inputs)``).
    score : str or sequence of str, optional
        Among :data:`SCORES`; all by default.
    group_in, group_out : str
        The groups to read.

    Returns
    -------
    dict
        ``{score: {"auroc", "aupr", "fpr95", "mean_in", "mean_out"}}`` plus ``n_in`` and ``n_out``.
    """
    names = _check_scores(score)
    if idata_out is None:
        if not _is_idata(idata_in):
            raise ValueError("`idata_out` is required unless `idata_in` is an InferenceData with a predictions group")
        _require_idata(idata_in)
        idata_out, group_out = idata_in, group_out or "predictions"
    for arg, g in (("group_in", group_in), ("group_out", group_out)):
        if g is not None and g not in ("posterior_predictive", "predictions"):
            raise ValueError(f"`{arg}` must be 'posterior_predictive' or 'predictions', got {g!r}")
    p_in = _probability_draws(idata_in, "idata_in", group_in)
    p_out = _probability_draws(idata_out, "idata_out", group_out or "posterior_predictive")
    if p_in.shape[2] != p_out.shape[2]:
        raise ValueError(f"`idata_in` and `idata_out` have {p_in.shape[2]} and {p_out.shape[2]} classes")
    s_in, s_out = scores(p_in), scores(p_out)
    labels = np.r_[np.zeros(p_in.shape[1], dtype=np.int64), np.ones(p_out.shape[1], dtype=np.int64)]
    result: dict[str, Any] = {}
    for name in names:
        values = np.r_[s_in[name], s_out[name]]
        sign = -1.0 if name == "max_probability" else 1.0  # the means of the maximum probability itself
        result[name] = {
            "auroc": roc_auc(labels, values),
            "aupr": average_precision(labels, values),
            "fpr95": fpr_at_tpr(labels, values, 0.95),
            "mean_in": sign * float(s_in[name].mean()),
            "mean_out": sign * float(s_out[name].mean()),
        }
    result["n_in"], result["n_out"] = int(p_in.shape[1]), int(p_out.shape[1])
    return result


def accuracy_rejection(
    idata: Any, y: Any = None, *, score: str = "predictive_entropy", group: str = "posterior_predictive"
) -> dict[str, Any]:
    r"""The accuracy-rejection curve (Nadeem et al. 2009): the accuracy on the inputs kept after rejecting the
    fraction :math:`r` the model is least sure of (highest ``score``), for :math:`r = 0, 1/N, \dots, (N-1)/N`.

    Inputs of equal score are rejected together in expectation: within a group of ties the kept ones count with
    the group's mean accuracy (the curve does not depend on the order of ties).

    Parameters
    ----------
    idata : arviz.InferenceData or array
        With ``posterior_predictive.probs`` and ``observed_data.y``, or class probabilities ``(S, N, C)`` (then
        ``y`` gives the labels).
    y : array, optional
        Labels ``(N,)`` for array input, or for the inputs of another group than ``posterior_predictive`` (whose
        labels are ``observed_data``'s).
    score : str
        One of :data:`SCORES`.
    group : str
        The InferenceData group (``posterior_predictive``; ``predictions`` with ``y``).

    Returns
    -------
    dict
        ``rejection`` and ``accuracy`` ``(N,)``, ``area`` (the mean accuracy over the rejection fractions, the area
        under the curve on [0, 1]), ``oracle_area`` (rejecting the errors first) and ``base_accuracy`` (``r = 0``).
    """
    (name,) = _check_scores(score)
    p = _probability_draws(idata, "idata", group)
    if _is_idata(idata) and group == "posterior_predictive":
        if y is not None:
            raise ValueError("`y` is taken from `idata.observed_data`; pass it only with class probabilities")
        labels = np.asarray(idata.observed_data["y"].values)
    elif y is None:
        if _is_idata(idata):  # observed_data labels the posterior predictive's inputs, not these
            raise ValueError(
                f"`group` {group!r} holds inputs whose labels `idata` does not have (observed_data labels the "
                "posterior predictive's): pass them as `y`"
            )
        raise ValueError("`y` (the labels) is required with class probabilities")
    else:
        labels = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
    if labels.shape != (p.shape[1],):
        raise ValueError(f"`y` must hold one label per point ({p.shape[1]}), got shape {labels.shape}")
    correct = (p.mean(0).argmax(-1) == labels).astype(np.float64)
    s = scores(p)[name]
    n = len(s)
    order = np.argsort(s, kind="mergesort")  # most certain first
    s_sorted, c_sorted = s[order], correct[order]
    starts = np.r_[0, np.flatnonzero(np.diff(s_sorted)) + 1]
    group_id = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    group_mean = np.add.reduceat(c_sorted, starts) / np.diff(np.r_[starts, n])
    before = np.r_[0.0, np.cumsum(np.add.reduceat(c_sorted, starts))][group_id]  # correct ones in earlier groups
    k = np.arange(1, n + 1)  # kept inputs
    kept_correct = before + (k - starts[group_id]) * group_mean[group_id]
    accuracy = (kept_correct / k)[::-1]  # from rejecting none (all n kept) to keeping one
    rejection = 1.0 - k[::-1] / n
    oracle = np.minimum(correct.sum(), k) / k
    return {
        "rejection": rejection,
        "accuracy": accuracy,
        "area": float(accuracy.mean()),
        "oracle_area": float(oracle.mean()),
        "base_accuracy": float(accuracy[0]),
        "score": name,
    }
