r"""``bd.nn.LSTM`` and ``bd.nn.GRU``: recurrent layers whose weights and noise a dropout method governs.

For sequence models (classification from the last state, forecasting).  Batch-first inputs ``(B, T, input_size)``,
several layers, optionally bidirectional, with the parameters and the outputs of ``torch.nn.LSTM`` / ``GRU``
(``output, (h_n, c_n)`` and ``output, h_n``), so that ``bd.bayesianize`` converts them and a pretrained network's
weights carry over.  Each layer ``l`` (and direction, suffix ``_reverse``) has

* two weight sites, ``weight_ih_l{l}`` ``(G H, in)`` and ``weight_hh_l{l}`` ``(G H, H)`` (``G`` = 4 gates for the
  LSTM, 3 for the GRU), their own Pyro sites; the biases are point estimates.  A weight is drawn once per sequence
  batch and shared by every step, so the local reparameterisation trick is off for both (``WeightSite.lrt``);
* four noise sites, by role (:class:`~bayesdrop.sites.NoiseSite`): ``noise_l{l}`` on the inputs :math:`x_t`
  (``"input"``, folded into ``weight_ih``), ``noise_hh_l{l}`` on the previous hidden state :math:`h_{t-1}`
  (``"recurrent"``, folded into ``weight_hh``), ``cell_l{l}`` on the cell state :math:`c_t` (``"cell"``, LSTM
  only) and ``update_l{l}`` on the update of the state (``"update"``: :math:`i_t \circ \tilde c_t` of the LSTM,
  :math:`(1 - z_t) \circ n_t` of the GRU).  A method draws on the roles it declares
  (``capabilities.noise_roles``): every method of noise sites on the inputs, a fresh draw per step (Zaremba et
  al. 2014's dropout of the non-recurrent connections, the baseline); ``variational-rnn`` on the inputs and the
  hidden state, one draw per sequence (Gal & Ghahramani 2016); ``rnndrop`` on the cell (Moon et al. 2015);
  ``recurrent-dropout`` on the update (Semeniuta et al. 2016).

The LSTM, in ``torch.nn.LSTM``'s gate order, with the noise where the roles put it (:math:`m^x, m^h, m^c, m^u`,
one where a method puts none):

.. math::
    (i, f, g, o)_t &= (\sigma, \sigma, \tanh, \sigma)\big(W_{ih} (x_t \circ m^x) + b_{ih}
                      + W_{hh} (h_{t-1} \circ m^h) + b_{hh}\big) \\
    c_t &= \big(f_t \circ c_{t-1} + i_t \circ g_t \circ m^u\big) \circ m^c,\qquad h_t = o_t \circ \tanh(c_t).

The GRU: :math:`r, z = \sigma(\cdot)`, :math:`n_t = \tanh(W_{in} x'_t + b_{in} + r_t \circ (W_{hn} h'_{t-1} +
b_{hn}))`, :math:`h_t = (1 - z_t) \circ n_t \circ m^u + z_t \circ h_{t-1}`, with :math:`x' = x \circ m^x` and
:math:`h' = h \circ m^h`.  Every draw is made before the loop, ``(B, T, units)`` per step or ``(B, 1, units)`` per
sequence, so a step is two matrix products and the gates.

Example
-------
>>> lstm = bd.nn.LSTM(1, 64, num_layers=2, method="variational-rnn", p=0.25)  # batch first
>>> out, (h, c) = lstm(x)            # x: (B, T, 1)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from ..checks import integer
from ..methods import Method
from ..moments import Moments
from .base import BayesianLayer, NoiseSite
from .linear import linear

__all__ = ["LSTM", "GRU"]


class _Recurrent(BayesianLayer):
    """Shared part of the LSTM and the GRU: sites, the noise drawn before the loop, the layers and directions."""

    gates: int
    cell: bool
    batched_weights = True
    _plain: Callable[..., torch.nn.RNNBase]  # torch.nn.LSTM or GRU (RNNBase's own first argument is the mode)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        method: str | Method = "bernoulli",
        bias: bool = True,
        batch_first: bool = True,
        bidirectional: bool = False,
        **hyper: Any,
    ):
        input_size, hidden_size = integer(input_size, "input_size"), integer(hidden_size, "hidden_size")
        num_layers = integer(num_layers, "num_layers")
        for arg, v in (("batch_first", batch_first), ("bidirectional", bidirectional), ("bias", bias)):
            if not isinstance(v, bool):
                raise TypeError(f"`{arg}` must be a bool, got {type(v).__name__}")
        ref = self._plain(input_size, hidden_size, num_layers, bias=bias, batch_first=True, bidirectional=bidirectional)
        directions = ("", "_reverse") if bidirectional else ("",)
        weights, noise, biases = {}, {}, {}
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * len(directions)
            for sfx in directions:
                key = f"l{layer}{sfx}"
                weights[f"weight_ih_{key}"] = getattr(ref, f"weight_ih_{key}")
                weights[f"weight_hh_{key}"] = getattr(ref, f"weight_hh_{key}")
                noise[f"noise_{key}"] = NoiseSite(f"noise_{key}", (width,), weight=f"weight_ih_{key}", sequence=True)
                noise[f"noise_hh_{key}"] = NoiseSite(
                    f"noise_hh_{key}", (hidden_size,), weight=f"weight_hh_{key}", role="recurrent", sequence=True
                )
                if self.cell:
                    noise[f"cell_{key}"] = NoiseSite(f"cell_{key}", (hidden_size,), role="cell", sequence=True)
                noise[f"update_{key}"] = NoiseSite(f"update_{key}", (hidden_size,), role="update", sequence=True)
                if bias:
                    biases[f"bias_ih_{key}"] = getattr(ref, f"bias_ih_{key}")
                    biases[f"bias_hh_{key}"] = getattr(ref, f"bias_hh_{key}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.has_bias, self.directions = bidirectional, bias, directions
        self.batch_first = batch_first
        super().__init__(method, weights, noise, **hyper)
        for name, site in self.weight_sites.items():  # shared by the steps: no local reparameterisation
            self.weight_sites[name] = dataclasses.replace(site, lrt=False)
        for name, b in biases.items():
            self.register_parameter(name, torch.nn.Parameter(b.detach().clone()))

    def _bias(self, kind: str, key: str) -> torch.Tensor | float:
        return getattr(self, f"bias_{kind}_{key}") if self.has_bias else 0.0

    @property
    def units(self) -> int:
        """The number of input units of the first layer."""
        return self.input_size

    def forward(self, x: torch.Tensor, hx: Any = None) -> tuple[torch.Tensor, Any]:
        if isinstance(x, Moments):
            raise TypeError("recurrent layers take tensors, not the Gaussian moments of fast dropout")
        if not torch.is_tensor(x) or x.dim() != 3 or x.shape[-1] != self.input_size:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            layout = "batch, time" if self.batch_first else "time, batch"
            raise ValueError(f"`x` must have shape ({layout}, {self.input_size}), got {shape}")
        if x.shape[1 if self.batch_first else 0] == 0:
            raise ValueError(f"`x` must hold at least one time step, got the shape {tuple(x.shape)}")
        if not self.batch_first:
            x = x.transpose(0, 1)
        x = self.fold_draws(x)
        batch = x.shape[0]
        nd = len(self.directions)
        states = self._initial(hx, batch, x)
        finals_h, finals_c = [], []
        out = x
        for layer in range(self.num_layers):
            outs = []
            for d, sfx in enumerate(self.directions):
                key = f"l{layer}{sfx}"
                h0 = states[0][layer * nd + d]
                c0 = states[1][layer * nd + d] if self.cell else None
                seq, h, c = self._direction(out, key, h0, c0, reverse=bool(sfx))
                outs.append(seq)
                finals_h.append(h)
                if c is not None:
                    finals_c.append(c)
            out = outs[0] if nd == 1 else torch.cat(outs, -1)
        h_n = torch.stack(finals_h)
        out = out if self.batch_first else out.transpose(0, 1)
        return (out, (h_n, torch.stack(finals_c))) if self.cell else (out, h_n)

    def _initial(self, hx: Any, batch: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.num_layers * len(self.directions), batch, self.hidden_size)
        if hx is None:
            zeros = x.new_zeros(shape)
            return zeros, zeros
        h0, c0 = hx if self.cell else (hx, hx)
        if torch.is_tensor(h0) and torch.is_tensor(c0) and h0.dim() == c0.dim() == 3:
            h0, c0 = self.fold_draws(h0, 1), self.fold_draws(c0, 1)  # the draws of a vectorised run
        for name, t in (("h_0", h0), ("c_0", c0)):
            if not torch.is_tensor(t) or tuple(t.shape) != shape:
                got = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
                raise ValueError(f"`hx`: {name} must have shape {shape}, got {got}")
        return h0, c0

    def _direction(self, x, key, h, c, reverse):
        """One layer in one direction over the sequence ``x`` ``(B, T, in)``: outputs ``(B, T, H)`` and the last
        state."""
        batch, steps = x.shape[:2]
        like = x.new_zeros(()).expand(batch, steps, self.hidden_size)  # the shape of a state over the steps
        x = self.noise(f"noise_{key}", x)
        w_ih, w_hh = self.weight(f"weight_ih_{key}"), self.weight(f"weight_hh_{key}")
        # (B, T, G H): the inputs' part of every step at once; the LSTM's recurrent bias folded in (the GRU's stays
        # inside its reset gate)
        gates_x = linear(x, w_ih) + self._bias("ih", key) + (self._bias("hh", key) if self.cell else 0.0)
        m_h = self.multiplier(f"noise_hh_{key}", like)  # (B, T or 1, H) or None: drawn before the loop
        m_c = self.multiplier(f"cell_{key}", like) if self.cell else None
        m_u = self.multiplier(f"update_{key}", like)
        b_hh = self._bias("hh", key)
        outs = [x.new_zeros(())] * steps
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        for t in order:
            h_in = h if m_h is None else h * _at(m_h, t)
            g_h = linear(h_in, w_hh) if self.cell else linear(h_in, w_hh) + b_hh
            h, c = self._cell(gates_x[:, t], g_h, h, c, _at(m_u, t), _at(m_c, t))
            outs[t] = h
        return torch.stack(outs, 1), h, c

    def _cell(self, g_x, g_h, h, c, m_u, m_c):
        raise NotImplementedError

    # -- the test-time network ------------------------------------------------------------------------------------
    def to_plain(self, values, bias=None) -> torch.nn.Module:
        """``torch.nn.LSTM`` / ``GRU`` with the noise means folded into the weights (the inputs' into
        ``weight_ih``, the hidden state's into ``weight_hh``); refused where a method's noise on the cell or the
        update has a mean other than one (RNNDrop's and recurrent dropout's test-time scaling is not a weight)."""
        for name, site in self.noise_sites.items():
            if site.weight is None and name in values and not bool((values[name] == 1).all()):
                raise ValueError(
                    f"{type(self).__name__}: the test-time network scales the {site.role} ({name}) by the noise's "
                    "mean, which torch's recurrent layers cannot: predict with bd.predict(..., rule='weight-scaling')"
                )
        folded = self.fold(values)
        m = self._plain(
            self.input_size,
            self.hidden_size,
            self.num_layers,
            bias=self.has_bias,
            batch_first=self.batch_first,
            bidirectional=self.bidirectional,
        )
        with torch.no_grad():
            for name, w in folded.items():
                getattr(m, name).copy_(w)
            if self.has_bias:
                for name, p in self.named_parameters(recurse=False):
                    if name.startswith("bias_"):
                        getattr(m, name).copy_(p)
        return m.to(self.like.device, self.like.dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, method={self.method!r}, "
            f"bias={self.has_bias}, batch_first={self.batch_first}, bidirectional={self.bidirectional}"
        )


def _at(m: torch.Tensor | None, t: int) -> torch.Tensor | None:
    """Step ``t`` of a multiplier drawn per step ``(B, T, units)`` or per sequence ``(B, 1, units)``."""
    if m is None:
        return None
    return m[:, t if m.shape[1] > 1 else 0]


class LSTM(_Recurrent):
    """Bayesian ``torch.nn.LSTM`` (batch first): sites and equations in the module's docstring.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, bidirectional
        As ``torch.nn.LSTM``.
    method : str or Method
        A registered method (``bd.methods.names()``: layer methods act on the weights and the inputs, recurrent
        methods on the recurrent noise) or an instance; ``**hyper`` are its hyper-parameters.
    batch_first : bool
        Inputs and outputs ``(batch, time, features)`` (the default here, unlike torch's), or ``(time, batch,
        features)``.

    Returns
    -------
    output : torch.Tensor
        What ``forward(x, hx=None)`` returns first: ``(B, T, H * directions)``, the last layer's hidden states.
    (h_n, c_n) : tuple of torch.Tensor
        Each ``(layers * directions, B, H)``: the last states, as torch's.
    """

    gates, cell, _plain = 4, True, torch.nn.LSTM

    def _cell(self, g_x, g_h, h, c, m_u, m_c):
        gates = g_x + g_h
        i, f, _, o = torch.sigmoid(gates).chunk(4, -1)  # one sigmoid for the three gates (g's quarter unused)
        update = i * torch.tanh(gates[..., 2 * self.hidden_size : 3 * self.hidden_size])
        if m_u is not None:
            update = update * m_u
        c = f * c + update
        if m_c is not None:
            c = c * m_c
        return o * torch.tanh(c), c


class GRU(_Recurrent):
    """Bayesian ``torch.nn.GRU`` (batch first): sites and equations in the module's docstring; parameters as
    :class:`LSTM`, ``forward(x, hx=None)`` returns ``output, h_n``."""

    gates, cell, _plain = 3, False, torch.nn.GRU

    def _cell(self, g_x, g_h, h, c, m_u, m_c):
        r_x, z_x, n_x = g_x.chunk(3, -1)
        r_h, z_h, n_h = g_h.chunk(3, -1)
        r, z = torch.sigmoid(r_x + r_h), torch.sigmoid(z_x + z_h)
        n = torch.tanh(n_x + r * n_h)
        update = (1 - z) * n
        if m_u is not None:
            update = update * m_u
        return update + z * h, None
