"""The defaults matrix's check of one case, shared by ``test_defaults.py`` (MNIST-1D, the toy regression) and
``test_readme.py`` (digits: the README snippet's runs).  See ``test_defaults.py`` for what is asserted and why."""

from __future__ import annotations

import functools

from readme_snippet import run as readme_run
from readme_snippet import snippet_epochs

from bayesdrop.experiments import defaults as D


@functools.cache
def floor(dataset: str, epochs: int, arch: str = "mlp") -> D.Case:
    return D.run_floor(dataset, epochs=epochs, arch=arch)


@functools.cache
def run(method: str, dataset: str, epochs: int, arch: str = "mlp") -> D.Case:
    if arch == "mlp" and dataset == "digits" and epochs == snippet_epochs():  # the README snippet's run: train once
        return readme_run(method)["case"]
    return D.run_method(method, dataset, epochs=epochs, arch=arch)


def fast_digits(method: str) -> D.Case:
    """The fast-tier digits case of ``method`` (the README snippet's run)."""
    return run(method, "digits", D.SETTINGS["digits"].fast_epochs)


def check(method: str, dataset: str, epochs: int, arch: str = "mlp") -> None:
    base = floor(dataset, epochs, arch)
    case = run(method, dataset, epochs, arch)
    print(f"{method} on {dataset} ({arch}), {epochs} epochs: {case}; floor {base}")
    assert not case.warnings, case.warnings
    assert case.kept >= 1, f"a layer of {method} has every weight pruned"
    if dataset == "toy-regression":
        assert case.rmse <= D.RMSE_TOLERANCE * base.rmse, (case.rmse, base.rmse)
    else:
        assert case.error <= base.error + D.ERROR_TOLERANCE, (case.error, base.error)
