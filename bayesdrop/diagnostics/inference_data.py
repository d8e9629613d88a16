r"""Posterior draws as ``arviz.InferenceData``: :func:`to_inference_data`, netCDF files.

For people who analyse a trained model/guide pair with ArviZ.  :func:`to_inference_data` draws ``num_samples``
networks :math:`\theta_s \sim q(\theta)` from the guide (:class:`~bayesdrop.posterior.PosteriorSampler`: one
ordinary forward pass per draw, so any module works in the network).  What LOO means on dropout draws, and the
formulas of the metrics: ``docs/analysis.md``.

The draws
---------
By default (``noise="shared"``) every draw samples each random quantity of q once, the per-example sites
(dropout masks, multiplicative noise, cutout centres, pooling draws) included, and shares it across all inputs:
a draw is one network, one sample of the weights :math:`W_s = M \operatorname{diag}(z_s)` (Gal & Ghahramani
2016), and every group holds what that network gives.  ``log_likelihood`` then holds
:math:`\log p(y_n \mid \theta_s)` at posterior draws, as PSIS-LOO and WAIC assume (Vehtari et al. 2017), and the
replicated data sets of ``posterior_predictive`` are each drawn from one network (the class frequencies of
:func:`~bayesdrop.diagnostics.plot_ppc`).  ``noise="per-example"`` gives every input of a draw its own masks, the
Monte Carlo scheme of the training objective: the predictive of each point has the same law, so per-point
metrics agree, but the draws are not posterior samples.

The InferenceData
-----------------
Variational draws are independent and come without chains: every sampled
group has a ``chain`` dimension of size 1 and a ``draw`` dimension of size S
(one chain is right for independent draws: no chains are faked).  PSIS-LOO is
computed with a relative efficiency of 1; ``az.summary`` cannot compute R-hat
from one chain (NaN, and ArviZ logs so).  With N data points (dim ``obs_id``),
C classes (``class``) and M new inputs (``pred_id``):

* ``posterior``: random quantities only, as draws: the per-example sites of each network drawn once (e.g.
  ``net.0.noise``, the Bernoulli masks of the inputs of layer ``net.0``, dims ``net.0.unit``), and every random
  global site of the guide other than weights (e.g. ``net.0.noise`` of per-unit ``vbd``).  Absent when no layer
  has a random quantity besides its weights and masks of the weights' shape, or when all of them are constant
  over the draws: with ``weights=False`` (the default) for networks of ``vd``, ``sparse-vd``, ``vbd`` with its
  default per-weight granularity (per-unit ``vbd`` has ``posterior`` draws) and ``dropconnect``; for
  ``dropout++(1)``, whose keep probabilities start at 1 (its masks are all ones while they stay there);
  with ``num_samples=1``; and, by chance, for masks whose keep probabilities are close to 1 with few draws.
  ArviZ's ``az.loo`` needs a ``posterior`` group for the relative efficiency of the draws (ArviZ 0.2x raises
  ``TypeError: Must be able to extract a posterior group from data``): pass ``reff=1.0`` (the draws are
  independent) or use :func:`bayesdrop.diagnostics.loo_summary`, which does.
* ``posterior_predictive``: ``y`` (``obs_id``), replicated labels or
  regression outputs drawn from the likelihood; ``probs`` (``obs_id, class``),
  the softmax of every draw (classification); ``mu`` (``obs_id``), the network
  output of every draw (regression); in the network's dtype (float32 unless the model is double), the largest
  arrays of the InferenceData.
* ``log_likelihood``: ``y`` (``obs_id``), :math:`\log p(y_n \mid \theta_s)`
  from ``model.log_likelihood`` (float64).
* ``observed_data``: ``y`` (``obs_id``): class labels in the smallest signed integer type that holds the classes
  (int8 up to 127; so are the replicated ``y``), real targets float64.
* ``constant_data`` (regression): ``noise_scale`` (``obs_id``), the
  observation noise :math:`\sigma` (a point estimate when learned), and ``x``
  (``obs_id, feature``) for 2-D inputs.
* ``predictions`` and ``predictions_constant_data``: the same for the new
  inputs (``pred_id``).
* ``point_estimates`` (outside ArviZ's scheme): deterministic quantities of q, without chain and draw:
  ``{layer}.keep_prob`` for every Bayesian layer, the keep probabilities from :func:`bayesdrop.dropout_rates`
  (dims ``{layer}.unit``, or ``{layer}.out, {layer}.in`` for per-weight rates; point estimates for every
  registered method: fixed, or functions of Delta sites and variational parameters such as
  :math:`\log\alpha`), the Delta global sites of the guide (e.g. ``net.0.k`` of Dropout++, ``net.0.gamma`` of
  vbd), and any site whose draws are all equal (a point mass in effect).

So ``az.summary``, ``az.ess`` and ``az.rhat`` of ``posterior`` see no constants.  Weight tensors, and masks of the
weights' shape (DropConnect), are left out unless ``weights=True`` (they can be large): then random ones (vd,
sparse-vd, per-weight vbd, the masks) are drawn into ``posterior`` and Delta ones go to ``point_estimates``.

Example
-------
>>> idata = bd.to_inference_data(model, guide, data.test, num_samples=200)
>>> idata_train = bd.to_inference_data(model, guide, data.train)  # PSIS-LOO on the data the posterior saw
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from ..checks import seed as check_seed
from ..data import as_tensors, loader_batches
from ..distributions import base_distribution
from ..guides import DropoutGuide, dropout_rates, rate_entries
from ..handlers import eval_mode
from ..likelihoods import Likelihood
from ..posterior import PosteriorSampler, check_noise, device_of, guide_setup, seeded
from ..sites import SHARED_PLATE
from . import arviz as _arviz
from .metrics import _require_idata

__all__ = ["to_inference_data", "save_netcdf", "load_netcdf"]


def _batches(
    data: Any, name: str, batch_size: int | None, labelled: bool
) -> tuple[int | None, Iterator[tuple[torch.Tensor, Any]]]:
    """The number of inputs of ``data`` (``None`` for a DataLoader: its batches tell) and its ``(x, y)`` passes of at
    most ``batch_size`` inputs (``None``: no bound), ``y`` None where ``labelled`` is false: slices of a split, an
    ``(x, y)`` tuple or a tensor (checked here, before any draw), or the batches of a DataLoader (as
    :func:`~bayesdrop.fit` takes them: ``(x, y)`` pairs, dicts with keys ``"x"`` and ``"y"``), each split further to
    ``batch_size``; nothing is concatenated, so a DataLoader streams."""
    if isinstance(data, torch.utils.data.DataLoader):
        return None, _loader_passes(data, name, batch_size, labelled)
    if labelled:
        x, y = as_tensors(data, name=name)
    else:
        x, y = (data, None) if torch.is_tensor(data) else (as_tensors(data, name=name)[0], None)
    step = max(len(x), 1) if batch_size is None else batch_size
    return len(x), ((x[i : i + step], y[i : i + step] if y is not None else None) for i in range(0, len(x), step))


def _loader_passes(
    loader: torch.utils.data.DataLoader, name: str, batch_size: int | None, labelled: bool
) -> Iterator[tuple[torch.Tensor, Any]]:
    """The passes over a DataLoader's batches (:func:`_batches`); its first batch is fetched on a fork of torch's
    generators, since the loader's iterator draws its seeds (and a shuffle its permutation) then, which must not
    come from the networks' random stream."""
    targets: list[torch.Tensor] = []
    batches = loader_batches(loader, targets if labelled else None, name=name)
    with torch.random.fork_rng(devices=[]):
        first = next(batches, None)
    for xb in itertools.chain([] if first is None else [first], batches):
        yb = targets.pop() if labelled else None
        step = len(xb) if batch_size is None else batch_size
        for i in range(0, len(xb), step):
            yield xb[i : i + step], (yb[i : i + step] if yb is not None else None)


class _Columns:
    """Arrays built pass by pass along the observation axis ``axis``: written into arrays of ``total`` observations
    allocated at the first pass when the number of inputs is known (peak memory: the result), else kept as parts and
    joined at the end, each part released as it is copied (a DataLoader's: the result and its parts)."""

    def __init__(self, axis: int, total: int | None) -> None:
        self.axis, self.total = axis, total
        self.parts: dict[str, list[np.ndarray]] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.filled: dict[str, int] = {}

    def add(self, name: str, value: np.ndarray) -> None:
        if self.total is None:
            self.parts.setdefault(name, []).append(value)
            return
        if name not in self.arrays:
            shape = list(value.shape)
            shape[self.axis] = self.total
            self.arrays[name], self.filled[name] = np.empty(shape, dtype=value.dtype), 0
        i, n = self.filled[name], value.shape[self.axis]
        self.arrays[name][(slice(None),) * self.axis + (slice(i, i + n),)] = value
        self.filled[name] = i + n

    def join(self) -> dict[str, np.ndarray]:
        for name, parts in self.parts.items():
            self.total = sum(p.shape[self.axis] for p in parts)
            while parts:
                self.add(name, parts.pop(0))
        if any(n != self.total for n in self.filled.values()):
            raise RuntimeError(f"passes over {self.filled} observations of {self.total}")
        arrays, self.arrays, self.parts = self.arrays, {}, {}
        return arrays


def _np(t: torch.Tensor, dtype: Any = None) -> np.ndarray:
    a = t.detach().cpu().numpy()
    return a.astype(dtype) if dtype is not None else a


def _site_dims(var: str, layer_name: str, layer: Any, shape: Sequence[int], site: str | None = None) -> list[str]:
    """Dimension names: the axes of weight site ``site`` (the layer's ``weight``; or the weight that noise site
    ``site`` feeds), its input units, or ``{var}.dim_i``; ``layer_name``: the dims' prefix."""
    if site is not None and site in layer.noise_sites:
        site = layer.noise_sites[site].weight
    site = "weight" if site is None else site
    w = tuple(layer.weight_sites[site].shape) if site in layer.weight_sites else ()
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
    batch_size: int | None = 256,
    weights: bool = False,
    noise: str = "shared",
) -> Any:
    r"""Posterior predictive of a trained model/guide pair as ``arviz.InferenceData``.

    Draws ``num_samples`` networks :math:`\theta_s \sim q` from the guide (in
    passes of ``batch_size`` inputs, :class:`~bayesdrop.posterior.PosteriorSampler`; every input sees the same S
    networks) and records the groups described in the module docstring:
    ``posterior``, ``posterior_predictive``, ``log_likelihood``,
    ``observed_data``, ``constant_data`` (regression: ``noise_scale``, ``x``), ``point_estimates``
    (keep probabilities and the guide's Delta sites) and, with
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
        ``torch.utils.data.DataLoader`` yielding ``(x, y)`` pairs or dicts with keys ``"x"`` and ``"y"``, read
        batch by batch (:func:`bayesdrop.data.loader_batches`).  Inputs shaped for
        the network (e.g. images for ``lenet5``).  For PSIS-LOO pass the training data: LOO estimates the
        predictive density of new data from the data the posterior was fitted to (Vehtari et al. 2017).
    num_samples : int
        Number S of draws from the guide (PSIS-LOO needs at least 2; a single draw gives no ``posterior`` group).
    predictions : tensor, array, split or DataLoader, optional
        New inputs (their targets, if any, are ignored) for the ``predictions`` group.
    seed : int or None
        Seed of the draws (torch's generators are restored afterwards); ``None``
        uses the current random state.  :func:`bayesdrop.evaluate` with ``noise="shared"`` and the same seed and
        ``num_samples`` draws the same networks.
    batch_size : int or None
        Inputs per forward pass (a DataLoader's batches are split to it; ``None``: each batch, or all the inputs,
        in one pass).  The inputs stream: peak memory is that of the result plus one pass, O(batch_size x S) on
        top of the S x N arrays the groups hold.  With shared noise the networks, and so every group but the
        replicated ``y`` (fresh draws of the likelihood, equal in law), do not depend on it.
    weights : bool
        Also store weight sites, and per-weight masks (DropConnect): draws in ``posterior`` when random (vd,
        sparse-vd, per-weight vbd, the masks), values in ``point_estimates`` when Delta.
    noise : {"shared", "per-example"}
        ``"shared"`` (default): each draw samples every random quantity once, the per-example sites (masks,
        multiplicative noise) included, and shares it across all inputs, so that a draw is one sample of the
        weights, :math:`W_s = M \operatorname{diag}(z_s)` (Gal & Ghahramani 2016), and ``log_likelihood`` holds
        :math:`\log p(y_n \mid \theta_s)` at posterior draws, as PSIS-LOO and WAIC assume.  ``"per-example"``:
        every input of a draw gets its own masks, the Monte Carlo scheme of training; the predictive of each
        point has the same law, but the draws are not posterior samples and LOO / WAIC on them are biased
        (:func:`~bayesdrop.diagnostics.loo_summary` says so).

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
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int, got {num_samples!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive int or None, got {batch_size!r}")
    if seed is not None:
        seed = check_seed(seed, "seed", "or None")
    if not isinstance(weights, bool):
        raise TypeError(f"`weights` must be a bool, got {type(weights).__name__}")
    shared = check_noise(noise)
    S, dev = num_samples, device_of(model, guide)
    size, passes = _batches(data, "data", batch_size, labelled=True)
    new_size, new_passes = (
        _batches(predictions, "predictions", batch_size, False) if predictions is not None else (None, None)
    )
    if new_size == 0:  # checked before any draw (a DataLoader's emptiness shows after the training data's)
        raise ValueError("`predictions` is empty")
    first = next(passes, None)
    if first is None:
        raise ValueError("`data` is empty")
    if first[1] is None:
        raise ValueError("`data` must include targets y (pass new inputs without targets as `predictions`)")
    y_dtype = _dtype(first[1], model)
    train = _Groups(model, "obs_id", y_dtype, size)
    new = _Groups(model, "pred_id", y_dtype, new_size) if new_passes is not None else None
    with eval_mode(model):
        with seeded(seed, dev, guide_setup(guide, first[0], dev)):  # the recipe of bd.evaluate: the same networks
            guide.check_dtypes()  # as predict and evaluate: a model cast after its guide ran, named
            draws = PosteriorSampler(model, guide, S, first[0][:1].to(dev), shared_noise=shared)
            train.record(draws, itertools.chain([first], passes), dev)
            if new is not None and new_passes is not None:
                new.record(draws, new_passes, dev)
    if new is not None and not new.size:
        raise ValueError("`predictions` is empty")

    coords: dict[str, Any] = {"obs_id": np.arange(train.size), **model.coords()}
    dims: dict[str, list[str]] = dict(train.dims)
    pred_coords: dict[str, Any] = dict(model.coords())
    pred_dims: dict[str, list[str]] = {**(new.dims if new is not None else {}), "y": ["pred_id", *dims["y"][1:]]}
    posterior, point = _posterior_sites(model, guide, draws, weights)
    for name, (site_dims, _) in posterior.items():
        dims[name] = site_dims
    observed, ll, constant = train.observed.join(), train.log_likelihood.join(), train.constant.join()
    pred_constant = new.constant.join() if new is not None else {}
    if new is not None:
        pred_coords["pred_id"] = np.arange(new.size)

    methods = "; ".join(f"{n}={layer.method!r}" for n, layer, _ in guide.pairs())
    attrs = {
        "inference_library": "pyro",
        "inference_library_version": pyro.__version__,
        "bayesdrop_likelihood": type(model).__name__,
        "bayesdrop_num_samples": S,
        "bayesdrop_seed": "none" if seed is None else seed,
        "bayesdrop_methods": methods,
        "bayesdrop_noise": noise,
        "bayesdrop_draws": (
            "independent draws from the variational guide; one chain; "
            + (
                "each draw one network, its masks shared by every input (a posterior sample of the weights)"
                if shared
                else "masks drawn afresh for every input (not posterior samples: LOO and WAIC are biased)"
            )
        ),
    }
    idata = _arviz.from_dict(
        posterior={k: v for k, (_, v) in posterior.items()} or None,
        posterior_predictive=train.predictive.join(),
        log_likelihood={"y": ll["y"]},
        observed_data={"y": observed["y"]},
        constant_data=constant or None,
        predictions=new.predictive.join() if new is not None else None,
        coords=coords,
        dims=dims,
        pred_coords=pred_coords,
        pred_dims=pred_dims,
        attrs=attrs,
    )
    import xarray as xr

    if pred_constant:  # after from_dict, which reads this group with `dims` instead of `pred_dims` (arviz 0.2x)
        coords_of = {d: pred_coords[d] for name in pred_constant for d in pred_dims[name] if d in pred_coords}
        _arviz.add_group(
            idata,
            "predictions_constant_data",
            xr.Dataset({k: (pred_dims[k], v) for k, v in pred_constant.items()}, coords=coords_of),
        )
    if point:
        description = "point estimates of q: keep probabilities, Delta sites of the guide, sites constant over draws"
        _arviz.add_group(
            idata,
            "point_estimates",
            xr.Dataset({k: (d, v) for k, (d, v) in point.items()}, attrs={"description": description}),
        )
    return idata


class _Groups:
    """The draws of one set of inputs, recorded pass by pass: ``posterior_predictive`` (or ``predictions``) and,
    for labelled data, ``log_likelihood`` and ``observed_data``; ``constant_data``; each variable's dims after the
    observation dimension ``obs``.  Memory: the arrays themselves and one pass."""

    def __init__(self, model: Likelihood, obs: str, y_dtype: Any, size: int | None) -> None:
        self.model, self.obs, self.y_dtype = model, obs, y_dtype
        self.predictive = _Columns(2, size)  # (chain, draw, obs, ...)
        self.log_likelihood = _Columns(2, size)
        self.observed = _Columns(0, size)
        self.constant = _Columns(0, size)
        self.dims: dict[str, list[str]] = {}
        self.size = 0

    def record(self, draws: PosteriorSampler, passes: Iterator[tuple[torch.Tensor, Any]], dev: torch.device) -> None:
        """Run every pass ``(x, y)`` (``y`` None for new inputs) through the S networks of ``draws``."""
        model = self.model
        for xb, yb in passes:
            out, y_rep = draws.run(xb.to(dev))
            self.dims["y"] = [self.obs, *model.target_dims(yb)]
            self.predictive.add("y", _np(y_rep, self.y_dtype)[None])
            for name, (var_dims, value) in model.predictive_variables(out).items():
                self.dims[name] = [self.obs, *var_dims]
                self.predictive.add(name, _np(value)[None])  # in the network's dtype: float32 halves the memory
            if yb is not None:
                model.check_targets(yb, name="data.y")
                log_p = model.log_likelihood_float64(out, yb.to(dev))  # PSIS exponentiates it
                self.log_likelihood.add("y", _np(log_p, np.float64)[None])
                self.observed.add("y", _np(yb, self.y_dtype))
            for name, (var_dims, value) in model.constant_data(xb).items():
                self.dims[name] = [self.obs, *var_dims]
                self.constant.add(name, _np(value, np.float64))
            self.size += len(xb)
            del out, y_rep


def _posterior_sites(
    model: Likelihood, guide: DropoutGuide, draws: PosteriorSampler, weights: bool
) -> tuple[dict[str, tuple[list[str], np.ndarray]], dict[str, tuple[list[str], np.ndarray]]]:
    """The ``posterior`` variables (``(1, S, ...)`` draws of the random sites) and the ``point_estimates`` (keep
    probabilities, Delta sites, sites constant over the draws), each with its dims."""
    layers = {name: layer for name, layer, _ in guide.pairs()}
    by_prefix = {layer._pyro_name: name for name, layer in layers.items()}
    weight_sites = {layer.site(w) for layer in layers.values() for w in layer.weight_sites}
    weight_shapes = {name: {tuple(w.shape) for w in layer.weight_sites.values()} for name, layer in layers.items()}
    posterior: dict[str, tuple[list[str], np.ndarray]] = {}
    point: dict[str, tuple[list[str], np.ndarray]] = {}
    entries = rate_entries(guide)
    for key, kp in dropout_rates(model, guide).items():  # deterministic functions of the variational parameters
        var, (_, layer, _, rate_site) = f"{key}.keep_prob", entries[key]
        point[var] = (_site_dims(var, key, layer, kp.shape, rate_site), _np(kp, np.float64))
    for site_name, site in draws.networks[0].nodes.items():
        value = torch.stack([cast(torch.Tensor, network.nodes[site_name]["value"]) for network in draws.networks])
        if any(f.name == SHARED_PLATE for f in site.get("cond_indep_stack", ())):
            value = value[:, 0]  # a per-example site drawn once per network: without its size-1 plate
        shape = tuple(value.shape[1:])
        layer_name = by_prefix.get(site_name.rsplit(".", 1)[0])
        delta = isinstance(base_distribution(cast(dist.TorchDistribution, site["fn"])), dist.Delta)
        mask = not delta and layer_name is not None and shape in weight_shapes[layer_name]  # DropConnect's
        if (site_name in weight_sites or mask) and not weights:
            continue
        site_dims = (
            _site_dims(site_name, layer_name, layers[layer_name], shape)
            if layer_name is not None
            else [f"{site_name}.dim_{i}" for i in range(len(shape))]
        )
        if delta or bool((value == value[:1]).all()):  # a point mass of q, or no variation over the draws
            point[site_name] = (site_dims, _np(value[0], np.float64))
        else:
            posterior[site_name] = (site_dims, _np(value, np.float64)[None])
    return posterior, point


def _dtype(y: torch.Tensor, model: Likelihood) -> Any:
    """The NumPy dtype of observations like ``y``: float64 for real targets; for class labels the smallest signed
    integer type that holds ``model.num_classes`` (int8 up to 127 classes: the replicated labels are S x N), int64
    when the model does not say."""
    if y.is_floating_point():
        return np.float64
    classes = getattr(model, "num_classes", None)
    if not isinstance(classes, int):
        return np.int64
    return next(t for t in (np.int8, np.int16, np.int32, np.int64) if classes - 1 <= np.iinfo(t).max)


def save_netcdf(idata: Any, path: str | os.PathLike) -> Path:
    """Write ``idata`` (every group and the attributes) to a netCDF4 file; returns the path.

    The file is written atomically (a temporary file beside ``path``, renamed over it) with the permission bits of
    every bayesdrop artefact (0644, as :func:`bayesdrop.fileio.atomic_write`).

    Raises
    ------
    TypeError
        If ``idata`` is not an InferenceData.
    OSError
        Of the subclass the system gave (``FileNotFoundError`` when the directory of ``path`` is missing,
        ``PermissionError``, a full disk), naming ``path``; ``path`` is left as it was.
    """
    _require_idata(idata)
    _arviz.to_netcdf(idata, path)
    return Path(path)


def load_netcdf(path: str | os.PathLike) -> Any:
    """Read an InferenceData written by :func:`save_netcdf` (loaded into memory).  Errors name ``path``: those of
    :func:`bayesdrop.diagnostics.arviz.from_netcdf` (a ``ValueError`` for a file that is not a readable netCDF
    InferenceData, ``FileNotFoundError``, ``IsADirectoryError``, ``TypeError`` for a path of another type)."""
    return _arviz.from_netcdf(path, name="path")
