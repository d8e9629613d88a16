"""Generalized Dropout (Srinivas & Babu 2016, arXiv:1611.06791): the Dropout++ presets and Stochastic Architecture
Learning (SAL)."""

from __future__ import annotations

import itertools
import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from helpers import tiny_classifier, tiny_convnet
from oracles import kl as closed_form_kl
from pyro.nn import PyroModule

import bayesdrop as bd
from bayesdrop.distributions import StraightThroughBernoulli
from bayesdrop.methods.generalized import EPS, GateBernoulli, GateBeta, sharp_rise

PRESETS = ["dropout++(0.5)", "dropout++(flat)", "dropout++(1)", "dropout++(0)", "sal"]


def _set_k(guide, values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, _, params in guide.pairs():
            if name in values:
                params.k.copy_(values[name].reshape(params.k.shape))


def _interior_k(guide, seed: int = 1) -> None:
    """k uniform in (0.1, 0.9): away from the clamp of the Beta log density."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, _, params in guide.pairs():
            params.k.copy_(0.1 + 0.8 * torch.rand(params.k.shape, generator=g))


# -- registry, hyper-parameters, priors ------------------------------------------------
def test_presets_are_registered_with_their_priors():
    for name in PRESETS:
        assert name in bd.methods.names()
        info = bd.methods.info(name)
        assert info["analytic_kl"] and info["structured"] and info["conv"]
        caps = info["capabilities"]
        assert caps == bd.methods.get(name).capabilities
        assert caps.analytic_kl and caps.structured and caps.learns_rates and not caps.lrt
        bd.nn.Conv2d(2, 3, 3, name)  # gates on input feature maps (section 2.6)
    hyper = {n: bd.methods.get(n).hyper() for n in PRESETS}
    assert hyper["dropout++(0.5)"]["a"] == hyper["dropout++(0.5)"]["b"] > 1
    assert hyper["dropout++(flat)"]["a"] == hyper["dropout++(flat)"]["b"] == 1
    assert hyper["dropout++(1)"]["a"] > 1 == hyper["dropout++(1)"]["b"]
    assert hyper["dropout++(0)"]["a"] == 1 < hyper["dropout++(0)"]["b"]
    assert hyper["sal"]["a"] < 1 and hyper["sal"]["b"] < 1
    assert all(hyper[n]["init"] == 1.0 for n in PRESETS[:4])  # section 4.1.3
    assert hyper["sal"]["init"] == 0.5 and hyper["sal"]["gates"] == "channel"
    m = bd.methods.get("sal", a=0.01, b=0.9, init=0.3, strength=7.0)
    assert (m.a, m.b, m.init, m.strength) == (0.01, 0.9, 0.3, 7.0)


def test_preset_priors_favour_what_their_names_say():
    """The mode of each preset's prior (eq. 7's regulariser, with the paper's a/b swap undone)."""
    grid = torch.linspace(0.06, 0.94, 89)
    one = torch.ones(())

    def log_prior(name):
        m = bd.methods.get(name)
        return GateBeta(one * m.a, one * m.b).log_prob(grid)

    assert abs(grid[log_prior("dropout++(0.5)").argmax()].item() - 0.5) < 1e-6
    assert log_prior("dropout++(1)").argmax() == len(grid) - 1  # k near 1 most probable
    assert log_prior("dropout++(0)").argmax() == 0  # k near 0 most probable
    flat = log_prior("dropout++(flat)")
    assert torch.allclose(flat, flat[0].expand_as(flat))
    sal = log_prior("sal")
    assert abs(grid[sal.argmin()].item() - 0.5) < 1e-6 and sal[0] > sal[44] < sal[-1]


@pytest.mark.parametrize(
    "hyper, arg",
    [
        ({"a": 0.0}, "a"),
        ({"a": -1.0}, "a"),
        ({"b": 0.0}, "b"),
        ({"init": 1.5}, "init"),
        ({"init": -0.1}, "init"),
        ({"gates": "pixel"}, "gates"),
        ({"strength": -1.0}, "strength"),
        ({"prior_scale": 0.0}, "prior_scale"),
    ],
)
def test_bad_hyper_parameters_raise(hyper, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        bd.methods.get("dropout++(flat)", **hyper)
    with pytest.raises(ValueError, match=f"`{arg}`"):
        bd.nn.Linear(3, 2, "sal", **hyper)


def test_gate_beta_is_strength_times_beta_with_straight_through_clamp():
    a, b = torch.tensor(0.7), torch.tensor(3.0)
    k = torch.tensor([0.2, 0.5, 0.8])
    ref = torch.distributions.Beta(a, b).log_prob(k)
    assert torch.allclose(GateBeta(a, b, strength=2.5).log_prob(k), 2.5 * ref)
    p = GateBeta(a, b, strength=2.5).expand((3,))
    assert isinstance(p, GateBeta) and p.strength == 2.5 and p.batch_shape == (3,)
    # Outside [EPS, 1 - EPS]: the value at the clamp point and its gradient, passed straight through.
    edge = torch.tensor([0.0, 1.0], requires_grad=True)
    lp = GateBeta(a, b).log_prob(edge)
    inner = torch.tensor([EPS, 1 - EPS], requires_grad=True)
    lp_in = torch.distributions.Beta(a, b).log_prob(inner)
    assert torch.allclose(lp, lp_in)
    (g,) = torch.autograd.grad(lp.sum(), edge)
    (g_in,) = torch.autograd.grad(lp_in.sum(), inner)
    assert torch.isfinite(g).all() and torch.allclose(g, g_in)
    # Pyro's KL(Delta || p) is -log p: the k term of eq. 7.
    q = dist.Delta(k, event_dim=1)
    kl = torch.distributions.kl_divergence(q, GateBeta(a, b, 2.5).expand((3,)).to_event(1))
    assert torch.allclose(kl, -2.5 * ref.sum())


def test_gate_bernoulli_kl_is_the_elementwise_bernoulli_kl():
    q_gate = torch.tensor([0.2, 0.9, 1.0])
    p_gate = torch.tensor([0.3, 0.5, 1.0])
    q, p = GateBernoulli(q_gate, (4, 3)), GateBernoulli(p_gate, (4, 3))
    ref = torch.distributions.kl_divergence(
        torch.distributions.Bernoulli(q_gate.expand(4, 3)), torch.distributions.Bernoulli(p_gate.expand(4, 3))
    )
    kl = torch.distributions.kl_divergence(q, p)
    assert kl.shape == (4, 3) and torch.allclose(kl, ref)
    assert isinstance(q.expand((2, 4, 3)), GateBernoulli) and isinstance(q, StraightThroughBernoulli)
    shared = torch.tensor([0.3, 0.6], requires_grad=True)
    kl0 = torch.distributions.kl_divergence(GateBernoulli(shared, (5, 2)), GateBernoulli(shared * 1, (5, 2)))
    (grad,) = torch.autograd.grad(kl0.sum(), shared)
    assert kl0.abs().max() == 0 and grad.abs().max() == 0  # q(theta) = p(theta | k): KL 0 in value and gradient


# -- the gates: shapes, straight-through gradient, projection ---------------------------
@pytest.mark.parametrize("gates, theta_shape", [("channel", (2, 1, 1)), ("element", (2, 6, 6))])
def test_conv_gate_shapes_and_posterior_draws(gates, theta_shape):
    model, guide, x, y = tiny_convnet("dropout++(flat)", gates=gates, init=0.5)
    guide(x, y)
    conv_k = guide.layer_guide(model.net[0]).k
    assert conv_k.shape == (2, 1, 1)  # one keep probability per input channel
    tr = poutine.trace(guide).get_trace(x, y)
    theta = tr.nodes["net.0.noise"]["value"]  # the gates theta: the layer's noise site
    assert theta.shape == (12, *theta_shape)
    assert set(theta.unique().tolist()) <= {0.0, 1.0}
    # Six posterior draws of the model's gates, one forward pass each (the guide traced, the model replayed on it).
    draws = []
    with torch.no_grad():
        for _ in range(6):
            guide_tr = poutine.trace(guide).get_trace(x)
            model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x)
            assert torch.equal(model_tr.nodes["net.0.noise"]["value"], guide_tr.nodes["net.0.noise"]["value"])
            draws.append(model_tr.nodes["net.0.noise"]["value"])
    t = torch.stack(draws)
    assert t.shape == (6, 12, *theta_shape)
    assert set(t.unique().tolist()) <= {0.0, 1.0}
    assert (t[0] != t[1]).any(), "posterior draws share their gates"
    # The posterior sampler behind bd.predict: S networks, fresh gates per draw, so the predictive draws differ.
    out, obs = bd.posterior.PosteriorSampler(model, guide, 6, x[:1]).run(x)
    assert out.shape == (6, 12, 3) and obs.shape == (6, 12)
    assert (out[0] != out[1]).any(), "posterior draws share their gates"
    assert bd.dropout_rates(model, guide)["net.0"].shape == (2,)


def _st_case(kind):
    if kind == "linear":
        model, guide, x, y = tiny_classifier("dropout++(0.5)", hidden=(8,))
        return model, guide, x, y, ["net.0", "net.2"]
    model, guide, x, y = tiny_convnet("dropout++(0.5)", gates=kind)
    return model, guide, x, y, ["net.0", "net.3"]


@pytest.mark.parametrize("kind", ["linear", "channel", "element"])
def test_straight_through_gradient(kind):
    """Section 2.5: d loss / d k equals d loss / d theta for the sampled theta (summed
    over the examples and positions that share the gate); the prior adds its own gradient
    and KL(q(theta) || p(theta | k)) adds none."""
    model, guide, x, y, names = _st_case(kind)
    guide(x, y)
    _interior_k(guide)
    ks = {n: p.k for n, _, p in guide.pairs()}
    pyro.set_rng_seed(3)
    guide_tr = poutine.trace(guide).get_trace(x, y)
    thetas = [guide_tr.nodes[f"{n}.noise"]["value"] for n in names]
    out = poutine.replay(model, trace=guide_tr)(x, y)
    nll = -model.log_likelihood(out, y).sum()
    grads = torch.autograd.grad(nll, [ks[n] for n in names] + thetas)
    for n, gk, gt in zip(names, grads[: len(names)], grads[len(names) :]):
        summed = gt.sum(0)
        summed = summed.sum(dim=(-2, -1), keepdim=True) if summed.dim() == 3 else summed
        assert gk.abs().sum() > 0, n
        assert torch.allclose(gk, summed.reshape(gk.shape), rtol=1e-5, atol=1e-6), n

    # The whole negative ELBO (N/B = 1 here): the straight-through part plus the Beta prior's gradient.
    pyro.set_rng_seed(3)
    loss = bd.infer.MeanFieldELBO(max_plate_nesting=1).differentiable_loss(model, guide, x, y)
    full = torch.autograd.grad(loss, [ks[n] for n in names])
    m = bd.methods.get("dropout++(0.5)")
    for n, gk, gfull in zip(names, grads[: len(names)], full):
        k = ks[n].detach()
        prior = m.strength * (-(m.a - 1) / k + (m.b - 1) / (1 - k))
        assert torch.allclose(gfull, gk + prior, rtol=1e-5, atol=1e-6), n


def test_guide_projects_k_onto_the_unit_interval_and_rates_report_clip_k():
    model, guide, x, y = tiny_classifier("dropout++(flat)", d=3, hidden=(4,))
    guide(x, y)
    _set_k(guide, {"net.0": torch.tensor([-0.2, 0.3, 1.4])})
    rates = bd.dropout_rates(model, guide)
    assert torch.equal(rates["net.0"], torch.tensor([0.0, 0.3, 1.0]))  # clip(k), before any projection
    assert rates["net.2"].shape == (4,)
    guide(x, y)
    assert torch.equal(guide.layer_guide(model.net[0]).k.detach(), torch.tensor([0.0, 0.3, 1.0]))
    tr = poutine.trace(guide).get_trace(x, y)
    theta = tr.nodes["net.0.noise"]["value"]
    assert (theta[:, 0] == 0).all() and (theta[:, 2] == 1).all()  # k = 0 never fires, k = 1 always


@pytest.mark.filterwarnings("ignore::bayesdrop.CollapseWarning")  # the step size is large on purpose
def test_fit_projects_k_after_every_step_outside_its_compiled_graph(monkeypatch):
    """``bd.fit`` projects the gates onto [0, 1] after every optimiser step (the layers of
    ``DropoutGuide.projected()``), so its compiled loss, which cannot write its inputs, trains Generalized Dropout:
    at a step size that pushes the gates out of [0, 1], every compiled step sees them inside, and without the
    projection they leave it.  ``projected()`` is empty for Bernoulli dropout (``Method.project`` does nothing);
    ``project()`` clamps by hand."""
    from bayesdrop.infer.compiled import CompiledLoss

    seen: list[tuple[float, float]] = []
    gates: list[torch.Tensor] = []  # the run's k parameters
    call = CompiledLoss.__call__

    def spy(self, *args):
        seen.append((min(k.min().item() for k in gates), max(k.max().item() for k in gates)))
        return call(self, *args)

    monkeypatch.setattr(CompiledLoss, "__call__", spy)

    def run(project: bool) -> tuple[bd.FitResult, list[torch.Tensor]]:
        torch.manual_seed(0)
        model, guide, x, y = tiny_classifier("dropout++(0)", hidden=(8,))
        guide(x, y)
        assert [layer for layer, _ in guide.projected()] == [model.net[0], model.net[2]]
        gates[:] = [params.k for _, params in guide.projected()]
        if not project:
            monkeypatch.setattr(guide, "projected", lambda: [])
        # lr 0.5: Adam's first steps move each k by about 0.5, out of [0, 1] from its start at 1 (the test's point)
        result = bd.fit(model, guide, (x, y), epochs=3, batch_size=10, lr=0.5, progress=False)
        return result, [params.k.detach() for _, _, params in guide.pairs()]

    result, ks = run(True)
    assert result.compiled and len(seen) == 8  # 2 epochs x 4 steps after the validated first one
    assert all(0.0 <= lo and hi <= 1.0 for lo, hi in seen)
    assert all(((k >= 0) & (k <= 1)).all() for k in ks)
    seen.clear()
    result, ks = run(False)
    assert result.compiled and any(lo < 0.0 or hi > 1.0 for lo, hi in seen)  # unprojected, the steps leave [0, 1]
    _, plain_guide, px, py = tiny_classifier("bernoulli")
    plain_guide(px, py)
    assert plain_guide.projected() == []
    model, guide, x, y = tiny_classifier("dropout++(0)", hidden=(8,))
    guide(x, y)
    _set_k(guide, {"net.0": torch.tensor([1.5, -0.5, 0.3, 1.0, 0.0, 2.0])})
    guide.project()
    assert torch.equal(guide.layer_guide(model.net[0]).k.detach(), torch.tensor([1.0, 0.0, 0.3, 1.0, 0.0, 1.0]))


# -- the objective: eq. 7 -----------------------------------------------------------
@pytest.mark.parametrize(
    "method, hyper",
    [("dropout++(0.5)", {}), ("sal", {"strength": 3.0}), ("dropout++(0)", {"prior_scale": 0.5, "b": 5.0})],
)
@pytest.mark.parametrize("elbo", ["TraceMeanField_ELBO", "Trace_ELBO", "MeanFieldELBO"])
def test_svi_loss_is_eq7(method, hyper, elbo):
    """For a fixed seed the SVI loss equals, computed by hand from the same sample,
    -(N/B) log P(D_B | theta_s, w) - sum lambda[(a-1) log k + (b-1) log(1-k) - log B(a, b)]
    - log N(w; 0, s^2): eq. 7 with the Beta normaliser and the prior strength lambda."""
    n, bsz = 40, 10
    model, guide, x, y = tiny_classifier(method, n=n, hidden=(8,), **hyper)
    guide(x, y)
    _interior_k(guide)
    xb, yb = x[:bsz], y[:bsz]
    loss_fn = (
        bd.infer.MeanFieldELBO(max_plate_nesting=1)
        if elbo == "MeanFieldELBO"
        else getattr(pyro.infer, elbo)(max_plate_nesting=1)
    )
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.0}), loss_fn)
    pyro.set_rng_seed(7)
    loss = svi.evaluate_loss(xb, yb)
    pyro.set_rng_seed(7)
    tr = poutine.trace(guide).get_trace(xb, yb)

    m = bd.methods.get(method, **hyper)
    (_, l0, p0), (_, l1, p1) = guide.pairs()
    t0, t1 = tr.nodes["net.0.noise"]["value"], tr.nodes["net.2.noise"]["value"]
    with torch.no_grad():
        h = torch.relu((xb * t0) @ p0.weight.T + l0.bias)
        logits = (h * t1) @ p1.weight.T + l1.bias
        loglik = torch.log_softmax(logits.double(), -1).gather(1, yb[:, None]).sum() * (n / bsz)
        log_b = math.lgamma(m.a) + math.lgamma(m.b) - math.lgamma(m.a + m.b)
        log_prior_k = sum(
            (m.a - 1) * torch.log(p.k.double()).sum()
            + (m.b - 1) * torch.log1p(-p.k.double()).sum()
            - p.k.numel() * log_b
            for p in (p0, p1)
        )
        s2 = m.prior_scale**2
        log_prior_w = sum(
            (-0.5 * p.weight.double() ** 2 / s2 - 0.5 * math.log(2 * math.pi * s2)).sum() for p in (p0, p1)
        )
    expected = (-loglik - m.strength * log_prior_k - log_prior_w).item()
    assert loss == pytest.approx(expected, rel=1e-5)
    # And the closed-form KL written from the paper (tests/oracles.py) agrees: loss = -(N/B) log-lik + sum kl.
    kl = sum(closed_form_kl(layer, params) for _, layer, params in guide.pairs()).item()
    assert loss == pytest.approx(-loglik.item() + kl, rel=1e-5)


# -- test time: re-scaling and MC averaging -------------------------------------------
def test_rescaling_and_mc_predictive_of_a_gated_softmax_regression():
    """Weight scaling multiplies inputs by k (section 2.4); MC averaging converges to the
    exact predictive, the k-weighted sum over all 2^4 gate patterns."""
    g = torch.Generator().manual_seed(0)
    d, c = 4, 3
    W, b = torch.randn(c, d, generator=g), torch.randn(c, generator=g)
    x = torch.randn(5, d, generator=g)
    k = torch.tensor([0.2, 0.5, 0.7, 0.9])
    net = PyroModule[torch.nn.Sequential](bd.nn.Linear(d, c, "dropout++(flat)"))
    model = bd.Classifier(net, num_data=5)
    guide = bd.DropoutGuide(model)
    guide(x)
    with torch.no_grad():
        params = guide.layer_guide(net[0])
        params.weight.copy_(W)
        params.k.copy_(k)
        net[0].bias.copy_(b)
    ws = bd.predict(model, guide, x, rule="weight-scaling")
    assert torch.allclose(ws, torch.softmax((x * k) @ W.T + b, -1), atol=1e-6)

    masks = torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))  # (16, d)
    weights = (masks * k + (1 - masks) * (1 - k)).prod(-1)  # (16,)
    per_mask = torch.softmax((masks[:, None] * x) @ W.T + b, -1)  # (16, 5, c)
    exact = (weights[:, None, None] * per_mask).sum(0)
    var = (weights[:, None, None] * (per_mask - exact) ** 2).sum(0)
    # k and W are point masses: the only randomness is the gates, drawn afresh for every row.  So 20 networks on
    # 1000 copies of x give T = 20000 independent gate draws per input, in 20 forward passes instead of 20000.
    T, copies = 20000, 1000
    mc = bd.predict(model, guide, x.repeat(copies, 1), num_samples=T // copies).reshape(copies, 5, c).mean(0)
    assert ((mc - exact).abs() <= 5 * (var / T).sqrt() + 1e-6).all()
    assert (ws - exact).abs().max() > 10 * (var / T).sqrt().max()  # the two rules differ here


# -- pruning at the sharp rise ---------------------------------------------------------
def test_sharp_rise_threshold_and_pruned_architecture():
    assert sharp_rise(torch.tensor([0.01, 0.02, 0.97, 0.99, 0.98, 0.03, 0.96, 0.95])) == pytest.approx(0.49)
    assert sharp_rise(torch.tensor([0.9, 0.95, 1.0])) == pytest.approx(0.45)  # all high: keeps all
    assert sharp_rise(torch.tensor([0.0, 0.02])) == pytest.approx(0.51)  # all low: prunes all
    model, guide, x, y = tiny_classifier("sal", d=6, hidden=(8,))
    guide(x, y)
    _set_k(guide, {"net.0": torch.ones(6), "net.2": torch.tensor([0.01, 0.02, 0.97, 0.99, 0.98, 0.03, 0.96, 0.95])})
    rep = bd.compress.report(model, guide, threshold="sharp-rise")
    assert rep.architecture == "6-5-3"
    layer, params = model.net[2], guide.layer_guide(model.net[2])
    # Test-time weights: the posterior means of the sites, with the gates' mean clip(k) folded into the inputs.
    w = layer.fold(guide.point_values(pruned=False)["net.2"])["weight"]
    assert torch.allclose(w, params.weight * params.k)
    masks = layer.method.keep_masks(layer, params, 0.5)
    assert set(masks) == {"noise"} and torch.equal(masks["noise"], params.k > 0.5)
    keep = layer.kept_weights(masks)["weight"]
    assert keep.shape == w.shape and keep.dtype == torch.bool and int(keep[0].sum()) == 5
    assert torch.equal(keep, (params.k > 0.5).expand_as(keep))  # whole input units (columns) go
    pruned_w = layer.fold(guide.point_values(pruned=True, threshold=0.5)["net.2"])["weight"]
    assert torch.allclose(pruned_w, w * keep)
    with pytest.raises(ValueError, match="`threshold`"):
        layer.method.keep_masks(layer, params, "median")


# -- behaviour after training on digits -----------------------------------------------
def _train_digits(method: str, epochs: int = 30, **hyper):
    ds = bd.data.load("digits")
    net = bd.models.mlp(64, [100, 50], 10, method, **hyper)
    model = bd.Classifier(net, num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, ds.train, epochs=epochs, progress=False)  # bd.fit's defaults
    k = torch.cat(list(bd.dropout_rates(model, guide).values()))
    return ds, model, guide, k


@pytest.mark.slow  # the fast suite checks the order under fit's defaults (test_readme.py)
def test_mean_k_orders_the_presets_on_digits(capsys):
    """Dropout++(0) pulls gates down, Dropout++(1) holds them at 1, (flat) leaves them to the data."""
    means = {name: _train_digits(name)[3].mean().item() for name in ("dropout++(0)", "dropout++(flat)", "dropout++(1)")}
    with capsys.disabled():
        print("\nmean k after 30 epochs on digits:", {n: round(v, 3) for n, v in means.items()})
    assert means["dropout++(0)"] < means["dropout++(flat)"] < means["dropout++(1)"]
    assert means["dropout++(flat)"] - means["dropout++(0)"] > 0.1


def test_sal_gates_go_to_zero_or_one_on_digits(capsys):
    ds, model, guide, k = _train_digits("sal")
    near = ((k < 0.1) | (k > 0.9)).float().mean().item()
    off = (k < 0.1).float().mean().item()
    acc = bd.evaluate(model, guide, ds.test, rule="weight-scaling")["acc"]
    with capsys.disabled():
        print(f"\nSAL: {near:.1%} of gates within 0.1 of 0 or 1, {off:.1%} near 0; test acc {acc:.3f}")
    assert near >= 0.9
    assert off >= 0.05 and (k > 0.9).float().mean() >= 0.5  # both ends are used: units are pruned
    assert acc >= 0.9
    # Pruning the trained net gives the widths the report states, and they are narrower than the dense net.
    rep = bd.compress.report(model, guide, threshold="sharp-rise")
    pruned = bd.compress.prune(model, guide, threshold="sharp-rise")
    linears = [m for m in pruned if isinstance(m, torch.nn.Linear)]
    widths = [linears[0].in_features] + [m.out_features for m in linears]
    assert "-".join(map(str, widths)) == rep.architecture
    assert (
        widths[-1] == 10
        and sum(widths[1:-1]) < 150
        and rep.params_pruned == sum(p.numel() for p in pruned.parameters())
    )


def test_dropout_pp_half_with_huge_prior_is_classic_dropout(capsys):
    """a = b = 1e4: every k within 0.5 +- 0.05 (section 2.2, the classic-dropout limit), from k = 1."""
    ds, model, guide, k = _train_digits("dropout++(0.5)", a=1e4, b=1e4)
    with capsys.disabled():
        print(f"\nDropout++(0.5) with a = b = 1e4: k in [{k.min():.4f}, {k.max():.4f}]")
    assert ((k - 0.5).abs() <= 0.05).all()


def test_input_gate_map_attends_to_the_centre():
    """Figure 2g: Dropout++ on the input layer of digits keeps central pixels, drops the border."""
    from bayesdrop.experiments.input_gates import centre_and_border, input_gate_map

    k, acc = input_gate_map("dropout++(0)", epochs=15, hidden=(100,))
    assert k.shape == (8, 8)
    centre, border = centre_and_border(k)
    assert centre > 0.8 and border < 0.6
    assert acc >= 0.9


@pytest.mark.slow  # the fast suite checks the same ordering in tutorial 02 at its quick size (test_tutorials.py)
def test_sal_widths_shrink_as_b_over_a_grows(capsys):
    """Table 1 protocol (bayesdrop.experiments.sal_width) at a small budget on digits."""
    from bayesdrop.experiments import sal_width

    ds = bd.data.load("digits")
    rows = [sal_width.train_one(ds, r, epochs=20) for r in sal_width.RATIOS]
    widths = [sal_width.hidden_widths(r) for r in rows]
    with capsys.disabled():
        print("\nSAL widths for b/a = 1, 10, 100:", [r.architecture for r in rows], [f"{r.error:.3f}" for r in rows])
    for wider, narrower in zip(widths[:-1], widths[1:]):
        assert all(n <= w for w, n in zip(wider, narrower)), widths
        assert sum(narrower) < sum(wider), widths
    assert rows[0].error < 0.1


@pytest.mark.parametrize("name", ["dropout++(0.5)", "sal"])
def test_a_loss_of_several_particles_differentiates_through_the_projection(name):
    """The guide projects k onto [0, 1] at each run, in place: with two particles the second run's projection must
    not invalidate the first particle's graph (autograd's in-place check), and the loss is the particles' mean."""
    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(5, [4], 3, method=name), num_data=50)
    guide = bd.DropoutGuide(model)
    x, y = torch.randn(6, 5), torch.randint(0, 3, (6,))
    guide(x, y)
    elbo = bd.infer.MeanFieldELBO(max_plate_nesting=1, num_particles=2)
    torch.manual_seed(1)
    loss = elbo.differentiable_loss(model, guide, x, y)
    loss.backward()
    grads = [p.grad for p in guide.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    single = bd.infer.MeanFieldELBO(max_plate_nesting=1)
    torch.manual_seed(1)
    one = [single.differentiable_loss(model, guide, x, y) for _ in range(2)]
    torch.testing.assert_close(loss, sum(one) / 2)
