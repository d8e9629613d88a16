r"""Gaussian moments propagated through a network: the deterministic computation of fast dropout.

For people who train with ``fast-dropout`` (Wang & Manning 2013) or write a layer kind that should support it.  A
:class:`Moments` holds the mean and variance of each entry of a tensor under a Gaussian approximation with
independent entries.  It is a *tensor-like* object (it defines ``__torch_function__``, the protocol of
"Extending torch"), so plain modules of a network (``nn.ReLU``, ``nn.Tanh``, ``nn.Flatten``, ``nn.Linear``) run on
it unchanged and propagate the moments:

- a layer linear in its input, :math:`s = \mathrm{op}(x, W)` (``F.linear``, convolutions, through
  :meth:`Moments.linear`), with independent inputs of mean :math:`\mu` and variance :math:`v`, and a weight of mean
  :math:`M` and variance :math:`V` (zero for a point estimate), has

  .. math:: \mathbb E s = \mathrm{op}(\mu, M),\qquad
            \mathrm{Var}\, s = \mathrm{op}(v, M \circ M + V) + \mathrm{op}(\mu \circ \mu, V);

- a product with an independent multiplier :math:`z` (a dropout mask, mean :math:`m_z`, variance :math:`v_z`):
  :math:`\mathbb E = \mu m_z`, :math:`\mathrm{Var} = (v + \mu^2)(v_z + m_z^2) - \mu^2 m_z^2`;
- ReLU, exactly (the moments of a rectified Gaussian, :math:`\alpha = \mu / \sqrt v`):
  :math:`\mathbb E = \mu \Phi(\alpha) + \sqrt v \varphi(\alpha)`,
  :math:`\mathbb E[\cdot^2] = (\mu^2 + v)\Phi(\alpha) + \mu \sqrt v \varphi(\alpha)`;
- any other elementwise activation ``g`` (tanh, sigmoid, ELU, GELU, SiLU, softplus, leaky ReLU) by three-point
  Gauss-Hermite quadrature, exact for polynomials of degree 5: nodes :math:`\mu, \mu \pm \sqrt{3 v}` with weights
  :math:`2/3, 1/6, 1/6`.

At the output, :meth:`Moments.sigma_points` gives the :math:`2d` equally weighted points
:math:`\mu \pm \sqrt{d\, v_k}\, e_k` of the unscented transform (Julier & Uhlmann 1997, with :math:`\kappa = 0`;
:math:`d` entries per example), whose average of any function of the output is exact for quadratics: the
expected log-likelihood of a Gaussian regression exactly, of a softmax to second order.  Anything else raises a
``TypeError`` naming the operation.

Example
-------
>>> h = bd.moments.Moments(torch.zeros(4, 3), torch.ones(4, 3))
>>> torch.relu(h).mean   # E max(0, s) for s ~ N(0, 1): 1 / sqrt(2 pi)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["Moments"]

_SQRT3 = math.sqrt(3.0)
_SQRT_HALF = math.sqrt(0.5)
_GH3 = ((0.0, 2.0 / 3.0), (_SQRT3, 1.0 / 6.0), (-_SQRT3, 1.0 / 6.0))  # (node / sqrt v, weight) of 3-point Hermite


def _plain(a: Any) -> Any:
    if isinstance(a, Moments):
        raise TypeError("this operation takes the Moments as its first argument only")
    return a


def wide_dtype(like: torch.Tensor) -> torch.dtype:
    """float64, for a computation that float32 rounds away (a normal's far tail, a log density to report), but on
    Apple's MPS, which has none: there ``like``'s dtype."""
    return like.dtype if like.device.type == "mps" else torch.float64


def normal_cdf(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\Phi(x)` from ``erfc``, to full relative precision in the lower tail (``torch.special.ndtr``'s
    :math:`(1 + \mathrm{erf})/2` is 4 % off at -5 and 0 below -5.4 in float32)."""
    return 0.5 * torch.erfc(-x * _SQRT_HALF)


class Moments:
    """Mean and variance of a tensor under an independent Gaussian approximation (see the module docstring).

    Parameters
    ----------
    mean, var : torch.Tensor
        Broadcastable tensors; both are stored at their broadcast shape.  ``var`` must be non-negative.
    """

    __slots__ = ("mean", "var")

    def __init__(self, mean: torch.Tensor, var: torch.Tensor):
        if not (torch.is_tensor(mean) and torch.is_tensor(var)):
            raise TypeError("`mean` and `var` must be tensors")
        self.mean, self.var = torch.broadcast_tensors(mean, var)

    # -- what shape checks of layers read ------------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        """The shape of the mean and of the variance (the same: both are stored at their broadcast shape)."""
        return self.mean.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions of the mean and variance."""
        return self.mean.dim()

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the mean (and of the variance, which broadcasting gives the same one)."""
        return self.mean.dtype

    @property
    def device(self) -> torch.device:
        """The device of the mean and variance."""
        return self.mean.device

    def dim(self) -> int:
        """The number of dimensions of the mean and variance, as ``Tensor.dim``."""
        return self.mean.dim()

    def size(self, dim: int | None = None) -> Any:
        """The shape of the mean and variance, or its length along ``dim`` where given, as ``Tensor.size``."""
        return self.mean.size() if dim is None else self.mean.size(dim)

    def __len__(self) -> int:
        return len(self.mean)

    def __repr__(self) -> str:
        return f"Moments(shape={tuple(self.shape)})"

    # -- shape operations: the same on both ---------------------------------------------------------------------
    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Moments:
        return Moments(fn(self.mean), fn(self.var))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Moments:
        """The moments with the mean and variance each flattened from ``start_dim`` to ``end_dim``."""
        return self._map(lambda t: t.flatten(start_dim, end_dim))

    def reshape(self, *shape: Any) -> Moments:
        """The moments with the mean and variance each reshaped to ``shape``."""
        return self._map(lambda t: t.reshape(*shape))

    def view(self, *shape: Any) -> Moments:
        """The moments with the mean and variance each reshaped to ``shape``: ``reshape``, a copy where a view is
        impossible (not ``Tensor.view``'s error)."""
        return self._map(lambda t: t.reshape(*shape))

    def unsqueeze(self, dim: int) -> Moments:
        """The moments with an axis of size 1 inserted at ``dim`` in the mean and variance."""
        return self._map(lambda t: t.unsqueeze(dim))

    def squeeze(self, *dim: int) -> Moments:
        """The moments with the axes of size 1 (those among ``dim`` where given) removed from the mean and
        variance."""
        return self._map(lambda t: t.squeeze(*dim))

    def __getitem__(self, index: Any) -> Moments:
        return self._map(lambda t: t[index])

    # -- arithmetic ----------------------------------------------------------------------------------------------
    def __add__(self, other: Any) -> Moments:
        if isinstance(other, Moments):  # independent summands
            return Moments(self.mean + other.mean, self.var + other.var)
        return Moments(self.mean + other, self.var)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Moments:
        return self + (-other)

    def __rsub__(self, other: Any) -> Moments:
        return (-self) + other

    def __neg__(self) -> Moments:
        return Moments(-self.mean, self.var)

    def __mul__(self, other: Any) -> Moments:
        """The product with a constant, or with an independent :class:`Moments` (a dropout multiplier)."""
        if isinstance(other, Moments):
            second = (self.var + self.mean**2) * (other.var + other.mean**2)
            mean = self.mean * other.mean
            return Moments(mean, (second - mean**2).clamp_min(0.0))
        return Moments(self.mean * other, self.var * other**2)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Moments:
        return self * (1.0 / other)

    # -- layers --------------------------------------------------------------------------------------------------
    def linear(
        self,
        op: Callable[..., torch.Tensor],
        loc: torch.Tensor,
        variance: torch.Tensor | None = None,
        *,
        bias: torch.Tensor | None = None,
    ) -> Moments:
        """``op(x, W)`` for an ``op`` linear in both arguments (``F.linear``, a convolution), with a weight of mean
        ``loc`` and elementwise ``variance`` (``None``: a point estimate); the inputs independent.  With a ``bias``,
        ``op(x, W, bias)``, which adds it to the mean."""
        mean = op(self.mean, loc) if bias is None else op(self.mean, loc, bias)
        if variance is None:
            return Moments(mean, op(self.var, loc * loc))
        return Moments(mean, op(self.var, loc * loc + variance) + op(self.mean**2, variance))

    def relu(self) -> Moments:
        """Exact mean and variance of :math:`\\max(0, s)`, :math:`s \\sim \\mathcal N(\\mu, v)`."""
        sd = self.var.clamp_min(1e-12).sqrt()
        a = self.mean / sd
        cdf = normal_cdf(a)
        pdf = torch.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        first = self.mean * cdf + sd * pdf
        second = (self.mean**2 + self.var) * cdf + self.mean * sd * pdf
        return Moments(first, (second - first**2).clamp_min(0.0))

    def elementwise(self, g: Callable[[torch.Tensor], torch.Tensor]) -> Moments:
        """Mean and variance of ``g(s)`` by three-point Gauss-Hermite quadrature (exact for degree-5 polynomials)."""
        sd = self.var.sqrt()
        values = [(g(self.mean + node * sd), w) for node, w in _GH3]
        first = sum(w * v for v, w in values)
        second = sum(w * v * v for v, w in values)
        assert isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)
        return Moments(first, (second - first**2).clamp_min(0.0))

    def sigma_points(self, event_dims: int = 1) -> torch.Tensor:
        """The :math:`2d` equally weighted points :math:`\\mu \\pm \\sqrt{d\\, v_k} e_k` of the unscented transform
        over the last ``event_dims`` axes (``d`` entries per example), stacked on a new leading axis:
        ``(2d, *shape)``.  Their mean is :math:`\\mu` and their covariance :math:`\\mathrm{diag}(v)`, exactly."""
        lead = self.mean.shape[: self.mean.dim() - event_dims]
        mean, var = self.mean.reshape(*lead, -1), self.var.reshape(*lead, -1)
        d = mean.shape[-1]
        eye = torch.eye(d, dtype=mean.dtype, device=mean.device)  # (d, d): point k moves entry k
        # (d, *lead, d); a variance of exactly 0 (a ReLU unit off for sure) gets the gradient 0, not sqrt's inf * 0
        step = (d * var).clamp_min(torch.finfo(var.dtype).tiny).sqrt().unsqueeze(0) * eye.reshape(
            d, *(1,) * len(lead), d
        )
        points = torch.cat([mean + step, mean - step])
        return points.reshape(2 * d, *self.mean.shape)

    # -- the torch function protocol -----------------------------------------------------------------------------
    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        first, rest = args[0], args[1:]
        if not isinstance(first, Moments):  # e.g. tensor * Moments
            if name in ("mul", "__mul__", "add", "__add__") and len(rest) == 1 and isinstance(rest[0], Moments):
                return rest[0] * first if "mul" in name else rest[0] + first
            raise TypeError(f"fast dropout cannot propagate Gaussian moments through {name} with these arguments")
        if name == "relu":
            return first.relu()
        if name == "linear":
            weight = _plain(rest[0] if rest else kwargs["weight"])
            bias = _plain(rest[1] if len(rest) > 1 else kwargs.get("bias"))
            out = first.linear(F.linear, weight)
            return out if bias is None else out + bias
        if name in _ELEMENTWISE:
            return first.elementwise(lambda t: func(t, *map(_plain, rest), **kwargs))
        if name in ("flatten", "reshape", "view", "unsqueeze", "squeeze", "__getitem__"):
            return getattr(first, name)(*rest, **kwargs)
        if name in ("mul", "__mul__", "__rmul__"):
            return first * rest[0]
        if name in ("add", "__add__", "__radd__"):
            return first + rest[0]
        if name == "dropout" and not kwargs.get("training", rest[1] if len(rest) > 1 else True):
            return first  # nn.Dropout in eval mode
        raise TypeError(
            f"fast dropout propagates Gaussian moments through linear layers, sums, products, ReLU and elementwise "
            f"activations; {name} is none of them (use a sampling rule for this network)"
        )


_ELEMENTWISE = {
    "tanh",
    "sigmoid",
    "elu",
    "gelu",
    "silu",
    "softplus",
    "leaky_relu",
    "selu",
    "celu",
    "mish",
    "hardtanh",
    "softsign",
}
