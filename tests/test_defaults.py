"""The defaults matrix: every registered method, trained as a user would train it, against plain PyTorch.

Every case uses :mod:`bayesdrop.experiments.defaults`: ``bd.models.mlp``, ``bd.Classifier`` / ``bd.Regressor``,
``bd.DropoutGuide`` and ``bd.fit`` with every argument at its default except ``epochs`` (one budget per data set,
the same for every method) and the seed.  Nothing in this file is set per method: a method that needs other
settings gets them as its defaults (:class:`bayesdrop.methods.TrainingDefaults`).  A method registered later is
checked here the moment it registers.

Asserted per case: test error at most 1.5 points above the plain network's (``nn.Dropout(0.5)`` on the hidden
units, Adam at torch's default learning rate, the same widths and epochs), or test RMSE within 10 % of it for the
regression; at least one weight kept in every layer; no :class:`bayesdrop.CollapseWarning`.

The digits cases of the fast tier are the README snippet's runs (``readme_snippet.py``: the same network and budget
with every other setting at its default).  The fast tier runs in ``make test``; the full tier (longer budgets) is marked ``slow`` and its figures, over three
seeds, are in ``benchmarks/results/defaults.md``.  Fixed seeds make each case deterministic on a CPU; on another
device the floating-point order differs and a case near its tolerance may land on the other side.
"""

from __future__ import annotations

import functools

import pyro
import pytest
import torch
from readme_snippet import run as readme_run
from readme_snippet import snippet, snippet_epochs

import bayesdrop as bd
from bayesdrop.experiments import defaults as D

CASES = [(m, d) for d in D.SETTINGS for m in bd.methods.names()]
# The digits cases are the README snippet's runs (test_readme.py): under pytest-xdist (make test) one worker runs
# them all, so that each is trained once.
README_RUNS = pytest.mark.xdist_group("readme-snippet")
FAST_CASES = [pytest.param(m, d, marks=README_RUNS if d == "digits" else ()) for m, d in CASES]


@pytest.fixture(autouse=True)
def _no_validation():
    """Pyro's validation (on in the tests, conftest.py) checks every step of bd.fit and changes no number it
    computes (test_conformance.py); the matrix runs without it, as a user who wants speed does."""
    with pyro.validation_enabled(False):
        yield


@functools.cache
def _floor(dataset: str, epochs: int) -> D.Case:
    return D.run_floor(dataset, epochs=epochs)


@functools.cache
def _run(method: str, dataset: str, epochs: int) -> D.Case:
    if dataset == "digits" and epochs == snippet_epochs():  # the README snippet is this very case: train once
        return readme_run(method)["case"]
    return D.run_method(method, dataset, epochs=epochs)


def fast_digits(method: str) -> D.Case:
    """The fast-tier digits case of ``method`` (trained once for the matrix and the tests below)."""
    return _run(method, "digits", D.SETTINGS["digits"].fast_epochs)


@README_RUNS
def test_the_readme_snippet_is_the_digits_fast_case():
    """Same widths and budget, every other setting at its default: the README's runs serve the matrix."""
    assert snippet_epochs() == D.SETTINGS["digits"].fast_epochs
    assert "bd.models.mlp(64, [300, 100], 10, " in snippet() and D.SETTINGS["digits"].hidden == (300, 100)


def check(method: str, dataset: str, epochs: int) -> None:
    floor = _floor(dataset, epochs)
    case = _run(method, dataset, epochs)
    print(f"{method} on {dataset}, {epochs} epochs: {case}; floor {floor}")
    assert not case.warnings, case.warnings
    assert case.kept >= 1, f"a layer of {method} has every weight pruned"
    if dataset == "toy-regression":
        assert case.rmse <= D.RMSE_TOLERANCE * floor.rmse, (case.rmse, floor.rmse)
    else:
        assert case.error <= floor.error + D.ERROR_TOLERANCE, (case.error, floor.error)


@pytest.mark.parametrize("method, dataset", FAST_CASES)
def test_defaults_fast(method, dataset):
    check(method, dataset, D.SETTINGS[dataset].fast_epochs)


@pytest.mark.slow
@pytest.mark.parametrize("method, dataset", CASES)
def test_defaults_full(method, dataset):
    check(method, dataset, D.SETTINGS[dataset].full_epochs)


@README_RUNS
def test_sal_polarises_its_gates_under_defaults():
    """Srinivas & Babu (2016) sec. 2.2: SAL's Beta(0.5, 0.5) prior pushes every gate to 0 or 1."""
    case = fast_digits("sal")
    k = torch.cat([r.flatten() for r in bd.dropout_rates(case.model, case.guide).values()])
    polarised = ((k < 0.1) | (k > 0.9)).double().mean().item()
    print(f"sal: {100 * polarised:.1f} % of {k.numel()} gates within 0.1 of 0 or 1")
    assert polarised >= 0.9


@README_RUNS
def test_dropoutpp_presets_order_their_keep_probabilities_under_defaults():
    """Dropout++(0) pulls k down, (1) up, (flat) in between (Srinivas & Babu 2016, sec. 2.2)."""
    mean_k = {}
    for name in ("dropout++(0)", "dropout++(flat)", "dropout++(1)"):
        case = fast_digits(name)
        mean_k[name] = torch.cat([r.flatten() for r in bd.dropout_rates(case.model, case.guide).values()]).mean().item()
    print(mean_k)
    assert mean_k["dropout++(0)"] < mean_k["dropout++(flat)"] < mean_k["dropout++(1)"]


@README_RUNS
def test_default_bernoulli_is_more_uncertain_on_noise_than_on_digits():
    """Mutual information (epistemic uncertainty) of MC dropout: at least 2x higher on uniform-noise images."""
    case = fast_digits("bernoulli")
    ds = bd.data.load("digits")
    noise = torch.rand(len(ds.test), 64, generator=torch.Generator().manual_seed(1))
    idata = bd.to_inference_data(case.model, case.guide, ds.test, num_samples=200, predictions=noise, seed=0)
    test = bd.diagnostics.uncertainty(idata, group="posterior_predictive")
    on_noise = bd.diagnostics.uncertainty(idata, group="predictions")
    ratio = on_noise["mutual_information"].mean() / test["mutual_information"].mean()
    print(f"mutual information, noise / digits: {ratio:.2f}")
    assert ratio >= 2


def test_every_registered_method_is_in_the_matrix():
    assert {m for m, _ in CASES} == set(bd.methods.names())
    assert {d for _, d in CASES} == {"digits", "mnist1d", "toy-regression"}
