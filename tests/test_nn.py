"""Bayesian layers: batched ops, local plates, bayesianize, the LRT handler."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_convnet

import bayesdrop as bd


def test_linear_op_with_batched_weights_matches_a_loop():
    layer = bd.nn.Linear(5, 3, "bernoulli")
    x = torch.randn(4, 5)
    w = torch.randn(6, 1, 3, 5)  # (S, data-plate singleton, out, in) as from Predictive(parallel=True)
    out = layer.op(x, w)
    assert out.shape == (6, 4, 3)
    for s in range(6):
        assert torch.allclose(out[s], x @ w[s, 0].T, atol=1e-6)
    xs = torch.randn(6, 4, 5)  # inputs that already carry the sample dimension
    out = layer.op(xs, w)
    for s in range(6):
        assert torch.allclose(out[s], xs[s] @ w[s, 0].T, atol=1e-6)


@pytest.mark.parametrize("x_has_samples", [False, True])
def test_conv_op_with_batched_weights_matches_a_loop(x_has_samples):
    layer = bd.nn.Conv2d(2, 3, 3, "bernoulli", padding=1, stride=2)
    w = torch.randn(5, 1, 3, 2, 3, 3)
    x = torch.randn(5, 4, 2, 7, 7) if x_has_samples else torch.randn(4, 2, 7, 7)
    out = layer.op(x, w)
    assert out.shape == (5, 4, 3, 4, 4)
    for s in range(5):
        xs = x[s] if x_has_samples else x
        assert torch.allclose(out[s], F.conv2d(xs, w[s, 0], stride=2, padding=1), atol=1e-5)
    shared = layer.op(torch.randn(5, 4, 2, 7, 7), w[0, 0])  # shared weights, batched inputs
    assert shared.shape == (5, 4, 3, 4, 4)


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
    with guide.mean_network():
        assert torch.allclose(model(x), ref, atol=1e-6)


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
    layer = bd.nn.Linear(3, 1, "bernoulli")
    loc, scale = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.3, 0.2, 0.1]])
    x = torch.tensor([[1.0, 2.0, -1.0]]).expand(20000, 3)

    def draw():
        return pyro.sample("w", dist.Normal(loc, scale).to_event(2), infer={"lrt": True})

    with bd.nn.LocalReparameterization():
        w = draw()
    assert getattr(w, "_bayesdrop_lrt", None) is not None
    b = layer.op_lrt(x, w)[:, 0]
    mean = (x[0] * loc[0]).sum()
    std = ((x[0] ** 2) * scale[0] ** 2).sum().sqrt()
    assert abs(b.mean() - mean) < 4 * std / 20000**0.5
    assert abs(b.std() - std) < 4 * std / (2 * 20000) ** 0.5
    untagged = draw()  # outside the handler: plain weight sampling
    assert getattr(untagged, "_bayesdrop_lrt", None) is None


def test_fixed_distributions_are_built_once_per_dtype_device_and_input_shape():
    """``BayesianLayer.fixed`` returns the same prior object step after step, and a new one when the dtype or
    the per-example input shape changes (a stale prior there would have the wrong dtype or event shape)."""
    model, guide, x, y = tiny_convnet("bernoulli", p=0.3)
    conv = model.net[0]
    traces = [poutine.trace(model).get_trace(x, y) for _ in range(2)]
    name = conv.site("weight")
    assert traces[0].nodes[name]["fn"] is traces[1].nodes[name]["fn"]
    noise = conv.site("noise")
    first = traces[0].nodes[noise]["fn"]
    calls = []

    def build():
        calls.append(1)
        return first

    assert conv.fixed("noise", x, build) is not None and not calls  # cached: build not called
    model.double()
    tr = poutine.trace(model).get_trace(x.double(), y)
    assert tr.nodes[name]["fn"] is not traces[0].nodes[name]["fn"]
    assert tr.nodes[name]["fn"].base_dist.variance.dtype == torch.float64
    model.float()
    x_big = torch.randn(x.shape[0], x.shape[1], 8, 8)
    lin = bd.nn.Conv2d(x.shape[1], 4, 3, "bernoulli", padding=1)
    with poutine.trace() as t1:
        lin(x)
    with poutine.trace() as t2:
        lin(x_big)
    assert t1.trace.nodes["noise"]["fn"].event_shape == x.shape[1:]
    assert t2.trace.nodes["noise"]["fn"].event_shape == x_big.shape[1:]


def test_fixed_distributions_follow_the_validation_setting():
    """A prior built while Pyro validates keeps validating; the cache builds another one when validation is off,
    so training after a validated first step does not pay for sample checks on every step."""
    model, guide, x, y = tiny_convnet("bernoulli", p=0.3)
    name = model.net[0].site("weight")
    with pyro.validation_enabled(True):
        on = poutine.trace(model).get_trace(x, y).nodes[name]["fn"]
    with pyro.validation_enabled(False):
        off = poutine.trace(model).get_trace(x, y).nodes[name]["fn"]
    assert on._validate_args and not off._validate_args


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


def test_sample_messengers_see_sample_statements_only():
    """The package's messengers (local reparameterisation, the ELBO's recorders) are dispatched on sample
    statements, before and after the default handling; parameter statements pass them untouched."""
    from bayesdrop.nn import _SampleMessenger

    class Record(_SampleMessenger):
        def __init__(self):
            super().__init__()
            self.seen = []

        def _pyro_sample(self, msg):
            self.seen.append(("pre", msg["name"], msg["value"] is None))

        def _pyro_post_sample(self, msg):
            self.seen.append(("post", msg["name"], msg["value"] is None))

    with Record() as rec:
        pyro.param("p", torch.ones(2))
        pyro.sample("z", dist.Normal(0.0, 1.0))
    assert rec.seen == [("pre", "z", True), ("post", "z", False)]
