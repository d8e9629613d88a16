"""Bayesian layers: shapes of every layer kind, local plates, bayesianize, the handlers."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule

import bayesdrop as bd


@pytest.mark.parametrize("method", bd.methods.names(role="input"))
def test_linear_accepts_any_leading_dimensions_as_torch_does(method):
    """``bd.nn.Linear`` on (batch, time, features) inputs: training-time draws have the input's shape, and the
    posterior-mean network is ``torch.nn.functional.linear`` at the effective weights."""
    net = PyroModule[torch.nn.Sequential](bd.nn.Linear(5, 3, method), torch.nn.Flatten(), bd.nn.Linear(12, 2, method))
    model = bd.Classifier(net, num_data=8)
    guide = bd.DropoutGuide(model)
    x = torch.randn(8, 4, 5)
    guide(x)
    with poutine.trace() as tr:
        out = model(x)
    assert out.shape == (8, 2)
    noise = tr.trace.nodes.get("net.0.noise")
    if noise is not None and noise["cond_indep_stack"]:  # a per-example site: per element or per unit of x
        v = noise["value"]
        assert v.dim() == x.dim() and v.shape[0] == 8 and torch.broadcast_shapes(v.shape, x.shape) == x.shape
    values = guide.point_values()
    w0 = net[0].fold(values["net.0"])["weight"]
    w2 = net[2].fold(values["net.2"])["weight"]
    m = net[0].method  # the expected mask of noise that depends on its input (standout) is not in the weights
    gate = (lambda t: t * m.belief(t)) if m.capabilities.input_dependent else (lambda t: t)
    ref = F.linear(gate(F.linear(gate(x), w0, net[0].bias).flatten(1)), w2, net[2].bias)
    assert torch.allclose(guide.mean_network()(x), ref, atol=1e-5)
    probs = bd.predict(model, guide, x, num_samples=3)
    assert probs.shape == (8, 2)


def test_conv1d_is_torch_conv1d_at_the_posterior_mean():
    torch.manual_seed(0)
    base = torch.nn.Sequential(
        torch.nn.Conv1d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(40, 3)
    )
    x = torch.randn(6, 2, 10)
    ref = base(x)
    net = bd.bayesianize(base, "bernoulli", p=0.0)
    assert isinstance(net[0], bd.nn.Conv1d)
    model = bd.Classifier(net, num_data=6)
    guide = bd.DropoutGuide(model)
    guide(x)
    assert torch.allclose(guide.mean_network()(x), ref, atol=1e-5)


def test_masks_are_per_example_and_local_to_the_data_plate():
    model_net = bd.models.mlp(6, [8], 2, "bernoulli", p=0.5, input_method=bd.methods.get("bernoulli", p=0.5))
    model = bd.Classifier(model_net, num_data=100)
    guide = bd.DropoutGuide(model)
    x = torch.randn(10, 6)
    tr = poutine.trace(guide).get_trace(x)
    mask = tr.nodes["net.0.noise"]
    assert mask["value"].shape == (10, 6)
    assert [f.name for f in mask["cond_indep_stack"]] == ["data"]
    assert mask["scale"] == pytest.approx(10.0)  # N / B
    weight = tr.nodes["net.0.weight"]
    assert weight["cond_indep_stack"] == () and weight["scale"] == 1.0
    assert not torch.equal(mask["value"][0], mask["value"][1]) or not torch.equal(mask["value"][1], mask["value"][2])


def test_bayesianize_converts_layers_and_keeps_weights():
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(8, 2))
    w0 = base[0].weight.detach().clone()
    x = torch.randn(5, 4)
    ref = base.eval()(x)
    net = bd.bayesianize(base, "bernoulli", p=0.0)
    assert isinstance(net[0], bd.nn.Linear) and isinstance(net[2], torch.nn.Identity)
    assert torch.equal(net[0].weight_init, w0)
    model = bd.Classifier(net, num_data=5)
    guide = bd.DropoutGuide(model)
    guide(x)
    assert {n for n, _, _ in guide.pairs()} == {"net.0", "net.3"}
    assert torch.allclose(guide.mean_network()(x), ref, atol=1e-6)
    seen = []
    model.apply(seen.append)  # torch.nn.Module.apply reaches every module, Bayesian layers included
    assert net[0] in seen and net[3] in seen


def test_bayesianize_warns_for_every_module_kind_it_leaves_deterministic():
    class Head(torch.nn.Linear):  # a subclass may compute something else in forward: not converted
        pass

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.rnn = torch.nn.LSTM(4, 6, batch_first=True)
            self.norm = torch.nn.LayerNorm(6)
            self.fc = torch.nn.Linear(6, 6)
            self.head = Head(6, 3)

        def forward(self, tokens):
            h, _ = self.rnn(self.emb(tokens))
            return self.head(self.fc(self.norm(h[:, -1])))

    with pytest.warns(UserWarning) as record:
        net = bd.bayesianize(Net(), "bernoulli")
    messages = " ".join(str(r.message) for r in record)
    assert "Head" in messages
    for kind in ("LayerNorm", "LSTM", "Embedding"):  # point estimates by design; converted; converted
        assert kind not in messages
    assert isinstance(net.fc, bd.nn.Linear) and not isinstance(net.head, bd.nn.BayesianLayer)
    assert isinstance(net.rnn, bd.nn.LSTM) and isinstance(net.emb, bd.nn.Embedding)
    model = bd.Classifier(net, num_data=4)
    assert model.num_classes == 3  # from the plain head, not the last Bayesian layer (6)


def test_bayesianize_returns_the_replacement_of_a_single_layer():
    layer = torch.nn.Linear(3, 2)
    out = bd.bayesianize(layer, "vd")
    assert isinstance(out, bd.nn.Linear) and torch.equal(out.weight_init, layer.weight.detach())


def test_bayesianize_rejects_what_it_cannot_convert():
    with pytest.raises(TypeError, match="`module`"):
        bd.bayesianize("not a module")
    with pytest.raises(ValueError, match="no torch.nn.Linear"):
        bd.bayesianize(torch.nn.Sequential(torch.nn.ReLU()))


def test_layer_input_shape_errors_name_x():
    layer = bd.nn.Linear(5, 3, "bernoulli")
    with pytest.raises(ValueError, match="`x` must have shape"):
        layer(torch.randn(4, 6))
    conv = bd.nn.Conv2d(2, 3, 3, "bernoulli")
    with pytest.raises(ValueError, match="`x` must have shape"):
        conv(torch.randn(4, 3, 8, 8))
    with pytest.raises(ValueError, match="`in_features`"):
        bd.nn.Linear(0, 3)


def test_local_reparameterization_draws_preactivations_with_the_right_moments():
    """Under the handler a tagged Normal weight gives b ~ N(x mu, x^2 sigma^2)."""
    loc, scale = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.3, 0.2, 0.1]])
    x = torch.tensor([[1.0, 2.0, -1.0]]).expand(20000, 3)

    def draw():
        return pyro.sample("w", dist.Normal(loc, scale).to_event(2), infer={"lrt": True})

    with bd.handlers.LocalReparameterization():
        w = draw()
    assert getattr(w, "_bayesdrop_lrt", None) is not None
    b = bd.nn.BayesianLayer.lrt(F.linear, x, w)[:, 0]
    mean = (x[0] * loc[0]).sum()
    std = ((x[0] ** 2) * scale[0] ** 2).sum().sqrt()
    assert abs(b.mean() - mean) < 4 * std / 20000**0.5
    assert abs(b.std() - std) < 4 * std / (2 * 20000) ** 0.5
    untagged = draw()  # outside the handler: plain weight sampling
    assert getattr(untagged, "_bayesdrop_lrt", None) is None
    assert torch.equal(bd.nn.BayesianLayer.lrt(F.linear, x, untagged), F.linear(x, untagged))


def test_per_element_noise_follows_the_input_shape_and_dtype():
    lin = bd.nn.Conv2d(2, 4, 3, "bernoulli", padding=1, p=0.3)
    for x in (torch.randn(3, 2, 6, 6), torch.randn(3, 2, 8, 8)):
        with poutine.trace() as tr:
            lin(x)
        assert tr.trace.nodes["noise"]["fn"].event_shape == x.shape[1:]
    lin.double()
    with poutine.trace() as tr:
        lin(torch.randn(3, 2, 5, 5, dtype=torch.float64))
    assert tr.trace.nodes["noise"]["value"].dtype == torch.float64


def test_posterior_mean_messenger_puts_every_latent_site_at_its_mean_and_applies_masks():
    def guide():
        a = pyro.sample("a", dist.Normal(torch.tensor([1.0, 2.0]), 3.0).to_event(1))
        b = pyro.sample("b", dist.Bernoulli(torch.tensor([0.25, 0.5])).to_event(1))
        c = pyro.sample("c", dist.Delta(torch.tensor(4.0)))
        pyro.sample("y", dist.Normal(0.0, 1.0), obs=torch.tensor(7.0))
        return a, b, c

    with poutine.trace() as tr, bd.handlers.PosteriorMean({"b": torch.tensor([True, False])}):
        a, b, c = guide()
    assert torch.equal(a, torch.tensor([1.0, 2.0])) and torch.equal(b, torch.tensor([0.25, 0.0]))
    assert c.item() == 4.0 and tr.trace.nodes["y"]["value"].item() == 7.0  # observed sites untouched


def test_weightless_dropout_layer_draws_its_noise_shape_and_checks_methods():
    spatial = bd.nn.Dropout("bernoulli", noise_shape=(3, 1, 1), p=0.5)
    x = torch.ones(20, 3, 4, 4)
    out = spatial(x)
    per_map = out.reshape(20, 3, -1)
    assert torch.equal(per_map.amax(-1), per_map.amin(-1))  # one draw per feature map
    assert set(per_map.unique().tolist()) == {0.0, 2.0}  # inverted dropout: kept maps scaled by 1 / (1 - p)
    with pytest.raises(ValueError, match="acts on weight sites, and Dropout has none"):
        bd.nn.Dropout("sparse-vd", noise_shape=(3,))
    with pytest.raises(ValueError, match="`noise_shape`"):
        bd.nn.Dropout("bernoulli", noise_shape=(0,))
    with pytest.raises(ValueError, match="does not broadcast"):
        spatial(torch.ones(2, 4, 4, 4))


def test_guide_builds_the_data_plate_first_where_layers_have_per_example_sites_and_lazily_elsewhere():
    """A guide whose model has per-example latent sites samples the plate's subsample site first, as the model
    does (TraceMeanField_ELBO checks the order); a guide without any builds the plate only when entered."""
    from helpers import tiny_classifier

    from bayesdrop.guides import _LazyPlate

    for method, local in (("bernoulli", True), ("sparse-vd", False), ("vbd", False)):
        model, guide, x, y = tiny_classifier(method)
        nodes = poutine.trace(guide).get_trace(x, y).nodes
        names = [name for name, site in nodes.items() if site["type"] == "sample"]
        assert (names[0] == "data") is local and ("data" in names) is local, (method, names)
    built = []

    def make():
        built.append(1)
        return pyro.plate("data", 10, subsample=torch.arange(4))

    plate = _LazyPlate(make)
    assert built == []
    with poutine.trace() as tr:
        with plate:
            pyro.sample("z", dist.Normal(0.0, 1.0))
        with plate:
            pyro.sample("u", dist.Normal(0.0, 1.0))
    assert built == [1] and plate.subsample_size == 4
    assert tr.trace.nodes["z"]["value"].shape == (4,) and tr.trace.nodes["u"]["value"].shape == (4,)
