"""Experiment protocols shared by the tests, the benchmarks and the command line.

:mod:`bayesdrop.experiments.defaults` is the defaults matrix: every registered method trained with the library's
defaults against a plain PyTorch network of the same architecture and budget.
"""

from . import defaults

__all__ = ["defaults"]
