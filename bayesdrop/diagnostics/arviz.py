"""The one module that calls ArviZ.

Every ArviZ call of bayesdrop goes through the functions here, so that the rest of the library is the same under
both ArviZ lines:

* ArviZ 0.2x (Python 3.10-3.11; checked with 0.23.4): ``arviz.InferenceData``, ``from_dict`` with one keyword per
  group, ``loo`` / ``waic`` / ``compare`` / ``psislw`` / ``plot_ppc`` / ``plot_loo_pit`` in ``arviz``.
* ArviZ 1.x (Python >= 3.12; checked with 1.3.0: arviz-base, arviz-stats and arviz-plots 1.3): the InferenceData is
  an ``xarray.DataTree``, ``from_dict`` takes one nested dict, ``loo`` and ``compare`` come from arviz-stats (an
  ``ELPDData`` object and other columns), ``waic`` is gone (computed here), ``plot_ppc`` is
  ``arviz_plots.plot_ppc_dist``.

The functions here return what the 0.2x line returns, whichever line is installed: ``loo`` and ``waic`` a pandas
Series with ArviZ 0.2x's ``ELPDData`` entries (``elpd_loo``, ``se``, ``p_loo``, ``loo_i``, ``pareto_k``, ...; the
standard error with 0.2x's formula :math:`\\sqrt{n \\operatorname{Var}(\\mathrm{elpd}_i)}`), ``compare`` a
DataFrame with 0.2x's columns, :func:`groups` the names of the groups and :func:`group` a group as an
``xarray.Dataset``.  ArviZ is imported lazily: ``import bayesdrop`` does not pay for it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import warnings
from typing import Any

import numpy as np

from ..fileio import DeferredSignals, atomic_write_path, check_path

__all__ = [
    "az",
    "major_version",
    "is_inference_data",
    "groups",
    "group",
    "from_dict",
    "add_group",
    "only",
    "loo",
    "waic",
    "compare",
    "psislw",
    "check_psis_draws",
    "summary",
    "ess",
    "rhat",
    "plot_ppc",
    "plot_loo_pit",
    "to_netcdf",
    "from_netcdf",
]

_SAMPLE_DIMS = ("chain", "draw")
_LOO_INDEX = [
    "elpd_loo",
    "se",
    "p_loo",
    "n_samples",
    "n_data_points",
    "warning",
    "loo_i",
    "pareto_k",
    "scale",
    "good_k",
]
_WAIC_INDEX = ["elpd_waic", "se", "p_waic", "n_samples", "n_data_points", "warning", "waic_i", "scale"]
_WAIC_WARNING = (
    "For one or more samples the posterior variance of the log predictive densities exceeds 0.4. This could be "
    "indication of WAIC starting to fail. \nSee http://arxiv.org/abs/1507.04544 for details"
)


def az() -> Any:
    """The ``arviz`` module (imported on first use).

    ArviZ 0.2x announces its 1.x refactor with a ``FutureWarning`` on import;
    that notice is what this module exists for, so it is silenced here and
    only here.  No other ArviZ warning is touched.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning)
        import arviz

    return arviz


@functools.cache
def major_version() -> int:
    """The major version of the installed ArviZ: 0 (the 0.2x line) or 1 (arviz-base / arviz-stats / arviz-plots)."""
    return int(str(az().__version__).split(".")[0])


def _v1() -> bool:
    return major_version() >= 1


def is_inference_data(obj: Any) -> bool:
    """Whether ``obj`` is an ArviZ InferenceData: an ``arviz.InferenceData`` (0.2x) or an ``xarray.DataTree``
    (1.x)."""
    if _v1():
        import xarray as xr

        return isinstance(obj, xr.DataTree)
    return isinstance(obj, az().InferenceData)


def groups(idata: Any) -> list[str]:
    """The names of the groups of ``idata`` (``idata.groups()`` of 0.2x; the children of the 1.x DataTree)."""
    return list(idata.children) if _v1() else list(idata.groups())


def group(idata: Any, name: str) -> Any:
    """The group ``name`` of ``idata`` as an ``xarray.Dataset`` (KeyError when absent)."""
    if name not in groups(idata):
        raise KeyError(f"`idata` has no {name!r} group (groups: {groups(idata)})")
    return idata[name].to_dataset() if _v1() else getattr(idata, name)


def from_dict(
    *,
    posterior: dict | None = None,
    posterior_predictive: dict | None = None,
    predictions: dict | None = None,
    log_likelihood: dict | None = None,
    observed_data: dict | None = None,
    constant_data: dict | None = None,
    predictions_constant_data: dict | None = None,
    coords: dict | None = None,
    dims: dict | None = None,
    pred_coords: dict | None = None,
    pred_dims: dict | None = None,
    attrs: dict | None = None,
) -> Any:
    """``arviz.from_dict`` with the groups bayesdrop writes.

    Arrays of the sampled groups are ``(chain, draw, ...)``; ``dims`` name the
    remaining axes (``pred_dims`` those of ``predictions`` and
    ``predictions_constant_data``).  ``attrs`` are the top-level attributes (``idata.attrs``).  The groups left
    ``None`` are absent.
    """
    data = {
        "posterior": posterior,
        "posterior_predictive": posterior_predictive,
        "predictions": predictions,
        "log_likelihood": log_likelihood,
        "observed_data": observed_data,
        "constant_data": constant_data,
        "predictions_constant_data": predictions_constant_data,
    }
    if _v1():  # one nested dict; groups named *predictions* read pred_coords / pred_dims, *data* have no draws
        return az().from_dict(
            {name: values for name, values in data.items() if values is not None},
            coords=coords,
            dims=dims,
            pred_coords=pred_coords,
            pred_dims=pred_dims,
            attrs={"/": dict(attrs)} if attrs else None,
            check_conventions=False,  # its check that pred_id is shorter than draw would flag every large test set
        )
    return az().from_dict(**data, coords=coords, dims=dims, pred_coords=pred_coords, pred_dims=pred_dims, attrs=attrs)


def add_group(idata: Any, name: str, dataset: Any) -> None:
    """Add an ``xarray.Dataset`` as a group outside ArviZ's scheme (e.g. ``point_estimates``), in place."""
    if _v1():
        import xarray as xr

        idata[name] = xr.DataTree(dataset)
    else:
        idata.add_groups({name: dataset})


def only(idata: Any, *names: str) -> Any:
    """A new InferenceData with the given groups of ``idata`` alone (e.g. ``log_likelihood`` for LOO)."""
    if _v1():
        import xarray as xr

        return xr.DataTree.from_dict({name: group(idata, name) for name in names})
    return az().InferenceData(**{name: getattr(idata, name) for name in names})


def _log_likelihood(idata: Any, var_name: str | None) -> Any:
    """The pointwise log-likelihood ``var_name`` of ``idata`` (the only one when ``None``) as a DataArray."""
    ll = group(idata, "log_likelihood")
    if var_name is None:
        if len(ll.data_vars) != 1:
            raise TypeError(
                f"`idata` has {len(ll.data_vars)} variables in log_likelihood ({list(ll.data_vars)}): name one as "
                "`var_name`"
            )
        var_name = str(next(iter(ll.data_vars)))
    if var_name not in ll:
        raise KeyError(f"`idata`: log_likelihood has no variable {var_name!r} (has {list(ll.data_vars)})")
    return ll[var_name]


def _se(pointwise: Any) -> float:
    """ArviZ 0.2x's standard error of a sum of n pointwise values: :math:`\\sqrt{n \\operatorname{Var}(x_i)}`
    (``ddof=0``)."""
    values = np.asarray(pointwise, dtype=np.float64).ravel()
    return float(np.sqrt(len(values) * np.var(values)))


def check_psis_draws(n_draws: int, where: str = "`idata`", what: str = "PSIS-LOO", *, idata: bool = True) -> None:
    """Raise a ``ValueError`` when ``n_draws < 2``: Pareto-smoothed importance sampling needs at least 2 draws
    (ArviZ fails on one with an ``IndexError``).  ``where`` names the argument, ``what`` the computation; with
    ``idata`` the message says how to draw more."""
    if n_draws < 2:
        hint = " (draw more: bd.to_inference_data(..., num_samples=S), S in the hundreds)" if idata else ""
        raise ValueError(f"{where}: {what} needs at least 2 draws, got {n_draws}{hint}")


def _n_draws(da: Any) -> int:
    """The number of draws (chain x draw) of a DataArray of draws."""
    return int(np.prod([da.sizes[d] for d in _SAMPLE_DIMS if d in da.dims]))


def _series(values: list[Any], index: list[str]) -> Any:
    import pandas as pd

    return pd.Series(values, index=index, dtype=object)


def loo(idata: Any, *, pointwise: bool = True, var_name: str | None = None) -> Any:
    """PSIS-LOO (``arviz.loo``; arviz-stats' under 1.x) of independent draws (relative efficiency 1, what ArviZ takes
    for one chain, given so that no ``posterior`` group is needed); its Pareto-k warnings are left to the caller.

    Returns
    -------
    pandas.Series
        ArviZ 0.2x's ``ELPDData``: ``elpd_loo``, ``se``, ``p_loo``, ``n_samples``, ``n_data_points``, ``warning``,
        ``loo_i`` and ``pareto_k`` (DataArrays over the observation dims, with ``pointwise``), ``scale``
        (``"log"``) and ``good_k``.

    Raises
    ------
    ValueError
        If the log-likelihood has fewer than 2 draws.
    """
    check_psis_draws(_n_draws(_log_likelihood(idata, var_name)))
    if not _v1():
        return az().loo(idata, pointwise=pointwise, var_name=var_name, reff=1.0)
    import xarray as xr

    ll = _log_likelihood(idata, var_name).astype(np.float64)  # in float64 whatever the stored dtype, as 0.2x
    sample = [d for d in _SAMPLE_DIMS if d in ll.dims]
    log_weights, pareto_k = _psislw_v1(-ll, sample, 1.0)  # 0.2x's answer where the tail is too short to fit
    tree = xr.DataTree.from_dict({"log_likelihood": ll.to_dataset(name=str(ll.name))})
    res = az().loo(tree, pointwise=True, var_name=str(ll.name), reff=1.0, log_weights=log_weights, pareto_k=pareto_k)
    loo_i = res.elpd_i.rename("loo_i")
    entries = {
        "elpd_loo": float(res.elpd),
        "se": _se(loo_i.values),  # arviz-stats 1.x divides the variance by n - 1; 0.2x (and bayesdrop's reports) by n
        "p_loo": float(res.p),
        "n_samples": int(res.n_samples),
        "n_data_points": int(res.n_data_points),
        "warning": bool(res.warning),
        "loo_i": loo_i,
        "pareto_k": res.pareto_k,
        "scale": "log",
        "good_k": float(res.good_k),
    }
    index = _LOO_INDEX if pointwise else [k for k in _LOO_INDEX if k not in ("loo_i", "pareto_k")]
    return _series([entries[k] for k in index], index)


def waic(idata: Any, *, pointwise: bool = True, var_name: str | None = None) -> Any:
    r"""WAIC (Watanabe 2010; ``arviz.waic`` under 0.2x, computed here under 1.x, which has none).

    :math:`\mathrm{elpd}_\mathrm{waic} = \sum_n \mathrm{lppd}_n - p_n` with
    :math:`\mathrm{lppd}_n = \log \frac1S \sum_s p(y_n \mid \theta_s)` and :math:`p_n` the variance of
    :math:`\log p(y_n \mid \theta_s)` over the draws (``ddof=0``); ``p_waic`` is :math:`\sum_n p_n` and ``se``
    :math:`\sqrt{n \operatorname{Var}(\mathrm{lppd}_n - p_n)}`, as ArviZ 0.2x.  ``warning`` (and a
    ``UserWarning``) when some :math:`p_n > 0.4`.

    Returns
    -------
    pandas.Series
        ArviZ 0.2x's ``ELPDData``: ``elpd_waic``, ``se``, ``p_waic``, ``n_samples``, ``n_data_points``,
        ``warning``, ``waic_i`` (with ``pointwise``) and ``scale``.
    """
    if not _v1():
        return az().waic(idata, pointwise=pointwise, var_name=var_name)
    from scipy.special import logsumexp

    ll = _log_likelihood(idata, var_name)
    sample = [d for d in _SAMPLE_DIMS if d in ll.dims]
    if len(sample) != 2:
        raise ValueError(f"`idata`: the log-likelihood must have chain and draw dimensions, has {ll.dims}")
    ll = ll.transpose(*sample, ...)
    values = np.asarray(ll.values, dtype=np.float64)
    n_samples = values.shape[0] * values.shape[1]
    flat = values.reshape(n_samples, -1)
    var_lpd = flat.var(axis=0)
    if np.any(var_lpd > 0.4):
        warnings.warn(_WAIC_WARNING, UserWarning, stacklevel=2)
    waic_values = (logsumexp(flat, axis=0) - np.log(n_samples) - var_lpd).reshape(values.shape[2:])
    waic_i = ll.isel(chain=0, draw=0, drop=True).copy(data=waic_values).rename("waic_i")
    entries = [
        float(waic_values.sum()),
        _se(waic_values),
        float(var_lpd.sum()),
        n_samples,
        int(flat.shape[1]),
        bool(np.any(var_lpd > 0.4)),
    ]
    if not pointwise:
        return _series([*entries, "log"], [k for k in _WAIC_INDEX if k != "waic_i"])
    return _series([*entries, waic_i, "log"], _WAIC_INDEX)


def compare(elpd: dict[str, Any]) -> Any:
    """``arviz.compare`` of PSIS-LOO results (:func:`loo` of each model, pointwise, by model name), stacking weights.

    Returns
    -------
    pandas.DataFrame
        One row per model, best first, with ArviZ 0.2x's columns: ``rank``, ``elpd_loo``, ``p_loo``,
        ``elpd_diff`` (the best model's ``elpd_loo`` minus this one's, >= 0), ``weight`` (stacking), ``se``,
        ``dse`` (the standard error of the difference, :math:`\\sqrt{n \\operatorname{Var}(d_i)}`), ``warning``
        (a warning of the model's PSIS-LOO) and ``scale``.
    """
    if not _v1():
        return az().compare(elpd, ic="loo", method="stacking")
    import pandas as pd
    from arviz_stats import ELPDDataLOO

    native = {}
    for name, res in elpd.items():
        if res.get("loo_i") is None:
            raise ValueError(f"`elpd[{name!r}]` must be a pointwise PSIS-LOO result (loo(..., pointwise=True))")
        native[name] = ELPDDataLOO(
            elpd=float(res["elpd_loo"]),
            se=float(res["se"]),
            p=float(res["p_loo"]),
            n_samples=int(res["n_samples"]),
            n_data_points=int(res["n_data_points"]),
            scale="log",
            warning=bool(res["warning"]),
            good_k=float(res["good_k"]),
            elpd_i=res["loo_i"],
            pareto_k=res["pareto_k"],
        )
    table = az().compare(native, method="stacking", round_to="none")
    best = str(table.index[0])
    best_i = np.asarray(elpd[best]["loo_i"].values, dtype=np.float64).ravel()
    rows = {}
    for name, row in table.iterrows():
        res = elpd[str(name)]
        diff_i = best_i - np.asarray(res["loo_i"].values, dtype=np.float64).ravel()
        rows[name] = {
            "rank": int(row["rank"]),
            "elpd_loo": float(res["elpd_loo"]),
            "p_loo": float(res["p_loo"]),
            "elpd_diff": float(elpd[best]["elpd_loo"]) - float(res["elpd_loo"]),
            "weight": float(row["weight"]),
            "se": float(res["se"]),
            "dse": 0.0 if name == best else _se(diff_i),
            "warning": bool(res["warning"]),
            "scale": "log",
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def psislw(log_ratios: Any, *, reff: float = 1.0) -> tuple[Any, Any]:
    r"""Pareto-smoothed log importance weights (normalised) and Pareto k (``arviz.psislw``; arviz-stats'
    ``psislw`` under 1.x); the sample axis is the last.  A DataArray gives DataArrays, an array arrays.

    The tail has :math:`\lceil \min(S/5, 3\sqrt{S / r_\mathrm{eff}}) \rceil` draws under 0.2x and
    :math:`\lfloor S/5 \rfloor` (:math:`S \le 225`) or :math:`\lfloor 3\sqrt{S / r_\mathrm{eff}} \rfloor` under
    1.x: the lines agree where these are equal (e.g. S = 50, 100, 200), and differ a little elsewhere.  Where the
    tail has fewer than 5 draws no Pareto distribution is fitted: the weights are the raw ones and k is infinite,
    as ArviZ 0.2x has it (arviz-stats 1.x raises instead).  Fewer than 2 draws raise a ``ValueError``.
    """
    shape = np.shape(log_ratios)
    check_psis_draws(int(shape[-1]) if shape else 0, "`log_ratios`", "PSIS", idata=False)
    if not _v1():
        return az().psislw(log_ratios, reff=reff)
    import xarray as xr

    da = xr.DataArray(log_ratios) if not isinstance(log_ratios, xr.DataArray) else log_ratios
    da = da.astype(np.float64)
    log_weights, k = _psislw_v1(da, [da.dims[-1]], reff)
    if isinstance(log_ratios, xr.DataArray):
        return log_weights, k
    return log_weights.values, k.values


def _psislw_v1(log_ratios: Any, sample_dims: list[Any], reff: float) -> tuple[Any, Any]:
    """arviz-stats' PSIS of a DataArray over ``sample_dims`` (the log weights in the dims' order of ``log_ratios``,
    k over the other dims), where a point whose tail cannot be fitted (arviz-stats raises a ValueError: fewer than
    5 tail draws, or all of them equal) keeps its raw normalised weights with k = inf, as in ArviZ 0.2x."""
    import xarray as xr
    from scipy.special import logsumexp

    az()  # registers the `azstats` accessor of arviz-stats; its psislw takes log-likelihoods, minus the log ratios
    n_draws = int(np.prod([log_ratios.sizes[d] for d in sample_dims]))
    n_tail = np.floor(3 * np.sqrt(n_draws / reff)) if n_draws * reff > 225 else np.floor(n_draws / 5)
    if n_tail >= 5:
        try:
            log_weights, k = (-log_ratios).azstats.psislw(r_eff=reff, dim=sample_dims)
            return log_weights.transpose(*log_ratios.dims), k
        except (ValueError, IndexError):  # some point cannot be fitted: each alone below
            pass
    other = [d for d in log_ratios.dims if d not in sample_dims]
    ordered = log_ratios.transpose(*other, *sample_dims)
    rows = np.asarray(ordered.values, dtype=np.float64).reshape(-1, int(np.prod(ordered.shape[len(other) :])))
    lw_rows = rows - logsumexp(rows, axis=1, keepdims=True)  # 0.2x's answer where no tail is fitted: k = inf
    k_rows = np.full(len(rows), np.inf)
    if n_tail >= 5:
        for i, row in enumerate(rows):
            with contextlib.suppress(ValueError, IndexError):
                lw_i, k_i = xr.DataArray(-row, dims=["__sample__"]).azstats.psislw(r_eff=reff, dim=["__sample__"])
                lw_rows[i], k_rows[i] = lw_i.values, float(k_i)
    log_weights = ordered.copy(data=lw_rows.reshape(ordered.shape)).transpose(*log_ratios.dims)
    k = ordered.isel({d: 0 for d in sample_dims}, drop=True).copy(data=k_rows.reshape(ordered.shape[: len(other)]))
    return log_weights, k


def summary(idata: Any, **kwargs: Any) -> Any:
    """``arviz.summary`` of the posterior (a pandas DataFrame, one row per scalar; its columns differ between the
    lines: 0.2x ``mean, sd, hdi_3%, hdi_97%, mcse_*, ess_*, r_hat``, 1.x ``mean, sd, eti*, ess_*, r_hat, mcse_*``)."""
    if _v1():
        kwargs.setdefault("round_to", "none")  # numbers, as 0.2x's, rather than 1.x's rounded text
    return az().summary(idata, **kwargs)


def _dataset(res: Any) -> Any:
    """``res`` as an ``xarray.Dataset`` (arviz-stats 1.x answers a DataTree of the group for a DataTree)."""
    import xarray as xr

    return res.to_dataset() if isinstance(res, xr.DataTree) else res


def ess(idata: Any, **kwargs: Any) -> Any:
    """``arviz.ess`` of the posterior (an ``xarray.Dataset``)."""
    return _dataset(az().ess(idata, **kwargs))


def rhat(idata: Any, **kwargs: Any) -> Any:
    """``arviz.rhat`` of the posterior (an ``xarray.Dataset``; NaN with one chain)."""
    return _dataset(az().rhat(idata, **kwargs))


def plot_ppc(idata: Any, *, ax: Any, var_names: list[str], num_pp_samples: int, random_seed: int, kind: str) -> Any:
    """``arviz.plot_ppc`` (0.2x) or ``arviz_plots.plot_ppc_dist`` (1.x) drawn on the given matplotlib ``ax``: the
    densities of ``num_pp_samples`` replicated data sets against the observed one (``random_seed`` picks the data
    sets under 0.2x; 1.x picks its own)."""
    if not _v1():
        return az().plot_ppc(
            idata,
            kind=kind,
            var_names=var_names,
            num_pp_samples=num_pp_samples,
            random_seed=random_seed,
            ax=ax,
            show=False,
            group="posterior",
        )
    import xarray as xr
    from arviz_plots import PlotCollection, plot_ppc_dist

    # a PlotCollection whose one plot is `ax` (arviz-plots would otherwise make a pyplot figure); each replicated
    # data set is one line, as the `sample` aesthetic of plot_ppc_dist
    viz = xr.DataTree(
        xr.Dataset(
            {
                "figure": np.array(ax.figure, dtype=object),
                "plot": np.array(ax, dtype=object),
                "row_index": 0,
                "col_index": 0,
            }
        )
    )
    layout = xr.Dataset(
        {v: ("sample", np.zeros(num_pp_samples)) for v in var_names}, coords={"sample": np.arange(num_pp_samples)}
    )
    pc = PlotCollection(layout, viz, backend="matplotlib", aes={"overlay_ppc": ["sample"]})
    return plot_ppc_dist(
        only(idata, "posterior_predictive", "observed_data"),
        var_names=var_names,
        kind=kind,
        num_samples=num_pp_samples,
        plot_collection=pc,
        backend="matplotlib",
        visuals={"remove_axis": False, "title": False},
    )


def _loo_pit_values(idata: Any, y: str) -> np.ndarray:
    """LOO-PIT :math:`\\sum_s w_{ns} 1[\\tilde y_{sn} \\le y_n]` of a continuous ``y`` with the PSIS weights of
    independent draws (relative efficiency 1): ArviZ 0.2x's ``loo_pit`` for continuous data."""
    ll = _log_likelihood(idata, y).transpose(*_SAMPLE_DIMS, ...)
    n_samples = ll.shape[0] * ll.shape[1]
    log_weights = psislw(-np.asarray(ll.values, dtype=np.float64).reshape(n_samples, -1).T, reff=1.0)[0]
    y_rep = group(idata, "posterior_predictive")[y].transpose(*_SAMPLE_DIMS, ...).values.reshape(n_samples, -1).T
    y_obs = np.asarray(group(idata, "observed_data")[y].values, dtype=np.float64).reshape(-1)
    weights = np.exp(log_weights - log_weights.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    return np.clip((weights * (y_rep <= y_obs[:, None])).sum(1), 0.0, 1.0)


def plot_loo_pit(idata: Any, *, ax: Any, y: str, ecdf: bool = False) -> Any:
    """``arviz.plot_loo_pit`` drawn on the given matplotlib ``ax``, with the PSIS weights of independent draws
    (relative efficiency 1; ArviZ would otherwise compute the ESS of every ``posterior`` variable for them).

    Under ArviZ 1.x (whose ``plot_loo_pit`` draws the ECDF difference only, on a figure of its own) the same
    LOO-PIT values are drawn here: their density against the uniform one, or with ``ecdf`` the ECDF minus the
    uniform CDF, each with the pointwise 94% band of N uniform values.  Fewer than 2 draws raise a ``ValueError``.
    """
    check_psis_draws(_n_draws(_log_likelihood(idata, y)), "`idata`", "LOO-PIT")
    if not _v1():
        ll = idata.log_likelihood[y].stack(__sample__=("chain", "draw"))
        log_weights = psislw(-ll, reff=1.0)[0].values
        return az().plot_loo_pit(idata, y=y, log_weights=log_weights, ecdf=ecdf, ax=ax, show=False)
    from scipy.stats import binom

    u = np.sort(_loo_pit_values(idata, y).ravel())
    n = len(u)
    if ecdf:
        grid = np.linspace(0.0, 1.0, 201)
        lo, hi = (binom.ppf(q, n, grid) / n - grid for q in (0.03, 0.97))
        ax.fill_between(grid, lo, hi, color="0.85", label="94% band of uniform values")
        ax.step(u, np.arange(1, n + 1) / n - u, where="post", color="tab:blue", label="LOO-PIT")
        ax.axhline(0.0, color="k", lw=0.8)
    else:
        bins = max(5, min(30, int(np.sqrt(n))))
        lo, hi = (binom.ppf(q, n, 1.0 / bins) * bins / n for q in (0.03, 0.97))
        ax.axhspan(lo, hi, color="0.85", label="94% band of uniform values")
        ax.hist(u, bins=bins, range=(0.0, 1.0), density=True, histtype="step", color="tab:blue", label="LOO-PIT")
        ax.axhline(1.0, color="k", lw=0.8, ls="--", label="uniform")
    ax.set_xlim(0.0, 1.0)
    ax.legend(fontsize="small")
    return ax


def to_netcdf(idata: Any, path: str | os.PathLike) -> str:
    """Write every group (and the top-level attributes) to a netCDF4 file, atomically
    (:func:`bayesdrop.fileio.atomic_write_path`): into a unique temporary file beside ``path``, then renamed over it
    with the permission bits of every bayesdrop artefact (0644); an interrupted write leaves ``path`` as it was.
    SIGINT or SIGTERM during the write (which netCDF's writer would swallow inside its callbacks) is raised as
    ``KeyboardInterrupt`` once the temporary file is written, before it replaces ``path``
    (:class:`bayesdrop.fileio.DeferredSignals`).

    Every numeric variable is compressed, as ArviZ's own writer does, and carries a Fletcher-32 checksum per chunk
    (HDF5's ``fletcher32`` filter, :data:`CHECKSUMMED`), which HDF5 verifies as it reads: a chunk changed on disk
    is a read error (:func:`from_netcdf`'s ``ValueError``), not other numbers.  Compression alone did not guard
    the data: HDF5 stores a chunk that deflate does not shrink (class probabilities) as it is, unchecked, and a
    bit flipped there loaded as other probabilities.  HDF5's own bookkeeping outside the chunks is checksummed in
    part only (a chunk index of the file format h5netcdf writes is not), so a flip there can still go unnoticed.
    The file is any netCDF4 reader's, ArviZ's ``from_netcdf`` included.

    Raises
    ------
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike``.
    ValueError
        If ``path`` is empty.
    OSError
        Of the subclass the system gave (``FileNotFoundError`` for a missing directory, ``PermissionError``, a full
        disk), naming ``path``.
    """
    path = check_path(path, "path", "the netCDF file to write")
    with DeferredSignals() as signals:  # netCDF's writer swallows a KeyboardInterrupt raised in its callbacks

        def write(name: str) -> None:
            _write_checksummed(idata, name)
            signals.raise_pending()  # before the rename: an interrupted write leaves ``path`` as it was

        atomic_write_path(path, write)
    return path


#: The netCDF encoding of every numeric variable :func:`to_netcdf` writes: deflate and a Fletcher-32 checksum
CHECKSUMMED = {"zlib": True, "fletcher32": True}


def _encoding(dataset: Any) -> dict[str, dict[str, bool]]:
    """:data:`CHECKSUMMED` for each numeric (bool, int, float, complex) variable of the ``xarray.Dataset``
    ``dataset``; strings stay as they are (HDF5 filters no variable-length data)."""
    return {name: dict(CHECKSUMMED) for name, var in dataset.variables.items() if var.dtype.kind in "biufc"}


def _write_checksummed(idata: Any, name: str) -> None:
    """Write ``idata`` to the netCDF4 file ``name``, every numeric variable :data:`CHECKSUMMED`, with each ArviZ
    line's engine: ArviZ 1.x's DataTree in one call (xarray's engine, netCDF4 or h5netcdf, whichever is installed),
    encoded node by node; ArviZ 0.2x's InferenceData with h5netcdf, as its own ``to_netcdf`` lays it out, the
    top-level attributes at the root and each group below it."""
    import xarray as xr

    if _v1():
        encoding = {node.path: _encoding(node.to_dataset(inherit=False)) for node in idata.subtree}
        idata.to_netcdf(name, encoding=encoding)
        return
    xr.Dataset(attrs=dict(idata.attrs)).to_netcdf(name, mode="w", engine="h5netcdf")
    for group_name in idata.groups():
        dataset = getattr(idata, group_name)
        dataset.to_netcdf(name, mode="a", group=group_name, engine="h5netcdf", encoding=_encoding(dataset))


def from_netcdf(path: str | os.PathLike, *, name: str = "path") -> Any:
    """Read a file written by :func:`to_netcdf`, fully loaded into memory (the file is closed).

    Parameters
    ----------
    path
        The netCDF file.
    name
        The argument name that error messages give.

    Raises
    ------
    TypeError
        If ``path`` is not a str or ``os.PathLike``.
    FileNotFoundError
        If nothing is at ``path``.
    IsADirectoryError
        If ``path`` is a directory.
    ValueError
        If ``path`` is not a readable netCDF InferenceData (a truncated or empty file, another format, not a
        regular file), or is a netCDF file that holds no InferenceData group (``posterior``,
        ``posterior_predictive``, ...: a plain ``xarray.Dataset`` written with ``to_netcdf``); if ``path`` is empty.
    OSError
        If the file cannot be read (permission denied, an I/O error), naming ``path``.
    """
    shown = check_path(path, name, "a netCDF InferenceData file")
    if not os.path.exists(shown):
        raise FileNotFoundError(errno.ENOENT, f"`{name}` does not exist", shown)
    if os.path.isdir(shown):
        raise IsADirectoryError(errno.EISDIR, f"`{name}` is a directory, not a netCDF InferenceData file", shown)
    if not os.path.isfile(shown):  # a FIFO or a device: HDF5 would block or read garbage
        raise ValueError(f"`{name}` {shown!r} is not a readable netCDF InferenceData: not a regular file")
    try:
        if _v1():
            import xarray as xr

            idata = xr.load_datatree(shown)
        else:
            arviz = az()
            with arviz.rc_context({"data.load": "eager"}):
                idata = arviz.from_netcdf(shown)
    except OSError as err:
        if isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EIO, errno.EISDIR, errno.ENOENT):
            code = err.errno if err.errno is not None else errno.EACCES
            raise OSError(code, f"cannot read `{name}`: {err.strerror or err}", shown) from err
        raise ValueError(f"`{name}` {shown!r} is not a readable netCDF InferenceData: {_why(err)}") from err
    except Exception as err:  # another format, a file HDF5 reads but xarray cannot decode, ...
        raise ValueError(f"`{name}` {shown!r} is not a readable netCDF InferenceData: {_why(err)}") from err
    if not groups(idata):  # a netCDF file of other data: ArviZ reads its groups only, and finds none
        raise ValueError(
            f"`{name}` {shown!r} is a netCDF file but holds no InferenceData groups (posterior, "
            "posterior_predictive, observed_data, ...): not a file written by bd.diagnostics.save_netcdf"
        )
    return idata


def _why(err: Exception) -> str:
    """HDF5's error ``err`` in words: a chunk whose checksum fails (:func:`to_netcdf`'s files) names the file as
    corrupt, which HDF5's message does not."""
    text = str(err)
    if "filter returned failure" in text or "checksum" in text:
        return f"the file is corrupt: a checksum of its data or metadata does not match ({text})"
    return text
