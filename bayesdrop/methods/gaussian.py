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
    see :class:`VariationalBayesianDropout`.

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
    and :func:`bayesdrop.compress.prune` also zero the weights (units) with :math:`\log\alpha` at or above the
    method's ``threshold`` (default 3, Molchanov et al. 2017).

References
----------
Kingma, Salimans & Welling (2015), Variational dropout and the local reparameterization trick, NeurIPS.
Molchanov, Ashukha & Vetrov (2017), Variational dropout sparsifies deep neural networks, ICML.
Liu, Dong, Zhang, Gong & Shi (2019), Variational Bayesian dropout with a hierarchical prior, CVPR (seed 001).
Neklyudov, Molchanov, Ashukha & Vetrov (2017), Structured Bayesian pruning via log-normal multiplicative noise,
NeurIPS (the framework of eq. 19).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from ..distributions import LOG_ALPHA_CLIP, BoundedDelta, CenteredNormal, DropoutNormal, LogUniform, ScalarUniform
from . import register
from .base import LayerGuide, Method, TrainingDefaults, check_range, gaussian_weight_prior

__all__ = ["VariationalDropout", "SparseVariationalDropout", "VariationalBayesianDropout"]

# log alpha = log sigma^2 - log(theta^2 + _EPS): theta = 0 gives a large finite log alpha and a zero gradient.
_EPS = 1e-16
_SCALE_FLOOR = 1e-18  # sigma floor of the multiplicative parameterisation: sigma^2 = 1e-36 is a normal float32
_K1, _K2, _K3 = 0.63576, 1.87320, 1.48695  # Molchanov et al. (2017); restated here for the closed-form `kl`


def _finite(name: str, value: float) -> float:
    return check_range(name, value, -math.inf, math.inf, lo_open=True, hi_open=True)


def _choice(name: str, value: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise ValueError(f"`{name}` must be one of {accepted}, got {value!r}")
    return value


def _unit_param_shape(layer) -> tuple[int, ...]:
    """Per input unit, broadcastable against the weight: ``(1, in)`` or ``(1, C, 1, 1)``."""
    ws = layer.weight_shape
    return (1, ws[1], *([1] * (len(ws) - 2)))


def _unit_input_shape(layer) -> tuple[int, ...]:
    """Per input unit, broadcastable against the per-example input: ``(in,)`` or ``(C, 1, 1)``."""
    ws = layer.weight_shape
    return (ws[1], *([1] * (len(ws) - 2)))


def _per_input_unit(t: torch.Tensor, layer) -> torch.Tensor:
    """A per-layer / per-unit tensor as one value per input unit (or channel): shape ``(in,)`` / ``(C,)``."""
    n = layer.weight_shape[1]
    return t.reshape(-1).expand(n) if t.numel() == 1 else t.reshape(n)


def _additive_log_alpha(theta: torch.Tensor, log_sigma2: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\alpha = \log\sigma^2 - \log\theta^2` of the additive parameterisation (Molchanov et al. 2017)."""
    return log_sigma2 - (theta.square() + _EPS).log()


def _molchanov_kl(log_alpha: torch.Tensor) -> torch.Tensor:
    """-(k1 sigmoid(k2 + k3 log a) - 0.5 log(1 + 1/a) - k1), log alpha clipped; written out for `kl`."""
    la = log_alpha.clamp(*LOG_ALPHA_CLIP)
    return _K1 - _K1 * torch.sigmoid(_K2 + _K3 * la) + 0.5 * torch.log1p(torch.exp(-la))


class _GaussianFamily(Method):
    """Shared parts: Gaussian-dropout weight posterior, LRT, keep probabilities, pruning by log alpha."""

    reference = ""
    analytic_kl = True
    lrt = True
    conv = True
    threshold: float
    granularity: str = "weight"
    # The KL of ~50k weights against 1437 digits prunes every weight before the likelihood has fitted when it
    # enters at full weight (chance accuracy); warmed up over all the epochs (the last one at the full ELBO) the
    # network keeps about 1 weight in 90 within a point of Bernoulli dropout (docs/defaults.md).
    fit_defaults = TrainingDefaults(kl_warmup=1.0)

    @property
    def structured(self) -> bool:  # type: ignore[override]
        """Whether the method removes whole units (``granularity="unit"``)."""
        return self.granularity == "unit"

    # -- to implement ------------------------------------------------------------------------------------------
    def log_alpha(self, layer, params: LayerGuide) -> torch.Tensor:
        r""":math:`\log\alpha` of the layer: per weight, per input unit (``(1, in)`` / ``(1, C, 1, 1)``) or per
        layer (a scalar), as used by the method (before the clipping inside the KL)."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------------------------
    def keep_prob(self, layer, params):
        r"""Keep probability :math:`1 / (1 + \alpha)`: per weight, or per input unit for per-unit and per-layer
        rates (shape ``(in,)`` / ``(C,)``)."""
        la = self.log_alpha(layer, params)
        p = torch.sigmoid(-la)
        return p if la.shape == layer.weight_shape else _per_input_unit(p, layer)

    def _weight_posterior(self, layer, params) -> DropoutNormal:
        raise NotImplementedError

    def _guide_weight(self, layer, params) -> None:
        pyro.sample(
            layer.site("weight"),
            self._weight_posterior(layer, params).to_event(layer.weight_event_dim),
            infer={"lrt": True},
        )

    def pruning_rule(self) -> str:
        return f"log alpha >= {self.threshold:g}"

    def point_weights(self, layer, params, threshold=None):
        """Posterior means, and the weights whose log alpha is below ``threshold`` (default ``self.threshold``)."""
        thr = self.threshold if threshold is None else threshold
        keep = (self.log_alpha(layer, params) < thr).expand(layer.weight_shape)
        return params.weight, keep


class _LogUniformPrior(_GaussianFamily):
    """Model side of VD and sparse VD: ``W ~ LogUniform`` (improper), KL by Molchanov's approximation."""

    def model(self, layer, x):
        init = layer.weight_init
        prior = layer.fixed("prior", init, lambda: LogUniform(init).to_event(layer.weight_event_dim))
        w = pyro.sample(layer.site("weight"), prior)
        return layer.op_lrt(x, w)

    def guide(self, layer, params, plate):
        self._guide_weight(layer, params)

    def mean_forward(self, layer, params, x):
        return layer.op(x, params.weight)

    def kl(self, layer, params):
        """Molchanov et al.'s approximation summed over all weights (log alpha clipped to [-10, 10])."""
        la = self.log_alpha(layer, params)
        return _molchanov_kl(la).expand(layer.weight_shape).sum()


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
        self.max_log_alpha = None if max_log_alpha is None else _finite("max_log_alpha", max_log_alpha)
        if self.max_log_alpha is not None and self.log_alpha_init > self.max_log_alpha:
            raise ValueError(
                f"`log_alpha_init` ({log_alpha_init!r}) must not exceed `max_log_alpha` ({max_log_alpha!r})"
            )
        self.threshold = _finite("threshold", threshold)

    def init_guide(self, layer) -> LayerGuide:
        lg = LayerGuide()
        lg.weight = torch.nn.Parameter(layer.weight_init.clone())
        shape = () if self.granularity == "layer" else _unit_param_shape(layer)
        lg.log_alpha = torch.nn.Parameter(layer.weight_init.new_full(shape, self.log_alpha_init))
        return lg

    def log_alpha(self, layer, params):
        la = params.log_alpha
        return la if self.max_log_alpha is None else la.clamp(max=self.max_log_alpha)

    def _weight_posterior(self, layer, params):
        theta = params.weight
        la = self.log_alpha(layer, params)
        # sigma = sqrt(alpha) |theta|, floored so that theta = 0 still gives a valid Normal.
        scale = ((0.5 * la).exp() * theta.abs()).clamp_min(_SCALE_FLOOR)
        return DropoutNormal(theta, scale, la)


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
        lg = LayerGuide()
        lg.weight = torch.nn.Parameter(layer.weight_init.clone())
        lg.log_sigma2 = torch.nn.Parameter(torch.full_like(layer.weight_init, self.log_sigma2_init))
        return lg

    def log_alpha(self, layer, params):
        return _additive_log_alpha(params.weight, params.log_sigma2)

    def _weight_posterior(self, layer, params):
        theta, ls2 = params.weight, params.log_sigma2  # each PyroModule attribute read is a pyro.param statement
        return DropoutNormal(theta, None, _additive_log_alpha(theta, ls2), log_variance=ls2)


@register("vbd")
class VariationalBayesianDropout(_GaussianFamily):
    r"""Variational Bayesian dropout (Liu et al. 2019): hierarchical prior :math:`W \mid \gamma \sim
    \mathcal N(0, \gamma)`, :math:`\gamma \sim \mathrm{Uniform}(a, b)`, Delta guide on :math:`\gamma` at
    :math:`\gamma^* = \alpha\theta^2 + \theta^2`.

    ``granularity="weight"`` (default; eq. 18, weight compression)
        Sites ``gamma`` and ``weight`` of the weight's shape; parameters ``weight`` (:math:`\theta`) and
        ``log_sigma2`` (additive reparameterisation, :math:`\sigma^2 = \alpha\theta^2`), one :math:`\alpha` per
        weight.

    ``granularity="layer"`` (eq. 17, the classification setting of Table 1)
        The same sites with one :math:`\alpha` shared by the layer's weights, parameterised by ``log_alpha``
        (:math:`\sigma = \sqrt\alpha\,|\theta|`), as in ``vd``: the objective
        :math:`L_\mathcal{D} - \sum_{k,d} \tfrac12\log(1 + \alpha^{-1})` of Prop. 3.

    ``granularity="unit"`` (eq. 19, structured compression)
        The dropout-like layer :math:`B' = f(B) \circ W'` of eq. 19, placed on the layer's *inputs* (pruning the
        inputs of layer :math:`l` removes units of layer :math:`l-1`): a vector :math:`W'` with one entry per input
        unit / channel (site ``noise``, shape ``(in,)`` / ``(C, 1, 1)``) under the same hierarchical prior (site
        ``gamma``) and guide :math:`\mathcal N(\theta', \sigma'^2)` (parameters ``noise_loc``, starting at 1, and
        ``noise_log_sigma2``), so the layer computes :math:`\mathrm{op}(x \circ W', W)`.  The layer's own weights
        ``W`` are a point estimate (Delta guide) under a Gaussian prior :math:`\mathcal N(0, s^2)` (weight decay),
        as in structured Bayesian pruning, which eq. 19 follows.  We chose this over "one :math:`\alpha` per unit
        on the weight matrix" because it is the paper's construction: eq. 19 multiplies activations by a separate
        noise matrix whose entries share :math:`(\theta', \alpha)` per unit, and its KL is eq. 18 summed over
        units, not over weights.  Under the local reparameterisation trick :math:`W'` is drawn independently for
        every example (and shared over the positions of a channel), which is exact for the ELBO because each
        example's likelihood depends on :math:`W'` only through its own draw; ``Predictive`` draws one
        :math:`W'` per network sample.  The mean network multiplies the inputs by :math:`\theta'` (folded into
        ``W`` by ``point_weights``); a unit with :math:`\log\alpha` at or above ``threshold`` is pruned.

    Parameters
    ----------
    granularity : {"weight", "layer", "unit"}
    a, b : float
        Support of the uniform prior on :math:`\gamma`, :math:`0 < a < b`; see the module docstring for the
        defaults and why :math:`\gamma^*` lies inside.
    log_sigma2_init : float
        Initial :math:`\log\sigma^2` of the weights (``"weight"``) or of :math:`W'` (``"unit"``).
    log_alpha_init : float
        Initial :math:`\log\alpha` for ``granularity="layer"``.
    threshold : float
        :math:`\log\alpha` at or above which a weight (unit) is pruned.
    prior_scale : float
        Standard deviation :math:`s` of the Gaussian prior on ``W`` for ``granularity="unit"`` (unused otherwise).
    """

    reference = "Liu et al. 2019 (CVPR), Variational Bayesian Dropout; eq. 19 after Neklyudov et al. 2017"

    def __init__(
        self,
        granularity: str = "weight",
        a: float = 1e-16,
        b: float = 100.0,
        log_sigma2_init: float = -10.0,
        log_alpha_init: float = -8.0,
        threshold: float = 3.0,
        prior_scale: float = 1.0,
    ):
        self.granularity = _choice("granularity", granularity, ("weight", "layer", "unit"))
        self.a = check_range("a", a, 0.0, math.inf, lo_open=True, hi_open=True)
        self.b = check_range("b", b, self.a, math.inf, lo_open=True, hi_open=True)
        self.log_sigma2_init = _finite("log_sigma2_init", log_sigma2_init)
        self.log_alpha_init = _finite("log_alpha_init", log_alpha_init)
        self.threshold = _finite("threshold", threshold)
        self.prior_scale = check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True)
        # The largest float32 strictly below b (also below b in float64): the Uniform's support is [a, b).
        below = torch.nextafter(torch.tensor(self.b, dtype=torch.float32), torch.tensor(-math.inf)).item()
        if below <= self.a:
            raise ValueError(f"`b` ({b!r}) must exceed `a` ({a!r}) by more than float32 resolution")
        self._b_below = below

    # -- parameters -------------------------------------------------------------------------------------------
    def init_guide(self, layer) -> LayerGuide:
        lg = LayerGuide()
        lg.weight = torch.nn.Parameter(layer.weight_init.clone())
        if self.granularity == "weight":
            lg.log_sigma2 = torch.nn.Parameter(torch.full_like(layer.weight_init, self.log_sigma2_init))
        elif self.granularity == "layer":
            lg.log_alpha = torch.nn.Parameter(layer.weight_init.new_full((), self.log_alpha_init))
        else:
            shape = _unit_input_shape(layer)
            lg.noise_loc = torch.nn.Parameter(layer.weight_init.new_ones(shape))
            lg.noise_log_sigma2 = torch.nn.Parameter(layer.weight_init.new_full(shape, self.log_sigma2_init))
        return lg

    def _posterior(self, params) -> DropoutNormal:
        """The Gaussian posterior of ``W`` (``"weight"``, ``"layer"``) or of ``W'`` (``"unit"``)."""
        if self.granularity == "layer":
            theta = params.weight
            # sigma = sqrt(alpha) |theta|, floored so that theta = 0 gives a valid Normal and a finite KL.
            return DropoutNormal(theta, ((0.5 * params.log_alpha).exp() * theta.abs()).clamp_min(_SCALE_FLOOR))
        if self.granularity == "weight":
            loc, log_sigma2 = params.weight, params.log_sigma2
        else:
            loc, log_sigma2 = params.noise_loc, params.noise_log_sigma2
        return DropoutNormal(loc, log_variance=log_sigma2)

    def log_alpha(self, layer, params):
        if self.granularity == "layer":
            return params.log_alpha
        if self.granularity == "weight":
            return _additive_log_alpha(params.weight, params.log_sigma2)
        la = _additive_log_alpha(params.noise_loc, params.noise_log_sigma2)
        return la.reshape(_unit_param_shape(layer))

    def gamma_star(self, params) -> torch.Tensor:
        r""":math:`\gamma^* = \theta^2 + \sigma^2 = (1 + \alpha)\theta^2` (eq. 16), clamped into :math:`[a, b)`."""
        return self._gamma(self._posterior(params))

    def _gamma(self, q: DropoutNormal) -> torch.Tensor:
        """:meth:`gamma_star` of the posterior ``q``, detached (see the module docstring)."""
        return q.second_moment.detach().clamp(self.a, self._b_below)

    # -- model / guide ------------------------------------------------------------------------------------------
    def _gamma_prior(self, layer, like: torch.Tensor, shape: tuple[int, ...]) -> dist.Distribution:
        return layer.fixed(
            ("gamma", shape), like, lambda: ScalarUniform(self.a, self.b, shape, like=like).to_event(len(shape))
        )  # fmt: skip

    def model(self, layer, x):
        like = layer.weight_init
        if self.granularity != "unit":
            gamma = pyro.sample(layer.site("gamma"), self._gamma_prior(layer, like, like.shape))
            w = pyro.sample(layer.site("weight"), CenteredNormal(gamma).to_event(like.dim()))
            return layer.op_lrt(x, w)
        prior_w = layer.fixed("prior", like, lambda: gaussian_weight_prior(layer, like, self.prior_scale))
        w = pyro.sample(layer.site("weight"), prior_w)
        ushape = _unit_input_shape(layer)
        gamma = pyro.sample(layer.site("gamma"), self._gamma_prior(layer, like, ushape))
        z = pyro.sample(layer.site("noise"), CenteredNormal(gamma).to_event(len(ushape)))
        tag = getattr(z, "_bayesdrop_lrt", None)
        if tag is not None:  # local reparameterisation: an independent draw of W' for every example
            loc, variance = tag
            eps = torch.randn(x.shape[: x.dim() - layer.event_dim] + ushape, dtype=x.dtype, device=x.device)
            z = loc + variance.sqrt() * eps
        elif z.dim() > len(ushape):
            # Predictive(parallel=True): one W' per network draw, (S, *ushape) or (S, 1, *ushape); as (S, 1, *ushape)
            # it broadcasts against x, (batch, ...) or (S, batch, ...), to (S, batch, ...).
            z = z.reshape(-1, 1, *ushape)
        return layer.op(x * z, w)

    def guide(self, layer, params, plate):
        q = self._posterior(params)
        # gamma* = theta^2 + sigma^2, detached (envelope theorem, see the module docstring); theta^2 + sigma^2 and
        # sigma^2 are cached with their graphs in q: the KL and the local reparameterisation trick reuse them.
        gamma = self._gamma(q)
        q_gamma = BoundedDelta(gamma, self.a, self.b, event_dim=gamma.dim())
        if self.granularity != "unit":
            pyro.sample(layer.site("gamma"), q_gamma)
            pyro.sample(layer.site("weight"), q.to_event(gamma.dim()), infer={"lrt": True})
            return
        pyro.sample(layer.site("weight"), dist.Delta(params.weight, event_dim=layer.weight_event_dim))
        pyro.sample(layer.site("gamma"), q_gamma)
        pyro.sample(layer.site("noise"), q.to_event(gamma.dim()), infer={"lrt": True})

    # -- test time ----------------------------------------------------------------------------------------------
    def mean_forward(self, layer, params, x):
        if self.granularity != "unit":
            return layer.op(x, params.weight)
        return layer.op(x * params.noise_loc, params.weight)

    def point_weights(self, layer, params, threshold=None):
        """Posterior means (``W`` times :math:`\\theta'` for ``"unit"``) and the weights with log alpha below
        ``threshold`` (default ``self.threshold``)."""
        w, keep = super().point_weights(layer, params, threshold)
        if self.granularity == "unit":
            w = w * params.noise_loc
        return w, keep

    def kl_constant(self, layer) -> float:
        r"""The constant :math:`n_\gamma \log(b - a)` that the ``gamma`` site adds to the loss (no gradient)."""
        n = math.prod(layer.weight_shape) if self.granularity != "unit" else layer.weight_shape[1]
        return n * math.log(self.b - self.a)

    def kl(self, layer, params):
        r"""Eq. 14 at the guide's :math:`\gamma` (eq. 17, :math:`\sum \tfrac12\log(1 + \alpha^{-1})`, when
        :math:`\gamma^*` lies in :math:`[a, b)`), plus :math:`n_\gamma \log(b - a)`, plus for ``"unit"`` the
        Gaussian prior's :math:`-\log \mathcal N(W; 0, s^2)` of the point-estimate weights."""
        q = self._posterior(params)
        loc, sigma2 = q.loc, q.variance
        gamma = self._gamma(q)
        kl_w = 0.5 * (gamma / sigma2).log() + (sigma2 + loc.square()) / (2 * gamma) - 0.5
        total = kl_w.sum() + gamma.numel() * math.log(self.b - self.a)
        if self.granularity == "unit":
            s2 = self.prior_scale**2
            total = total + (0.5 * params.weight.square() / s2 + 0.5 * math.log(2 * math.pi * s2)).sum()
        return total
