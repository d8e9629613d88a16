"""``bd.nn.Dropout``: a weightless layer that applies a method's noise anywhere in a network.

For noise where no weight layer is: after pooling, on a residual branch, on an embedding.  The method must act on
noise sites (``"noise" in bd.methods.info(name)["capabilities"].sites``): the fixed-rate and Generalized Dropout methods and
``vbd`` with ``granularity="unit"``.

Example
-------
>>> spatial = bd.nn.Dropout("bernoulli", noise_shape=(20, 1, 1))  # one draw per feature map of (20, H, W) inputs
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..checks import integer
from ..methods import Method
from .base import BayesianLayer, NoiseSite, is_input

__all__ = ["Dropout", "Scale"]


class Scale(torch.nn.Module):
    """A plain module multiplying its input by a fixed tensor (``scale``, a buffer): an exported noise mean."""

    scale: torch.Tensor

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Dropout(BayesianLayer):
    """``x * z``, with ``z`` the method's noise (site ``noise``), one draw of shape ``noise_shape`` per example.

    Parameters
    ----------
    method : str or Method
    noise_shape : sequence of int
        Required: the shape of one draw per example, broadcast against one example of the input: ``(features,)``
        for a feature vector, ``(C, H, W)`` for one draw per element of an image, ``(C, 1, 1)`` for one per feature
        map.  The units (whose rates a method may learn) are its first axis.
    **hyper
        Hyper-parameters of the method when given by name.
    """

    def __init__(self, method: str | Method = "bernoulli", noise_shape: Sequence[int] | None = None, **hyper: Any):
        if noise_shape is None:
            raise TypeError(
                "bd.nn.Dropout needs `noise_shape`, the shape of one draw per example: e.g. noise_shape=(features,) "
                "for feature vectors, (C, H, W) for one draw per element of an image, (C, 1, 1) for one per feature map"
            )
        sizes = noise_shape if isinstance(noise_shape, (tuple, list, torch.Size)) else ()
        try:  # sizes as ints (NumPy integers too, not bools)
            shape = tuple(integer(n, "noise_shape") for n in sizes)
        except (TypeError, ValueError):
            shape = ()
        if not shape:
            raise ValueError(f"`noise_shape` must be a non-empty sequence of positive ints, got {noise_shape!r}")
        unit_shape = (shape[0],) + (1,) * (len(shape) - 1)
        super().__init__(method, {}, {"noise": NoiseSite("noise", unit_shape, shape=shape)}, **hyper)
        self.noise_shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.noise_shape)
        if not is_input(x) or x.dim() <= n:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"`x` must have shape (batch, ...) broadcastable with {self.noise_shape}, got {shape}")
        try:
            torch.broadcast_shapes(tuple(x.shape[-n:]), self.noise_shape)
        except RuntimeError:
            raise ValueError(
                f"`x` of shape {tuple(x.shape)} does not broadcast with noise_shape {self.noise_shape}"
            ) from None
        return self.noise("noise", x)

    def to_plain(self, values, bias=None):
        """``Identity`` where the noise has mean one (fixed-rate dropout), else :class:`Scale` by its mean."""
        z = values.get("noise")
        if z is None:
            return torch.nn.Identity()
        z = z.reshape(-1, *self.noise_shape)[0]
        return torch.nn.Identity() if bool((z == 1).all()) else Scale(z)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, noise_shape={self.noise_shape}"
