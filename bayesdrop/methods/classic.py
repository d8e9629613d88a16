r"""Classic dropout with fixed rates: Bernoulli (standard / MC) and Gaussian dropout.

``bernoulli``
    Hinton et al. (2012); Srivastava et al. (2014), JMLR 15; as Bayesian
    inference: Gal & Ghahramani (2016), "Dropout as a Bayesian approximation".
    Each layer drops its *input* units and rescales the kept ones by
    :math:`1/(1-p)` (inverted dropout, as ``torch.nn.Dropout``), so that the
    noise has mean 1 and :math:`W = M\,\mathrm{diag}(z) / (1-p)`:

    .. math::
        \text{model: } M \sim \mathcal N(0, s^2 I),\quad z_{bi} \sim \mathrm{Bernoulli}(1-p);\qquad
        \text{guide: } q(M) = \delta_{\hat M},\quad q(z) = \mathrm{Bernoulli}(1-p).

    KL(q(z) || p(z)) = 0 and KL(delta || N(0, s^2)) = -log N(M; 0, s^2), so the
    ELBO per training example is the dropout objective with weight decay

    .. math:: \lambda \lVert \hat M \rVert^2,\qquad \lambda = \frac{1}{2 N s^2}

    added to the mean log loss (``torch.optim``'s ``weight_decay`` is
    :math:`2\lambda`).  In Gal & Ghahramani's terms (prior length-scale
    :math:`l`, their weights :math:`M_{\mathrm{Gal}} = \hat M / (1-p)` without
    the rescaling, :math:`\lambda_{\mathrm{Gal}} = l^2 (1-p) / (2N\tau)` with
    :math:`\tau = 1` for classification) the same objective has
    :math:`s = \sqrt{1-p}\,/\,l`.  The default :math:`s = 1` is
    :math:`\lambda = 3.5 \cdot 10^{-4}` on the 1437 training digits and
    :math:`8 \cdot 10^{-6}` on MNIST's 60000: the range of weight decays used
    with dropout.  Without the rescaling the same prior penalised the function
    :math:`1/(1-p)^2 = 4` times harder at p = 0.5, which cost about 2 points on
    digits against ``torch.nn.Dropout`` (``docs/defaults.md``).  Test time:
    Monte Carlo averaging of the predictive (MC dropout), or the weight-scaling
    rule (Goodfellow et al., Deep Learning, eq. 7.54-7.66), which with the
    rescaling is the network at :math:`\hat M` itself.

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
from .base import INPUT_MIN_FEATURES, LayerGuide, Method, check_range, gaussian_weight_prior

__all__ = ["BernoulliDropout", "GaussianDropout", "INPUT_P"]

INPUT_P = 0.2  # drop rate of input units recommended by Srivastava et al. (2014), sec. A.4; hidden units: 0.5


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
            noise = layer.sample_local("noise", layer.fixed("noise", x, lambda: self._noise(x, layer)), x)
            x = x * self._scale_noise(noise)
        return layer.op(x, w)

    def _scale_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """The multiplier of the inputs from a noise draw (mean 1)."""
        return noise

    def guide(self, layer, params, plate):
        w = params.weight
        pyro.sample(layer.site("weight"), dist.Delta(w, event_dim=layer.weight_event_dim))
        if self.stochastic:
            with plate:
                pyro.sample(layer.site("noise"), layer.fixed("noise", w, lambda: self._noise(w, layer)))

    def point_weights(self, layer, params, threshold=None):
        """Fixed-rate dropout prunes nothing; the noise has mean 1, so the test-time weights are ``M``."""
        w = params.weight
        return w, torch.ones_like(w, dtype=torch.bool)

    def mean_forward(self, layer, params, x):
        return layer.op(x, params.weight)

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

    def _scale_noise(self, noise):
        return noise * (1.0 / (1.0 - self.p))  # inverted dropout: kept inputs scaled by 1 / (1 - p)

    def input_layer(self, in_features: int) -> BernoulliDropout:
        """The method of a network's first layer: ``p = 0.2`` (Srivastava et al. 2014), ``p = 0`` for fewer than
        :data:`~bayesdrop.methods.base.INPUT_MIN_FEATURES` inputs (see :meth:`Method.input_layer`)."""
        return self.replace(p=INPUT_P if in_features >= INPUT_MIN_FEATURES else 0.0)

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

    def input_layer(self, in_features: int) -> Method:
        """The method of a network's first layer: ``alpha = 0.2 / 0.8``, Bernoulli's input rate in variance;
        no noise (``bernoulli`` with ``p = 0``) for fewer than :data:`~bayesdrop.methods.base.INPUT_MIN_FEATURES`
        inputs (see :meth:`Method.input_layer`)."""
        if in_features < INPUT_MIN_FEATURES:
            return BernoulliDropout(p=0.0, prior_scale=self.prior_scale)
        return self.replace(alpha=INPUT_P / (1.0 - INPUT_P))
