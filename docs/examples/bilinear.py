"""A new layer kind, in one file: a Bayesian bilinear layer that every input-noise method works with.

:math:`y_k = (x_1 \\circ z)^\\top W_k\\, x_2 + b_k` with ``W`` of shape ``(out, in1, in2)`` (``torch.nn.Bilinear``)
and the method's noise ``z`` on the first input.  The layer declares its sites (one weight site, one noise site on
``x1`` whose units are ``W``'s axis 1) and says how they enter its computation; the method (any registered one)
says what is random.  ``BayesianLayer.lrt`` draws the output by local reparameterisation where the method asks
for it, since the output is linear in ``W``.

>>> from bilinear import Bilinear
>>> layer = Bilinear(5, 3, 2, method="sparse-vd")
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

import bayesdrop as bd


class Bilinear(bd.nn.BayesianLayer):
    """Bayesian ``torch.nn.Bilinear``; sites ``weight`` ``(out, in1, in2)`` and ``noise`` on ``x1`` (``(in1,)``)."""

    def __init__(self, in1: int, in2: int, out: int, method: str | bd.methods.Method = "bernoulli", **hyper: Any):
        ref = torch.nn.Bilinear(in1, in2, out)
        noise = {"noise": bd.nn.NoiseSite("noise", (in1,), weight="weight")}
        super().__init__(method, {"weight": ref.weight}, noise, ref.bias, **hyper)
        self.draw_shapes["noise"] = (in1,)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.noise("noise", x1)
        return self.lrt(lambda x, w: F.bilinear(x, x2, w), x1, self.weight()) + self.bias

    def to_plain(self, values, bias=None) -> torch.nn.Module:
        w = self.fold(values)["weight"]
        m = torch.nn.Bilinear(w.shape[1], w.shape[2], w.shape[0])
        with torch.no_grad():
            m.weight.copy_(w)
            m.bias.copy_(self.bias if bias is None else bias)
        return m
