r"""Structured Bayesian Pruning (Neklyudov et al. 2017): log-normal multiplicative noise per unit, pruned by its
signal-to-noise ratio.

For users who want a smaller network, not only a sparser one: every input unit of a layer (an input feature, a
hidden unit of the layer before, a feature map of a convolution) is multiplied by a noise :math:`\theta_i > 0`, and
units whose noise is mostly noise are removed whole.

Model and guide
---------------
On the noise site of a layer (one :math:`\theta` per unit, the site's unit shape: ``(in,)`` for a ``Linear``,
``(C, 1, 1)`` for a ``Conv2d``), with bounds :math:`a < b` on :math:`\log\theta`,

.. math::
    \text{model: } \log\theta_i \sim \mathrm{Uniform}(a, b) \quad(\text{the truncated log-uniform prior,
    eq. 7}),\qquad w \sim \mathcal N(0, s^2 I);

    \text{guide: } \log\theta_i \sim \mathcal N(\mu_i, \sigma_i^2)\ \text{truncated to } [a, b]
    \quad(\text{the truncated log-normal, eq. 8}),\qquad q(w) = \delta_{\hat w}.

The KL of a unit is the same in :math:`\theta` and in :math:`\log\theta` (one invertible map), so it is the
negative entropy of a truncated normal plus :math:`\log(b - a)` (eq. 10):

.. math::
    \mathrm{KL} = \log(b - a) - \tfrac12\log(2\pi e \sigma^2) - \log Z
    - \frac{\alpha\varphi(\alpha) - \beta\varphi(\beta)}{2Z},\qquad
    \alpha = \frac{a - \mu}{\sigma},\ \beta = \frac{b - \mu}{\sigma},\ Z = \Phi(\beta) - \Phi(\alpha),

registered for the pair (:class:`TruncatedLogNormal`, :class:`TruncatedLogUniform`), so the ELBO has no Monte Carlo
term for it.  The paper's bounds are :math:`a = -20`, :math:`b = 0` (:math:`\theta \le 1`).  Under
:func:`bayesdrop.fit` (the local reparameterisation handler) the noise is drawn for every example, as the paper
trains (its sec. 4.2), from the inverse CDF (a reparameterised draw); a draw of the guide outside training is one
:math:`\theta` per network.

Test time and pruning
---------------------
The test-time network multiplies each unit by :math:`\mathbb E\theta` (eq. 11),

.. math::
    \mathbb E\theta = e^{\mu + \sigma^2/2}\,\frac{\Phi(\beta - \sigma) - \Phi(\alpha - \sigma)}{Z},\qquad
    \mathbb E\theta^2 = e^{2\mu + 2\sigma^2}\,\frac{\Phi(\beta - 2\sigma) - \Phi(\alpha - 2\sigma)}{Z},

and a unit whose signal-to-noise ratio :math:`\mathrm{SNR} = \mathbb E\theta / \sqrt{\mathrm{Var}\,\theta}` is below
``threshold`` (the paper's 1) is pruned: :func:`bayesdrop.compress.prune` removes its weights, units and channels.
:func:`bayesdrop.dropout_rates` reports :math:`\mathrm{SNR}^2 / (1 + \mathrm{SNR}^2)`, the keep probability of the
Gaussian dropout with the same :math:`\mathrm{Var}\,\theta / (\mathbb E\theta)^2 = \alpha = p / (1 - p)`, so the
pruning rule is a keep probability below 1/2.

Example
-------
>>> net = bd.models.mlp(64, [300, 100], 10, method="sbp")
>>> model = bd.Classifier(net, num_data=len(x)); guide = bd.DropoutGuide(model)
>>> bd.fit(model, guide, (x, y))
>>> bd.compress.report(model, guide).architecture       # units kept per layer, e.g. '41-52-30-10'
"""

from __future__ import annotations

import math
from typing import Any

import pyro
import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints, register_kl
from torch.special import log_ndtr, ndtr, ndtri

from ..sites import per_example_shape, site_shaped
from . import register
from .base import Capabilities, LayerGuide, PointWeights, TrainingDefaults, check_range, real_number, site_param

__all__ = ["StructuredBayesianPruning", "TruncatedLogNormal", "TruncatedLogUniform"]

_HALF_LOG_2PI_E = 0.5 * math.log(2 * math.pi * math.e)


def _log_normal_mass(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(\Phi(hi) - \Phi(lo))` for ``lo <= hi``, accurate in both tails (the upper tail mirrored)."""
    upper = lo > 0
    lo, hi = torch.where(upper, -hi, lo), torch.where(upper, -lo, hi)
    l_hi, l_lo = log_ndtr(hi), log_ndtr(lo)
    tiny = torch.finfo(l_hi.dtype).eps
    return l_hi + torch.log(-torch.expm1((l_lo - l_hi).clamp(max=-tiny)))


class TruncatedLogNormal(TorchDistribution):
    r""":math:`\theta` with :math:`\log\theta \sim \mathcal N(\mu, \sigma^2)` truncated to ``[a, b]``.

    Parameters
    ----------
    loc, scale : torch.Tensor
        :math:`\mu` and :math:`\sigma > 0` of :math:`\log\theta`, broadcast to the batch shape.
    a, b : float
        The bounds of :math:`\log\theta`, ``a < b``.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, a: float, b: float, validate_args: bool | None = None):
        self.loc, self.scale = torch.broadcast_tensors(torch.as_tensor(loc), torch.as_tensor(scale))
        self.a, self.b = float(a), float(b)
        super().__init__(self.loc.shape, validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.interval(math.exp(self.a), math.exp(self.b))

    def expand(self, batch_shape: Any, _instance: Any = None) -> TruncatedLogNormal:
        shape = torch.Size(batch_shape)
        return TruncatedLogNormal(self.loc.expand(shape), self.scale.expand(shape), self.a, self.b)

    @property
    def alpha(self) -> torch.Tensor:
        return (self.a - self.loc) / self.scale

    @property
    def beta(self) -> torch.Tensor:
        return (self.b - self.loc) / self.scale

    @property
    def log_z(self) -> torch.Tensor:
        r""":math:`\log Z = \log(\Phi(\beta) - \Phi(\alpha))`."""
        return _log_normal_mass(self.alpha, self.beta)

    def _log_moment(self, k: int) -> torch.Tensor:
        r""":math:`\log \mathbb E \theta^k = k\mu + k^2\sigma^2/2 + \log(\Phi(\beta - k\sigma) - \Phi(\alpha - k\sigma))
        - \log Z`."""
        s = self.scale
        mass = _log_normal_mass(self.alpha - k * s, self.beta - k * s)
        return k * self.loc + 0.5 * (k * s) ** 2 + mass - self.log_z

    @property
    def mean(self) -> torch.Tensor:
        return self._log_moment(1).exp()

    @property
    def variance(self) -> torch.Tensor:
        m1, m2 = self._log_moment(1), self._log_moment(2)
        return m2.exp() * -torch.expm1((2 * m1 - m2).clamp(max=0))

    def snr(self) -> torch.Tensor:
        r""":math:`\mathbb E\theta / \sqrt{\mathrm{Var}\,\theta} = (\mathbb E\theta^2 / (\mathbb E\theta)^2 - 1)^{-1/2}`."""
        m1, m2 = self._log_moment(1), self._log_moment(2)
        return torch.expm1((m2 - 2 * m1).clamp_min(torch.finfo(m1.dtype).tiny)).rsqrt()

    def log_entropy(self) -> torch.Tensor:
        r"""The entropy of :math:`\log\theta` (a truncated normal): :math:`\tfrac12\log(2\pi e\sigma^2) + \log Z +
        (\alpha\varphi(\alpha) - \beta\varphi(\beta)) / (2Z)`."""
        alpha, beta, log_z = self.alpha, self.beta, self.log_z
        log_phi = -0.5 * math.log(2 * math.pi) - log_z  # log phi(x) / Z without the x^2 / 2

        def term(x: torch.Tensor) -> torch.Tensor:  # x phi(x) / Z, zero at an infinite bound
            return x * torch.exp(log_phi - 0.5 * x * x)

        return _HALF_LOG_2PI_E + self.scale.log() + log_z + 0.5 * (term(alpha) - term(beta))

    def rsample(self, sample_shape: Any = torch.Size()) -> torch.Tensor:
        """Inverse-CDF draws, reparameterised in ``loc`` and ``scale`` (the tail nearer the mass is used)."""
        shape = self._extended_shape(sample_shape)
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
        alpha, beta = self.alpha.expand(shape), self.beta.expand(shape)
        upper = alpha > 0  # the mass in the upper tail: draw -x on [-beta, -alpha] instead
        lo, hi = torch.where(upper, -beta, alpha), torch.where(upper, -alpha, beta)
        p_lo = ndtr(lo)
        x = ndtri((p_lo + u * (ndtr(hi) - p_lo)).clamp(torch.finfo(u.dtype).tiny, 1 - torch.finfo(u.dtype).eps))
        x = torch.where(upper, -x, x)
        log_theta = (self.loc + self.scale * x).clamp(self.a, self.b)
        return log_theta.exp()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_theta = value.log()
        z = (log_theta - self.loc) / self.scale
        return -0.5 * z * z - 0.5 * math.log(2 * math.pi) - self.scale.log() - self.log_z - log_theta


class TruncatedLogUniform(TorchDistribution):
    r""":math:`\theta` with :math:`\log\theta \sim \mathrm{Uniform}(a, b)`: density :math:`1 / ((b - a)\theta)` on
    :math:`[e^a, e^b]`.

    Parameters
    ----------
    a, b : float
        The bounds of :math:`\log\theta`, ``a < b``.
    batch_shape : torch.Size
    like : torch.Tensor
        Sets the dtype and device of draws.
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    has_rsample = True

    def __init__(self, a: float, b: float, batch_shape: Any = torch.Size(), *, like: torch.Tensor):
        self.a, self.b, self.like = float(a), float(b), like
        super().__init__(torch.Size(batch_shape), validate_args=False)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.interval(math.exp(self.a), math.exp(self.b))

    def expand(self, batch_shape: Any, _instance: Any = None) -> TruncatedLogUniform:
        return TruncatedLogUniform(self.a, self.b, batch_shape, like=self.like)

    @property
    def mean(self) -> torch.Tensor:
        return self.like.new_full(self.batch_shape, (math.exp(self.b) - math.exp(self.a)) / (self.b - self.a))

    def rsample(self, sample_shape: Any = torch.Size()) -> torch.Tensor:
        u = torch.rand(self._extended_shape(sample_shape), dtype=self.like.dtype, device=self.like.device)
        return (self.a + (self.b - self.a) * u).exp()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return -value.log() - math.log(self.b - self.a)


@register_kl(TruncatedLogNormal, TruncatedLogUniform)
def _kl_truncated_log_normal_log_uniform(q: TruncatedLogNormal, p: TruncatedLogUniform) -> torch.Tensor:
    if (q.a, q.b) != (p.a, p.b):
        raise ValueError(f"KL of truncated laws on different intervals: [{q.a}, {q.b}] and [{p.a}, {p.b}]")
    return math.log(p.b - p.a) - q.log_entropy()


@register("sbp")
class StructuredBayesianPruning(PointWeights):
    r"""Structured Bayesian Pruning (Neklyudov et al. 2017, "Structured Bayesian pruning via log-normal
    multiplicative noise", NeurIPS): one multiplicative noise per input unit or feature map, a truncated
    log-normal guide against a truncated log-uniform prior (module docstring).

    Parameters
    ----------
    a, b : float
        Bounds of :math:`\log\theta` (the paper's -20 and 0).
    mu_init, log_sigma_init : float
        Initial :math:`\mu` and :math:`\log\sigma` of every unit's guide (every unit kept at the start:
        :math:`\mathbb E\theta \approx 1`, SNR about 260).
    threshold : float
        Units with a signal-to-noise ratio below it are pruned (the paper's 1).
    prior_scale : float
        Standard deviation ``s`` of the Gaussian prior on the weights (> 0): weight decay.

    Raises
    ------
    ValueError
        If ``a >= b``, ``mu_init`` is outside ``[a, b]``, or a value is out of range.
    """

    reference = "Neklyudov et al. 2017 (NeurIPS)"
    capabilities = Capabilities(analytic_kl=True, lrt=True, structured=True, learns_rates=True)
    fit_defaults = TrainingDefaults(lr_scale={"mu": 3.0, "log_sigma": 3.0})

    def __init__(
        self,
        a: float = -20.0,
        b: float = 0.0,
        mu_init: float = 0.0,
        log_sigma_init: float = -5.0,
        threshold: float = 1.0,
        prior_scale: float = 1.0,
    ):
        self.a = check_range("a", a, -math.inf, math.inf, lo_open=True, hi_open=True)
        self.b = check_range("b", b, -math.inf, math.inf, lo_open=True, hi_open=True)
        if not self.a < self.b:
            raise ValueError(f"the truncation needs `a` < `b`, got a={a!r}, b={b!r}")
        if not self.a <= real_number(mu_init, "mu_init") <= self.b:
            raise ValueError(f"`mu_init` must lie in [a, b] = [{self.a:g}, {self.b:g}], got {mu_init!r}")
        self.mu_init = float(mu_init)
        self.log_sigma_init = check_range("log_sigma_init", log_sigma_init, -math.inf, math.inf, lo_open=True,
                                          hi_open=True)  # fmt: skip
        self.threshold = check_range("threshold", threshold, 0.0, math.inf, hi_open=True)
        self.prior_scale = check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True)

    def init_guide(self, layer: Any) -> LayerGuide:
        lg = super().init_guide(layer)
        for site in layer.noise_sites.values():
            like = layer.like
            mu = like.new_full(site.unit_shape, self.mu_init)
            lg.register_parameter(site_param(site.name, "mu"), torch.nn.Parameter(mu))
            log_sigma = like.new_full(site.unit_shape, self.log_sigma_init)
            lg.register_parameter(site_param(site.name, "log_sigma"), torch.nn.Parameter(log_sigma))
        return lg

    def posterior(self, params: LayerGuide, site: str = "noise") -> TruncatedLogNormal:
        """The guide's law of the noise of ``site``, batch shape the site's unit shape."""
        mu, log_sigma = getattr(params, site_param(site, "mu")), getattr(params, site_param(site, "log_sigma"))
        return TruncatedLogNormal(mu, log_sigma.exp(), self.a, self.b)

    def noise_model(self, layer, site, x):
        prior = TruncatedLogUniform(self.a, self.b, site.unit_shape, like=layer.like)
        theta = site_shaped(
            pyro.sample(layer.site(site.name), prior.to_event(len(site.unit_shape))), site.unit_shape, per_draw=True
        )
        law = getattr(theta, "_bayesdrop_local", None)
        if law is None:  # one draw per network (prediction, Predictive)
            return theta
        lead = per_example_shape(x, site.unit_shape)[: -len(site.unit_shape)]
        return law.rsample(lead)  # training: one draw per example

    def noise_guide(self, layer, site, params, plate):
        q = self.posterior(params, site.name)
        pyro.sample(layer.site(site.name), q.to_event(len(site.unit_shape)), infer={"lrt": True})

    def snr(self, layer: Any, params: LayerGuide, site: str = "noise") -> torch.Tensor:
        """The signal-to-noise ratio of every unit of ``site``, its unit shape."""
        return self.posterior(params, site).snr()

    def keep_prob(self, layer, params):
        snr2 = self.snr(layer, params).square()
        return (snr2 / (1 + snr2)).reshape(-1)

    def keep_masks(self, layer, params, threshold=None):
        thr = self.threshold if threshold is None else threshold
        return {s: self.snr(layer, params, s) >= thr for s in layer.noise_sites}

    def pruning_rule(self) -> str:
        return f"SNR < {self.threshold:g}"
