"""Compression: reports and pruning to a plain network."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
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
    if not bd.methods.info(method)["capabilities"].plain_export:  # no plain-weight network to export
        with pytest.raises(ValueError, match="no plain-weight equivalent"):
            bd.compress.prune(model, guide)
        return
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
    model, guide, x, y = tiny_classifier("vd", input_method="vd")  # vd on the 6 inputs too: not its default
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


# -- non-Sequential networks: units removed along the chains of a torch.fx trace ---------------------------------


def _bayesianized(module, x, seed=0):
    """``module`` with unit-wise VBD (a structured method), its guide run once on ``x`` and every unit's posterior
    mean drawn in [0.5, 1.5], so that the means folded into the weights matter: (net, model, guide)."""
    net = bd.bayesianize(module, bd.methods.get("vbd", granularity="unit"))
    model = bd.Classifier(net, num_data=len(x))
    guide = bd.DropoutGuide(model)
    guide(x)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, _, params in guide.pairs():
            params.noise_loc.copy_(0.5 + torch.rand(params.noise_loc.shape, generator=g))
    return net, model, guide


def _prune_inputs(guide, layer, units):
    """Prune input units (channels) of a unit-wise VBD layer: log alpha = log sigma^2 - log theta^2 >= 3."""
    with torch.no_grad():
        guide.layer_guide(layer).noise_log_sigma2.view(-1)[units] = 10.0


def _is_plain(module):
    return not any(isinstance(m, PyroModule | bd.nn.BayesianLayer) for m in module.modules())


def _params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("before", ["flatten", "layernorm"])
def test_the_first_layers_input_selection_comes_right_before_it(before):
    """A module before the first weight layer of a Sequential that reshapes (Flatten) or mixes (LayerNorm) its
    inputs: the pruned inputs are selected after it, where the layer reads them; prune, the weight-scaling rule and
    the masked mean network agree."""
    torch.manual_seed(0)
    head = torch.nn.Flatten() if before == "flatten" else torch.nn.LayerNorm(12)
    x = torch.randn(7, 3, 4) if before == "flatten" else torch.randn(7, 12)
    net, model, guide = _bayesianized(
        torch.nn.Sequential(head, torch.nn.Linear(12, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)), x
    )
    _prune_inputs(guide, net[1], [0, 5, 11])
    plain = bd.compress.prune(model, guide)
    assert _is_plain(plain) and isinstance(plain[1], bd.compress.InputSelect)
    assert plain[1].index.tolist() == [i for i in range(12) if i not in (0, 5, 11)]
    assert plain[2].in_features == 9
    with torch.no_grad():
        want = guide.mean_network(pruned=True)(x)
        assert torch.allclose(plain(x), want, atol=1e-5)
    ws = bd.predict(model, guide, x, rule="weight-scaling")
    assert torch.allclose(ws, guide.mean_network()(x).softmax(-1), atol=1e-5)


def test_a_channel_read_only_by_removed_rows_goes_too():
    """Pruning is minimal along a chain of chains: a conv channel whose only readers are fc1 rows that fc2 does not
    read (and that pruning removes) is removed as well, as is each of its weights; the report says so."""
    torch.manual_seed(0)
    x = torch.randn(5, 1, 6, 6)
    seq = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(48, 5),
        torch.nn.ReLU(),
        torch.nn.Linear(5, 2),
    )
    net, model, guide = _bayesianized(seq, x)
    with torch.no_grad():
        guide.layer_guide(net[3]).weight[2:, 16:32] = 0.0  # channel 1 is read by fc1's rows 0 and 1 only
    _prune_inputs(guide, net[5], [0, 1])  # which fc2 does not read
    plain = bd.compress.prune(model, guide)
    convs = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d)]
    fcs = [m for m in plain.modules() if isinstance(m, torch.nn.Linear)]
    assert convs[0].out_channels == 2 and (fcs[0].in_features, fcs[0].out_features) == (32, 3)
    assert bd.compress.report(model, guide).architecture == "1-2-3-2"
    with torch.no_grad():
        assert torch.allclose(plain(x), guide.mean_network(pruned=True)(x), atol=1e-5)


class _MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = torch.nn.Linear(6, 8), torch.nn.Linear(8, 5), torch.nn.Linear(5, 3)

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(F.relu(self.fc1(x))) + 1.0))


def test_a_custom_mlp_loses_the_units_its_next_layer_does_not_read():
    torch.manual_seed(0)
    x = torch.randn(20, 6)
    net, model, guide = _bayesianized(_MLP(), x)
    _prune_inputs(guide, net.fc1, [0])  # an input feature: zeroed, not removed (no InputSelect in a custom forward)
    _prune_inputs(guide, net.fc2, [1, 4, 6])  # hidden units of fc1 never read: removed
    _prune_inputs(guide, net.fc3, [0, 2])
    _zero(guide, net.fc1, rows=[3])  # a constant unit: folded into fc2's bias, removed
    pruned = bd.compress.prune(model, guide)
    assert type(pruned) is _MLP and _is_plain(pruned)
    h1, h2 = 8 - 4, 5 - 2
    assert pruned.fc1.weight.shape == (h1, 6) and pruned.fc2.weight.shape == (h2, h1)
    assert pruned.fc3.weight.shape == (3, h2) and (pruned.fc1.weight[:, 0] == 0).all()
    assert _params(pruned) == (6 * h1 + h1) + (h1 * h2 + h2) + (h2 * 3 + 3) == 55
    ref = guide.mean_network(pruned=True)(x)
    assert torch.allclose(pruned(x), ref, atol=1e-6)
    rep = bd.compress.report(model, guide)
    assert rep.architecture == "5-4-3-3" and rep.params_pruned == 55
    assert [r.nonzero for r in rep.layers] == [int((m.weight != 0).sum()) for m in (pruned.fc1, pruned.fc2, pruned.fc3)]
    sparse = bd.compress.prune(model, guide, sparse=True)
    assert isinstance(sparse.fc2, bd.compress.SparseLinear) and sparse.fc2.in_features == h1
    assert torch.allclose(sparse(x), ref, atol=1e-6)


class _CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn = torch.nn.Conv2d(2, 6, 3, padding=1), torch.nn.BatchNorm2d(6)
        self.pool, self.conv2 = torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 4, 3, padding=1)
        self.flat, self.fc = torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 3, 3)

    def forward(self, x):
        h = self.pool(F.relu(self.bn(self.conv1(x))))
        return self.fc(self.flat(F.relu(self.conv2(h))))

    def sequential(self):
        relu = torch.nn.ReLU
        return torch.nn.Sequential(self.conv1, self.bn, relu(), self.pool, self.conv2, relu(), self.flat, self.fc)


@pytest.mark.parametrize("sequential", [False, True])
def test_a_convnet_with_batch_norm_loses_unread_channels(sequential, tmp_path):
    """Conv2d-BatchNorm2d-ReLU-MaxPool2d-Conv2d-ReLU-Flatten-Linear, in a custom forward and as a Sequential (the
    same chains): channels no later layer reads go, with their batch-norm statistics and affine parameters."""
    torch.manual_seed(0)
    x = torch.randn(10, 2, 6, 6)
    cnn = _CNN()
    net, model, guide = _bayesianized(cnn.sequential() if sequential else cnn, x)
    at = dict(zip(["conv1", "bn", "conv2", "fc"], [0, 1, 4, 7])) if sequential else {}
    layer = (
        {n: net[i] for n, i in at.items()}
        if sequential
        else {n: getattr(net, n) for n in ("conv1", "bn", "conv2", "fc")}
    )
    with torch.no_grad():
        bn = layer["bn"]
        bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 2.0), bn.weight.normal_(), bn.bias.normal_()
    _prune_inputs(guide, layer["conv2"], [1, 3])  # channels 1 and 3 of conv1 never read
    # fc: all 9 features of conv2's channel 2, and 5 of the 9 of channel 0 (which stays: the others are read)
    _prune_inputs(guide, layer["fc"], list(range(18, 27)) + [0, 1, 2, 3, 4])
    model.eval()  # the batch norm at its running statistics, as in the pruned network
    pruned = bd.compress.prune(model, guide)
    assert _is_plain(pruned) and (type(pruned) is torch.nn.Sequential if sequential else type(pruned) is _CNN)
    new = {n: pruned[i] for n, i in at.items()} if sequential else {n: getattr(pruned, n) for n in layer}
    c1, c2 = 6 - 2, 4 - 1
    assert new["conv1"].weight.shape == (c1, 2, 3, 3) and new["conv2"].weight.shape == (c2, c1, 3, 3)
    assert new["fc"].weight.shape == (3, c2 * 9) and new["bn"].num_features == c1
    for name in ("running_mean", "running_var", "weight", "bias"):
        assert torch.equal(getattr(new["bn"], name), getattr(layer["bn"], name)[[0, 2, 4, 5]].detach())
    expected = (c1 * 2 * 9 + c1) + 2 * c1 + (c2 * c1 * 9 + c2) + (3 * c2 * 9 + 3)
    assert _params(pruned) == expected == 279 and bd.compress.report(model, guide).params_pruned == expected
    ref = guide.mean_network(pruned=True)(x)
    assert torch.allclose(pruned(x), ref, atol=1e-6)
    bd.compress.save(pruned, tmp_path / "cnn.pt2", x)
    assert torch.allclose(bd.compress.load(tmp_path / "cnn.pt2")(x), ref, atol=1e-6)


def test_the_mean_network_runs_batch_norm_on_its_running_statistics_whatever_the_mode():
    """bd.fit leaves the model in training mode: the mean network still normalises with the running statistics
    (the pruned network's outputs), leaves them as they were, and returns each module to its own mode."""
    torch.manual_seed(0)
    x = torch.randn(10, 2, 6, 6)
    net, model, guide = _bayesianized(_CNN(), x)
    with torch.no_grad():
        net.bn.running_mean.normal_(), net.bn.running_var.uniform_(0.5, 2.0)
    stats = net.bn.running_mean.clone(), net.bn.running_var.clone()
    model.train()
    net.conv1.eval()  # a module the user keeps in eval mode
    out = guide.mean_network(pruned=True)(x)
    assert torch.equal(net.bn.running_mean, stats[0]) and torch.equal(net.bn.running_var, stats[1])
    assert model.training and net.bn.training and not net.conv1.training
    assert torch.allclose(out, bd.compress.prune(model, guide)(x), atol=1e-6)
    bd.predict(model, guide, x, num_samples=2)
    assert model.training and net.bn.training and not net.conv1.training
    # in training mode the batch's own statistics would have given other outputs
    with torch.no_grad():
        batch_mode = bd.handlers.posterior_mean(lambda *a: model(*a), guide)(x)
    assert not torch.allclose(batch_mode, out, atol=1e-3)


@pytest.mark.parametrize("first", ["conv", "linear"])
def test_a_first_layer_with_every_input_pruned_keeps_one_read_with_zero_weights(first):
    """A one-channel image whose channel is pruned (a SAL gate below its threshold): the pruned network keeps
    that input, with zero weights, and computes what the pruned mean network computes (no layer of no inputs)."""
    torch.manual_seed(0)
    conv = first == "conv"
    layers = [torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten()] if conv else [torch.nn.Flatten(), torch.nn.Linear(1, 27)]
    x = torch.randn(10, 1, 5, 5) if conv else torch.randn(10, 1, 1, 1)
    net, model, guide = _bayesianized(torch.nn.Sequential(*layers, torch.nn.ReLU(), torch.nn.Linear(27, 2)), x)
    _prune_inputs(guide, net[0] if conv else net[1], [0])
    pruned = bd.compress.prune(model, guide)
    weight = pruned[0].weight if conv else pruned[1].weight
    assert weight.shape[1] == 1 and torch.equal(weight, torch.zeros_like(weight))
    assert torch.allclose(pruned(x), guide.mean_network(pruned=True)(x), atol=1e-6)


class _Residual(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc0, self.fc1 = torch.nn.Linear(6, 10), torch.nn.Linear(10, 8)
        self.fc2, self.fc3 = torch.nn.Linear(8, 8), torch.nn.Linear(8, 3)

    def forward(self, x):
        h = F.relu(self.fc1(F.relu(self.fc0(x))))
        return self.fc3(F.relu(self.fc2(h)) + h)


def test_a_residual_add_keeps_its_unit_axis_whole():
    """fc0 -> fc1 is a chain and shrinks; the units of fc1 and fc2 meet in an add, so fc1's outputs, fc2 and fc3
    keep their shapes (pruned weights zeroed), and a constant unit of fc1 is not folded away."""
    torch.manual_seed(0)
    x = torch.randn(20, 6)
    net, model, guide = _bayesianized(_Residual(), x)
    _prune_inputs(guide, net.fc1, [0, 3])
    _prune_inputs(guide, net.fc2, [1, 2])
    _prune_inputs(guide, net.fc3, [5])
    _zero(guide, net.fc1, rows=[6])
    pruned = bd.compress.prune(model, guide)
    assert type(pruned) is _Residual and _is_plain(pruned)
    shapes = [tuple(m.weight.shape) for m in (pruned.fc0, pruned.fc1, pruned.fc2, pruned.fc3)]
    assert shapes == [(8, 6), (8, 8), (8, 8), (3, 8)]
    assert (pruned.fc2.weight[:, [1, 2]] == 0).all() and (pruned.fc3.weight[:, 5] == 0).all()
    assert (pruned.fc1.weight[6] == 0).all() and _params(pruned) == (48 + 8) + (64 + 8) + (64 + 8) + (24 + 3)
    ref = guide.mean_network(pruned=True)(x)
    assert torch.allclose(pruned(x), ref, atol=1e-6)


class _Branching(torch.nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(6, 8), torch.nn.Linear(8, 3)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        return self.fc2(h if h.sum() > 0 else -h)


class _SizeReading(_Branching):
    """A forward that reads a layer's size: its trace would change with the size."""

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x))) / self.fc1.out_features


@pytest.mark.parametrize("cls", [_Branching, _SizeReading])
def test_a_network_whose_chains_cannot_be_followed_keeps_its_shapes(cls):
    torch.manual_seed(0)
    x = torch.randn(20, 6)
    net, model, guide = _bayesianized(cls(), x)
    _prune_inputs(guide, net.fc2, [1, 2])  # in a traceable _MLP-like network fc1 would lose two units
    pruned = bd.compress.prune(model, guide)
    assert type(pruned) is cls and _is_plain(pruned)
    assert pruned.fc1.weight.shape == (8, 6) and (pruned.fc2.weight[:, [1, 2]] == 0).all()
    assert torch.allclose(pruned(x), guide.mean_network(pruned=True)(x), atol=1e-6)


def test_a_sequential_with_nested_layers_is_pruned_through_its_trace():
    """Bayesian layers inside a block of a Sequential: the network comes back plain, and shrinks."""
    torch.manual_seed(0)
    x = torch.randn(20, 6)
    block = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU())
    net, model, guide = _bayesianized(torch.nn.Sequential(block, torch.nn.Linear(5, 3)), x)
    _prune_inputs(guide, net[1], [0, 1])
    pruned = bd.compress.prune(model, guide)
    assert type(pruned) is torch.nn.Sequential and _is_plain(pruned)
    assert pruned[0][0].weight.shape == (3, 6) and pruned[1].weight.shape == (3, 3)
    assert torch.allclose(pruned(x), guide.mean_network(pruned=True)(x), atol=1e-6)


@pytest.mark.parametrize("method", bd.methods.names())
def test_weight_scaling_runs_the_plain_mean_module_equal_to_the_pyro_run(method):
    """``bd.predict(rule="weight-scaling")`` runs :func:`bd.compress.mean_module` (nothing pruned) where the method
    has a plain test-time network, else the model at the guide's means: the same outputs as
    ``guide.mean_network()`` either way (to float32 rounding: the noise means are folded into the weights)."""
    from bayesdrop.infer.predict import weight_scaling_network

    model, guide, x, y = tiny_classifier(method)
    guide(x, y)
    model.eval()
    with torch.no_grad():
        expected = guide.mean_network()(x)
    out = bd.predict(model, guide, x, rule="weight-scaling", return_samples=True)[1]
    torch.testing.assert_close(out, expected.unsqueeze(0), rtol=1e-5, atol=1e-5)
    network = weight_scaling_network(model, guide)
    assert isinstance(network, torch.nn.Module) == bd.methods.get(method).capabilities.plain_export


def _assert_follows_the_weights(model, guide, x, before):
    """The weight-scaling prediction is the guide's mean network's now, and not ``before``."""
    after = bd.predict(model, guide, x, rule="weight-scaling")
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(after, guide.mean_network()(x).softmax(-1), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(after, before)


def test_the_plain_mean_module_is_kept_until_a_parameter_changes():
    """Built once per guide and reused while the parameters and buffers are unchanged; an optimiser step (in
    place) or a new parameter tensor rebuilds it, and the prediction follows the new weights."""
    from bayesdrop.infer.predict import weight_scaling_network

    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    first = weight_scaling_network(model, guide)
    assert isinstance(first, torch.nn.Module) and weight_scaling_network(model, guide) is first
    before = bd.predict(model, guide, x, rule="weight-scaling")
    bd.fit(model, guide, (x, y), epochs=1, batch_size=20, progress=False)
    second = weight_scaling_network(model, guide)
    assert second is not first
    _assert_follows_the_weights(model, guide, x, before)
    layer = next(m for m in model.modules() if isinstance(m, bd.nn.Linear))
    layer.bias = torch.nn.Parameter(layer.bias.detach() + 1.0)  # a new tensor, version 0
    third = weight_scaling_network(model, guide)
    assert third is not second and weight_scaling_network(model, guide) is third


def test_the_plain_mean_module_follows_the_module_tree_and_holds_nothing_alive():
    """A submodule replaced by one of the same shapes with other weights, or a method's attribute changed,
    rebuilds the kept network (the prediction follows); the cache holds no reference to the guide or model."""
    import gc
    import weakref

    from bayesdrop.infer.predict import weight_scaling_network

    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    first = weight_scaling_network(model, guide)
    name, old = next((n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.ReLU))
    parent = model.get_submodule(name.rpartition(".")[0])
    setattr(parent, name.rpartition(".")[2], torch.nn.Tanh())  # same parameters, another network
    second = weight_scaling_network(model, guide)
    assert second is not first
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(second(x), guide.mean_network()(x), rtol=1e-5, atol=1e-6)
    layer = next(m for m in model.modules() if isinstance(m, bd.nn.Linear))
    layer.method.p = 0.25  # the weight-scaling factor changes
    assert weight_scaling_network(model, guide) is not second
    refs = weakref.ref(model), weakref.ref(guide)
    del model, guide, layer, parent, old, first, second
    gc.collect()
    assert all(ref() is None for ref in refs)


def test_the_plain_mean_module_follows_a_method_of_another_type_and_an_attribute_changed_in_place():
    """A method replaced by one of another type with the same attributes, or a method attribute that is not a
    plain scalar changed in place (compared by repr), rebuilds the kept network."""
    from bayesdrop.infer.plain import weight_scaling_network

    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    first = weight_scaling_network(model, guide)
    layer = next(m for m in model.modules() if isinstance(m, bd.nn.Linear))
    twin = type("Twin", (type(layer.method),), {})
    method = twin.__new__(twin)
    vars(method).update(vars(layer.method))
    layer.method = method  # the same attributes, another type
    second = weight_scaling_network(model, guide)
    assert second is not first and weight_scaling_network(model, guide) is second
    layer.method.extra = [1]  # a list: compared by its repr
    third = weight_scaling_network(model, guide)
    assert third is not second and weight_scaling_network(model, guide) is third
    layer.method.extra.append(2)
    assert weight_scaling_network(model, guide) is not third


def test_clear_cache_rebuilds_after_a_write_through_data():
    """A write through ``.data`` changes no version counter, so the kept network keeps the old weights until
    :func:`~bayesdrop.infer.plain.clear_cache`; then the prediction follows the new ones."""
    from bayesdrop.infer.plain import clear_cache, weight_scaling_network

    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    first = weight_scaling_network(model, guide)
    before = bd.predict(model, guide, x, rule="weight-scaling")
    layer = next(m for m in model.modules() if isinstance(m, bd.nn.Linear))
    layer.bias.data.add_(3.0)  # not seen: no version counter changes
    assert weight_scaling_network(model, guide) is first
    clear_cache(guide)
    second = weight_scaling_network(model, guide)
    assert second is not first
    _assert_follows_the_weights(model, guide, x, before)
    clear_cache()  # every guide's
    assert weight_scaling_network(model, guide) is not second
    with pytest.raises(TypeError, match="`guide` must be a bd.DropoutGuide or None"):
        clear_cache(model)


def test_a_pruned_lstm_saves_without_warnings_and_loads_to_the_same_outputs(tmp_path):
    """torch.export warned that an LSTM's flat weights were assigned during export (its forward refreshes them);
    the program holds them, and the loaded network gives the pruned one's outputs."""
    torch.manual_seed(0)
    x = torch.randn(5, 7, 3)
    model = bd.Classifier(bd.models.rnn(3, 6, 4, "variational-rnn"), num_data=5)
    guide = bd.DropoutGuide(model)
    guide(x)
    pruned = bd.compress.prune(model, guide)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bd.compress.save(pruned, tmp_path / "rnn.pt2", x)
    assert torch.allclose(bd.compress.load(tmp_path / "rnn.pt2")(x), pruned(x), atol=1e-6)


def test_a_named_threshold_is_refused_by_methods_that_do_not_know_it():
    """A named threshold is a rule a method declares (``threshold_rules``: Generalized Dropout's ``"sharp-rise"``);
    for a method without it, ``compress.report``/``prune`` and the method's own ``keep_masks`` raise a ValueError
    naming ``threshold`` and the rules it knows (the message carried torch's comparison error of a tensor and a
    string); a method that prunes nothing ignores it; a number is still a number."""
    torch.manual_seed(0)
    x = torch.randn(8, 4)
    for name, known in (("sparse-vd", "knows no named rule"), ("sbp", "knows no named rule"), ("sal", None)):
        model = bd.Classifier(bd.models.mlp(4, [8], 3, name), num_data=8)
        guide = bd.DropoutGuide(model)
        guide(x)
        if known is None:
            assert bd.compress.report(model, guide, threshold="sharp-rise").layers
            with pytest.raises(
                ValueError, match=r"`threshold` 'abc' is not a pruning rule .* which knows 'sharp-rise'"
            ):
                bd.compress.report(model, guide, threshold="abc")
            continue
        with pytest.raises(
            ValueError, match=rf"`threshold` 'sharp-rise' is not a pruning rule .*{name!r}, which {known}"
        ):
            bd.compress.prune(model, guide, threshold="sharp-rise")
        _, layer, params = next(iter(guide.pairs()))
        with pytest.raises(ValueError, match=r"`threshold` 'sharp-rise' is not a named pruning rule"):
            layer.method.keep_masks(layer, params, "sharp-rise")
        with pytest.raises(TypeError, match=r"`threshold` must be a number"):
            layer.method.keep_masks(layer, params, [1.0])
        assert bd.compress.report(model, guide, threshold=2.0).layers
    model = bd.Classifier(bd.models.mlp(4, [8], 3, "bernoulli"), num_data=8)
    guide = bd.DropoutGuide(model)
    guide(x)
    assert bd.compress.report(model, guide, threshold="abc").layers  # bernoulli prunes nothing: no rule to check
