"""Standout (Ba & Frey 2013): input-dependent keep probabilities, the threshold construction, the test-time rule."""

from __future__ import annotations

import warnings

import pyro
import pyro.poutine as poutine
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_classifier

import bayesdrop as bd
from bayesdrop.infer.predict import output_draws
from bayesdrop.methods.standout import keep_probabilities


def _linear_model(alpha=1.0, beta=0.0, d=5, out=3, n=8):
    layer = bd.nn.Linear(d, out, bd.methods.get("standout", alpha=alpha, beta=beta))
    model = bd.Classifier(torch.nn.Sequential(layer), num_data=n)
    return model, bd.DropoutGuide(model), layer


def test_two_inputs_get_different_keep_probabilities_the_sigmoid_of_alpha_a_plus_beta():
    """In a trained MLP the hidden units' keep probabilities differ between two inputs and equal
    sigmoid(alpha a + beta) of the hidden activations a of the test-time network, computed here by hand."""
    method = bd.methods.get("standout", alpha=2.0, beta=-0.5)
    model, guide, x, y = tiny_classifier(method, n=40, d=6, hidden=(8,))
    bd.fit(model, guide, (x, y), epochs=5, progress=False, seed=0)
    keep = keep_probabilities(model, guide, x[:2])
    ((name, probs),) = keep.items()
    assert probs.shape == (2, 8)
    assert (probs[0] - probs[1]).abs().max() > 0.05
    first = model.net[0]  # bernoulli with p = 0 on the 6 inputs (fewer than 64): a plain layer
    assert first.method.name == "bernoulli" and first.method.p == 0
    (_, _, p0), _ = guide.pairs()
    a = F.relu(F.linear(x[:2], p0.weight, first.bias))
    torch.testing.assert_close(probs, torch.sigmoid(2.0 * a - 0.5))


def test_masks_have_the_keep_probabilities_of_their_inputs():
    """The model's multiplier is 1[t < sigmoid(alpha x + beta)] for the guide's uniform threshold t: per element it
    is 0 or 1, and its mean over 4000 examples of the same input is sigmoid(alpha x + beta) within 4 binomial SE."""
    model, guide, layer = _linear_model(alpha=1.5, beta=0.2, n=4000)
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 2.0]]).expand(4000, 5)
    pyro.set_rng_seed(0)
    guide(x)
    tr = poutine.trace(guide).get_trace(x)
    t = tr.nodes[layer.site("threshold")]["value"]
    assert t.shape == (4000, 5) and float(t.min()) >= 0 and float(t.max()) < 1
    mask = (t < torch.sigmoid(1.5 * x + 0.2)).float()
    out = poutine.replay(model.net, trace=tr)(x)
    torch.testing.assert_close(out, F.linear(x * mask, tr.nodes[layer.site("weight")]["value"], layer.bias))
    keep = torch.sigmoid(1.5 * x[0] + 0.2)
    se = (keep * (1 - keep) / 4000).sqrt()
    assert ((mask.mean(0) - keep).abs() < 4 * se).all()


def test_for_a_linear_layer_the_test_time_rule_is_the_monte_carlo_mean():
    """Linear layer: E_m[W (m o x) + b] = W (pi(x) o x) + b.  Weight scaling gives the right side; the MC mean
    over 10^4 draws (masks are per example: 10^4 copies of each input in one pass) agrees within 3 standard errors
    in every entry, and the rule is that formula exactly."""
    draws_n = 10_000
    model, guide, layer = _linear_model(alpha=1.0, beta=0.5, n=4 * draws_n)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, generator=g) * 2
    guide(x)
    rule = output_draws(model, guide, x, rule="weight-scaling")[0]
    w = dict((n, p) for n, _, p in guide.pairs())["net.0"].weight
    torch.testing.assert_close(rule, F.linear(x * torch.sigmoid(x + 0.5), w, layer.bias))
    pyro.set_rng_seed(0)
    many = x.repeat(draws_n, 1)
    with torch.no_grad():
        draws = poutine.replay(model.net, trace=poutine.trace(guide).get_trace(many))(many).reshape(draws_n, 4, 3)
    se = draws.std(0) / draws_n**0.5
    assert ((draws.mean(0) - rule).abs() < 3 * se).all(), (draws.mean(0) - rule) / se


def test_alpha_zero_is_standard_dropout_with_keep_probability_sigmoid_beta():
    method = bd.methods.get("standout", alpha=0.0, beta=1.0)
    x = torch.randn(3, 4)
    torch.testing.assert_close(method.belief(x), torch.full((3, 4), 1 / (1 + torch.exp(torch.tensor(-1.0)).item())))


def test_pruning_export_is_refused_and_the_report_counts_every_weight():
    model, guide, x, y = tiny_classifier("standout", n=20, d=6, hidden=(8,))
    guide(x)
    with pytest.raises(ValueError, match="keep probability computed from its input"):
        bd.compress.prune(model, guide)
    rep = bd.compress.report(model, guide)
    assert rep.ratio == 1.0


def test_bad_hyper_parameters_and_spatial_masks_are_refused():
    with pytest.raises(TypeError, match="`alpha` must be a number"):
        bd.methods.get("standout", alpha="big")
    with pytest.raises(ValueError, match="`beta` must lie in"):
        bd.methods.get("standout", beta=float("nan"))
    with pytest.raises(ValueError, match="standout draws one mask per element"):
        bd.nn.Dropout("standout", noise_shape=(3, 1, 1))  # one draw per feature map


def test_mlp_warns_that_standout_after_other_units_is_another_rule():
    """The keep probability reads the activations a = f(u), Ba & Frey's the pre-activations u: the same rule for
    ReLU units alone, so bd.models.mlp warns for any other activation, and not for ReLU."""
    with pytest.warns(UserWarning, match=r"standout after 'tanh' units: its keep probability"):
        bd.models.mlp(4, [8], 3, "standout", activation="tanh")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bd.models.mlp(4, [8], 3, "standout")
        bd.models.mlp(4, [8], 3, "bernoulli", activation="tanh")
