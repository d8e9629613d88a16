r"""Fast dropout (Wang & Manning 2013): Bernoulli dropout integrated out by a Gaussian approximation, without
drawing masks.

For users who want dropout's regularisation with a deterministic training step.  Wang & Manning (2013), "Fast
dropout training" (ICML), observe that a unit's input sum under dropout, :math:`s = \sum_i w_i x_i z_i` with
independent masks, is close to Gaussian (a sum of many independent terms), with the moments over the masks
(inverted masks here, :math:`z_i = m_i / (1 - p)`, :math:`m_i \sim \mathrm{Bernoulli}(1 - p)`, so
:math:`\mathbb E z_i = 1`, :math:`\mathrm{Var}\, z_i = p / (1 - p)`):

.. math::
    \mu_s = \sum_i w_i x_i,\qquad
    \sigma_s^2 = \frac{p}{1 - p} \sum_i w_i^2 x_i^2
    \quad\text{(with a layer's random inputs: }
    \sigma_s^2 = \sum_i w_i^2 \big(\mathrm{Var}\, x_i \tfrac{1}{1-p} + \tfrac{p}{1-p}(\mathbb E x_i)^2\big)\text{)}.

(The paper is not bundled with this package; its equation numbers are not cited.)

The Bayesian model is ``bernoulli``'s (the same prior and guide; its MC and weight-scaling rules hold); only the
*estimator* of the expected log-likelihood changes: instead of drawing masks, the guide's mask sites are marked
for :class:`~bayesdrop.handlers.MomentMatching`, and every layer propagates the mean and variance
(:class:`~bayesdrop.moments.Moments`: ReLU exactly, other activations by Gauss-Hermite quadrature), as Wang &
Manning do for a network's hidden units.  The output's moments enter the likelihood by the unscented transform's
:math:`2d` sigma points (exact for a Gaussian likelihood, second-order for a softmax; Wang & Manning integrate the
output nonlinearity by their own approximations, this is a generic one that serves every ``bd.Likelihood``):

.. math:: \mathbb E_z \log p(y \mid x, z, W) \approx \frac{1}{2d} \sum_{j=1}^{2d} \log p(y \mid f_j),\qquad
          f_{\pm k} = \mu_f \pm \sqrt{d\, \sigma^2_{f,k}}\, e_k.

So a training step draws nothing: its loss and gradient are deterministic functions of the parameters and the
minibatch.  ``bd.fit`` applies the handler; with ``pyro.infer.SVI`` wrap the guide yourself,
``bd.handlers.MomentMatching(training=True)(guide)``: the bare guide draws masks, and SVI then trains ``bernoulli``'s
Monte Carlo objective.  Test time (``bd.predict(..., rule=...)``): ``"moment-matching"``, the same approximation (the sigma
points as the draws of the predictive); ``"mc"`` (real masks) and ``"weight-scaling"`` as for ``bernoulli``.

Example
-------
>>> net = bd.models.mlp(64, [300, 100], 10, "fast-dropout")
>>> bd.fit(model, guide, train)                                  # no mask is drawn
>>> probs = bd.predict(model, guide, x, rule="moment-matching")  # one deterministic pass
"""

from __future__ import annotations

import pyro

from ..moments import Moments
from . import register
from .base import Capabilities, require_per_element_noise
from .classic import BernoulliDropout

__all__ = ["FastDropout"]


@register("fast-dropout")
class FastDropout(BernoulliDropout):
    r"""Fast dropout: ``bernoulli``'s model, trained with the masks integrated out by Gaussian moments.

    Sites: as ``bernoulli`` (``noise`` marked ``infer={"moment_matching": "train"}``).

    Parameters
    ----------
    p : float
        Drop probability of the masks being integrated out, in [0, 1).
    prior_scale : float
        Standard deviation ``s`` of the Gaussian prior on weights (> 0).
    """

    reference = "Wang & Manning 2013 (ICML)"
    capabilities = Capabilities(
        analytic_kl=True,
        lrt=False,
        structured=False,
        learns_rates=False,
        rules=frozenset({"mc", "weight-scaling", "moment-matching"}),
        train_rule="moment-matching",
    )

    def check_layer(self, layer) -> None:
        super().check_layer(layer)
        require_per_element_noise(
            layer, "fast dropout propagates moments of independent terms, which shared draws correlate"
        )
        if any(site.sequence for site in layer.noise_sites.values()):
            raise ValueError(
                f"fast dropout propagates Gaussian moments through feed-forward layers; in {type(layer).__name__}'s "
                "recurrence products of gates are not Gaussian: use another method there (e.g. 'variational-rnn')"
            )

    # -- a noise site: prior (model) and guide, side by side ------------------------------------------------------
    def noise_model(self, layer, site, x):
        z = super().noise_model(layer, site, x.mean if isinstance(x, Moments) else x)
        moments = getattr(z, "_bayesdrop_moments", None)
        return z if moments is None else Moments(*moments)  # under MomentMatching: the mask's mean and variance

    def noise_guide(self, layer, site, params, plate):
        if self.stochastic:
            with plate:
                law = self.noise_law(layer, site, layer.like)
                pyro.sample(layer.site(site.name), law, infer={"moment_matching": "train"})
