"""Bernoulli (standard / MC) and Gaussian dropout: the issue-2 properties."""

from __future__ import annotations

import itertools
import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.nn import PyroModule

import bayesdrop as bd


def test_weight_scaling_is_exact_for_softmax_regression():
    """Goodfellow et al., Deep Learning, eq. 7.56-7.66: the renormalised geometric mean over all 2^n masks of
    softmax(W (m * v) / (1 - p) + b) (inverted dropout) equals softmax(W v + b) for p = 0.5."""
    n, c = 10, 4
    g = torch.Generator().manual_seed(0)
    W = torch.randn(c, n, generator=g, dtype=torch.float64)
    b = torch.randn(c, generator=g, dtype=torch.float64)
    v = torch.randn(3, n, generator=g, dtype=torch.float64)
    masks = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)  # (1024, n)
    log_p = torch.log_softmax((masks[:, None, :] * v[None] / 0.5) @ W.T + b, dim=-1)  # (1024, 3, c)
    geo = torch.softmax(log_p.mean(0), dim=-1)  # renormalised geometric mean
    rule = torch.softmax(v @ W.T + b, dim=-1)
    assert (geo - rule).abs().max().item() < 1e-6

    net = PyroModule[torch.nn.Sequential](bd.nn.Linear(n, c, "bernoulli", p=0.5))
    model = bd.Classifier(net, num_data=3)
    guide = bd.DropoutGuide(model)
    with torch.no_grad():
        guide.layer_guide(net[0]).weight.copy_(W.float())
        net[0].bias.copy_(b.float())
    probs = bd.predict(model, guide, v.float(), rule="weight-scaling")
    assert (probs.double() - geo).abs().max().item() < 1e-6


def _toy_mc_dropout(epochs: int):
    ds = bd.data.load("toy-regression")
    net = bd.models.mlp(1, [100, 100], 1, "bernoulli", p=0.2, input_method=bd.methods.get("bernoulli", p=0.0))
    model = bd.Regressor(net, num_data=len(ds.train), noise_scale=0.1)
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, ds.train, epochs=epochs, batch_size=50, lr=1e-2, progress=False)
    return ds, model, guide


def test_mc_dropout_uncertainty_grows_away_from_the_data(capsys):
    ds, model, guide = _toy_mc_dropout(epochs=150)
    grid = torch.linspace(-6, 6, 241)[:, None]
    _, draws = bd.predict(model, guide, grid, num_samples=200, return_samples=True)
    epistemic = draws.squeeze(-1).std(0)  # spread of the network draws (no observation noise)
    x = grid[:, 0]
    lo, hi = ds.x_range
    inside = epistemic[((x > lo) & (x < ds.gap[0])) | ((x > ds.gap[1]) & (x < hi))].mean()
    beyond = epistemic[(x < lo - 1.5) | (x > hi + 1.5)].mean()
    gap = epistemic[(x > ds.gap[0]) & (x < ds.gap[1])].mean()
    with capsys.disabled():
        print(
            f"\nMC dropout std: inside data {inside:.4f}, in the gap {gap:.4f} ({gap / inside:.2f}x), beyond {beyond:.4f} ({beyond / inside:.2f}x)"
        )
    assert beyond >= 2 * inside


def _digits_accuracy(epochs: int, num_samples: int) -> float:
    ds = bd.data.load("digits")
    net = bd.models.mlp(64, [300, 100], 10, "bernoulli", p=0.5, input_method=bd.methods.get("bernoulli", p=0.0))
    model = bd.Classifier(net, num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, ds.train, epochs=epochs, lr=3e-3, progress=False)
    return bd.evaluate(model, guide, ds.test, num_samples=num_samples)["acc"]


def test_bernoulli_mlp_on_digits_fast():
    """A 20-epoch budget: at least 93 % (the full budget reaches 95 %, see the slow test)."""
    assert _digits_accuracy(epochs=20, num_samples=50) >= 0.93


@pytest.mark.slow
def test_bernoulli_mlp_on_digits_reaches_95():
    """Hidden dropout p = 0.5, no input dropout (it costs ~2 points on 8x8 digits), 50 epochs."""
    assert _digits_accuracy(epochs=50, num_samples=100) >= 0.95


def test_minibatch_losses_average_to_full_batch_loss():
    """With p = 0 the loss is deterministic: the mean over an epoch of (N/B)-scaled
    minibatch losses equals the full-batch loss (equal batch sizes)."""
    ds = bd.data.load("digits")
    x, y = ds.train.x[:1200], ds.train.y[:1200]
    net = bd.models.mlp(64, [32], 10, "bernoulli", p=0.0)
    model = bd.Classifier(net, num_data=1200)
    guide = bd.DropoutGuide(model)
    elbo = pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1)
    with torch.no_grad():
        full = elbo.loss(model, guide, x, y)
        perm = torch.randperm(1200, generator=torch.Generator().manual_seed(0))
        parts = [elbo.loss(model, guide, x[i], y[i]) for i in perm.split(100)]
    assert math.isclose(sum(parts) / len(parts), full, rel_tol=1e-4)


def test_gaussian_noise_has_variance_alpha():
    net = PyroModule[torch.nn.Sequential](bd.nn.Linear(5, 1, "gaussian", alpha=0.7))
    model = bd.Regressor(net, num_data=1)
    guide = bd.DropoutGuide(model)
    x = torch.ones(4000, 5)
    tr = poutine.trace(guide).get_trace(x)
    noise = tr.nodes["net.0.noise"]["value"]
    assert noise.shape == (4000, 5)
    # sample variance of 20000 N(1, 0.7) draws: sd of the estimate ~ 0.7 * sqrt(2 / 20000) = 0.007
    assert abs(noise.var().item() - 0.7) < 4 * 0.007
    assert abs(noise.mean().item() - 1.0) < 4 * math.sqrt(0.7 / 20000)


@pytest.mark.parametrize(
    ("name", "hyper", "arg"),
    [
        ("bernoulli", {"p": 1.0}, "p"),
        ("bernoulli", {"p": -0.1}, "p"),
        ("gaussian", {"alpha": 0.0}, "alpha"),
        ("gaussian", {"alpha": -1}, "alpha"),
        ("bernoulli", {"prior_scale": 0}, "prior_scale"),
    ],
)
def test_bad_hyper_parameters_name_the_argument(name, hyper, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        bd.methods.get(name, **hyper)
