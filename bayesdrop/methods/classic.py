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
    :math:`s = \sqrt{1-p}\,/\,l`; their decay of the biases,
    :math:`\lambda \lVert b \rVert^2`, is left out: biases are point
    estimates without a prior here, as in Kingma et al. 2015.  The default :math:`s = 1` is
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

from ..checks import check_range
from ..distributions import FixedNoise
from . import register
from .base import INPUT_MIN_FEATURES, Capabilities, Method, PointWeights

__all__ = ["BernoulliDropout", "GaussianDropout", "FixedRate", "INPUT_P", "input_rate"]

INPUT_P = 0.2  #: drop rate of input units recommended by Srivastava et al. (2014), sec. A.4; hidden units: 0.5


def input_rate(in_features: int) -> float:
    """The drop rate of a fixed-rate method on a network's ``in_features`` inputs: :data:`INPUT_P` (Srivastava et
    al. 2014) with at least :data:`~bayesdrop.methods.base.INPUT_MIN_FEATURES` inputs, else 0 (see
    :meth:`~bayesdrop.methods.Method.input_layer`)."""
    return INPUT_P if in_features >= INPUT_MIN_FEATURES else 0.0


class FixedRate(PointWeights):
    """Fixed-rate noise on the noise sites, with the guide's noise law equal to the prior's (KL 0), and
    point-estimate weights with a Gaussian prior.  A subclass gives :meth:`noise_law`."""

    capabilities = Capabilities(analytic_kl=True, lrt=False, structured=False, learns_rates=False)

    def noise_law(self, layer, site, like) -> FixedNoise:
        """The noise's law for one example (empty batch shape, event shape ``layer.draw_shape(site)``)."""
        raise NotImplementedError

    def noise_model(self, layer, site, x):
        if not self.stochastic:
            return None
        return layer.sample_local(site.name, self.noise_law(layer, site, x), x)

    def noise_guide(self, layer, site, params, plate):
        if self.stochastic:
            with plate:
                pyro.sample(layer.site(site.name), self.noise_law(layer, site, layer.like))


@register("bernoulli")
class BernoulliDropout(FixedRate):
    r"""Standard (Bernoulli) dropout with drop probability ``p``, inverted (kept inputs scaled by
    :math:`1/(1-p)`); MC dropout.

    Sites: the weights (``N(0, s^2)`` prior, Delta guide) and ``noise``, :math:`z / (1 - p)` with
    :math:`z \sim \mathrm{Bernoulli}(1 - p)` per element of the layer's input, in model and guide.

    On the inputs of linear regression this dropout is L2 regularisation with one coefficient per feature (Wager
    et al. 2013; Goodfellow et al. 2016, sec. 7.12).  Each multiplier :math:`m_{ij} / (1 - p)`, with
    :math:`m_{ij} \sim \mathrm{Bernoulli}(1 - p)` (the :math:`z` above), has mean 1 and variance
    :math:`p / (1 - p)`, so for data :math:`X` (rows :math:`x_i`), targets :math:`y` and weights :math:`w`

    .. math::
        \sum_i \mathbb E_{m_i} \Big(y_i - \frac{(x_i \circ m_i)^\top w}{1 - p}\Big)^2
        = \lVert y - X w \rVert^2 + \frac{p}{1 - p} \sum_j (X^\top X)_{jj}\, w_j^2 :

    the expected squared error of the dropped-out model is the squared error of the plain model plus a ridge
    penalty that weighs feature :math:`j` by :math:`\sum_i x_{ij}^2` (:math:`n` times its variance, for a centred
    feature).  For deep networks dropout is not equivalent to weight decay.  ``tests/test_wager.py`` checks the
    identity by exact enumeration of the masks, with this method's noise law and layer.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1); ``p = 0`` is a network without dropout (MAP under the Gaussian prior).
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

    def noise_law(self, layer, site, like):
        base = dist.Bernoulli(like.new_full((), 1.0 - self.p).expand(layer.draw_shape(site)))  # one law, not two
        # inverted dropout: the multiplier z / (1 - p) has mean 1
        return FixedNoise(base, ("bernoulli", self.p), scale=1.0 / (1.0 - self.p)).to_event(len(base.batch_shape))

    def input_layer(self, in_features: int) -> BernoulliDropout:
        """The method of a network's first layer: ``p = 0.2`` (Srivastava et al. 2014), ``p = 0`` for fewer than
        :data:`~bayesdrop.methods.base.INPUT_MIN_FEATURES` inputs (see :meth:`Method.input_layer`)."""
        return self.replace(p=input_rate(in_features))  # type: ignore[return-value]

    def keep_prob(self, layer, params, site=None):
        return layer.like.new_full((self.rate_units(layer, site),), 1.0 - self.p)


@register("gaussian")
class GaussianDropout(FixedRate):
    r"""Gaussian multiplicative noise :math:`\xi \sim \mathcal N(1, \alpha)` on the noise sites.

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

    def noise_law(self, layer, site, like):
        one = like.new_ones(())
        base = dist.Normal(one, one * math.sqrt(self.alpha)).expand(layer.draw_shape(site))
        return FixedNoise(base, ("gaussian", self.alpha)).to_event(len(base.batch_shape))

    def keep_prob(self, layer, params, site=None):
        return layer.like.new_full((self.rate_units(layer, site),), 1.0 / (1.0 + self.alpha))

    def input_layer(self, in_features: int) -> Method:
        """The method of a network's first layer: ``alpha = 0.2 / 0.8``, Bernoulli's input rate in variance;
        no noise (``bernoulli`` with ``p = 0``) for fewer than :data:`~bayesdrop.methods.base.INPUT_MIN_FEATURES`
        inputs (see :meth:`Method.input_layer`)."""
        if in_features < INPUT_MIN_FEATURES:
            from . import get

            return get("bernoulli", p=0.0, prior_scale=self.prior_scale)
        return self.replace(alpha=INPUT_P / (1.0 - INPUT_P))
