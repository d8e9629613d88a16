"""Structured Bayesian Pruning (Neklyudov et al. 2017): the truncated log-normal and log-uniform laws against
numerical integration, the registered KL, the ELBO against the paper's objective on a replayed trace, per-example
noise under the local reparameterisation handler, and pruning by the signal-to-noise ratio."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch
from helpers import tiny_classifier, tiny_convnet
from scipy import integrate, optimize, special
from scipy.stats import norm
from torch.distributions import kl_divergence

import bayesdrop as bd
from bayesdrop.methods.sbp import TruncatedLogNormal, TruncatedLogUniform, _truncated_normal_icdf

A, B = -20.0, 0.0
# (mu, sigma) whose mass inside the bounds float64 integration resolves (far outside, only a wide law has some)
GRID = [
    (mu, s)
    for mu in (-25.0, -12.0, -3.0, -0.5, 0.0, 2.0)
    for s in (0.01, 0.3, 1.0, 4.0, 15.0)
    if norm.cdf((B - mu) / s) - norm.cdf((A - mu) / s) > 1e-200
]


def _q(mu, sigma):
    return TruncatedLogNormal(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64), A, B)


def _density(mu, sigma):
    """The truncated normal density of log theta on [A, B], and its normaliser, with scipy."""
    z = norm.cdf((B - mu) / sigma) - norm.cdf((A - mu) / sigma)
    return (lambda t: norm.pdf(t, mu, sigma) / z), z


def _quad(f, mu, sigma):
    """The integral of ``f`` over [A, B], with the mass's location as a break point (narrow laws)."""
    points = [p for p in (mu, mu - 3 * sigma, mu + 3 * sigma) if A < p < B]
    return integrate.quad(f, A, B, points=points or None, limit=500, epsabs=1e-13, epsrel=1e-11)[0]


@pytest.mark.parametrize("mu, sigma", GRID)
def test_the_registered_kl_and_the_moments_equal_numerical_integration(mu, sigma):
    """KL(q || p) = int q(t) log(q(t) / p(t)) dt over log theta in [a, b], p(t) = 1 / (b - a), to 1e-4; E theta and
    E theta^2 (integrals of e^t and e^2t against q) to 1e-6 relative; the snr from them."""
    dens, _ = _density(mu, sigma)
    kl = _quad(lambda t: dens(t) * (math.log(dens(t) * (B - A)) if dens(t) > 0 else 0.0), mu, sigma)
    q, p = _q(mu, sigma), TruncatedLogUniform(A, B, like=torch.zeros((), dtype=torch.float64))
    assert kl_divergence(q, p).item() == pytest.approx(kl, abs=1e-4)
    m1 = _quad(lambda t: math.exp(t) * dens(t), mu, sigma)
    m2 = _quad(lambda t: math.exp(2 * t) * dens(t), mu, sigma)
    assert q.mean.item() == pytest.approx(m1, rel=1e-6)
    if m2 - m1**2 > 1e-8 * m2:  # else the variance is below the integral's resolution
        assert q.variance.item() == pytest.approx(m2 - m1**2, rel=1e-4)
        assert q.snr().item() == pytest.approx(m1 / math.sqrt(m2 - m1**2), rel=1e-4)


def test_draws_lie_in_the_bounds_follow_the_law_and_are_reparameterised():
    mu = torch.tensor([0.0, -3.0, -10.0, -30.0], requires_grad=True)
    sigma = torch.tensor([0.01, 1.0, 4.0, 2.0], requires_grad=True)
    q = TruncatedLogNormal(mu, sigma, A, B)
    torch.manual_seed(0)
    x = q.rsample((40000,))
    assert (x >= math.exp(A)).all() and (x <= math.exp(B)).all()
    se = (q.variance / 40000).sqrt()
    assert ((x.mean(0) - q.mean).abs() < 5 * se + 1e-7).all()  # 4 means at 5 SE: a false alarm is ~2e-6
    x.log().sum().backward()
    assert torch.isfinite(mu.grad).all() and (mu.grad != 0).all() and torch.isfinite(sigma.grad).all()
    # log_prob is the density of theta: it integrates to 1 (in log theta with the Jacobian theta)
    t = torch.linspace(A, B, 200001, dtype=torch.float64)
    q64 = _q(-3.0, 1.0)
    assert torch.trapezoid(q64.log_prob(t.exp()).exp() * t.exp(), t).item() == pytest.approx(1.0, abs=1e-6)


# (mu, sigma) of kept and pruned units whose mass lies beyond a bound: beta = (b - mu) / sigma = -7.4, -9.6 (where
# torch's ndtr is 0 in float32), -148 (solved in the tail, below -10), alpha = (a - mu) / sigma = 11.9, 742 (mirrored)
BEYOND = [
    (0.05, math.exp(-5)),
    (0.065, math.exp(-5)),
    (1.0, math.exp(-5)),
    (-20.08, math.exp(-5)),
    (-25.0, math.exp(-5)),
]


def _mass(lo, hi):
    """Phi(hi) - Phi(lo) in mpmath, taken in the tail the interval lies in (1 - 1e-119000 has no 60 digits)."""
    return mpmath.ncdf(-lo) - mpmath.ncdf(-hi) if lo > 0 else mpmath.ncdf(hi) - mpmath.ncdf(lo)


def _mean_theta(mu, sigma):
    """E theta in 60-digit arithmetic (mpmath)."""
    mu, sigma = mpmath.mpf(mu), mpmath.mpf(sigma)
    alpha, beta = (A - mu) / sigma, (B - mu) / sigma
    return mpmath.exp(mu + sigma**2 / 2) * _mass(alpha - sigma, beta - sigma) / _mass(alpha, beta)


@pytest.mark.parametrize("mu, sigma", BEYOND + [(-3.0, 1.0)])
def test_draws_beyond_a_bound_have_the_laws_mean_and_its_gradients(mu, sigma):
    """In float32, as trained: the mean of 20000 draws of theta and of their derivatives in mu and sigma (one draw per
    entry of an expanded leaf) equal E theta and its derivatives (60-digit arithmetic, central differences of step
    1e-25) within 5 standard errors (plus 1e-6 relative: float32's rounding).  Drawing the bound itself, as
    ``ndtri(ndtr(.))`` does there, gives d theta / d mu = 0 and a mean off by up to sigma |beta|.  (The closed-form
    moments' own autograd derivatives are not the reference: ``log_ndtr``'s derivative cancels x^2 / 2, 3e-11
    relative in float64, which at |alpha| = 742 is larger than the derivative of E theta.)"""
    n = 20000
    loc = torch.full((n,), mu, requires_grad=True)
    scale = torch.full((n,), sigma, requires_grad=True)
    torch.manual_seed(0)
    TruncatedLogNormal(loc, scale, A, B).rsample().sum().backward()
    torch.manual_seed(0)
    theta = TruncatedLogNormal(loc.detach(), scale.detach(), A, B).rsample()
    with mpmath.workdps(60):
        step = mpmath.mpf("1e-25")
        refs = [
            _mean_theta(mu, sigma),
            (_mean_theta(mu + step, sigma) - _mean_theta(mu - step, sigma)) / (2 * step),
            (_mean_theta(mu, sigma + step) - _mean_theta(mu, sigma - step)) / (2 * step),
        ]
    for draws, ref in zip((theta, loc.grad, scale.grad), map(float, refs)):
        draws = draws.double()
        se = draws.std().item() / math.sqrt(n)
        assert abs(draws.mean().item() - ref) < 5 * se + 1e-6 * abs(ref), (draws.mean().item(), ref)


def _icdf_reference(u: float, lo: float, hi: float) -> float:
    """hi - x for log Phi(x) = log((1 - u) Phi(lo) + u Phi(hi)), by Brent's method on scipy's log_ndtr (float64)."""
    target = np.logaddexp(special.log_ndtr(lo) + math.log1p(-u), special.log_ndtr(hi) + math.log(u))
    return optimize.brentq(lambda d: special.log_ndtr(hi - d) - target, 0.0, hi - lo, xtol=1e-300, rtol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_inverse_cdf_solves_its_equation_in_the_far_tail(dtype):
    """The distance d of a draw to the bound it sits at, against a float64 root of the same equation: in the tail
    (hi < -10, solved in float64) within 1e-8 relative (the series' error) plus twice the dtype's rounding of d;
    ``ndtri`` above -10 to 4 roundings of x."""
    his = [2.0, 0.0, -3.0, -9.99, -10.01, -12.0, -15.0, -36.5, -100.0, -700.0, -3000.0]
    cases = [(u, lo, hi) for hi in his for lo in (-1e4, hi - 0.5, hi - 0.01) if lo <= min(hi, 0.0)
             for u in (1e-6, 0.01, 0.3, 0.9)]  # fmt: skip
    u, lo, hi = (torch.tensor(c, dtype=dtype) for c in zip(*cases))
    d = _truncated_normal_icdf(u, lo, hi).double()
    ref = torch.tensor([_icdf_reference(*c) for c in zip(u.tolist(), lo.tolist(), hi.tolist())], dtype=torch.float64)
    eps = torch.finfo(dtype).eps
    tol = torch.where(hi < -10, (1e-8 + 2 * eps) * ref, 4 * eps * hi.abs().double().clamp_min(1.0))
    assert ((d - ref).abs() <= tol).all(), [(c, a, b) for c, a, b, ok in zip(cases, d, ref, (d - ref).abs() <= tol)
                                            if not ok]  # fmt: skip


@pytest.mark.parametrize("hi", [1.5, -2.0, -8.0, -12.0, -40.0, -600.0])
def test_the_inverse_cdf_has_the_implicit_derivatives(hi):
    """``torch.autograd.gradcheck`` (float64, central differences) of d in lo and hi, per draw, with and without
    the lower bound's mass: the closed-form backward of the draw, inside and in the tail."""
    u = torch.tensor([[0.02, 0.5, 0.97]], dtype=torch.float64).T  # (3, 1): three draws of each law
    lo = torch.tensor([hi - 0.3, min(hi, 0.0) - 40.0], dtype=torch.float64, requires_grad=True)
    high = torch.tensor([hi, hi], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _truncated_normal_icdf(u, a, b), (lo, high), rtol=1e-5, atol=1e-10)


def _entropy(mu, sigma):
    """The entropy of log theta in 80-digit arithmetic."""
    mu, sigma = mpmath.mpf(mu), mpmath.mpf(sigma)
    alpha, beta = (A - mu) / sigma, (B - mu) / sigma
    z = _mass(alpha, beta)
    return mpmath.log(sigma * mpmath.sqrt(2 * mpmath.pi * mpmath.e) * z) + (
        alpha * mpmath.npdf(alpha) - beta * mpmath.npdf(beta)
    ) / (2 * z)


@pytest.mark.parametrize("mu, sigma", BEYOND + [(0.0101, 1e-3), (0.1, 1e-3), (1.0, 1e-3), (-20.2, 0.01), (-3.0, 1.0)])
def test_the_kl_and_its_derivatives_hold_beyond_a_bound(mu, sigma):
    """In float32, as trained: KL(q || p) and its derivatives in mu and log sigma against 80-digit arithmetic
    (central differences of step 1e-30), to 1e-5 relative, at beta = (b - mu) / sigma from -7 to -1000 and alpha
    to 742.  In float32 the textbook formula cancels beta^2 / 2 between log Z and beta phi(beta) / 2Z: its derivative
    was 2 % off at beta = -10 and of the wrong sign from about -30 (-3720 against 20 at -50)."""
    loc = torch.tensor(mu, requires_grad=True)
    log_sigma = torch.tensor(math.log(sigma), requires_grad=True)
    kl = kl_divergence(TruncatedLogNormal(loc, log_sigma.exp(), A, B), TruncatedLogUniform(A, B, like=loc.detach()))
    got = [kl.item(), *(g.item() for g in torch.autograd.grad(kl, (loc, log_sigma)))]
    with mpmath.workdps(80):
        step, ls = mpmath.mpf("1e-30"), mpmath.log(sigma)
        refs = [
            math.log(B - A) - _entropy(mu, sigma),
            -(_entropy(mu + step, sigma) - _entropy(mu - step, sigma)) / (2 * step),
            -(_entropy(mu, mpmath.exp(ls + step)) - _entropy(mu, mpmath.exp(ls - step))) / (2 * step),
        ]
    assert got == pytest.approx([float(r) for r in refs], rel=1e-5, abs=1e-6)


def _paper_objective(model, guide, xb, yb, n):
    """-(N / B) sum log p(y | x, theta, w) on the traced noise, + the closed-form KL of every unit (eq. 10), + the
    weight decay ||w||^2 / (2 s^2), with the Gaussian prior's constant 0.5 log(2 pi s^2) per weight."""
    pyro.set_rng_seed(5)
    tr = poutine.trace(guide).get_trace(xb, yb)
    out = poutine.replay(model, trace=tr)(xb, yb)
    loss = -model.log_likelihood(out, yb).sum() * (n / len(xb))
    for _, layer, params in guide.pairs():
        m = layer.method
        for site in layer.noise_sites:
            q = m.posterior(params, site)
            loss = loss + (math.log(m.b - m.a) - q.log_entropy()).sum()
        for site in layer.weight_sites:
            w = getattr(params, site)
            loss = loss + (w.square() / (2 * m.prior_scale**2)).sum() + 0.5 * w.numel() * math.log(2 * math.pi)
    return loss


@pytest.mark.parametrize("builder", [tiny_classifier, tiny_convnet], ids=["linear", "conv2d"])
def test_the_elbo_is_the_papers_objective(builder):
    model, guide, x, y = builder("sbp", prior_scale=1.0)
    model.double()
    x = x.double()
    guide(x, y)
    guide.double()
    with torch.no_grad():  # units at different places of the law
        for _, _, params in guide.pairs():
            for name, p in params.named_parameters():
                if name.endswith("mu"):
                    p.copy_(-3 * torch.rand_like(p))
                elif name.endswith("log_sigma"):
                    p.copy_(torch.randn_like(p))
    n, half = len(x), len(x) // 2
    pyro.set_rng_seed(5)
    loss = bd.infer.MeanFieldELBO(max_plate_nesting=1).differentiable_loss(model, guide, x[:half], y[:half])
    paper = _paper_objective(model, guide, x[:half], y[:half], n)
    assert torch.allclose(loss, paper, rtol=1e-9), (loss.item(), paper.item())


def test_noise_is_drawn_per_example_in_training_and_per_network_otherwise():
    model, guide, x, y = tiny_classifier("sbp")
    guide(x, y)
    with torch.no_grad():
        for _, _, params in guide.pairs():
            params.log_sigma.fill_(0.0)  # wide laws: draws differ visibly
    layer = model.net[0]
    seen: list[torch.Tensor] = []
    original = layer.method.noise_model

    def recording(lyr, site, inp):
        z = original(lyr, site, inp)
        if lyr is layer:
            seen.append(z)
        return z

    layer.method.noise_model = recording  # the method object is the network's: one for both layers
    try:
        pyro.set_rng_seed(0)
        tr = poutine.trace(bd.nn.LocalReparameterization()(guide)).get_trace(x, y)
        poutine.replay(model, trace=tr)(x, y)
        pyro.set_rng_seed(0)
        tr = poutine.trace(guide).get_trace(x, y)
        poutine.replay(model, trace=tr)(x, y)
    finally:
        del layer.method.noise_model
    per_example, per_network = seen
    assert per_example.shape == (len(x), 6) and not torch.equal(per_example[0], per_example[1])
    assert per_network.shape == (6,)
    torch.testing.assert_close(per_network, tr.nodes[layer.site("noise")]["value"])


def test_pruning_removes_the_units_below_the_snr_threshold():
    """Units with SNR below 1 (the paper's rule) go: the report counts them, the pruned network drops them and
    equals the test-time network with their inputs zeroed; keep_prob is SNR^2 / (1 + SNR^2), below 1/2 exactly
    where a unit is pruned."""
    model, guide, x, y = tiny_classifier("sbp", d=6, hidden=(8,))
    guide(x, y)
    (name0, layer0, p0), (name1, layer1, p1) = guide.pairs()
    with torch.no_grad():
        p0.mu.fill_(0.0)
        p0.log_sigma.fill_(-5.0)
        p0.mu[[1, 4]] = -15.0  # two inputs buried in noise: the law is near the log-uniform, SNR ~ 0.3
        p0.log_sigma[[1, 4]] = 2.5
        p1.mu.fill_(0.0)
        p1.log_sigma.fill_(-5.0)
        p1.log_sigma[[0, 2, 5]] = 3.0
        p1.mu[[0, 2, 5]] = -10.0
    snr0 = layer0.method.snr(layer0, p0)
    assert (snr0[[1, 4]] < 1).all() and (snr0[[0, 2, 3, 5]] > 100).all()
    kp = bd.dropout_rates(model, guide)[name0]
    torch.testing.assert_close(kp, snr0.square() / (1 + snr0.square()))
    assert ((kp < 0.5) == (snr0 < 1)).all()
    report = bd.compress.report(model, guide)
    assert report.architecture == "4-5-3"
    pruned = bd.compress.prune(model, guide)
    with torch.no_grad():
        expected = guide.mean_network(pruned=True)(x)
        torch.testing.assert_close(pruned(x), expected)
        x0 = x.clone()
        x0[:, [1, 4]] = 100.0  # the pruned inputs are not read
        torch.testing.assert_close(pruned(x0), expected)
    assert sum(p.numel() for p in pruned.parameters()) == 4 * 5 + 5 + 5 * 3 + 3


def test_a_convolution_loses_whole_channels():
    model, guide, x, y = tiny_convnet("sbp")
    guide(x, y)
    conv_name, conv, params = next(iter(guide.pairs()))
    _, lin, lparams = list(guide.pairs())[1]
    assert tuple(params.mu.shape) == (2, 1, 1)  # one noise per input channel
    with torch.no_grad():
        lparams.mu.fill_(0.0)
        lparams.log_sigma.fill_(-5.0)
        lparams.mu.view(4, -1)[1] = -15.0  # every input of the dense layer from the second feature map
        lparams.log_sigma.view(4, -1)[1] = 2.5
    report = bd.compress.report(model, guide)
    assert report.architecture == "2-3-3", report.architecture  # the second feature map goes
    pruned = bd.compress.prune(model, guide)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), guide.mean_network(pruned=True)(x))


def test_hyper_parameters_are_checked():
    for kwargs, match in (
        ({"a": 0.0, "b": -1.0}, r"needs `a` < `b`, got a=0.0, b=-1.0"),
        ({"a": 5.0}, r"needs `a` < `b`, got a=5.0, b=0.0"),  # the a given is named, not the default b
        ({"mu_init": 1.0}, r"`mu_init` must lie in \[a, b\] = \[-20, 0\], got 1.0"),
        ({"b": -1.0}, r"`mu_init` must lie in \[a, b\] = \[-20, -1\], got 0.0"),  # the interval's bounds shown
        ({"threshold": -1}, "threshold"),
        ({"prior_scale": 0}, "prior_scale"),
    ):
        with pytest.raises(ValueError, match=match):
            bd.methods.get("sbp", **kwargs)
    q = _q(0.0, 1.0)
    with pytest.raises(ValueError, match="intervals"):
        kl_divergence(q, TruncatedLogUniform(-10.0, 0.0, like=torch.zeros(())))


def test_sbp_prunes_the_inputs_the_labels_do_not_depend_on():
    """The labels are the argmax of the first 3 of 6 features: after training, the other 3 inputs have SNR below 1
    (pruned) and the first 3 far above; hidden units go too, and the pruned network predicts as the test-time
    network does."""
    model, guide, x, y = tiny_classifier("sbp", n=200, d=6, hidden=(32,))
    bd.fit(model, guide, (x, y), epochs=300, progress=False)
    (_, first, p_first), (_, second, p_second) = guide.pairs()
    snr = first.method.snr(first, p_first)
    assert (snr[:3] > 5).all() and (snr[3:] < 1).all(), snr
    assert (second.method.snr(second, p_second) < 1).sum() > 8  # of 32 hidden units
    probs = bd.predict(model, guide, x, rule="weight-scaling")
    pruned = bd.compress.prune(model, guide)
    assert pruned[0].index.tolist() == [0, 1, 2]  # the inputs read
    with torch.no_grad():
        assert torch.equal(pruned(x).argmax(-1), probs.argmax(-1))


def test_without_weight_draws_the_guide_does_not_draw_the_noise_the_layer_redraws():
    """Under ``LocalReparameterization(draw_weights=False)`` (``fit``'s) the guide's noise site takes the law's
    mean, tagged with the law for the layer's per-example draws: no random number is spent on a value nothing uses
    (a recorded graph would drop that draw, and the check of ``fit``'s compiled loss would find every later draw
    moved)."""
    model, guide, x, y = tiny_classifier("sbp", d=6, hidden=(8,))
    guide(x, y)
    layer = model.net[0]
    state = torch.get_rng_state()
    tr = poutine.trace(bd.nn.LocalReparameterization(draw_weights=False)(guide)).get_trace(x, y)
    assert torch.equal(torch.get_rng_state(), state)  # the guide drew nothing
    value = tr.nodes[layer.site("noise")]["value"]
    law = value._bayesdrop_local
    assert value._bayesdrop_lrt_placeholder and isinstance(law, TruncatedLogNormal)
    torch.testing.assert_close(value, law.mean)
    drawn = poutine.trace(bd.nn.LocalReparameterization()(guide)).get_trace(x, y)  # draw_weights=True: drawn
    assert not getattr(drawn.nodes[layer.site("noise")]["value"], "_bayesdrop_lrt_placeholder", False)
