"""The defaults matrix: every registered method, trained as a user would train it, against plain PyTorch.

Every case uses :mod:`bayesdrop.experiments.defaults`: ``bd.models.mlp``, ``bd.Classifier`` / ``bd.Regressor``,
``bd.DropoutGuide`` and ``bd.fit`` with every argument at its default except ``epochs`` (one budget per data set,
the same for every method) and the seed.  Nothing in this file is set per method: a method that needs other
settings gets them as its defaults (:class:`bayesdrop.methods.TrainingDefaults`).  A method registered later is
checked here the moment it registers.

Asserted per case: test error at most 1.5 points above the plain network's (``nn.Dropout(0.5)`` on the hidden
units, Adam at torch's default learning rate, the same widths and epochs), or test RMSE within 10 % of it for the
regression; at least one weight kept in every layer; no :class:`bayesdrop.CollapseWarning`.  The MLP takes the
methods for every layer (``bd.methods.names(role="layer")``); the pool methods and ``cutout`` are judged on the
LeNet-5 analog (``bd.models.lenet5`` without other noise, the method in its pooling layers or on its inputs,
against the same LeNet-5 in plain PyTorch).

The digits cases of the fast tier are the README snippet's runs (``readme_snippet.py``: the same network and budget
with every other setting at its default) and live in ``test_readme.py`` with the tests that read them; on MNIST-1D and the toy regression the fast tier takes one preset per method class.  The fast tier runs in ``make test``; the full tier (longer budgets) is marked ``slow`` and its figures, over three
seeds, are in ``benchmarks/results/defaults.md``.  Fixed seeds make each case deterministic on a CPU; on another
device the floating-point order differs and a case near its tolerance may land on the other side.
"""

from __future__ import annotations

import pyro
import pytest
from defaults_cases import check

import bayesdrop as bd
from bayesdrop.experiments import defaults as D

CASES_METHODS = bd.methods.names(role="layer")
CASES = [(m, d) for d in D.SETTINGS for m in CASES_METHODS]
# The digits cases of the fast tier are the README snippet's runs, so they are in test_readme.py (one module: make
# test's pytest-xdist workers run a module on one worker, and each run is trained once).  On the other data sets the
# fast tier takes the first registered preset of each method class (the Generalized Dropout presets and SAL share
# one class and differ in hyper-parameters only); every preset is in the digits fast tier and in the full tier.
_FIRST_OF_CLASS = {type(bd.methods.get(m)): m for m in reversed(bd.methods.names(role="layer"))}
# The convolutional methods (pool methods and the input method cutout) on the LeNet-5 analog: digits in the fast
# tier, both image data sets in the full one.
CNN_METHODS = bd.methods.names(role="pool") + [m for m in bd.methods.names(role="input") if m not in CASES_METHODS]
CNN_CASES = [(m, d) for d in D.CNN_SETTINGS for m in CNN_METHODS]
# The recurrent methods on the sequence task (the digits as 8 rows of 8, an LSTM of 64 units), both tiers.
RNN_METHODS = bd.methods.names(role="recurrent")
RNN_CASES = [(m, d) for d in D.RNN_SETTINGS for m in RNN_METHODS]
FAST_CASES = [(m, d) for m, d in CASES if d != "digits" and _FIRST_OF_CLASS[type(bd.methods.get(m))] == m]
# The slowest fast case, DropConnect's mask per weight and example on MNIST-1D's 1024-wide MLP (25 s), runs in the
# full tier only: the method stays in the fast tier on the digits and the toy regression.
SLOW_FAST_CASES = {("dropconnect", "mnist1d")}


@pytest.fixture(autouse=True)
def _no_validation():
    """Pyro's validation (on in the tests, conftest.py) checks every step of bd.fit and changes no number it
    computes (test_conformance.py); the matrix runs without it, as a user who wants speed does."""
    with pyro.validation_enabled(False):
        yield


@pytest.mark.parametrize(
    "method, dataset", [pytest.param(*c, marks=pytest.mark.slow) if c in SLOW_FAST_CASES else c for c in FAST_CASES]
)
def test_defaults_fast(method, dataset):
    check(method, dataset, D.SETTINGS[dataset].fast_epochs)


@pytest.mark.slow
@pytest.mark.parametrize("method, dataset", CASES)
def test_defaults_full(method, dataset):
    check(method, dataset, D.SETTINGS[dataset].full_epochs)


# The other arms: the convolutional methods on LeNet-5, the recurrent ones on the LSTM (digits in both fast tiers).
ARM_CASES = [("lenet5", m, d) for m, d in CNN_CASES] + [("rnn", m, d) for m, d in RNN_CASES]


@pytest.mark.parametrize("arch, method", [(a, m) for a, m, d in ARM_CASES if d == "digits"])
def test_defaults_arms_fast(arch, method):
    check(method, "digits", D.settings(arch)["digits"].fast_epochs, arch=arch)


@pytest.mark.slow
@pytest.mark.parametrize("arch, method, dataset", ARM_CASES)
def test_defaults_arms_full(arch, method, dataset):
    check(method, dataset, D.settings(arch)[dataset].full_epochs, arch=arch)


def test_every_registered_method_is_in_the_matrix():
    arms = [{m for m, _ in cases} for cases in (CASES, CNN_CASES, RNN_CASES)]
    assert sum(map(len, arms)) == len(set().union(*arms))  # every method in one arm
    assert set().union(*arms) == set(bd.methods.names())
    assert set(CNN_METHODS) == set(bd.methods.names(role="pool")) | {"cutout"}
    assert {m for m, _ in FAST_CASES} >= {"bernoulli", "dropout++(0.5)", "standout", "fast-dropout"}
    assert "sal" not in {m for m, _ in FAST_CASES}
    assert {d for _, d in CASES} == {"digits", "mnist1d", "toy-regression"}
