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
