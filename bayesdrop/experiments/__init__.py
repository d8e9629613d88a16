"""Experiment protocols shared by the tests, the benchmarks and the command line.

:mod:`~bayesdrop.experiments.runs` turns a run configuration into data, model and guide (and rebuilds a run
directory); :mod:`~bayesdrop.experiments.compare` trains every method on one budget into one table;
:mod:`~bayesdrop.experiments.defaults` is the defaults matrix: every registered method trained with the library's
defaults against a plain PyTorch network of the same architecture and budget.
"""

from . import compare, defaults, runs

__all__ = ["compare", "defaults", "runs"]
