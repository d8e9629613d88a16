r"""Posterior predictive analysis with ArviZ: InferenceData, calibration, uncertainty, LOO, plots, a report.

For people who evaluate what a trained model knows and does not.  One job per module:

* :mod:`~bayesdrop.diagnostics.inference_data`: :func:`to_inference_data` draws networks from the guide into an
  ``arviz.InferenceData`` (groups and variables described there), netCDF files;
* :mod:`~bayesdrop.diagnostics.metrics`: accuracy, NLL, Brier, ECE / MCE, RMSE (one definition each), PIT and
  coverage, the entropy decomposition, PSIS-LOO;
* :mod:`~bayesdrop.diagnostics.kfold`: K-fold cross-validation of the elpd, where PSIS-LOO on dropout draws fails;
* :mod:`~bayesdrop.diagnostics.detection`: out-of-distribution detection (AUROC, AUPR, FPR95 of entropy, mutual
  information and maximum probability) and accuracy-rejection curves;
* :mod:`~bayesdrop.diagnostics.plots`: the figures;
* :mod:`~bayesdrop.diagnostics.report`: a markdown summary with its figures.

Every ArviZ call goes through :mod:`~bayesdrop.diagnostics.arviz`.  Formulas and what LOO means on dropout draws:
``docs/analysis.md``.

Example
-------
>>> idata = bd.to_inference_data(model, guide, data.test, num_samples=200)
>>> bd.diagnostics.calibration(idata)
"""

from .detection import accuracy_rejection, average_precision, fpr_at_tpr, ood, roc_auc
from .inference_data import load_netcdf, save_netcdf, to_inference_data
from .kfold import compare_kfold, kfold, kfold_check
from .metrics import (
    accuracy,
    calibration,
    compare_loo,
    expected_calibration_error,
    loo_check,
    loo_summary,
    nll,
    pit,
    reliability,
    rmse,
    uncertainty,
)
from .plots import (
    plot_dropout_rates,
    plot_entropy,
    plot_forecast_steps,
    plot_loo_pit,
    plot_ood,
    plot_ppc,
    plot_predictive_band,
    plot_reliability,
    plot_training,
)
from .report import write_report

__all__ = [
    "to_inference_data",
    "nll",
    "accuracy",
    "rmse",
    "expected_calibration_error",
    "save_netcdf",
    "load_netcdf",
    "calibration",
    "reliability",
    "pit",
    "uncertainty",
    "loo_summary",
    "loo_check",
    "compare_loo",
    "kfold",
    "kfold_check",
    "compare_kfold",
    "ood",
    "roc_auc",
    "average_precision",
    "fpr_at_tpr",
    "accuracy_rejection",
    "plot_reliability",
    "plot_ppc",
    "plot_loo_pit",
    "plot_forecast_steps",
    "plot_dropout_rates",
    "plot_entropy",
    "plot_predictive_band",
    "plot_training",
    "plot_ood",
    "write_report",
]
