"""A new dropout method of the common shape, in one file: multiplicative uniform noise.

Each noise site of a layer multiplies its tensor by :math:`z \\sim \\mathrm{Uniform}(1 - a, 1 + a)` (mean 1,
variance :math:`a^2 / 3`), one draw per element and example; the weights are point estimates under a Gaussian
prior (:class:`~bayesdrop.methods.base.PointWeights`).  The guide's noise law is the prior's, so its KL is 0
(``FixedNoise`` registers that).  Prior and guide sit side by side; ``register()`` adds it to the registry, and
then it works in every layer kind (``Linear``, ``Conv1d``, ``Conv2d``, the weightless ``Dropout``, a layer of your
own), with ``fit``, ``predict``, ``to_inference_data`` and ``compress``.

>>> import uniform_noise
>>> uniform_noise.register()
>>> net = bd.models.mlp(64, [100], 10, method="uniform-noise", a=0.5)
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist

import bayesdrop as bd
from bayesdrop.distributions import FixedNoise
from bayesdrop.methods.base import Capabilities, PointWeights, check_range


class UniformNoise(PointWeights):
    """Multiplicative noise :math:`z \\sim U(1 - a, 1 + a)` on a layer's noise sites; ``0 < a <= 1``."""

    reference = "example: uniform multiplicative noise (docs/architecture.md)"
    capabilities = Capabilities(analytic_kl=True, lrt=False, structured=False, learns_rates=False)

    def __init__(self, a: float = 0.5, prior_scale: float = 1.0):
        self.a = check_range("a", a, 0.0, 1.0, lo_open=True)
        self.prior_scale = check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True)

    def _law(self, layer, site, like):
        """One example's noise: event shape ``layer.draw_shape(site)``."""
        base = dist.Uniform(like.new_tensor(1.0 - self.a), like.new_tensor(1.0 + self.a))
        base = base.expand(layer.draw_shape(site))
        return FixedNoise(base, ("uniform", self.a)).to_event(len(base.batch_shape))

    # -- the prior (model) and the guide of a noise site, side by side --------------------------------------
    def noise_model(self, layer, site, x):
        return layer.sample_local(site.name, self._law(layer, site, x), x)

    def noise_guide(self, layer, site, params, plate):
        with plate:
            pyro.sample(layer.site(site.name), self._law(layer, site, layer.like))

    def keep_prob(self, layer, params, site=None):
        """The keep probability of Bernoulli dropout with the same variance, :math:`1 / (1 + a^2 / 3)`, per input
        unit of ``site`` (a recurrent layer has several; ``None``: the layer's first)."""
        return layer.like.new_full((self.rate_units(layer, site),), 1.0 / (1.0 + self.a**2 / 3))


def register() -> None:
    """Register the method as ``"uniform-noise"`` (again after ``bd.methods.unregister``)."""
    bd.methods.register("uniform-noise")(UniformNoise)
