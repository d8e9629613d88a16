"""``bd.nn.Conv1d`` and ``bd.nn.Conv2d``: Bayesian convolutions with noise on their input feature maps.

For convolutional networks written by hand (``bd.bayesianize`` makes them from ``torch.nn`` ones).  One draw of
the input noise per input element (``noise="element"``, the default), or one per input feature map
(``noise="channel"``: spatial dropout, Tompson et al. 2015, who observe that neighbouring activations of a feature
map are strongly correlated, so that dropping single elements barely regularises); methods with per-unit rates
share them over a feature map either way.  With one draw per feature map the noise's mean folds into the weights
as before: the weight-scaling rule at test time.

Example
-------
>>> conv = bd.nn.Conv2d(1, 20, 5, method="bernoulli", padding=2)
>>> spatial = bd.nn.Conv2d(20, 50, 5, method="bernoulli", noise="channel")   # spatial dropout
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from ..checks import integer
from ..methods import Method
from .base import BayesianLayer, NoiseSite, filled, grouped_rows, is_input

__all__ = ["Conv1d", "Conv2d", "NOISE"]

NOISE = ("element", "channel")  # one draw of the input noise per input element, or per input feature map
PADDING = ("valid", "same")  # the padding strings of torch.nn.Conv1d / Conv2d ("same" for stride 1 only)


def _geometry(value: Any, name: str, dims: int, low: int = 1, words: tuple[str, ...] = ()) -> tuple[int, ...] | str:
    """``value`` of a convolution's ``name`` (``kernel_size``, ``stride``, ``padding``, ``dilation``) as a tuple of
    ``dims`` ints, each at least ``low``: one int (Python's, NumPy's; not ``bool``) for every axis, or a tuple or list
    of ``dims``; or one of the strings ``words`` as given.  A ``TypeError`` naming ``name`` and what it accepts when it
    is not of these kinds (a float, a bool, ``None``, a string where none is accepted), a ``ValueError`` when it is
    out of range, of the wrong length or an unknown string."""
    ints = "int" if dims == 1 else "ints"
    if low == 1:
        one, each = "a positive int", f"{dims} positive {ints}"
    else:
        one, each = f"an int >= {low}", f"{dims} {ints} >= {low}"
    accepted = f"{one}, a tuple of {each} or one of {words}" if words else f"{one} or a tuple of {each}"
    message = f"`{name}` must be {accepted}, got {value!r}"
    if isinstance(value, str):
        if value in words:
            return value
        raise (ValueError if words else TypeError)(message)
    if isinstance(value, (tuple, list)) and len(value) != dims:
        raise ValueError(message)
    items = value if isinstance(value, (tuple, list)) else (value,) * dims
    try:
        return tuple(integer(v, name, low=low) for v in items)
    except (TypeError, ValueError) as e:  # the same kind of error, naming the whole value and what is accepted
        raise type(e)(message) from None


class _ConvNd(BayesianLayer):
    """Shared part of the convolutions: ``groups=1``, zero padding (ints, or ``"valid"`` / ``"same"``); weights
    ``(out, in, *kernel)``, or ``(G, out, in, *kernel)``, one per example (DropConnect's per-example masks) or per
    network of a vectorised run.  The geometry is checked here, before any weight is made (:func:`_geometry`)."""

    batched_weights = True

    dims: int
    _plain: type[torch.nn.modules.conv._ConvNd]
    _fn: Any

    def __init__(self, in_channels, out_channels, kernel_size, method, stride, padding, dilation, bias, noise, hyper):
        in_channels, out_channels = integer(in_channels, "in_channels"), integer(out_channels, "out_channels")
        if noise not in NOISE:
            raise ValueError(f"`noise` must be one of {NOISE}, got {noise!r}")
        if not isinstance(bias, bool):
            raise TypeError(f"`bias` must be a bool, got {type(bias).__name__}")
        kernel_size = _geometry(kernel_size, "kernel_size", self.dims)
        stride = _geometry(stride, "stride", self.dims)
        padding = _geometry(padding, "padding", self.dims, low=0, words=PADDING)
        dilation = _geometry(dilation, "dilation", self.dims)
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError(f"`padding='same'` needs `stride` 1 (as torch's convolutions), got stride={stride}")
        ref = self._plain(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias)
        unit_shape = (in_channels,) + (1,) * self.dims
        shape = unit_shape if noise == "channel" else None  # spatial dropout: one draw per input feature map
        sites = {"noise": NoiseSite("noise", unit_shape, shape=shape, weight="weight")}
        super().__init__(method, {"weight": ref.weight}, sites, ref.bias, **hyper)
        self.in_channels, self.out_channels, self.noise_kind = in_channels, out_channels, noise
        if noise == "channel" and "noise" not in self.method.capabilities.sites:
            raise ValueError(
                f"`noise='channel'` sets the draws of the noise on the inputs, and {self.method.name!r} puts its "
                "randomness on the weights; use a method for noise sites (e.g. 'bernoulli')"
            )
        self.kernel_size, self.stride, self.padding, self.dilation = (
            ref.kernel_size,
            ref.stride,
            ref.padding,
            ref.dilation,
        )
        self._op = functools.partial(self._fn, stride=self.stride, padding=self.padding, dilation=self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not is_input(x) or x.dim() != self.dims + 2 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            spatial = ", ".join("HW"[: self.dims] if self.dims == 2 else "L")
            raise ValueError(f"`x` must have shape (batch, {self.in_channels}, {spatial}), got {shape}")
        x = self.noise("noise", self.fold_draws(x))
        return self.lrt(self._conv, x, self.weight(), self.bias)

    def _conv(self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The convolution of ``x`` ``(N, in, *spatial)`` with ``w`` ``(out, in, *kernel)``, or with one weight per
        group of ``N / G`` consecutive rows, ``w`` ``(G, out, in, *kernel)`` (per example: DropConnect's per-example
        masks; per network of a vectorised run): one grouped convolution with ``G`` groups; plus ``bias``
        ``(out,)`` where given."""
        if w.dim() == self.dims + 2:
            return self._op(x, w, bias)
        g, m = grouped_rows(x, w)
        stacked = x.reshape(g, m, *x.shape[1:]).transpose(0, 1).reshape(m, -1, *x.shape[2:])  # (m, G in, ...)
        out = self._op(stacked, w.reshape(-1, *w.shape[2:]), None if bias is None else bias.repeat(g), groups=g)
        return out.reshape(m, g, -1, *out.shape[2:]).transpose(0, 1).reshape(g * m, -1, *out.shape[2:])

    def to_plain(self, values, bias=None):
        w = self.fold(values)["weight"]
        bias = self.bias if bias is None else bias
        m = self._plain(
            w.shape[1], w.shape[0], self.kernel_size, self.stride, self.padding, self.dilation, bias=bias is not None
        )
        return filled(m, w, bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, method={self.method!r}, bias={self.bias is not None}, noise={self.noise_kind!r}"
        )


class Conv1d(_ConvNd):
    """Bayesian 1-D convolution (``groups=1``); inputs ``(batch, C, L)``, weights ``(out, in, k)``.

    Sites as :class:`Conv2d`: ``weight`` (input channels on axis 1) and ``noise`` on the input feature maps (unit
    shape ``(C, 1)``; one draw per element, or per feature map with ``noise="channel"``).

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, bias
        As ``torch.nn.Conv1d`` (``groups=1``, zero padding: an int, a tuple of one int, or ``"valid"`` / ``"same"``,
        the latter for stride 1); ``stride=1``, ``padding=0``, ``dilation=1`` and ``bias=True`` by default.
    method : str or Method
        Registered name or instance; ``"bernoulli"`` by default.
    noise : {"element", "channel"}
        One draw of the input noise per input element (the default), or one per input feature map (spatial
        dropout, which needs a method with a noise site).
    **hyper
        Hyper-parameters of the method when given by name.

    Raises
    ------
    TypeError
        Naming the argument, if ``in_channels``, ``out_channels``, ``kernel_size``, ``stride``, ``padding`` or
        ``dilation`` (or an element of its tuple) is not an int (Python's or NumPy's; a ``bool`` is not one), and
        ``padding`` not a string either; if ``bias`` is not a bool.
    ValueError
        Naming the argument, if one of them is below 1 (``padding``: below 0), a tuple is not of length 1,
        ``padding`` is a string other than ``"valid"`` and ``"same"``, or ``"same"`` with a stride other than 1, or
        ``noise`` is not ``"element"`` or ``"channel"``.
    """

    dims, _plain, _fn = 1, torch.nn.Conv1d, staticmethod(F.conv1d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        method: str | Method = "bernoulli",
        stride: int | tuple[int] = 1,
        padding: int | tuple[int] | str = 0,
        dilation: int | tuple[int] = 1,
        bias: bool = True,
        noise: str = "element",
        **hyper: Any,
    ):
        super().__init__(in_channels, out_channels, kernel_size, method, stride, padding, dilation, bias, noise, hyper)


class Conv2d(_ConvNd):
    """Bayesian 2-D convolution (``groups=1``); inputs ``(batch, C, H, W)``, weights ``(out, in, kh, kw)``.

    Sites: ``weight`` (input channels on axis 1) and ``noise`` on the input feature maps (unit shape ``(C, 1, 1)``;
    one draw per element, or per feature map with ``noise="channel"``).

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, bias
        As ``torch.nn.Conv2d`` (``groups=1``, zero padding: an int, a tuple of two ints, or ``"valid"`` / ``"same"``,
        the latter for stride 1).
    method : str or Method
        Registered name or instance.
    noise : {"element", "channel"}
        One draw of the input noise per input element, or one per input feature map (spatial dropout).
    **hyper
        Hyper-parameters of the method when given by name.

    Raises
    ------
    TypeError, ValueError
        As :class:`Conv1d`'s, for tuples of length 2.
    """

    dims, _plain, _fn = 2, torch.nn.Conv2d, staticmethod(F.conv2d)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        method: str | Method = "bernoulli",
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        noise: str = "element",
        **hyper: Any,
    ):
        super().__init__(in_channels, out_channels, kernel_size, method, stride, padding, dilation, bias, noise, hyper)
