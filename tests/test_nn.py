"""Bayesian layers: shapes of every layer kind, local plates, bayesianize, the handlers."""

from __future__ import annotations

import math
import warnings

import numpy as np
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


def test_bayesianize_refuses_a_layer_registered_under_two_names_and_converts_shared_dropouts_per_name():
    """A bayesdrop layer samples its sites once per forward pass under one name: a weight layer shared by two
    places (``self.b = self.a``, also through a shared container) is refused before anything changes, naming both
    paths; a parameterless dropout shared by two places of a ``Sequential`` becomes an identity at each."""

    class Shared(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = torch.nn.Linear(4, 8)
            self.a = torch.nn.Linear(8, 8)
            self.b = self.a
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.out(self.b(self.a(self.inp(x)).relu()).relu())

    net = Shared()
    with pytest.raises(ValueError, match=r"'a' and 'b' are one layer .*Multiple sample sites"):
        bd.bayesianize(net, "bernoulli")
    assert type(net.a) is torch.nn.Linear and net.a is net.b and type(net.inp) is torch.nn.Linear  # unchanged
    block = torch.nn.Sequential(torch.nn.Linear(4, 4))
    outer = torch.nn.ModuleDict({"x": block, "y": block, "out": torch.nn.Linear(4, 3)})
    with pytest.raises(ValueError, match=r"'x\.0' and 'y\.0'"):
        bd.bayesianize(outer, "bernoulli")
    drop = torch.nn.Dropout(0.5)
    seq = torch.nn.Sequential(torch.nn.Linear(4, 8), drop, torch.nn.Linear(8, 8), drop, torch.nn.Linear(8, 3))
    net = bd.bayesianize(seq, "bernoulli")
    assert isinstance(net[1], torch.nn.Identity) and isinstance(net[3], torch.nn.Identity)  # no torch dropout left


def test_bayesianize_converts_the_layers_of_a_module_with_parameters_of_its_own():
    """A block (or the root) holding a parameter besides its layers: the layers become Bayesian, the block's own
    parameter stays a deterministic point estimate, and the warning names it."""

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)
            self.scale = torch.nn.Parameter(torch.full((8,), 2.0))

        def forward(self, x):
            return self.fc(x) * self.scale

    class Root(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = torch.nn.Linear(4, 8)
            self.block = Block()
            self.temp = torch.nn.Parameter(torch.tensor(0.5))

        def forward(self, x):
            return self.block(self.inp(x).relu()) / self.temp

    torch.manual_seed(0)
    base = Root()
    x = torch.randn(5, 4)
    ref = base(x).detach()
    with pytest.warns(UserWarning) as record:
        net = bd.bayesianize(base, bd.methods.get("bernoulli", p=0.0))
    messages = " ".join(str(r.message) for r in record)
    assert "block.scale" in messages and "temp" in messages and "Block" in messages
    assert isinstance(net.inp, bd.nn.Linear) and isinstance(net.block.fc, bd.nn.Linear)
    assert isinstance(net.block.scale, torch.nn.Parameter) and isinstance(net.temp, torch.nn.Parameter)
    model = bd.Classifier(net, num_data=5)
    guide = bd.DropoutGuide(model)
    guide(x)
    assert {n for n, _, _ in guide.pairs()} == {"net.inp", "net.block.fc"}
    assert torch.allclose(guide.mean_network()(x), ref, atol=1e-5)

    class Temperature(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)
            self.temp = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.fc(x) / self.temp

    with pytest.warns(UserWarning, match="temp"):
        net = bd.bayesianize(Temperature(), "bernoulli")  # was: "`module` has no torch.nn.Linear ..."
    assert isinstance(net.fc, bd.nn.Linear)


def test_bayesianize_takes_a_module_whose_child_was_set_to_none():
    """torch keeps a child set to None (a head removed with ``net.head = None``); Pyro's own recursive conversion
    refused it with a TypeError.  The network converts, trains and predicts, its sites named by the tree."""

    class Headed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
            self.head = torch.nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.body(x)
            return h if self.head is None else self.head(h)

    torch.manual_seed(0)
    base = Headed()
    base.head = None
    assert "head" in base._modules and base._modules["head"] is None
    net = bd.bayesianize(base, "bernoulli")
    assert net.head is None and "head" in net._modules
    assert isinstance(net.body[2], bd.nn.Linear) and isinstance(net.body, PyroModule)
    model = bd.Classifier(net, num_data=20)
    guide = bd.DropoutGuide(model)
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    bd.fit(model, guide, (x, y), epochs=1, progress=False)
    assert {n for n, _, _ in guide.pairs()} == {"net.body.0", "net.body.2"}
    assert bd.predict(model, guide, x, rule="weight-scaling").shape == (20, 3)


def test_bayesianize_warns_that_tied_weights_are_untied():
    """A decoder tied to its embedding (``dec.weight = emb.weight``): both become Bayesian layers with weights of
    their own, starting from the shared value, and the warning names both parameters."""

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 6)
            self.dec = torch.nn.Linear(6, 10, bias=False)
            self.dec.weight = self.emb.weight

        def forward(self, tokens):
            return self.dec(self.emb(tokens).mean(1))

    lm = LM()
    w = lm.emb.weight.detach().clone()
    with pytest.warns(UserWarning, match=r"emb\.weight and dec\.weight are one tensor \(tied weights\), which is not"):
        net = bd.bayesianize(lm, "bernoulli")
    assert isinstance(net.emb, bd.nn.Embedding) and isinstance(net.dec, bd.nn.Linear)
    assert torch.equal(net.emb.weight_init, w) and torch.equal(net.dec.weight_init, w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no tie, no warning
        bd.bayesianize(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 2)), "bernoulli")


def test_bayesianize_refuses_a_module_that_already_holds_bayesdrop_layers():
    net = bd.bayesianize(torch.nn.Sequential(torch.nn.Linear(2, 3)), "bernoulli")
    with pytest.raises(ValueError, match=r"already holds bayesdrop layers: 0 \(bernoulli\)"):
        bd.bayesianize(net, "sparse-vd")
    assert net[0].method.name == "bernoulli"
    with pytest.raises(ValueError, match="already holds bayesdrop layers"):
        bd.bayesianize(bd.models.mlp(4, [8], 3), "vd")
    # a bayesdrop layer placed in a torch model (noise per feature map after a convolution) is kept, the torch
    # layers around it converted
    mixed = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), bd.nn.Dropout("concrete", noise_shape=(4, 1, 1)))
    mixed.append(torch.nn.Flatten())
    mixed.append(torch.nn.Linear(4 * 4 * 4, 3))
    kept = mixed[1]
    out = bd.bayesianize(mixed, "bernoulli")
    assert out[1] is kept and out[1].method.name == "concrete"
    assert [type(out[i]).__name__ for i in (0, 3)] == ["Conv2d", "Linear"] and out[3].method.name == "bernoulli"
    assert isinstance(out[0], bd.nn.BayesianLayer)


def test_bayesianize_keeps_the_dtype_of_the_module_and_trains_in_it():
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double()
    w0 = base[0].weight.detach().clone()
    x = torch.randn(20, 4, dtype=torch.float64)
    ref = base(x).detach()
    net = bd.bayesianize(base, bd.methods.get("bernoulli", p=0.0))
    assert all(t.dtype == torch.float64 for t in (*net.parameters(), *net.buffers()))
    assert torch.equal(net[0].weight_init, w0)  # no round trip through float32
    model = bd.Classifier(net, num_data=20)
    guide = bd.DropoutGuide(model)
    guide(x)
    assert torch.allclose(guide.mean_network()(x), ref, atol=1e-12)
    bd.fit(model, guide, (x, torch.randint(0, 3, (20,))), epochs=1, progress=False)
    assert bd.predict(model, guide, x[:3], num_samples=2).dtype == torch.float64


def test_dropout_needs_a_noise_shape():
    """``bd.nn.Dropout("bernoulli")`` has no shape to draw: a ``TypeError`` saying what to pass; NumPy integers are
    sizes, bools are not."""
    import numpy as np

    with pytest.raises(TypeError, match=r"bd\.nn\.Dropout needs `noise_shape`.*noise_shape=\(features,\)"):
        bd.nn.Dropout("bernoulli")
    assert bd.nn.Dropout("bernoulli", noise_shape=(np.int64(3), 1, 1)).noise_shape == (3, 1, 1)
    with pytest.raises(ValueError, match="`noise_shape` must be a non-empty sequence of positive ints"):
        bd.nn.Dropout("bernoulli", noise_shape=(True,))


def test_a_layer_run_twice_in_one_forward_pass_is_refused_with_its_name():
    """A bayesdrop layer's sites are Pyro sites of one name, drawn once per pass: a network calling a layer twice
    gets a ValueError naming the site at the guide's first run, not Pyro's trace dump at the first step."""

    class Reuse(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.h, self.out = torch.nn.Linear(4, 4), torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.out(self.h(self.h(x).relu()).relu())

    model = bd.Classifier(bd.bayesianize(Reuse(), "bernoulli"), num_data=8)
    guide = bd.DropoutGuide(model)
    with pytest.raises(ValueError, match=r"the site 'net\.h\.\w+' is drawn twice in one forward pass"):
        bd.fit(model, guide, (torch.randn(8, 4), torch.randint(0, 3, (8,))), epochs=1, progress=False)


def test_bayesianize_names_the_dropout_rates_it_does_not_keep():
    """``nn.Dropout2d(0.3)`` before a convolution and ``nn.Dropout(0.5)`` under ``bernoulli`` (p = 0.5): one warning
    naming the 0.3 module and the method's rate, and the layer reading the inputs that takes the input rule
    instead; none when ``p=0.3`` is given for both 0.3 modules, nor for a method without a fixed rate."""

    def build(p_last=0.5):
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3), torch.nn.Dropout2d(0.3), torch.nn.Conv2d(4, 4, 3), torch.nn.Flatten(),
            torch.nn.Dropout(p_last), torch.nn.Linear(16, 3),
        )  # fmt: skip

    with pytest.warns(UserWarning, match=r"dropout modules 1 \(p=0\.3\) became identities.*bernoulli's noise at its "
                      r"own p=0\.5 \(those reading the network's inputs, 0, at its input rule: Method.input_layer\); "
                      r"pass p=\.\.\.") as record:  # fmt: skip
        net = bd.bayesianize(build(), "bernoulli")
    assert len(record) == 1 and "4 (p=" not in str(record[0].message)
    assert isinstance(net[1], torch.nn.Identity) and net[2].noise_kind == "channel"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bd.bayesianize(build(p_last=0.3), "bernoulli", p=0.3)
        bd.bayesianize(torch.nn.Sequential(torch.nn.Dropout(0.3), torch.nn.Linear(16, 3)), "vd")


class _Encoder(torch.nn.Module):
    """Two transformer encoder layers and a linear head on the mean over the sequence."""

    def __init__(self):
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.enc(x).mean(1))


def test_bayesianize_a_transformer_encoder_takes_torchs_plain_path():
    """torch's fused encoder path reads ``linear1.weight`` and the other weights directly: after bayesianize the
    converted layers' weights are Pyro sites, so the path is turned off.  Without noise the posterior-mean network
    is torch's network in eval mode; with noise MC draws differ; the attention stays deterministic (warned)."""
    torch.manual_seed(0)
    x, y = torch.randn(5, 4, 8), torch.randint(0, 3, (5,))
    net = _Encoder().eval()
    with torch.no_grad():
        want = net(x)
    with pytest.warns(UserWarning, match="MultiheadAttention is not supported"):
        bnet = bd.bayesianize(net, "bernoulli", p=0.0)
    assert all(m.activation_relu_or_gelu == 0 for m in bnet.enc.layers)
    model = bd.Classifier(bnet, num_data=5)
    guide = bd.DropoutGuide(model)
    with torch.no_grad():
        assert torch.allclose(guide.mean_network()(x), want, atol=1e-5)
    assert torch.allclose(bd.predict(model, guide, x, rule="weight-scaling"), want.softmax(-1), atol=1e-5)
    torch.manual_seed(0)
    noisy = bd.bayesianize(_Encoder(), "bernoulli", p=0.5)
    model = bd.Classifier(noisy, num_data=5)
    guide = bd.DropoutGuide(model)
    draws = bd.predict(model, guide, x, num_samples=4, return_samples=True)
    assert not torch.allclose(draws[0], draws[1])
    bd.fit(model, guide, (x, y), epochs=2, progress=False, test=(x, y))


def test_bayesianize_leaves_a_frozen_layer_plain_and_frozen():
    """A weight layer whose parameters are all frozen (a pre-trained backbone) stays a plain, frozen module, named in
    a warning; fit leaves it unchanged and trains the rest.  A model that is all frozen is refused."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    net[0].requires_grad_(False)
    before = [p.clone() for p in net[0].parameters()]
    with pytest.warns(UserWarning, match=r"^bayesianize: 0 are frozen .* stay plain, deterministic and frozen"):
        bnet = bd.bayesianize(net, "bernoulli", p=0.2)
    assert isinstance(bnet[0], torch.nn.Linear) and not isinstance(bnet[0], bd.nn.BayesianLayer)
    assert isinstance(bnet[2], bd.nn.Linear)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    model = bd.Classifier(bnet, num_data=40)
    guide = bd.DropoutGuide(model)
    guide(x)
    head = guide.layer_guide(bnet[2]).weight.detach().clone()
    bd.fit(model, guide, (x, y), epochs=3, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, bnet[0].parameters()))
    assert not torch.equal(guide.layer_guide(bnet[2]).weight.detach(), head)
    frozen = torch.nn.Sequential(torch.nn.Linear(6, 3)).requires_grad_(False)
    with pytest.warns(UserWarning, match="frozen"), pytest.raises(ValueError, match=r"the frozen ones stay plain: 0"):
        bd.bayesianize(frozen, "bernoulli")


class _Branches(torch.nn.Module):
    """The input read by two layers (through a LayerNorm and directly), and a layer that reads only theirs."""

    def __init__(self):
        super().__init__()
        self.norm, self.a, self.b = torch.nn.LayerNorm(80), torch.nn.Linear(80, 6), torch.nn.Linear(80, 6)
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.a(self.norm(x)) + self.b(x)))


class _Residual(torch.nn.Module):
    """A residual stream: the second block reads the input plus the first block's output."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = torch.nn.Linear(80, 80), torch.nn.Linear(80, 80), torch.nn.Linear(80, 3)

    def forward(self, x):
        h = x + torch.relu(self.a(x))
        return self.head(h + torch.relu(self.b(h)))


class _Untraceable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.head = torch.nn.Linear(80, 6), torch.nn.Linear(6, 3)

    def forward(self, x):
        if x.sum() > 0:  # control flow on a value: torch.fx cannot trace it
            x = -x
        return self.head(self.a(x))


def test_bayesianize_gives_the_layers_reading_the_inputs_the_methods_input_rule():
    """As bd.models: the layers that read the module's inputs (found on a torch.fx trace, through Flatten,
    LayerNorm, activations) take ``method.input_layer(fan_in)`` (Bernoulli: 0.2 for >= 64 inputs, none below; vd:
    its bound), or ``input_method``; the others take the method.  A module torch.fx cannot trace says so."""

    def rates(net):
        return {n: (layer.method.name, getattr(layer.method, "p", None)) for n, layer in bd.nn.bayesian_layers(net)}

    seq = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    assert rates(bd.bayesianize(seq, "bernoulli")) == {"1": ("bernoulli", 0.2), "3": ("bernoulli", 0.5)}
    small = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    assert rates(bd.bayesianize(small, "bernoulli", p=0.3)) == {"0": ("bernoulli", 0.0), "2": ("bernoulli", 0.3)}
    assert rates(bd.bayesianize(_Branches(), "bernoulli")) == {
        "a": ("bernoulli", 0.2),
        "b": ("bernoulli", 0.2),
        "head": ("bernoulli", 0.5),
    }
    assert rates(bd.bayesianize(_Residual(), "bernoulli")) == {  # a residual sum is no longer the inputs
        "a": ("bernoulli", 0.2),
        "b": ("bernoulli", 0.5),
        "head": ("bernoulli", 0.5),
    }
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5), torch.nn.Flatten(), torch.nn.Linear(16, 3))
    assert rates(bd.bayesianize(conv, "bernoulli"))["0"] == ("bernoulli", 0.2)  # 3 x 5 x 5 = 75 inputs per unit
    vd = bd.bayesianize(torch.nn.Sequential(torch.nn.Linear(80, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)), "vd")
    # vd's rule: alpha bounded by Bernoulli's input rate in variance, 0.2 / 0.8, on the inputs; 1 elsewhere
    assert vd[0].method.max_log_alpha == pytest.approx(math.log(0.25)) and vd[2].method.max_log_alpha == 0.0
    given = bd.bayesianize(torch.nn.Sequential(torch.nn.Linear(80, 8), torch.nn.Linear(8, 3)), "vd", input_method="vd")
    assert given[0].method.name == given[1].method.name == "vd"
    with pytest.raises(ValueError, match="`input_method` must be a layer or input method, got 'maxpool-dropout'"):
        bd.bayesianize(torch.nn.Linear(4, 2), input_method="maxpool-dropout")
    placed = torch.nn.Sequential(  # a bd.nn.Dropout placed by the user: traced as a leaf, its method kept
        torch.nn.Linear(64, 8), bd.nn.Dropout("bernoulli", noise_shape=(8,), p=0.3), torch.nn.Linear(8, 3)
    )
    assert list(rates(bd.bayesianize(placed, "bernoulli")).values()) == [("bernoulli", p) for p in (0.2, 0.3, 0.5)]
    lone = bd.bayesianize(torch.nn.Linear(80, 2), "bernoulli")  # a layer converted alone: not a network's input
    assert lone.method.p == 0.5
    with pytest.warns(UserWarning, match=r"torch.fx cannot trace the module \(TraceError"):
        untraced = bd.bayesianize(_Untraceable(), "bernoulli")
    assert rates(untraced) == {"a": ("bernoulli", 0.5), "head": ("bernoulli", 0.5)}


@pytest.mark.parametrize("method", bd.methods.names(role="layer"))
def test_bayesianize_of_an_mlp_places_the_methods_as_bd_models_does(method):
    """A torch MLP bayesianized gets, layer by layer, the methods and hyper-parameters of ``bd.models.mlp`` with
    the same method: the defaults measured on bd.models' networks (the defaults matrix) hold for it (the input
    layer used to take the hidden layers' method; docs/defaults.md measures the difference)."""
    torch.manual_seed(0)
    plain = torch.nn.Sequential(
        torch.nn.Linear(64, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = bd.bayesianize(plain, method)
    ours = [(layer.method.name, layer.method.hyper()) for _, layer in bd.nn.bayesian_layers(converted)]
    theirs = [
        (layer.method.name, layer.method.hyper())
        for _, layer in bd.nn.bayesian_layers(bd.models.mlp(64, [300, 100], 10, method))
    ]
    assert ours == theirs


@pytest.mark.parametrize(
    "build, error, name",
    [
        (lambda: bd.nn.Linear(2.5, 3), TypeError, "in_features"),
        (lambda: bd.nn.Linear(4, 0), ValueError, "out_features"),
        (lambda: bd.nn.Linear(4, 3, bias="yes"), TypeError, "bias"),
        (lambda: bd.nn.Linear(4, 3, bias=0), TypeError, "bias"),
        (lambda: bd.nn.Conv2d(1, 2, 3, bias="yes"), TypeError, "bias"),
        (lambda: bd.nn.LSTM(True, 8), TypeError, "input_size"),
        (lambda: bd.nn.LSTM(4, 8, num_layers=0), ValueError, "num_layers"),
        (lambda: bd.nn.Embedding(10, 2.0), TypeError, "embedding_dim"),
    ],
)
def test_layer_sizes_and_bias_of_the_wrong_kind_are_refused_by_name(build, error, name):
    """Sizes are ints (Python's or NumPy's, not bool: a TypeError otherwise, a ValueError below 1) and ``bias`` is a
    bool: ``bias="yes"`` or ``0`` was passed on to torch as a truthy value."""
    with pytest.raises(error, match=f"`{name}`"):
        build()


def test_layer_sizes_accept_numpy_integers_as_python_ints():
    """A size read from a NumPy array (``np.int64``) builds the layer, stored as a Python int."""
    layer = bd.nn.Linear(np.int64(4), np.int64(3))
    assert (layer.in_features, layer.out_features) == (4, 3) and type(layer.in_features) is int
    assert layer(torch.randn(2, 4)).shape == (2, 3)


def test_posterior_mean_refuses_a_guide_built_for_another_model():
    """``posterior_mean(model, guide)`` with a guide that states another module as its model (``guide.model``)
    is a ValueError naming ``guide``: it ran this model at the other guide's means, silently.  The guide built for
    the model runs."""
    torch.manual_seed(0)
    x = torch.randn(2, 4)
    model, other = (bd.Classifier(bd.models.mlp(4, [8], 3), num_data=10) for _ in range(2))
    guide, other_guide = bd.DropoutGuide(model), bd.DropoutGuide(other)
    guide(x), other_guide(x)
    with pytest.raises(ValueError, match=r"`guide` was built for another model"):
        bd.handlers.posterior_mean(model, other_guide)
    assert bd.handlers.posterior_mean(model, guide)(x).shape == (2, 3)


def test_a_sequence_of_no_time_step_and_a_method_name_of_the_wrong_kind_are_refused_by_name():
    """An LSTM given sequences of length 0 failed inside torch's stack of the steps ("expects a non-empty
    TensorList"); ``methods.get`` with a non-string name said "unknown method 3" (a ValueError), which is a wrong
    kind, not a wrong value."""
    lstm = bd.nn.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"`x` must hold at least one time step, got the shape \(2, 0, 3\)"):
        lstm(torch.randn(2, 0, 3))
    assert lstm(torch.randn(2, 5, 3))[0].shape == (2, 5, 4)
    for name in (3, None):
        with pytest.raises(TypeError, match=r"`name` must be a method's registered name \(a str\)"):
            bd.methods.get(name)
    with pytest.raises(ValueError, match=r"unknown method 'nope'"):
        bd.methods.get("nope")
