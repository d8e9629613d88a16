r"""Concrete dropout: the drop rate of each layer learned through a relaxed Bernoulli mask.

Gal, Hron & Kendall (2017), "Concrete Dropout", NIPS (arXiv:1705.07832).  For users who want dropout's Monte Carlo
uncertainty without a grid search over the drop probability: each noise site of a layer has one drop rate
:math:`p`, a variational parameter trained with the weights, and the mask is the Concrete (relaxed Bernoulli)
relaxation of inverted dropout, so that :math:`p` gets a pathwise gradient.

>>> data = bd.data.load("digits")
>>> model = bd.Classifier(bd.models.mlp(64, [300, 100], 10, method="concrete"), num_data=len(data.train))
>>> guide = bd.DropoutGuide(model)
>>> bd.fit(model, guide, data.train, epochs=100)
>>> {name: 1 - keep[0].item() for name, keep in bd.dropout_rates(model, guide).items()}  # the learned p per layer

The paper's objective
---------------------
Each layer drops its *input* units, :math:`W = \mathrm{diag}(z)\,W_{\mathrm{Gal}}` with
:math:`z_k \sim \mathrm{Bernoulli}(1 - p)`, under the prior :math:`W \sim \mathcal N(0, l^{-2} I)` (length-scale
:math:`l`).  The loss minimised (their eq. 1, times the number of training points :math:`N`, whose
:math:`1/N` the minibatch scaling :math:`N / B` of the likelihood replaces) is

.. math::
    -\sum_{n=1}^{N} \log p(y_n \mid x_n, \omega_n)
    + \sum_{\text{layers}} \Big[\frac{l^2 (1 - p)}{2} \lVert W_{\mathrm{Gal}} \rVert^2 - K\,H(p)\Big],
    \qquad H(p) = -p\log p - (1 - p)\log(1 - p),

the bracket being the KL of the Bernoulli-mixture approximating distribution (their eq. 3, with the entropy of
eq. 4, up to a constant), :math:`K` the number of Bernoulli variables the layer draws per example (its input units
for a ``Linear``; input elements, or channels for per-channel noise, in a convolution: ``x[0].numel()`` in the
authors' code), and each example's mask drawn relaxed (eq. 5),

.. math::
    \tilde z = \operatorname{sigmoid}\Big(\frac{1}{t}\big(\log(1 - p) - \log p + \log u - \log(1 - u)\big)\Big),
    \qquad u \sim \mathrm{Uniform}(0, 1),\ t = 0.1.

With inverted scaling (kept inputs scaled by :math:`1/(1 - p)`, as ``bernoulli`` and the authors' code do) the
point-estimate weights are :math:`M = (1 - p)\,W_{\mathrm{Gal}}` and the bracket reads

.. math::
    \frac{l^2 \lVert M \rVert^2}{2 (1 - p)} - K\,H(p),

the authors' regulariser ``weight_regularizer * sum(M**2) / (1 - p) + dropout_regularizer * K * (p log p + (1 - p)
log(1 - p))`` with ``weight_regularizer = l**2 / (2 N)`` and ``dropout_regularizer = 1 / N`` relative to the mean
negative log-likelihood.  Their documentation writes ``l**2 / (tau N)`` and ``2 / (tau N)`` for a Euclidean loss
(twice the Gaussian negative log-likelihood, of precision :math:`\tau`) and drops the 2 for the cross-entropy: the
same KL, weighted 1.  So the Bayesian objective has no regulariser weights to choose, only the prior length-scale
:math:`l` (``length_scale``); the likelihood's own noise plays :math:`\tau`.

The model and guide, and why their ELBO is that objective
---------------------------------------------------------
Sites per layer, named with ``layer.site``: ``p`` (the drop rate of the ``noise`` site, global, a scalar),
``noise`` (the mask, one draw per example, in the data plate), ``keep`` (the keep fraction :math:`\kappa` in the
prior of the weights on whose inputs the noise sits, global, a scalar) and ``weight``:

.. math::
    \text{model: }\; & p \sim \pi_K(p) \propto e^{K H(p)},\quad
      v_n \mid p \sim \mathrm{Concrete}(1 - p, t) / (1 - p),\quad
      \kappa \sim \mathrm{Beta}(\tfrac n2 + 1, 1),\quad M \mid \kappa \sim \mathcal N(0, \kappa\, l^{-2} I);\\
    \text{guide: }\; & q(p) = \delta_{\hat p},\quad q(v_n) = \mathrm{Concrete}(1 - \hat p, t) / (1 - \hat p),\quad
      q(\kappa) = \delta_{1 - \hat p},\quad q(M) = \delta_{\hat M},

with :math:`\hat p = \operatorname{sigmoid}(\texttt{p\_logit})` (the authors' parameterisation) and :math:`n`
the number of weights of :math:`M`.  The guide's mask law is the model's at the same rate (the model's ``p`` is
the guide's draw, replayed), so its KL is exactly 0 (registered for
:class:`~bayesdrop.distributions.ConcreteDropoutMask`): the masks are the Monte Carlo draws of the approximating
distribution, one per example, as in the authors' code.  The point masses give
:math:`\mathrm{KL}(\delta_x \,\|\, \pi) = -\log\pi(x)`:

.. math::
    -\log \pi_K(\hat p) &= -K\,H(\hat p) + K\log 2 + \log Z_K,\\
    -\log \mathrm{Beta}(1 - \hat p;\, \tfrac n2 + 1, 1) &= -\tfrac n2 \log(1 - \hat p) - \log(\tfrac n2 + 1),\\
    -\log \mathcal N(\hat M; 0, (1 - \hat p)\, l^{-2}) &= \frac{l^2 \lVert \hat M\rVert^2}{2 (1 - \hat p)}
      + \tfrac n2 \log(1 - \hat p) + \tfrac n2 \log(2\pi / l^2).

Their sum is the paper's bracket plus the constant

.. math:: C = K \log 2 + \log Z_K + \tfrac n2 \log(2\pi / l^2) - \log(\tfrac n2 + 1)

per layer (:meth:`ConcreteDropout.kl_constant`), where :math:`Z_K = \int_0^1 e^{-K(\log 2 - H(p))}\,dp`
(:func:`~bayesdrop.distributions.entropic_log_normaliser`): the ELBO that ``bd.fit`` maximises
(:class:`bayesdrop.infer.MeanFieldELBO`, equal to ``pyro.infer.TraceMeanField_ELBO``) is minus the paper's loss
minus :math:`\sum C`, every KL in closed form.  Two priors do the bookkeeping, and say what the paper's terms
are in a Bayesian model: the *entropic prior* :math:`\pi_K` on the rate is the mask entropy :math:`-K H(p)`
(it prefers :math:`p = 1/2`, the more strongly the more units), and the Beta prior on :math:`\kappa` makes the
joint prior of :math:`(\kappa, M)` proportional to :math:`\exp(-l^2 \lVert M\rVert^2 / (2\kappa))`, the paper's
weight decay with no :math:`p`-dependent normaliser (a Gaussian prior of variance :math:`(1 - p) l^{-2}` alone
would add :math:`\tfrac n2 \log(1 - p)`, which for the 19 200 weights of a 64-300 layer pushes :math:`p` to 1).
The rate appears twice in the model (``p`` before the layer's input, :math:`\kappa` before its weights) because a
layer's forward samples its noise before its weights; the guide ties them, :math:`\kappa = 1 - \hat p`.  A weight
site with no noise on its inputs keeps the Gaussian prior :math:`\mathcal N(0, l^{-2})` (the bracket at
:math:`p = 0`); a weightless :class:`bayesdrop.nn.Dropout` has the entropy term alone.

The constant is large at the default :math:`l = 10^{-4}`: :math:`\tfrac12 \log(2\pi \cdot 10^8) \approx 10.1`
nats per weight, about 354 nats per training example for the 50 000 weights of the digits 64-300-100-10 MLP, which
``bd.fit``'s ``elbo`` history (the loss per example) carries; it has no gradient.

Defaults (``docs/concrete.md`` has the measurements)
----------------------------------------------------
``temperature = 0.1`` and ``init = 0.1`` as the paper and the authors' code.  ``length_scale = 1e-4``, the
authors' example value: on digits it gave lower test error than :math:`l = 1` at every training-set size tried
(1.1-1.7 % against 1.9-2.5 % on the full set, 2.5-3.9 % against 5.0-5.3 % on a quarter; three seeds); the weight
decay is then negligible and the hidden layers' rates are set by the likelihood against the entropy term.  ``fit_defaults``: no KL warm-up (the paper
uses none) and the rate logits ``p_logit`` at 10 times ``fit``'s learning rate (``lr_scale``): at 1x the rates
were still rising when the learning rate had decayed to 0 after 100 epochs on digits, at 10x they settle within
the first half.

Test time
---------
Monte Carlo averaging of relaxed masks (``bd.predict``'s default), as the authors do, or the weight-scaling rule
(``rule="weight-scaling"``): every input scaled by the mask's exact mean :math:`E[\tilde z]/(1 - p)`, within
:math:`2.1\cdot 10^{-3}` of 1 for :math:`p \le 0.5` at :math:`t = 0.1` (:math:`1.2\cdot 10^{-2}` at :math:`p =
0.9`; :class:`~bayesdrop.distributions.ConcreteDropoutMask`).  :func:`bayesdrop.dropout_rates` reports :math:`1 -
p` per input unit.  Nothing is pruned.

References
----------
Gal, Y., Hron, J. & Kendall, A. (2017). Concrete Dropout. NIPS 30.
Gal, Y. & Ghahramani, Z. (2016). Dropout as a Bayesian approximation. ICML.
Maddison, C. J., Mnih, A. & Teh, Y. W. (2017). The Concrete distribution. ICLR.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pyro
import pyro.distributions as dist
import torch

from ..checks import check_range
from ..distributions import ConcreteDropoutMask, EntropicRate, IsotropicNormal, PowerFunction, entropic_log_normaliser
from ..sites import site_shaped
from . import register
from .base import Capabilities, LayerGuide, PointWeights, TrainingDefaults, site_param

if TYPE_CHECKING:  # pragma: no cover
    from ..sites import Layer, NoiseSite, WeightSite

__all__ = ["ConcreteDropout", "TEMPERATURE", "INIT_P", "LENGTH_SCALE"]

TEMPERATURE = 0.1  # the temperature of the relaxed masks (Gal, Hron & Kendall 2017, sec. 3)
INIT_P = 0.1  # initial drop rate of every layer (the authors' code: init_min = init_max = 0.1)
LENGTH_SCALE = 1e-4  # prior length-scale l (the authors' example code: l = 1e-4); see the module docstring


@register("concrete")
class ConcreteDropout(PointWeights):
    r"""Concrete dropout (Gal, Hron & Kendall 2017): a learned drop rate per noise site, relaxed Bernoulli masks of
    temperature :math:`t`, inverted scaling, point-estimate weights.

    See the module docstring for the objective (eqs. 1, 3-5), the model and guide and why their ELBO is that
    objective up to :meth:`kl_constant`.

    Parameters
    ----------
    temperature : float
        Temperature :math:`t > 0` of the relaxed masks (0.1 in the paper); :math:`t \to 0` is Bernoulli dropout.
    init : float
        Initial drop rate :math:`p \in (0, 1)` of every noise site (0.1, as the authors' code).
    length_scale : float
        Prior length-scale :math:`l > 0`: the weights without rescaling have the prior :math:`\mathcal N(0,
        l^{-2})`, i.e. the authors' ``weight_regularizer = l**2 / (2N)`` relative to the mean negative
        log-likelihood.

    Notes
    -----
    Variational parameters (:class:`~bayesdrop.methods.base.LayerGuide`): the weights, and ``p_logit``
    (:math:`\operatorname{logit} p`, a scalar) per noise site.  Sample sites: ``p`` (global, ``()``), ``noise``
    (local, one draw of the site's per-example shape, e.g. ``(in,)``, ``(C, H, W)`` or ``(C, 1, 1)``), ``keep``
    (global, ``()``) for a weight with noise on its inputs, and the weights (global, e.g. ``(out, in)``).
    """

    reference = "Gal, Hron & Kendall 2017, Concrete Dropout (NIPS; arXiv:1705.07832)"
    capabilities = Capabilities(
        analytic_kl=True, lrt=False, structured=False, learns_rates=True, sites=frozenset({"noise"})
    )
    fit_defaults = TrainingDefaults(kl_warmup=0.0, lr_scale={"p_logit": 10.0})

    def __init__(self, temperature: float = TEMPERATURE, init: float = INIT_P, length_scale: float = LENGTH_SCALE):
        self.temperature = check_range("temperature", temperature, 0.0, math.inf, lo_open=True, hi_open=True)
        self.init = check_range("init", init, 0.0, 1.0, lo_open=True, hi_open=True)
        self.length_scale = check_range("length_scale", length_scale, 0.0, math.inf, lo_open=True, hi_open=True)
        self.prior_scale = 1.0 / self.length_scale  # the prior N(0, l^-2) of weights without noise on their inputs

    # -- the sites' laws ----------------------------------------------------------------------------------------
    @staticmethod
    def noise_on(layer: Layer, site: WeightSite) -> NoiseSite | None:
        """The noise site on the inputs of weight site ``site`` (``None`` if there is none)."""
        found = [s for s in layer.drawn_noise_sites.values() if s.weight == site.name]
        if len(found) > 1:
            raise ValueError(f"concrete: weight site {site.name!r} has several noise sites on its inputs")
        return found[0] if found else None

    @staticmethod
    def units(layer: Layer, site: NoiseSite) -> int:
        """:math:`K`, the number of mask variables the noise site draws per example."""
        return math.prod(layer.draw_shape(site))

    def mask_law(self, layer: Layer, site: NoiseSite, rate: torch.Tensor) -> dist.TorchDistribution:
        """One example's mask at drop rate ``rate`` (0-d): event shape ``layer.draw_shape(site)``."""
        shape = layer.draw_shape(site)
        return ConcreteDropoutMask(rate, self.temperature, shape).to_event(len(shape))

    @staticmethod
    def _keep_prior(like: torch.Tensor, n: int) -> dist.TorchDistribution:
        return PowerFunction(like.new_tensor(n / 2 + 1.0))  # Beta(n / 2 + 1, 1)

    @staticmethod
    def _p_logit(params: LayerGuide, site: NoiseSite) -> torch.Tensor:
        return getattr(params, site_param(site.name, "p_logit"))

    # -- hooks ------------------------------------------------------------------------------------------------
    def init_guide(self, layer: Layer) -> LayerGuide:
        lg = super().init_guide(layer)  # the weights' point estimates
        for w in layer.weight_sites.values():
            self.noise_on(layer, w)  # raises for a weight with several noise sites
        for site in layer.drawn_noise_sites.values():
            logit = torch.full((), math.log(self.init / (1.0 - self.init)), dtype=layer.like.dtype)
            lg.register_parameter(site_param(site.name, "p_logit"), torch.nn.Parameter(logit.to(layer.like.device)))
        return lg

    def noise_model(self, layer: Layer, site: NoiseSite, x: torch.Tensor) -> torch.Tensor:
        rate = pyro.sample(layer.site(site_param(site.name, "p")), EntropicRate(self.units(layer, site), like=x))
        rate = site_shaped(rate, ())  # without the leading singletons pyro.infer.Predictive adds
        return layer.sample_local(site.name, self.mask_law(layer, site, rate), x)

    def noise_guide(self, layer: Layer, site: NoiseSite, params: LayerGuide, plate: pyro.plate) -> None:
        rate = torch.sigmoid(self._p_logit(params, site))
        pyro.sample(layer.site(site_param(site.name, "p")), dist.Delta(rate))
        with plate:  # the model builds its mask law from the p site's value, this very rate: their KL is exactly 0
            pyro.sample(layer.site(site.name), self.mask_law(layer, site, rate))

    def weight_model(self, layer: Layer, site: WeightSite) -> torch.Tensor:
        noise = self.noise_on(layer, site)
        if noise is None:
            return super().weight_model(layer, site)
        like = layer.like
        keep = pyro.sample(layer.site(site_param(site.name, "keep")), self._keep_prior(like, math.prod(site.shape)))
        keep = site_shaped(keep, ())
        return pyro.sample(layer.site(site.name), IsotropicNormal(keep / self.length_scale**2, site.shape))

    def weight_guide(self, layer: Layer, site: WeightSite, params: LayerGuide, plate: pyro.plate) -> None:
        noise = self.noise_on(layer, site)
        if noise is not None:
            keep = torch.sigmoid(-self._p_logit(params, noise))  # 1 - p
            pyro.sample(layer.site(site_param(site.name, "keep")), dist.Delta(keep))
        super().weight_guide(layer, site, params, plate)

    def keep_prob(self, layer: Layer, params: LayerGuide, site: str | None = None) -> torch.Tensor:
        """:math:`1 - p` of noise site ``site`` (the layer's ``noise``), per input unit (Linear) or input channel
        (convolutions)."""
        noise = layer.noise_sites[self.rate_site(layer, site)]
        return torch.sigmoid(-self._p_logit(params, noise)).expand(self.rate_units(layer, noise.name))

    # -- the objective's constant ---------------------------------------------------------------------------
    def kl_constant(self, layer: Layer) -> float:
        r"""The constant :math:`C` that the layer's KL terms add to the paper's regulariser (module docstring):
        :math:`K\log 2 + \log Z_K` per noise site, :math:`\tfrac n2 \log(2\pi/l^2) - \log(\tfrac n2 + 1)` per weight
        site with noise on its inputs, :math:`\tfrac n2 \log(2\pi/l^2)` per weight site without.  Needs the noise
        shapes (run the model once)."""
        total = 0.0
        for site in layer.drawn_noise_sites.values():
            k = self.units(layer, site)
            total += k * math.log(2.0) + entropic_log_normaliser(k)
        for w in layer.weight_sites.values():
            n = math.prod(w.shape)
            total += n / 2 * math.log(2 * math.pi / self.length_scale**2)
            if self.noise_on(layer, w) is not None:
                total -= math.log(n / 2 + 1.0)
        return total
