r"""Standout (Ba & Frey 2013): dropout whose keep probabilities a belief network computes from the input.

For users who want input-adaptive dropout rates.  Ba & Frey (2013), "Adaptive dropout for training deep neural
networks" (NeurIPS), drop hidden unit :math:`j` with a probability computed by a *standout network* from the
layer's input, :math:`m_j \sim \mathrm{Bernoulli}\big(g(\sum_k \pi_{jk} a_k)\big)`, and tie its weights to the
layer's own, :math:`\pi = \alpha W + \beta`, with :math:`g` the logistic sigmoid; at test time each unit is scaled
by its expected mask.  (The paper is not bundled with this package; its equation numbers are not cited.)  In the
form most implementations use, the standout network's pre-activation of unit :math:`j` is
:math:`\alpha u_j + \beta` for the layer's pre-activation :math:`u_j` and output :math:`h_j = f(u_j)`:

.. math:: \pi_j(x) = \sigma(\alpha u_j + \beta),\qquad
          \text{train: } h_j\, m_j,\ m_j \sim \mathrm{Bernoulli}(\pi_j(x));\qquad
          \text{test: } h_j\, \pi_j(x).

Here the mask sits on a noise site, the inputs :math:`a` of the *next* layer, and the keep probability is computed
from the tensor it multiplies, :math:`\pi(a) = \sigma(\alpha a + \beta)`.  For ReLU units this is Ba & Frey's
rule exactly: where :math:`u_j > 0`, :math:`a_j = u_j`; where :math:`u_j \le 0`, :math:`a_j = 0` and the mask
multiplies zero whatever its probability.  For other activations it is another adaptive rule
(``bd.models.mlp`` warns): a tanh unit at :math:`u_j = -2` is kept with :math:`\sigma(\alpha \tanh(-2) + \beta)`,
not :math:`\sigma(-2\alpha + \beta)`.  With :math:`\alpha = 0` it is standard (non-inverted) dropout with keep
probability :math:`\sigma(\beta)`.  The masks are not rescaled: the expected mask is part of the test-time network.

As a Pyro model the mask is a deterministic function of a uniform threshold :math:`t \sim U(0, 1)^{\text{units}}`
per example, :math:`m = \mathbb 1[t < \pi(a)]`, which has exactly the law above; the threshold's guide is the same
uniform (KL 0), so the ELBO is Ba & Frey's training objective with weight decay from the Gaussian prior on the
weights (point estimates, as ``bernoulli``).  Their tied standout network receives no gradient through the masks,
as here.  The weight-scaling rule (``bd.predict(..., rule="weight-scaling")``) is the expected mask
:math:`\pi(a)`; ``"mc"`` averages over masks.  The keep probabilities of given inputs:
:func:`keep_probabilities`.

Example
-------
>>> net = bd.models.mlp(64, [300, 100], 10, "standout", alpha=1.0, beta=0.0)
>>> bd.methods.standout.keep_probabilities(model, guide, x)   # {layer: (N, units)}
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import pyro.distributions as dist
import torch

from ..checks import check_range
from ..distributions import FixedNoise
from ..moments import Moments
from . import register
from .base import Capabilities, Method, PointWeights, require_per_element_noise, site_param
from .classic import input_rate

__all__ = ["Standout", "keep_probabilities"]


@register("standout")
class Standout(PointWeights):
    r"""Standout: a mask per unit with keep probability :math:`\sigma(\alpha a + \beta)` of the unit's value ``a``.

    Sites of a noise site ``noise``: ``threshold`` (:math:`U(0, 1)` per element, one draw per example, in model
    and guide); the multiplier is :math:`\mathbb 1[t < \sigma(\alpha a + \beta)]`.  Weights: prior
    :math:`\mathcal N(0, s^2)`, Delta guide.

    Parameters
    ----------
    alpha : float
        Scale of the unit's value in the belief network (Ba & Frey's :math:`\alpha`; 0 gives standard dropout).
    beta : float
        Bias of the belief network (:math:`\beta`): the keep probability of a unit at zero is
        :math:`\sigma(\beta)`.
    prior_scale : float
        Standard deviation ``s`` of the Gaussian prior on the weights (> 0).
    """

    reference = "Ba & Frey 2013 (NeurIPS)"
    capabilities = Capabilities(analytic_kl=True, lrt=False, structured=False, learns_rates=False, input_dependent=True)

    def __init__(self, alpha: float = 1.0, beta: float = 0.0, prior_scale: float = 1.0):
        self.alpha = check_range("alpha", alpha, -math.inf, math.inf, lo_open=True, hi_open=True)
        self.beta = check_range("beta", beta, -math.inf, math.inf, lo_open=True, hi_open=True)
        self.prior_scale = check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True)

    def input_layer(self, in_features: int) -> Method:
        """The method of a network's first layer: standard dropout of the inputs (``bernoulli``, ``p = 0.2`` with at
        least 64 inputs, none below; :func:`~bayesdrop.methods.classic.input_rate`).  Ba & Frey apply standout to
        hidden units; a belief network over raw pixels would keep bright pixels and drop dark ones."""
        from . import get

        return get("bernoulli", p=input_rate(in_features), prior_scale=self.prior_scale)

    def check_layer(self, layer) -> None:
        super().check_layer(layer)
        require_per_element_noise(layer, "standout draws one mask per element from that element's value")

    def belief(self, a: torch.Tensor) -> torch.Tensor:
        r""":math:`\sigma(\alpha a + \beta)`, elementwise: the keep probabilities of units with values ``a``."""
        return torch.sigmoid(self.alpha * a + self.beta)

    def _threshold_law(self, shape: tuple[int, ...], like: torch.Tensor) -> dist.TorchDistribution:
        base = dist.Uniform(like.new_zeros(()), like.new_ones(())).expand(shape)
        return FixedNoise(base, ("uniform",)).to_event(len(shape))

    # -- a noise site: prior (model) and guide, side by side ------------------------------------------------------
    def noise_model(self, layer, site, x):
        if isinstance(x, Moments):
            raise TypeError("standout's masks depend on the values they multiply, which fast dropout does not draw")
        shape = layer.draw_shape(site)
        if tuple(x.shape[x.dim() - len(shape) :]) != shape:
            raise ValueError(
                f"standout needs one mask per element of the tensor it multiplies, {tuple(x.shape[1:])}; "
                f"the layer's noise has shape {shape}"
            )
        t = layer.sample_local(site_param(site.name, "threshold"), self._threshold_law(shape, layer.like), x)
        keep = self.belief(x)
        if getattr(t, "_bayesdrop_posterior_mean", False):  # the weight-scaling rule: the expected mask
            return keep
        return (t < keep).to(x.dtype)

    def noise_guide(self, layer, site, params, plate):
        with plate:
            law = self._threshold_law(layer.draw_shape(site), layer.like)
            pyro.sample(layer.site(site_param(site.name, "threshold")), law)

    def keep_prob(self, layer, params, site=None):
        r"""The keep probability of a unit at value zero, :math:`\sigma(\beta)`, per unit (those of given inputs:
        :func:`keep_probabilities`)."""
        return layer.like.new_full((self.rate_units(layer, site),), 1.0 / (1.0 + math.exp(-self.beta)))


@torch.no_grad()
def keep_probabilities(model: torch.nn.Module, guide: Any, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""The keep probabilities :math:`\sigma(\alpha a + \beta)` of every standout layer's units for inputs ``x``,
    in the test-time network (the weight-scaling rule): ``{layer name: (N, units)}``.

    Parameters
    ----------
    model : bd.Likelihood
        A model whose network has standout layers.
    guide : bd.DropoutGuide
        Its guide.
    x : torch.Tensor
        Inputs ``(N, ...)``.
    """
    if getattr(guide, "model", None) is not model:
        raise ValueError("`guide` must be the DropoutGuide built for `model`")
    layers = [(n, m) for n, m, _ in guide.pairs() if isinstance(m.method, Standout)]
    if not layers:
        raise ValueError("`model` has no standout layer")
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args, name=n: seen.__setitem__(name, mod.method.belief(args[0])))
        for n, m in layers
    ]
    try:
        guide.mean_network()(x)
    finally:
        for h in hooks:
            h.remove()
    return {n: seen[n] for n, _ in layers}
