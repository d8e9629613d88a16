"""Recurrent layers (bd.nn.LSTM, bd.nn.GRU) and the dropouts inside their recurrence: torch's layers at p = 0, where
each method's masks go (against hand-written recurrences with the traced masks), how they are drawn (per sequence
or per step), the test-time rules of the papers, and the local reparameterisation trick off for recurrent weights."""

from __future__ import annotations

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.nn import PyroModule

import bayesdrop as bd

NONE = bd.methods.get("bernoulli", p=0.0)


def _copy_from(layer, ref):
    with torch.no_grad():
        for name, p in ref.named_parameters():
            (layer.init_value(name) if name.startswith("weight") else getattr(layer, name)).copy_(p)


def _weights(layer):
    """The layer's initial weights as the values of its weight sites."""
    return {layer.site(n): layer.init_value(n) for n in layer.weight_sites}


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_without_noise_the_layers_are_torchs(kind, layers, bidirectional):
    """p = 0 and torch's weights: outputs and final states equal torch.nn.LSTM / GRU to 1e-5 on random sequences."""
    torch.manual_seed(0)
    ref = getattr(torch.nn, kind)(3, 5, layers, batch_first=True, bidirectional=bidirectional)
    layer = getattr(bd.nn, kind)(3, 5, layers, NONE, bidirectional=bidirectional)
    _copy_from(layer, ref)
    x = torch.randn(4, 7, 3)
    out, state = poutine.condition(layer, data=_weights(layer))(x)
    ref_out, ref_state = ref(x)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
    for a, b in zip(state if kind == "LSTM" else (state,), ref_state if kind == "LSTM" else (ref_state,)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def _lstm(x, w_ih, w_hh, b, m_x=None, m_h=None, m_c=None, m_u=None):
    """A one-layer LSTM written out, masks (B, T, units) or None where the recurrence takes them."""
    batch, steps = x.shape[:2]
    hidden = w_hh.shape[1]
    h = c = x.new_zeros(batch, hidden)
    outs, cells = [], []
    for t in range(steps):
        xt = x[:, t] if m_x is None else x[:, t] * m_x[:, t]
        ht = h if m_h is None else h * m_h[:, t]
        i, f, g, o = (xt @ w_ih.T + ht @ w_hh.T + b).chunk(4, -1)
        update = torch.sigmoid(i) * torch.tanh(g)
        if m_u is not None:
            update = update * m_u[:, t]
        c = torch.sigmoid(f) * c + update
        if m_c is not None:
            c = c * m_c[:, t]
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
        cells.append(c)
    return torch.stack(outs, 1), torch.stack(cells, 1)


def _traced(method, x, hidden=4, seed=0):
    """A one-layer bd.nn.LSTM with ``method`` in a likelihood over ``x``: its output and the trace."""
    layer = bd.nn.LSTM(x.shape[-1], hidden, method=method)
    net = PyroModule[torch.nn.Sequential](layer)
    net.forward = lambda inp: layer(inp)[0][:, -1]  # the last output as logits
    model = bd.Classifier(net, num_data=len(x))
    pyro.set_rng_seed(seed)
    tr = poutine.trace(poutine.condition(model, data=_weights(layer))).get_trace(x)
    return layer, tr


def _site(tr, layer, name):
    return tr.nodes[layer.site(name)]["value"]


@pytest.mark.parametrize("per_sequence", [True, False])
def test_variational_rnn_masks_the_inputs_and_the_hidden_state_once_per_sequence(per_sequence):
    """Gal & Ghahramani: the mask on x_t and on h_{t-1} is one draw per sequence (identical at every step, different
    across sequences); the output is the hand-written LSTM with those masks and no other noise."""
    x = torch.randn(6, 5, 3)
    method = bd.methods.get("variational-rnn", p=0.5, per_sequence=per_sequence)
    layer, tr = _traced(method, x)
    m_x, m_h = _site(tr, layer, "noise_l0"), _site(tr, layer, "noise_hh_l0")
    assert m_x.shape == ((6, 1, 3) if per_sequence else (6, 5, 3)) and m_h.shape[-1] == 4
    assert set(m_x.unique().tolist()) <= {0.0, 1.0}  # not rescaled
    if per_sequence:
        assert not torch.equal(m_x[0], m_x[1]) or not torch.equal(m_h[0], m_h[1])
    assert layer.site("cell_l0") not in tr.nodes and layer.site("update_l0") not in tr.nodes
    expected, _ = _lstm(
        x,
        layer.init_value("weight_ih_l0"),
        layer.init_value("weight_hh_l0"),
        layer.bias_ih_l0 + layer.bias_hh_l0,
        m_x.expand(6, 5, 3),
        m_h.expand(6, 5, 4),
    )
    torch.testing.assert_close(tr.nodes["_RETURN"]["value"], expected[:, -1])


def test_variational_masks_differ_across_monte_carlo_draws():
    x = torch.randn(6, 5, 3)
    layer, tr1 = _traced("variational-rnn", x, seed=1)
    _, tr2 = _traced("variational-rnn", x, seed=2)
    assert not torch.equal(tr1.nodes["net.0.noise_hh_l0"]["value"], tr2.nodes["net.0.noise_hh_l0"]["value"])


def test_rnndrop_masks_only_the_cell_state_and_recurrent_dropout_only_the_update():
    """RNNDrop (Moon et al. 2015): one mask per sequence on c_t, nothing on the inputs or h; recurrent dropout
    (Semeniuta et al. 2016): a mask per step on i_t o g_t, so c_{t-1} enters c_t unmasked; both against the
    hand-written LSTM with the traced masks at those places only."""
    x = torch.randn(6, 5, 3)
    layer, tr = _traced(bd.methods.get("rnndrop", p=0.5), x)
    m_c = _site(tr, layer, "cell_l0")
    assert m_c.shape == (6, 1, 4)
    assert {layer.site(n) for n in ("noise_l0", "noise_hh_l0", "update_l0")}.isdisjoint(tr.nodes)
    args = (x, layer.init_value("weight_ih_l0"), layer.init_value("weight_hh_l0"), layer.bias_ih_l0 + layer.bias_hh_l0)
    expected, _ = _lstm(*args, m_c=m_c.expand(6, 5, 4))
    torch.testing.assert_close(tr.nodes["_RETURN"]["value"], expected[:, -1])
    layer, tr = _traced(bd.methods.get("recurrent-dropout", p=0.5), x)
    m_u = _site(tr, layer, "update_l0")
    assert m_u.shape == (6, 5, 4) and not torch.equal(m_u[:, 0], m_u[:, 1])  # a fresh mask per step
    assert {layer.site(n) for n in ("noise_l0", "noise_hh_l0", "cell_l0")}.isdisjoint(tr.nodes)
    args = (x, layer.init_value("weight_ih_l0"), layer.init_value("weight_hh_l0"), layer.bias_ih_l0 + layer.bias_hh_l0)
    expected, cells = _lstm(*args, m_u=m_u)
    torch.testing.assert_close(tr.nodes["_RETURN"]["value"], expected[:, -1])
    # where the update is dropped, the memory passes scaled by the forget gate alone: c_t = f_t o c_{t-1}
    assert (m_u == 0).any()


@pytest.mark.parametrize("name", ["variational-rnn", "rnndrop", "recurrent-dropout"])
def test_the_test_time_network_is_the_papers_rule(name):
    """The posterior mean (every mask at its mean 1 - p) of a one-layer LSTM is the survey's test-time rule,
    computed by hand: variational RNN, the gates of (1 - p) W [x; h]; RNNDrop, c_t scaled by 1 - p; recurrent
    dropout, the update scaled by 1 - p."""
    p = 0.3
    x = torch.randn(5, 6, 3)
    layer = bd.nn.LSTM(3, 4, method=bd.methods.get(name, p=p))
    net = PyroModule[torch.nn.Sequential](layer)
    net.forward = lambda inp: layer(inp)[0][:, -1]
    model = bd.Classifier(net, num_data=len(x))
    guide = bd.DropoutGuide(model)
    guide(x)
    w_ih, w_hh = (guide.layer_guide(layer).weight_ih_l0, guide.layer_guide(layer).weight_hh_l0)
    b = layer.bias_ih_l0 + layer.bias_hh_l0
    keep = torch.full((5, 6, 4), 1 - p)
    with torch.no_grad():
        mean = guide.mean_network()(x)
        if name == "variational-rnn":
            expected, _ = _lstm(x, (1 - p) * w_ih, (1 - p) * w_hh, b)
        elif name == "rnndrop":
            expected, _ = _lstm(x, w_ih, w_hh, b, m_c=keep)
        else:
            expected, _ = _lstm(x, w_ih, w_hh, b, m_u=keep)
    torch.testing.assert_close(mean, expected[:, -1])


def test_recurrent_weights_are_drawn_not_locally_reparameterised():
    """A weight shared by the steps is drawn whole: its sites are not marked for the local reparameterisation trick,
    so under bd.fit's LocalReparameterization(draw_weights=False) the LSTM gets sampled weights (not the mean)."""
    layer = bd.nn.LSTM(3, 4, method="sparse-vd")
    assert all(not s.lrt for s in layer.weight_sites.values())
    net = PyroModule[torch.nn.Sequential](layer)
    net.forward = lambda inp: layer(inp)[0][:, -1]
    model = bd.Classifier(net, num_data=5)
    guide = bd.DropoutGuide(model)
    x = torch.randn(5, 6, 3)
    guide(x)
    tr = poutine.trace(bd.nn.LocalReparameterization(draw_weights=False)(guide)).get_trace(x)
    site = tr.nodes[layer.site("weight_hh_l0")]
    assert not site["infer"].get("lrt")
    assert not getattr(site["value"], "_bayesdrop_lrt_placeholder", False)
    loc = (
        guide.layer_guide(layer).weight_hh_l0_theta if hasattr(guide.layer_guide(layer), "weight_hh_l0_theta") else None
    )
    if loc is not None:
        assert not torch.equal(site["value"], loc)


def test_recurrent_methods_need_recurrent_layers_and_check_their_arguments():
    with pytest.raises(ValueError, match="acts on the cell noise of recurrent layers, and GRU has none"):
        bd.nn.GRU(3, 4, method="rnndrop")
    with pytest.raises(ValueError, match="acts on the input and recurrent noise of recurrent layers, and Linear"):
        bd.nn.Linear(3, 4, "variational-rnn")
    with pytest.raises(ValueError, match="`p`"):
        bd.methods.get("variational-rnn", p=1.0)
    with pytest.raises(TypeError, match="`per_sequence`"):
        bd.methods.get("rnndrop", per_sequence="yes")
    with pytest.raises(TypeError, match="`batch_first` must be a bool"):
        bd.nn.LSTM(3, 4, batch_first=1)
    with pytest.raises(ValueError, match=r"`x` must have shape \(batch, time, 3\)"):
        bd.nn.LSTM(3, 4)(torch.randn(2, 3))
    assert bd.methods.names(role="recurrent") == ["variational-rnn", "rnndrop", "recurrent-dropout"]


class _TorchTagger(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Linear(3, 6)
        self.rnn = torch.nn.LSTM(6, 5, num_layers=2, batch_first=False, dropout=0.3)
        self.head = torch.nn.Linear(5, 2)

    def forward(self, x):  # x: (T, B, 3)
        out, _ = self.rnn(self.emb(x))
        return self.head(out[-1])


def test_bayesianize_converts_lstm_and_gru_with_their_weights_and_layout():
    """nn.LSTM (time-first, two layers, torch's own dropout argument) becomes bd.nn.LSTM with recurrent_method and
    torch's weights: at p = 0 the converted network computes the original one; nn.GRU likewise."""
    torch.manual_seed(0)
    module = _TorchTagger().eval()
    x = torch.randn(7, 4, 3)
    expected = module(x)
    net = bd.bayesianize(module, bd.methods.get("bernoulli", p=0.0), recurrent_method=NONE)
    assert isinstance(net.rnn, bd.nn.LSTM) and not net.rnn.batch_first and net.rnn.num_layers == 2
    data = {s: v for layer in (net.emb, net.rnn, net.head) for s, v in _weights(layer).items()}
    torch.testing.assert_close(poutine.condition(net, data=data)(x), expected, atol=1e-5, rtol=0)
    net = bd.bayesianize(torch.nn.Sequential(torch.nn.GRU(3, 4, batch_first=True)), recurrent_method="variational-rnn")
    assert isinstance(net[0], bd.nn.GRU) and net[0].method.name == "variational-rnn"
    with pytest.raises(ValueError, match="pass it as recurrent_method="):
        bd.bayesianize(torch.nn.Sequential(torch.nn.GRU(3, 4)), "rnndrop")
    with pytest.raises(ValueError, match="proj_size=2"):
        bd.bayesianize(torch.nn.Sequential(torch.nn.LSTM(3, 4, proj_size=2)))


def test_rnn_model_reads_the_last_step_and_places_methods():
    net = bd.models.rnn(8, 16, 10)
    assert net.rnn.method.name == "variational-rnn" and net.head.method.p == 0.0
    net = bd.models.rnn(8, 16, 10, "bernoulli", cell="gru")
    assert isinstance(net.rnn, bd.nn.GRU) and net.head.method.p == 0.5  # Zaremba et al.: the output's inputs too
    x = bd.data.load("digits").sequences("test")[:5]
    assert x.shape == (5, 8, 8) and net(x).shape == (5, 10)
    with pytest.raises(ValueError, match="is a method for recurrent layers: use bd.models.rnn"):
        bd.models.mlp(8, [4], 2, "rnndrop")
    with pytest.raises(ValueError, match="`cell` must be"):
        bd.models.rnn(8, 16, 10, cell="rnn")


def test_sequences_read_images_by_rows_and_signals_by_samples():
    digits, signals = bd.data.load("digits"), bd.data.load("mnist1d")
    rows, images = digits.sequences("test"), digits.images("test")
    assert rows.shape == (len(digits.test), 8, 8) and torch.equal(rows[3, 5], images[3, 0, 5])
    seq = signals.sequences(signals.test)
    assert seq.shape == (len(signals.test), 40, 1) and torch.equal(seq[2, :, 0], signals.images("test")[2, 0])
    with pytest.raises(ValueError, match="no image_shape"):
        bd.data.load("toy-regression").sequences("test")


def test_variational_rnn_leaves_a_one_feature_input_alone_unless_told():
    """A per-sequence mask on the only input feature would hide the whole sequence: by default the inputs of a
    one-feature layer are not dropped (the mask is all ones; the test-time rule leaves them unscaled), h_{t-1} is;
    ``p_input`` sets the input rate (Gal & Ghahramani's p_x) for any width."""
    x = torch.randn(64, 5, 1)
    layer, tr = _traced(bd.methods.get("variational-rnn", p=0.5), x)
    assert torch.equal(_site(tr, layer, "noise_l0"), torch.ones(64, 1, 1))
    assert 0.3 < _site(tr, layer, "noise_hh_l0").mean() < 0.7
    layer, tr = _traced(bd.methods.get("variational-rnn", p=0.5, p_input=0.5), x)
    assert 0.3 < _site(tr, layer, "noise_l0").mean() < 0.7  # 64 draws of Bernoulli(0.5): 4 SE is 0.25
    layer, tr = _traced(bd.methods.get("variational-rnn", p=0.5, p_input=0.0), torch.randn(64, 5, 3))
    assert torch.equal(_site(tr, layer, "noise_l0"), torch.ones(64, 1, 3))
    layer, tr = _traced(bd.methods.get("variational-rnn", p=0.5), torch.randn(64, 5, 3))
    assert 0.3 < _site(tr, layer, "noise_l0").mean() < 0.7
    # the test-time rule of a one-feature input: (1 - p) on h_{t-1} only
    layer = bd.nn.LSTM(1, 4, method=bd.methods.get("variational-rnn", p=0.3))
    net = PyroModule[torch.nn.Sequential](layer)
    net.forward = lambda inp: layer(inp)[0][:, -1]
    model = bd.Classifier(net, num_data=len(x))
    guide = bd.DropoutGuide(model)
    guide(x)
    g = guide.layer_guide(layer)
    with torch.no_grad():
        expected, _ = _lstm(x, g.weight_ih_l0, 0.7 * g.weight_hh_l0, layer.bias_ih_l0 + layer.bias_hh_l0)
        torch.testing.assert_close(guide.mean_network()(x), expected[:, -1])
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="p_input"):
            bd.methods.get("variational-rnn", p_input=bad)


def test_fit_trains_a_layer_at_its_own_learning_rate():
    """A layer's lr_scale multiplies bd.fit's learning rate for its parameters and its guide's, times the method's
    own multipliers (sbp's mu and log_sigma: 3); other layers keep theirs.  Every layer kind's default is 1."""
    net = bd.models.rnn(3, 4, 2, method="sbp")
    assert net.rnn.lr_scale == net.head.lr_scale == 1.0
    net.rnn.lr_scale = 0.3
    model = bd.Classifier(net, num_data=10)
    guide = bd.DropoutGuide(model)
    guide(torch.randn(2, 5, 3))
    lr_of = {id(p): g["lr"] for g in bd.infer.param_groups(model, guide, 0.01) for p in g["params"]}
    lstm_guide, head_guide = guide.layer_guide(net.rnn), guide.layer_guide(net.head)
    assert lr_of[id(net.rnn.bias_ih_l0)] == pytest.approx(0.003)
    assert lr_of[id(lstm_guide.weight_ih_l0)] == pytest.approx(0.003)
    assert lr_of[id(lstm_guide.noise_l0_mu)] == pytest.approx(0.009)  # 0.3 x sbp's 3
    assert lr_of[id(head_guide.weight)] == pytest.approx(0.01) and lr_of[id(head_guide.mu)] == pytest.approx(0.03)
    assert lr_of[id(net.head.bias)] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "method, sites",
    [
        ("sparse-vd", ["weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse"]),
        ("concrete", ["noise_l0", "noise_l0_reverse", "noise_l1", "noise_l1_reverse"]),
        ("variational-rnn", ["noise_l0", "noise_hh_l0", "noise_l0_reverse", "noise_hh_l0_reverse"]),
    ],
)
def test_dropout_rates_of_a_recurrent_layer_are_per_site(method, sites):
    """A recurrent layer has one keep probability per rate site (layer, direction and role the method draws on),
    keyed ``{layer}.{site}``, of the site's shape, and in ``point_estimates`` of its InferenceData; a method of the
    inputs has no parameter for the hidden-state, cell or update sites."""
    pyro.set_rng_seed(0)
    net = bd.models.rnn(3, 4, 2, method, num_layers=2, bidirectional=True)
    x, y = torch.randn(6, 5, 3), torch.randint(0, 2, (6,))
    model = bd.Classifier(net, num_data=6)
    guide = bd.DropoutGuide(model)
    guide(x, y)
    rates = bd.dropout_rates(model, guide)
    rnn_keys = [k for k in rates if k.startswith("net.rnn.")]
    assert rnn_keys[: len(sites)] == [f"net.rnn.{s}" for s in sites]
    assert set(rnn_keys) == {f"net.rnn.{s}" for s in net.rnn.method.rate_sites(net.rnn)}
    for key in rnn_keys:
        site = key.removeprefix("net.rnn.")
        if site in net.rnn.weight_sites:
            assert rates[key].shape == net.rnn.weight_sites[site].shape  # sparse VD: per weight
        else:
            assert rates[key].shape == net.rnn.noise_sites[site].unit_shape  # per input or hidden unit
    params = dict(guide.layer_guide(net.rnn).named_parameters())
    assert not [n for n in params if n.startswith(("noise_hh", "cell_", "update_"))] or method == "variational-rnn"
    idata = bd.to_inference_data(model, guide, (x, y), num_samples=2)
    assert {f"{k}.keep_prob" for k in rates} <= set(idata.point_estimates.data_vars)
    if method == "sparse-vd":
        assert idata.point_estimates["net.rnn.weight_ih_l1.keep_prob"].dims == (
            "net.rnn.weight_ih_l1.out",
            "net.rnn.weight_ih_l1.in",
        )
