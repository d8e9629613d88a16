"""``bd.nn.Linear``: a Bayesian fully connected layer, ``y = (x * z) W^T + b`` with input noise ``z``.

For networks written by hand.  Inputs have any leading dimensions, as for ``torch.nn.Linear``; one draw of the
input noise per element of ``x`` (per unit for a 2-D input).

Example
-------
>>> layer = bd.nn.Linear(784, 300, method="sparse-vd")
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..checks import integer
from ..methods import Method
from .base import BayesianLayer, NoiseSite, filled, grouped_rows, is_input

__all__ = ["Linear"]


def linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x W^T + b`` for ``x`` ``(N, *, in)``: ``w`` ``(out, in)``, or ``(G, out, in)``, one weight per group of
    ``N / G`` consecutive rows (per example, or per network of a vectorised run:
    :func:`~bayesdrop.nn.base.grouped_rows`); ``bias`` ``(out,)`` or ``None``, added in the same kernel."""
    if w.dim() == 2:
        return F.linear(x, w, bias)
    g, _ = grouped_rows(x, w)
    flat = x.reshape(g, -1, x.shape[-1])
    wt = w.transpose(1, 2)
    out = torch.bmm(flat, wt) if bias is None else torch.baddbmm(bias, flat, wt)
    return out.reshape(*x.shape[:-1], w.shape[1])


class Linear(BayesianLayer):
    """Bayesian ``y = (x * z) W^T + b`` with ``W`` of shape ``(out_features, in_features)``.

    Sites: ``weight`` (``(out, in)``, input units on axis 1; or ``(B, out, in)``, one per example, for
    DropConnect's per-example masks, and ``(S, out, in)``, one per network, in a vectorised run) and ``noise`` on the inputs (unit shape ``(in,)``).

    Parameters
    ----------
    in_features, out_features : int
    method : str or Method
        Registered name (see :func:`bayesdrop.methods.names`) or instance.
    bias : bool
        Learn a deterministic bias (a point estimate, as in Kingma et al. 2015).
    **hyper
        Hyper-parameters of the method when given by name.

    Raises
    ------
    TypeError
        If ``in_features`` or ``out_features`` is not an int (Python's or NumPy's, not ``bool``), or ``bias`` not a
        bool.
    ValueError
        If ``in_features`` or ``out_features`` is below 1.
    """

    batched_weights = True

    def __init__(
        self, in_features: int, out_features: int, method: str | Method = "bernoulli", bias: bool = True, **hyper: Any
    ):
        in_features, out_features = integer(in_features, "in_features"), integer(out_features, "out_features")
        if not isinstance(bias, bool):
            raise TypeError(f"`bias` must be a bool, got {type(bias).__name__}")
        ref = torch.nn.Linear(in_features, out_features, bias=bias)
        noise = {"noise": NoiseSite("noise", (in_features,), weight="weight")}
        super().__init__(method, {"weight": ref.weight}, noise, ref.bias, **hyper)
        self.in_features, self.out_features = in_features, out_features
        self.draw_shapes["noise"] = (in_features,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not is_input(x) or x.dim() < 1 or x.shape[-1] != self.in_features:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"`x` must have shape (*, {self.in_features}), got {shape}")
        x = self.noise("noise", self.fold_draws(x))
        return self.lrt(linear, x, self.weight(), self.bias)

    def to_plain(self, values, bias=None):
        w = self.fold(values)["weight"]
        bias = self.bias if bias is None else bias
        return filled(torch.nn.Linear(w.shape[1], w.shape[0], bias=bias is not None), w, bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, method={self.method!r}, bias={self.bias is not None}"
