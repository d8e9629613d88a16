"""Contracts of the architecture, over the method registry *and* the layer kinds.

A method says what is random (prior and guide per weight and noise site, its capabilities), a layer says how
sites enter its computation, Pyro handlers say how to sample (``PosteriorMean`` for the test-time network).  Checked
here: every method on every layer kind; capability flags that hold; the posterior-mean network against outputs
recorded before this architecture; float64; networks mixing plain and Bayesian layers; convolutional networks with
pooling and batch normalisation end to end; and the two examples of ``docs/architecture.md`` (a new method in one
file, a new layer kind in one file).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pyro
import pyro.poutine as poutine
import pytest
import torch
from helpers import tiny_bag, tiny_classifier, tiny_convnet, tiny_rnn
from pyro.nn import PyroModule
from torch.distributions import kl_divergence

import bayesdrop as bd
from bayesdrop.infer.predict import _networks_per_pass

METHODS = bd.methods.names()
NOISE_METHODS = [m for m in METHODS if "noise" in bd.methods.info(m)["capabilities"].sites]
EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
REFERENCE = Path(__file__).parent / "data" / "mean_reference.pt"


def tiny_dropout_net(method, n=16, d=6, classes=3, seed=0, **hyper):
    """Linear -> ReLU -> weightless Dropout(method) -> Linear, the Dropout carrying ``method``'s noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    net = PyroModule[torch.nn.Sequential](
        bd.nn.Linear(d, 8, "bernoulli", p=0.0),
        torch.nn.ReLU(),
        bd.nn.Dropout(method, noise_shape=(8,), **hyper),
        bd.nn.Linear(8, classes, "bernoulli", p=0.0),
    )
    model = bd.Classifier(net, num_data=n)
    return model, bd.DropoutGuide(model), x, y


def _randomise(guide, seed=1):
    """Move every variational parameter away from its initial value, so that rates and masks differ by unit."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in guide.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf.endswith("k"):
                p.copy_(torch.rand(p.shape, generator=g))
            elif "log" in leaf:
                p.copy_(torch.empty(p.shape).uniform_(-8, 6, generator=g))
            else:
                p.add_(0.3 * torch.randn(p.shape, generator=g))


def tiny_recurrent_net(method, kind="LSTM", n=16, d=5, classes=3, seed=0, **hyper):
    """The method in a recurrent layer (:func:`helpers.tiny_rnn`) over ``d`` features read as a sequence."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    model = bd.Classifier(tiny_rnn(bd.methods.get(method, **hyper), d, classes, kind=kind), num_data=n)
    return model, bd.DropoutGuide(model), x, y


BUILDERS = {
    "linear": tiny_classifier,
    "conv2d": tiny_convnet,
    "dropout": tiny_dropout_net,
    "lstm": tiny_recurrent_net,
    "gru": lambda method, **hyper: tiny_recurrent_net(method, "GRU", **hyper),
    "embedding": tiny_bag,
}


def _refusal(method, kind):
    """The error a layer kind gives a method it cannot hold (a regex), or ``None``."""
    caps = bd.methods.get(method).capabilities
    if caps.role == "recurrent" and kind in ("conv2d", "dropout"):
        return "recurrent layers"
    if kind == "dropout" and method not in NOISE_METHODS:
        return "acts on (weight|pool) sites"
    if kind in ("lstm", "gru") and caps.role == "pool":
        return "acts on pool sites"
    if kind == "gru" and caps.noise_roles == {"cell"}:
        return "GRU has none"
    if kind in ("lstm", "gru") and caps.train_rule == "moment-matching":
        return "fast dropout propagates Gaussian moments through feed-forward layers"
    if kind == "embedding":
        if caps.role == "pool":
            return "acts on pool sites"
        if caps.role == "recurrent":
            return "recurrent layers"
        if caps.input_dependent or caps.inputs_only or caps.train_rule == "moment-matching":
            return "cannot act on an embedding"
    return None


def _no_plain_network(method):
    """Whether the method's test-time network has no plain equivalent: noise depending on the input (Standout), or a
    recurrent cell or update scaled by the noise's mean (RNNDrop, recurrent dropout)."""
    return not bd.methods.get(method).capabilities.plain_export


@pytest.mark.parametrize("kind", list(BUILDERS))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_every_layer_kind(method, kind):
    """Model and guide match site for site, the loss is finite with gradients, MC and deterministic predictions
    are probabilities, and the posterior-mean network equals the plain network ``compress.prune`` exports."""
    refusal = _refusal(method, kind)
    if refusal is not None:
        with pytest.raises(ValueError, match=refusal):
            BUILDERS[kind](method)
        return
    model, guide, x, y = BUILDERS[kind](method)
    guide(x, y)
    _randomise(guide)
    loss = pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, x, y)
    assert torch.isfinite(loss)
    loss.backward()
    # every variational parameter is used (none for a recurrent site whose role the method leaves alone)
    assert [n for n, p in guide.named_parameters() if p.grad is None] == []
    # a keep probability per rate site (one per feed-forward layer; a recurrent layer's per layer and role)
    rates = bd.dropout_rates(model, guide)
    assert len(rates) == sum(max(1, len(layer.method.rate_sites(layer))) for _, layer, _ in guide.pairs())
    assert all(bool(((r >= 0) & (r <= 1)).all()) for r in rates.values())
    for probs in (bd.predict(model, guide, x, num_samples=4), bd.predict(model, guide, x, rule="weight-scaling")):
        assert probs.shape == (len(x), 3) and torch.allclose(probs.sum(-1), torch.ones(len(x)), atol=1e-5)
    if _no_plain_network(method):  # standout, rnndrop, recurrent dropout: no plain network to export
        with pytest.raises(ValueError, match="no plain-weight equivalent"):
            bd.compress.prune(model, guide)
        return
    with torch.no_grad():
        plain = bd.compress.prune(model, guide)
        assert not any(isinstance(m, bd.nn.BayesianLayer) for m in plain.modules())
        # a PyroModule of the user's (helpers' LastStep, Bag) keeps its class, with plain layers inside
        assert all(type(m).__name__ in ("LastStep", "Bag") for m in plain.modules() if isinstance(m, PyroModule))
        assert torch.allclose(plain(x), guide.mean_network(pruned=True)(x), atol=1e-5)


def test_posterior_mean_equals_the_recorded_mean_network_of_every_method():
    """``guide.mean_network()`` (the PosteriorMean handler) and its pruned version reproduce, for 13 method
    configurations on a Linear and a Conv2d network, the outputs recorded with the earlier implementation (a
    ContextVar read by every layer and one hand-written test-time pass per method), and ``compress.prune`` its
    pruned outputs; ``tests/data/mean_reference.pt`` holds states, inputs and outputs (written by
    ``tests/data/make_mean_reference.py`` at commit 2077fea, before the change, with randomised parameters so that
    every method prunes something)."""
    reference = torch.load(REFERENCE, weights_only=True)
    assert len(reference) == 26
    for key, ref in reference.items():
        name, hyper_s, kind = key.split("|")
        hyper = dict(kv.split("=") for kv in hyper_s.split(",")) if hyper_s else {}
        hyper = {k: None if v == "None" else v for k, v in hyper.items()}
        if name == "vbd" and hyper.get("granularity") == "layer":
            hyper["max_log_alpha"] = None  # recorded before vbd's per-layer alpha had its bound (alpha <= 1)
        if kind == "linear":
            # recorded when vd's first layer was vd itself (it now takes the input rule on these 6 inputs)
            first = {"input_method": bd.methods.get(name, **hyper)} if name == "vd" else {}
            model, guide, x, y = tiny_classifier(name, **first, **hyper)
        else:
            model, guide, x, y = tiny_convnet(name, **hyper)
        guide(x, y)
        model.load_state_dict(ref["model"], strict=False)  # the layers' own buffers (noise shapes) are new
        guide.load_state_dict(ref["guide"])
        with torch.no_grad():
            assert torch.allclose(guide.mean_network()(ref["x"]), ref["mean"], atol=1e-6), key
            assert torch.allclose(guide.mean_network(pruned=True)(ref["x"]), ref["pruned"], atol=1e-6), key
            assert torch.allclose(bd.compress.prune(model, guide)(ref["x"]), ref["pruned"], atol=1e-6), key


@pytest.mark.parametrize("method", METHODS)
def test_capability_flags_hold(method):
    caps = bd.methods.get(method).capabilities
    model, guide, x, y = (tiny_classifier if caps.role == "recurrent" else tiny_convnet)(method)
    m = next(layer.method for _, layer, _ in guide.pairs() if layer.method.name == method)
    guide(x, y)
    _randomise(guide)
    guide_tr = poutine.trace(guide).get_trace(x, y)
    model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, y)
    latent = [n for n, s in model_tr.nodes.items() if s["type"] == "sample" and not s["is_observed"] and n != "data"]
    # lrt: exactly the methods that declare it mark Gaussian sites for the local reparameterisation trick
    marked = [n for n in latent if guide_tr.nodes[n]["infer"].get("lrt")]
    assert bool(marked) == caps.lrt
    # analytic_kl: every latent site pair has a registered KL, so the Monte Carlo fallback is never taken
    if caps.analytic_kl:
        for n in latent:
            kl_divergence(guide_tr.nodes[n]["fn"], model_tr.nodes[n]["fn"])
    # learns_rates: the keep probabilities are a function of variational parameters
    for _, layer, params in guide.pairs():
        assert layer.method.keep_prob(layer, params).requires_grad == (caps.learns_rates and layer.method is m)
    # structured: pruning removes whole input units (the kept weights are constant along the other axes)
    pruned_any = False
    for _, layer, params in guide.pairs():
        if layer.method is not m:  # a pool or input method's network has weight layers without noise
            continue
        if "weight" not in layer.weight_sites:  # a pooling layer prunes nothing
            assert not layer.method.keep_masks(layer, params)
            continue
        kept = layer.kept_weights(layer.method.keep_masks(layer, params))["weight"]
        pruned_any |= not bool(kept.all())
        if caps.structured:
            per_unit = kept.transpose(0, 1).reshape(kept.shape[1], -1)
            assert torch.equal(per_unit.all(1), per_unit.any(1))
    assert pruned_any == (m.pruning_rule() is not None) or method == "vd"  # vd keeps alpha <= 1 by default


def _draw(site_value, s):
    """Draw ``s`` of a site of a vectorised run (the draws' plate at dim -2: values ``(S, 1 or B, *event)``)."""
    return site_value[s]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("kind", list(BUILDERS))
@pytest.mark.parametrize("method", METHODS)
def test_vectorised_draws_equal_the_networks_drawn_one_at_a_time(method, kind, training):
    """``pyro.plate`` of S draws around model and guide (what ``Predictive(parallel=True)`` does): every draw's
    output equals the network run alone at that draw's site values (weights, rates, masks, cutout centres, pooling
    draws), to float32 round-off; and the draws differ where the method is random."""
    if _refusal(method, kind) is not None:
        return
    model, guide, x, y = BUILDERS[kind](method)
    guide(x, y)
    _randomise(guide)
    model.train(training)
    guide.train(training)
    S = 3
    with torch.no_grad(), pyro.plate("draws", S, dim=-2):
        guide_trace = poutine.trace(guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    out = model_trace.nodes["_RETURN"]["value"]
    if isinstance(out, bd.moments.Moments):
        pytest.skip("fast dropout trains by moments: one deterministic pass")
    assert out.shape == (S, len(x), 3)
    latent = {
        name: site["value"]
        for name, site in model_trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not name.startswith("data")
    }
    for s in range(S):
        values = {name: _draw(v, s) for name, v in latent.items()}
        with torch.no_grad():
            alone = poutine.condition(model, data=values)(x)
        assert torch.allclose(out[s], alone, atol=1e-5, rtol=1e-4), (s, (out[s] - alone).abs().max())
    if bd.methods.get(method).stochastic and latent:  # each draw has its own masks (or weights)
        assert any(not torch.equal(_draw(v, 0), _draw(v, 1)) for v in latent.values())


def test_pyro_predictive_draws_networks_at_once_or_one_at_a_time():
    """``pyro.infer.Predictive`` with ``parallel=True`` and ``parallel=False`` give draws of the same law: the mean
    of 400 MC-dropout probabilities agrees to within 5 standard errors."""
    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    model.eval()
    draws = {}
    for parallel in (True, False):
        pyro.set_rng_seed(0)
        pred = pyro.infer.Predictive(model, guide=guide, num_samples=400, parallel=parallel, return_sites=["_RETURN"])
        with torch.no_grad():
            draws[parallel] = pred(x)["_RETURN"].softmax(-1)
        assert draws[parallel].shape == (400, len(x), 3)
    a, b = draws[True], draws[False]
    se = ((a.var(0) + b.var(0)) / 400).sqrt()
    assert ((a.mean(0) - b.mean(0)).abs() <= 5 * se + 1e-6).all()


@pytest.mark.parametrize("method", METHODS)
def test_hyper_reproduces_the_method(method):
    m = bd.methods.get(method)
    again = bd.methods.get(method, **m.hyper())
    assert type(again) is type(m) and again.hyper() == m.hyper() and repr(again) == repr(m)
    unit = bd.methods.get("vbd", granularity="unit")
    assert (
        type(bd.methods.get("vbd", **unit.hyper())) is type(unit) is bd.methods.gaussian.UnitVariationalBayesianDropout
    )


@pytest.mark.parametrize("method", METHODS)
def test_float64_for_every_method(method):
    recurrent = bd.methods.get(method).capabilities.role == "recurrent"
    model, guide, x, y = (tiny_classifier if recurrent else tiny_convnet)(method)
    model.double()
    guide(x.double(), y)
    guide.double()
    loss = bd.infer.MeanFieldELBO(max_plate_nesting=1).differentiable_loss(model, guide, x.double(), y)
    assert loss.dtype == torch.float64
    assert bd.predict(model, guide, x.double(), num_samples=2).dtype == torch.float64
    assert guide.mean_network()(x.double()).dtype == torch.float64


def _mixed(method):
    """A plain first layer and a plain head around one Bayesian layer: 6 -> 8 (plain) -> 5 (Bayesian) -> 3."""
    torch.manual_seed(0)
    net = PyroModule[torch.nn.Sequential](
        torch.nn.Linear(6, 8), torch.nn.ReLU(), bd.nn.Linear(8, 5, method), torch.nn.ReLU(), torch.nn.Linear(5, 3)
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 6, generator=g)
    y = x[:, :3].argmax(-1)
    model = bd.Classifier(net, num_data=30)
    return model, bd.DropoutGuide(model), x, y


@pytest.mark.parametrize("method", ["bernoulli", "sparse-vd", "sal"])
def test_networks_mixing_plain_and_bayesian_layers(method):
    """fit, predict, report, prune and to_inference_data on a network whose first layer and head are plain:
    the report has one row (the Bayesian layer, 8 x 5 = 40 weights, never more non-zero than weights), totals
    count every parameter, the class count comes from the plain head, and the pruned network is plain."""
    model, guide, x, y = _mixed(method)
    assert model.num_classes == 3
    bd.fit(model, guide, (x, y), epochs=3, batch_size=10, progress=False, validate=False)
    assert bd.predict(model, guide, x, num_samples=3).shape == (30, 3)
    rep = bd.compress.report(model, guide)
    assert [r.name for r in rep.layers] == ["net.2"]
    assert rep.layers[0].weights == 40 and 0 <= rep.layers[0].nonzero <= 40 and 0 <= rep.layers[0].sparsity <= 100
    assert rep.params_dense == (6 * 8 + 8) + (8 * 5 + 5) + (5 * 3 + 3)
    assert rep.params_pruned <= rep.params_dense
    plain = bd.compress.prune(model, guide)
    assert not any(isinstance(m, PyroModule) for m in plain.modules())
    assert torch.allclose(plain(x), guide.mean_network(pruned=True)(x), atol=1e-5)
    idata = bd.to_inference_data(model, guide, (x, y), num_samples=4)
    assert idata.posterior_predictive["probs"].shape == (1, 4, 30, 3)
    assert list(idata.posterior_predictive["probs"].coords["class"].values) == [0, 1, 2]


class _Residual(torch.nn.Module):
    """A non-Sequential network: a convolution with batch normalisation, max pooling and a skip connection."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 6, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(6)
        self.pool = torch.nn.MaxPool2d(2)
        self.skip = torch.nn.Conv2d(1, 6, 1)
        self.fc1 = torch.nn.Linear(6 * 4 * 4, 32)
        self.fc2 = torch.nn.Linear(32, 10)

    def forward(self, x):
        h = self.pool(torch.relu(self.bn(self.conv(x))) + self.skip(x))
        return self.fc2(torch.relu(self.fc1(h.flatten(1))))


@pytest.mark.parametrize("arch", ["lenet5", "residual"])
def test_convnets_with_pooling_and_batch_norm_train_predict_and_analyse(arch):
    """The library's LeNet-5 and a bayesianized torch CNN with MaxPool2d and BatchNorm2d: training, MC and
    deterministic prediction, evaluate, to_inference_data, report and prune all run and agree in shape (before,
    MC prediction fed tensors with leading sample dimensions to the plain layers and failed)."""
    data = bd.data.load("digits")
    x, y = data.images(data.train)[:64], data.train.y[:64]
    net = bd.models.lenet5((1, 8, 8), 10, "sparse-vd") if arch == "lenet5" else bd.bayesianize(_Residual(), "vbd")
    model = bd.Classifier(net, num_data=64)
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, (x, y), epochs=1, batch_size=32, progress=False, validate=False)
    probs = bd.predict(model, guide, x, num_samples=3)
    assert probs.shape == (64, 10) and torch.allclose(probs.sum(-1), torch.ones(64), atol=1e-5)
    assert bd.predict(model, guide, x, rule="weight-scaling").shape == (64, 10)
    assert set(bd.evaluate(model, guide, (x, y), num_samples=2)) == {"acc", "nll"}
    idata = bd.to_inference_data(model, guide, (x, y), num_samples=3)
    assert idata.log_likelihood["y"].shape == (1, 3, 64)
    rep = bd.compress.report(model, guide)
    assert len(rep.layers) == len(bd.nn.bayesian_layers(net))
    plain = bd.compress.prune(model, guide)
    model.eval()
    assert torch.allclose(plain(x), guide.mean_network(pruned=True)(x), atol=1e-4)


def test_cli_trains_prunes_reports_and_compares_a_lenet5(tmp_path):
    """``bayesdrop train --arch lenet5`` (advertised in --help) trains, evaluates by MC prediction and writes its
    run; ``prune``, ``report`` and ``compare`` work on it (before, MC prediction failed after training and left an
    empty run directory)."""
    from bayesdrop import cli

    run = tmp_path / "run"
    common = ["--dataset", "digits", "--arch", "lenet5", "--epochs", "1", "--num-samples", "2", "--quiet"]
    assert cli.main(["train", "--method", "bernoulli", *common, "--out", str(run)]) == 0
    assert {"checkpoint.pt", "config.json", "metrics.json"} <= {p.name for p in run.iterdir()}
    assert cli.main(["prune", str(run)]) == 0
    assert cli.main(["report", str(run), "--num-samples", "3", "--ood-points", "10"]) == 0
    assert any(p.suffix == ".md" for p in run.rglob("*"))
    out = tmp_path / "compare"
    assert cli.main(["compare", "--methods", "bernoulli", "sparse-vd", *common, "--out", str(out)]) == 0
    assert any(p.suffix == ".md" for p in out.rglob("*"))


@pytest.fixture
def examples():
    sys.path.insert(0, str(EXAMPLES))
    import bilinear
    import uniform_noise

    uniform_noise.register()
    yield uniform_noise, bilinear
    bd.methods.unregister("uniform-noise")
    sys.path.remove(str(EXAMPLES))


def test_a_new_method_is_one_file_and_works_in_every_layer_kind(examples):
    uniform_noise, _ = examples
    assert "uniform-noise" in bd.methods.names()
    for kind, build in BUILDERS.items():
        model, guide, x, y = build("uniform-noise", a=0.6)
        res = bd.fit(model, guide, (x, y), epochs=2, batch_size=8, progress=False, validate=False)
        assert all(map(torch.isfinite, map(torch.tensor, res.history["elbo"]))), kind
        _, draws = bd.predict(model, guide, x, num_samples=4, return_samples=True)
        assert draws.std(0).max() > 0, kind  # the noise is random
        assert torch.allclose(bd.compress.prune(model, guide)(x), guide.mean_network()(x), atol=1e-5), kind
        if kind == "dropout":  # the weightless layer's keep probabilities: the uniform noise's 1 / (1 + var)
            rates = bd.dropout_rates(model, guide)
            assert torch.allclose(rates["net.2"], torch.full((8,), 1 / (1 + 0.6**2 / 3)))


@pytest.mark.parametrize("method", bd.methods.names(role="input"))  # the methods for layers with weights
def test_a_new_layer_kind_is_one_file_and_works_with_every_method(examples, method):
    _, bilinear = examples

    class Net(PyroModule):
        def __init__(self):
            super().__init__()
            self.bil = bilinear.Bilinear(4, 3, 5, method)
            self.out = bd.nn.Linear(5, 2, method)

        def forward(self, x):
            return self.out(torch.relu(self.bil(x[:, :4], x[:, 4:])))

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 7, generator=g), torch.randint(0, 2, (12,), generator=g)
    model = bd.Classifier(Net(), num_data=12)
    guide = bd.DropoutGuide(model)
    guide(x, y)
    _randomise(guide)
    loss = pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, x, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert bd.predict(model, guide, x, num_samples=3).shape == (12, 2)
    # Bilinear reads its second input without the draws' layout: parallel="auto" keeps one pass per network
    model.eval()
    assert _networks_per_pass(model, guide, x, 8, lambda run: (run(), 100)[1], budget=10**6) is False
    model.train()
    if not bd.methods.info(method)["capabilities"].plain_export:  # standout: no plain-weight network to export
        with pytest.raises(ValueError, match="no plain-weight equivalent"):
            bd.compress.prune(model, guide)
        return
    with torch.no_grad():
        plain = bd.compress.prune(model, guide)
        assert isinstance(plain.bil, torch.nn.Bilinear)
        assert torch.allclose(plain(x), guide.mean_network(pruned=True)(x), atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_every_declared_test_time_rule_predicts_and_the_others_are_refused(method):
    """``Capabilities.rules`` is what ``bd.predict`` accepts: every method has ``mc`` and ``weight-scaling``; each
    declared rule gives class probabilities, and an undeclared one a ValueError naming the method."""
    model, guide, x, y = tiny_classifier(method)
    guide(x, y)
    rules = bd.methods.get(method).capabilities.rules
    assert {"mc", "weight-scaling"} <= rules
    for rule in bd.infer.RULES:
        if rule in rules:
            probs = bd.predict(model, guide, x, rule=rule, num_samples=3)
            torch.testing.assert_close(probs.sum(-1), torch.ones(len(x)))
        else:
            with pytest.raises(ValueError, match=re.escape(repr(method))):
                bd.predict(model, guide, x, rule=rule)


@pytest.mark.parametrize("parallel", [False, True], ids=["loop", "vectorised"])
@pytest.mark.parametrize("kind", list(BUILDERS))
@pytest.mark.parametrize("method", METHODS)
def test_shared_noise_draws_are_networks_that_do_not_depend_on_the_batch(method, kind, parallel):
    """``PosteriorSampler(shared_noise=True)``: each draw is one network, masks included (Gal & Ghahramani 2016),
    so an input's output is the same whatever batch it is run in (all inputs at once, or one at a time); its
    per-example sites are drawn once per network, outside the data plate."""
    if _refusal(method, kind) is not None:
        return
    model, guide, x, y = BUILDERS[kind](method)
    guide(x, y)
    _randomise(guide)
    model.eval()
    S = 3
    if parallel and not bd.methods.get(method).capabilities.train_rule == "sampled":
        return  # fast dropout: Gaussian moments, one deterministic pass (refused by vectorised draws)
    sampler = bd.posterior.PosteriorSampler(model, guide, S, x[:2], parallel=parallel, shared_noise=True)
    whole = sampler.run(x)[0]
    one_by_one = sampler.run(x, batch_size=1)[0]
    assert torch.allclose(whole, one_by_one, atol=1e-5, rtol=1e-4), (whole - one_by_one).abs().max()
    for network in sampler.networks:  # no site of a network lies in the data plate
        for site in network.nodes.values():
            assert all(f.name != "data" for f in site["cond_indep_stack"])


def _package_imports() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, read from the source: every import, those inside functions too,
    and the subpackages whose ``__init__`` an import from outside them runs."""
    import ast

    root = Path(bd.__file__).resolve().parent
    files = {}
    for f in root.rglob("*.py"):
        parts = f.relative_to(root.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, f in files.items():
        package = mod if f.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                names = [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in files:  # a name defined in a module: that module
                    name = name.rpartition(".")[0]
                # importing a.b.c runs a.b's __init__ first: from outside a.b, that is an import of a.b too
                parts = name.split(".")
                outer = {".".join(parts[:i]) for i in range(2, len(parts))}
                graph[mod] |= {p for p in outer if p in files and not f"{mod}.".startswith(f"{p}.")}
                if name and name != mod:
                    graph[mod].add(name)
    return graph


def test_the_package_imports_form_no_cycle():
    """No module of bayesdrop reaches itself through imports, deferred ones included: each layer imports only the
    layers below it (likelihoods score by ``bayesdrop.scoring``, not the diagnostics; the experiments run the
    command line as a user does).  The one cycle allowed is the method registry's: ``bayesdrop.methods`` imports
    its method modules, which register themselves with it."""
    graph = _package_imports()
    assert "bayesdrop.scoring" in graph["bayesdrop.likelihoods"]  # the reading follows relative imports

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    registry = {m for m in graph if m == "bayesdrop.methods" or m.startswith("bayesdrop.methods.")}
    cycles = {m for m in graph if m in reach(m)} - registry
    assert not cycles, f"modules on an import cycle: {sorted(cycles)}"


class _Buckets(torch.utils.data.IterableDataset):
    """Minibatches of sequences whose length changes from batch to batch (a loader that buckets by length)."""

    def __iter__(self):
        g = torch.Generator().manual_seed(1)
        for steps in (6, 9, 6, 4):
            yield torch.randn(8, steps, 4, generator=g), torch.randint(0, 3, (8,), generator=g)


@pytest.mark.parametrize("method", ["bernoulli", "concrete", "recurrent-dropout", "variational-rnn"])
def test_the_guide_draws_at_the_shape_of_each_input_whatever_came_before(method):
    """The guide draws per-example noise before the model runs: at the shape of the input it is given (an LSTM's
    number of steps), never at the last one the model saw.  Training on minibatches of several lengths works, the
    compiled loss gives the eager run's parameters, and a prediction does not depend on the earlier calls."""
    from torch.utils.data import DataLoader

    fits = []
    for jit in (True, False):
        torch.manual_seed(0)
        net = bd.models.rnn(4, 8, 3, method=method)
        model = bd.Classifier(net, num_data=32)
        guide = bd.DropoutGuide(model)
        bd.fit(model, guide, DataLoader(_Buckets(), batch_size=None), epochs=2, progress=False, seed=0, jit=jit)
        fits.append((model, guide))
    (model, guide), (eager_model, eager_guide) = fits
    eager = dict(eager_model.named_parameters()) | dict(eager_guide.named_parameters())
    for name, value in (dict(model.named_parameters()) | dict(guide.named_parameters())).items():
        torch.testing.assert_close(value, eager[name], rtol=1e-5, atol=1e-6)
    x10 = torch.randn(3, 10, 4)
    torch.manual_seed(3)
    first = bd.predict(model, guide, x10, num_samples=4)
    bd.predict(model, guide, torch.randn(3, 5, 4), num_samples=4)  # the model last saw 5 steps
    torch.manual_seed(3)
    assert torch.equal(bd.predict(model, guide, x10, num_samples=4), first)


def test_a_convolutional_network_predicts_on_images_of_another_size():
    """A fully convolutional network (global average at the end) trained on 8 x 8 images predicts on 12 x 12 ones,
    in vectorised and sequential passes alike, the same networks either way."""

    class FCN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.c2(self.c1(x).relu()).mean((-1, -2))

    torch.manual_seed(0)
    model = bd.Classifier(bd.bayesianize(FCN(), "concrete"), num_data=20)
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, (torch.randn(20, 1, 8, 8), torch.randint(0, 3, (20,))), epochs=1, progress=False)
    x12 = torch.randn(4, 1, 12, 12)
    torch.manual_seed(3)
    vectorised = bd.predict(model, guide, x12, num_samples=10, parallel=True)
    torch.manual_seed(3)
    sequential = bd.predict(model, guide, x12, num_samples=10, parallel=False)
    assert vectorised.shape == (4, 3) and torch.allclose(vectorised, sequential, atol=1e-6)


def test_the_guides_recording_runs_leave_batch_norm_statistics_alone():
    """The blocked runs of the model that record its sites (the guide's first run, and the first input of a new
    shape) are not training steps: batch normalisation's running statistics and count stay as they were."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3)

        def forward(self, x):
            return self.bn(self.conv(x)).mean((-1, -2))

    torch.manual_seed(0)
    model = bd.Classifier(bd.bayesianize(Net(), "bernoulli"), num_data=8)
    guide = bd.DropoutGuide(model)
    net = model.net
    before = [b.clone() for b in net.bn.buffers()]
    guide(torch.randn(4, 1, 6, 6) * 5 + 3)  # the first run
    guide(torch.randn(4, 1, 9, 9) * 5 + 3)  # a new input shape
    assert all(torch.equal(b, a) for b, a in zip(net.bn.buffers(), before))


def test_register_refuses_a_method_get_cannot_build_and_hyper_names_a_lost_argument(examples):
    """``get(name)`` builds a method from its presets alone, and ``names(role=...)`` builds every one: a factory
    with a hyper-parameter that has no default is refused at registration, naming it, so that it cannot break the
    listing of the others.  A constructor argument not kept under its name is named by ``hyper()``."""
    uniform_noise, _ = examples
    base = type(bd.methods.get("uniform-noise"))

    class Required(base):
        def __init__(self, a, prior_scale=1.0):
            super().__init__(a=a, prior_scale=prior_scale)

    with pytest.raises(TypeError, match=r"register\('req'\).*missing a required argument: 'a'.*give every"):
        bd.methods.register("req")(Required)
    assert "req" not in bd.methods.names() and "uniform-noise" in bd.methods.names(role="layer")
    bd.methods.register("req-preset", a=0.3)(Required)  # a preset is a default
    try:
        assert bd.methods.get("req-preset").a == 0.3

        class Renamed(base):
            def __init__(self, width=0.5):
                super().__init__(a=width)

        with pytest.raises(TypeError, match=r"keep the constructor argument 'width' as the attribute self.width"):
            repr(Renamed())
    finally:
        bd.methods.unregister("req-preset")


def test_rate_units_names_a_weight_site_it_cannot_read():
    """``Method.rate_units`` reads the unit shape of a noise or pool site; for a weight site (the Gaussian family,
    DropConnect), whose keep probabilities are per weight, it says so instead of a bare KeyError."""
    net = bd.models.mlp(4, [8], 3, "vd")
    layer = [m for m in net.modules() if isinstance(m, bd.nn.Linear)][1]
    with pytest.raises(ValueError, match=r"rate_units reads noise and pool sites; 'weight' is a weight site of 'vd'"):
        layer.method.rate_units(layer)
    bernoulli = bd.models.mlp(4, [8], 3, "bernoulli")
    hidden = [m for m in bernoulli.modules() if isinstance(m, bd.nn.Linear)][1]
    assert hidden.method.rate_units(hidden) == 8
