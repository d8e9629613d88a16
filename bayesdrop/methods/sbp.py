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
:func:`bayesdrop.fit` (the local reparameterisation handler) the noise is drawn for every example from the inverse
CDF (a reparameterised draw): the expected ELBO of one draw per minibatch, with a gradient of lower variance
(Kingma et al. 2015's local reparameterisation); a draw of the guide outside training is one :math:`\theta` per
network.

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
from torch.special import log_ndtr, ndtri

from ..checks import check_range, real_number
from ..moments import normal_cdf, wide_dtype
from ..sites import per_example_shape, site_shaped
from . import register
from .base import Capabilities, LayerGuide, PointWeights, TrainingDefaults, site_param

__all__ = ["StructuredBayesianPruning", "TruncatedLogNormal", "TruncatedLogUniform"]

_HALF_LOG_2PI_E = 0.5 * math.log(2 * math.pi * math.e)
_TAIL = -10.0  # beyond a bound by more than 10 sigma, draws come from the tail's series (_truncated_normal_icdf)
_KL_TAIL = -30.0  # beyond a bound by more than 30 sigma, the KL takes the tail's series (log_entropy)
_S = (1.0, 1.0, 3.0, 15.0, 105.0, 945.0)  # (2k - 1)!!, k = 0, 1, ...: the series of _series
_T = (1.0, 3.0, 15.0, 105.0, 945.0, 10395.0)  # (2k + 1)!!
_U = (2.0, 12.0, 90.0, 840.0, 9450.0)  # 2(k + 1) (2k + 1)!!: S - T = v U


def _mirrored(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(upper, lo', hi')``: the interval ``[lo, hi]`` of a standard normal, mirrored to ``[-hi, -lo]`` where it
    lies above 0 (``upper``), so that ``lo' <= 0``: its mass spans 0 or sits at its upper end ``hi'``, in the lower
    tail (the normal is symmetric)."""
    upper = lo > 0
    return upper, torch.where(upper, -hi, lo), torch.where(upper, -lo, hi)


def _log_normal_mass(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(\Phi(hi) - \Phi(lo))` for ``lo <= hi``, accurate in both tails (the upper tail mirrored)."""
    _, lo, hi = _mirrored(lo, hi)
    l_hi, l_lo = log_ndtr(hi), log_ndtr(lo)
    tiny = torch.finfo(l_hi.dtype).eps
    return l_hi + torch.log(-torch.expm1((l_lo - l_hi).clamp(max=-tiny)))


def _series(x: torch.Tensor, coefficients: tuple[float, ...] = _S[:3]) -> torch.Tensor:
    r""":math:`\sum_k (-1)^k c_k v^k`, :math:`v = x^{-2}`: the lower tail's asymptotic series (Abramowitz & Stegun
    1964, 26.2.12) for ``x <= -10``, by the ``coefficients`` :math:`c_k` of :data:`_S` (:math:`S`, with
    :math:`\Phi(x) = \varphi(x) S(x)/|x|`), :data:`_T` (:math:`T = x^2(1 - S)`) or :data:`_U` (:math:`(S - T)/v`).
    The first term left out bounds the error: at :math:`v \le 0.01`, :math:`1.5 \cdot 10^{-5}` for :math:`S` to 3
    terms, :math:`10^{-8}` to 6."""
    v = (x * x).reciprocal()
    out = coefficients[-2] - coefficients[-1] * v
    for c in reversed(coefficients[:-2]):
        out = c - v * out
    return out


def _tail_log_rho(lo: torch.Tensor, hi: torch.Tensor, s_lo: torch.Tensor, s_hi: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(\Phi(lo) / \Phi(hi))` for ``lo <= hi <= -10``, given their series ``s_lo``, ``s_hi``
    (:func:`_series`), without cancelling :math:`x^2/2`: :math:`(hi - lo)(hi + lo)/2 - \log(1 - (hi - lo)/hi) +
    \log(S(lo)/S(hi))`."""
    w = hi - lo
    return 0.5 * w * (hi + lo) - torch.log1p(-w / hi) + torch.log(s_lo / s_hi)


def _tail_distance(u: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    r""":math:`d` of :func:`_truncated_normal_icdf` where ``hi < -10`` (float64, same shapes).

    :math:`\Phi` underflows there (float32's smallest normal is :math:`\Phi(-13.2)`), and the equation is solved
    relative to the bound, for :math:`d` itself.  With the tail's Mills ratio :math:`\Phi(x) = \varphi(x) S(x)
    / |x|` (:func:`_series`, 6 terms) it reads

    .. math::
        g(d) = hi\,d - \tfrac12 d^2 - \log(1 - d/hi) + \log\frac{S(hi - d)}{S(hi)} - L = 0,\qquad
        L = \log\bigl(u + (1 - u)\,\Phi(lo)/\Phi(hi)\bigr) \le 0,

    with :math:`g'(d) = x / S(x)` at :math:`x = hi - d`.  The start solves the quadratic without the logarithms,
    :math:`d_0 = 2L / (hi - \sqrt{hi^2 - 2L})` (a relative error of about :math:`10^{-2}`); two Newton steps
    follow."""
    s_hi = _series(hi, _S)
    log_rho = _tail_log_rho(lo, hi, _series(lo, _S), s_hi)
    u = u.clamp_min(torch.finfo(u.dtype).tiny)
    big_l = u.log() + torch.log1p((1 - u) * log_rho.exp() / u)  # log(u + (1 - u) rho), exact next to u = 1
    d = 2 * big_l / (hi - (hi * hi - 2 * big_l).sqrt())
    for _ in range(2):
        x = hi - d
        s = _series(x, _S)
        d = d - (d * (hi - 0.5 * d) - torch.log1p(-d / hi) + torch.log(s / s_hi) - big_l) * s / x
    return d


class _TruncatedNormalDistance(torch.autograd.Function):
    """:func:`_truncated_normal_icdf` as one node of the autograd graph: its forward computes the tail only where a
    unit has one, its backward is the implicit derivative."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        tiny, eps = torch.finfo(u.dtype).tiny, torch.finfo(u.dtype).eps
        h = hi.clamp_min(_TAIL)
        p_lo, p_hi = normal_cdf(lo), normal_cdf(h)
        d = h - ndtri((p_lo + u * (p_hi - p_lo)).clamp(tiny, 1 - eps))
        tail = (hi < _TAIL).expand_as(d)
        if bool(tail.any()):  # run eagerly even in a recorded graph: a Python op
            work = wide_dtype(u)
            d[tail] = _tail_distance(*(t.expand_as(d)[tail].to(work) for t in (u, lo, hi))).to(d.dtype)
        ctx.save_for_backward(u, lo, hi, d)
        return d

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor, torch.Tensor]:
        u, lo, hi, d = ctx.saved_tensors
        u64, lo64, hi64, d64, g64 = (t.to(wide_dtype(u)) for t in (u, lo, hi, d, grad))
        x = hi64 - d64
        # phi(x) dx = (1 - u) phi(lo) dlo + u phi(hi) dhi; d = hi - x; phi(hi) / phi(x) = exp(-d (hi - d / 2))
        d_hi = -torch.expm1(u64.log() - d64 * (hi64 - 0.5 * d64))
        d_lo = -(1 - u64) * torch.exp(0.5 * (x - lo64) * (x + lo64))
        return None, (g64 * d_lo).sum_to_size(lo.shape).to(lo.dtype), (g64 * d_hi).sum_to_size(hi.shape).to(hi.dtype)


def _truncated_normal_icdf(u: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    r"""The distance :math:`d = hi - x \ge 0` of the :math:`x \in [lo, hi]` with
    :math:`\Phi(x) = (1 - u)\,\Phi(lo) + u\,\Phi(hi)`, for ``lo <= min(hi, 0)``, differentiable in ``lo`` and ``hi``.

    Where :math:`hi \ge -10`, :math:`\Phi(x) \ge u\,\Phi(-10) > 10^{-31}` is a normal float and ``ndtri``
    inverts it, with :math:`\Phi` from ``erfc`` (:func:`~bayesdrop.moments.normal_cdf`); below,
    :func:`_tail_distance` solves the equation in the tail (a relative error below :math:`10^{-8}`, float32's
    rounding aside: ``tests/test_sbp.py`` checks both against Brent's method on scipy's ``log_ndtr``).  The derivatives are the implicit ones, from
    :math:`\varphi(x)\,\mathrm dx = (1 - u)\varphi(lo)\,\mathrm d lo + u\varphi(hi)\,\mathrm d hi`, in float64.

    Parameters
    ----------
    u : torch.Tensor
        Uniform draws in ``[0, 1)``, ``(*sample, *batch)``.
    lo, hi : torch.Tensor
        The standardised bounds, ``batch`` (they broadcast against ``u``).
    """
    return _TruncatedNormalDistance.apply(u, lo, hi)


class _TruncatedNormalEntropy(torch.autograd.Function):
    r"""The entropy of the standard normal truncated to :math:`[\alpha, \beta]`, :math:`\tfrac12\log(2\pi e) + \log Z +
    (\alpha\varphi(\alpha) - \beta\varphi(\beta))/(2Z)` (:meth:`TruncatedLogNormal.log_entropy`), as one node of
    the autograd graph, in float64 (but on MPS), with the mass mirrored next to the upper bound :math:`hi` of
    :math:`[lo, hi]` (the entropy is symmetric), and its derivatives in closed form,

    .. math::
        \frac{\partial H}{\partial hi} = \frac{\varphi(hi)}{2Z}\bigl(1 + hi^2 + G\bigr),\quad
        \frac{\partial H}{\partial lo} = -\frac{\varphi(lo)}{2Z}\bigl(1 + lo^2 + G\bigr),\quad
        G = \frac{hi\,\varphi(hi) - lo\,\varphi(lo)}{Z}.

    Beyond 30 :math:`\sigma` (:math:`hi < -30`) both are written with :math:`\rho = \Phi(lo)/\Phi(hi)` and the
    series :math:`S, T, U` of :func:`_series` (4 terms: :math:`10^{-9}`), without the terms of size :math:`hi^2`
    that cancel: :math:`\varphi(hi)/Z = |hi| / (S(hi)(1 - \rho))`,
    :math:`1 + hi^2 + G = (U(hi)\,v / S(hi) + \rho\,(lo^2/S(lo) - 1 - hi^2)) / (1 - \rho)`, and the entropy
    as in :meth:`TruncatedLogNormal.log_entropy`."""

    @staticmethod
    def forward(ctx: Any, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        work = wide_dtype(alpha)
        upper, lo, hi = _mirrored(alpha, beta)
        lo, hi = lo.to(work), hi.to(work)
        log_z = _log_normal_mass(lo, hi)
        log_phi = -0.5 * math.log(2 * math.pi) - log_z  # log phi(x) / Z without the x^2 / 2
        m_lo, m_hi = torch.exp(log_phi - 0.5 * lo * lo), torch.exp(log_phi - 0.5 * hi * hi)  # phi / Z
        h = _HALF_LOG_2PI_E + log_z + 0.5 * (lo * m_lo - hi * m_hi)
        g = hi * m_hi - lo * m_lo
        d_hi, d_lo = 0.5 * m_hi * (1 + hi * hi + g), -0.5 * m_lo * (1 + lo * lo + g)
        tail = hi < _KL_TAIL
        if bool(tail.any()):  # run eagerly even in a recorded graph: a Python op
            lo_t, hi_t = lo[tail], hi[tail]
            s_h, s_l = _series(hi_t, _S[:4]), _series(lo_t, _S[:4])
            log_rho = _tail_log_rho(lo_t, hi_t, s_l, s_h)
            rho, keep = log_rho.exp(), -torch.expm1(log_rho)  # rho, 1 - rho
            t_h, t_l = _series(hi_t, _T[:4]), _series(lo_t, _T[:4])
            ratio = (rho * ((hi_t - lo_t) * (hi_t + lo_t) - t_l / s_l) + t_h / s_h) / keep
            h[tail] = 0.5 + 0.5 * ratio + torch.log(s_h / -hi_t) + keep.log()
            m_hi, m_lo = -hi_t / (s_h * keep), -rho * lo_t / (s_l * keep)
            u_h = _series(hi_t, _U[:4]) / (hi_t * hi_t)
            d_hi[tail] = 0.5 * m_hi * (u_h / s_h + rho * (lo_t * lo_t / s_l - 1 - hi_t * hi_t)) / keep
            d_lo[tail] = -0.5 * m_lo * (1 + lo_t * lo_t - hi_t * hi_t / (s_h * keep) + rho * lo_t * lo_t / (s_l * keep))
        # back to (alpha, beta): mirrored, d/d alpha = -d/d hi and d/d beta = -d/d lo
        ctx.save_for_backward(torch.where(upper, -d_hi, d_lo), torch.where(upper, -d_lo, d_hi))
        return h.to(alpha.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d_alpha, d_beta = ctx.saved_tensors
        g = grad.to(d_alpha.dtype)
        return (g * d_alpha).to(grad.dtype), (g * d_beta).to(grad.dtype)


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
        (\alpha\varphi(\alpha) - \beta\varphi(\beta)) / (2Z)`.

        Computed in float64 (but on MPS, which has none): float32 cancels :math:`\beta^2/2` between :math:`\log Z`
        and :math:`\beta\varphi(\beta)/(2Z)`, where the mass lies beyond a bound (:math:`\beta < 0` or
        :math:`\alpha > 0`), and the KL's derivative was 2 % off at :math:`\beta = -10` and of the wrong sign from
        about -30; float64 holds to 1e-5 at -100.  Beyond 30 :math:`\sigma`, with the mass mirrored next to the
        upper bound :math:`hi < -30` of :math:`[lo, hi]`, :math:`\rho = \Phi(lo)/\Phi(hi)` (:func:`_tail_log_rho`)
        and the series :math:`S`, :math:`T` of :func:`_series` (to 4 terms: :math:`10^{-9}`; the derivatives in
        closed form, :class:`_TruncatedNormalEntropy`),

        .. math::
            H = \log\sigma + \tfrac12 + \frac{T(hi)}{2 S(hi)(1 - \rho)}
              + \frac{\rho}{2(1 - \rho)}\Bigl((hi - lo)(hi + lo) - \frac{T(lo)}{S(lo)}\Bigr)
              + \log\frac{S(hi)}{|hi|} + \log(1 - \rho).
        """
        return self.scale.log() + _TruncatedNormalEntropy.apply(self.alpha, self.beta)

    def rsample(self, sample_shape: Any = torch.Size()) -> torch.Tensor:
        r"""Inverse-CDF draws, reparameterised in ``loc`` and ``scale``, from the tail nearer the mass: also a law
        whose mass lies far beyond a bound (a kept unit's :math:`\mu` above ``b``) draws next to that bound, at the
        distance and with the gradients of the truncated law (:func:`_truncated_normal_icdf`)."""
        shape = self._extended_shape(sample_shape)
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
        alpha, beta = self.alpha, self.beta
        upper, lo, hi = _mirrored(alpha, beta)  # the upper tail's mass: draw -x on [-beta, -alpha] instead
        d = _truncated_normal_icdf(u, lo, hi)  # x = hi - d, or -(hi - d) = alpha + d in the upper tail
        # log theta = mu + sigma x = b - sigma d, or a + sigma d: no cancellation of mu + sigma x next to a bound
        bound = torch.where(upper, self.scale.new_tensor(self.a), self.scale.new_tensor(self.b))
        return (bound + torch.where(upper, self.scale, -self.scale) * d).clamp(self.a, self.b).exp()

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
        :math:`\mathbb E\theta \approx 1`, SNR about 247).
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
        for site in layer.drawn_noise_sites.values():
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

    def keep_prob(self, layer, params, site=None):
        snr2 = self.snr(layer, params, self.rate_site(layer, site)).square()
        return (snr2 / (1 + snr2)).reshape(-1)

    def keep_masks(self, layer, params, threshold=None):
        thr = self.threshold if threshold is None else self.numeric_threshold(threshold)
        return {s: self.snr(layer, params, s) >= thr for s in layer.drawn_noise_sites}

    def pruning_rule(self) -> str:
        return f"SNR < {self.threshold:g}"
