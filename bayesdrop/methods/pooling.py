r"""Dropout in the pooling layers: max- and average-pooling dropout, stochastic pooling and Max-Drop.

For users of convolutional networks who want the noise where the network summarises a neighbourhood.  Each method
acts on the pool site of a :mod:`bayesdrop.nn` pooling layer (``bd.nn.MaxPool2d(2, method=...)``,
``bd.models.lenet5(..., pool_method=...)``, ``bd.bayesianize(..., pool_method=...)``): the layer cuts its input into
windows :math:`a = (a_1, \dots, a_K)` and outputs :math:`y = \sum_k w_k a_k` with the *window weights* :math:`w`
that the method draws.  Every draw is a per-example local site whose guide law is its prior (KL 0, as for
``bernoulli``), so the ELBO is each paper's training loss (the likelihood of the network with the weight decay of its
other layers), Monte Carlo prediction averages over the draws, and the deterministic test-time network
(``bd.predict(..., rule="weight-scaling")``, the posterior mean) applies each paper's test-time rule.

``maxpool-dropout``
    Wu & Gu (2015), "Towards dropout training for convolutional neural networks" (Neural Networks 71): a mask
    :math:`m_k \sim \mathrm{Bernoulli}(1 - p)` on the window before the max (not rescaled),

    .. math:: y = \max_k\, m_k a_k .

    Test time, ``test_rule="probabilistic"`` (the default): their *probabilistic weighted pooling*, the exact
    expectation of the training output over the masks for non-negative activations (after a ReLU).  With the
    window sorted, :math:`a_{(1)} \le \dots \le a_{(K)}`, the :math:`i`-th smallest value is the output when it is
    kept and the :math:`K - i` larger ones are dropped:

    .. math:: \mathbb E_m[y] = \sum_{i=1}^{K} (1 - p)\, p^{K - i}\, a_{(i)} .

    ``test_rule="scaled"``: the max scaled by the keep probability, :math:`(1 - p) \max_k a_k`, as Thevenot's
    survey "12 Main Dropout Methods" (Towards Data Science, 2020) writes it.  It is not the expectation: for the window :math:`(1, 2, 3, 4)` and
    :math:`p = 0.5` the expectation is :math:`0.5 \cdot 4 + 0.25 \cdot 3 + 0.125 \cdot 2 + 0.0625 \cdot 1 =
    3.0625`, the scaled max :math:`2` (``tests/test_pooling.py`` checks both).

``avgpool-dropout``
    The same mask before average pooling, inverted (kept values scaled by :math:`1 / (1 - p)`, so the mask has mean
    one): :math:`y = \frac1K \sum_k a_k m_k / (1 - p)`.  The average is linear, so its expectation is the plain
    average: at test time nothing changes.

``stochastic-pooling``
    Zeiler & Fergus (2013), "Stochastic pooling for regularization of deep convolutional neural networks" (ICLR):
    one element of each window drawn with probability proportional to its (non-negative) activation,

    .. math:: p_k = \frac{a_k}{\sum_j a_j},\qquad y = a_l,\quad l \sim \mathrm{Categorical}(p);

    at test time their probabilistic weighting :math:`y = \sum_k p_k a_k`, the expectation of the training output.
    The law of :math:`l` depends on the activations, which the guide cannot see; as for ``standout`` the site both
    sides share is a uniform threshold :math:`t \sim U(0, 1)` per window, and :math:`l` is the index at which the
    cumulative :math:`\sum_{j \le l} p_j` first exceeds :math:`t`: exactly the Categorical law.  Activations must be
    non-negative (after a ReLU, as in the paper); negative values get probability 0, and a window without a
    positive value outputs 0.

``max-drop``
    The Max-Drop of Park & Kwak (2016), "Analysis on the dropout effect in convolutional neural networks" (ACCV), as
    Thevenot's survey (2020) gives it: Gaussian noise on the window before the max.  The survey writes the mask as
    :math:`M \sim \mathcal N(\mu, \sigma^2)` and the test-time rule as :math:`(1 - \mu) \max`; the two agree only if
    :math:`M` is the fraction dropped, so the multiplier here is :math:`1 - M \sim \mathcal N(1 - \mu, \sigma^2)`:

    .. math:: y = \max_k\, (1 - M_k)\, a_k;\qquad \text{test: } (1 - \mu) \max_k a_k,

    the posterior mean of the multiplier.  Defaults :math:`\mu = 0.02`, :math:`\sigma^2 = 0.05`.  The rule is the
    survey's, not the expected training output: the max of noisy values exceeds it on average (a window
    :math:`(1, 2, 3, 4)` at the defaults: :math:`\mathbb E \max_k (1 - M_k) a_k = 4.04` against 3.92); ``rule="mc"``
    averages the real thing.  Park & Kwak's own abstract describes a different Max-Drop, one that drops the
    activations of highest value across a feature map or across the channels; their paper is not among this
    project's sources, and what is here is the survey's method.

The keep probability each reports (``bd.dropout_rates``, one value for every feature map: pooling layers do not know
their channels) is :math:`1 - p` for the pooling dropouts, :math:`1 / (1 + \alpha)` with
:math:`\alpha = \sigma^2 / (1 - \mu)^2` for Max-Drop (Gaussian dropout's convention), and 1 for stochastic pooling,
which drops nothing.

Example
-------
>>> net = bd.models.lenet5((1, 8, 8), 10, method=None, pool_method="maxpool-dropout")
>>> bd.predict(model, guide, x, rule="weight-scaling")   # probabilistic weighted pooling
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F

from ..checks import check_range
from ..distributions import FixedNoise
from . import register
from .base import Capabilities, LayerGuide, Method, site_param

__all__ = ["PoolDropout", "MaxPoolDropout", "AvgPoolDropout", "StochasticPooling", "MaxDrop", "max_weights"]


def max_weights(windows: torch.Tensor, multiplier: torch.Tensor | float = 1.0) -> torch.Tensor:
    r"""The window weights of :math:`\max_k z_k a_k` for windows ``a`` ``(..., K)`` and a multiplier ``z``
    (broadcastable): :math:`z` at the maximum of :math:`z \circ a`, 0 elsewhere, so that
    :math:`\sum_k w_k a_k = \max_k z_k a_k` (also when the maximum is a dropped element of a window with negative
    values: its weight is 0, the output 0)."""
    scaled = windows * multiplier
    onehot = F.one_hot(scaled.argmax(-1), windows.shape[-1]).to(windows.dtype)
    return onehot * multiplier


class PoolDropout(Method):
    """Base of the pool methods: a per-example draw (``draw``: the site's name; one per element of every window, or
    per window with ``per_window``) with one law in model and guide (KL 0), and the window weights computed from the
    windows and the draw.  A subclass gives :meth:`law`,
    :meth:`train_weights`, :meth:`pool_test_weights` and :meth:`keep_prob`."""

    draw = "mask"
    per_window = False  # one draw per window (else one per element of every window)
    capabilities = Capabilities(analytic_kl=True, sites=frozenset({"pool"}), pools=frozenset({"max"}))

    def law(self, layer, site, like: torch.Tensor) -> dist.TorchDistribution:
        """The law of one example's draw (event shape the draw's, no batch shape)."""
        raise NotImplementedError

    def train_weights(self, windows: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        """The window weights of a training draw ``draw`` (one example's shape, with the batch axis)."""
        raise NotImplementedError

    def init_guide(self, layer) -> LayerGuide:
        return LayerGuide()  # nothing to learn: the draws' law is fixed

    def weight_model(self, layer, site):
        raise NotImplementedError(f"{type(self).__name__} acts on pool sites only")

    def weight_guide(self, layer, site, params, plate):
        raise NotImplementedError(f"{type(self).__name__} acts on pool sites only")

    # -- a pool site: prior (model) and guide, side by side -------------------------------------------------------
    def pool_model(self, layer, site, windows):
        if not self.stochastic:
            return self.pool_test_weights(site, windows)
        like = windows[..., 0] if self.per_window else windows  # the shape of one example's draw, batched
        z = layer.sample_local(site_param(site.name, self.draw), self.law(layer, site, layer.like), like)
        if getattr(z, "_bayesdrop_posterior_mean", False):  # the deterministic test-time network
            return self.pool_test_weights(site, windows)
        return self.train_weights(windows, z)

    def pool_guide(self, layer, site, params, plate):
        if self.stochastic:
            with plate:
                pyro.sample(layer.site(site_param(site.name, self.draw)), self.law(layer, site, layer.like))


def _bernoulli_mask(layer, site, like: torch.Tensor, p: float, scale: float = 1.0) -> FixedNoise:
    """A Bernoulli(1 - p) mask per element of one example's windows, times ``scale``."""
    base = dist.Bernoulli(like.new_full((), 1.0 - p).expand(layer.draw_shape(site)))
    return FixedNoise(base, ("bernoulli", p), scale=scale).to_event(len(base.batch_shape))


@register("maxpool-dropout")
class MaxPoolDropout(PoolDropout):
    r"""Max-pooling dropout (Wu & Gu 2015): :math:`\max_k m_k a_k`, :math:`m_k \sim \mathrm{Bernoulli}(1 - p)`.

    Sites of a pool site ``pool``: ``mask`` (one per element of every window, ``(C, *out, K)`` per example, in model
    and guide).

    Parameters
    ----------
    p : float
        Drop probability of each element of a window, in [0, 1).
    test_rule : {"probabilistic", "scaled"}
        The deterministic test-time rule: probabilistic weighted pooling (the expectation over the masks) or the
        max scaled by :math:`1 - p`.
    """

    reference = "Wu & Gu 2015 (Neural Networks 71)"
    TEST_RULES = ("probabilistic", "scaled")

    def __init__(self, p: float = 0.5, test_rule: str = "probabilistic"):
        self.p = check_range("p", p, 0.0, 1.0, hi_open=True)
        self.test_rule = test_rule

    @property
    def test_rule(self) -> str:
        """The deterministic test-time rule; it may be changed on a trained network (every layer sharing this
        method object follows)."""
        return self._test_rule

    @test_rule.setter
    def test_rule(self, rule: str) -> None:
        if rule not in self.TEST_RULES:
            raise ValueError(f"`test_rule` must be one of {self.TEST_RULES}, got {rule!r}")
        self._test_rule = rule

    @property
    def stochastic(self) -> bool:
        return self.p > 0

    def law(self, layer, site, like):
        return _bernoulli_mask(layer, site, like, self.p)

    def train_weights(self, windows, draw):
        return max_weights(windows, draw)

    def pool_test_weights(self, site, windows):
        if self.test_rule == "scaled":
            return max_weights(windows, 1.0 - self.p)
        # probabilistic weighted pooling: the element with r larger ones in its window has weight (1 - p) p^r
        k = windows.shape[-1]
        order = torch.argsort(windows, dim=-1, descending=True, stable=True)
        by_rank = (1.0 - self.p) * torch.pow(windows.new_full((), self.p), torch.arange(k, device=windows.device))
        return torch.empty_like(windows).scatter_(-1, order, by_rank.to(windows.dtype).expand(windows.shape))

    def keep_prob(self, layer, params, site=None):
        """The keep probability :math:`1 - p` of an element of a window (one value: every feature map)."""
        return layer.like.new_full((self.rate_units(layer, site),), 1.0 - self.p)


@register("avgpool-dropout")
class AvgPoolDropout(PoolDropout):
    r"""Average-pooling dropout: :math:`\frac1K \sum_k a_k m_k / (1 - p)`, :math:`m_k \sim \mathrm{Bernoulli}(1 -
    p)`; the plain average at test time.

    Parameters
    ----------
    p : float
        Drop probability of each element of a window, in [0, 1).
    """

    reference = "Wu & Gu 2015 (Neural Networks 71)"
    capabilities = Capabilities(analytic_kl=True, sites=frozenset({"pool"}), pools=frozenset({"avg"}))

    def __init__(self, p: float = 0.5):
        self.p = check_range("p", p, 0.0, 1.0, hi_open=True)

    @property
    def stochastic(self) -> bool:
        return self.p > 0

    def law(self, layer, site, like):
        return _bernoulli_mask(layer, site, like, self.p, scale=1.0 / (1.0 - self.p))

    def train_weights(self, windows, draw):
        return draw / windows.shape[-1]

    def pool_test_weights(self, site, windows):
        return windows.new_full((), 1.0 / windows.shape[-1]).expand(windows.shape)

    def keep_prob(self, layer, params, site=None):
        """The keep probability :math:`1 - p` of an element of a window (one value: every feature map)."""
        return layer.like.new_full((self.rate_units(layer, site),), 1.0 - self.p)


@register("stochastic-pooling")
class StochasticPooling(PoolDropout):
    r"""Stochastic pooling (Zeiler & Fergus 2013): one element per window, drawn with probability
    :math:`a_k / \sum_j a_j`; the probability-weighted sum :math:`\sum_k p_k a_k` at test time.

    Sites of a pool site ``pool``: ``threshold`` (:math:`U(0, 1)`, one per window, ``(C, *out)`` per example, in
    model and guide).  No hyper-parameters.
    """

    reference = "Zeiler & Fergus 2013 (ICLR)"
    draw, per_window = "threshold", True
    capabilities = Capabilities(analytic_kl=True, sites=frozenset({"pool"}), pools=frozenset({"max", "avg"}))

    def law(self, layer, site, like):
        shape = layer.draw_shape(site)[:-1]  # one threshold per window
        base = dist.Uniform(like.new_zeros(()), like.new_ones(())).expand(shape)
        return FixedNoise(base, ("uniform",)).to_event(len(shape))

    @staticmethod
    def probabilities(windows: torch.Tensor) -> torch.Tensor:
        r""":math:`p_k = a_k^+ / \sum_j a_j^+` per window ``(..., K)`` (0 in a window without a positive value)."""
        positive = windows.clamp_min(0)
        total = positive.sum(-1, keepdim=True)
        return positive / torch.where(total > 0, total, torch.ones_like(total))

    def train_weights(self, windows, draw):
        positive = windows.clamp_min(0)
        cum = positive.cumsum(-1)
        total = cum[..., -1:]
        cdf = cum / torch.where(total > 0, total, torch.ones_like(total))  # its last entry exactly 1
        # the element l with cdf[l - 1] <= t < cdf[l]: the number of cdf entries <= t (empty for p_l = 0)
        index = (cdf <= draw.unsqueeze(-1)).sum(-1).clamp_max(windows.shape[-1] - 1)
        return F.one_hot(index, windows.shape[-1]).to(windows.dtype) * (total > 0).to(windows.dtype)

    def pool_test_weights(self, site, windows):
        return self.probabilities(windows)

    def keep_prob(self, layer, params, site=None):
        """1: stochastic pooling drops no element, it chooses one (one value: every feature map)."""
        return layer.like.new_ones((self.rate_units(layer, site),))


@register("max-drop")
class MaxDrop(PoolDropout):
    r"""Max-Drop (Park & Kwak 2016): :math:`\max_k (1 - M_k) a_k`, :math:`M_k \sim \mathcal N(\mu, \sigma^2)`;
    :math:`(1 - \mu) \max_k a_k` at test time.

    Sites of a pool site ``pool``: ``noise`` (the multiplier :math:`1 - M`, one per element of every window, in model
    and guide).

    Parameters
    ----------
    mu : float
        Mean of the dropped fraction :math:`M`, in [0, 1).
    sigma2 : float
        Its variance, > 0.
    """

    reference = "Park & Kwak 2016 (ACCV)"
    draw = "noise"

    def __init__(self, mu: float = 0.02, sigma2: float = 0.05):
        self.mu = check_range("mu", mu, 0.0, 1.0, hi_open=True)
        self.sigma2 = check_range("sigma2", sigma2, 0.0, math.inf, lo_open=True, hi_open=True)

    def law(self, layer, site, like):
        one = like.new_ones(())
        base = dist.Normal(one * (1.0 - self.mu), one * math.sqrt(self.sigma2)).expand(layer.draw_shape(site))
        return FixedNoise(base, ("gaussian", 1.0 - self.mu, self.sigma2)).to_event(len(base.batch_shape))

    def train_weights(self, windows, draw):
        return max_weights(windows, draw)

    def pool_test_weights(self, site, windows):
        return max_weights(windows, 1.0 - self.mu)

    def keep_prob(self, layer, params, site=None):
        r""":math:`1 / (1 + \alpha)`, :math:`\alpha = \sigma^2 / (1 - \mu)^2` (one value: every feature map)."""
        alpha = self.sigma2 / (1.0 - self.mu) ** 2
        return layer.like.new_full((self.rate_units(layer, site),), 1.0 / (1.0 + alpha))
