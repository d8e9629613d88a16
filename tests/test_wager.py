"""Wager et al. (2013): inverted dropout on the inputs of linear regression is L2 regularisation with a per-feature
coefficient, checked exactly over all 2^8 masks, and tied to bayesdrop's ``bernoulli`` noise law and layer."""

from __future__ import annotations

import itertools
import math

import pyro.poutine as poutine
import pytest
import torch

import bayesdrop as bd

D = 8  # features: 2^8 = 256 masks per example


def _problem(seed: int, n: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2.0, D, dtype=torch.float64)
    return x, torch.randn(n, generator=g, dtype=torch.float64), torch.randn(D, generator=g, dtype=torch.float64)


def _masks() -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)), dtype=torch.float64)  # (256, D)


def _ridge(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, p: float) -> torch.Tensor:
    """||y - X w||^2 + p / (1 - p) sum_j (X^T X)_jj w_j^2."""
    return (y - x @ w).square().sum() + p / (1 - p) * ((x.T @ x).diagonal() * w.square()).sum()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("seed", [0, 1])
def test_expected_dropout_loss_is_per_feature_ridge(p, seed):
    """sum_i E_m (y_i - (x_i o m_i)^T w / (1 - p))^2 over the 2^8 masks of each example, each with probability
    prod_j (1 - p)^{m_j} p^{1 - m_j}, equals the ridge objective to 1e-6 (float64)."""
    x, y, w = _problem(seed)
    masks = _masks()
    prob = ((1 - p) ** masks.sum(1)) * (p ** (D - masks.sum(1)))  # (256,)
    assert prob.sum().item() == pytest.approx(1.0, abs=1e-12)
    pred = (x[:, None, :] * masks[None] / (1 - p)) @ w  # (n, 256)
    expected = ((y[:, None] - pred).square() * prob).sum()
    assert expected.item() == pytest.approx(_ridge(x, y, w, p).item(), abs=1e-6)
    # the penalty is what dropout adds: without it the two sides differ (the test can fail)
    assert abs(expected.item() - (y - x @ w).square().sum().item()) > 1e-2


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_bernoulli_noise_law_takes_0_and_1_over_1_minus_p(p):
    """``bd.methods.get("bernoulli", p=p)``'s noise law (a ``FixedNoise``) gives each input the multiplier
    1 / (1 - p) with probability 1 - p and 0 with probability p; so do the layer's sampled draws."""
    layer = bd.nn.Linear(D, 1, bd.methods.get("bernoulli", p=p)).double()
    x, _, _ = _problem(0, n=4000)
    tr = poutine.trace(layer).get_trace(x)
    law = tr.nodes["noise"]["fn"]
    assert isinstance(bd.distributions.base_distribution(law), bd.distributions.FixedNoise)
    one = torch.zeros(D, dtype=torch.float64)
    one[0] = 1 / (1 - p)  # unit 0 kept, the others dropped
    assert law.log_prob(one)[0].exp().item() == pytest.approx((1 - p) * p ** (D - 1), rel=1e-9)
    z = tr.nodes["noise"]["value"]  # (4000, D): the draws the layer multiplied its inputs by
    assert z.unique().tolist() == pytest.approx([0.0, 1 / (1 - p)], rel=1e-12)
    dropped = (z == 0).double().mean().item()
    assert abs(dropped - p) < 4 * math.sqrt(p * (1 - p) / z.numel())  # 4 standard errors
    assert torch.equal(tr.nodes["_RETURN"]["value"], (x * z) @ tr.nodes["weight"]["value"].T + layer.bias)


@pytest.mark.parametrize("p", [0.3, 0.6])
def test_layer_expectation_over_its_law_is_per_feature_ridge(p):
    """The algebra with the library: every one of the 2^8 masks, scaled as the layer's noise site holds it, is fed
    to a ``bd.nn.Linear`` with ``bernoulli`` dropout (bias 0, weight w) by conditioning its sites; weighting the
    squared errors by the probabilities of the method's own noise law gives the ridge objective to 1e-6."""
    x, y, w = _problem(3)
    n = len(x)
    layer = bd.nn.Linear(D, 1, bd.methods.get("bernoulli", p=p)).double()
    with torch.no_grad():
        layer.bias.zero_()
    values = _masks() / (1 - p)  # the multipliers z / (1 - p)
    expected = torch.zeros((), dtype=torch.float64)
    total_prob = torch.zeros((), dtype=torch.float64)
    for z in values:
        data = {"noise": z.expand(n, D), "weight": w[None]}
        tr = poutine.trace(poutine.condition(layer, data=data)).get_trace(x)
        prob = tr.nodes["noise"]["fn"].log_prob(tr.nodes["noise"]["value"])[0].exp()  # the law's P(mask)
        pred = tr.nodes["_RETURN"]["value"].squeeze(-1)
        expected = expected + prob * (y - pred).square().sum()
        total_prob = total_prob + prob
    assert total_prob.item() == pytest.approx(1.0, abs=1e-12)
    assert expected.item() == pytest.approx(_ridge(x, y, w, p).item(), abs=1e-6)
