"""Gaussian family: ``vd``, ``sparse-vd``, ``vbd``.

What is checked, against the papers' equations (Liu et al. 2019; Molchanov et al. 2017; Kingma et al. 2015):

* the priors are real model sites whose KLs Pyro finds in closed form (``LogUniform`` through ``Independent``;
  ``TraceMeanField_ELBO`` equals -(N/B log-likelihood) + the closed-form KL of ``oracles.kl``, written out from
  the papers, for every granularity);
* Prop. 3: the KL part of the VBD ELBO is sum 0.5 log(1 + 1/alpha) (+ n log(b - a)), and gamma* (eq. 16)
  minimises eq. 14;
* Molchanov's approximation is within 0.01 of the KL by numerical integration for log alpha in [-4, 4];
* the local reparameterisation trick and weight sampling have the same expected ELBO, the LRT gradient
  variance of theta is at most half, and LRT pre-activations come from the guide;
* keep probabilities, log alpha, pruning (posterior means folded into the weights, keep masks, the pruned
  posterior-mean network and its plain export), LeNet-5 with every layer Bayesian, Monte Carlo prediction;
* training: digits to a fast accuracy bar per method; (slow) sparse-vd and vbd within 1 point of Bernoulli
  dropout with >= 90 % of weights at log alpha > 3; no NaN/inf in 2000 steps at lr 1e-2.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from helpers import tiny_classifier, tiny_convnet
from oracles import kl as oracle_kl
from pyro.nn import PyroModule
from scipy import integrate, special
from torch.distributions import kl_divergence

import bayesdrop as bd
from bayesdrop.distributions import (
    LOG_ALPHA_CLIP,
    MOLCHANOV_K,
    BoundedDelta,
    CenteredNormal,
    DropoutNormal,
    IsotropicNormal,
    LogUniform,
    ScalarUniform,
    molchanov_kl,
)
from bayesdrop.handlers import LocalReparameterization

# Every configuration of the family: (registered name, hyper-parameters).
CONFIGS = [
    ("vd", {"granularity": "layer"}),
    ("vd", {"granularity": "unit"}),
    ("vd", {"granularity": "unit", "max_log_alpha": None}),
    ("sparse-vd", {}),
    ("vbd", {"granularity": "weight"}),
    ("vbd", {"granularity": "layer"}),
    ("vbd", {"granularity": "layer", "max_log_alpha": None}),
    ("vbd", {"granularity": "unit"}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in h.items()) or 'default'}" for n, h in CONFIGS]


def _elbo():
    return pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1)


def _randomise(guide, seed=0, log_alpha=(-3.0, 2.0)):
    """Random posterior parameters (theta and alpha) of every layer, so that tests do not sit at the init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, _layer, params in guide.pairs():
            for name, p in params.named_parameters():
                u = torch.rand(p.shape, generator=g, dtype=p.dtype)
                if name in ("log_sigma2", "noise_log_sigma2"):
                    loc = params.weight if name == "log_sigma2" else params.noise_loc
                    p.copy_(loc.square().log() + log_alpha[0] + (log_alpha[1] - log_alpha[0]) * u)
                elif name == "log_alpha":
                    p.copy_(log_alpha[0] + (log_alpha[1] - log_alpha[0]) * u)
                elif name == "noise_loc":
                    p.copy_(0.5 + u)


# -- registry, hyper-parameters, distributions ------------------------------------------------------------------


def test_registry_entries_and_flags():
    for name in ("vd", "sparse-vd", "vbd"):
        info = bd.methods.info(name)
        assert info["analytic_kl"] and info["lrt"] and info["conv"] and info["stochastic"]
    assert not bd.methods.info("sparse-vd")["structured"]
    assert bd.methods.get("vbd", granularity="unit").capabilities.structured
    assert bd.methods.get("vd", granularity="unit").capabilities.structured
    assert not bd.methods.get("vbd").capabilities.structured


@pytest.mark.parametrize(
    ("name", "hyper", "arg"),
    [
        ("vd", {"granularity": "weight"}, "granularity"),
        ("vd", {"log_alpha_init": math.inf}, "log_alpha_init"),
        ("vd", {"log_alpha_init": 1.0}, "log_alpha_init"),  # above max_log_alpha = 0
        ("vd", {"max_log_alpha": math.nan}, "max_log_alpha"),
        ("vd", {"threshold": math.nan}, "threshold"),
        ("sparse-vd", {"log_sigma2_init": -math.inf}, "log_sigma2_init"),
        ("vbd", {"granularity": "channel"}, "granularity"),
        ("vbd", {"a": 0.0}, "a"),
        ("vbd", {"a": 2.0, "b": 1.0}, "b"),
        ("vbd", {"a": 1e9}, "a"),  # above the default b: the a given is named
        ("vbd", {"prior_scale": -1.0}, "prior_scale"),
    ],
)
def test_bad_hyper_parameters_name_the_argument(name, hyper, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        bd.methods.get(name, **hyper)


def test_log_uniform_prior_keeps_its_class_and_kl_through_independent():
    ph = torch.randn(3, 4)
    prior = LogUniform(ph)
    big = prior.expand((5, 3, 4))
    assert type(big) is LogUniform and big.batch_shape == (5, 3, 4)
    assert big.sample().shape == (5, 3, 4) and torch.equal(big.sample()[2], ph)  # the documented placeholder
    assert prior.sample((2,)).shape == (2, 3, 4)
    assert torch.allclose(prior.log_prob(ph), -ph.abs().log())
    # Independent on both sides, as at the weight sites: Pyro's Independent/Independent KL delegates to ours.
    loc, scale = torch.randn(3, 4), torch.rand(3, 4) + 0.1
    kl = kl_divergence(dist.Normal(loc, scale).to_event(2), prior.to_event(2))
    la = (2 * scale.log() - loc.square().log()).clamp(*LOG_ALPHA_CLIP)
    assert kl.shape == () and torch.allclose(kl, molchanov_kl(la).sum(), rtol=1e-5)
    # DropoutNormal carries log alpha through expand (Predictive broadcasts sites) and the KL reads it.
    q = DropoutNormal(loc, scale, torch.full((3, 4), 1.5)).expand((2, 3, 4))
    assert type(q) is DropoutNormal and q.log_alpha.shape == (2, 3, 4)
    assert torch.allclose(kl_divergence(q, prior.expand((2, 3, 4))), molchanov_kl(torch.tensor(1.5)).expand(2, 3, 4))
    # loc = 0: a finite KL (log alpha clipped) and a finite, zero gradient, not a NaN.
    loc0 = torch.zeros(3, requires_grad=True)
    k0 = kl_divergence(dist.Normal(loc0, torch.ones(3)), LogUniform(torch.ones(3))).sum()
    k0.backward()
    assert torch.isfinite(k0) and torch.equal(loc0.grad, torch.zeros(3))


def test_dropout_normal_draws_loc_plus_scale_times_a_standard_normal():
    """``DropoutNormal.sample`` / ``rsample`` are ``loc + scale * eps``, ``eps`` the generator's standard normal draw
    of the sample's shape (what ``torch.normal`` of the same seed draws, to rounding), with gradients through
    ``rsample`` only; 200,000 draws have the law's mean and variance within 5 standard errors."""
    loc, log_var = torch.tensor([0.5, -2.0]), torch.tensor([0.0, -3.0])
    q = DropoutNormal(loc, log_variance=log_var)
    torch.manual_seed(0)
    draws = q.sample((100_000,))
    torch.manual_seed(0)
    torch.testing.assert_close(draws, torch.normal(loc.expand(100_000, 2), q.scale.expand(100_000, 2)))
    assert draws.shape == (100_000, 2) and not draws.requires_grad
    sd = q.scale
    assert ((draws.mean(0) - loc).abs() <= 5 * sd / 100_000**0.5).all()
    # the sample variance's standard error is sd^2 sqrt(2 / n)
    assert ((draws.var(0) - sd**2).abs() <= 5 * sd**2 * (2 / 100_000) ** 0.5).all()
    theta = loc.clone().requires_grad_()
    DropoutNormal(theta, log_variance=log_var).rsample().sum().backward()
    assert torch.equal(theta.grad, torch.ones(2))


def test_vbd_prior_distributions_match_their_torch_counterparts():
    """CenteredNormal(v) is N(0, v) (density, KL in closed form, also with log sigma^2 carried by DropoutNormal);
    ScalarUniform has Uniform's density; BoundedDelta's KL is -log p(v) = n log(b - a) inside, Pyro's
    -p.log_prob(v) otherwise; all keep their class through expand (Predictive broadcasts sites)."""
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(4, 5, generator=g, dtype=torch.float64)
    scale = torch.rand(4, 5, generator=g, dtype=torch.float64) + 0.05
    var = torch.rand(4, 5, generator=g, dtype=torch.float64) + 0.1
    p = CenteredNormal(var)
    ref = dist.Normal(torch.zeros_like(var), var.sqrt())
    v = torch.randn(4, 5, generator=g, dtype=torch.float64)
    assert torch.allclose(p.log_prob(v), ref.log_prob(v))
    assert torch.allclose(p.entropy(), ref.entropy())
    expected = kl_divergence(dist.Normal(loc, scale), ref)
    assert torch.allclose(kl_divergence(dist.Normal(loc, scale), p), expected)
    carried = DropoutNormal(loc, scale, log_variance=2 * scale.log())
    assert torch.allclose(kl_divergence(carried, p), expected)
    assert torch.allclose(kl_divergence(carried.to_event(2), p.to_event(2)), expected.sum())
    big = p.expand((3, 4, 5))
    assert type(big) is CenteredNormal and big.rsample().shape == (3, 4, 5)
    # a scalar variance expanded (the Gaussian weight prior N(0, s^2)) takes the scalar path: same density
    s2 = torch.tensor(0.7, dtype=torch.float64)
    weight_prior = CenteredNormal(s2).expand((4, 5))
    torch.testing.assert_close(weight_prior.log_prob(v), dist.Normal(0.0, s2.sqrt()).log_prob(v))
    torch.testing.assert_close(kl_divergence(dist.Delta(v, event_dim=2), weight_prior.to_event(2)),
                               -dist.Normal(0.0, s2.sqrt()).log_prob(v).sum())  # fmt: skip
    draws = CenteredNormal(torch.full((20000,), 4.0)).rsample()
    assert abs(draws.var().item() - 4.0) < 4 * 4.0 * math.sqrt(2 / 20000)  # sd of a sample variance
    u = ScalarUniform(0.5, 3.0, (4, 5), like=v)
    assert type(u.expand((2, 4, 5))) is ScalarUniform and u.expand((2, 4, 5)).bounds == (0.5, 3.0)
    x = torch.tensor([0.4, 0.5, 1.0, 2.999, 3.0], dtype=torch.float64)
    low, high = torch.tensor(0.5, dtype=torch.float64), torch.tensor(3.0, dtype=torch.float64)
    torch_u = torch.distributions.Uniform(low, high, validate_args=False)
    ours = ScalarUniform(0.5, 3.0, (5,), like=x, validate_args=False).log_prob(x)
    assert torch.equal(ours, torch_u.log_prob(x))  # -inf outside [0.5, 3), including at 3
    inside = torch.full((4, 5), 1.5, dtype=torch.float64)
    kl = kl_divergence(BoundedDelta(inside, 0.5, 3.0, event_dim=2), u.to_event(2))
    assert torch.allclose(kl, -u.to_event(2).log_prob(inside)) and kl.item() == pytest.approx(20 * math.log(2.5))
    other = dist.Normal(torch.zeros(4, 5, dtype=torch.float64), 1.0).to_event(2)  # any other prior: Pyro's rule
    assert torch.allclose(kl_divergence(BoundedDelta(inside, 0.5, 3.0, event_dim=2), other), -other.log_prob(inside))
    bd_big = BoundedDelta(inside, 0.5, 3.0, event_dim=2).expand((3,))
    assert type(bd_big) is BoundedDelta and bd_big.bounds == (0.5, 3.0)
    # its draw is the location itself (the guide's gamma), with sample dimensions where asked for
    point = BoundedDelta(inside, 0.5, 3.0, event_dim=2)
    assert point.rsample() is inside and point.rsample((2,)).shape == (2, 4, 5)


@pytest.mark.parametrize(("name", "hyper"), CONFIGS, ids=IDS)
def test_mean_field_elbo_uses_the_closed_form_kl(name, hyper):
    """loss == -(N/B) loglik + sum_layers oracles.kl on the replayed draw, in float64 to 1e-9 relative: a Monte
    Carlo fallback (log q - log p at the drawn weights) would be off by O(sqrt(#weights)) nats."""
    model, guide, x, y = tiny_classifier(name, n=40, **hyper)
    model.double(), guide.double()
    x = x.double()
    guide(x, y)
    _randomise(guide)
    xb, yb = x[:10], y[:10]
    for elbo in (_elbo(), bd.infer.MeanFieldELBO(max_plate_nesting=1)):
        pyro.set_rng_seed(5)
        loss = elbo.differentiable_loss(model, guide, xb, yb)
        pyro.set_rng_seed(5)
        tr = poutine.trace(guide).get_trace(xb, yb)
        out = poutine.replay(model, trace=tr)(xb, yb)
        loglik = model.log_likelihood(out, yb).sum() * (40 / 10)
        kl = sum(oracle_kl(layer, params) for _, layer, params in guide.pairs())
        assert torch.allclose(loss, -(loglik - kl), rtol=1e-9, atol=1e-9), (loss.item(), (kl - loglik).item())
    # ... and the Monte Carlo estimate of the same KL (Trace_ELBO) is measurably different for the improper prior.
    if name != "vbd":
        pyro.set_rng_seed(5)
        mc = pyro.infer.Trace_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, xb, yb)
        assert abs(mc.item() - loss.item()) > 1.0


# -- Prop. 3, eq. 16 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["weight", "layer", "unit"])
@pytest.mark.parametrize(("a", "b"), [(1e-16, 100.0), (1e-8, 250.0)])
def test_prop3_kl_part_of_the_vbd_elbo(granularity, a, b):
    """KL(q(w) || p(w | gamma*)) + KL(delta(gamma*) || U(a, b)), taken from the traces exactly as
    TraceMeanField_ELBO does, equals sum 0.5 log(1 + 1/alpha) + n_gamma log(b - a) to 1e-5 (float64, random
    theta and alpha with log alpha in [-6, 3]); so does the ELBO's KL part (loss + N/B loglik)."""
    torch.manual_seed(1)
    hyper = {"granularity": granularity, "a": a, "b": b}
    first = bd.methods.get("vbd", **hyper)  # the method on the 7 inputs too (per layer, the input rule's is none)
    model, guide, x, y = tiny_classifier("vbd", n=30, d=7, hidden=(9,), input_method=first, **hyper)
    model.double(), guide.double()
    x = x.double()
    guide(x, y)
    _randomise(guide, seed=3, log_alpha=(-6.0, 3.0))
    pyro.set_rng_seed(2)
    gtr = poutine.trace(guide).get_trace(x, y)
    mtr = poutine.trace(poutine.replay(model, trace=gtr)).get_trace(x, y)
    kl_sites, expected, n_gamma = 0.0, 0.0, 0
    for _, layer, params in guide.pairs():
        for site in ("gamma", "noise" if granularity == "unit" else "weight"):
            name = layer.site(site)
            kl_sites = kl_sites + kl_divergence(gtr.nodes[name]["fn"], mtr.nodes[name]["fn"])
        la = layer.method.log_alpha(layer, params)
        if granularity == "layer":  # one alpha, one KL term per weight
            la = la.expand(layer.weight_sites["weight"].shape)
        expected = expected + (0.5 * torch.log1p(torch.exp(-la))).sum()
        n_gamma += gtr.nodes[layer.site("gamma")]["value"].numel()
        gamma = gtr.nodes[layer.site("gamma")]["value"]
        assert (gamma > a).all() and (gamma < b).all(), "gamma* must lie inside (a, b) in this test"
    expected = expected + n_gamma * math.log(b - a)
    assert abs(kl_sites.item() - expected.item()) < 1e-5
    # The KL part of the loss itself: loss + (N/B) loglik on the same draw (full batch, N/B = 1).
    pyro.set_rng_seed(9)
    loss = _elbo().differentiable_loss(model, guide, x, y)
    pyro.set_rng_seed(9)
    out = poutine.replay(model, trace=poutine.trace(guide).get_trace(x, y))(x, y)
    kl_part = loss + model.log_likelihood(out, y).sum()
    if granularity == "unit":  # the point-estimate weights' Gaussian prior N(0, 1)
        for _, _layer, params in guide.pairs():
            kl_part = kl_part - (0.5 * params.weight.square() + 0.5 * math.log(2 * math.pi)).sum()
    assert abs(kl_part.item() - expected.item()) < 1e-5


def test_gamma_star_minimises_eq14():
    """eq. 16: d KL(N(theta, sigma^2) || N(0, gamma)) / d gamma = 0 at gamma* = theta^2 + sigma^2, and moving
    gamma by +-10 % increases the KL (it is convex in log gamma)."""
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(50, generator=g, dtype=torch.float64)
    sigma = torch.rand(50, generator=g, dtype=torch.float64) + 0.01
    gamma = (theta**2 + sigma**2).requires_grad_(True)
    kl = kl_divergence(dist.Normal(theta, sigma), dist.Normal(torch.zeros_like(theta), gamma.sqrt()))
    (grad,) = torch.autograd.grad(kl.sum(), gamma)
    assert grad.abs().max() < 1e-12
    for f in (0.9, 1.1):
        moved = kl_divergence(dist.Normal(theta, sigma), dist.Normal(0.0, (gamma.detach() * f).sqrt()))
        assert (moved > kl.detach()).all()
    assert torch.allclose(kl, 0.5 * torch.log1p(theta**2 / sigma**2), rtol=0, atol=1e-12)  # Prop. 3


def test_vbd_gamma_is_clamped_into_the_support_and_the_kl_stays_finite():
    """A pruned weight (theta = 0, tiny sigma) and a huge one put gamma* outside [a, b): the guide clamps it, the
    loss and every gradient stay finite, and Pyro's validation (support of the Uniform) passes."""
    model, guide, x, y = tiny_classifier("vbd", b=4.0)
    guide(x, y)
    params = guide.layer_guide(model.net[0])
    with torch.no_grad():
        params.weight[0, 0], params.log_sigma2[0, 0] = 0.0, -50.0  # gamma* = e^-50 < a
        params.weight[0, 1] = 5.0  # gamma* = 25 > b
    gamma = model.net[0].method.gamma_star(model.net[0], params).detach()
    assert gamma[0, 0].item() == pytest.approx(1e-16, rel=1e-6) and gamma[0, 1] < 4.0
    loss = _elbo().differentiable_loss(model, guide, x, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in guide.parameters())
    # The clamped KL is the exact eq. 14 at the boundary: larger than eq. 17 by 0.5 (m/b - log(m/b) - 1).
    m = 25.0 + math.exp(-10)
    kl_w = kl_divergence(dist.Normal(5.0, math.exp(-5)), dist.Normal(0.0, math.sqrt(gamma[0, 1].item())))
    eq17 = 0.5 * math.log1p(25.0 / math.exp(-10))
    assert kl_w.item() - eq17 == pytest.approx(0.5 * (m / 4 - math.log(m / 4) - 1), rel=1e-4)


# -- Molchanov's approximation -----------------------------------------------------------------------------------


def _exact_loguniform_kl(log_alpha: float) -> float:
    """KL(N(theta, alpha theta^2) || log-uniform) up to its constant, by numerical integration:
    E_eps log|1 + sqrt(alpha) eps| - 0.5 log alpha, shifted by E log|eps| = -(gamma_E + log 2) / 2 so that it
    vanishes as alpha -> infinity (the normalisation of Molchanov's fit)."""
    s = math.exp(0.5 * log_alpha)

    def f(e):
        return math.log(abs(1 + s * e)) * math.exp(-0.5 * e * e) / math.sqrt(2 * math.pi)

    c = -1 / s  # the integrable log singularity: split there
    left = integrate.quad(f, -np.inf, c, limit=200, epsabs=1e-12, epsrel=1e-12)[0]
    right = integrate.quad(f, c, np.inf, limit=200, epsabs=1e-12, epsrel=1e-12)[0]
    return left + right - 0.5 * log_alpha + 0.5 * (np.euler_gamma + math.log(2))


def _series_loguniform_kl(log_alpha: float) -> float:
    """The same by the series E log X^2 = log 2 + sum_j Poisson(j; mu^2/2) psi(j + 1/2), X ~ N(mu, 1)."""
    lam = 0.5 * math.exp(-log_alpha)
    j = np.arange(0, 4000)
    w = np.exp(-lam + j * math.log(lam) - special.gammaln(j + 1))
    e_log_abs = 0.5 * (math.log(2) + np.sum(w * special.digamma(j + 0.5))) + 0.5 * log_alpha
    return e_log_abs - 0.5 * log_alpha + 0.5 * (np.euler_gamma + math.log(2))


def test_molchanov_approximation_against_numerical_integration(capsys):
    las = np.linspace(-4, 4, 81)
    exact = np.array([_exact_loguniform_kl(v) for v in las])
    series = np.array([_series_loguniform_kl(v) for v in las])
    assert np.abs(exact - series).max() < 1e-8  # the integration itself is right
    la = torch.tensor(las, dtype=torch.float64)
    ones = torch.ones_like(la)
    approximations = {
        "molchanov_kl": molchanov_kl(la),
        "registered (DropoutNormal)": kl_divergence(DropoutNormal(ones, (0.5 * la).exp(), la), LogUniform(ones)),
        "registered (Normal)": kl_divergence(dist.Normal(ones, (0.5 * la).exp()), LogUniform(ones)),
    }
    for what, approx in approximations.items():
        err = np.abs(approx.numpy() - exact)
        with capsys.disabled():
            print(f"\n{what}: max |approx - exact| on log alpha in [-4, 4] = {err.max():.4f} at {las[err.argmax()]}")
        assert err.max() <= 0.01, what
    k1 = MOLCHANOV_K[0]
    assert abs(k1 - 0.5 * (np.euler_gamma + math.log(2))) < 1e-3  # k1 is the alpha -> infinity constant


# -- local reparameterisation ------------------------------------------------------------------------------------

LRT_CONFIGS = [c for c in CONFIGS if c != ("vd", {"granularity": "unit", "max_log_alpha": None})]
LRT_IDS = [i for c, i in zip(CONFIGS, IDS) if c in LRT_CONFIGS]


@pytest.mark.parametrize(("name", "hyper"), LRT_CONFIGS, ids=LRT_IDS)
def test_lrt_and_weight_sampling_same_expected_elbo_lower_gradient_variance(name, hyper, capsys):
    """On a fixed batch of 100 digits (64-20-10 MLP), R = 200 draws each: the mean losses agree within 3 standard errors of their
    difference, and the total variance of the gradient for theta (first layer; theta' of the noise layer for
    vbd "unit") under LRT is at most half that under weight sampling."""
    ds = bd.data.load("digits")
    x, y = ds.train.x[:100], ds.train.y[:100]
    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(64, [20], 10, name, **hyper), num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    guide(x, y)
    _randomise(guide, seed=1, log_alpha=(-2.0, 0.0))  # substantial noise: alpha in [0.14, 1]
    params = guide.layer_guide(model.net[0])
    theta = params.noise_loc if hyper.get("granularity") == "unit" and name == "vbd" else params.weight
    elbo = bd.infer.MeanFieldELBO(max_plate_nesting=1)
    stats = {}
    with pyro.validation_enabled(False):
        for lrt in (True, False):
            pyro.set_rng_seed(7)
            losses, grads = [], []
            for _ in range(200):
                # LRT as bd.fit runs it: MeanFieldELBO with the unused weight draw skipped.
                with LocalReparameterization(draw_weights=False) if lrt else poutine.messenger.Messenger():
                    loss = elbo.differentiable_loss(model, guide, x, y)
                (g,) = torch.autograd.grad(loss, theta)
                losses.append(loss.item())
                grads.append(g.reshape(-1))
            grads = torch.stack(grads)
            stats[lrt] = (np.mean(losses), np.var(losses, ddof=1) / len(losses), grads.var(0).sum().item())
    (m1, se1, v1), (m0, se0, v0) = stats[True], stats[False]
    with capsys.disabled():
        print(
            f"\n{name} {hyper}: mean loss LRT {m1:.2f} vs weights {m0:.2f} (3 SE = {3 * math.sqrt(se1 + se0):.2f}); "
            f"grad variance ratio LRT / weights = {v1 / v0:.4f}"
        )
    assert abs(m1 - m0) <= 3 * math.sqrt(se1 + se0)
    assert v1 <= 0.5 * v0


@pytest.mark.parametrize("draw_weights", [True, False])
@pytest.mark.parametrize("granularity", ["weight", "layer"])
def test_lrt_preactivations_come_from_the_guide(granularity, draw_weights):
    """Under LocalReparameterization a vbd layer draws b ~ N(x theta, x^2 sigma^2) from the *guide*.  (Under
    replay the model site inherits the guide's infer dict, so a Normal prior N(0, gamma) would be tagged too and
    the layer would draw from the prior: the prior is therefore a CenteredNormal, not a Normal.)  With
    ``draw_weights=False`` the guide's weight value is the placeholder theta, not a draw."""
    layer = bd.nn.Linear(3, 1, "vbd", bias=False, granularity=granularity)
    net = PyroModule[torch.nn.Sequential](layer)
    model = bd.Regressor(net, num_data=20000)
    guide = bd.DropoutGuide(model)
    x = torch.tensor([[1.0, 2.0, -1.0]]).expand(20000, 3)
    guide(x)
    params = guide.layer_guide(layer)
    with torch.no_grad():
        params.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        if granularity == "weight":
            params.log_sigma2.copy_(torch.tensor([[0.3, 0.2, 0.1]]).square().log())
        else:
            params.log_alpha.fill_(math.log(0.04))
    q = layer.method.weight_posterior(layer, "weight", params)
    loc, scale = q.loc, q.scale
    with LocalReparameterization(draw_weights=draw_weights):
        tr = poutine.trace(guide).get_trace(x)
        b = poutine.replay(model, trace=tr)(x)[:, 0]
    w = tr.nodes[layer.site("weight")]["value"]
    assert torch.equal(w, loc) is not draw_weights
    assert getattr(w, "_bayesdrop_lrt_placeholder", False) is not draw_weights
    mean = (x[0] * loc[0]).sum()
    std = (x[0].square() * scale[0].square()).sum().sqrt()
    assert abs(b.mean() - mean) < 4 * std / 20000**0.5
    assert abs(b.std() - std) < 4 * std / (2 * 20000) ** 0.5


def test_vbd_unit_noise_is_drawn_per_example_under_lrt():
    """Eq. 19 layer: under LRT every example gets its own W' ~ N(theta', sigma'^2) (channel-wise for Conv2d);
    in bd.predict (one network per draw, PosteriorSampler) each draw shares one W' across the batch."""
    conv = bd.nn.Conv2d(2, 1, 1, "vbd", bias=False, granularity="unit")
    model = bd.Classifier(PyroModule[torch.nn.Sequential](conv, torch.nn.Flatten(-3)), num_data=4000)
    guide = bd.DropoutGuide(model)
    x = torch.ones(4000, 2, 1, 2)
    guide(x)
    params = guide.layer_guide(conv)
    with torch.no_grad():
        params.weight.copy_(torch.tensor([1.0, 0.0]).reshape(1, 2, 1, 1))
        params.noise_loc.fill_(2.0)
        params.noise_log_sigma2.fill_(math.log(0.25))
    with LocalReparameterization():
        tr = poutine.trace(guide).get_trace(x)
        out = poutine.replay(model, trace=tr)(x)
    assert out.shape == (4000, 2)
    assert torch.equal(out[:, 0], out[:, 1])  # one draw per channel, shared over positions
    z = out[:, 0]
    assert abs(z.mean() - 2.0) < 4 * 0.5 / 4000**0.5 and abs(z.std() - 0.5) < 4 * 0.5 / (2 * 4000) ** 0.5
    _, draws = bd.predict(model, guide, x[:50], num_samples=6, return_samples=True)
    assert (draws.std(1) < 1e-6).all() and draws[:, 0].std() > 0.05  # same W' for the batch, new per draw


# -- keep probabilities, pruning, conv ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "hyper"), CONFIGS, ids=IDS)
def test_dropout_rates_are_one_over_one_plus_alpha(name, hyper):
    model, guide, x, y = tiny_convnet(name, **hyper)
    guide(x, y)
    _randomise(guide, seed=4)
    rates = bd.dropout_rates(model, guide)
    per_weight = name == "sparse-vd" or hyper.get("granularity") == "weight" or (name == "vbd" and not hyper)
    for (layer_name, layer, params), (key, keep) in zip(guide.pairs(), rates.items()):
        assert key == layer_name
        la = layer.method.log_alpha(layer, params).detach()
        shape = layer.weight_sites["weight"].shape
        if per_weight:
            assert keep.shape == shape
        else:  # one value per input unit / channel (vbd "unit": log alpha of the noise site's unit shape)
            assert keep.shape == (shape[1],)
            la = la.expand(1, shape[1], *([1] * (len(shape) - 2))).reshape(-1)
        assert torch.allclose(keep, 1 / (1 + la.exp()), rtol=1e-5)
        assert ((keep > 0) & (keep < 1)).all()


def test_vd_max_log_alpha_bounds_alpha():
    model, guide, x, y = tiny_classifier("vd", granularity="unit")
    guide(x, y)
    params = guide.layer_guide(model.net[2])  # the hidden layer (the first takes the input rule)
    with torch.no_grad():
        params.log_alpha.fill_(5.0)
    assert torch.allclose(bd.dropout_rates(model, guide)["net.2"], torch.full((8,), 0.5))
    free = bd.methods.get("vd", granularity="unit", max_log_alpha=None)
    assert free.log_alpha(model.net[2], params).max() == 5.0


@pytest.mark.parametrize(("name", "hyper"), [("vd", {}), ("vbd", {"granularity": "layer"})], ids=["vd", "vbd-layer"])
def test_a_bounded_alpha_per_layer_takes_the_fixed_rate_input_rule(name, hyper):
    """The bound is the rate of ``vd`` and of ``vbd`` per layer (their KLs fall as alpha grows and push it there),
    so the first layer takes the fixed-rate input rule: alpha <= 0.2 / 0.8 from 64 inputs on, no input noise below;
    a user's lower bound is kept, and without a bound the layer stays as it is.  In an MLP the bound holds
    whatever the parameter: a log alpha of 5 gives keep probabilities 0.8 and 0.5, and Gaussian noise of variance
    theta^2 on a hidden layer's weights."""
    method = bd.methods.get(name, **hyper)
    assert method.max_log_alpha == 0.0
    small, large = method.input_layer(40), method.input_layer(784)
    assert small.name == "bernoulli" and small.p == 0.0
    assert type(large) is type(method) and large.max_log_alpha == pytest.approx(math.log(0.25))
    others = [{k: v for k, v in m.hyper().items() if k != "max_log_alpha"} for m in (large, method)]
    assert others[0] == others[1]  # the bound alone changes
    assert bd.methods.get(name, **hyper, max_log_alpha=-3.0).input_layer(784).max_log_alpha == -3.0
    free = bd.methods.get(name, **hyper, max_log_alpha=None)
    assert free.input_layer(784) is free
    with pytest.raises(ValueError, match="`log_alpha_init`"):
        bd.methods.get(name, **hyper, log_alpha_init=1.0)
    with pytest.raises(ValueError, match="`max_log_alpha`"):
        bd.methods.get(name, **hyper, max_log_alpha=float("nan"))
    net = bd.models.mlp(64, [20], 10, name, **hyper)
    model = bd.Classifier(net, num_data=100)
    guide = bd.DropoutGuide(model)
    x, y = torch.randn(4, 64), torch.randint(0, 10, (4,))
    guide(x, y)
    with torch.no_grad():
        for layer in (net[0], net[2]):
            guide.layer_guide(layer).log_alpha.fill_(5.0)
    rates = bd.dropout_rates(model, guide)
    assert torch.allclose(rates["net.0"], torch.tensor(0.8)) and torch.allclose(rates["net.2"], torch.tensor(0.5))
    params = guide.layer_guide(net[2])
    q = net[2].method.weight_posterior(net[2], "weight", params)
    torch.testing.assert_close(q.variance, params.weight.detach() ** 2, rtol=1e-5, atol=1e-30)  # alpha = 1, not e^5


def test_vbd_per_weight_and_per_unit_alpha_are_not_bounded():
    """``vbd``'s per-weight and per-unit alpha grow to prune: no bound, no input rule, and ``log_alpha_init``
    (unused there) is not held to the bound."""
    for granularity in ("weight", "unit"):
        method = bd.methods.get("vbd", granularity=granularity)
        assert method.input_layer(784) is method
        assert bd.methods.get("vbd", granularity=granularity, log_alpha_init=1.0).log_alpha_init == 1.0


@pytest.mark.parametrize(("name", "hyper"), CONFIGS, ids=IDS)
def test_pruned_mean_network_zeroes_high_log_alpha(name, hyper):
    """The posterior-mean network (``guide.mean_network()``) computes, in its first layer, x W^T + b with W the
    effective weights (the posterior means folded by ``layer.fold``: theta, times theta' for vbd "unit");
    pruning (``keep_masks`` / ``kept_weights``, ``mean_network(pruned=True)``, ``point_values(pruned=True)``)
    zeroes the weights (units) with log alpha >= 3, and bd.compress.prune gives the same outputs."""
    # the method on the 6 inputs too (vd's default there is no input noise)
    model, guide, x, y = tiny_classifier(name, hidden=(16,), input_method=bd.methods.get(name, **hyper), **hyper)
    guide(x, y)
    _randomise(guide, seed=5, log_alpha=(-2.0, 6.0))
    layer = model.net[0]
    params = guide.layer_guide(layer)
    w = layer.fold(guide.point_values(pruned=False)["net.0"])["weight"]
    keep = layer.kept_weights(layer.method.keep_masks(layer, params))["weight"]
    la = layer.method.log_alpha(layer, params).expand(layer.weight_sites["weight"].shape)
    assert keep.dtype == torch.bool and torch.equal(keep, la < 3)
    if name == "vbd" and hyper.get("granularity") == "unit":
        assert torch.allclose(w, params.weight * params.noise_loc)
    else:
        assert torch.equal(w, params.weight)
    w_pruned = layer.fold(guide.point_values(pruned=True)["net.0"])["weight"]
    assert torch.allclose(w_pruned, w * keep, atol=1e-7)
    first_layer = []
    hook = layer.register_forward_hook(lambda module, inputs, out: first_layer.append(out))
    try:
        with torch.no_grad():
            guide.mean_network()(x)
            ref = guide.mean_network(pruned=True)(x)
    finally:
        hook.remove()
    assert len(first_layer) == 2  # one pass of the layer per network
    full, pruned = first_layer
    assert torch.allclose(full, x @ w.T + layer.bias, atol=1e-6)
    assert torch.allclose(pruned, x @ (w * keep).T + layer.bias, atol=1e-6)
    assert torch.allclose(bd.compress.prune(model, guide)(x), ref, atol=1e-5)


@pytest.mark.parametrize(("name", "hyper"), CONFIGS, ids=IDS)
def test_lenet5_every_layer_bayesian(name, hyper):
    """LeNet-5 on 8x8 digits with every layer of the method: two epochs of training (LRT for Conv2d), Monte Carlo
    draws that differ, keep probabilities for every layer and a pruned export that matches."""
    ds = bd.data.load("digits")
    x, y = ds.images("train")[:96], ds.train.y[:96]
    net = bd.models.lenet5(ds.image_shape, ds.num_classes, name, channels=(4, 6), hidden=20, **hyper)
    model = bd.Classifier(net, num_data=96)
    guide = bd.DropoutGuide(model)
    res = bd.fit(model, guide, (x, y), epochs=2, batch_size=32, lr=1e-2, progress=False)
    assert all(math.isfinite(v) for v in res.history["elbo"])
    # The networks drawn one by one (layers take no leading sample dimensions).
    pred = pyro.infer.Predictive(model, guide=guide, num_samples=5, parallel=False, return_sites=["_RETURN"])
    draws = pred(x[:10])["_RETURN"]
    assert draws.shape == (5, 10, 10) and torch.isfinite(draws).all()
    assert draws.std(0).mean() > 1e-4
    probs = bd.predict(model, guide, x[:10], rule="weight-scaling")
    assert torch.allclose(probs.sum(-1), torch.ones(10), atol=1e-5)
    rates = bd.dropout_rates(model, guide)
    assert list(rates) == ["net.0", "net.3", "net.7", "net.9"]
    assert all(torch.isfinite(r).all() for r in rates.values())
    with torch.no_grad():
        ref = guide.mean_network(pruned=True)(x[:10])
    assert torch.allclose(bd.compress.prune(model, guide)(x[:10]), ref, atol=1e-4)


# -- training ----------------------------------------------------------------------------------------------------


def _sparsity(guide) -> float:
    return (bd.compress.log_alpha(guide.model, guide) > 3).float().mean().item()


@pytest.mark.parametrize(
    ("name", "hyper", "min_sparsity"),
    [("vd", {}, None), ("sparse-vd", {}, 0.85), ("vbd", {}, 0.85), ("vbd", {"granularity": "unit"}, None)],
    ids=["vd", "sparse-vd", "vbd", "vbd-unit"],
)
def test_fast_training_on_digits(name, hyper, min_sparsity):
    """64-100-10 MLP on digits, 20 epochs (KL warm-up over 10) at lr 1e-2: MC accuracy >= 94 % (measured
    96-97 %), and the per-weight methods prune >= 85 % of the weights (log alpha > 3; measured 89-90 %); the
    pruned plain network keeps the accuracy within 2 points."""
    ds = bd.data.load("digits")
    model = bd.Classifier(bd.models.mlp(64, [100], 10, name, **hyper), num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    res = bd.fit(model, guide, ds.train, epochs=20, kl_warmup=10, lr=1e-2, progress=False)
    assert all(math.isfinite(v) for v in res.history["elbo"])
    acc = bd.evaluate(model, guide, ds.test, num_samples=50)["acc"]
    assert acc >= 0.94
    if min_sparsity is not None:
        assert _sparsity(guide) >= min_sparsity
    pruned = bd.compress.prune(model, guide)
    with torch.no_grad():
        pruned_acc = (pruned(ds.test.x).argmax(-1) == ds.test.y).float().mean().item()
    assert pruned_acc >= acc - 0.02


def _train_steps_and_check_finite(name, hyper, hidden, steps):
    ds = bd.data.load("digits")
    model = bd.Classifier(bd.models.mlp(64, hidden, 10, name, **hyper), num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    epochs = math.ceil(steps / math.ceil(len(ds.train) / 128))
    res = bd.fit(model, guide, ds.train, epochs=epochs, lr=1e-2, progress=False)  # no warm-up: the hard case
    assert all(math.isfinite(v) for v in res.history["elbo"])  # fit also raises on a non-finite epoch loss
    for pname, p in [*model.named_parameters(), *guide.named_parameters()]:
        assert torch.isfinite(p).all(), f"non-finite values in {pname}"
    assert torch.isfinite(bd.compress.log_alpha(model, guide)).all()
    with torch.no_grad():
        assert torch.isfinite(bd.predict(model, guide, ds.test.x, num_samples=10)).all()


def test_no_nan_in_2000_steps_at_lr_1e2_fast():
    """vbd (the default) on a 64-32-10 MLP: 2000 Adam steps at lr 1e-2 without KL warm-up (weights are pruned,
    theta -> 0, log alpha grows) leave loss, parameters, log alpha and predictions finite."""
    _train_steps_and_check_finite("vbd", {}, [32], 2000)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "hyper"), CONFIGS, ids=IDS)
def test_no_nan_in_2000_steps_at_lr_1e2(name, hyper):
    """Every configuration on the 64-300-100-10 MLP: 2000 steps at lr 1e-2 without warm-up stay finite."""
    _train_steps_and_check_finite(name, hyper, [300, 100], 2000)


@pytest.mark.slow
def test_vbd_per_layer_fits_mnist1d_as_a_network_without_dropout():
    """Liu et al.'s classification setting (one alpha per layer; the 3-hidden-layer MLP of their Table 1, width 100,
    50 epochs, batch 128) at bd.fit's defaults on MNIST-1D: test error within 5 points of the same network without
    dropout.  Unbounded, each layer's alpha ended above 1 and the network underfitted (41.6 % against 29.5 %);
    bounded, 28.1 %.  Tolerance: the two errors on 1000 test examples each have a binomial sd of about 1.4 points,
    so their difference about 2: 5 points is 2.5 sd, and less than half the unbounded gap of 12 points."""
    ds = bd.data.load("mnist1d")
    errors = {}
    for name, hyper in (("vbd", {"granularity": "layer"}), ("bernoulli", {"p": 0.0})):
        torch.manual_seed(0)
        net = bd.models.mlp(ds.train.x.shape[1], [100] * 3, ds.num_classes, name, **hyper)
        model = bd.Classifier(net, num_data=len(ds.train))
        guide = bd.DropoutGuide(model)
        bd.fit(model, guide, ds.train, epochs=50, batch_size=128, seed=0, progress=False)
        errors[name] = 100 * (1 - bd.evaluate(model, guide, ds.test, num_samples=50, seed=0)["acc"])
    assert errors["vbd"] < errors["bernoulli"] + 5.0, errors


def test_isotropic_weight_prior_is_the_normal_of_every_weight():
    """IsotropicNormal(s^2, shape) is N(0, s^2) on every entry of a weight tensor, as one event: its log density
    (one tensor, and a batch of them as Pyro's plates give), Pyro's KL of a Delta guide (weight decay plus the
    constant), the gradient 2 * w / (2 s^2), draws of variance s^2, expand keeping its class, and the support's
    check under validation."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    s2 = torch.tensor(0.7, dtype=torch.float64)
    prior = IsotropicNormal(s2, (4, 5))
    ref = dist.Normal(0.0, s2.sqrt()).expand((4, 5)).to_event(2)
    assert prior.batch_shape == () and prior.event_shape == (4, 5)
    torch.testing.assert_close(prior.log_prob(w), ref.log_prob(w))
    batch = torch.randn(3, 1, 4, 5, generator=g, dtype=torch.float64)
    wide = prior.expand((3, 1))
    assert type(wide) is IsotropicNormal and wide.batch_shape == (3, 1)
    torch.testing.assert_close(wide.log_prob(batch), ref.log_prob(batch))
    kl = kl_divergence(dist.Delta(w, event_dim=2), prior)
    torch.testing.assert_close(kl, (w * w).sum() / (2 * s2) + 10 * torch.log(2 * math.pi * s2))
    (grad,) = torch.autograd.grad(kl, w)
    torch.testing.assert_close(grad, w.detach() / s2)
    draws = IsotropicNormal(torch.tensor(4.0), (20000,)).rsample()
    assert draws.shape == (20000,) and abs(draws.var().item() - 4.0) < 4 * 4.0 * math.sqrt(2 / 20000)
    checked = IsotropicNormal(s2, (4, 5), validate_args=True)
    with pytest.raises(ValueError):
        checked.log_prob(torch.full((4, 5), math.nan, dtype=torch.float64))
    with pytest.raises(ValueError, match="`variance` must be a 0-d tensor"):
        IsotropicNormal(torch.ones(3), (3,))


def test_isotropic_weight_prior_of_a_number_variance_computes_its_constants_in_python():
    """IsotropicNormal(s^2 as a number, shape, like=...) is the same law as with a 0-d tensor: log density, -log p
    (the KL of a Delta guide, registered without a negation) and its gradient, mean, variance and draws of
    ``like``'s dtype and device; its log density is the dot product and two operations on it, where the tensor's
    takes more; bad variances and a missing ``like`` are refused by name."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    like = torch.zeros((), dtype=torch.float64)
    number = IsotropicNormal(0.7, (4, 5), like=like)
    tensor = IsotropicNormal(torch.tensor(0.7, dtype=torch.float64), (4, 5))
    torch.testing.assert_close(number.log_prob(w), tensor.log_prob(w))
    torch.testing.assert_close(number.neg_log_prob(w), -tensor.log_prob(w))
    torch.testing.assert_close(tensor.neg_log_prob(w), -tensor.log_prob(w))
    batch = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(number.expand((3,)).log_prob(batch), tensor.expand((3,)).log_prob(batch))
    kl = kl_divergence(dist.Delta(w, event_dim=2), number)
    torch.testing.assert_close(kl, (w * w).sum() / (2 * 0.7) + 10 * math.log(2 * math.pi * 0.7))
    (grad,) = torch.autograd.grad(kl, w)
    torch.testing.assert_close(grad, w.detach() / 0.7)
    assert number.mean.dtype == torch.float64 and number.mean.shape == (4, 5) and not number.mean.any()
    torch.testing.assert_close(number.variance, torch.full((4, 5), 0.7, dtype=torch.float64))
    assert number.rsample((2,)).dtype == torch.float64 and number.rsample((2,)).shape == (2, 4, 5)
    unchecked = IsotropicNormal(0.7, (4, 5), validate_args=False, like=like)  # Pyro's support check aside
    unchecked_tensor = IsotropicNormal(torch.tensor(0.7, dtype=torch.float64), (4, 5), validate_args=False)
    ops = []
    for law in (unchecked, unchecked_tensor):
        with torch.profiler.profile() as prof:
            law.log_prob(w)
        names = [e.name for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::")]
        ops.append([op for op in names if op not in ("aten::reshape", "aten::view")])
    assert ops[0] == ["aten::dot", "aten::mul", "aten::add"]
    assert len(ops[1]) >= 7  # the dot and the constants computed on the 0-d tensor: 1 / v, log(2 pi v), ...
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match=r"`variance` must lie in \(0.0, inf\)"):
            IsotropicNormal(bad, (3,), like=like)
    with pytest.raises(TypeError, match=r"`variance` must be a number \(or a 0-d tensor\), got '1.0'"):
        IsotropicNormal("1.0", (3,), like=like)
    with pytest.raises(TypeError, match="a number `variance` needs `like`"):
        IsotropicNormal(1.0, (3,))


@pytest.mark.parametrize(
    "name, hyper", [("vd", {}), ("vd", {"granularity": "unit"}), ("vbd", {"granularity": "layer"})]
)
def test_a_bounded_log_alpha_is_projected_onto_its_bound_where_its_gradient_passes(name, hyper):
    """Above max_log_alpha the guide's clamp passes no gradient, so a log alpha that Adam carried past the bound
    stayed there; the method projects it back after each step (``guide.project``, which ``fit`` calls), and at the
    bound the loss's gradient reaches it again."""
    model, guide, x, y = tiny_classifier(name, **hyper)
    guide(x, y)
    bounded = [(n, layer, params) for n, layer, params in guide.pairs() if hasattr(params, "log_alpha")]
    assert len(bounded) >= 1 and {id(p) for _, p in guide.projected()} >= {id(p) for _, _, p in bounded}
    with torch.no_grad():
        for _, layer, params in bounded:
            params.log_alpha.fill_(layer.method.max_log_alpha + 3.0)
    guide.project()
    bd.infer.MeanFieldELBO(max_plate_nesting=1).differentiable_loss(model, guide, x, y).backward()
    for n, layer, params in bounded:
        assert torch.all(params.log_alpha == layer.method.max_log_alpha), n
        assert params.log_alpha.grad is not None and torch.all(params.log_alpha.grad != 0), n
