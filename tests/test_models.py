"""The likelihoods' distributions: LogitsCategorical against Pyro's Categorical."""

from __future__ import annotations

import pyro.distributions as dist
import pytest
import torch

import bayesdrop as bd
from bayesdrop.distributions import LogitsCategorical


def test_logits_categorical_equals_categorical():
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(7, 5, generator=g)).requires_grad_()
    y = torch.randint(0, 5, (7,), generator=g)
    ours, ref = LogitsCategorical(logits), dist.Categorical(logits=logits)
    assert ours.batch_shape == ref.batch_shape and ours.event_shape == ref.event_shape
    torch.testing.assert_close(ours.log_prob(y), ref.log_prob(y), rtol=1e-6, atol=1e-6)
    (g1,) = torch.autograd.grad(ours.log_prob(y).sum(), logits)
    (g2,) = torch.autograd.grad(ref.log_prob(y).sum(), logits)
    torch.testing.assert_close(g1, g2)
    # the normalised parameters, the entropy and broadcast scoring (the Categorical's code) agree too
    torch.testing.assert_close(ours.logits, ref.logits)
    torch.testing.assert_close(ours.probs, ref.probs)
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    support = torch.arange(5)[:, None]  # (5, 1) against batch (7,): the fallback path
    torch.testing.assert_close(ours.log_prob(support), ref.log_prob(support))
    assert ours.expand((7,)) is ours  # what a plate does to every site: nothing to build
    wide = ours.expand((3, 7))
    assert isinstance(wide, LogitsCategorical) and wide.batch_shape == (3, 7)
    torch.testing.assert_close(wide.log_prob(y.expand(3, 7)), ref.log_prob(y).expand(3, 7))


def test_logits_categorical_samples_follow_softmax():
    logits = torch.tensor([0.0, 1.0, 2.0])
    draws = LogitsCategorical(logits).sample((20000,))
    freq = torch.bincount(draws, minlength=3).double() / 20000
    p = logits.softmax(-1).double()
    # 4 binomial standard errors per class
    assert ((freq - p).abs() < 4 * (p * (1 - p) / 20000).sqrt()).all()


def test_logits_categorical_rejects_scalar_logits():
    with pytest.raises(ValueError, match="`logits` must have at least one dimension"):
        LogitsCategorical(torch.tensor(1.0))


def test_classifier_log_likelihood_matches_the_observed_site():
    """``Classifier.log_likelihood`` (fit's bookkeeping, ArviZ's log_likelihood group) equals the obs site's
    log density, with and without leading sample dimensions."""
    net = bd.models.mlp(4, [6], 3, "bernoulli")
    model = bd.Classifier(net, num_data=10)
    g = torch.Generator().manual_seed(1)
    out, y = torch.randn(2, 10, 3, generator=g), torch.randint(0, 3, (10,), generator=g)
    ref = dist.Categorical(logits=out).log_prob(y)
    torch.testing.assert_close(model.log_likelihood(out, y), ref)
    torch.testing.assert_close(model.log_likelihood(out[0], y), ref[0])


def _head_input(net, x):
    """The input of ``net.head`` and the recurrent layer's final hidden states ``h_n`` in one run of ``net``."""
    import pyro.poutine as poutine

    seen = {}
    hooks = [  # (a hook returning something would replace the output)
        net.head.register_forward_hook(lambda m, args, out: seen.update(head=args[0])),
        net.rnn.register_forward_hook(lambda m, args, out: seen.update(h_n=out[1])),
    ]
    try:
        trace = poutine.trace(net).get_trace(x)
    finally:
        for h in hooks:
            h.remove()
    h_n = seen["h_n"][0] if isinstance(seen["h_n"], tuple) else seen["h_n"]
    return seen["head"], h_n, trace


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_bidirectional_rnn_reads_each_direction_where_it_ends(cell, layers):
    """``bd.models.rnn(..., bidirectional=True)`` reads the forward direction at the last step and the backward one
    at the first, each having read the whole sequence: the head's input is torch's ``h_n`` of the last layer, and
    changing every step but the last changes the backward half (at the last step it would have read one input)."""
    import pyro.poutine as poutine

    torch.manual_seed(0)
    net = bd.models.rnn(3, 5, 2, None, cell=cell, num_layers=layers, bidirectional=True)
    x = torch.randn(4, 7, 3)
    feats, h_n, trace = _head_input(net, x)
    assert feats.shape == (4, 10)
    torch.testing.assert_close(feats, torch.cat([h_n[-2], h_n[-1]], -1))  # forward's last state, backward's
    x2 = x.clone()
    x2[:, :-1] = torch.randn(4, 6, 3)  # the same last step
    seen = {}
    hook = net.head.register_forward_hook(lambda m, args, out: seen.update(head=args[0]))
    try:
        poutine.replay(net, trace=trace)(x2)  # the same weights
    finally:
        hook.remove()
    assert (seen["head"][:, 5:] - feats[:, 5:]).abs().min() > 1e-6  # every backward feature moved


def test_a_unidirectional_rnn_reads_its_last_step():
    torch.manual_seed(0)
    net = bd.models.rnn(3, 5, 2, None)
    x = torch.randn(4, 7, 3)
    feats, h_n, _ = _head_input(net, x)
    torch.testing.assert_close(feats, h_n[-1])


def test_the_builders_refuse_widths_that_are_not_positive_ints_and_take_numpy_ints():
    """A clear ``TypeError`` for an int where a sequence of widths goes, and for a width that is not an integer (a
    string, a bool); NumPy integers are widths."""
    import numpy as np

    with pytest.raises(TypeError, match=r"`hidden` must be a sequence of positive ints \(e\.g\. \[8\]\), got 8"):
        bd.models.mlp(4, 8, 3)
    for bad in ("8", [True], [8.0], [[8]]):
        with pytest.raises(TypeError, match="`hidden` must be a sequence of positive ints"):
            bd.models.mlp(4, bad, 3)
    with pytest.raises(ValueError, match="`hidden` must be a sequence of positive ints"):
        bd.models.mlp(4, [0], 3)
    with pytest.raises(TypeError, match="`in_features` must be a positive int, got '4'"):
        bd.models.mlp("4", [8], 3)
    with pytest.raises(TypeError, match="`out_features` must be a positive int, got True"):
        bd.models.mlp(4, [8], True)
    net = bd.models.mlp(np.int64(4), [np.int64(8), np.int32(6)], np.int64(3))
    assert [(m.in_features, m.out_features) for m in (net[0], net[2], net[4])] == [(4, 8), (8, 6), (6, 3)]
    assert all(type(m.out_features) is int for m in (net[0], net[2], net[4]))
    assert bd.models.mlp(4, np.array([8]), 3)[0].out_features == 8
    assert bd.models.lenet5((1, 8, 8), np.int64(10), hidden=np.int64(16))[-1].out_features == 10
    with pytest.raises(TypeError, match="`num_classes` must be a positive int, got '10'"):
        bd.models.lenet5((1, 8, 8), "10")
    with pytest.raises(TypeError, match="`channels` must be a sequence of positive ints"):
        bd.models.lenet5((1, 8, 8), 10, channels=20)
    assert bd.models.rnn(np.int64(3), np.int64(5), np.int64(2)).head.out_features == 2
    for arg in ("input_size", "hidden_size", "out_features"):
        kw = {"input_size": 3, "hidden_size": 5, "out_features": 2, arg: "5"}
        with pytest.raises(TypeError, match=f"`{arg}` must be a positive int, got '5'"):
            bd.models.rnn(kw["input_size"], kw["hidden_size"], kw["out_features"])
