"""Distributions that torch and Pyro lack, with their KL registrations.

``LogitsCategorical``
    The classification likelihood: a Categorical over unnormalised logits
    whose ``log_prob`` of class labels is one fused cross-entropy call.

``StraightThroughBernoulli``
    A Bernoulli gate whose sample carries the straight-through gradient of
    Srinivas & Babu (2016), section 2.5: ``d theta / d k = 1``.  It is
    reparameterised (``has_rsample = True``), so ``TraceMeanField_ELBO`` accepts
    it in a guide and uses the registered analytic KL instead of REINFORCE.

``LogUniform``, ``DropoutNormal``
    The improper log-uniform prior of variational dropout (Kingma et al. 2015;
    Liu et al. 2019, eq. 8) and the Gaussian-dropout posterior
    N(theta, alpha theta^2) carrying its log alpha, with KL(Normal || LogUniform)
    registered by Molchanov et al.'s (2017) approximation
    (:func:`molchanov_kl`).

``CenteredNormal``, ``ScalarUniform``, ``BoundedDelta``
    The hierarchical prior of variational Bayesian dropout (Liu et al. 2019,
    eq. 11; see :mod:`bayesdrop.methods.gaussian`): w | gamma ~ N(0, gamma)
    parameterised by its variance, with the closed-form KL of eq. 14 from a
    Normal guide; gamma ~ Uniform(a, b) with scalar bounds and a cheap log
    density; and the Delta guide clamped into its support, whose KL is the
    constant n log(b - a).

``ConcreteDropoutMask``, ``EntropicRate``, ``PowerFunction``
    Concrete dropout (Gal, Hron & Kendall 2017; see :mod:`bayesdrop.methods.concrete`): the inverted relaxed
    Bernoulli mask :math:`\\tilde z / (1 - p)` of temperature t (eq. 5), with the KL between two equal laws
    registered (0), the entropic prior :math:`\\pi_K(p) \\propto \\exp(K H(p))` on a drop rate, whose KL from
    a point mass is the objective's :math:`-K H(p)` plus a constant, and the prior Beta(a, 1) on the keep
    probability that scales the weight decay.

``SigmaPointAverage``
    Fast dropout (Wang & Manning 2013; see :mod:`bayesdrop.methods.fast_dropout`): a likelihood's log density
    averaged over the sigma points of the network output's Gaussian approximation, the expected log-likelihood
    of the deterministic objective.

Further families register here as they land.
"""

from __future__ import annotations

import functools
import math
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from pyro.distributions import (
    Bernoulli,
    Beta,
    Categorical,
    Delta,
    Independent,
    MaskedDistribution,
    Normal,
    TorchDistribution,
    Uniform,
)
from torch.distributions import Normal as TorchNormal
from torch.distributions import constraints, kl_divergence, register_kl
from torch.distributions.utils import clamp_probs, lazy_property
from torch.types import _size  # the sample-shape type of torch.distributions.Distribution.sample

from .checks import check_range

__all__ = [
    "LogitsCategorical",
    "StraightThroughBernoulli",
    "FixedNoise",
    "same_fixed_law",
    "LogUniform",
    "DropoutNormal",
    "ScalarUniform",
    "BoundedDelta",
    "CenteredNormal",
    "IsotropicNormal",
    "molchanov_kl",
    "MOLCHANOV_K",
    "LOG_ALPHA_CLIP",
    "base_distribution",
    "ConcreteDropoutMask",
    "EntropicRate",
    "PowerFunction",
    "entropic_log_normaliser",
    "SigmaPointAverage",
]


def base_distribution(fn: torch.distributions.Distribution) -> torch.distributions.Distribution:
    """``fn`` without its ``Independent`` and mask wrappers (``.to_event(...)``, ``.mask(...)``)."""
    while isinstance(fn, (Independent, MaskedDistribution)):
        fn = fn.base_dist
    return fn


def _broadcast_shape(*shapes: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes``, skipped when the shapes are equal (it costs ~50 us per call, several per step)."""
    first = shapes[0]
    return first if all(s == first for s in shapes) else torch.broadcast_shapes(*shapes)


def _expand_to(t: torch.Tensor, *shapes: torch.Size) -> torch.Tensor:
    """``t`` expanded to the broadcast of ``shapes``."""
    shape = _broadcast_shape(*shapes)
    return t if t.shape == shape else t.expand(shape)


def _bernoulli_log_prob(probs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``Bernoulli(probs).log_prob`` of the draws ``keep`` (bool) without materialising ``probs``' broadcast: the
    logs are taken on ``probs`` with its expanded (stride-0) axes cut to size 1, then picked per entry.  A mask per
    weight and example (DropConnect) expands one keep probability to every entry; ``Bernoulli.log_prob`` would
    compute its logits and a cross-entropy over all of them, most of a step.  Probabilities clamped as
    ``Bernoulli``'s logits clamp them, so that the values agree to rounding."""
    compact = probs[tuple(slice(0, 1) if st == 0 else slice(None) for st in probs.stride())]
    compact = clamp_probs(compact)
    return torch.where(keep, compact.log(), torch.log1p(-compact))


def _bernoulli_draw(probs: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Exact Bernoulli draws of ``probs``, times ``scale``: 0 or ``scale``.  ``rand < p`` is ~3x faster than
    ``torch.bernoulli`` on CPU; the comparison and the scale are taken in place on the uniform draws, one tensor
    and three passes over it (a boolean, its cast and the product were five)."""
    u = torch.rand(probs.shape, dtype=probs.dtype, device=probs.device)
    u.lt_(probs)  # 1.0 where u < p, else 0.0
    return u if scale == 1.0 else u.mul_(scale)


class LogitsCategorical(Categorical):
    r"""``Categorical(logits=logits)`` that scores class labels by one fused cross-entropy call.

    Pyro's ``Categorical`` normalises the logits when it is built
    (:math:`\ell - \operatorname{logsumexp}\ell`) and scores labels by broadcasting and gathering: about
    eight small tensor operations in the forward pass and as many in the backward pass, every training step.
    Here ``log_prob(y)`` for labels of the batch shape is ``-F.cross_entropy(logits, y, reduction="none")``
    (one operation each way), and the normalised ``logits`` / ``probs`` are computed only if asked for.
    Values, sampling, ``expand``, ``enumerate_support`` and broadcasting ``log_prob`` are the Categorical's.

    Parameters
    ----------
    logits : torch.Tensor
        Unnormalised log probabilities, shape ``batch_shape + (num_classes,)``.
    """

    def __init__(self, logits: torch.Tensor, validate_args: bool | None = None):
        if logits.dim() < 1:
            raise ValueError("`logits` must have at least one dimension (the classes)")
        self._raw_logits = self._param = logits
        self._num_events = logits.shape[-1]
        TorchDistribution.__init__(self, logits.shape[:-1], validate_args=validate_args)

    @lazy_property
    def logits(self) -> torch.Tensor:
        raw = self._raw_logits
        return raw - raw.logsumexp(dim=-1, keepdim=True)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape and _instance is None:  # a plate expands every site to its shape
            return self
        new = LogitsCategorical(self._raw_logits.expand(batch_shape + (self._num_events,)), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if value.shape != self.batch_shape or value.dtype != torch.long or value.dim() == 0:
            return super().log_prob(value)
        if self._validate_args:
            self._validate_sample(value)
        logits = self._raw_logits
        if logits.dim() == 2:
            return F.cross_entropy(logits, value, reduction="none").neg()
        ce = F.cross_entropy(logits.reshape(-1, self._num_events), value.reshape(-1), reduction="none")
        return ce.reshape(value.shape).neg()


class StraightThroughBernoulli(Bernoulli):
    r"""Bernoulli(``probs``) whose samples pass gradients straight through to ``probs``.

    The sample is ``hard + (probs - probs.detach())``: exactly 0 or 1 in the
    forward pass, with :math:`\partial\theta / \partial k = 1` in the backward
    pass (Srinivas & Babu 2016, section 2.5).  The parenthesisation matters:
    ``hard + probs - probs.detach()`` is not exactly 0/1 in float32.

    Parameters
    ----------
    probs : torch.Tensor
        Keep probabilities in [0, 1]; any shape (the batch shape).
    """

    has_rsample = True

    def __init__(self, probs: torch.Tensor, validate_args: bool | None = None) -> None:
        super().__init__(probs=probs, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):  # keep the subclass (Pyro needs it)
        new = self._get_checked_instance(StraightThroughBernoulli, _instance)
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        probs = self.probs.expand(self._extended_shape(sample_shape))
        return _bernoulli_draw(probs.detach()) + (probs - probs.detach())

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        return _bernoulli_draw(self.probs.detach().expand(self._extended_shape(sample_shape)))


@register_kl(StraightThroughBernoulli, StraightThroughBernoulli)
def _kl_st_bernoulli(q: StraightThroughBernoulli, p: StraightThroughBernoulli) -> torch.Tensor:
    # The plain Bernoulli KL.  When guide and prior share ``probs`` (fixed-rate
    # dropout, Generalized Dropout's q(theta) = p(theta | k)) it is exactly 0 in
    # value and gradient.
    return kl_divergence(Bernoulli(probs=q.probs), Bernoulli(probs=p.probs))


class FixedNoise(TorchDistribution):
    """Noise with a fixed law that the guide shares with the prior, optionally scaled.

    Fixed-rate dropout masks and Gaussian noise are latent sites whose variational distribution *is* the prior
    (Gal & Ghahramani 2016), so KL(q || p) = 0.  Wrapping the law in ``FixedNoise(base, key)`` in model and guide
    makes that KL exactly zero without computing it every step (it is registered for pairs with equal ``key``;
    otherwise the base KL is used).  The noise needs no gradient, so ``has_rsample`` is true and ``rsample`` falls
    back to ``sample`` for bases without one (e.g. Bernoulli), which keeps ``TraceMeanField_ELBO`` from scoring it
    with REINFORCE.

    Parameters
    ----------
    base : torch.distributions.Distribution
        The noise law, e.g. ``Bernoulli(1 - p)`` or ``Normal(1, sqrt(alpha))``.
    key : hashable
        Identifies the law, e.g. ``("bernoulli", p)``.
    scale : float
        The value is ``scale`` times a draw of ``base``: ``1 / (1 - p)`` makes a Bernoulli mask the multiplier of
        inverted dropout, of mean 1.
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(
        self,
        base: torch.distributions.Distribution,
        key: object,
        scale: float = 1.0,
        validate_args: bool | None = None,
    ):
        self.base, self.key, self.scale = base, key, float(scale)
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    @property
    def support(self):
        return self.base.support if self.scale == 1.0 else constraints.real

    @property
    def mean(self) -> torch.Tensor:
        return self.base.mean * self.scale

    @property
    def variance(self) -> torch.Tensor:
        return self.base.variance * self.scale**2

    def expand(self, batch_shape, _instance=None):
        return FixedNoise(self.base.expand(batch_shape), self.key, self.scale)

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        if isinstance(self.base, Bernoulli):
            return _bernoulli_draw(self.base.probs.expand(self._extended_shape(sample_shape)), self.scale)
        z = self.base.sample(sample_shape)
        return z if self.scale == 1.0 else z * self.scale

    def rsample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        if not self.base.has_rsample:
            return self.sample(sample_shape)
        z = self.base.rsample(sample_shape)
        return z if self.scale == 1.0 else z * self.scale

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if isinstance(self.base, Bernoulli) and not self.base.probs.requires_grad:
            return _bernoulli_log_prob(self.base.probs, value.ne(0))
        if self.scale != 1.0:  # the draw of the base law (for a Bernoulli exactly 0 or 1, whatever the rounding)
            value = value.ne(0).to(value.dtype) if isinstance(self.base, Bernoulli) else value / self.scale
            return self.base.log_prob(value) - (math.log(self.scale) if not isinstance(self.base, Bernoulli) else 0.0)
        return self.base.log_prob(value)


def same_fixed_law(q: torch.distributions.Distribution, p: torch.distributions.Distribution) -> bool:
    """Whether ``q`` and ``p`` are :class:`FixedNoise` of one law (the same key and scale): their KL is zero by
    construction, in value and gradient, and a loss may leave the term out (:class:`~bayesdrop.infer.MeanFieldELBO`
    does)."""
    return isinstance(q, FixedNoise) and isinstance(p, FixedNoise) and q.key == p.key and q.scale == p.scale


@register_kl(FixedNoise, FixedNoise)
def _kl_fixed_noise(q: FixedNoise, p: FixedNoise) -> torch.Tensor:
    if not same_fixed_law(q, p):
        return kl_divergence(q.base, p.base)
    return q.base.mean.new_zeros(()).expand(q.batch_shape)


# -- Gaussian family: the log-uniform prior of variational dropout ------------------------------------------------
#
# Kingma et al. (2015) and Molchanov et al. (2017) pair the guide q(w) = N(theta, alpha theta^2) with the improper
# log-uniform prior p(log|w|) = const (Liu et al. 2019, eq. 8).  Its KL is defined only up to an infinite constant;
# Molchanov et al. (2017, eq. 14) fit the finite part, which depends on alpha alone.

#: Molchanov et al. (2017) constants ``(k1, k2, k3)`` of the KL approximation.
MOLCHANOV_K: tuple[float, float, float] = (0.63576, 1.87320, 1.48695)
#: ``log alpha`` is clipped to this range inside the approximate KL (Molchanov et al. 2017 clip to [-10, 10] in
#: their PyTorch code): below it the weight is deterministic for all practical purposes, above it the KL is flat.
LOG_ALPHA_CLIP: tuple[float, float] = (-10.0, 10.0)


def molchanov_kl(log_alpha: torch.Tensor) -> torch.Tensor:
    r"""Molchanov et al.'s (2017) approximation of KL(N(theta, alpha theta^2) || log-uniform), elementwise.

    .. math::
        \mathrm{KL} \approx k_1 - k_1\, \mathrm{sigmoid}(k_2 + k_3 \log\alpha)
        + \tfrac12 \log\big(1 + \alpha^{-1}\big),

    with :data:`MOLCHANOV_K`; the constant :math:`k_1` makes it vanish as
    :math:`\alpha \to \infty`.  ``log_alpha`` is used as given (clip it
    first, see :data:`LOG_ALPHA_CLIP`); ``log(1 + 1/alpha)`` is evaluated as
    ``softplus(-log alpha)``, which is stable for any ``log alpha``.
    """
    k1, k2, k3 = MOLCHANOV_K
    return k1 - k1 * torch.sigmoid(k2 + k3 * log_alpha) + 0.5 * torch.nn.functional.softplus(-log_alpha)


class LogUniform(TorchDistribution):
    r"""The improper log-uniform prior :math:`p(w) \propto 1 / |w|` (Liu et al. 2019, eq. 8).

    Equivalently :math:`p(\log|w|) = \text{const}`: the scale-invariant prior
    under which Gaussian dropout is variational inference (Kingma et al.
    2015).  ``log_prob(w) = -log|w|`` (unnormalised; ``+inf`` at 0).  The KL
    from a Normal guide is registered by Molchanov's approximation
    (:func:`molchanov_kl`), so ``TraceMeanField_ELBO`` uses it in closed form.

    An improper prior has no draws.  ``sample()`` returns ``placeholder``
    (broadcast to the requested shape): a finite tensor of the right shape
    that Pyro needs when the model runs without a guide (the prototype run of
    :class:`~bayesdrop.guides.DropoutGuide`, prior predictive checks).  The
    Gaussian-family methods pass the layer's initial weights, so such a run
    is the initial deterministic network.

    Parameters
    ----------
    placeholder : torch.Tensor
        Its shape is the batch shape; its values are what ``sample`` returns.
        Give it the device and dtype of the weights.
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, placeholder: torch.Tensor, validate_args: bool | None = None):
        if not torch.is_tensor(placeholder):
            raise TypeError(f"`placeholder` must be a tensor, got {type(placeholder).__name__}")
        self.placeholder = placeholder
        super().__init__(placeholder.shape, torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):  # keep the class: Pyro would wrap it and lose the KL
        new = self._get_checked_instance(LogUniform, _instance)
        batch_shape = torch.Size(batch_shape)
        new.placeholder = self.placeholder.expand(batch_shape)
        super(LogUniform, new).__init__(batch_shape, torch.Size(), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        return self.placeholder.detach().expand(self._extended_shape(sample_shape)).clone()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r""":math:`-\log|w|` up to its infinite constant, at :math:`|w|` floored at the dtype's smallest normal
        number (a weight at exactly 0, e.g. the posterior mean of a pruned weight, scores finite)."""
        return -value.abs().clamp_min(torch.finfo(value.dtype).tiny).log()


class DropoutNormal(Normal):
    r"""``Normal(loc, scale)`` that also carries :math:`\log\alpha` and/or :math:`\log\sigma^2`.

    The Gaussian-dropout posterior :math:`\mathcal N(\theta, \alpha\theta^2)` (Liu et al. 2019, eq. 4).
    ``log_alpha`` and ``log_variance`` are what the method computes from its own (numerically stable)
    parameterisation, e.g. :math:`\log\alpha = \log\sigma^2 - \log\theta^2` in the additive one of Molchanov et
    al. (2017), where :math:`\log\sigma^2` is itself a parameter.  The registered KLs read them instead of
    recovering them from ``loc`` and ``scale`` (ill-conditioned for :math:`\theta \to 0`, and extra passes over
    weight-sized tensors every step).  Otherwise it is a plain Normal (the local reparameterisation trick and
    KLs to Normal priors see a Normal).

    Built from ``log_variance`` alone (``scale=None``), the variance :math:`\exp(\log\sigma^2)` is computed once,
    on first use, and shared by the local reparameterisation trick and the KL; ``scale`` is computed only if
    something asks for it (sampling a weight, ``log_prob``): a training step under the local
    reparameterisation trick never does.

    Parameters
    ----------
    loc : torch.Tensor
    scale : torch.Tensor or None
        The standard deviation; ``None`` to derive it from ``log_variance``.
    log_alpha, log_variance : torch.Tensor, optional
        Broadcastable to the batch shape.
    """

    _scale: torch.Tensor | None
    log_alpha: torch.Tensor | None
    log_variance: torch.Tensor | None

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor | None = None,
        log_alpha: torch.Tensor | None = None,
        log_variance: torch.Tensor | None = None,
        validate_args: bool | None = None,
    ):
        self._variance: torch.Tensor | None = None
        self._second_moment: torch.Tensor | None = None
        if scale is None and log_variance is None:
            raise ValueError("DropoutNormal needs `scale` or `log_variance`")
        # the common case, in short (`scale` is None, so `log_variance` is not)
        if scale is None and log_alpha is None and log_variance is not None and log_variance.shape == loc.shape:
            self.loc, self._scale, self.log_alpha, self.log_variance = loc, None, None, log_variance
            TorchDistribution.__init__(self, loc.shape, validate_args=validate_args)
            return
        shape = _broadcast_shape(*(t.shape for t in (loc, scale, log_variance) if t is not None))
        self.log_alpha = None if log_alpha is None else _expand_to(log_alpha, shape)
        self.log_variance = None if log_variance is None else _expand_to(log_variance, shape)
        if scale is not None:
            super().__init__(loc, scale, validate_args=validate_args)
        else:
            self.loc, self._scale = _expand_to(loc, shape), None
            TorchDistribution.__init__(self, shape, validate_args=validate_args)

    @property
    def scale(self) -> torch.Tensor:
        if self._scale is None:
            assert self.log_variance is not None  # built without `scale`, so from `log_variance`
            self._scale = (0.5 * self.log_variance).exp()
        return self._scale

    @scale.setter
    def scale(self, value: torch.Tensor) -> None:
        self._scale = value

    @property
    def variance(self) -> torch.Tensor:
        r""":math:`\sigma^2`, computed once (from ``log_variance`` when the distribution carries it)."""
        if self._variance is None:
            self._variance = self.scale.square() if self.log_variance is None else self.log_variance.exp()
        return self._variance

    @property
    def second_moment(self) -> torch.Tensor:
        r""":math:`E[w^2] = \theta^2 + \sigma^2`, computed once (VBD's :math:`\gamma^*`, eq. 16, and its KL)."""
        if self._second_moment is None:
            self._second_moment = torch.addcmul(self.variance, self.loc, self.loc)
        return self._second_moment

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        """A draw ``loc + scale * eps``: one standard normal draw and one fused multiply-add (``torch.normal`` of
        two weight-sized tensors was 20 % slower on a CPU)."""
        with torch.no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        if shape == self.loc.shape:  # a draw of the weights' shape (a network of a prediction): nothing to expand
            return torch.addcmul(self.loc, self.scale, eps)
        return torch.addcmul(self.loc.expand(shape), self.scale.expand(shape), eps)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DropoutNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new._scale = None if self._scale is None else self._scale.expand(batch_shape)
        new._variance = None if self._variance is None else self._variance.expand(batch_shape)
        new._second_moment = None if self._second_moment is None else self._second_moment.expand(batch_shape)
        new.log_alpha = None if self.log_alpha is None else self.log_alpha.expand(batch_shape)
        new.log_variance = None if self.log_variance is None else self.log_variance.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


@register_kl(TorchNormal, LogUniform)
def _kl_normal_loguniform(q: TorchNormal, p: LogUniform) -> torch.Tensor:
    # Molchanov's approximation with log alpha clipped to LOG_ALPHA_CLIP.  For a plain Normal log alpha is
    # recovered from scale and loc, with loc^2 floored so that loc = 0 gives log alpha = +big, not a NaN gradient.
    log_alpha, log_variance = getattr(q, "log_alpha", None), getattr(q, "log_variance", None)
    if log_alpha is None and log_variance is not None:
        log_alpha = log_variance - q.loc.square().clamp_min(torch.finfo(q.loc.dtype).tiny).log()
    if log_alpha is None:
        tiny = torch.finfo(q.loc.dtype).tiny
        log_alpha = 2 * q.scale.log() - q.loc.square().clamp_min(tiny).log()
    kl = molchanov_kl(log_alpha.clamp(*LOG_ALPHA_CLIP))
    return _expand_to(kl, kl.shape, p.batch_shape)


class ScalarUniform(Uniform):
    r"""``Uniform(low, high)`` with scalar bounds broadcast to ``batch_shape``, and a cheap log density.

    The prior :math:`\gamma \sim \mathrm{Uniform}(a, b)` of variational Bayesian dropout (Liu et al. 2019,
    eq. 11) has one element per weight.  ``torch``'s ``Uniform.log_prob`` computes
    :math:`\log(b - a)` once per element from the broadcast bounds (about eight passes over a weight-sized
    tensor); here the constant is computed once and the density costs two comparisons and a select:
    :math:`-\log(b - a)` on :math:`[a, b)`, :math:`-\infty` outside (as ``torch``: ``high`` is excluded).
    With a :class:`BoundedDelta` guide of the same bounds the KL is the constant :math:`n \log(b - a)`.

    Parameters
    ----------
    low, high : float
        The bounds, ``low < high``.
    batch_shape : torch.Size
    like : torch.Tensor, optional
        A tensor whose dtype and device the bounds take (default: float32 on the CPU).
    """

    def __init__(
        self,
        low: float,
        high: float,
        batch_shape: torch.Size | tuple[int, ...] = torch.Size(),
        *,
        like: torch.Tensor | None = None,
        validate_args: bool | None = None,
    ):
        low, high = float(low), float(high)
        if not low < high:
            raise ValueError(f"`low` ({low!r}) must be below `high` ({high!r})")
        like = torch.empty(()) if like is None else like
        self.bounds = (low, high)
        self._low0, self._high0 = like.new_full((), low), like.new_full((), high)
        super().__init__(self._low0.expand(batch_shape), self._high0.expand(batch_shape), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ScalarUniform, _instance)
        new.bounds, new._low0, new._high0 = self.bounds, self._low0, self._high0
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        inside = (value >= self._low0) & (value < self._high0)
        return torch.where(inside, -(self._high0 - self._low0).log(), -math.inf)


class BoundedDelta(Delta):
    """A ``Delta`` whose location the caller has clamped into ``[low, high)``.

    VBD's guide puts its point mass on :math:`\\gamma^*` clamped into the support of the
    :class:`ScalarUniform` prior.  Pyro's KL of a Delta, ``-p.log_prob(v)``, then is the constant
    :math:`n\\log(b - a)`, and the registered KL returns it without a pass over the (weight-sized) location.
    With other priors, or other bounds, it is Pyro's ``-p.log_prob(v)``.

    Parameters
    ----------
    v : torch.Tensor
        The location, inside ``[low, high)`` (not checked here; Pyro's validation checks the prior's support).
    low, high : float
    event_dim : int
    """

    def __init__(self, v: torch.Tensor, low: float, high: float, event_dim: int = 0, validate_args=None):
        self.bounds = (float(low), float(high))
        # Delta's default log density is a fresh torch.full per construction; for a whole-tensor event it is 0-d
        log_density = v.new_zeros(()) if event_dim == v.dim() else 0.0
        super().__init__(v, log_density, event_dim=event_dim, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(BoundedDelta, _instance)
        new.bounds = self.bounds
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        # Delta's rsample is a view ``v.expand(v.shape)`` even for no sample shape: one operation per site and step.
        return self.v if not sample_shape else super().rsample(sample_shape)


def _kl_bounded_delta(q: BoundedDelta, p, base, n: int) -> torch.Tensor:
    if isinstance(base, ScalarUniform) and base.bounds == q.bounds and q.event_shape == p.event_shape:
        low, high = q.bounds
        kl = q.v.new_full((), float(n) * math.log(high - low))  # a constant; float(n): n is traced by a jit
        return _expand_to(kl, q.batch_shape, p.batch_shape)
    return -p.log_prob(q.v)


@register_kl(BoundedDelta, Independent)
def _kl_bounded_delta_independent(q: BoundedDelta, p: Independent) -> torch.Tensor:
    return _kl_bounded_delta(q, p, p.base_dist, math.prod(p.event_shape))


@register_kl(BoundedDelta, ScalarUniform)
def _kl_bounded_delta_uniform(q: BoundedDelta, p: ScalarUniform) -> torch.Tensor:
    return _kl_bounded_delta(q, p, p, 1)


class CenteredNormal(TorchDistribution):
    r""":math:`\mathcal N(0, v)` parameterised by its variance: VBD's :math:`W \mid \gamma \sim \mathcal N(0, \gamma)`.

    The conditional prior of eq. 11 of Liu et al. (2019), as a model site whose variance is the ``gamma`` site.
    The KL from a Normal guide is registered in closed form (eq. 14),

    .. math::
        \mathrm{KL}\big(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, v)\big)
        = \tfrac12 \Big(\frac{\sigma^2 + \mu^2}{v} - 1 - \log\sigma^2 + \log v\Big),

    in fewer passes than ``torch``'s Normal/Normal KL (and with :math:`\log\sigma^2` read from a
    :class:`DropoutNormal` that carries it).  It is deliberately not a ``Normal`` subclass: the local
    reparameterisation handler only tags values drawn from Normal guide sites.

    Built from a scalar variance and expanded (VBD's prior with one :math:`\gamma` per layer), its ``log_prob``
    costs three passes over the weights instead of the seven of ``Normal(0, s).expand(...)``.  The Gaussian weight
    prior of the point-estimate methods is :class:`IsotropicNormal`, one pass.

    Parameters
    ----------
    variance : torch.Tensor
        Positive; its shape is the batch shape.
    """

    arg_constraints = {"variance": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, variance: torch.Tensor, validate_args: bool | None = None):
        self._variance = variance
        self._scalar = variance if variance.dim() == 0 else None  # one variance for all: kept through expand
        super().__init__(variance.shape, torch.Size(), validate_args=validate_args)

    @property
    def variance(self) -> torch.Tensor:
        return self._variance

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros_like(self._variance)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(CenteredNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new._variance, new._scalar = self._variance.expand(batch_shape), self._scalar
        super(CenteredNormal, new).__init__(batch_shape, torch.Size(), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self._variance.dtype, device=self._variance.device)
        return eps * self._variance.sqrt()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        v = self._scalar
        if v is not None and value.shape == self._variance.shape:  # N(0, s^2): the constant once, not per element
            return value.square() * (-0.5 / v) - 0.5 * (2 * math.pi * v).log()
        return -0.5 * (value.square() / self._variance + (2 * math.pi * self._variance).log())

    def entropy(self) -> torch.Tensor:
        return 0.5 * (2 * math.pi * math.e * self._variance).log()


class IsotropicNormal(TorchDistribution):
    r""":math:`\mathcal N(0, v I)` over a whole weight tensor: the Gaussian weight prior of the point-estimate
    methods (the weight decay of Gal & Ghahramani 2016), as one event.

    Its log density is the weight decay plus a constant,

    .. math:: \log p(W) = -\frac{1}{2v} \lVert W \rVert^2 - \frac n2 \log(2\pi v),\qquad n = |W|,

    computed as one dot product of the flattened weights, so that Pyro's KL of a Delta guide,
    :math:`-\log p(\hat W)`, costs what ``0.5 * (w * w).sum() / s**2`` does in a plain loop: one pass over the
    weights forward and one backward, where :class:`CenteredNormal`'s elementwise density takes three and
    ``Normal(0, s).expand(shape)`` seven (``benchmarks/results/speed.md``).  A variance given as a number (a
    method's fixed prior scale) makes the two constants Python numbers: the density is then the dot product and
    two scalar operations, where a 0-d tensor of variance takes seven more, each a kernel launch on a GPU.

    Parameters
    ----------
    variance : torch.Tensor or float
        A 0-d tensor, positive (it may carry a gradient: Concrete dropout's :math:`(1 - p) / l^2`), or a finite
        number > 0 with ``like``.
    event_shape : torch.Size
        The weight's shape.
    like : torch.Tensor, optional
        For a number ``variance``: a tensor of the dtype and device of the law's tensors (its mean, variance and
        draws).
    """

    arg_constraints = {"variance": constraints.positive}
    has_rsample = True

    def __init__(
        self,
        variance: torch.Tensor | float,
        event_shape: _size,
        validate_args: bool | None = None,
        *,
        like: torch.Tensor | None = None,
    ):
        self._fixed: float | None = None
        if torch.is_tensor(variance):
            if variance.dim() != 0:
                raise ValueError(f"`variance` must be a 0-d tensor, got shape {tuple(variance.shape)}")
            self._variance: torch.Tensor | None = variance
        else:
            fixed = check_range("variance", variance, 0.0, math.inf, lo_open=True, hi_open=True, what="or a 0-d tensor")
            if not torch.is_tensor(like):
                raise TypeError("a number `variance` needs `like`, a tensor of the law's dtype and device")
            self._variance, self._fixed, self._like = None, fixed, like
        super().__init__(torch.Size(), torch.Size(event_shape), validate_args=validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def _variance_tensor(self) -> torch.Tensor:
        if self._variance is None:  # a number: its tensor only where one is asked for
            return self._like.new_full((), cast(float, self._fixed))
        return self._variance

    @property
    def variance(self) -> torch.Tensor:
        return self._variance_tensor().expand(self.batch_shape + self.event_shape)

    @property
    def mean(self) -> torch.Tensor:
        return self._variance_tensor().new_zeros(()).expand(self.batch_shape + self.event_shape)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(IsotropicNormal, _instance)
        new._variance, new._fixed = self._variance, self._fixed
        if self._fixed is not None:
            new._like = self._like
        super(IsotropicNormal, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        v = self._variance_tensor()
        return torch.randn(shape, dtype=v.dtype, device=v.device) * v.sqrt()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self._log_density(value, -1.0)

    def neg_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r""":math:`-\log p(W) = \lVert W \rVert^2 / (2v) + \frac n2 \log(2\pi v)`, computed as such: the KL of a
        Delta guide (weight decay plus a constant) without a negation forward and backward."""
        return self._log_density(value, 1.0)

    def _log_density(self, value: torch.Tensor, sign: float) -> torch.Tensor:
        """``log_prob`` (``sign = -1``) or ``neg_log_prob`` (``sign = 1``) of ``value``."""
        if self._validate_args:
            self._validate_sample(value)
        if value.shape == self.event_shape:  # one weight tensor: a dot product
            flat = value.reshape(-1)
            squares = torch.dot(flat, flat)
        else:
            squares = value.square().sum(tuple(range(-len(self.event_shape), 0)))
        n = self.event_shape.numel()
        if self._fixed is not None:  # the constants in Python: two operations on the tensor
            v = self._fixed
            out = squares.mul(sign * 0.5 / v).add(sign * 0.5 * n * math.log(2 * math.pi * v))
        else:
            t = cast(torch.Tensor, self._variance)
            out = squares * (sign * 0.5 / t) + sign * 0.5 * n * (2 * math.pi * t).log()
        return _expand_to(out, out.shape, self.batch_shape)


@register_kl(Delta, IsotropicNormal)
def _kl_delta_isotropic_normal(q: Delta, p: IsotropicNormal) -> torch.Tensor:
    return p.neg_log_prob(q.v)  # Pyro's KL of a Delta, -log p(v), without its negation


@register_kl(TorchNormal, CenteredNormal)
def _kl_normal_centered_normal(q: TorchNormal, p: CenteredNormal) -> torch.Tensor:
    # sigma^2 and mu^2 + sigma^2 are cached by DropoutNormal: shared with the local reparameterisation trick and
    # VBD's gamma*.  Written as 0.5 (log v - 1) - 0.5 log sigma^2 + 0.5 m / v: two operations on the gradient path
    # when v (VBD's detached gamma*) needs none.
    log_var_q = getattr(q, "log_variance", None)
    if log_var_q is None:
        log_var_q = q.variance.log()
    m = q.second_moment if isinstance(q, DropoutNormal) else torch.addcmul(q.variance, q.loc, q.loc)
    v = p.variance
    return torch.addcdiv(torch.sub((v.log() - 1).mul_(0.5), log_var_q, alpha=0.5), m, v, value=0.5)


# -- Concrete dropout: the relaxed Bernoulli mask and the entropic prior on the drop rate --------------------------
#
# Gal, Hron & Kendall (2017) learn a layer's drop rate p through a relaxed ("Concrete", Maddison et al. 2017)
# Bernoulli mask, and their KL term carries the entropy -K H(p) of the mask.  bayesdrop.methods.concrete composes
# the model and guide from the two laws below.

_LEGENDRE_NODES = 256  # Gauss-Legendre nodes of the 1-D integrals below: machine precision for t <= 3


@functools.lru_cache(maxsize=4)
def _legendre(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights on [-1, 1], float64."""
    x, w = np.polynomial.legendre.leggauss(n)
    return torch.from_numpy(x), torch.from_numpy(w)


def _logistic_expectation(fn, dtype: torch.dtype, device: torch.device, half_width: float = 40.0) -> torch.Tensor:
    r""":math:`E[f(L)]` for :math:`L \sim \mathrm{Logistic}(0, 1)` by Gauss-Legendre quadrature on
    ``[-half_width, half_width]`` (the density outside is below :math:`e^{-40}`); ``fn`` maps the nodes (float64,
    on ``device``) to values of shape ``(nodes, *batch)``."""
    x, w = (t.to(device) for t in _legendre(_LEGENDRE_NODES))
    y = x * half_width
    density = torch.sigmoid(y) * torch.sigmoid(-y)
    values = fn(y)
    weights = (w * half_width * density).reshape(-1, *(1,) * (values.dim() - 1))
    return (weights * values).sum(0).to(dtype)


class ConcreteDropoutMask(TorchDistribution):
    r"""The inverted relaxed Bernoulli dropout multiplier of Concrete dropout (Gal, Hron & Kendall 2017, eq. 5).

    A draw is :math:`\tilde z / (1 - p)` with the relaxed keep mask

    .. math::
        \tilde z = \operatorname{sigmoid}\Big(\frac{1}{t}\big(\log(1 - p) - \log p + \log u - \log(1 - u)\big)\Big),
        \qquad u \sim \mathrm{Uniform}(0, 1),

    a binary Concrete variable (Maddison et al. 2017) of keep probability :math:`1 - p` and temperature :math:`t`;
    the authors' code draws :math:`1 - \tilde z` as the relaxed *drop* indicator, the same law.  As
    :math:`t \to 0`, :math:`\tilde z \to \mathrm{Bernoulli}(1 - p)`, so the multiplier tends to inverted
    Bernoulli dropout (``bernoulli``).  It is reparameterised: the draw is a differentiable function of ``rate``.

    In the dtype's precision :math:`\tilde z` is kept inside :math:`[\text{tiny}, 1 - \epsilon/2]` (the sigmoid
    would round to exactly 0 or 1, where the density is infinite for :math:`t < 1`), so every draw has a finite
    log density.

    Parameters
    ----------
    rate : torch.Tensor
        The drop probability :math:`p \in (0, 1)`, a scalar (or broadcastable to ``batch_shape``).
    temperature : float
        :math:`t > 0` (0.1 in the paper).
    batch_shape : tuple of int, optional
        Default: the shape of ``rate``.

    Notes
    -----
    The KL between two of these laws is registered only where they coincide (the same ``rate`` tensor or equal
    values, and the same temperature): it is exactly 0 there, which is how Concrete dropout's model and guide use
    them (the model's mask has the guide's rate).  Otherwise no closed form exists and the registration raises
    ``NotImplementedError``, so ``TraceMeanField_ELBO`` takes its Monte Carlo term.

    ``mean`` is exact: :math:`E[\tilde z] = E[\operatorname{sigmoid}(\log\frac{1-p}{p} + t L)]` with
    :math:`L \sim \mathrm{Logistic}(0, 1)` (the two logistic noises of the relaxation exchanged), a smooth 1-D
    integral computed by Gauss-Legendre quadrature.
    """

    arg_constraints = {"rate": constraints.half_open_interval(0.0, 1.0)}
    support = constraints.positive
    has_rsample = True

    def __init__(
        self,
        rate: torch.Tensor,
        temperature: float,
        batch_shape: torch.Size | tuple[int, ...] | None = None,
        validate_args: bool | None = None,
    ):
        self.rate = rate
        self.temperature = float(temperature)
        shape = rate.shape if batch_shape is None else torch.Size(batch_shape)
        super().__init__(shape, torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):  # keep the rate tensor itself: the registered KL compares it
        new = self._get_checked_instance(ConcreteDropoutMask, _instance)
        new.rate, new.temperature = self.rate, self.temperature
        super(ConcreteDropoutMask, new).__init__(torch.Size(batch_shape), torch.Size(), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _keep_logit(self) -> torch.Tensor:
        return torch.log1p(-self.rate) - torch.log(self.rate)

    def rsample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        rate = self.rate
        finfo = torch.finfo(rate.dtype)
        u = torch.rand(shape, dtype=rate.dtype, device=rate.device)
        noise = torch.logit(u, eps=finfo.eps).mul_(1.0 / self.temperature)  # (log u - log(1 - u)) / t
        z = torch.sigmoid(noise + self._keep_logit() / self.temperature).clamp(finfo.tiny, 1.0 - finfo.eps / 2)
        return z / (1.0 - rate)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r"""The log density of the multiplier: binary Concrete (Maddison et al. 2017) at :math:`\tilde z = v (1 -
        p)`, with the Jacobian :math:`\log(1 - p)` of the scaling."""
        if self._validate_args:
            self._validate_sample(value)
        t = self.temperature
        finfo = torch.finfo(value.dtype)
        z = (value * (1.0 - self.rate)).clamp(finfo.tiny, 1.0 - finfo.eps / 2)  # a draw's own rounding undone
        diff = self._keep_logit() - t * torch.logit(z)
        log_logit = math.log(t) + diff - 2 * F.softplus(diff)  # density of logit(z)
        return log_logit - torch.log(z) - torch.log1p(-z) + torch.log1p(-self.rate)

    @property
    def mean(self) -> torch.Tensor:
        a, t = self._keep_logit().double(), self.temperature
        # E[sigmoid((a + L) / t)] = E[sigmoid(a + t L)]; for t > 1 integrate the first form (the smoother one).
        if t <= 1.0:
            keep = _logistic_expectation(
                lambda y: torch.sigmoid(a + t * y.reshape(-1, *(1,) * a.dim())), a.dtype, a.device
            )
        else:
            keep = _logistic_expectation(
                lambda y: torch.sigmoid((a + y.reshape(-1, *(1,) * a.dim())) / t), a.dtype, a.device
            )
        return (keep.to(self.rate.dtype) / (1.0 - self.rate)).expand(self.batch_shape)


@register_kl(ConcreteDropoutMask, ConcreteDropoutMask)
def _kl_concrete_mask(q: ConcreteDropoutMask, p: ConcreteDropoutMask) -> torch.Tensor:
    same = q.temperature == p.temperature and (
        q.rate is p.rate or (q.rate.shape == p.rate.shape and torch.equal(q.rate, p.rate))
    )
    if not same:
        raise NotImplementedError("no closed-form KL between relaxed Bernoulli laws of different rates")
    return q.rate.new_zeros(()).expand(_broadcast_shape(q.batch_shape, p.batch_shape))


@functools.lru_cache(maxsize=256)
def entropic_log_normaliser(units: int) -> float:
    r""":math:`\log Z_K`, :math:`Z_K = \int_0^1 \exp(-K\,\mathrm{KL}(\mathrm{Bern}(p) \,\|\, \mathrm{Bern}(1/2)))\,dp`,
    by Gauss-Legendre quadrature over :math:`|p - 1/2| \le \min(1/2, 8 / \sqrt K)` (beyond it the integrand is
    below :math:`e^{-128}`, by Pinsker's inequality :math:`\mathrm{KL} \ge 2 (p - 1/2)^2`); relative error below
    1e-10 for every ``K >= 1``.  ``K`` is ``units``."""
    k = int(units)
    x, w = _legendre(_LEGENDRE_NODES)
    half = min(0.5, 8.0 / math.sqrt(k))
    delta, weights = (x + 1) / 2 * half, w / 2 * half
    kl = _bernoulli_kl_half(0.5 + delta)
    return math.log(2 * float((weights * torch.exp(-k * kl)).sum()))


def _bernoulli_kl_half(p: torch.Tensor) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\mathrm{Bern}(p) \,\|\, \mathrm{Bern}(1/2)) = \log 2 - H(p)`."""
    return math.log(2.0) + torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p)


class EntropicRate(TorchDistribution):
    r"""The entropic prior on a drop rate: :math:`\pi_K(p) \propto \exp(K H(p))` on :math:`[0, 1]`.

    :math:`H(p) = -p\log p - (1 - p)\log(1 - p)` is the entropy of a Bernoulli variable, and

    .. math::
        \log \pi_K(p) = K\,\big(H(p) - \log 2\big) - \log Z_K
                      = -K\,\mathrm{KL}\big(\mathrm{Bern}(p) \,\|\, \mathrm{Bern}(\tfrac12)\big) - \log Z_K,

    with the normaliser :math:`Z_K` (:func:`entropic_log_normaliser`).  With a point-mass guide at :math:`p` its KL
    is :math:`-K H(p) + K \log 2 + \log Z_K`: the term :math:`-K H(p)` of Concrete dropout's objective (Gal, Hron &
    Kendall 2017, eq. 3), the entropy of the :math:`K` Bernoulli masks of a layer's approximating distribution.
    Symmetric about 1/2, more concentrated there the larger ``K``.  ``sample`` is exact (rejection from the
    Gaussian envelope :math:`\exp(-2K(p - 1/2)^2)`, Pinsker's inequality).

    Parameters
    ----------
    units : int
        :math:`K \ge 1`, the number of Bernoulli variables per example whose rate this is.
    batch_shape : tuple of int
    like : torch.Tensor, optional
        A tensor whose dtype and device the draws take (default: float32 on the CPU).
    """

    arg_constraints: dict = {}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(
        self,
        units: int,
        batch_shape: torch.Size | tuple[int, ...] = torch.Size(),
        *,
        like: torch.Tensor | None = None,
        validate_args: bool | None = None,
    ):
        if int(units) < 1:
            raise ValueError(f"`units` must be a positive int, got {units!r}")
        self.units = int(units)
        self._like = torch.empty(()) if like is None else like
        self.log_normaliser = entropic_log_normaliser(self.units)
        super().__init__(torch.Size(batch_shape), torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(EntropicRate, _instance)
        new.units, new._like, new.log_normaliser = self.units, self._like, self.log_normaliser
        super(EntropicRate, new).__init__(torch.Size(batch_shape), torch.Size(), validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return self._like.new_full(self.batch_shape, 0.5)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return -self.units * _bernoulli_kl_half(value) - self.log_normaliser

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        like = self._like
        out = torch.empty(shape, dtype=torch.float64, device=like.device).reshape(-1)
        todo = torch.arange(out.numel(), device=like.device)
        sd = 0.5 / math.sqrt(self.units)
        while todo.numel():
            p = 0.5 + sd * torch.randn(todo.numel(), dtype=torch.float64, device=like.device)
            inside = (p >= 0) & (p <= 1)
            p = p.clamp(0, 1)
            log_accept = -self.units * _bernoulli_kl_half(p) + 2 * self.units * (p - 0.5) ** 2  # <= 0
            ok = inside & (torch.rand_like(p).log() < log_accept)
            out[todo[ok]] = p[ok]
            todo = todo[~ok]
        return out.reshape(shape).to(like.dtype)


class PowerFunction(Beta):
    r"""The power-function law :math:`\mathrm{Beta}(a, 1)`: density :math:`a\,v^{a - 1}` on :math:`[0, 1]`.

    ``torch``'s ``Beta`` scores it through a Dirichlet, whose term :math:`(b - 1)\log(1 - v)` is 0 here but has the
    derivative 0/0 at :math:`v = 1`: Concrete dropout's keep probability :math:`1 - p` rounds to 1 in float32 once
    its ``p_logit`` is below -17, and a NaN gradient stopped training there.  Here
    :math:`\log p(v) = \log a + (a - 1)\log v` (0 times :math:`\log 0` read as 0, for :math:`a = 1`), the same
    value elsewhere.

    Parameters
    ----------
    concentration1 : torch.Tensor
        :math:`a > 0`.
    """

    def __init__(self, concentration1: torch.Tensor, validate_args: bool | None = None):
        a = torch.as_tensor(concentration1)
        super().__init__(a, torch.ones_like(a), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(PowerFunction, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        a = self.concentration1
        return a.log() + torch.xlogy(a - 1, value)


class SigmaPointAverage(TorchDistribution):
    r"""A likelihood averaged in log over equally weighted sigma points of the network output (fast dropout).

    ``base`` is the likelihood at the :math:`2d` sigma points :math:`f_j` of the output's Gaussian approximation
    (:meth:`bayesdrop.moments.Moments.sigma_points`), batch shape ``(2d, *batch)``.  Then

    .. math:: \log \tilde p(y) = \frac{1}{2d} \sum_j \log p(y \mid f_j) \approx \mathbb E_{f} \log p(y \mid f),

    the expected log-likelihood of fast dropout's objective (exact for a Gaussian likelihood, whose log density is
    quadratic in ``f``).  It is not normalised; :meth:`sample` draws a sigma point uniformly, then ``y`` from it
    (the equal-weight mixture that ``bd.predict(..., rule="moment-matching")`` reports).
    """

    arg_constraints: dict = {}

    def __init__(self, base: torch.distributions.Distribution, validate_args: bool | None = None):
        if len(base.batch_shape) < 1:
            raise ValueError("`base` needs a leading batch axis of sigma points")
        self.base = base
        super().__init__(base.batch_shape[1:], base.event_shape, validate_args=False)

    @property
    def support(self):
        return self.base.support

    @property
    def mean(self) -> torch.Tensor:
        return self.base.mean.mean(0)

    @property
    def variance(self) -> torch.Tensor:
        return self.base.variance.mean(0) + self.base.mean.var(0, unbiased=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.base.log_prob(value).mean(0)

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        draws = self.base.sample(sample_shape)  # (*sample_shape, 2d, *batch, *event)
        axis = len(sample_shape)
        points = draws.shape[axis]
        index_shape = (*draws.shape[:axis], 1, *draws.shape[axis + 1 : axis + 1 + len(self.batch_shape)])
        index = torch.randint(points, index_shape, device=draws.device)
        index = index.reshape(*index_shape, *(1,) * len(self.event_shape)).expand(
            *index_shape, *draws.shape[axis + 1 + len(self.batch_shape) :]
        )
        return draws.gather(axis, index).squeeze(axis)
