r"""Posterior predictive analysis with ArviZ: InferenceData, calibration, uncertainty, LOO, plots.

:func:`to_inference_data` draws ``num_samples`` networks
:math:`\theta_s \sim q(\theta)` from the guide (:class:`~bayesdrop.posterior.PosteriorSampler`: one
ordinary forward pass per draw, so any module works in the network) and returns an ``arviz.InferenceData``.  The other
functions read that object only, so they work for every registered method and
for InferenceData built elsewhere with the same variables.

The InferenceData
-----------------
Variational draws are independent and come without chains: every sampled
group has a ``chain`` dimension of size 1 and a ``draw`` dimension of size S.
ArviZ then uses a relative efficiency of 1 in PSIS-LOO (right for independent
draws); ``az.summary`` cannot compute R-hat from one chain and logs so.  With
N data points (dim ``obs_id``), C classes (``class``) and M new inputs
(``pred_id``):

* ``posterior``: ``{layer}.keep_prob`` for every Bayesian layer, the keep
  probabilities of q from :func:`bayesdrop.dropout_rates` (dims
  ``{layer}.unit``, or ``{layer}.out, {layer}.in`` for per-weight rates), and
  every random global site of the guide other than weights, as draws (e.g.
  ``net.0.noise`` of per-unit ``vbd``).
* ``posterior_predictive``: ``y`` (``obs_id``), replicated labels or
  regression outputs drawn from the likelihood; ``probs`` (``obs_id, class``),
  the softmax of every draw (classification); ``mu`` (``obs_id``), the network
  output of every draw (regression).
* ``log_likelihood``: ``y`` (``obs_id``), :math:`\log p(y_n \mid \theta_s)`
  from ``model.log_likelihood``.
* ``observed_data``: ``y`` (``obs_id``).
* ``constant_data`` (regression): ``noise_scale`` (``obs_id``), the
  observation noise :math:`\sigma` (a point estimate when learned), and ``x``
  (``obs_id, feature``) for 2-D inputs.
* ``predictions`` and ``predictions_constant_data``: the same for the new
  inputs (``pred_id``).
* ``point_estimates`` (outside ArviZ's scheme, only when there are any): the
  Delta global sites of the guide other than weights, without chain and draw,
  e.g. ``net.0.k`` (Dropout++) or ``net.0.gamma`` (vbd).

Where the rates are fixed or point estimates (a Delta guide; true of every
method registered so far) ``{layer}.keep_prob`` is constant over draws: that
*is* what q says about them (a point mass), and keeping them in ``posterior``
lets ``az.summary`` and ``az.plot_posterior`` show them (sd 0, R-hat and ESS
undefined).  The raw Delta sites go to ``point_estimates``, never to
``posterior``.  Weight tensors are left out unless ``weights=True`` (they can
be large): then random ones (vd, sparse-vd) are drawn into ``posterior`` and
Delta ones go to ``point_estimates``.

LOO on dropout draws
--------------------
``log_likelihood`` holds :math:`\log p(y_n \mid \theta_s)` where
:math:`\theta_s` includes the masks (local noise) that draw s used for point
n.  PSIS-LOO treats those as posterior draws, so for methods whose randomness
is per example (Bernoulli and Gaussian dropout, Dropout++) ``p_loo`` also
measures the spread the masks inject and many Pareto k exceed ArviZ's
threshold.  ``lppd`` (the Monte Carlo log posterior predictive density) is
unaffected; :func:`loo_summary` and the report give the k counts with it.

Formulas
--------
With :math:`p_{snc}` the class probabilities of draw s and
:math:`\bar p_{nc} = \frac1S \sum_s p_{snc}` the predictive:

.. math::
    \mathrm{NLL} = -\frac1N \sum_n \log \frac1S \sum_s p(y_n \mid \theta_s),\qquad
    \mathrm{Brier} = \frac1N \sum_n \sum_c (\bar p_{nc} - [y_n = c])^2,

.. math::
    \mathrm{ECE} = \sum_{b=1}^{B} \frac{|B_b|}{N}\,\big|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big|,\qquad
    \mathrm{MCE} = \max_{b:\,|B_b| > 0} \big|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big|

(Naeini et al. 2015; Guo et al. 2017) over B equal-width bins
:math:`((b-1)/B, b/B]` of the confidence :math:`\max_c \bar p_{nc}`; empty bins
add nothing to the ECE and are skipped by the MCE.  The entropy decomposition
(Gal 2016, thesis sec. 3.3.1; Depeweg et al. 2018):

.. math::
    \underbrace{H\big[\bar p_n\big]}_{\text{predictive}}
    = \underbrace{\frac1S \sum_s H\big[p_{sn}\big]}_{\text{expected (aleatoric)}}
    + \underbrace{I(y_n; \theta \mid x_n, D)}_{\text{mutual information (epistemic)}}.

For regression with :math:`y_n \mid \theta_s \sim \mathcal N(\mu_{sn}, \sigma_n^2)`
the predictive is the Gaussian mixture with CDF
:math:`F_n(t) = \frac1S \sum_s \Phi((t - \mu_{sn}) / \sigma_n)`; the PIT value is
:math:`F_n(y_n)`, a point lies in the central interval of mass m iff its PIT
lies in :math:`[(1-m)/2, (1+m)/2]`, and the predictive variance is
:math:`\mathrm{Var}_s[\mu_{sn}] + \sigma_n^2` (law of total variance).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from . import _arviz
from .data import as_tensors, check_labels
from .guides import DropoutGuide, dropout_rates
from .models import Likelihood
from .posterior import PosteriorSampler, device_of

__all__ = [
    "to_inference_data",
    "expected_calibration_error",
    "save_netcdf",
    "load_netcdf",
    "calibration",
    "reliability",
    "pit",
    "uncertainty",
    "loo_summary",
    "plot_reliability",
    "plot_ppc",
    "plot_loo_pit",
    "plot_dropout_rates",
    "plot_entropy",
    "plot_predictive_band",
    "write_report",
]

_GROUPS = ("posterior_predictive", "predictions")


# ----------------------------------------------------------------------------- sampling


def _data(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x, y) from a Split, an (x, y) tuple, a tensor or a DataLoader yielding (x, y)."""
    if isinstance(data, torch.utils.data.DataLoader):
        xs, ys = [], []
        for batch in data:
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise TypeError(f"`{name}`: the DataLoader must yield (x, y) pairs")
            xs.append(batch[0])
            ys.append(batch[1])
        if not xs:
            raise ValueError(f"`{name}`: the DataLoader is empty")
        return as_tensors((torch.cat(xs), torch.cat(ys)), name=name)
    return as_tensors(data, name=name)


@contextlib.contextmanager
def _rng_restored(device: torch.device) -> Iterator[None]:
    """Run the block on a fork of torch's generators: the caller's random state is left as it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def _unwrap(fn: Any) -> Any:
    while isinstance(fn, (dist.Independent, dist.MaskedDistribution)):
        fn = fn.base_dist
    return fn


def _np(t: torch.Tensor, dtype: Any = None) -> np.ndarray:
    a = t.detach().cpu().numpy()
    return a.astype(dtype) if dtype is not None else a


def _site_dims(var: str, layer_name: str, layer: Any, shape: Sequence[int]) -> list[str]:
    """Dimension names: a layer's weight axes, its input units, or ``{var}.dim_i``."""
    w = tuple(layer.weight_sites["weight"].shape) if "weight" in layer.weight_sites else ()
    if w and tuple(shape) == w:
        return [f"{layer_name}.{d}" for d in ("out", "in", "kh", "kw")[: len(w)]]
    dims = [f"{var}.dim_{i}" for i in range(len(shape))]
    if len(shape) and len(w) > 1 and shape[0] == w[1]:
        dims[0] = f"{layer_name}.unit"
    return dims


@torch.no_grad()
def to_inference_data(
    model: Likelihood,
    guide: DropoutGuide,
    data: Any,
    num_samples: int = 200,
    *,
    predictions: Any = None,
    seed: int | None = 0,
    batch_size: int = 256,
    weights: bool = False,
) -> Any:
    r"""Posterior predictive of a trained model/guide pair as ``arviz.InferenceData``.

    Draws ``num_samples`` networks :math:`\theta_s \sim q` from the guide (in
    passes of ``batch_size`` inputs, :class:`~bayesdrop.posterior.PosteriorSampler`; every input sees the same S
    networks) and records the groups described in the module docstring:
    ``posterior``, ``posterior_predictive``, ``log_likelihood``,
    ``observed_data``, ``constant_data`` (regression), ``point_estimates``
    (Delta guide sites other than weights, if any) and, with
    ``predictions``, ``predictions`` and ``predictions_constant_data``.

    Variational draws are independent: the ``chain`` dimension has size 1.

    Parameters
    ----------
    model : bayesdrop.models.Likelihood
        A :class:`~bayesdrop.models.Classifier` or :class:`~bayesdrop.models.Regressor`.
    guide : DropoutGuide
        The guide built for ``model``.
    data
        Labelled data: a split with ``.x``/``.y``, an ``(x, y)`` tuple or a
        ``torch.utils.data.DataLoader`` yielding ``(x, y)``.  Inputs shaped for
        the network (e.g. images for ``lenet5``).
    num_samples : int
        Number S of draws from the guide.
    predictions : tensor, array or split, optional
        New inputs (their targets, if any, are ignored) for the ``predictions`` group.
    seed : int or None
        Seed of the draws (torch's generators are restored afterwards); ``None``
        uses the current random state.
    batch_size : int
        Inputs per forward pass.
    weights : bool
        Also store weight sites: draws in ``posterior`` when random (vd,
        sparse-vd), values in ``point_estimates`` when Delta.

    Returns
    -------
    arviz.InferenceData
    """
    if not isinstance(guide, DropoutGuide) or guide.model is not model:
        raise ValueError("`guide` must be the DropoutGuide built for `model`")
    task = getattr(model, "task", None)
    if task not in ("classification", "regression") or not hasattr(model, "log_likelihood"):
        raise TypeError("`model` must be a bayesdrop likelihood (bd.Classifier or bd.Regressor)")
    for arg, v in (("num_samples", num_samples), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"`{arg}` must be a positive int, got {v!r}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"`seed` must be a non-negative int or None, got {seed!r}")
    if not isinstance(weights, bool):
        raise TypeError(f"`weights` must be a bool, got {type(weights).__name__}")
    x, y = _data(data, "data")
    if y is None:
        raise ValueError("`data` must include targets y (pass new inputs without targets as `predictions`)")
    if task == "classification":
        check_labels(y, model.num_classes, name="data.y")
    elif not y.is_floating_point() or y.shape != x.shape[:1]:
        raise ValueError(f"`data`: regression targets y must be floating point of shape (N,), got {tuple(y.shape)}")
    x_new = None if predictions is None else _data(predictions, "predictions")[0]

    S, N = num_samples, len(x)
    dev = device_of(model, guide)
    was_training = model.training
    model.eval()
    try:
        with _rng_restored(dev) if seed is not None else contextlib.nullcontext():
            if guide._order is None:
                guide(x[:2].to(dev))
            draws = PosteriorSampler(model, guide, S, x[:2].to(dev))
            out, y_rep = draws.run(x.to(dev), batch_size)
            ll = model.log_likelihood(out, y.to(dev))
            new = draws.run(x_new.to(dev), batch_size) if x_new is not None else None
    finally:
        model.train(was_training)

    coords: dict[str, Any] = {"obs_id": np.arange(N)}
    dims: dict[str, list[str]] = {"y": ["obs_id"]}
    pred_coords: dict[str, Any] = {}
    pred_dims: dict[str, list[str]] = {"y": ["pred_id"]}

    def predictive(out_: torch.Tensor, y_: torch.Tensor) -> dict[str, np.ndarray]:
        if task == "classification":
            return {"y": _np(y_, np.int64)[None], "probs": _np(out_.softmax(-1), np.float32)[None]}
        return {"y": _np(y_, np.float64)[None], "mu": _np(out_.squeeze(-1), np.float64)[None]}

    if task == "classification":
        coords["class"] = np.arange(model.num_classes)
        dims["probs"] = ["obs_id", "class"]
        pred_dims["probs"] = ["pred_id", "class"]
        pred_coords["class"] = coords["class"]
    else:
        dims.update(mu=["obs_id"], noise_scale=["obs_id"], x=["obs_id", "feature"])
        pred_dims.update(mu=["pred_id"], noise_scale=["pred_id"], x=["pred_id", "feature"])

    # posterior: keep probabilities (constant where q has a point mass on them) and random global sites
    layers = {name: layer for name, layer, _ in guide.pairs()}
    by_prefix = {layer._pyro_name: name for name, layer in layers.items()}
    weight_sites = {layer.site(w) for layer in layers.values() for w in layer.weight_sites}
    posterior: dict[str, np.ndarray] = {}
    point: dict[str, tuple[list[str], np.ndarray]] = {}
    for name, kp in dropout_rates(model, guide).items():
        var = f"{name}.keep_prob"
        posterior[var] = np.repeat(_np(kp, np.float64)[None, None], S, axis=1)
        dims[var] = _site_dims(var, name, layers[name], kp.shape)
    for site_name, site in draws.networks[0].nodes.items():
        if site_name in weight_sites and not weights:
            continue
        layer_name = by_prefix.get(site_name.rsplit(".", 1)[0])
        value = torch.stack([cast(torch.Tensor, network.nodes[site_name]["value"]) for network in draws.networks])
        shape = tuple(value.shape[1:])
        site_dims = (
            _site_dims(site_name, layer_name, layers[layer_name], shape)
            if layer_name is not None
            else [f"{site_name}.dim_{i}" for i in range(len(shape))]
        )
        if isinstance(_unwrap(site["fn"]), dist.Delta):
            point[site_name] = (site_dims, _np(value[0], np.float64))
        else:
            posterior[site_name] = _np(value, np.float64)[None]
            dims[site_name] = site_dims

    constant: dict[str, np.ndarray] = {}
    pred_constant: dict[str, np.ndarray] = {}
    if task == "regression":
        sigma = float(model.noise_scale)
        constant["noise_scale"] = np.full(N, sigma)
        if x.dim() == 2:
            constant["x"] = _np(x, np.float64)
            coords["feature"] = np.arange(x.shape[1])
        if x_new is not None:
            pred_constant["noise_scale"] = np.full(len(x_new), sigma)
            if x_new.dim() == 2:
                pred_constant["x"] = _np(x_new, np.float64)
                pred_coords["feature"] = np.arange(x_new.shape[1])
    if x_new is not None:
        pred_coords["pred_id"] = np.arange(len(x_new))

    methods = "; ".join(f"{n}={layer.method!r}" for n, layer in layers.items())
    attrs = {
        "inference_library": "pyro",
        "inference_library_version": pyro.__version__,
        "bayesdrop_task": task,
        "bayesdrop_num_samples": S,
        "bayesdrop_seed": "none" if seed is None else seed,
        "bayesdrop_methods": methods,
        "bayesdrop_draws": "independent draws from the variational guide; one chain",
    }
    idata = _arviz.from_dict(
        posterior=posterior,
        posterior_predictive=predictive(out, y_rep),
        log_likelihood={"y": _np(ll, np.float64)[None]},
        observed_data={"y": _np(y, np.int64 if task == "classification" else np.float64)},
        constant_data=constant or None,
        predictions=predictive(*new) if new is not None else None,
        predictions_constant_data=pred_constant or None,
        coords=coords,
        dims=dims,
        pred_coords=pred_coords,
        pred_dims=pred_dims,
        attrs=attrs,
    )
    if point:
        import xarray as xr

        _arviz.add_group(
            idata,
            "point_estimates",
            xr.Dataset({k: (d, v) for k, (d, v) in point.items()}, attrs={"description": "Delta sites of the guide"}),
        )
    return idata


def save_netcdf(idata: Any, path: str | os.PathLike) -> Path:
    """Write ``idata`` (every group and the attributes) to a netCDF4 file; returns the path."""
    _require_idata(idata)
    _arviz.to_netcdf(idata, path)
    return Path(path)


def load_netcdf(path: str | os.PathLike) -> Any:
    """Read an InferenceData written by :func:`save_netcdf` (loaded into memory)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`path` {os.fspath(path)!r} does not exist")
    return _arviz.from_netcdf(path)


# ----------------------------------------------------------------------------- reading idata


def _require_idata(idata: Any) -> None:
    if not _arviz.is_inference_data(idata):
        raise TypeError(
            f"`idata` must be an arviz.InferenceData (see bd.to_inference_data), got {type(idata).__name__}"
        )


def _group(idata: Any, group: str, need: Sequence[str] = ()) -> Any:
    _require_idata(idata)
    if group not in idata.groups():
        raise ValueError(f"`idata` has no {group!r} group (groups: {list(idata.groups())})")
    ds = getattr(idata, group)
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


def _observed(idata: Any, n: int) -> np.ndarray:
    y = np.asarray(_group(idata, "observed_data", ["y"])["y"].values)
    if y.shape != (n,):
        raise ValueError(f"`idata`: observed_data y has shape {y.shape}, expected ({n},)")
    return y


def _class_draws(idata: Any, group: str) -> np.ndarray:
    p = _draws(_group(idata, group, ["probs"])["probs"])
    if p.ndim != 3:
        raise ValueError(f"`idata`: `probs` must be (chain, draw, point, class), got {p.ndim + 1} dimensions")
    return p


def _regression_draws(idata: Any, group: str) -> tuple[np.ndarray, np.ndarray]:
    mu = _draws(_group(idata, group, ["mu"])["mu"])
    const = "constant_data" if group == "posterior_predictive" else "predictions_constant_data"
    if const not in idata.groups() or "noise_scale" not in getattr(idata, const):
        raise ValueError(f"`idata`: a regression predictive needs the observation noise `noise_scale` in {const!r}")
    sigma = np.asarray(getattr(idata, const)["noise_scale"].values, dtype=np.float64)
    if mu.ndim != 2 or sigma.shape != mu.shape[1:]:
        raise ValueError(
            f"`idata`: `mu` must be (chain, draw, point) and `noise_scale` (point,), got {mu.shape}, {sigma.shape}"
        )
    if not (sigma > 0).all():
        raise ValueError("`idata`: `noise_scale` must be > 0")
    return mu, sigma


def _logmeanexp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (np.log(np.exp(a - m).mean(axis=axis, keepdims=True)) + m).squeeze(axis)


def _lppd_points(idata: Any) -> np.ndarray | None:
    """:math:`\\log \\frac1S \\sum_s p(y_n \\mid \\theta_s)` per point from ``log_likelihood``, if present."""
    if "log_likelihood" not in idata.groups() or "y" not in idata.log_likelihood:
        return None
    return _logmeanexp(_draws(idata.log_likelihood["y"]), 0)


def _entropy(p: np.ndarray) -> np.ndarray:
    from scipy.special import xlogy

    return -xlogy(p, p).sum(-1)


def _check_bins(n_bins: Any) -> int:
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"`n_bins` must be a positive int, got {n_bins!r}")
    return n_bins


def _check_group(group: Any) -> str:
    if group not in _GROUPS:
        raise ValueError(f"`group` must be one of {list(_GROUPS)}, got {group!r}")
    return group


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


def expected_calibration_error(probs: Any, y: Any, *, n_bins: int = 15) -> float:
    r"""ECE of predicted class probabilities ``probs`` (N, C) against labels ``y`` (N,).

    .. math:: \mathrm{ECE} = \sum_b \frac{|B_b|}{N}\,\big|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big|

    over ``n_bins`` equal-width confidence bins, as :func:`calibration` reports
    it from an ``InferenceData``; this form takes tensors or arrays directly.
    """
    p = probs.detach().cpu().numpy() if torch.is_tensor(probs) else np.asarray(probs)
    t = y.detach().cpu().numpy() if torch.is_tensor(y) else np.asarray(y)
    if p.ndim != 2 or t.shape != p.shape[:1]:
        raise ValueError(f"`probs` must be (N, C) and `y` (N,), got {p.shape} and {t.shape}")
    return float(_reliability(p.astype(np.float64), t, _check_bins(n_bins))["ece"])


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
    return _reliability(probs, _observed(idata, probs.shape[0]), n_bins)


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
        ``(N,)`` values in [0, 1].
    """
    if _task(idata, "posterior_predictive") != "regression":
        raise ValueError("`idata` holds a classification predictive; PIT is computed for regression")
    mu, sigma = _regression_draws(idata, "posterior_predictive")
    return _pit(mu, sigma, _observed(idata, mu.shape[1]).astype(np.float64))


def calibration(idata: Any, *, n_bins: int = 15, levels: Sequence[float] = (0.5, 0.8, 0.9, 0.95)) -> dict[str, float]:
    r"""Accuracy and calibration of the posterior predictive against ``observed_data``.

    Classification (from ``posterior_predictive.probs``): ``accuracy``,
    ``nll``, ``brier``, ``ece``, ``mce`` (``n_bins`` equal-width bins) and
    ``mean_confidence``.  Regression (from ``posterior_predictive.mu`` and
    ``constant_data.noise_scale``): ``rmse`` of the predictive mean, ``nll``,
    ``coverage_{100 m}`` for each central interval of mass m in ``levels``,
    ``pit_ks`` (Kolmogorov-Smirnov distance of the PIT values from uniform)
    and ``mean_std``.  Formulas in the module docstring.

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
    lppd = _lppd_points(idata)
    if task == "classification":
        draws = _class_draws(idata, "posterior_predictive")
        probs = draws.mean(0)
        y = _observed(idata, probs.shape[0]).astype(np.int64)
        if y.min() < 0 or y.max() >= probs.shape[1]:
            raise ValueError(f"`idata`: observed labels must lie in [0, {probs.shape[1] - 1}]")
        if lppd is None:
            with np.errstate(divide="ignore"):
                lppd = np.log(probs[np.arange(len(y)), y])
        onehot = np.eye(probs.shape[1])[y]
        rel = _reliability(probs, y, n_bins)
        return {
            "accuracy": float((probs.argmax(-1) == y).mean()),
            "nll": float(-lppd.mean()),
            "brier": float(((probs - onehot) ** 2).sum(-1).mean()),
            "ece": rel["ece"],
            "mce": rel["mce"],
            "mean_confidence": float(probs.max(-1).mean()),
            "n_bins": n_bins,
        }
    mu, sigma = _regression_draws(idata, "posterior_predictive")
    y = _observed(idata, mu.shape[1]).astype(np.float64)
    if lppd is None:
        from scipy.stats import norm

        lppd = _logmeanexp(norm.logpdf(y[None], mu, sigma[None]), 0)
    u = _pit(mu, sigma, y)
    out = {
        "rmse": float(np.sqrt(((mu.mean(0) - y) ** 2).mean())),
        "nll": float(-lppd.mean()),
    }
    for m in levels:
        out[f"coverage_{100 * m:g}"] = float(((u >= (1 - m) / 2) & (u <= (1 + m) / 2)).mean())
    s = np.sort(u)
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
        Arrays of shape ``(N,)``.
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


def loo_summary(idata: Any) -> dict[str, Any]:
    r"""PSIS-LOO and WAIC (``az.loo``, ``az.waic``) with the Pareto k counts.

    Returns ``elpd_loo``, ``se``, ``p_loo``, ``lppd``
    (:math:`\sum_n \log \frac1S \sum_s p(y_n \mid \theta_s)`), ``elpd_waic``,
    ``se_waic``, ``p_waic``, ``good_k`` (ArviZ's sample-size dependent
    threshold :math:`\min(1 - 1/\log_{10} S, 0.7)`), ``k_max``, the counts
    ``k<=0.5``, ``0.5<k<=0.7``, ``0.7<k<=1``, ``k>1`` and ``k>good_k``, and
    ``warnings`` (the texts ArviZ warned with, recorded rather than shown).
    Variational draws often give many large k: report them, do not hide them.
    """
    _group(idata, "log_likelihood", ["y"])
    _group(idata, "posterior")
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
        "warnings": sorted({" ".join(str(w.message).split()) for w in caught}),
    }


# ----------------------------------------------------------------------------- plots


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
    y = _observed(idata, len(u["prediction"]))
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
        ax.scatter(x, _observed(idata, len(x)), s=6, color="k", alpha=0.5, label="test points")
    if train is not None:
        xt, yt = _data(train, "train")
        if yt is None:
            raise ValueError("`train` must include targets y")
        ax.scatter(_np(xt[:, 0]), _np(yt), s=8, color="tab:orange", alpha=0.8, label="training points")
    ax.set(xlabel="x", ylabel="y", title="Posterior predictive")
    ax.legend(fontsize="small")
    return _finish(fig, path)


# ----------------------------------------------------------------------------- report


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
