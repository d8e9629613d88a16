"""Compression: reports and pruning to a plain network."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_classifier, tiny_convnet
from pyro.nn import PyroModule

import bayesdrop as bd


def _zero(guide, layer, rows=None, cols=None):
    w = guide.layer_guide(layer).weight
    with torch.no_grad():
        if rows is not None:
            w[rows] = 0
        if cols is not None:
            w[:, cols] = 0


def test_structural_pruning_of_an_mlp_matches_the_masked_mean_network():
    net = bd.models.mlp(12, [10, 8], 3, "bernoulli", p=0.3)
    model = bd.Classifier(net, num_data=20)
    guide = bd.DropoutGuide(model)
    x = torch.randn(20, 12)
    guide(x)
    _zero(guide, net[0], cols=[0, 1, 2])  # input features never read -> InputSelect
    _zero(guide, net[0], rows=[4, 6])  # hidden units with no inputs: constant, folded into the next bias
    _zero(guide, net[2], cols=[1])  # hidden unit never read
    _zero(guide, net[2], rows=[0])  # a constant second-layer unit
    pruned = bd.compress.prune(model, guide)
    ref = guide.mean_network(pruned=True)(x)
    assert torch.allclose(pruned(x), ref, atol=1e-5)
    rep = bd.compress.report(model, guide)
    assert rep.architecture == "9-7-7-3"
    assert rep.params_pruned == sum(p.numel() for p in pruned.parameters())
    assert rep.layers[0].units_in_kept == 9 and rep.layers[1].units_in_kept == 7
    # Non-zero weights of the pruned network: besides the zeroed ones, the row of hidden unit 1 (never read) and the
    # columns that read the constant units (4 and 6 of the first hidden layer, 0 of the second: folded into biases).
    w0, w1 = guide.layer_guide(net[0]).weight, guide.layer_guide(net[2]).weight
    w2 = guide.layer_guide(net[4]).weight
    nonzero = int(
        (w0[[i for i in range(10) if i != 1]] != 0).sum()
        + (w1[:, [i for i in range(10) if i not in (4, 6)]] != 0).sum()
        + (w2[:, 1:] != 0).sum()
    )
    assert [r.nonzero for r in rep.layers] == [int((m.weight != 0).sum()) for m in pruned if hasattr(m, "weight")]
    assert rep.nonzero == nonzero and rep.ratio == pytest.approx(rep.weights / nonzero)
    assert "784" not in rep.to_markdown() and "| **total** |" in rep.to_markdown()


def test_structural_pruning_of_a_convnet_removes_channels():
    model, guide, x, y = tiny_convnet("bernoulli", p=0.2, c=2, hw=6)
    guide(x, y)
    lin = model.net[3]
    # channel 1 of the conv output is never read by the linear layer (features 36..71 after Flatten)
    _zero(guide, lin, cols=list(range(36, 72)))
    pruned = bd.compress.prune(model, guide)
    ref = guide.mean_network(pruned=True)(x)
    assert torch.allclose(pruned(x), ref, atol=1e-5)
    assert pruned[0].out_channels == 3 and pruned[3].in_features == 3 * 36
    assert bd.compress.report(model, guide).architecture == "2-3-3"


def test_sparse_storage_gives_the_same_outputs():
    model, guide, x, y = tiny_classifier("bernoulli", p=0.2)
    guide(x, y)
    _zero(guide, model.net[0], rows=[1], cols=[2])
    dense = bd.compress.prune(model, guide)
    sparse = bd.compress.prune(model, guide, sparse=True)
    assert isinstance(sparse[-1], bd.compress.SparseLinear)
    assert torch.allclose(dense(x), sparse(x), atol=1e-5)


def test_non_sequential_networks_keep_their_structure():
    class Net(PyroModule):
        def __init__(self):
            super().__init__()
            self.a = bd.nn.Linear(6, 5, "bernoulli", p=0.1)
            self.b = bd.nn.Linear(5, 3, "bernoulli", p=0.1)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)) + 1.0)

    model = bd.Classifier(Net(), num_data=8)
    guide = bd.DropoutGuide(model)
    x = torch.randn(8, 6)
    guide(x)
    _zero(guide, model.net.a, cols=[0])
    pruned = bd.compress.prune(model, guide)
    assert isinstance(pruned.a, torch.nn.Linear) and not isinstance(pruned.a, bd.nn.BayesianLayer)
    ref = guide.mean_network(pruned=True)(x)
    assert torch.allclose(pruned(x), ref, atol=1e-5)


def test_prune_checks_its_arguments():
    model, guide, *_ = tiny_classifier("bernoulli")
    other, *_ = tiny_classifier("bernoulli")
    with pytest.raises(ValueError, match="`guide`"):
        bd.compress.prune(other, guide)


@pytest.mark.parametrize("method", bd.methods.names())
def test_every_method_prunes_to_its_masked_mean_network(method):
    model, guide, x, y = tiny_classifier(method, hidden=(16,))
    bd.fit(model, guide, (x, y), epochs=3, batch_size=20, lr=1e-2, progress=False)
    pruned = bd.compress.prune(model, guide)
    ref = guide.mean_network(pruned=True)(x)
    assert torch.allclose(pruned(x), ref, atol=1e-5)
    assert bd.compress.report(model, guide).params_pruned == sum(p.numel() for p in pruned.parameters())


@pytest.mark.parametrize("flatten", [True, False])
def test_a_conv_layer_whose_outputs_are_never_read_keeps_one_zero_read_channel(flatten):
    """torch has no Conv2d without output channels: prune keeps one channel that the next layer reads with zero
    weights, so the output still equals the masked mean network (the next layer's bias, for the Linear head)."""
    conv = bd.nn.Conv2d(1, 3, 3, "bernoulli", p=0.0, padding=1)
    if flatten:
        head = [torch.nn.ReLU(), torch.nn.Flatten(-3), bd.nn.Linear(48, 2, "bernoulli", p=0.0)]
    else:
        head = [torch.nn.ReLU(), bd.nn.Conv2d(3, 2, 3, "bernoulli", p=0.0, padding=1), torch.nn.Flatten(-3)]
    net = PyroModule[torch.nn.Sequential](conv, *head)
    model = bd.Classifier(net, num_data=8)
    guide = bd.DropoutGuide(model)
    x = torch.randn(8, 1, 4, 4)
    guide(x)
    last = net[3] if flatten else net[2]
    with torch.no_grad():
        guide.layer_guide(last).weight.zero_()
    pruned = bd.compress.prune(model, guide)
    with torch.no_grad():
        ref = guide.mean_network(pruned=True)(x)
    assert torch.allclose(pruned(x), ref, atol=1e-6)
    assert pruned[0].out_channels == 1 and (pruned[3 if flatten else 2].weight == 0).all()


def test_log_alpha_broadcasts_each_layers_values_to_its_weights():
    """vd with one alpha per layer: every weight of layer l carries that layer's log alpha, in layer order; a
    method without log alpha is a TypeError naming the layer."""
    model, guide, x, y = tiny_classifier("vd")
    guide(x, y)
    sizes = []
    with torch.no_grad():
        for i, (_, layer, g) in enumerate(guide.pairs()):
            g.log_alpha.fill_(-1.0 - i)
            sizes.append(layer.weight_init.numel())
    la = bd.compress.log_alpha(model, guide)
    expected = torch.cat([torch.full((n,), -1.0 - i) for i, n in enumerate(sizes)])
    assert torch.equal(la, expected) and not la.requires_grad
    other, other_guide, x2, y2 = tiny_classifier("bernoulli")
    other_guide(x2, y2)
    with pytest.raises(TypeError, match="uses 'bernoulli', which has no log alpha"):
        bd.compress.log_alpha(other, other_guide)
