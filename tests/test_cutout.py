"""Cutout (DeVries & Taylor 2017): the zeroed region, its uniform centre, the identity at test time, the keep
probabilities and where a network takes it."""

from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.nn import PyroModule

import bayesdrop as bd


def _traced(layer_cls, shape, size=None, n=6):
    """A layer with cutout on its inputs ``(n, *shape)`` in a likelihood; the traced centre draws and the layer's
    noisy input (the input times the mask, from a forward pre-hook on the next computation)."""
    method = bd.methods.get("cutout", size=size)
    if layer_cls is bd.nn.Linear:
        layer = bd.nn.Linear(shape[0], 2, method)
        net = PyroModule[torch.nn.Sequential](layer)
    else:
        layer = layer_cls(shape[0], 2, 1, method)
        net = PyroModule[torch.nn.Sequential](layer, torch.nn.Flatten())
    model = bd.Classifier(net, num_data=n)
    x = torch.ones(n, *shape)
    masks = []
    original = layer.method.noise_model

    def record(lyr, site, inp):
        z = original(lyr, site, inp)
        masks.append(torch.ones_like(inp) if z is None else (inp * z))
        return z

    layer.method.noise_model = record
    tr = poutine.trace(model).get_trace(x)
    return tr.nodes[layer.site("centre")]["value"], masks[0], model


@pytest.mark.parametrize("side", [8, 5])
def test_the_zeroed_area_is_the_square_clipped_at_the_borders(side):
    """For every example the zeroed positions form the size x size square at the drawn centre, clipped at the
    borders: their number is the product over the axes of the clipped extents, size^2 when inside; every channel
    shares the mask."""
    h, w, size = side, 7, 3
    centre, noisy, _ = _traced(bd.nn.Conv2d, (3, h, w), size=size, n=200)
    assert centre.shape == (200, 2)
    zero = noisy == 0
    assert torch.equal(zero, zero[:, :1].expand_as(zero))  # one region for every channel
    inside = 0
    for b in range(200):
        cy, cx = int(centre[b, 0] * h), int(centre[b, 1] * w)
        lo_y, lo_x = cy - size // 2, cx - size // 2
        extent_y = min(lo_y + size, h) - max(lo_y, 0)
        extent_x = min(lo_x + size, w) - max(lo_x, 0)
        expected = torch.zeros(h, w, dtype=torch.bool)
        expected[max(lo_y, 0) : lo_y + size, max(lo_x, 0) : lo_x + size] = True
        assert torch.equal(zero[b, 0], expected)
        assert int(zero[b, 0].sum()) == extent_y * extent_x
        inside += extent_y * extent_x == size * size
    assert inside > 0  # some squares lie inside, where the area is size^2


def test_segments_of_signals_and_of_feature_vectors():
    """(C, L) signals and (F,) feature vectors lose a segment; the default is a quarter of the length."""
    centre, noisy, _ = _traced(bd.nn.Conv1d, (2, 40), n=50)
    lengths = (noisy[:, 0] == 0).sum(-1)
    assert lengths.max() == 10 and lengths.min() >= 5  # ceil(40 / 4), clipped at most to half at a border
    centre, noisy, _ = _traced(bd.nn.Linear, (12,), n=50)
    assert centre.shape == (50, 1) and (noisy == 0).sum(-1).max() == 3
    assert bd.methods.get("cutout").side((8, 8)) == 4 and bd.methods.get("cutout").side((28, 28)) == 14


def test_the_centre_is_uniform_over_the_positions():
    """Chi-square test of the drawn centres' positions on a 5 x 6 grid (30 cells, 29 degrees of freedom) at a fixed
    seed: the statistic stays below the 0.001 critical value, 58.3 (flakes with probability 0.001 on another
    random stream)."""
    pyro.set_rng_seed(0)
    h, w, n = 5, 6, 6000
    centre, _, _ = _traced(bd.nn.Conv2d, (1, h, w), size=2, n=n)
    cell = (centre[:, 0] * h).floor() * w + (centre[:, 1] * w).floor()
    counts = torch.bincount(cell.long(), minlength=h * w).double()
    assert counts.numel() == h * w
    stat = ((counts - n / (h * w)) ** 2 / (n / (h * w))).sum().item()
    assert stat < 58.30


def test_the_test_time_network_uses_the_whole_input_and_the_draws_are_sample_sites():
    """The posterior mean (weight-scaling rule) and the pruned network are the network without the mask; MC draws
    differ, between examples and between networks."""
    net = bd.models.lenet5((1, 8, 8), 3, None, input_method="cutout", channels=(4, 6), hidden=16)
    model = bd.Classifier(net, num_data=8)
    guide = bd.DropoutGuide(model)
    x = torch.rand(1, 1, 8, 8).expand(8, 1, 8, 8)
    guide(x)
    plain = bd.compress.prune(model, guide)
    assert not any(isinstance(m, bd.nn.BayesianLayer) for m in plain.modules())
    with torch.no_grad():
        torch.testing.assert_close(guide.mean_network()(x), plain(x))
        first = net[0].to_plain({"weight": net[0].init_value("weight")})
        torch.testing.assert_close(plain[0](x), first(x))
    _, draws = bd.predict(model, guide, x, num_samples=3, return_samples=True)
    assert not torch.equal(draws[0, 0], draws[0, 1]) and not torch.equal(draws[0, 0], draws[1, 0])


def test_every_draw_of_a_vectorised_predictive_cuts_its_own_region():
    """``Predictive(parallel=True)``: the centre is a local site, one per example and per draw; the input the first
    convolution sees under draw s is the image with draw s's square cut out (its zeroed area is the square's)."""
    net = bd.models.lenet5((1, 8, 8), 3, None, input_method="cutout", channels=(4, 6), hidden=16)
    model = bd.Classifier(net, num_data=8)
    guide = bd.DropoutGuide(model)
    x = torch.rand(4, 1, 8, 8) + 0.5  # no zero pixel of its own
    guide(x)
    masks = []
    original = net[0].method.noise_model

    def record(layer, site, inp):
        z = original(layer, site, inp)
        masks.append(z)
        return z

    net[0].method.noise_model = record
    pyro.set_rng_seed(0)
    site = net[0].site("centre")
    with torch.no_grad():
        pred = pyro.infer.Predictive(model, guide=guide, num_samples=5, parallel=True, return_sites=[site])(x)
    centre = pred[site]
    assert centre.shape == (5, 4, 2)
    assert not torch.equal(centre[0], centre[1])  # each draw has its own centres
    zeroed = (masks[-1].expand(20, 1, 8, 8) == 0).reshape(5, 4, 8, 8)  # the draws folded into the batch
    assert zeroed.sum((-1, -2)).min() >= 1  # every draw of every example lost a region
    assert not torch.equal(zeroed[0], zeroed[1])


def test_keep_probabilities_are_the_chance_of_not_being_cut():
    """Per channel, 1 - E[area] / HW with the centre uniform over the positions, computed here by enumerating the
    centres; per feature of a feature vector, the fraction of centres whose segment misses it."""
    h, w, size = 6, 5, 3
    _, _, model = _traced(bd.nn.Conv2d, (2, h, w), size=size)
    guide = bd.DropoutGuide(model)
    guide(torch.ones(2, 2, h, w))
    cut = 0
    for cy in range(h):
        for cx in range(w):
            ey = min(cy - size // 2 + size, h) - max(cy - size // 2, 0)
            ex = min(cx - size // 2 + size, w) - max(cx - size // 2, 0)
            cut += ey * ex
    keep = 1 - cut / (h * w) ** 2
    rates = bd.dropout_rates(model, guide)["net.0"]
    assert rates.shape == (2,) and rates.tolist() == pytest.approx([keep, keep], abs=1e-6)
    _, _, model = _traced(bd.nn.Linear, (4,), size=2)
    guide = bd.DropoutGuide(model)
    guide(torch.ones(2, 4))
    # segments [c - 1, c + 1) for c = 0..3: feature 0 is cut by c = 0, 1; 1 by 1, 2; 2 by 2, 3; 3 by 3
    assert bd.dropout_rates(model, guide)["net.0"].tolist() == pytest.approx([0.5, 0.5, 0.5, 0.75])


def test_cutout_goes_on_the_inputs_and_refuses_what_it_cannot_do():
    net = bd.models.mlp(64, [10], 10, None, input_method="cutout")
    assert [m.method.name for m in net if isinstance(m, bd.nn.Linear)] == ["cutout", "bernoulli"]
    with pytest.raises(ValueError, match="'cutout' is a method for a network's inputs: pass it as input_method="):
        bd.models.mlp(64, [10], 10, "cutout")
    with pytest.raises(ValueError, match="cutout zeroes a region.*noise='channel'"):
        bd.nn.Conv2d(3, 4, 3, "cutout", noise="channel")
    with pytest.raises(ValueError, match="`size` must be a positive int or None"):
        bd.methods.get("cutout", size=0)
    with pytest.raises(ValueError, match="`prior_scale`"):
        bd.methods.get("cutout", prior_scale=-1.0)
    layer = bd.nn.Dropout("cutout", noise_shape=(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"cutout needs inputs \(F,\), \(C, L\) or \(C, H, W\)"):
        layer(torch.ones(1, 2, 3, 4, 5))
    assert math.isclose(bd.methods.get("cutout", size=3).side((8, 8)), 3)
