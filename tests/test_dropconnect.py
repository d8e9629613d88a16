"""DropConnect (Wan et al. 2013): weight masks, their ELBO, the per-minibatch option and moment-matching inference."""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import pyro
import pyro.poutine as poutine
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from helpers import tiny_classifier
from pyro.nn import PyroModule

import bayesdrop as bd


def _layer(p=0.5, per_example=True, d=5, out=4):  # per example unless told: the paper's masks
    return bd.nn.Linear(d, out, bd.methods.get("dropconnect", p=p, per_example=per_example))


def test_with_p_zero_the_layer_is_a_plain_linear():
    """No mask site, and the network replayed on the guide's weights is ``F.linear`` with them."""
    model, guide, x, y = tiny_classifier(bd.methods.get("dropconnect", p=0.0), d=6, hidden=())
    guide(x)
    tr = poutine.trace(guide).get_trace(x)
    assert not [n for n in tr.nodes if n.endswith("mask")]
    layer = model.net[0]
    expected = F.linear(x, tr.nodes[layer.site("weight")]["value"], layer.bias)
    torch.testing.assert_close(poutine.replay(model.net, trace=tr)(x), expected)


def test_per_example_masks_drop_a_fraction_p_of_weights_scaled_by_one_over_keep():
    """Masks take values {0, 1/(1-p)}, differ between examples, and drop a fraction p (within 5 binomial SE)."""
    p, B = 0.3, 64
    layer = _layer(p=p, d=20, out=10)
    pyro.set_rng_seed(0)
    model = bd.Classifier(torch.nn.Sequential(layer), num_data=B)
    tr = poutine.trace(model).get_trace(torch.randn(B, 20))
    m = tr.nodes[layer.site("mask")]["value"]
    assert m.shape == (B, 10, 20)
    torch.testing.assert_close(m.unique(), torch.tensor([0.0, 1 / (1 - p)]))
    dropped = (m == 0).double().mean().item()
    se = math.sqrt(p * (1 - p) / m.numel())
    assert abs(dropped - p) < 5 * se
    assert not torch.equal(m[0], m[1])


def test_per_minibatch_masks_are_one_weight_mask_shared_by_the_batch():
    layer = _layer(p=0.5, per_example=False)
    model = bd.Classifier(torch.nn.Sequential(layer), num_data=8)
    tr = poutine.trace(model).get_trace(torch.randn(8, 5))
    assert tr.nodes[layer.site("mask")]["value"].shape == (4, 5)


@pytest.mark.parametrize("per_example", [False, True])
def test_elbo_is_the_dropconnect_loss_with_weight_decay(per_example):
    """Same draw: the loss is -(N/B) sum_n log p(y_n | x_n, W o M_n / (1-p)) + sum -log N(W; 0, s^2) (the mask's
    KL is 0), computed here from the guide's traced masks."""
    method = bd.methods.get("dropconnect", per_example=per_example)
    model, guide, x, y = tiny_classifier(method, n=30, d=6, c=3, hidden=(5,), input_method=method)
    guide(x, y)
    N, B = model.num_data, len(x)
    guide_tr = poutine.trace(guide).get_trace(x, y)
    loss = bd.infer.MeanFieldELBO(max_plate_nesting=1).differentiable_loss(
        poutine.replay(model, trace=guide_tr), lambda *a: poutine.replay(guide, trace=guide_tr)(*a), x, y
    )
    h = x
    layers = [m for m in model.net if isinstance(m, bd.nn.Linear)]
    decay = 0.0
    for i, layer in enumerate(layers):
        w = guide_tr.nodes[layer.site("weight")]["value"]
        mask = guide_tr.nodes[layer.site("mask")]["value"] if layer.method.p > 0 else torch.ones(w.shape)
        h = torch.einsum("bi,boi->bo", h, (w * mask).expand(B, *w.shape)) + layer.bias
        h = h.relu() if i < len(layers) - 1 else h
        s = layer.method.prior_scale
        decay = decay + (w**2 / (2 * s**2) + 0.5 * math.log(2 * math.pi * s**2)).sum()
    nll = F.cross_entropy(h, y, reduction="sum") * N / B
    torch.testing.assert_close(loss, nll + decay, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("S", [300, pytest.param(10_000, marks=pytest.mark.slow)])
def test_moment_matching_agrees_with_monte_carlo_over_masks(S):
    """Wan et al.'s Gaussian inference for a trained one-hidden-layer ReLU net: the predictive mean per class (over
    a batch of test digits) agrees with the MC average over S weight masks (10^4 in the slow tier) within 3 standard
    errors of the difference (each estimate's SE from its own draws; at 10^4 draws the Gaussian's own error is
    about 2.5 SE, measured).  The CLT behind the Gaussian needs many inputs per unit:
    the digits' 64 pixels and 128 hidden units.  The 10^4-draw check is the 3 SE per class of Wan et al.'s
    comparison; the fast check at 300 draws bounds the 10 classes together, at the family-wise rate of one 3 SE
    test (two-sided 0.27 %): Bonferroni, 0.027 % per class, z = 3.64 (a single class at 3 SE would flag an exact
    approximation 2.7 % of the time).  Statistical, fixed seeds; another device's random stream gives other draws
    of the same test."""
    ds = bd.data.load("digits")
    net = bd.models.mlp(64, [128], 10, "dropconnect")
    model = bd.Classifier(net, num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    with pyro.validation_enabled(False):
        bd.fit(model, guide, ds.train, epochs=5, seed=0, progress=False)
    x = ds.test.x[:20]
    torch.manual_seed(1)
    _, mc = bd.predict(model, guide, x, num_samples=S, return_samples=True)
    torch.manual_seed(2)
    _, mm = bd.predict(model, guide, x, num_samples=S, rule="moment-matching", return_samples=True)
    mc_c, mm_c = mc.softmax(-1).mean(1), mm.softmax(-1).mean(1)  # per draw: mean over the inputs, (S, C)
    diff = mc_c.mean(0) - mm_c.mean(0)
    se = (mc_c.var(0) / S + mm_c.var(0) / S).sqrt()
    print("max |diff| / se per class:", (diff.abs() / se).max().item())
    z = 3.0 if S >= 10_000 else scipy.stats.norm.isf(scipy.stats.norm.sf(3.0) / mc_c.shape[-1])  # 3.64 for 10
    assert (diff.abs() <= z * se).all(), (diff, se)
    assert mm.std(0).mean() > 0  # the moment-matching draws are random


def test_moment_matching_is_refused_for_methods_without_it():
    model, guide, x, _ = tiny_classifier("bernoulli")
    guide(x)
    with pytest.raises(ValueError, match="moment-matching.*'bernoulli'"):
        bd.predict(model, guide, x, rule="moment-matching")


@pytest.mark.parametrize("conv", [bd.nn.Conv1d, bd.nn.Conv2d], ids=["conv1d", "conv2d"])
def test_per_example_masks_in_a_convolution_convolve_each_example_with_its_own_masked_weight(conv):
    """The default draws per example on the convolutions too: the output of example b is the plain convolution of
    x_b with W o M_b, M_b the traced mask; in evaluation mode one mask serves the batch."""
    layer = conv(3, 4, 3, "dropconnect", padding=1)
    assert layer.method.per_example is None and layer.method.masks_per_example(layer)
    x = torch.randn(5, 3, 6, 6) if conv is bd.nn.Conv2d else torch.randn(5, 3, 7)
    model = bd.Classifier(torch.nn.Sequential(layer, torch.nn.Flatten()), num_data=5)  # its plate: the examples
    seen = []
    layer.register_forward_hook(lambda mod, args, out: seen.append(out))
    pyro.set_rng_seed(0)
    tr = poutine.trace(model).get_trace(x)
    w, m = tr.nodes[layer.site("weight")]["value"], tr.nodes[layer.site("mask")]["value"]
    assert m.shape == (5, *w.shape) and not torch.equal(m[0], m[1])
    fn = F.conv2d if conv is bd.nn.Conv2d else F.conv1d
    expected = torch.cat([fn(x[b : b + 1], w * m[b], layer.bias, padding=1) for b in range(5)])
    torch.testing.assert_close(seen[0], expected)
    model.eval()  # evaluation (bd.predict): one mask per drawn network, the memory of one weight
    tr = poutine.trace(model).get_trace(x)
    w, m = tr.nodes[layer.site("weight")]["value"], tr.nodes[layer.site("mask")]["value"]
    assert m.shape == w.shape and not tr.nodes[layer.site("mask")]["cond_indep_stack"]
    torch.testing.assert_close(seen[-1], fn(x, w * m, layer.bias, padding=1))


def test_large_per_example_masks_warn_with_the_remedy(monkeypatch):
    """Per-example masks of more than LARGE_MASKS elements in one layer warn (by default; not when asked for), naming
    the layer, the memory and per_example=False."""
    monkeypatch.setattr(bd.methods.dropconnect, "LARGE_MASKS", 100)
    x = torch.randn(8, 5)
    net = PyroModule[torch.nn.Sequential](_layer(per_example=None, d=5, out=4))  # masks of 8 x 4 x 5 = 160 elements
    model = bd.Classifier(net, num_data=8)
    with pytest.warns(UserWarning, match=r"per example of the weights of layer 'net.0'.*per_example=False"):
        poutine.trace(model).get_trace(x)
    model = bd.Classifier(PyroModule[torch.nn.Sequential](_layer(per_example=True, d=5, out=4)), num_data=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        poutine.trace(model).get_trace(x)


def test_per_example_masks_need_a_layer_taking_a_weight_per_example_and_arguments_are_checked():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "examples"))
    from bilinear import Bilinear  # a layer kind without per-example weights

    with pytest.raises(ValueError, match="per_example"):
        Bilinear(3, 2, 4, bd.methods.get("dropconnect", per_example=True))
    layer = Bilinear(3, 2, 4, "dropconnect")  # the default: one mask per minibatch where per example cannot be
    assert not layer.method.masks_per_example(layer)
    with pytest.raises(ValueError, match="`p`"):
        bd.methods.get("dropconnect", p=1.0)
    with pytest.raises(TypeError, match="`per_example`"):
        bd.methods.get("dropconnect", per_example="yes")
    with pytest.raises(ValueError, match="noise sites"):
        bd.nn.Dropout(bd.methods.get("dropconnect"), noise_shape=(5,))


def test_keep_probabilities_are_per_weight():
    model, guide, x, _ = tiny_classifier(bd.methods.get("dropconnect", p=0.25), d=6, hidden=(5,))
    guide(x)
    rates = bd.dropout_rates(model, guide)
    assert rates["net.2"].shape == (3, 5) and torch.allclose(rates["net.2"], torch.full((3, 5), 0.75))


@pytest.mark.parametrize("scale", [1.0, 2.0])
@pytest.mark.parametrize("keep", [0.5, 0.9, 1.0, 1e-3])
def test_the_mask_law_scores_as_bernoulli_without_materialising_its_broadcast(keep, scale):
    """``FixedNoise``'s Bernoulli log-probability (taken on the keep probability before its broadcast, the hot path
    of a mask per weight and example) equals ``Bernoulli.log_prob`` of the 0/1 draws, entry by entry, for a scalar
    expanded to a mask per weight and example, a per-unit vector expanded over a batch, and an unexpanded tensor."""
    from bayesdrop.distributions import FixedNoise

    g = torch.Generator().manual_seed(0)
    for probs in (
        torch.tensor(keep).expand(4, 3, 5),
        torch.full((5,), keep).expand(4, 3, 5),
        torch.rand(4, 3, 5, generator=g).clamp(min=1e-3) * keep,
    ):
        law = FixedNoise(pyro.distributions.Bernoulli(probs, validate_args=False), ("t", keep), scale=scale)
        draws = torch.rand(4, 3, 5, generator=g) < probs
        value = draws.to(torch.float32) * scale
        want = torch.distributions.Bernoulli(probs, validate_args=False).log_prob(draws.to(torch.float32))
        torch.testing.assert_close(law.log_prob(value), want, rtol=1e-6, atol=1e-6)
        assert law.log_prob(value).shape == (4, 3, 5)
        wider = value.expand(2, 4, 3, 5)  # values with a leading batch dimension broadcast as Bernoulli's do
        torch.testing.assert_close(law.log_prob(wider), want.expand(2, 4, 3, 5), rtol=1e-6, atol=1e-6)
