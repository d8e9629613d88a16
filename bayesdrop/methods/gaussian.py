r"""Gaussian dropout with learned rates: variational dropout, sparse VD and variational Bayesian dropout.

All three share the Gaussian-dropout posterior of Liu et al. (2019), eq. 4,

.. math::
    q(W) = \prod_{k,d} \mathcal N\big(W_{kd} \mid \theta_{kd},\, \alpha_{kd}\, \theta_{kd}^2\big),

i.e. multiplicative noise :math:`\xi \sim \mathcal N(1, \alpha)` on the weights, and differ in the prior (the model
side) and in how :math:`\alpha` is shared and parameterised.  They are trained with the local reparameterisation
trick (Kingma et al. 2015): under :class:`~bayesdrop.nn.LocalReparameterization` (``bd.fit(..., lrt=True)``, the
default) a layer draws its pre-activations

.. math:: B \sim \mathcal N\big(A\theta,\; (A \circ A)(\alpha \circ \theta \circ \theta)\big)

instead of a weight matrix per minibatch; ``bd.fit(..., lrt=False)``, plain ``pyro.infer.SVI`` and ``Predictive``
sample weights.

``vd`` — variational dropout (Kingma et al. 2015)
    Improper log-uniform prior :math:`p(\log|W_{kd}|) = \text{const}` (Liu et al. eq. 8), one :math:`\alpha` per layer
    (``granularity="layer"``) or per *input* unit / input channel (``granularity="unit"``; shape ``(1, in)`` for
    ``Linear``, ``(1, C, 1, 1)`` for ``Conv2d``), parameterised by :math:`\log\alpha`.  The KL is infinite up to a
    constant; its finite part depends on :math:`\alpha` only and is approximated as in Molchanov et al. (2017):

    .. math::
        -\mathrm{KL}\big(q(W_{kd}) \,\|\, p(W_{kd})\big) \approx k_1\, \mathrm{sigmoid}(k_2 + k_3 \log\alpha)
        - \tfrac12 \log(1 + \alpha^{-1}) - k_1,
        \qquad k_1, k_2, k_3 = 0.63576,\ 1.87320,\ 1.48695,

    with :math:`\log\alpha` clipped to [-10, 10] inside the KL.  Kingma et al. considered only :math:`\alpha \le 1`
    (binary rate :math:`p \le 0.5`; Molchanov et al. 2017, sec. 4.1), which ``max_log_alpha=0`` reproduces; pass
    ``max_log_alpha=None`` to let whole units (or layers) be dropped.

``sparse-vd`` — sparse variational dropout (Molchanov et al. 2017)
    Same prior and KL, one :math:`\alpha` per weight, with the additive reparameterisation: the parameters are
    :math:`(\theta, \log\sigma^2)`, :math:`W = \theta + \sigma\varepsilon`, and
    :math:`\log\alpha = \log\sigma^2 - \log\theta^2`; this decouples the gradient of :math:`\theta` from the noise
    and lowers its variance.  Weights with :math:`\log\alpha > 3` (keep probability below 0.05) are pruned.

``vbd`` — variational Bayesian dropout (Liu et al. 2019)
    The proper hierarchical prior of eq. 11,

    .. math::
        W_{kd} \mid \gamma_{kd} \sim \mathcal N(0, \gamma_{kd}), \qquad \gamma_{kd} \sim \mathrm{Uniform}(a, b),

    with both levels as model sites (:class:`~bayesdrop.distributions.ScalarUniform` and
    :class:`~bayesdrop.distributions.CenteredNormal`, a Normal parameterised by its variance) and a Delta guide on
    :math:`\gamma` (:class:`~bayesdrop.distributions.BoundedDelta`).  The ELBO (eq. 10) is
    :math:`L_\mathcal{D} - \mathrm{KL}(q(W) \| p(W \mid \gamma)) - \mathrm{KL}(q(\gamma) \| p(\gamma))`; per weight
    (eq. 14)

    .. math::
        \mathrm{KL}\big(q(W_{kd}) \,\|\, p(W_{kd} \mid \gamma_{kd})\big)
        = \tfrac12 \log\frac{\gamma_{kd}}{\alpha\theta_{kd}^2}
        + \frac{\alpha\theta_{kd}^2 + \theta_{kd}^2}{2\gamma_{kd}} - \tfrac12,

    minimised at :math:`\gamma^*_{kd} = \alpha\theta_{kd}^2 + \theta_{kd}^2` (eq. 16), where it equals
    :math:`\tfrac12\log(1 + \alpha^{-1})` (Prop. 3, eq. 17), independent of :math:`\theta`.  The guide puts its
    Delta at :math:`\gamma^*` (clamped into the support, see below), so ``TraceMeanField_ELBO``, with the
    closed-form KLs registered in :mod:`bayesdrop.distributions` (eq. 14 for the weights, the constant
    :math:`\log(b - a)` per :math:`\gamma`), computes

    .. math::
        \mathcal L = L_\mathcal{D}(\alpha, \theta) - \sum_{k,d} \tfrac12 \log\big(1 + \alpha_{kd}^{-1}\big)
        - n_\gamma \log(b - a),

    eq. 17 with per-weight :math:`\alpha_{kd}` (eq. 18) up to the constant :math:`n_\gamma\log(b-a)` of the Delta/
    Uniform KL.  ``granularity="layer"`` shares one :math:`\alpha` per layer (eq. 17 itself, the classification
    setting of Table 1).  ``granularity="weight"`` (default, eq. 18) uses the additive reparameterisation of sparse VD
    (:math:`\sigma^2_{kd} = \alpha_{kd}\theta^2_{kd}`).  ``granularity="unit"`` is the dropout-like layer of eq. 19,
    see :class:`UnitVariationalBayesianDropout`.

    *Choice of a and b.*  The defaults are ``a = 1e-16`` and ``b = 100``.  :math:`\gamma^* = \theta^2 + \sigma^2`
    lies above ``a`` unless :math:`\sigma^2 < 10^{-16}` (:math:`\log\sigma^2 < -36.8`; the KL pushes
    :math:`\sigma^2` up, so training does not go there), in particular as a weight is pruned (:math:`\theta \to 0`
    with :math:`\sigma^2` a parameter); with ``granularity="layer"`` (:math:`\sigma^2 = \alpha\theta^2`) a weight
    at :math:`\theta = 0` meets the floor ``a`` and the clamp keeps its KL finite.  It lies below ``b`` while
    :math:`\theta^2 + \sigma^2 < 100`: the largest value measured after training the 64-300-100-10 MLP on digits
    was 3.9 for ``vbd`` (12 for ``sparse-vd`` at lr 1e-2): the weights that survive sparsification grow, and
    ``b = 1`` would cut into them.  The KL of the ``gamma`` site is then the constant :math:`\log(b - a) \approx 4.61` per :math:`\gamma` (no gradient; :meth:`kl_constant`).
    Outside :math:`[a, b)` the guide clamps :math:`\gamma` to the nearest admissible value, the constrained
    optimum of eq. 15 (the KL is convex in :math:`\log\gamma`), so the KL stays finite and exact for this prior
    (with ``b`` exceeded, by :math:`\tfrac12(m/b - \log(m/b) - 1)` above eq. 17 for :math:`m = \theta^2 +
    \sigma^2`, a weight decay).  A Delta guide's "KL" :math:`-\log p(\gamma^*)` depends on how :math:`\gamma`
    is parameterised, so the constant carries no information.

    *Gradients through* :math:`\gamma^*`.  The Delta location is detached: by the envelope theorem the derivative of
    eq. 15 at :math:`\gamma = \gamma^*` with respect to :math:`(\theta, \sigma)` equals its partial derivative at
    fixed :math:`\gamma`, because :math:`\partial\mathrm{KL}/\partial\gamma = 0` there (and at a clamped
    boundary :math:`\gamma` does not move), so detaching gives the gradient of eq. 17 exactly and saves work.

Pruning and test time
    :meth:`~_GaussianFamily.log_alpha` returns :math:`\log\alpha` per weight, unit or layer;
    ``bd.dropout_rates`` reports the keep probability :math:`1 / (1 + \alpha)` (the Bernoulli rate with the same
    signal-to-noise ratio).  The deterministic test-time network (``predict(rule="weight-scaling")``) is the
    posterior mean :math:`E_q[W] = \theta` (no rescaling: the noise has mean 1); ``guide.mean_network(pruned=True)``
    (:class:`~bayesdrop.handlers.PosteriorMean` with the masks of :meth:`~_GaussianFamily.keep_masks`) and
    :func:`bayesdrop.compress.prune` also zero the weights (units) with :math:`\log\alpha` at or above the
    method's ``threshold`` (default 3, Molchanov et al. 2017).

References
----------
Kingma, Salimans & Welling (2015), Variational dropout and the local reparameterization trick, NeurIPS.
Molchanov, Ashukha & Vetrov (2017), Variational dropout sparsifies deep neural networks, ICML.
Liu, Dong, Zhang, Gong & Shi (2019), Variational Bayesian dropout with a hierarchical prior, CVPR.
Neklyudov, Molchanov, Ashukha & Vetrov (2017), Structured Bayesian pruning via log-normal multiplicative noise,
NeurIPS (the framework of eq. 19).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, cast

import pyro
import torch
from pyro.poutine.runtime import InferDict

from ..checks import check_range
from ..distributions import BoundedDelta, CenteredNormal, DropoutNormal, LogUniform, ScalarUniform
from ..sites import per_example_shape, site_shaped
from . import register
from .base import Capabilities, LayerGuide, Method, PointWeights, TrainingDefaults, site_param
from .classic import input_rate

__all__ = [
    "VariationalDropout",
    "SparseVariationalDropout",
    "VariationalBayesianDropout",
    "UnitVariationalBayesianDropout",
]

# log alpha = log sigma^2 - log(theta^2 + _EPS): theta = 0 gives a large finite log alpha and a zero gradient.
_EPS = 1e-16
_SCALE_FLOOR = 1e-18  # sigma floor of the multiplicative parameterisation: sigma^2 = 1e-36 is a normal float32


def _finite(name: str, value: float) -> float:
    return check_range(name, value, -math.inf, math.inf, lo_open=True, hi_open=True)


def _choice(name: str, value: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise ValueError(f"`{name}` must be one of {accepted}, got {value!r}")
    return value


def _unit_param_shape(layer, site: str = "weight") -> tuple[int, ...]:
    """Per input unit, broadcastable against the weight: ``(1, in)`` or ``(1, C, 1, 1)``."""
    ws = layer.weight_sites[site].shape
    return (1, ws[1], *([1] * (len(ws) - 2)))


def _per_input_unit(t: torch.Tensor, n: int) -> torch.Tensor:
    """A per-layer / per-unit tensor as one value per input unit (or channel): shape ``(n,)``."""
    return t.reshape(-1).expand(n) if t.numel() == 1 else t.reshape(n)


def _additive_log_alpha(theta: torch.Tensor, log_sigma2: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\alpha = \log\sigma^2 - \log\theta^2` of the additive parameterisation (Molchanov et al. 2017)."""
    return log_sigma2 - (theta.square() + _EPS).log()


class _GaussianFamily(Method):
    """Shared parts: Gaussian-dropout weight posterior, LRT, keep probabilities, pruning by log alpha."""

    capabilities = Capabilities(
        analytic_kl=True, lrt=True, structured=False, learns_rates=True, sites=frozenset({"weight"})
    )
    threshold: float
    # The KL of ~50k weights against 1437 digits prunes every weight before the likelihood has fitted when it
    # enters at full weight (chance accuracy); warmed up over all the epochs (the last one at the full ELBO) the
    # network keeps about 1 weight in 90 within a point of Bernoulli dropout (docs/defaults.md).
    fit_defaults = TrainingDefaults(kl_warmup=1.0)

    def log_alpha(self, layer, params: LayerGuide, site: str = "weight") -> torch.Tensor:
        r""":math:`\log\alpha` of weight site ``site``: per weight, per input unit (``(1, in)`` / ``(1, C, 1, 1)``)
        or per layer (a scalar), as used by the method (before the clipping inside the KL)."""
        raise NotImplementedError

    def weight_posterior(self, layer, site: str, params: LayerGuide) -> DropoutNormal:
        """The Gaussian posterior of the weights of ``site``."""
        raise NotImplementedError

    def keep_prob(self, layer, params, site=None):
        r"""Keep probability :math:`1 / (1 + \alpha)` of weight site ``site`` (the layer's ``weight``): per weight,
        or per input unit for per-unit and per-layer rates (shape ``(in,)`` / ``(C,)``)."""
        site = self.rate_site(layer, site)
        la = self.log_alpha(layer, params, site)
        p = torch.sigmoid(-la)
        shape = layer.weight_sites[site].shape
        return p if la.shape == shape else _per_input_unit(p, shape[1])

    def weight_guide(self, layer, site, params, plate):
        q = self.weight_posterior(layer, site.name, params)
        pyro.sample(layer.site(site.name), q.to_event(len(site.shape)), infer={"lrt": site.lrt})

    def pruning_rule(self) -> str:
        return f"log alpha >= {self.threshold:g}"

    def keep_masks(self, layer, params, threshold=None):
        """The weights whose log alpha is below ``threshold`` (default ``self.threshold``)."""
        thr = self.threshold if threshold is None else self.numeric_threshold(threshold)
        return {s: self.log_alpha(layer, params, s) < thr for s in layer.weight_sites}


class _LogUniformPrior(_GaussianFamily):
    """Model side of VD and sparse VD: ``W ~ LogUniform`` (improper), KL by Molchanov's approximation."""

    def weight_model(self, layer, site):
        prior = LogUniform(layer.init_value(site)).to_event(len(site.shape))
        return pyro.sample(layer.site(site.name), prior)


@register("vd")
class VariationalDropout(_LogUniformPrior):
    r"""Variational dropout (Kingma et al. 2015) with one :math:`\alpha` per layer or per input unit.

    Guide :math:`W_{kd} \sim \mathcal N(\theta_{kd}, \alpha\theta_{kd}^2)` with parameters ``weight``
    (:math:`\theta`) and ``log_alpha``; improper log-uniform prior; KL by Molchanov et al.'s approximation
    (see the module docstring).

    Parameters
    ----------
    granularity : {"layer", "unit"}
        One :math:`\alpha` for the layer, or one per input unit (``Linear``) / input channel (``Conv2d``).
    log_alpha_init : float
        Initial :math:`\log\alpha` (finite).
    max_log_alpha : float or None
        Upper bound on :math:`\log\alpha` (the value used is ``min(log_alpha, max_log_alpha)``).  The default 0
        keeps :math:`\alpha \le 1` as Kingma et al. did; ``None`` removes the bound.
    threshold : float
        Units / layers with :math:`\log\alpha` at or above it are pruned by ``bd.compress``.
    """

    reference = "Kingma, Salimans & Welling 2015 (NeurIPS); KL of Molchanov et al. 2017 (ICML)"

    def __init__(
        self,
        granularity: str = "layer",
        log_alpha_init: float = -8.0,
        max_log_alpha: float | None = 0.0,
        threshold: float = 3.0,
    ):
        self.granularity = _choice("granularity", granularity, ("layer", "unit"))
        self.log_alpha_init = _finite("log_alpha_init", log_alpha_init)
        self.max_log_alpha = _check_bound(self.log_alpha_init, max_log_alpha)
        self.threshold = _finite("threshold", threshold)
        if granularity == "unit":
            self.capabilities = dataclasses.replace(type(self).capabilities, structured=True)

    def init_guide(self, layer) -> LayerGuide:
        lg = LayerGuide()
        for site in layer.weight_sites.values():
            init = layer.init_value(site)
            setattr(lg, site.name, torch.nn.Parameter(init.clone()))
            shape = () if self.granularity == "layer" else _unit_param_shape(layer, site.name)
            setattr(
                lg, site_param(site.name, "log_alpha"), torch.nn.Parameter(init.new_full(shape, self.log_alpha_init))
            )
        return lg

    def input_layer(self, in_features: int) -> Method:
        r"""The method of a network's first layer: the fixed-rate input rule applied to the bound on :math:`\alpha`.

        The log-uniform prior's KL falls as :math:`\alpha` grows, so under ``max_log_alpha`` :math:`\alpha` ends
        at the bound wherever the likelihood does not hold it down (on MNIST-1D the first two layers'
        :math:`\log\alpha` ended at the bound 0), and the bound acts as a fixed rate.  The first layer therefore
        takes the rule of the fixed-rate methods (:meth:`~bayesdrop.methods.base.Method.input_layer`):
        :math:`\alpha \le 0.2 / 0.8`, Bernoulli's input rate in variance, for at least
        :data:`~bayesdrop.methods.base.INPUT_MIN_FEATURES` inputs, and no input noise (``bernoulli`` with
        ``p = 0``) below.  Measured in ``docs/defaults.md``.  Unbounded (``max_log_alpha=None``) it returns itself:
        :math:`\alpha` is then free to prune inputs.
        """
        return self if self.max_log_alpha is None else _bounded_input_layer(self, in_features)

    def log_alpha(self, layer, params, site="weight"):
        la = getattr(params, site_param(site, "log_alpha"))
        return la if self.max_log_alpha is None else la.clamp(max=self.max_log_alpha)

    def project(self, layer, params) -> None:
        r""":math:`\log\alpha` onto its bound, in place (:func:`_project_log_alpha`)."""
        _project_log_alpha(self.max_log_alpha, layer, params)

    def weight_posterior(self, layer, site, params):
        theta = getattr(params, site)
        la = self.log_alpha(layer, params, site)
        # sigma = sqrt(alpha) |theta|, floored so that theta = 0 still gives a valid Normal.
        scale = ((0.5 * la).exp() * theta.abs()).clamp_min(_SCALE_FLOOR)
        return DropoutNormal(theta, scale, la)


def _check_bound(log_alpha_init: float, max_log_alpha: float | None) -> float | None:
    """Validated ``max_log_alpha`` (None: no bound), above which ``log_alpha_init`` must not start."""
    bound = None if max_log_alpha is None else _finite("max_log_alpha", max_log_alpha)
    if bound is not None and log_alpha_init > bound:
        raise ValueError(f"`log_alpha_init` ({log_alpha_init!r}) must not exceed `max_log_alpha` ({max_log_alpha!r})")
    return bound


def _bounded_input_layer(method: VariationalDropout | VariationalBayesianDropout, in_features: int) -> Method:
    r"""The first layer of a method whose :math:`\alpha` ends at its bound ``max_log_alpha``: the fixed-rate input
    rule (:func:`~bayesdrop.methods.classic.input_rate`) applied to the bound, :math:`\log\alpha \le
    \log(p / (1 - p))`, or no input noise (``bernoulli`` with ``p = 0``) where the rule drops nothing."""
    assert method.max_log_alpha is not None, "an unbounded alpha takes no input rule"
    p = input_rate(in_features)
    if p == 0.0:
        from . import get

        return get("bernoulli", p=0.0)
    bound = min(method.max_log_alpha, math.log(p / (1.0 - p)))
    return method.replace(max_log_alpha=bound, log_alpha_init=min(method.log_alpha_init, bound))


@register("sparse-vd")
class SparseVariationalDropout(_LogUniformPrior):
    r"""Sparse variational dropout (Molchanov et al. 2017): one :math:`\alpha` per weight, additive noise.

    Parameters ``weight`` (:math:`\theta`) and ``log_sigma2`` (:math:`\log\sigma^2`), both of the weight's shape;
    guide :math:`W \sim \mathcal N(\theta, \sigma^2)`, :math:`\log\alpha = \log\sigma^2 - \log\theta^2`.

    Parameters
    ----------
    log_sigma2_init : float
        Initial :math:`\log\sigma^2` (finite); Molchanov et al. use -10.
    threshold : float
        Weights with :math:`\log\alpha` at or above it are pruned (default 3).
    """

    reference = "Molchanov, Ashukha & Vetrov 2017 (ICML)"

    def __init__(self, log_sigma2_init: float = -10.0, threshold: float = 3.0):
        self.log_sigma2_init = _finite("log_sigma2_init", log_sigma2_init)
        self.threshold = _finite("threshold", threshold)

    def init_guide(self, layer) -> LayerGuide:
        return _additive_params(layer, self.log_sigma2_init)

    def log_alpha(self, layer, params, site="weight"):
        return _additive_log_alpha(getattr(params, site), getattr(params, site_param(site, "log_sigma2")))

    def weight_posterior(self, layer, site, params):
        theta, ls2 = getattr(params, site), getattr(params, site_param(site, "log_sigma2"))
        return DropoutNormal(theta, None, _additive_log_alpha(theta, ls2), log_variance=ls2)


def _project_log_alpha(bound: float | None, layer: Any, params: LayerGuide) -> None:
    """Every weight site's ``log_alpha`` parameter onto ``(-inf, bound]``, in place (``None``: unbounded).  The
    guide reads it through ``clamp(max=bound)``, which passes no gradient above the bound: a parameter that Adam's
    momentum carried past it (``vd``'s layers did, 45 to 68 epochs into 100 on digits) stayed there whatever the
    loss said later; projected back after each step it sits at the bound, where the gradient passes."""
    if bound is None:
        return
    with torch.no_grad():
        for site in layer.weight_sites:
            getattr(params, site_param(site, "log_alpha")).clamp_(max=bound)


def _additive_params(layer, log_sigma2_init: float) -> LayerGuide:
    """``weight`` (:math:`\theta`) and ``log_sigma2`` of every weight site (the additive parameterisation)."""
    lg = LayerGuide()
    for site in layer.weight_sites.values():
        init = layer.init_value(site)
        setattr(lg, site.name, torch.nn.Parameter(init.clone()))
        setattr(lg, site_param(site.name, "log_sigma2"), torch.nn.Parameter(torch.full_like(init, log_sigma2_init)))
    return lg


class _GammaPrior:
    r"""The hierarchical prior of Liu et al. (2019), eq. 11: :math:`\gamma \sim \mathrm{Uniform}(a, b)` and a Delta
    guide at :math:`\gamma^* = \theta^2 + \sigma^2` (eq. 16), clamped into :math:`[a, b)`."""

    a: float
    b: float

    def _init_gamma(self, a: float, b: float) -> None:
        self.a = check_range("a", a, 0.0, math.inf, lo_open=True, hi_open=True)
        self.b = check_range("b", b, 0.0, math.inf, lo_open=True, hi_open=True)
        if not self.a < self.b:
            raise ValueError(f"`a` must be below `b`, got a={a!r}, b={b!r}")
        # The largest float32 strictly below b (also below b in float64): the Uniform's support is [a, b).
        below = torch.nextafter(torch.tensor(self.b, dtype=torch.float32), torch.tensor(-math.inf)).item()
        if below <= self.a:
            raise ValueError(f"`b` ({b!r}) must exceed `a` ({a!r}) by more than float32 resolution")
        self._b_below = below

    def _gamma(self, q: DropoutNormal) -> torch.Tensor:
        """:math:`\\gamma^*` of the posterior ``q``, detached (see the module docstring)."""
        return q.second_moment.detach().clamp(self.a, self._b_below)

    def _sample_hierarchical(self, layer, name: str, like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Model: :math:`\\gamma \\sim U(a, b)` at ``{name}_gamma`` (``gamma`` for the primary site), then the site
        ``name`` :math:`\\sim \\mathcal N(0, \\gamma)`."""
        prior = ScalarUniform(self.a, self.b, shape, like=like).to_event(len(shape))
        gamma = pyro.sample(layer.site(site_param(name, "gamma")), prior)
        return pyro.sample(layer.site(name), CenteredNormal(gamma).to_event(len(shape)))

    def _guide_hierarchical(self, layer, name: str, q: DropoutNormal, lrt: bool = True) -> None:
        # gamma* = theta^2 + sigma^2, detached (envelope theorem, see the module docstring); theta^2 + sigma^2 and
        # sigma^2 are cached with their graphs in q: the KL and the local reparameterisation trick reuse them.
        gamma = self._gamma(q)
        gname = site_param(name, "gamma")
        pyro.sample(layer.site(gname), BoundedDelta(gamma, self.a, self.b, event_dim=gamma.dim()))
        pyro.sample(layer.site(name), q.to_event(gamma.dim()), infer=cast(InferDict, {"lrt": lrt}))

    def kl_constant(self, layer) -> float:
        r"""The constant :math:`n_\gamma \log(b - a)` that the ``gamma`` sites add to the loss (no gradient)."""
        raise NotImplementedError


def _vbd_args(
    granularity, a, b, log_sigma2_init, log_alpha_init, threshold, prior_scale, accepted
) -> tuple[str, float, float, float, float]:
    """Validated ``granularity, log_sigma2_init, log_alpha_init, threshold, prior_scale`` (``a, b``: see
    ``_GammaPrior._init_gamma``)."""
    return (
        _choice("granularity", granularity, accepted),
        _finite("log_sigma2_init", log_sigma2_init),
        _finite("log_alpha_init", log_alpha_init),
        _finite("threshold", threshold),
        check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True),
    )


class VariationalBayesianDropout(_GammaPrior, _GaussianFamily):
    r"""Variational Bayesian dropout (Liu et al. 2019) on the weights: hierarchical prior :math:`W \mid \gamma \sim
    \mathcal N(0, \gamma)`, :math:`\gamma \sim \mathrm{Uniform}(a, b)`, Delta guide on :math:`\gamma` at
    :math:`\gamma^* = \alpha\theta^2 + \theta^2`.  Registered as ``vbd``; ``bd.methods.get("vbd",
    granularity="unit")`` gives :class:`UnitVariationalBayesianDropout`.

    ``granularity="weight"`` (default; eq. 18, weight compression)
        Sites ``gamma`` and ``weight`` of the weight's shape; parameters ``weight`` (:math:`\theta`) and
        ``log_sigma2`` (additive reparameterisation, :math:`\sigma^2 = \alpha\theta^2`), one :math:`\alpha` per
        weight.

    ``granularity="layer"`` (eq. 17, the classification setting of Table 1)
        The same sites with one :math:`\alpha` shared by the layer's weights, parameterised by ``log_alpha``
        (:math:`\sigma = \sqrt\alpha\,|\theta|`), as in ``vd``: the objective
        :math:`L_\mathcal{D} - \sum_{k,d} \tfrac12\log(1 + \alpha^{-1})` of Prop. 3, with
        :math:`\alpha \le 1` (``max_log_alpha``) as ``vd``'s.  The KL falls as :math:`\alpha` grows and one
        :math:`\alpha` weighs on all of a layer's weights at once, so without the bound it outgrows what the
        likelihood can hold down: on MNIST-1D the layers' :math:`\alpha` ended above 1 and the network underfitted
        (``docs/defaults.md``).  The first layer takes the fixed-rate input rule on the bound, as ``vd``'s
        (:meth:`input_layer`).

    Parameters
    ----------
    granularity : {"weight", "layer"}
    a, b : float
        Support of the uniform prior on :math:`\gamma`, :math:`0 < a < b`; see the module docstring for the
        defaults and why :math:`\gamma^*` lies inside.
    log_sigma2_init : float
        Initial :math:`\log\sigma^2` of the weights (``"weight"``).
    log_alpha_init : float
        Initial :math:`\log\alpha` for ``granularity="layer"``.
    threshold : float
        :math:`\log\alpha` at or above which a weight is pruned.
    prior_scale : float
        Unused here (the weights' prior is the hierarchy); the parameter of ``granularity="unit"``.
    max_log_alpha : float or None
        Upper bound on the layer's :math:`\log\alpha` with ``granularity="layer"`` (the value used is
        ``min(log_alpha, max_log_alpha)``); the default 0 keeps :math:`\alpha \le 1`, ``None`` removes the bound.
        Not used with ``"weight"`` (nor ``"unit"``): those :math:`\alpha` grow to prune.
    """

    reference = "Liu et al. 2019 (CVPR), Variational Bayesian Dropout"

    def __init__(
        self,
        granularity: str = "weight",
        a: float = 1e-16,
        b: float = 100.0,
        log_sigma2_init: float = -10.0,
        log_alpha_init: float = -8.0,
        threshold: float = 3.0,
        prior_scale: float = 1.0,
        max_log_alpha: float | None = 0.0,
    ):
        if granularity == "unit":
            raise ValueError(
                "granularity='unit' is UnitVariationalBayesianDropout (or bd.methods.get('vbd', granularity='unit'))"
            )
        args = (granularity, a, b, log_sigma2_init, log_alpha_init, threshold, prior_scale)
        v = _vbd_args(*args, accepted=("weight", "layer"))
        self.granularity, self.log_sigma2_init, self.log_alpha_init, self.threshold, self.prior_scale = v
        bounded = self.granularity == "layer"
        self.max_log_alpha = _check_bound(self.log_alpha_init if bounded else -math.inf, max_log_alpha)
        self._init_gamma(a, b)

    def input_layer(self, in_features: int) -> Method:
        r"""The method of a network's first layer: with ``granularity="layer"`` and a bound, the fixed-rate input
        rule applied to the bound on :math:`\alpha`, as ``vd``'s
        (:meth:`VariationalDropout.input_layer`: the KL pushes the one :math:`\alpha` to its bound, which acts as
        a fixed rate); itself otherwise (per-weight :math:`\alpha` learn which inputs to prune)."""
        if self.granularity != "layer" or self.max_log_alpha is None:
            return self
        return _bounded_input_layer(self, in_features)

    def init_guide(self, layer) -> LayerGuide:
        if self.granularity == "weight":
            return _additive_params(layer, self.log_sigma2_init)
        lg = LayerGuide()
        for site in layer.weight_sites.values():
            init = layer.init_value(site)
            setattr(lg, site.name, torch.nn.Parameter(init.clone()))
            setattr(lg, site_param(site.name, "log_alpha"), torch.nn.Parameter(init.new_full((), self.log_alpha_init)))
        return lg

    def weight_posterior(self, layer, site, params):
        theta = getattr(params, site)
        if self.granularity == "layer":
            la = self.log_alpha(layer, params, site)
            # sigma = sqrt(alpha) |theta|, floored so that theta = 0 gives a valid Normal and a finite KL.
            return DropoutNormal(theta, ((0.5 * la).exp() * theta.abs()).clamp_min(_SCALE_FLOOR))
        return DropoutNormal(theta, log_variance=getattr(params, site_param(site, "log_sigma2")))

    def log_alpha(self, layer, params, site="weight"):
        if self.granularity == "layer":
            la = getattr(params, site_param(site, "log_alpha"))
            return la if self.max_log_alpha is None else la.clamp(max=self.max_log_alpha)
        return _additive_log_alpha(getattr(params, site), getattr(params, site_param(site, "log_sigma2")))

    def project(self, layer, params) -> None:
        r""":math:`\log\alpha` of a per-layer rate onto its bound, in place (:func:`_project_log_alpha`)."""
        if self.granularity == "layer":
            _project_log_alpha(self.max_log_alpha, layer, params)

    def gamma_star(self, layer, params, site: str = "weight") -> torch.Tensor:
        r""":math:`\gamma^* = \theta^2 + \sigma^2 = (1 + \alpha)\theta^2` (eq. 16), clamped into :math:`[a, b)`."""
        return self._gamma(self.weight_posterior(layer, site, params))

    def weight_model(self, layer, site):
        return self._sample_hierarchical(layer, site.name, layer.init_value(site), tuple(site.shape))

    def weight_guide(self, layer, site, params, plate):
        self._guide_hierarchical(layer, site.name, self.weight_posterior(layer, site.name, params), site.lrt)

    def kl_constant(self, layer) -> float:
        n = sum(math.prod(s.shape) for s in layer.weight_sites.values())
        return n * math.log(self.b - self.a)


class UnitVariationalBayesianDropout(_GammaPrior, PointWeights):
    r"""Variational Bayesian dropout per unit (Liu et al. 2019, eq. 19): the structured-compression layer.

    The dropout-like layer :math:`B' = f(B) \circ W'` of eq. 19, on a layer's noise site (the inputs of a weight
    layer: pruning the inputs of layer :math:`l` removes units of layer :math:`l-1`): a vector :math:`W'` with one
    entry per unit (site ``noise``, the site's unit shape, ``(in,)`` / ``(C, 1, 1)``) under the hierarchical prior
    (site ``gamma``) and guide :math:`\mathcal N(\theta', \sigma'^2)` (parameters ``noise_loc``, starting at 1, and
    ``noise_log_sigma2``).  The layer's own weights ``W`` are a point estimate (Delta guide) under a Gaussian prior
    :math:`\mathcal N(0, s^2)` (weight decay), as in structured Bayesian pruning (Neklyudov et al. 2017), which
    eq. 19 follows.  This is the paper's construction: eq. 19 multiplies activations by a separate noise matrix
    whose entries share :math:`(\theta', \alpha)` per unit, and its KL is eq. 18 summed over units, not over
    weights.  Under the local reparameterisation trick :math:`W'` is drawn independently for every example (and
    shared over the positions of a feature map or sequence), which is exact for the ELBO because each example's
    likelihood depends on :math:`W'` only through its own draw; a draw from the guide has one :math:`W'` per
    network.  The mean network multiplies the inputs by :math:`\theta'`; a unit with :math:`\log\alpha` at or
    above ``threshold`` is pruned.

    Parameters are those of :class:`VariationalBayesianDropout` with ``granularity="unit"``; ``log_sigma2_init``
    initialises :math:`\log\sigma'^2`, ``prior_scale`` is :math:`s`, ``log_alpha_init`` and ``max_log_alpha`` are
    unused (the units' :math:`\alpha` grow to prune).
    """

    reference = "Liu et al. 2019 (CVPR), Variational Bayesian Dropout, eq. 19 after Neklyudov et al. 2017"
    capabilities = Capabilities(analytic_kl=True, lrt=True, structured=True, learns_rates=True)
    fit_defaults = _GaussianFamily.fit_defaults

    def __init__(
        self,
        granularity: str = "unit",
        a: float = 1e-16,
        b: float = 100.0,
        log_sigma2_init: float = -10.0,
        log_alpha_init: float = -8.0,
        threshold: float = 3.0,
        prior_scale: float = 1.0,
        max_log_alpha: float | None = 0.0,
    ):
        args = (granularity, a, b, log_sigma2_init, log_alpha_init, threshold, prior_scale)
        v = _vbd_args(*args, accepted=("unit",))
        self.granularity, self.log_sigma2_init, self.log_alpha_init, self.threshold, self.prior_scale = v
        self.max_log_alpha = _check_bound(-math.inf, max_log_alpha)
        self._init_gamma(a, b)

    def init_guide(self, layer) -> LayerGuide:
        lg = super().init_guide(layer)
        for site in layer.drawn_noise_sites.values():
            like = layer.like
            lg.register_parameter(f"{site.name}_loc", torch.nn.Parameter(like.new_ones(site.unit_shape)))
            init = like.new_full(site.unit_shape, self.log_sigma2_init)
            lg.register_parameter(f"{site.name}_log_sigma2", torch.nn.Parameter(init))
        return lg

    def _posterior(self, params, site: str = "noise") -> DropoutNormal:
        return DropoutNormal(getattr(params, f"{site}_loc"), log_variance=getattr(params, f"{site}_log_sigma2"))

    def log_alpha(self, layer, params, site: str = "noise") -> torch.Tensor:
        r""":math:`\log\alpha` per unit, of the unit shape of noise site ``site``."""
        return _additive_log_alpha(getattr(params, f"{site}_loc"), getattr(params, f"{site}_log_sigma2"))

    def gamma_star(self, layer, params, site: str = "noise") -> torch.Tensor:
        r""":math:`\gamma^* = \theta'^2 + \sigma'^2` (eq. 16), clamped into :math:`[a, b)`."""
        return self._gamma(self._posterior(params, site))

    def noise_model(self, layer, site, x):
        z = self._sample_hierarchical(layer, site.name, layer.like, site.unit_shape)
        tag = getattr(z, "_bayesdrop_lrt", None)
        if tag is None:  # one draw per network: in a vectorised run (S, *unit), which the layer spreads per draw
            return site_shaped(z, site.unit_shape, per_draw=True)
        # local reparameterisation: an independent draw of W' for every example, shared over its other positions
        loc, variance = tag
        eps = torch.randn(per_example_shape(x, site.unit_shape), dtype=x.dtype, device=x.device)
        return loc + variance.sqrt() * eps

    def noise_guide(self, layer, site, params, plate):
        self._guide_hierarchical(layer, site.name, self._posterior(params, site.name))

    def keep_prob(self, layer, params, site=None):
        return torch.sigmoid(-self.log_alpha(layer, params, self.rate_site(layer, site))).reshape(-1)

    def keep_masks(self, layer, params, threshold=None):
        thr = self.threshold if threshold is None else self.numeric_threshold(threshold)
        return {s: self.log_alpha(layer, params, s) < thr for s in layer.drawn_noise_sites}

    def pruning_rule(self) -> str:
        return f"log alpha >= {self.threshold:g}"

    def kl_constant(self, layer) -> float:
        n = sum(math.prod(s.unit_shape) for s in layer.drawn_noise_sites.values())
        return n * math.log(self.b - self.a)


@register("vbd")
def variational_bayesian_dropout(
    granularity: str = "weight",
    a: float = 1e-16,
    b: float = 100.0,
    log_sigma2_init: float = -10.0,
    log_alpha_init: float = -8.0,
    threshold: float = 3.0,
    prior_scale: float = 1.0,
    max_log_alpha: float | None = 0.0,
) -> Method:
    """``vbd``: :class:`VariationalBayesianDropout` (``granularity`` ``"weight"`` or ``"layer"``) or
    :class:`UnitVariationalBayesianDropout` (``"unit"``); the arguments are theirs."""
    cls: Any = UnitVariationalBayesianDropout if granularity == "unit" else VariationalBayesianDropout
    return cls(granularity, a, b, log_sigma2_init, log_alpha_init, threshold, prior_scale, max_log_alpha)


variational_bayesian_dropout.reference = VariationalBayesianDropout.reference  # type: ignore[attr-defined]
