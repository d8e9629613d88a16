r"""The README's "library in ten lines", run verbatim with every method an MLP takes
(``bd.methods.names(role="layer")``) for ``"bernoulli"``.

Each run takes the defaults the snippet leaves out (those of ``bd.models.mlp`` and ``bd.fit``).  Asserted: a
network that learns for every method (no collapse warning, accuracy far from chance), and the README's claim that
``vbd`` and ``sparse-vd`` come within 1.5 points of ``bernoulli``'s test accuracy (the defaults matrix's tolerance,
``bayesdrop.experiments.defaults.ERROR_TOLERANCE``) with at least 20x fewer weights.  The standard error of a difference of
two accuracies near 97 % on the 360 test digits is about 1.3 points (:math:`\sqrt{2 \cdot 0.97 \cdot 0.03 / 360}`),
so a single seed can land that far from the mean gap.  Fixed seeds make the runs deterministic on a
CPU; on another device, or after a change in the order of floating-point operations, the margin moves within that
noise.
"""

from __future__ import annotations

import pyro
import pytest
import torch
from defaults_cases import check, fast_digits
from readme_snippet import pyro_snippet, run, snippet, snippet_epochs

import bayesdrop as bd
from bayesdrop.experiments import defaults as D


@pytest.fixture(autouse=True)
def _no_validation():
    """Pyro's validation (on in the tests, conftest.py) checks every step of bd.fit and changes no number it
    computes (test_conformance.py); these runs go without it, as a user who wants speed trains."""
    with pyro.validation_enabled(False):
        yield


# DropConnect's default masks are drawn per example and per weight (6.4 million uniforms a step on this network):
# its README run (digits, shared by the two tests below) takes 150 s on one core, a quarter of the default suite, so
# it runs with -m slow; its MNIST-1D and regression cases of the matrix stay in the default suite (test_defaults.py).
SLOW_DIGITS = {"dropconnect"}


@pytest.mark.parametrize(
    "method",
    [pytest.param(m, marks=pytest.mark.slow) if m in SLOW_DIGITS else m for m in bd.methods.names(role="layer")],
)
def test_defaults_fast_digits(method):
    """The digits cases of the defaults matrix (``test_defaults.py``): the README snippet's runs."""
    check(method, "digits", D.SETTINGS["digits"].fast_epochs)


@pytest.mark.parametrize(
    "method",
    [pytest.param(m, marks=pytest.mark.slow) if m in SLOW_DIGITS else m for m in bd.methods.names(role="layer")],
)
def test_readme_snippet_trains_every_method(method):
    out = run(method)
    print(f"{method}: test accuracy {100 * out['acc']:.2f} %, {out['ratio']:.1f}x fewer weights")
    assert out["collapse"] == [] == out["result"].warnings
    assert out["acc"] > 0.9  # chance is 0.1


@pytest.mark.parametrize("method", ["vbd", "sparse-vd"])
def test_readme_sparse_methods_match_bernoulli_with_compression(method):
    base, out = run("bernoulli"), run(method)
    print(
        f"{method}: {100 * out['acc']:.2f} % vs bernoulli {100 * base['acc']:.2f} % "
        f"({100 * (base['acc'] - out['acc']):+.2f} points), {out['ratio']:.1f}x fewer weights"
    )
    assert out["acc"] >= base["acc"] - D.ERROR_TOLERANCE / 100
    assert out["ratio"] >= 20


def test_the_readme_snippet_is_the_digits_fast_case():
    """Same widths and budget, every other setting at its default: the README's runs serve the matrix."""
    assert snippet_epochs() == D.SETTINGS["digits"].fast_epochs
    assert "bd.models.mlp(64, [300, 100], 10, " in snippet() and D.SETTINGS["digits"].hidden == (300, 100)


def test_sal_polarises_its_gates_under_defaults():
    """Srinivas & Babu (2016) sec. 2.2: SAL's Beta(0.5, 0.5) prior pushes every gate to 0 or 1."""
    case = fast_digits("sal")
    k = torch.cat([r.flatten() for r in bd.dropout_rates(case.model, case.guide).values()])
    polarised = ((k < 0.1) | (k > 0.9)).double().mean().item()
    print(f"sal: {100 * polarised:.1f} % of {k.numel()} gates within 0.1 of 0 or 1")
    assert polarised >= 0.9


def test_dropoutpp_presets_order_their_keep_probabilities_under_defaults():
    """Dropout++(0) pulls k down, (1) up, (flat) in between (Srinivas & Babu 2016, sec. 2.2)."""
    mean_k = {}
    for name in ("dropout++(0)", "dropout++(flat)", "dropout++(1)"):
        case = fast_digits(name)
        mean_k[name] = torch.cat([r.flatten() for r in bd.dropout_rates(case.model, case.guide).values()]).mean().item()
    print(mean_k)
    assert mean_k["dropout++(0)"] < mean_k["dropout++(flat)"] < mean_k["dropout++(1)"]


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


def test_readme_plain_pyro_snippet_runs_as_printed():
    """The plain-Pyro loop runs verbatim in a namespace holding only the ten-lines snippet's ``data``, ``model`` and
    ``guide`` (its imports are its own: it lacked ``import torch``), and trains the network."""
    torch.manual_seed(0)
    data = bd.data.load("digits")
    net = bd.models.mlp(64, [300, 100], 10, method="bernoulli")
    model = bd.Classifier(net, num_data=len(data.train))
    guide = bd.DropoutGuide(model)
    namespace = {"data": data, "model": model, "guide": guide}
    exec(compile(pyro_snippet(), "README.md", "exec"), namespace)
    acc = bd.evaluate(model, guide, data.test, rule="weight-scaling")["acc"]
    assert acc > 0.9  # chance is 0.1


@pytest.mark.slow
def test_the_plain_pyro_loop_needs_the_kl_warm_up_the_readme_describes_for_vbd():
    """The README's plain-Pyro loop with ``vbd``: without a KL warm-up its KL prunes every weight and the network ends
    at chance (0.1 on digits); with the warm-up the README spells out (``KLScale`` raised over 10 epochs) it learns.
    Two 20-epoch runs, a few seconds each on one CPU thread."""
    data = bd.data.load("digits")
    accs = {}
    for warm_up in (False, True):
        torch.manual_seed(0)
        pyro.set_rng_seed(0)
        model = bd.Classifier(bd.models.mlp(64, [300, 100], 10, "vbd"), num_data=len(data.train))
        guide = bd.DropoutGuide(model)
        pyro.clear_param_store()
        svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 3e-3}), pyro.infer.TraceMeanField_ELBO())
        warm = bd.handlers.KLScale(0.0 if warm_up else 1.0)
        for epoch in range(20):
            if warm_up:
                warm.beta = min(1.0, (epoch + 1) / 10)
            for idx in torch.randperm(len(data.train)).split(128):
                with warm:
                    svi.step(data.train.x[idx], data.train.y[idx])
        accs[warm_up] = bd.evaluate(model, guide, data.test, rule="weight-scaling")["acc"]
    assert accs[False] < 0.15 and accs[True] > 0.85, accs
