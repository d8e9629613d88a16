"""Conformance of every registered method, present and future.

Each test is parametrised over ``bd.methods.names()``, so a method is checked
the moment it registers: output shapes (Linear, Conv2d), gradients reaching
every parameter, Monte Carlo draws that differ (masks must be Pyro sample
sites), a checkpoint round trip, and, for methods with an analytic KL, that the
loss Pyro computes equals -(N/B log-likelihood - KL) with the paper's
closed-form KL (``tests/oracles.py``), on a replayed trace.  The contracts
over layer kinds and capabilities are in ``test_architecture.py``.
"""

from __future__ import annotations

import pyro
import pyro.poutine as poutine
import pytest
import torch
from helpers import elbo_loss, tiny_classifier, tiny_convnet
from oracles import kl as oracle_kl

import bayesdrop as bd
from bayesdrop.nn import LocalReparameterization

METHODS = bd.methods.names()
CONV_METHODS = [m for m in METHODS if bd.methods.info(m)["conv"]]


@pytest.mark.parametrize("method", METHODS)
def test_linear_output_shape(method, device):
    model, guide, x, y = tiny_classifier(method, device=device)
    guide(x, y)
    assert model(x, y).shape == (40, 3)
    probs = bd.predict(model, guide, x, num_samples=7)
    assert probs.shape == (40, 3)
    assert torch.allclose(probs.sum(-1), torch.ones(40, device=device), atol=1e-5)


@pytest.mark.parametrize("method", CONV_METHODS)
def test_conv_output_shape_and_draws(method, device):
    model, guide, x, y = tiny_convnet(method, device=device)
    guide(x, y)
    with poutine.trace() as tr:
        out = model(x, y)
    assert out.shape == (12, 3)
    conv_sites = [n for n in tr.trace.nodes if n.startswith("net.0.")]
    assert conv_sites, "the Conv2d layer adds no sample site"
    probs, draws = bd.predict(model, guide, x, num_samples=5, return_samples=True)
    assert draws.shape == (5, 12, 3) and probs.shape == (12, 3)


@pytest.mark.parametrize("method", METHODS)
def test_gradient_reaches_every_parameter(method, device):
    model, guide, x, y = tiny_classifier(method, device=device)
    guide(x, y)
    loss = elbo_loss(model, guide, x, y)
    loss.backward()
    params = dict(model.named_parameters()) | {f"guide.{k}": v for k, v in guide.named_parameters()}
    assert params
    for name, p in params.items():
        assert p.grad is not None, f"no gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient in {name}"


@pytest.mark.parametrize("method", METHODS)
def test_mc_draws_differ_wherever_a_keep_probability_is_below_one(method, device):
    """Masks are sample sites: draws differ when any keep probability is < 1, and
    coincide when none is (Generalized Dropout starts at k = 1, sec. 4.1.3, and
    ``dropout++(1)`` may keep it there)."""
    model, guide, x, y = tiny_classifier(method, device=device)
    bd.fit(model, guide, (x, y), epochs=5, batch_size=10, lr=5e-2, progress=False, device=device)
    _, draws = bd.predict(model, guide, x, num_samples=8, return_samples=True)
    spread = draws.std(0).mean().item()
    noisy = any(bool((r < 1 - 1e-6).any()) for r in bd.dropout_rates(model, guide).values())
    noisy |= method == "stochastic-pooling"  # it drops nothing (keep probability 1): it draws which element pools
    if noisy:
        assert spread > 1e-4, f"{method}: all Monte Carlo draws are identical"
    else:
        assert spread < 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_checkpoint_round_trip_reproduces_predictions(method, device, tmp_path):
    model, guide, x, y = tiny_classifier(method, device=device)
    bd.fit(model, guide, (x, y), epochs=2, batch_size=20, lr=1e-2, progress=False, device=device)
    path = tmp_path / "ckpt.pt"
    bd.save_checkpoint(path, model, guide)
    model2, guide2, _, _ = tiny_classifier(method, seed=1, device=device)
    guide2(x, y)
    bd.load_checkpoint(path, model2, guide2, map_location=device)
    p1 = bd.predict(model, guide, x, rule="weight-scaling")
    p2 = bd.predict(model2, guide2, x, rule="weight-scaling")
    assert torch.allclose(p1, p2, atol=1e-6)
    pyro.set_rng_seed(3)
    m1 = bd.predict(model, guide, x, num_samples=6)
    pyro.set_rng_seed(3)
    m2 = bd.predict(model2, guide2, x, num_samples=6)
    assert torch.allclose(m1, m2, atol=1e-6)


@pytest.mark.parametrize("method", [m for m in METHODS if bd.methods.info(m)["analytic_kl"]])
def test_elbo_is_loglik_minus_closed_form_kl(method, device):
    """loss == -(N/B) sum log p(y | x, theta_s) + sum over layers of the paper's closed-form KL, on the replayed
    sample."""
    model, guide, x, y = tiny_classifier(method, n=40, device=device)
    guide(x, y)
    xb, yb = x[:10], y[:10]  # a minibatch: the likelihood is scaled by N / B = 4
    loss = elbo_loss(model, guide, xb, yb, seed=5)
    pyro.set_rng_seed(5)
    guide_tr = poutine.trace(guide).get_trace(xb, yb)
    out = poutine.replay(model, trace=guide_tr)(xb, yb)
    loglik = model.log_likelihood(out, yb).sum() * (40 / 10)
    kl = sum(oracle_kl(layer, params) for _, layer, params in guide.pairs())
    expected = -(loglik - kl)
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-4), (loss.item(), expected.item())


@pytest.mark.parametrize("lrt", [False, True], ids=["weights", "lrt"])
@pytest.mark.parametrize("method", METHODS)
def test_lazy_mean_field_elbo_equals_pyros(method, lrt, device):
    """bd.infer.MeanFieldELBO (fit's default) gives TraceMeanField_ELBO's value and gradients, with Pyro's
    validation on (traces from TraceMeanField_ELBO itself) and off (lazily scored traces); under the local
    reparameterisation handler as fit uses it, the two agree too."""
    model, guide, x, y = tiny_classifier(method, device=device)
    guide(x, y)
    params = [*model.parameters(), *guide.parameters()]
    elbos = [
        (bd.infer.MeanFieldELBO(max_plate_nesting=1), True),
        (bd.infer.MeanFieldELBO(max_plate_nesting=1), False),
    ]
    if not lrt:  # Pyro's ELBO would evaluate log q at the placeholder of a skipped weight draw
        elbos.insert(0, (pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1), True))
    grads = []
    for elbo, validate in elbos:
        pyro.set_rng_seed(11)
        run_guide = LocalReparameterization(draw_weights=False)(guide) if lrt else guide  # as fit wraps it
        with pyro.validation_enabled(validate):
            loss = elbo.differentiable_loss(model, run_guide, x[:10], y[:10])
        grads.append((loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)))
    (l1, g1) = grads[0]
    for l2, g2 in grads[1:]:
        assert torch.allclose(l1, l2, rtol=1e-6)
        for a, b in zip(g1, g2):
            assert (a is None and b is None) or torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unvalidated_elbo_scores_auxiliary_guide_sites_and_mc_terms_like_the_validated_one():
    """A guide site the model lacks adds -log q, a pair without a registered KL adds log p - log q: without
    validation the lazy terms give the validated path's number."""

    def model():
        pyro.sample("w", pyro.distributions.Cauchy(torch.zeros(3), 1.0).to_event(1))
        pyro.sample("obs", pyro.distributions.Normal(0.5, 1.0), obs=torch.tensor(0.3))

    def guide():
        loc = torch.tensor([0.1, -0.2, 0.3])
        pyro.sample("w", pyro.distributions.Normal(loc, 0.5).to_event(1))
        pyro.sample("aux", pyro.distributions.Normal(0.0, 2.0), infer={"is_auxiliary": True})

    losses = []
    for validate in (True, False):
        pyro.set_rng_seed(3)
        with pyro.validation_enabled(validate):
            losses.append(bd.infer.MeanFieldELBO().differentiable_loss(model, guide))
    assert torch.allclose(losses[0], losses[1], rtol=1e-6)


def test_mean_field_elbo_honours_masks_and_tensor_scales():
    """Sites under a tensor scale or a mask take the general path (the KL is scaled / masked before summing); the
    loss with and without validation equals sum_i scale_i KL_i written out."""
    normal = pyro.distributions.Normal
    scale = torch.tensor(0.5)

    def sites(loc, sd):
        with poutine.scale(scale=scale):
            pyro.sample("w", normal(loc[:3], sd).to_event(1))
        with poutine.mask(mask=torch.tensor(False)):
            pyro.sample("v", normal(loc[3:5], sd).to_event(1))
        pyro.sample("u", normal(loc[5:], sd).to_event(1))

    loc = torch.linspace(-1.0, 1.0, 9)
    losses = []
    for validate in (True, False):
        with pyro.validation_enabled(validate):
            losses.append(
                bd.infer.MeanFieldELBO().differentiable_loss(lambda: sites(0 * loc, 1.0), lambda: sites(loc, 0.5))
            )
    kl = torch.distributions.kl_divergence(normal(loc, 0.5), normal(0.0, 1.0))
    expected = scale * kl[:3].sum() + kl[5:].sum()
    assert torch.allclose(losses[0], expected, rtol=1e-6) and torch.allclose(losses[1], expected, rtol=1e-6)


def test_unvalidated_elbo_rejects_a_latent_site_without_guide_site():
    def model():
        pyro.sample("z", pyro.distributions.Normal(0.0, 1.0))

    with pyro.validation_enabled(False), pytest.raises(ValueError, match="'z' is latent but the guide has no site"):
        bd.infer.MeanFieldELBO().differentiable_loss(model, lambda: None)


def test_the_loss_reads_no_value_to_the_host_and_averages_its_particles():
    """``MeanFieldELBO.differentiable_loss`` takes no ``.item()`` (Pyro's takes two and a NaN check, each a wait for
    a GPU): no scalar is read while it runs; with several particles it is their mean, Pyro's loss from the same
    draws."""
    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    with pyro.validation_enabled(False), torch.profiler.profile() as prof:
        bd.infer.MeanFieldELBO(max_plate_nesting=1).differentiable_loss(model, guide, x[:10], y[:10])
    read = [e.name for e in prof.events() if e.name in ("aten::item", "aten::_local_scalar_dense", "aten::is_nonzero")]
    assert read == []
    losses = []
    for elbo in (pyro.infer.TraceMeanField_ELBO, bd.infer.MeanFieldELBO):
        pyro.set_rng_seed(4)
        losses.append(elbo(num_particles=3, max_plate_nesting=1).differentiable_loss(model, guide, x[:10], y[:10]))
    pyro.set_rng_seed(4)
    single = bd.infer.MeanFieldELBO(max_plate_nesting=1)
    one = [single.differentiable_loss(model, guide, x[:10], y[:10]) for _ in range(3)]
    assert torch.allclose(losses[1], losses[0], rtol=1e-6)
    assert torch.allclose(losses[1], torch.stack(one).mean(), rtol=1e-6)


@pytest.mark.parametrize("method", [m for m in METHODS if not bd.methods.info(m)["learns_rates"]])
def test_fixed_rate_noise_adds_no_term_to_the_loss(method, monkeypatch):
    """A fixed-rate method's noise has the prior as its guide (``FixedNoise`` of one law in both), so its KL is 0
    in value and gradient: the loss asks for no KL of such a pair, and still equals Pyro's
    (:func:`test_lazy_mean_field_elbo_equals_pyros`)."""
    asked = []
    real = bd.infer.elbo.kl_divergence

    def spy(q, p):
        asked.append((type(q).__name__, type(p).__name__))
        return real(q, p)

    monkeypatch.setattr(bd.infer.elbo, "kl_divergence", spy)
    model, guide, x, y = tiny_classifier(method)
    guide(x, y)
    with pyro.validation_enabled(False):
        bd.infer.MeanFieldELBO(max_plate_nesting=1).differentiable_loss(model, guide, x[:10], y[:10])
    assert asked and ("FixedNoise", "FixedNoise") not in asked  # the weights' priors are asked, the noise's not
