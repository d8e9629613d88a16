r"""Dropout inside the recurrence of ``bd.nn.LSTM`` and ``bd.nn.GRU``: variational RNN dropout, RNNDrop and recurrent
dropout.

For users of recurrent networks who want dropout that does not wipe the network's memory at every step.  Each method
draws Bernoulli masks on the noise sites of a recurrent layer's roles (:class:`~bayesdrop.sites.NoiseSite`; the
equations of the layers are in :mod:`bayesdrop.nn.recurrent`), with the guide's law equal to the prior's (KL 0, as
``bernoulli``) and point-estimate weights under a Gaussian prior (weight decay).  The masks are not rescaled, as
Thevenot's survey "12 Main Dropout Methods" (2020) writes them, so that the deterministic test-time network
(``bd.predict(..., rule="weight-scaling")``: every mask at its mean :math:`1 - p`) is each paper's test-time rule:

``variational-rnn``
    Gal & Ghahramani (2016), "A theoretically grounded application of dropout in recurrent neural networks"
    (NeurIPS): one mask per sequence on the inputs :math:`x_t` and one on the previous hidden state
    :math:`h_{t-1}`, shared by every gate and every step,

    .. math:: (i, f, g, o)_t = \mathrm{act}\big(W \,[x_t \circ m^x;\ h_{t-1} \circ m^h]\big),\qquad
              \text{test: } \mathrm{act}\big((1 - p)\, W [x_t;\ h_{t-1}]\big).

    The same mask at every step is a draw of the weights :math:`W \operatorname{diag}(m)` for the whole sequence:
    the recurrent network's weights are random variables and dropout is variational inference over them, as
    Gal & Ghahramani derive it; a fresh mask per step, as for feed-forward dropout, is not.

``rnndrop``
    Moon et al. (2015), "RNNDrop: a novel dropout for RNNs in ASR" (ASRU): one mask per sequence on the cell state,

    .. math:: c_t = (f_t \circ c_{t-1} + i_t \circ \tilde c_t) \circ m,\qquad
              \text{test: } c_t = (1 - p)(f_t \circ c_{t-1} + i_t \circ \tilde c_t).

    LSTM only (the GRU has no cell).  The survey's test rule scales :math:`c_t` at every step, so the memory of
    step :math:`t - k` enters scaled by :math:`(1 - p)^{k+1}`, where in training a kept unit's memory is never
    scaled: measured, the deterministic network's test error is 19.0 % on the digits' rows against 1.3 % for
    the Monte Carlo predictive (``bd.predict``'s default), and its CO2 RMSE 4.4 ppm against 0.64
    (``benchmarks/results/rnn_dropout.md``).  Predict RNNDrop networks by MC.

``recurrent-dropout``
    Semeniuta et al. (2016), "Recurrent dropout without memory loss" (COLING): a mask on the update only, so that the
    memory :math:`c_{t-1}` passes untouched,

    .. math:: c_t = f_t \circ c_{t-1} + i_t \circ \tilde c_t \circ m,\qquad
              \text{test: } c_t = f_t \circ c_{t-1} + (1 - p)\, i_t \circ \tilde c_t;

    for the GRU the update :math:`(1 - z_t) \circ n_t`.  A fresh mask per step by default
    (``per_sequence=False``, the paper's finding for its networks), or one per sequence.

Every other method of noise sites (``bernoulli``, ``gaussian``, ``concrete``, ...) draws on the inputs of a
recurrent layer only, a fresh mask per step: dropout of the non-recurrent connections (Zaremba et al. 2014), the
baseline of the three papers.  The methods of weight sites (``sparse-vd``, ``vbd``, ``dropconnect``) draw each
recurrent weight once per minibatch (per example for DropConnect), shared by the steps; the local
reparameterisation trick is off for it (``WeightSite.lrt``).

Example
-------
>>> lstm = bd.nn.LSTM(8, 32, method="variational-rnn", p=0.25)
>>> bd.nn.LSTM(8, 32, method="recurrent-dropout", per_sequence=True)
"""

from __future__ import annotations

import math

import pyro.distributions as dist

from ..checks import check_range
from ..distributions import FixedNoise
from . import register
from .base import Capabilities
from .classic import FixedRate

__all__ = ["RecurrentMasks", "VariationalRNN", "RNNDrop", "RecurrentDropout"]


class RecurrentMasks(FixedRate):
    """Bernoulli(1 - p) masks, not rescaled, on the noise sites of the roles a subclass declares
    (``capabilities.noise_roles``), drawn once per sequence (``per_sequence``) or per step."""

    capabilities = Capabilities(analytic_kl=True, recurrent=True, noise_roles=frozenset({"input", "recurrent"}))

    def __init__(self, p: float = 0.25, per_sequence: bool = True, prior_scale: float = 1.0):
        self.p = check_range("p", p, 0.0, 1.0, hi_open=True)
        if not isinstance(per_sequence, bool):
            raise TypeError(f"`per_sequence` must be a bool, got {type(per_sequence).__name__}")
        self.per_sequence = per_sequence
        self.prior_scale = check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True)

    @property
    def stochastic(self) -> bool:
        return self.p > 0

    def draw_shape(self, layer, site) -> tuple[int, ...]:
        """One example's draw: the tensor's ``(T, units)``, or ``(1, units)`` per sequence."""
        shape = layer.draw_shape(site)
        return (1, *shape[1:]) if self.per_sequence and site.sequence else shape

    def rate(self, site) -> float:
        """The drop probability of ``site``'s masks: ``p``."""
        return self.p

    def noise_law(self, layer, site, like):
        p = self.rate(site)
        base = dist.Bernoulli(like.new_full((), 1.0 - p).expand(self.draw_shape(layer, site)))
        return FixedNoise(base, ("bernoulli", p)).to_event(len(base.batch_shape))

    def keep_prob(self, layer, params, site=None):
        """The keep probability :math:`1 - p` of every unit of noise site ``site`` (:meth:`rate_sites`: one per
        role the method draws on, layer and direction), per input or hidden unit."""
        name = self.rate_site(layer, site)
        return layer.like.new_full((self.rate_units(layer, name),), 1.0 - self.rate(layer.noise_sites[name]))


@register("variational-rnn")
class VariationalRNN(RecurrentMasks):
    r"""Variational RNN dropout (Gal & Ghahramani 2016): one mask per sequence on the inputs and on
    :math:`h_{t-1}`, for every gate and step.

    Parameters
    ----------
    p : float
        Drop probability of :math:`h_{t-1}` (the paper's :math:`p_h`), and of the inputs unless ``p_input`` is
        given, in [0, 1).
    per_sequence : bool
        One mask per sequence (the method); ``False`` draws one per step (for comparison).
    prior_scale : float
        Standard deviation ``s`` of the Gaussian prior on the weights (> 0).
    p_input : float or None
        Drop probability of the inputs :math:`x_t` (the paper's :math:`p_x`), in [0, 1).  ``None``: ``p``, except
        for an input of one feature (a univariate series), which is not dropped: one mask per sequence on the only
        feature would hide the whole sequence from the network in a fraction p of the draws, and the network
        learns to hedge rather than to forecast (on CO2 at p = 0.25: test NLL 3.7 against -1.7 without dropout,
        ``docs/defaults.md``).

    Raises
    ------
    ValueError
        If a probability is outside [0, 1).
    """

    reference = "Gal & Ghahramani 2016 (NeurIPS)"

    def __init__(
        self, p: float = 0.25, per_sequence: bool = True, prior_scale: float = 1.0, p_input: float | None = None
    ):
        super().__init__(p, per_sequence, prior_scale)
        self.p_input = None if p_input is None else check_range("p_input", p_input, 0.0, 1.0, hi_open=True)

    def rate(self, site) -> float:
        """``p`` for :math:`h_{t-1}`; ``p_input`` (by default ``p``, or 0 for a one-feature input) for :math:`x_t`."""
        if site.role != "input":
            return self.p
        if self.p_input is not None:
            return self.p_input
        return 0.0 if math.prod(site.unit_shape) == 1 else self.p


@register("rnndrop")
class RNNDrop(RecurrentMasks):
    r"""RNNDrop (Moon et al. 2015): one mask per sequence on the cell state :math:`c_t`; parameters ``p``,
    ``per_sequence`` (default True) and ``prior_scale`` as :class:`RecurrentMasks` (no ``p_input``: the inputs
    are not masked)."""

    reference = "Moon et al. 2015 (ASRU)"
    capabilities = Capabilities(analytic_kl=True, recurrent=True, noise_roles=frozenset({"cell"}))


@register("recurrent-dropout")
class RecurrentDropout(RecurrentMasks):
    r"""Recurrent dropout (Semeniuta et al. 2016): a mask on the update :math:`i_t \circ \tilde c_t` only, per step
    (``per_sequence=False``, the default) or per sequence; parameters ``p``, ``per_sequence`` and ``prior_scale`` as
    :class:`RecurrentMasks` (no ``p_input``: the inputs are not masked)."""

    reference = "Semeniuta et al. 2016 (COLING)"
    capabilities = Capabilities(analytic_kl=True, recurrent=True, noise_roles=frozenset({"update"}))

    def __init__(self, p: float = 0.25, per_sequence: bool = False, prior_scale: float = 1.0):
        super().__init__(p, per_sequence, prior_scale)
