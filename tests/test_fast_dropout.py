"""Fast dropout (Wang & Manning 2013): exact moments of a unit's input sum, Gaussian moment propagation, the
deterministic objective and its test-time rule."""

from __future__ import annotations

import itertools
import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from helpers import tiny_classifier
from pyro.nn import PyroModule

import bayesdrop as bd
from bayesdrop.handlers import MomentMatching
from bayesdrop.infer import MeanFieldELBO
from bayesdrop.moments import Moments


def _regression(p=0.3, d=10, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    layer = bd.nn.Linear(d, 1, bd.methods.get("fast-dropout", p=p)).double()
    model = bd.Regressor(torch.nn.Sequential(layer), num_data=n).double()
    guide = bd.DropoutGuide(model).double()
    guide(x)
    return model, guide, layer, x, y


def _moments_out(model, guide, x):
    trace = poutine.trace(MomentMatching()(guide)).get_trace(x)
    return poutine.replay(model.net, trace=trace)(x)


def test_input_sum_moments_equal_the_exact_moments_over_all_2_10_masks():
    """s = (x o m / (1 - p)) w + b for the 2^10 masks m of 10 inputs, weighted by their probabilities: the layer's
    mean and variance under moment matching equal the exact ones to 1e-6."""
    p = 0.3
    model, guide, layer, x, _ = _regression(p=p)
    out = _moments_out(model, guide, x)
    assert isinstance(out, Moments)
    w = dict((n, g) for n, _, g in guide.pairs())["net.0"].weight.detach()[0]
    masks = torch.tensor(list(itertools.product([0.0, 1.0], repeat=10)), dtype=torch.float64)  # (1024, 10)
    prob = ((1 - p) ** masks.sum(1)) * (p ** (10 - masks.sum(1)))
    assert math.isclose(prob.sum().item(), 1.0, rel_tol=1e-12)
    sums = (x[:, None, :] * masks / (1 - p)) @ w + layer.bias.detach()  # (n, 1024)
    mean = sums @ prob
    var = ((sums - mean[:, None]) ** 2) @ prob
    torch.testing.assert_close(out.mean.squeeze(-1), mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.var.squeeze(-1), var, atol=1e-6, rtol=0)


def test_relu_moments_are_those_of_a_rectified_gaussian():
    """Against numerical integration on a fine grid (trapezoid rule over +-12 sd), to 1e-6."""
    mu = torch.tensor([-2.0, -0.3, 0.0, 0.4, 3.0], dtype=torch.float64)
    var = torch.tensor([0.5, 1.0, 2.0, 0.1, 4.0], dtype=torch.float64)
    out = torch.relu(Moments(mu, var))
    sd = var.sqrt()
    grid = mu[:, None] + sd[:, None] * torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    dens = torch.exp(-0.5 * ((grid - mu[:, None]) / sd[:, None]) ** 2) / (sd[:, None] * math.sqrt(2 * math.pi))
    first = torch.trapezoid(grid.clamp_min(0) * dens, grid, dim=1)
    second = torch.trapezoid(grid.clamp_min(0) ** 2 * dens, grid, dim=1)
    torch.testing.assert_close(out.mean, first, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.var, second - first**2, atol=1e-6, rtol=0)


def test_relu_moments_keep_their_digits_in_the_lower_tail_and_sigma_points_take_zero_variance():
    """float32 against float64 at standardised means -4 to -9, where the mean of max(0, s) is 1e-5 to 1e-20 of the
    sd (float32's (1 + erf) / 2 CDF is 0 below -5.4, which made it 50x too large at -6): 1e-3 relative.  A unit of
    variance exactly 0 gives finite sigma points and gradients (sqrt's derivative at 0 times 0 was NaN)."""
    a = torch.tensor([-4.0, -6.0, -7.5, -9.0], dtype=torch.float64)
    ref = torch.relu(Moments(a, torch.ones_like(a))).mean
    got = torch.relu(Moments(a.float(), torch.ones(4))).mean.double()
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=0)
    var = torch.tensor([[0.0, 0.5]], requires_grad=True)
    mean = torch.tensor([[1.0, -1.0]], requires_grad=True)
    points = Moments(mean, var).sigma_points()
    torch.testing.assert_close(points[:, 0, 0], torch.tensor([1.0, 1.0, 1.0, 1.0]))  # no spread on unit 0
    points.square().sum().backward()
    assert torch.isfinite(var.grad).all() and torch.isfinite(mean.grad).all() and var.grad[0, 0] == 0


def test_elementwise_quadrature_and_sigma_points_are_exact_where_they_should_be():
    """Three-point Gauss-Hermite is exact for cubics: E s^3 = mu^3 + 3 mu v.  The 2d sigma points have mean mu and
    covariance diag(v) exactly."""
    mu = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    v = torch.tensor([[0.3, 1.5, 0.2]], dtype=torch.float64)
    cube = Moments(mu, v).elementwise(lambda t: t**3)
    torch.testing.assert_close(cube.mean, mu**3 + 3 * mu * v)
    points = Moments(mu, v).sigma_points()  # (6, 1, 3)
    assert points.shape == (6, 1, 3)
    torch.testing.assert_close(points.mean(0), mu)
    centred = (points - mu).reshape(6, 3)
    torch.testing.assert_close(centred.T @ centred / 6, torch.diag(v[0]))


def test_moments_follow_the_torch_operations_of_the_layers_after_a_fast_dropout_layer():
    """Each operation a network may apply to the moments after a fast-dropout layer, against the formula for
    independent Gaussian units: a plain ``nn.Linear`` (mean W mu + b, variance (W o W) v), elementwise activations
    (the three-point quadrature), sums and products with constants and with independent moments (the product's
    variance also against a Monte Carlo estimate), shape operations applied to both, ``nn.Dropout`` in eval mode;
    anything else is refused by name."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 3, dtype=torch.float64, generator=g)
    v = torch.rand(4, 3, dtype=torch.float64, generator=g) + 0.1
    m = Moments(mu, v)

    def check(got, mean, var):
        assert isinstance(got, Moments)
        torch.testing.assert_close(got.mean, mean)
        torch.testing.assert_close(got.var, var)

    lin = torch.nn.Linear(3, 2).double()
    w, b = lin.weight.detach(), lin.bias.detach()
    check(lin(m), mu @ w.T + b, v @ (w * w).T)
    check(torch.nn.functional.linear(m, w), mu @ w.T, v @ (w * w).T)
    # the quadrature is exact up to degree 5: s^2 has mean mu^2 + v and variance E s^4 - (E s^2)^2 = 4 mu^2 v + 2 v^2
    check(m.elementwise(torch.square), mu**2 + v, 4 * mu**2 * v + 2 * v**2)
    for act in (torch.nn.Tanh(), torch.nn.SiLU(), torch.nn.LeakyReLU(0.1), torch.nn.GELU()):
        want = m.elementwise(act)
        check(act(m), want.mean, want.var)
    c = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    for got in (m * c, c * m, torch.mul(m, c), torch.mul(c, m), m / (1 / c)):
        check(got, mu * c, v * c * c)
    for got in (m + c, c + m, torch.add(m, c), torch.add(c, m)):
        check(got, mu + c, v)
    check(m - 1.0, mu - 1, v)
    check(1.0 - m, 1 - mu, v)
    check(-m, -mu, v)
    # independent moments: a dropout multiplier of mean 1 and variance 1/4
    noise = Moments(torch.ones_like(mu), torch.full_like(v, 0.25))
    check(m + noise, mu + 1, v + 0.25)
    check(m * noise, mu, (v + mu**2) * 1.25 - mu**2)
    a = mu + v.sqrt() * torch.randn(400_000, *mu.shape, dtype=torch.float64, generator=g)
    z = 1 + 0.5 * torch.randn(400_000, *mu.shape, dtype=torch.float64, generator=g)
    # the sample variance's relative standard error is about sqrt((kurtosis - 1) / n) < 0.01 for these laws
    torch.testing.assert_close((a * z).var(0), (m * noise).var, rtol=0.03, atol=0)
    cube = Moments(mu.reshape(2, 2, 3), v.reshape(2, 2, 3))
    for got, op in (
        (torch.flatten(cube, 1), lambda t: t.flatten(1)),
        (torch.nn.Flatten()(cube), lambda t: t.flatten(1)),
        (torch.reshape(cube, (4, 3)), lambda t: t.reshape(4, 3)),
        (cube.view(-1), lambda t: t.reshape(-1)),
        (torch.unsqueeze(cube, 0), lambda t: t.unsqueeze(0)),
        (torch.squeeze(cube.unsqueeze(0), 0), lambda t: t),
        (cube[1, :, 1:], lambda t: t[1, :, 1:]),
    ):
        check(got, op(cube.mean), op(cube.var))
    assert torch.nn.Dropout(0.5).eval()(m) is m
    with pytest.raises(TypeError, match="dropout is none of them"):
        torch.nn.Dropout(0.5)(m)  # training: a mask on moments is not what fast dropout propagates
    with pytest.raises(TypeError, match="exp is none of them"):
        torch.exp(m)
    with pytest.raises(TypeError, match="through cat"):
        torch.cat([m, m])
    with pytest.raises(TypeError, match="first argument only"):
        torch.nn.functional.linear(m, noise)


def test_the_regression_objective_is_the_exact_expected_gaussian_log_likelihood():
    """For y ~ N(f, sigma^2) and f ~ N(mu, v): E log N(y; f, sigma^2) = log N(y; mu, sigma^2) - v / (2 sigma^2).
    The ELBO's data term (loss minus the weight decay, at N = B) equals it exactly."""
    model, guide, layer, x, y = _regression()
    loss = MeanFieldELBO(max_plate_nesting=1).differentiable_loss(model, MomentMatching(training=True)(guide), x, y)
    out = _moments_out(model, guide, x)
    sigma = model.noise_scale.detach()
    mu, v = out.mean.squeeze(-1), out.var.squeeze(-1)
    expected = (torch.distributions.Normal(mu, sigma).log_prob(y) - v / (2 * sigma**2)).sum()
    w = dict((n, g) for n, _, g in guide.pairs())["net.0"].weight
    decay = -torch.distributions.Normal(0.0, 1.0).log_prob(w).sum()
    torch.testing.assert_close(loss.detach(), (-expected + decay).detach(), atol=1e-9, rtol=0)


def test_the_training_gradient_is_deterministic_and_bernoulli_s_is_not():
    """The same parameters and minibatch under two RNG seeds: fast dropout's gradient is identical, standard
    dropout's (which draws masks) is not."""

    def grads(method, seed):
        model, guide, x, y = tiny_classifier(method, n=32, d=6, hidden=(16, 16), seed=0)
        guide(x)
        pyro.set_rng_seed(seed)
        guided = MomentMatching(training=True)(guide)
        loss = MeanFieldELBO(max_plate_nesting=1).differentiable_loss(model, guided, x, y)
        params = [p for p in guide.parameters()] + [p for p in model.parameters()]
        return torch.autograd.grad(loss, params, allow_unused=True)

    torch.manual_seed(0)  # the same initial weights for each build
    fast = [grads("fast-dropout", s) for s in (0, 1)]
    assert all(a is None and b is None or torch.equal(a, b) for a, b in zip(*fast, strict=True))
    standard = [grads("bernoulli", s) for s in (0, 1)]
    assert any(a is not None and not torch.equal(a, b) for a, b in zip(*standard, strict=True))


def test_plain_svi_with_the_wrapped_guide_takes_fits_deterministic_loss():
    """The plain-Pyro path (README): ``TraceMeanField_ELBO`` with ``MomentMatching(training=True)(guide)`` gives
    ``bd.infer.MeanFieldELBO``'s deterministic loss; the bare guide draws masks, a different loss each call."""
    model, guide, x, y = tiny_classifier("fast-dropout", n=32, d=6, hidden=(16,), seed=0)
    guide(x)
    wrapped = MomentMatching(training=True)(guide)
    pyro_loss = [pyro.infer.TraceMeanField_ELBO().differentiable_loss(model, wrapped, x, y) for _ in range(2)]
    ours = MeanFieldELBO().differentiable_loss(model, wrapped, x, y)
    assert torch.equal(pyro_loss[0], pyro_loss[1]) and torch.allclose(pyro_loss[0], ours, rtol=1e-6)
    bare = [pyro.infer.TraceMeanField_ELBO().differentiable_loss(model, guide, x, y) for _ in range(2)]
    assert not torch.equal(bare[0], bare[1])


def test_fit_draws_no_mask_and_predict_moment_matching_is_one_deterministic_pass():
    model, guide, x, y = tiny_classifier("fast-dropout", n=40, d=6, hidden=(16,))
    res = bd.fit(model, guide, (x, y), epochs=10, progress=False, seed=0)
    assert res.history["nll"][-1] < res.history["nll"][0]  # the expected log-likelihood of the sigma points
    first = bd.predict(model, guide, x, rule="moment-matching")
    again = bd.predict(model, guide, x, rule="moment-matching", num_samples=7)
    torch.testing.assert_close(first, again)
    torch.testing.assert_close(first.sum(-1), torch.ones(40))
    mc = bd.predict(model, guide, x, num_samples=20)  # real masks: differs
    assert not torch.equal(mc, first)


def test_regression_prediction_under_the_rule_is_the_gaussian_approximation():
    """Sigma points in one dimension: the predictive mean is mu and the std sqrt(v + sigma^2), exactly."""
    model, guide, layer, x, _ = _regression()
    mean, std = bd.predict(model, guide, x, rule="moment-matching")
    out = _moments_out(model, guide, x)
    torch.testing.assert_close(mean, out.mean.squeeze(-1))
    torch.testing.assert_close(std, (out.var.squeeze(-1) + model.noise_scale.detach() ** 2).sqrt())


def test_unsupported_operations_and_noise_after_moments_are_refused():
    with pytest.raises(TypeError, match="max_pool1d"):
        torch.nn.functional.max_pool1d(Moments(torch.zeros(1, 2, 4), torch.ones(1, 2, 4)), 2)
    net = PyroModule[torch.nn.Sequential](
        bd.nn.Linear(6, 8, "fast-dropout"), torch.nn.ReLU(), bd.nn.Linear(8, 3, "bernoulli", p=0.5)
    )
    model = bd.Classifier(net, num_data=10)
    guide = bd.DropoutGuide(model)
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    with pytest.raises(TypeError, match="use fast-dropout .* after the first one"):
        bd.fit(model, guide, (x, y), epochs=1, progress=False)
