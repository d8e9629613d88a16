r"""K-fold cross-validation of the expected log predictive density: where PSIS-LOO on dropout draws fails.

For people who compare dropout methods by their predictive density.  PSIS-LOO (Vehtari et al. 2017) reweights
the draws of q by :math:`1 / p(y_n \mid \theta_s)`, right when q is the posterior.  Fixed-rate dropout keeps its
mask law whatever the data, so one training point's likelihood varies over the draws by orders of magnitude: most
Pareto k exceed the threshold and elpd_loo lies far below what held-out data measure (``docs/analysis.md``).
Vehtari et al. (2017, section 2.3) prescribe K-fold cross-validation then: refit on K - 1 folds, score the
held-out fold,

.. math::

    \widehat{\mathrm{elpd}}_\mathrm{kfold} = \sum_{n=1}^{N} \log \frac1S \sum_{s=1}^{S}
        p\bigl(y_n \mid \theta_s^{(-k(n))}\bigr), \qquad
    \theta_s^{(-k)} \sim q_{-k},\qquad
    \mathrm{se} = \sqrt{N \operatorname{Var}_n \bigl[\widehat{\mathrm{elpd}}_n\bigr]},

with :math:`q_{-k}` fitted without fold k and :math:`k(n)` the fold of point n.  It costs K fits and needs no
assumption on q.  The draws are those of :func:`~bayesdrop.to_inference_data` (``noise="shared"``: each draw one
network).

Example
-------
>>> def build(num_data):
...     model = bd.Classifier(bd.models.mlp(64, [300, 100], 10, "bernoulli"), num_data=num_data)
...     return model, bd.DropoutGuide(model)
>>> cv = bd.diagnostics.kfold(build, data.train, k=5)
>>> cv["elpd_kfold"], cv["se"]
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..checks import seed as check_seed
from ..data import as_tensors
from ..guides import DropoutGuide
from ..infer import fit
from ..likelihoods import Likelihood
from .inference_data import to_inference_data
from .metrics import _lppd_points, against_reference

__all__ = ["kfold", "kfold_check", "compare_kfold"]


def kfold(
    build: Callable[[int], tuple[Likelihood, DropoutGuide]],
    data: Any,
    k: int = 10,
    *,
    num_samples: int = 200,
    seed: int = 0,
    fit_kwargs: dict[str, Any] | None = None,
    budget: str = "steps",
    progress: bool = True,
) -> dict[str, Any]:
    r"""K-fold cross-validation of the expected log predictive density (Vehtari et al. 2017, section 2.3).

    The points are split at random (``seed``) into ``k`` folds of sizes differing by at most one; for each fold a
    fresh model and guide from ``build`` are fitted by :func:`bayesdrop.fit` (its defaults, ``fit_kwargs``
    overriding them, seed ``seed + fold``) on the other folds, and the held-out points are scored by the log
    predictive density of ``num_samples`` networks drawn from q (``bd.to_inference_data``, shared noise, seed
    ``seed``).  Each fold's fit takes the optimisation steps of a fit on all the points (``budget``).

    Parameters
    ----------
    build : callable
        ``build(num_data) -> (model, guide)``: a fresh likelihood with ``num_data`` training points (the size of
        the K - 1 folds it is fitted to) and its :class:`~bayesdrop.DropoutGuide`.
    data
        Labelled data: a split, an ``(x, y)`` tuple (N points).
    k : int
        Number of folds, 2 <= k <= N (10 is the usual choice; N is leave-one-out by refitting).
    num_samples : int
        Draws S from each fold's q.
    seed : int
        Seed of the folds, the fits and the draws.
    fit_kwargs : dict, optional
        Arguments of :func:`bayesdrop.fit` (``epochs``, ``lr``, ...) of the fit on all N points; its defaults
        otherwise.
    budget : {"steps", "epochs"}
        ``"steps"`` (default): each fold's fit takes as many optimisation steps as the fit on all N points, its
        epochs (and an integer ``kl_warmup``) scaled by :math:`N / N_{-k}` and rounded, so that K-fold scores the
        recipe's model rather than one trained less.  ``"epochs"``: the same epochs, fewer steps.  Measured on
        digits (``vbd``, ``bd.fit``'s 10 epochs, 5 folds, seed 0): z = -10.9 against the test reference with
        equal epochs, -1.4 with equal steps; with 10 folds and equal steps every run of
        ``benchmarks/results/analysis.md`` is within 3 (``docs/analysis.md``).
    progress : bool
        One line per fold on standard error.

    Returns
    -------
    dict
        ``elpd_kfold`` (the sum), ``se``, ``pointwise`` ``(N,)`` (each point's held-out log predictive density),
        ``folds`` ``(N,)`` (each point's fold), ``k`` and ``n_data_points``.

    Raises
    ------
    TypeError
        If ``build`` is not callable, or does not return a ``(model, guide)`` pair of a :class:`~bayesdrop.Likelihood`
        and the :class:`~bayesdrop.DropoutGuide` built for it (checked on the first fold, before any fit); if
        ``data`` is not labelled data of an accepted form, ``seed`` not an int or ``fit_kwargs`` not a dict.
    ValueError
        If ``data`` has no targets, ``k`` is not an int in ``[2, N]``, ``seed`` is outside ``[0, 2**32 - 1]``,
        ``fit_kwargs`` sets ``seed`` or ``test``, or ``budget`` is unknown.
    """
    if not callable(build):
        raise TypeError(f"`build` must be a callable num_data -> (model, guide), got {type(build).__name__}")
    x, y = as_tensors(data, name="data")
    if y is None:
        raise ValueError("`data` must include targets y")
    n = len(x)
    if not isinstance(k, int) or isinstance(k, bool) or not 2 <= k <= n:
        raise ValueError(f"`k` must be an int with 2 <= k <= {n} (the number of points), got {k!r}")
    seed = check_seed(seed)
    if fit_kwargs is not None and not isinstance(fit_kwargs, dict):
        raise TypeError(f"`fit_kwargs` must be a dict of bd.fit's arguments, got {type(fit_kwargs).__name__}")
    options = {"progress": False, **(fit_kwargs or {})}
    for reserved in ("seed", "test"):
        if reserved in options:
            raise ValueError(f"`fit_kwargs` must not set {reserved!r}: kfold sets it for every fold")
    if budget not in ("steps", "epochs"):
        raise ValueError(f"`budget` must be 'steps' or 'epochs', got {budget!r}")
    defaults = inspect.signature(fit).parameters  # bd.fit's own defaults where fit_kwargs do not set them
    epochs = options.get("epochs", defaults["epochs"].default)
    warmup = options.get("kl_warmup", defaults["kl_warmup"].default)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    folds = np.empty(n, dtype=np.int64)
    pointwise = np.empty(n, dtype=np.float64)
    for fold, held in enumerate(torch.tensor_split(order, k)):
        kept = torch.ones(n, dtype=torch.bool)
        kept[held] = False
        n_kept = int(kept.sum())
        built = build(n_kept)
        if not isinstance(built, tuple | list) or len(built) != 2:
            got = f"a {type(built).__name__} of length {len(built)}" if isinstance(built, tuple | list) else None
            raise TypeError(
                "`build` must return a (model, guide) pair: a bd.Likelihood and the bd.DropoutGuide built for it, "
                f"got {got or type(built).__name__} from build({n_kept})"
            )
        model, guide = built
        if not isinstance(model, Likelihood) or not isinstance(guide, DropoutGuide) or guide.model is not model:
            raise TypeError("`build` must return a bd.Likelihood and the bd.DropoutGuide built for it")
        if budget == "steps":  # the optimisation steps of a fit on all n points
            options["epochs"] = max(1, round(epochs * n / n_kept))
            if isinstance(warmup, int) and not isinstance(warmup, bool):
                options["kl_warmup"] = round(warmup * n / n_kept)
        fit(model, guide, (x[kept], y[kept]), seed=seed + fold, **options)
        idata = to_inference_data(model, guide, (x[held], y[held]), num_samples, seed=seed)
        lppd = _lppd_points(idata)
        assert lppd is not None  # labelled data: the log_likelihood group is there
        pointwise[held.numpy()] = lppd
        folds[held.numpy()] = fold
        if progress:
            print(f"kfold: fold {fold + 1}/{k}, {len(held)} held-out points, lppd {lppd.sum():.2f}", file=sys.stderr)
    return {
        "elpd_kfold": float(pointwise.sum()),
        "se": float(np.sqrt(n * pointwise.var(ddof=0))),
        "pointwise": pointwise,
        "folds": folds,
        "k": k,
        "n_data_points": n,
    }


def kfold_check(cv: dict[str, Any], idata_test: Any) -> dict[str, Any]:
    r"""K-fold elpd against the held-out log predictive density, as :func:`~bayesdrop.diagnostics.loo_check` does
    for PSIS-LOO: ``reference`` is the test lppd per point times :math:`n` (the points ``cv`` scored), ``z`` the
    difference in ``cv``'s standard errors, ``z_combined`` in both standard errors.

    Parameters
    ----------
    cv : dict
        A result of :func:`kfold`.
    idata_test : arviz.InferenceData
        Of held-out data (with ``log_likelihood``), from the model fitted to all the points ``cv`` split.

    Returns
    -------
    dict
        ``cv``'s ``elpd_kfold``, ``se``, ``k`` and ``n_data_points`` and the entries of the comparison.
    """
    if not isinstance(cv, dict) or "elpd_kfold" not in cv:
        raise TypeError("`cv` must be the dict bd.diagnostics.kfold returns")
    summary = {key: cv[key] for key in ("elpd_kfold", "se", "k", "n_data_points")}
    return {**summary, **against_reference(cv["elpd_kfold"], cv["se"], cv["n_data_points"], idata_test)}


def compare_kfold(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    r"""Rank models by K-fold elpd over the same folds, as ``az.compare`` ranks by PSIS-LOO.

    The differences are paired point by point (Vehtari et al. 2017, section 5): for the best model b and model m,
    :math:`\Delta = \sum_n (\widehat{\mathrm{elpd}}_{b,n} - \widehat{\mathrm{elpd}}_{m,n})` and its standard
    error :math:`\sqrt{N \operatorname{Var}_n[\widehat{\mathrm{elpd}}_{b,n} - \widehat{\mathrm{elpd}}_{m,n}]}`.

    Parameters
    ----------
    results : dict
        Results of :func:`kfold` by model name, on the same data and folds (the same ``seed`` and ``k``).

    Returns
    -------
    list of dict
        One row per model, best first: ``name``, ``rank`` (0 the best), ``elpd_kfold``, ``se``, ``elpd_diff`` (to the
        best, >= 0) and ``dse``.
    """
    if not isinstance(results, dict) or len(results) < 2:
        raise ValueError("`results` must be a dict of at least two bd.diagnostics.kfold results, by model name")
    first = next(iter(results.values()))
    for name, cv in results.items():
        if not isinstance(cv, dict) or "pointwise" not in cv:
            raise TypeError(f"`results[{name!r}]` must be the dict bd.diagnostics.kfold returns")
        if not np.array_equal(cv["folds"], first["folds"]):
            raise ValueError(
                f"`results[{name!r}]` was cross-validated on other folds: pass the same data, `k` and `seed` to "
                "every kfold call"
            )
    order = sorted(results, key=lambda name: -results[name]["elpd_kfold"])
    best = results[order[0]]["pointwise"]
    rows = []
    for rank, name in enumerate(order):
        diff = best - results[name]["pointwise"]
        rows.append(
            {
                "name": str(name),
                "rank": rank,
                "elpd_kfold": results[name]["elpd_kfold"],
                "se": results[name]["se"],
                "elpd_diff": float(diff.sum()),
                "dse": float(np.sqrt(len(diff) * diff.var(ddof=0))),
            }
        )
    return rows
