r"""Posterior draws as ``arviz.InferenceData``: :func:`to_inference_data`, netCDF files.

For people who analyse a trained model/guide pair with ArviZ.  :func:`to_inference_data` draws ``num_samples``
networks :math:`\theta_s \sim q(\theta)` from the guide (:class:`~bayesdrop.posterior.PosteriorSampler`: one
ordinary forward pass per draw, so any module works in the network).  What LOO means on dropout draws, and the
formulas of the metrics: ``docs/analysis.md``.

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

Example
-------
>>> idata = bd.to_inference_data(model, guide, data.test, num_samples=200)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from ..data import as_tensors
from ..distributions import base_distribution
from ..guides import DropoutGuide, dropout_rates
from ..likelihoods import Likelihood
from ..posterior import PosteriorSampler, device_of
from . import arviz as _arviz
from .metrics import _require_idata

__all__ = ["to_inference_data", "save_netcdf", "load_netcdf"]


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
    ``observed_data``, ``constant_data`` (regression: ``noise_scale``, ``x``), ``point_estimates``
    (Delta guide sites other than weights, if any) and, with
    ``predictions``, ``predictions`` and ``predictions_constant_data``.

    Variational draws are independent: the ``chain`` dimension has size 1.

    Parameters
    ----------
    model : bayesdrop.Likelihood
        A likelihood (:class:`~bayesdrop.Classifier`, :class:`~bayesdrop.Regressor` or a user's own): its
        :meth:`~bayesdrop.Likelihood.predictive_variables` (class probabilities ``probs``, regression means ``mu``,
        the network output ``f`` by default) and :meth:`~bayesdrop.Likelihood.constant_data` fill the groups.
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
    if not isinstance(model, Likelihood):
        raise TypeError(
            f"`model` must be a bd.Likelihood (bd.Classifier, bd.Regressor, ...), got {type(model).__name__}"
        )
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
    model.check_targets(y, name="data.y")
    x_new = None if predictions is None else _data(predictions, "predictions")[0]

    S, N = num_samples, len(x)
    dev = device_of(model, guide)
    was_training = model.training
    model.eval()
    try:
        with _rng_restored(dev) if seed is not None else contextlib.nullcontext():
            if guide._order is None:
                guide(x[:2].to(dev))
            if seed is not None:  # after the guide's set-up run, which draws too
                torch.manual_seed(seed)
            draws = PosteriorSampler(model, guide, S, x[:2].to(dev))
            out, y_rep = draws.run(x.to(dev), batch_size)
            ll = model.log_likelihood(out, y.to(dev))
            new = draws.run(x_new.to(dev), batch_size) if x_new is not None else None
    finally:
        model.train(was_training)

    coords: dict[str, Any] = {"obs_id": np.arange(N), **model.coords()}
    dims: dict[str, list[str]] = {"y": ["obs_id", *model.target_dims(y)]}
    pred_coords: dict[str, Any] = dict(model.coords())
    pred_dims: dict[str, list[str]] = {"y": ["pred_id", *dims["y"][1:]]}

    def group(variables: dict[str, tuple[list[str], torch.Tensor]], obs: str, add_dims: dict[str, list[str]]) -> dict:
        """ArviZ arrays of the likelihood's variables, their dims (after ``obs``) recorded in ``add_dims``."""
        for name, (var_dims, _) in variables.items():
            add_dims[name] = [obs, *var_dims]
        return {name: _np(value, np.float64) for name, (_, value) in variables.items()}

    def predictive(out_: torch.Tensor, y_: torch.Tensor, obs: str, add_dims: dict[str, list[str]]) -> dict:
        variables = group(model.predictive_variables(out_), obs, add_dims)
        return {"y": _np(y_, _dtype(y))[None], **{k: v[None] for k, v in variables.items()}}

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
        if isinstance(base_distribution(cast(dist.TorchDistribution, site["fn"])), dist.Delta):
            point[site_name] = (site_dims, _np(value[0], np.float64))
        else:
            posterior[site_name] = _np(value, np.float64)[None]
            dims[site_name] = site_dims

    constant = group(model.constant_data(x), "obs_id", dims)
    pred_constant = group(model.constant_data(x_new), "pred_id", pred_dims) if x_new is not None else {}
    if x_new is not None:
        pred_coords["pred_id"] = np.arange(len(x_new))

    methods = "; ".join(f"{n}={layer.method!r}" for n, layer in layers.items())
    attrs = {
        "inference_library": "pyro",
        "inference_library_version": pyro.__version__,
        "bayesdrop_likelihood": type(model).__name__,
        "bayesdrop_num_samples": S,
        "bayesdrop_seed": "none" if seed is None else seed,
        "bayesdrop_methods": methods,
        "bayesdrop_draws": "independent draws from the variational guide; one chain",
    }
    idata = _arviz.from_dict(
        posterior=posterior,
        posterior_predictive=predictive(out, y_rep, "obs_id", dims),
        log_likelihood={"y": _np(ll, np.float64)[None]},
        observed_data={"y": _np(y, _dtype(y))},
        constant_data=constant or None,
        predictions=predictive(*new, "pred_id", pred_dims) if new is not None else None,
        coords=coords,
        dims=dims,
        pred_coords=pred_coords,
        pred_dims=pred_dims,
        attrs=attrs,
    )
    if pred_constant:  # after from_dict, which reads this group with `dims` instead of `pred_dims` (arviz 0.2x)
        import xarray as xr

        coords_of = {d: pred_coords[d] for name in pred_constant for d in pred_dims[name] if d in pred_coords}
        _arviz.add_group(
            idata,
            "predictions_constant_data",
            xr.Dataset({k: (pred_dims[k], v) for k, v in pred_constant.items()}, coords=coords_of),
        )
    if point:
        import xarray as xr

        _arviz.add_group(
            idata,
            "point_estimates",
            xr.Dataset({k: (d, v) for k, (d, v) in point.items()}, attrs={"description": "Delta sites of the guide"}),
        )
    return idata


def _dtype(y: torch.Tensor) -> type:
    """The NumPy dtype of observations like ``y``: int64 for integer (class) targets, else float64."""
    return np.float64 if y.is_floating_point() else np.int64


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
