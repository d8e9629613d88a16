"""The defaults matrix's check of one case, shared by ``test_defaults.py`` (MNIST-1D, the toy regression) and
``test_readme.py`` (digits: the README snippet's runs).  See ``test_defaults.py`` for what is asserted and why."""

from __future__ import annotations

import functools

from readme_snippet import run as readme_run
from readme_snippet import snippet_epochs

from bayesdrop.experiments import defaults as D


@functools.cache
def floor(dataset: str, epochs: int) -> D.Case:
    return D.run_floor(dataset, epochs=epochs)


@functools.cache
def run(method: str, dataset: str, epochs: int) -> D.Case:
    if dataset == "digits" and epochs == snippet_epochs():  # the README snippet is this very case: train once
        return readme_run(method)["case"]
    return D.run_method(method, dataset, epochs=epochs)


def fast_digits(method: str) -> D.Case:
    """The fast-tier digits case of ``method`` (the README snippet's run)."""
    return run(method, "digits", D.SETTINGS["digits"].fast_epochs)


def check(method: str, dataset: str, epochs: int) -> None:
    base = floor(dataset, epochs)
    case = run(method, dataset, epochs)
    print(f"{method} on {dataset}, {epochs} epochs: {case}; floor {base}")
    assert not case.warnings, case.warnings
    assert case.kept >= 1, f"a layer of {method} has every weight pruned"
    if dataset == "toy-regression":
        assert case.rmse <= D.RMSE_TOLERANCE * base.rmse, (case.rmse, base.rmse)
    else:
        assert case.error <= base.error + D.ERROR_TOLERANCE, (case.error, base.error)
