"""The one module that calls ArviZ.

Every ArviZ call of bayesdrop goes through the functions here, so that a port
to ArviZ 1.x (which takes one nested dict in ``from_dict`` and drops ``waic``
and ``plot_ppc``) touches this file only.  ArviZ is imported lazily: ``import
bayesdrop`` does not pay for it.

Written against ArviZ 0.2x (checked with 0.23.4).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from typing import Any

__all__ = [
    "az",
    "is_inference_data",
    "from_dict",
    "add_group",
    "only",
    "loo",
    "waic",
    "compare",
    "psislw",
    "summary",
    "ess",
    "rhat",
    "plot_ppc",
    "plot_loo_pit",
    "to_netcdf",
    "from_netcdf",
]


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


def is_inference_data(obj: Any) -> bool:
    """Whether ``obj`` is an ``arviz.InferenceData``."""
    return isinstance(obj, az().InferenceData)


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
    ``predictions_constant_data``).
    """
    return az().from_dict(
        posterior=posterior,
        posterior_predictive=posterior_predictive,
        predictions=predictions,
        log_likelihood=log_likelihood,
        observed_data=observed_data,
        constant_data=constant_data,
        predictions_constant_data=predictions_constant_data,
        coords=coords,
        dims=dims,
        pred_coords=pred_coords,
        pred_dims=pred_dims,
        attrs=attrs,
    )


def add_group(idata: Any, name: str, dataset: Any) -> None:
    """Add an ``xarray.Dataset`` as a group outside ArviZ's scheme (e.g. ``point_estimates``)."""
    idata.add_groups({name: dataset})


def only(idata: Any, *groups: str) -> Any:
    """A new InferenceData with the given groups of ``idata`` alone (e.g. ``log_likelihood`` for LOO)."""
    return az().InferenceData(**{g: getattr(idata, g) for g in groups})


def loo(idata: Any, *, pointwise: bool = True, var_name: str | None = None) -> Any:
    """PSIS-LOO (``arviz.loo``) of independent draws (relative efficiency 1, what ArviZ takes for one chain, given
    so that no ``posterior`` group is needed); its Pareto-k warnings are left to the caller."""
    return az().loo(idata, pointwise=pointwise, var_name=var_name, reff=1.0)


def waic(idata: Any, *, pointwise: bool = True, var_name: str | None = None) -> Any:
    """WAIC (``arviz.waic``; gone in ArviZ 1.x, where it would be computed here)."""
    return az().waic(idata, pointwise=pointwise, var_name=var_name)


def compare(elpd: dict[str, Any]) -> Any:
    """``arviz.compare`` of PSIS-LOO results (``ELPDData`` of :func:`loo`, by model name): a pandas DataFrame with
    ``rank``, ``elpd_loo``, ``p_loo``, ``elpd_diff``, ``weight`` (stacking), ``se``, ``dse``, ``warning``."""
    return az().compare(elpd, ic="loo", method="stacking")


def psislw(log_ratios: Any, *, reff: float = 1.0) -> tuple[Any, Any]:
    """Pareto-smoothed log importance weights and Pareto k (``arviz.psislw``); the sample axis is the last."""
    return az().psislw(log_ratios, reff=reff)


def summary(idata: Any, **kwargs: Any) -> Any:
    """``arviz.summary`` (a pandas DataFrame)."""
    return az().summary(idata, **kwargs)


def ess(idata: Any, **kwargs: Any) -> Any:
    """``arviz.ess`` (an ``xarray.Dataset``)."""
    return az().ess(idata, **kwargs)


def rhat(idata: Any, **kwargs: Any) -> Any:
    """``arviz.rhat`` (an ``xarray.Dataset``; NaN with one chain)."""
    return az().rhat(idata, **kwargs)


def plot_ppc(idata: Any, *, ax: Any, var_names: list[str], num_pp_samples: int, random_seed: int, kind: str) -> Any:
    """``arviz.plot_ppc`` drawn on the given matplotlib ``ax``."""
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


def plot_loo_pit(idata: Any, *, ax: Any, y: str, ecdf: bool = False) -> Any:
    """``arviz.plot_loo_pit`` drawn on the given matplotlib ``ax``, with the PSIS weights of independent draws
    (relative efficiency 1; ArviZ would otherwise compute the ESS of every ``posterior`` variable for them)."""
    ll = idata.log_likelihood[y].stack(__sample__=("chain", "draw"))
    log_weights = psislw(-ll, reff=1.0)[0].values
    return az().plot_loo_pit(idata, y=y, log_weights=log_weights, ecdf=ecdf, ax=ax, show=False)


def to_netcdf(idata: Any, path: str | os.PathLike) -> str:
    """Write every group (and the top-level attributes) to a netCDF4 file, atomically: into a unique temporary
    file beside ``path``, then renamed over it (an interrupted write leaves ``path`` as it was)."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(path) or ".")
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def from_netcdf(path: str | os.PathLike) -> Any:
    """Read a file written by :func:`to_netcdf`, fully loaded into memory (the file is closed)."""
    arviz = az()
    with arviz.rc_context({"data.load": "eager"}):
        return arviz.from_netcdf(os.fspath(path))
