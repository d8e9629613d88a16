r"""Classic dropout with fixed rates: Bernoulli (standard / MC) and Gaussian dropout.

``bernoulli``
    Hinton et al. (2012); Srivastava et al. (2014), JMLR 15; as Bayesian
    inference: Gal & Ghahramani (2016), "Dropout as a Bayesian approximation".
    Each layer drops its *input* units, :math:`W = M\,\mathrm{diag}(z)`:

    .. math::
        \text{model: } w \sim \mathcal N(0, s^2 I),\quad z_{bi} \sim \mathrm{Bernoulli}(1-p);\qquad
        \text{guide: } q(w) = \delta_{M},\quad q(z) = \mathrm{Bernoulli}(1-p).

    KL(q(z) || p(z)) = 0 and KL(delta || N(0, s^2)) = -log N(M; 0, s^2) (weight
    decay), so the ELBO is Gal & Ghahramani's dropout objective.  Test time:
    Monte Carlo averaging of the predictive (MC dropout), or the weight-scaling
    rule (Goodfellow et al., Deep Learning, eq. 7.54-7.66): multiply the inputs
    (equivalently the outgoing weights) by the keep probability ``1 - p``.

``gaussian``
    Srivastava et al. (2014) section 10; Wang & Manning (2013): multiplicative
    noise :math:`\xi \sim \mathcal N(1, \alpha)` on the input units, with fixed
    :math:`\alpha` (``alpha = p / (1 - p)`` matches Bernoulli dropout's
    variance).  No scaling at test time since :math:`E[\xi] = 1`.  Reported keep
    probability :math:`1 / (1 + \alpha)`.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from ..distributions import FixedNoise
from . import register
from .base import LayerGuide, Method, check_range, gaussian_weight_prior

__all__ = ["BernoulliDropout", "GaussianDropout"]


class _FixedNoise(Method):
    """Shared part of fixed-rate methods: Gaussian prior on weights, Delta guide, noise q = p."""

    prior_scale: float

    def init_guide(self, layer) -> LayerGuide:
        lg = LayerGuide()
        lg.weight = torch.nn.Parameter(layer.weight_init.clone())
        return lg

    def _prior(self, like: torch.Tensor, layer) -> dist.Distribution:
        return layer.fixed("prior", like, lambda: gaussian_weight_prior(layer, like, self.prior_scale))

    def _noise(self, like: torch.Tensor, layer) -> dist.Distribution:  # per-example noise, empty batch shape
        raise NotImplementedError

    def model(self, layer, x):
        w = pyro.sample(layer.site("weight"), self._prior(x, layer))
        if self.stochastic:
            x = x * layer.sample_local("noise", layer.fixed("noise", x, lambda: self._noise(x, layer)), x)
        return layer.op(x, w)

    def guide(self, layer, params, plate):
        w = params.weight
        pyro.sample(layer.site("weight"), dist.Delta(w, event_dim=layer.weight_event_dim))
        if self.stochastic:
            with plate:
                pyro.sample(layer.site("noise"), layer.fixed("noise", w, lambda: self._noise(w, layer)))

    def point_weights(self, layer, params, threshold=None):
        """Fixed-rate dropout prunes nothing; the weight-scaling rule folds ``keep`` into W."""
        w = params.weight * self._test_scale()
        return w, torch.ones_like(w, dtype=torch.bool)

    def _test_scale(self) -> float:
        return 1.0

    def mean_forward(self, layer, params, x):
        return layer.op(x * self._test_scale(), params.weight)

    def kl(self, layer, params):
        w = params.weight
        s2 = self.prior_scale**2
        return (0.5 * w.pow(2) / s2 + 0.5 * math.log(2 * math.pi * s2)).sum()


@register("bernoulli")
class BernoulliDropout(_FixedNoise):
    """Standard (Bernoulli) dropout of input units with drop probability ``p``; MC dropout.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1); ``p = 0`` is a network without dropout
        (MAP under the Gaussian prior).
    prior_scale : float
        Standard deviation ``s`` of the Gaussian prior on weights (> 0).
    """

    reference = "Srivastava et al. 2014 (JMLR 15); Gal & Ghahramani 2016 (ICML)"

    def __init__(self, p: float = 0.5, prior_scale: float = 1.0):
        self.p = check_range("p", p, 0.0, 1.0, hi_open=True)
        self.prior_scale = check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True)

    @property
    def stochastic(self) -> bool:
        return self.p > 0

    def _noise(self, like, layer):
        base = dist.Bernoulli(like.new_full((), 1.0 - self.p)).expand(layer.input_event_shape)
        return FixedNoise(base, ("bernoulli", self.p)).to_event(layer.event_dim)

    def _test_scale(self) -> float:
        return 1.0 - self.p

    def keep_prob(self, layer, params):
        return params.weight.new_full(layer.input_event_shape[:1], 1.0 - self.p)


@register("gaussian")
class GaussianDropout(_FixedNoise):
    r"""Gaussian multiplicative noise :math:`\xi \sim \mathcal N(1, \alpha)` on input units.

    Parameters
    ----------
    alpha : float
        Noise variance (> 0); ``alpha = p / (1 - p)`` matches Bernoulli dropout.
    prior_scale : float
        Standard deviation of the Gaussian prior on weights (> 0).
    """

    reference = "Srivastava et al. 2014 (JMLR 15, sec. 10); Wang & Manning 2013 (ICML)"

    def __init__(self, alpha: float = 1.0, prior_scale: float = 1.0):
        self.alpha = check_range("alpha", alpha, 0.0, math.inf, lo_open=True, hi_open=True)
        self.prior_scale = check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True)

    def _noise(self, like, layer):
        one = like.new_ones(())
        base = dist.Normal(one, one * math.sqrt(self.alpha)).expand(layer.input_event_shape)
        return FixedNoise(base, ("gaussian", self.alpha)).to_event(layer.event_dim)

    def keep_prob(self, layer, params):
        return params.weight.new_full(layer.input_event_shape[:1], 1.0 / (1.0 + self.alpha))
