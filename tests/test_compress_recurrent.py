"""Compression reports of recurrent networks: a row per weight site of bd.nn.LSTM / GRU (per layer and direction),
their totals and non-zero weights after sparse VD's pruning, and the architecture of the pruned network (torch's
recurrent layers keep their shapes)."""

from __future__ import annotations

import pytest
import torch
from pyro.nn import PyroModule

import bayesdrop as bd
from bayesdrop.methods.base import site_param


def _built(net, x):
    """``net`` in a classifier with its guide, called once on ``x``."""
    model = bd.Classifier(net, num_data=len(x))
    guide = bd.DropoutGuide(model)
    guide(x)
    return model, guide


def _set_log_alpha(guide, layer, value=-5.0):
    """Sparse VD: every weight of ``layer`` at log alpha ``value`` (log sigma^2 set from its theta)."""
    params = guide.layer_guide(layer)
    with torch.no_grad():
        for site in layer.weight_sites:
            theta = getattr(params, site)
            getattr(params, site_param(site, "log_sigma2")).copy_((theta.square() + 1e-16).log() + value)


def _force(guide, layer, site, index, value=5.0):
    """Sparse VD: the weights ``index`` of ``site`` at log alpha ``value`` (above the default threshold 3)."""
    params = guide.layer_guide(layer)
    with torch.no_grad():
        theta = getattr(params, site)
        getattr(params, site_param(site, "log_sigma2"))[index] = (theta[index].square() + 1e-16).log() + value


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("method", ["sparse-vd", "variational-rnn"])
def test_a_row_per_recurrent_weight_site(method, cell, layers, bidirectional):
    """One row per weight site (input-to-hidden and hidden-to-hidden, per layer and direction) with the site's
    numel, its columns as units, all kept; rows plus biases add up to the dense parameters; the architecture is
    the inputs, hidden_size * directions per layer, then the head's outputs."""
    torch.manual_seed(0)
    net = bd.models.rnn(3, 4, 2, method, cell=cell, num_layers=layers, bidirectional=bidirectional)
    model, guide = _built(net, torch.randn(6, 5, 3))
    if method == "sparse-vd":
        _set_log_alpha(guide, net.rnn)  # nothing pruned at init: every weight counts as non-zero
        _set_log_alpha(guide, net.head)
    rep = bd.compress.report(model, guide)
    sites = net.rnn.weight_sites
    gates = 4 if cell == "lstm" else 3
    assert len(sites) == 2 * layers * (2 if bidirectional else 1)
    assert [r.name for r in rep.layers] == [f"net.rnn.{s}" for s in sites] + ["net.head"]
    assert [r.kind for r in rep.layers] == [type(net.rnn).__name__] * len(sites) + ["Linear"]
    for r, site in zip(rep.layers, sites.values()):
        assert r.weights == r.nonzero == site.shape.numel() and site.shape[0] == gates * 4
        assert r.units_in == r.units_in_kept == site.shape[1]
    width = 4 * (2 if bidirectional else 1)
    assert [r.units_in for r in rep.layers if "_hh_" in r.name] == [4] * layers * len(net.rnn.directions)
    assert [r.units_in for r in rep.layers if "_ih_" in r.name] == [
        3 if k == 0 else width for k in range(layers) for _ in net.rnn.directions
    ]
    plain = sum(p.numel() for p in net.parameters())  # the recurrent biases and the head's
    assert plain == 2 * layers * len(net.rnn.directions) * gates * 4 + 2
    assert rep.weights == sum(s.shape.numel() for s in sites.values()) + 2 * width
    assert rep.weights + plain == rep.params_dense
    assert rep.architecture == "-".join(map(str, [3, *[width] * layers, 2]))
    pruned = bd.compress.prune(model, guide)
    assert rep.params_pruned == rep.params_dense == sum(p.numel() for p in pruned.parameters())
    assert "| net.rnn.weight_hh_l0 |" in rep.to_markdown()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_sparse_vd_pruning_of_recurrent_weights_counts_in_their_rows(cell):
    """Log alpha forced above 3 for a whole input column of weight_ih and three weights of weight_hh: their rows
    lose exactly those weights (all other rows unchanged), the pruned network stores them as zeros with its shapes
    kept (all units kept, same architecture and parameter count) and computes the pruned mean network."""
    torch.manual_seed(1)
    net = bd.models.rnn(3, 4, 2, "sparse-vd", cell=cell)
    x = torch.randn(6, 5, 3)
    model, guide = _built(net, x)
    _set_log_alpha(guide, net.rnn)
    _set_log_alpha(guide, net.head)
    before = bd.compress.report(model, guide)
    assert before.nonzero == before.weights and (bd.compress.log_alpha(model, guide) < 3).all()
    _force(guide, net.rnn, "weight_ih_l0", (slice(None), 1))  # input feature 1: every gate's weight
    hh = (torch.tensor([0, 5, 11]), torch.tensor([3, 0, 2]))
    _force(guide, net.rnn, "weight_hh_l0", hh)
    after = bd.compress.report(model, guide)
    gates = 4 if cell == "lstm" else 3
    assert int((bd.compress.log_alpha(model, guide) > 3).sum()) == gates * 4 + 3
    rows = {r.name: r for r in after.layers}
    assert rows["net.rnn.weight_ih_l0"].nonzero == gates * 4 * 3 - gates * 4
    assert rows["net.rnn.weight_hh_l0"].nonzero == gates * 4 * 4 - 3
    assert rows["net.head"].nonzero == 8
    assert after.nonzero == before.nonzero - (gates * 4 + 3) and after.weights == before.weights
    assert rows["net.rnn.weight_ih_l0"].units_in_kept == 3  # its column is all zeros, but the LSTM keeps its inputs
    assert after.architecture == before.architecture == "3-4-2"
    assert after.params_pruned == after.params_dense == before.params_dense
    pruned = bd.compress.prune(model, guide)
    w_ih, w_hh = pruned.rnn.weight_ih_l0, pruned.rnn.weight_hh_l0
    assert (w_ih[:, 1] == 0).all() and int((w_ih != 0).sum()) == rows["net.rnn.weight_ih_l0"].nonzero
    assert (w_hh[hh] == 0).all() and int((w_hh != 0).sum()) == rows["net.rnn.weight_hh_l0"].nonzero
    torch.testing.assert_close(pruned(x), guide.mean_network(pruned=True)(x), atol=1e-5, rtol=0)


class _Last(torch.nn.Module):
    """The last output of a recurrent layer: ``(output, state) -> output[:, -1]``."""

    def forward(self, out):
        return out[0][:, -1]


def test_a_sequential_with_a_recurrent_layer_keeps_its_inputs():
    """Sequential(LSTM, last step, Linear) with every head weight pruned: the head's inputs are the LSTM's outputs,
    not the network's, so no InputSelect goes in front (it would feed the LSTM 0 features); the report's
    architecture is that of the pruned network."""
    torch.manual_seed(2)
    rnn, head = bd.nn.LSTM(2, 4, method="sparse-vd"), bd.nn.Linear(4, 3, "sparse-vd")
    net = PyroModule[torch.nn.Sequential](rnn, _Last(), head)
    x = torch.randn(6, 5, 2)
    model, guide = _built(net, x)
    _set_log_alpha(guide, rnn)
    _set_log_alpha(guide, head, 5.0)
    pruned = bd.compress.prune(model, guide)
    assert not any(isinstance(m, bd.compress.InputSelect) for m in pruned)
    torch.testing.assert_close(pruned(x), guide.mean_network(pruned=True)(x), atol=1e-5, rtol=0)
    rep = bd.compress.report(model, guide)
    assert [r.name for r in rep.layers] == ["net.0.weight_ih_l0", "net.0.weight_hh_l0", "net.2"]
    assert [(r.nonzero, r.units_in_kept) for r in rep.layers] == [(32, 2), (64, 4), (0, 4)]
    assert rep.architecture == "2-4-3" and rep.params_pruned == rep.params_dense == 143


def test_log_alpha_of_vbd_per_unit_in_an_lstm():
    """vbd per unit puts its noise on the LSTM's inputs only: ``weight_ih``'s log alpha is its input units', spread
    along the gates; ``weight_hh`` has no noise on its inputs, alpha = 0 (log alpha -inf, never pruned)."""
    torch.manual_seed(0)
    net = bd.models.rnn(3, 4, 2, "vbd", granularity="unit")
    model, guide = _built(net, torch.randn(6, 5, 3))
    la = bd.compress.log_alpha(model, guide)
    ih, hh = (net.rnn.weight_sites[s].shape for s in ("weight_ih_l0", "weight_hh_l0"))
    assert la.shape == (ih.numel() + hh.numel() + net.head.weight_sites["weight"].shape.numel(),)
    per_input = net.rnn.method.log_alpha(net.rnn, guide.layer_guide(net.rnn), "noise_l0").detach()
    assert torch.equal(la[: ih.numel()].reshape(ih), per_input.reshape(1, -1).expand(ih))
    assert torch.isneginf(la[ih.numel() : ih.numel() + hh.numel()]).all()
    assert torch.isfinite(la[ih.numel() + hh.numel() :]).all()
