r"""``bd.nn.MaxPool1d/2d`` and ``bd.nn.AvgPool1d/2d``: pooling layers whose pooling a method randomises.

For convolutional networks with the pooling dropouts of Wu & Gu (2015), stochastic pooling (Zeiler & Fergus 2013)
or Max-Drop (Park & Kwak 2016).  A pooling layer cuts its input ``(B, C, *spatial)`` into windows ``(B, C, *out,
K)`` (``K`` elements each, as ``torch.nn.MaxPool2d`` / ``AvgPool2d`` with the same kernel and stride) and outputs, for
every window, the sum of its values :math:`a_k` weighted by the method's *window weights* :math:`w_k`,

.. math:: y = \sum_{k=1}^{K} w_k\, a_k,

which its method draws (site ``pool``): the one-hot vector at the maximum of the masked window for max-pooling
dropout, the inverted mask over ``K`` for average-pooling dropout, the one-hot vector of an element drawn with
probability :math:`a_k / \sum_j a_j` for stochastic pooling.  At the posterior mean the weights are the method's
test-time rule (e.g. probabilistic weighted pooling), which :meth:`to_plain` exports as a plain
:class:`WindowPool`.  The layers know nothing of the channels (as ``torch.nn.MaxPool2d``): a pool method has one rate
for every feature map.

Example
-------
>>> pool = bd.nn.MaxPool2d(2, method="maxpool-dropout", p=0.5)
>>> net = bd.bayesianize(make_torch_cnn(), "bernoulli", pool_method="stochastic-pooling")
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from ..methods import Method
from .base import BayesianLayer, PoolSite

__all__ = ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "WindowPool", "windows"]


def _tuple(value: Any, dims: int, name: str) -> tuple[int, ...]:
    t = (value,) * dims if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(t, (tuple, list))
        or len(t) != dims
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in t)
    ):
        raise ValueError(f"`{name}` must be a positive int or a tuple of {dims} positive ints, got {value!r}")
    return tuple(t)


def windows(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """The pooling windows of ``x`` ``(B, C, *spatial)``: ``(B, C, *out, K)``, ``K = prod(kernel)``, the windows of
    ``torch.nn.MaxPool{N}d(kernel, stride)`` (no padding, ``ceil_mode=False``) in the order of the kernel's
    elements."""
    dims = len(kernel)
    for d in range(dims):
        x = x.unfold(2 + d, kernel[d], stride[d])
    return x.reshape(*x.shape[: 2 + dims], -1)


class WindowPool(torch.nn.Module):
    """A plain pooling module: each window's values weighted by ``weights(windows)`` and summed.

    The test-time network of a pooling layer (what :func:`bayesdrop.compress.prune` exports): ``weights`` is its
    method's window weights at the posterior mean (:meth:`~bayesdrop.methods.Method.pool_test_weights`), e.g.
    probabilistic weighted pooling.

    Parameters
    ----------
    kernel_size : tuple of int
        The window's size along each spatial axis, one int per axis (its length sets the number of
        spatial axes: ``(k,)`` for inputs ``(B, C, L)``, ``(kh, kw)`` for ``(B, C, H, W)``); no int is expanded here.
    stride : tuple of int
        The step between windows along each spatial axis, as long as ``kernel_size`` (no padding,
        ``ceil_mode=False``).
    weights : callable
        Maps the windows ``(B, C, *out, K)`` of :func:`windows` to their weights (the same shape, or one that
        broadcasts to it).
    name : str
        The name of the rule, shown as ``rule=`` in the module's repr (the method's name in
        :meth:`~bayesdrop.nn.MaxPool2d.to_plain`); ``""`` by default.
    """

    def __init__(
        self,
        kernel_size: tuple[int, ...],
        stride: tuple[int, ...],
        weights: Callable[[torch.Tensor], torch.Tensor],
        name: str = "",
    ):
        super().__init__()
        self.kernel_size, self.stride, self.weights, self.name = kernel_size, stride, weights, name
        self.dims = len(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        win = windows(x, self.kernel_size, self.stride)
        return (win * self.weights(win)).sum(-1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, rule={self.name!r}"


class _PoolNd(BayesianLayer):
    """Shared part of the pooling layers: no padding, no dilation, ``ceil_mode=False``."""

    dims: int
    reduce: str

    def __init__(self, kernel_size, stride, method, hyper):
        kernel = _tuple(kernel_size, self.dims, "kernel_size")
        step = kernel if stride is None else _tuple(stride, self.dims, "stride")
        site = PoolSite("pool", (1,) * (self.dims + 2), self.reduce, math.prod(kernel))
        super().__init__(method, {}, pool={"pool": site}, **hyper)
        self.kernel_size, self.stride = kernel, step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or x.dim() != self.dims + 2:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            spatial = ", ".join("HW" if self.dims == 2 else "L")
            raise ValueError(f"`x` must have shape (batch, channels, {spatial}), got {shape}")
        if any(n < k for n, k in zip(x.shape[2:], self.kernel_size)):
            raise ValueError(f"`x` of shape {tuple(x.shape)} is smaller than the pooling kernel {self.kernel_size}")
        return self.pool("pool", windows(x, self.kernel_size, self.stride))

    def to_plain(self, values, bias=None) -> torch.nn.Module:
        """A :class:`WindowPool` with the method's test-time window weights."""
        site = self.pool_sites["pool"]
        return WindowPool(
            self.kernel_size,
            self.stride,
            functools.partial(self.method.pool_test_weights, site),
            self.method.name or type(self.method).__name__,
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, method={self.method!r}"


class MaxPool1d(_PoolNd):
    """Max pooling of ``(B, C, L)`` inputs randomised by a pool method (``maxpool-dropout``, ``max-drop``,
    ``stochastic-pooling``).

    Parameters
    ----------
    kernel_size, stride
        As ``torch.nn.MaxPool1d`` (``stride`` defaults to ``kernel_size``; no padding, dilation or ``ceil_mode``).
    method : str or Method
        A registered pool method (``bd.methods.names(role="pool")``) or an instance.
    **hyper
        Hyper-parameters of the method when given by name.
    """

    dims, reduce = 1, "max"

    def __init__(
        self,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] | None = None,
        method: str | Method = "maxpool-dropout",
        **hyper: Any,
    ):
        super().__init__(kernel_size, stride, method, hyper)


class MaxPool2d(_PoolNd):
    """Max pooling of ``(B, C, H, W)`` inputs randomised by a pool method; parameters as :class:`MaxPool1d`."""

    dims, reduce = 2, "max"

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        method: str | Method = "maxpool-dropout",
        **hyper: Any,
    ):
        super().__init__(kernel_size, stride, method, hyper)


class AvgPool1d(_PoolNd):
    """Average pooling of ``(B, C, L)`` inputs randomised by a pool method (``avgpool-dropout``,
    ``stochastic-pooling``); parameters as :class:`MaxPool1d`."""

    dims, reduce = 1, "avg"

    def __init__(
        self,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] | None = None,
        method: str | Method = "avgpool-dropout",
        **hyper: Any,
    ):
        super().__init__(kernel_size, stride, method, hyper)


class AvgPool2d(_PoolNd):
    """Average pooling of ``(B, C, H, W)`` inputs randomised by a pool method; parameters as :class:`MaxPool1d`."""

    dims, reduce = 2, "avg"

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        method: str | Method = "avgpool-dropout",
        **hyper: Any,
    ):
        super().__init__(kernel_size, stride, method, hyper)
