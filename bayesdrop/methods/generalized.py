r"""Generalized Dropout: learned Bernoulli gates with a Beta hyper-prior (Dropout++, SAL).

Srinivas & Babu (2016), "Generalized Dropout", arXiv:1611.06791.  Each layer
gates its *input* units (``W = M diag(theta)``, as in :mod:`.classic`), so the
gates of layer :math:`l` select the units of layer :math:`l - 1`.

Model (eq. 4) and guide (eq. 5)
-------------------------------
.. math::
    \text{model: } k_i \sim \mathrm{Beta}(a, b),\quad
    \theta_{ni} \mid k \sim \mathrm{Bernoulli}(k_i),\quad w \sim \mathcal N(0, s^2 I);

    \text{guide: } q(k) = \delta_{k},\quad q(w) = \delta_{M},\quad
    q(\theta_{ni}) = \mathrm{Bernoulli}(\mathrm{clip}(k_i)).

``k`` is a global site (one value per gate), ``theta`` the local site ``noise``
(one draw per example and gate, inside the data plate) and ``weight`` the global
weight site.  The guide's Bernoulli has the same parameter as the prior's, so
KL(q(theta) || p(theta | k)) = 0 (both are
:class:`~bayesdrop.distributions.StraightThroughBernoulli`, whose registered KL
is exactly zero in value and gradient when the probabilities agree).  The
remaining KL terms of the Delta guides are minus log densities, so the negative
ELBO is the Generalized Dropout objective (eq. 7), with one Monte Carlo sample
of the gates:

.. math::
    -\log P(D \mid \theta_s, w) - \lambda\big[(a - 1) \log k + (b - 1) \log(1 - k)
    - \log B(a, b)\big] - \log \mathcal N(w; 0, s^2),\qquad
    \theta_s \sim \mathrm{Bernoulli}(\mathrm{clip}(k)),

summed over gates, with :math:`\lambda` = ``strength`` (1 in the paper) and the
Beta normaliser :math:`\log B(a, b)` (a constant that eq. 7 drops).

Gradients and the range of k (section 2.5)
------------------------------------------
The gates are drawn with the straight-through estimator,
:math:`\partial\theta / \partial k = 1` (:class:`GateBernoulli`).  ``k`` is
kept in [0, 1] by projection: :func:`~bayesdrop.fit` clamps the parameter in
place after every optimiser step (:meth:`GeneralizedDropout.project`), and the
guide at the start of every call, for plain ``pyro.infer.SVI`` (a no-op after
``fit``'s projection, and skipped while a graph is recorded, which cannot write
its inputs: with Pyro's ``JitTrace_ELBO``, call ``guide.project()`` after each
step), and the gates use :math:`\mathrm{clip}(k)`,
the paper's "linearised sigmoid".  The Beta log density is evaluated at
``clamp(k, EPS, 1 - EPS)`` with ``EPS = 0.05``, with the gradient passed
straight through the clamp (:class:`GateBeta`), so that a gate at exactly 0 or 1
(the default start is 1, section 4.1.3) still feels the prior instead of sitting
where :math:`\log k` or :math:`\log(1 - k)` is infinite.  Why 0.05 and not
1e-3: the first gradient a gate at k = 1 receives from Dropout++(0) is
:math:`\lambda (b - 1) / \epsilon`; with 1e-3 that spike, 250 times the
gradient at k = 0.75, stays in Adam's second-moment estimate for ~1000 steps and
slows every later step of ``k`` accordingly (measured on digits, Dropout++(0) on
the input pixels, 30 epochs: border gates at mean 0.74 with 1e-3, 0.31 with
0.05).  Values of k inside [0.05, 0.95] see the exact Beta density.

Presets (section 2.2)
---------------------
===================  =================  ======  =====================================
name                 Beta(a, b)         init    behaviour
===================  =================  ======  =====================================
``dropout++(0.5)``   a = b = 2          1.0     k pulled to 0.5; a = b -> inf is
                                                classic dropout with p = 0.5
``dropout++(flat)``  a = b = 1          1.0     no preference (no hyper-parameter)
``dropout++(1)``     a = 2 > b = 1      1.0     k pulled to 1 (keep units)
``dropout++(0)``     a = 1 < b = 2      1.0     k pulled to 0 (low-capacity layers)
``sal``              a = b = 0.5 (< 1)  0.5     k pushed to 0 or 1: Stochastic
                                                Architecture Learning (section 2.3)
===================  =================  ======  =====================================

The paper's list (section 2.2) swaps a and b for Dropout++(1) and
Dropout++(0): with the objective of eq. 7, :math:`-(b - 1)\log(1 - k)` for
``a = 1 < b`` is smallest at ``k = 0`` (Beta(1, b > 1) has its mode at 0), so
``a = 1 < b`` *favours k near 0*.  We implement the behaviour the names
describe, as above.  For SAL the loss pushes a gate to 0 with weight
:math:`1 - a` and to 1 with weight :math:`1 - b` (the Beta's antimode is
:math:`(1 - a) / (2 - a - b)`), so a larger ``b / a`` sends more gates to 0 and
the learned network is smaller (Table 1).  SAL starts at ``init = 0.5`` rather
than 1: its density is infinite at k = 1 and its gradient there points up, so
gates that start at 1 stay there and nothing is pruned (measured: every gate of
a digits MLP at 1.000 after 20 epochs); from the antimode the data decide on
which side each gate falls.  Every preset takes ``a``, ``b``, ``init``,
``strength``, ``prior_scale`` and ``gates`` as overrides, e.g.
``bd.methods.get("sal", a=0.009, b=0.9)``.

How strong the prior is: ``strength``
-------------------------------------
The likelihood is a sum over the N training examples (a minibatch is scaled by
N / B), while the Beta prior on each gate is a single term.  The gradient on a
gate is

.. math::
    \frac{\partial\,\text{loss}}{\partial k_i} = \sum_{n=1}^{N}
    \frac{\partial \ell_n}{\partial \theta_{ni}}
    + \lambda\Big(\frac{1 - a}{k_i} + \frac{b - 1}{1 - k_i}\Big),

so with the paper's :math:`\lambda = 1` a prior with O(1) pseudo-counts cannot
overrule a gate that the N examples care about: the presets act on the gates
the data are (nearly) indifferent to, i.e. redundant units and uninformative
inputs.  That is enough for their qualitative behaviour on the 1437 training
digits at ``strength = 1`` (``tests/test_generalized.py``: mean k of
Dropout++(0) < (flat) < (1); SAL gates at 0 or 1; a = b = 1e4 is classic
dropout), but SAL then prunes little, and its ``a, b < 1`` cannot be made
stronger through the pseudo-counts.  ``strength`` (:math:`\lambda \ge 0`)
multiplies the Beta log density of every gate (a tempered prior; for
``a, b >= 1`` the same as the pseudo-counts :math:`1 + \lambda(a - 1)`,
:math:`1 + \lambda(b - 1)`).  A strength proportional to N keeps the balance
independent of the data-set size (``strength = N`` weighs the prior against the
*mean* per-example loss, as code that adds the regulariser to the mean
minibatch loss does); ``benchmarks/sal_width.py`` uses ``strength = N / 300``
with a KL warm-up, which reproduces the shrinking architectures of Table 1.  Too
strong a prior (N / 100 without warm-up) sends every gate of a wide layer to 0
before the likelihood has singled out the useful units: the network collapses.
The default ``strength = 1`` is eq. 7 as written, the exact variational
objective.

Test time (section 2.4)
-----------------------
``bd.predict(..., rule="weight-scaling")`` rescales each input unit by
:math:`\mathrm{clip}(k)` (the paper's default, "re-scaling");
``bd.predict(..., rule="mc")`` averages Monte Carlo gate draws (Gal &
Ghahramani 2016).  :func:`bayesdrop.dropout_rates` reports
:math:`\mathrm{clip}(k)` per gate.

Convolutions (section 2.6)
--------------------------
In :class:`bayesdrop.nn.Conv2d`, ``gates="channel"`` draws one gate per input
feature map and example (``theta`` of shape ``(C, 1, 1)``, the noise site's unit shape): pruning a gate
removes a feature map, i.e. a filter of the previous layer (architecture
selection; the default of ``sal``).  ``gates="element"`` draws a gate per
element ``(C, H, W)`` like classic dropout, with a learned keep probability per
channel (the spatial size is unknown when the guide is built).  In
:class:`bayesdrop.nn.Linear` both mean one gate per input unit.

Architecture selection (section 4.1.5)
--------------------------------------
Train with ``sal`` and prune the units whose ``k`` falls below the sharp rise
of the sorted gate values: :func:`sharp_rise`, also available as
``bd.compress.report(model, guide, threshold="sharp-rise")``.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import Bernoulli, kl_divergence, register_kl

from ..checks import check_range
from ..distributions import StraightThroughBernoulli, _expand_to
from ..sites import site_shaped
from . import register
from .base import Capabilities, LayerGuide, PointWeights, site_param

__all__ = ["GeneralizedDropout", "GateBeta", "GateBernoulli", "sharp_rise", "GATES", "EPS"]

GATES = ("element", "channel")
EPS = 0.05  # the Beta log density is evaluated at clamp(k, EPS, 1 - EPS); see the module docstring


def _project_k(params: LayerGuide, site: str) -> None:
    """The keep probabilities ``k`` of noise site ``site`` onto [0, 1], in place and without gradient.

    On the parameter's ``.data``, as an optimiser's update: autograd's version counter stays, so that a loss of
    several particles, whose first particle's graph holds ``k`` when the next particle's guide projects it again,
    still differentiates (the values are those the first projection left: it is idempotent)."""
    getattr(params, site_param(site, "k")).data.clamp_(0.0, 1.0)


def _clamp_st(k: torch.Tensor) -> torch.Tensor:
    """``clamp(k, EPS, 1 - EPS)`` in value, identity in gradient."""
    return k + (k.clamp(EPS, 1.0 - EPS) - k).detach()


class GateBeta(dist.Beta):
    r"""The gates' prior: ``strength`` times the Beta(a, b) log density, at ``clamp(k)``.

    .. math:: \log p(k) = \lambda \log \mathrm{Beta}(\mathrm{clamp}(k, \epsilon, 1 - \epsilon); a, b)

    with the gradient passed straight through the clamp.  For ``strength != 1``
    this is an unnormalised (tempered) density; ``sample`` still draws from
    Beta(a, b).  Pyro's KL(Delta || p) is ``-log_prob``, so a Delta guide on
    ``k`` contributes exactly this term to the loss.

    Parameters
    ----------
    concentration1, concentration0 : torch.Tensor
        ``a`` and ``b`` (> 0).
    strength : float
        :math:`\lambda \ge 0`, the weight of the prior against the likelihood.
    """

    def __init__(
        self,
        concentration1: torch.Tensor,
        concentration0: torch.Tensor,
        strength: float = 1.0,
        validate_args: bool | None = None,
    ) -> None:
        super().__init__(concentration1, concentration0, validate_args=validate_args)
        self.strength = float(strength)

    def expand(self, batch_shape, _instance=None):  # keep the subclass and its strength (Pyro needs it)
        new = self._get_checked_instance(GateBeta, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.strength = self.strength
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.strength * super().log_prob(_clamp_st(value))


class GateBernoulli(StraightThroughBernoulli):
    """The per-example gates theta: a straight-through Bernoulli that remembers its gate parameter.

    ``probs`` is the gate parameter ``k`` (gate shape, e.g. ``(C, 1, 1)``)
    broadcast to the per-example gate shape (e.g. ``(C, H, W)``) and, inside
    the data plate, to every example.  The KL between two of them is computed
    on the unexpanded ``k`` and then broadcast: the same value as the
    elementwise Bernoulli KL of :class:`~bayesdrop.distributions.StraightThroughBernoulli`
    (exactly 0 when guide and prior share ``k``), at the cost of the gates
    rather than of batch x gates (measured: the elementwise KL made a training
    step of a 40-500-500-10 MLP on MNIST-1D about 10x slower than Bernoulli
    dropout).

    Parameters
    ----------
    gate : torch.Tensor
        Keep probabilities ``k`` in [0, 1], broadcastable to ``shape``.
    shape : torch.Size
        The batch shape of the distribution (``gate`` is expanded to it).
    """

    def __init__(self, gate: torch.Tensor, shape: torch.Size | tuple[int, ...], validate_args: bool | None = None):
        super().__init__(gate.expand(shape), validate_args=validate_args)
        self.gate = gate

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(GateBernoulli, _instance)
        new = super().expand(batch_shape, _instance=new)
        new.gate = self.gate
        return new


@register_kl(GateBernoulli, GateBernoulli)
def _kl_gate(q: GateBernoulli, p: GateBernoulli) -> torch.Tensor:
    kl = kl_divergence(Bernoulli(probs=q.gate), Bernoulli(probs=p.gate))
    return _expand_to(kl, q.batch_shape, p.batch_shape)


def sharp_rise(k: torch.Tensor) -> float:
    """The pruning threshold at the sharp rise of sorted gate values (section 4.1.5, Fig. 2i).

    The midpoint of the largest gap between consecutive sorted values of
    ``clip(k)``, with 0 and 1 added as sentinels: for SAL gates clustered near
    0 and 1 it separates the clusters; if all gates are high (or all low) the
    largest gap is the one to the sentinel and nothing (everything) is pruned.

    Parameters
    ----------
    k : torch.Tensor
        Gate values of one layer, any shape.

    Returns
    -------
    float
        Keep the gates with ``k > threshold``.
    """
    v = torch.sort(k.detach().flatten().clamp(0, 1).double()).values
    v = torch.cat([v.new_zeros(1), v, v.new_ones(1)])
    i = int(torch.argmax(v[1:] - v[:-1]))
    return float((v[i] + v[i + 1]) / 2)


class GeneralizedDropout(PointWeights):
    r"""Generalized Dropout (Dropout++ / SAL) on a layer's noise sites: learned gates with a Beta prior.

    See the module docstring for the model (eq. 4), guide (eq. 5), objective (eq. 7) and the presets.  The weights
    are point estimates with a Gaussian prior (:class:`~bayesdrop.methods.base.PointWeights`).

    Parameters
    ----------
    a, b : float
        Beta(a, b) prior on each keep probability ``k`` (> 0).
    init : float
        Initial ``k`` of every gate, in [0, 1] (1.0: start without dropout, section 4.1.3).
    strength : float
        Multiplier :math:`\lambda \ge 0` of the Beta log density (1: eq. 7 as written); see "How strong the prior
        is" in the module docstring.
    prior_scale : float
        Standard deviation ``s`` of the Gaussian prior on weights (> 0).
    gates : {"element", "channel"}
        One gate draw per element of the input (classic) or per unit, i.e. per input feature map of a convolution
        (architecture selection, section 2.6).  The same for a ``Linear`` on 2-D inputs.

    Notes
    -----
    Sample sites (named with ``layer.site``): ``k`` (global, the noise site's unit shape ``(in,)`` or
    ``(C, 1, 1)``), ``noise`` (the gates :math:`\theta`, local, per example ``(in,)``, ``(C, 1, 1)`` or
    ``(C, H, W)``) and the weights (global).
    """

    reference = "Srinivas & Babu 2016, Generalized Dropout (arXiv:1611.06791)"
    capabilities = Capabilities(analytic_kl=True, lrt=False, structured=True, learns_rates=True)
    threshold_default = 0.1
    threshold_rules = ("sharp-rise",)  # per layer, at the sharpest rise of the sorted keep probabilities

    def __init__(
        self,
        a: float,
        b: float,
        init: float = 1.0,
        strength: float = 1.0,
        prior_scale: float = 1.0,
        gates: str = "element",
    ):
        self.a = check_range("a", a, 0.0, math.inf, lo_open=True, hi_open=True)
        self.b = check_range("b", b, 0.0, math.inf, lo_open=True, hi_open=True)
        self.init = check_range("init", init, 0.0, 1.0)
        self.strength = check_range("strength", strength, 0.0, math.inf, hi_open=True)
        self.prior_scale = check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True)
        if gates not in GATES:
            raise ValueError(f"`gates` must be one of {GATES}, got {gates!r}")
        self.gates = gates

    # -- shapes -------------------------------------------------------------------
    def _theta_shape(self, layer, site) -> tuple[int, ...]:
        """Per-example shape of the gates ``theta``."""
        draw = layer.draw_shape(site)
        if self.gates == "element":
            return draw
        return (1,) * (len(draw) - len(site.unit_shape)) + tuple(site.unit_shape)  # one gate per unit, per example

    def _theta_dist(self, probs: torch.Tensor, layer, site) -> dist.TorchDistribution:
        """Per-example gate law; ``probs`` has the unit shape."""
        shape = self._theta_shape(layer, site)
        return GateBernoulli(probs, shape).to_event(len(shape))

    def _k_prior(self, like: torch.Tensor, shape: tuple[int, ...]) -> dist.TorchDistribution:
        a, b = like.new_tensor(self.a), like.new_tensor(self.b)
        return GateBeta(a, b, self.strength).expand(shape).to_event(len(shape))

    @staticmethod
    def _clip(params: LayerGuide, site: str = "noise") -> torch.Tensor:
        return getattr(params, site_param(site, "k")).clamp(0.0, 1.0)

    # -- hooks --------------------------------------------------------------------
    def init_guide(self, layer) -> LayerGuide:
        lg = super().init_guide(layer)  # the weights' Delta parameters
        for site in layer.drawn_noise_sites.values():
            k = torch.full(site.unit_shape, self.init, dtype=layer.like.dtype, device=layer.like.device)
            lg.register_parameter(site_param(site.name, "k"), torch.nn.Parameter(k))
        return lg

    def noise_model(self, layer, site, x):
        k = pyro.sample(layer.site(site_param(site.name, "k")), self._k_prior(x, tuple(site.unit_shape)))
        k = site_shaped(k, tuple(site.unit_shape))  # without the leading singletons pyro.infer.Predictive adds
        return layer.sample_local(site.name, self._theta_dist(k, layer, site), x)

    def project(self, layer, params) -> None:
        """Each keep probability ``k`` onto [0, 1], in place (section 2.5)."""
        for name in layer.drawn_noise_sites:
            _project_k(params, name)

    def noise_guide(self, layer, site, params, plate):
        if not torch.jit.is_tracing():  # for pyro.infer.SVI; bd.fit projects after each step
            _project_k(params, site.name)  # this site's k only: the guide visits each site
        k = self._clip(params, site.name)
        pyro.sample(layer.site(site_param(site.name, "k")), dist.Delta(k, event_dim=k.dim()))
        with plate:
            pyro.sample(layer.site(site.name), self._theta_dist(k, layer, site))

    def keep_prob(self, layer, params, site=None):
        """``clip(k)`` of noise site ``site`` (the layer's ``noise``) per input unit (Linear) or input channel
        (Conv2d)."""
        return self._clip(params, self.rate_site(layer, site)).reshape(-1)

    def pruning_rule(self) -> str:
        return f"keep probability k <= {self.threshold_default:g}"

    def keep_masks(self, layer, params, threshold: float | str | None = None):
        """The gates with ``clip(k) > threshold``; ``threshold`` is a number in [0, 1], ``"sharp-rise"`` (per
        layer, see :func:`sharp_rise`) or ``None`` (0.1).  At test time the kept inputs are scaled by ``clip(k)``
        (re-scaling, section 2.4): the posterior mean of the gates."""
        out = {}
        for name in layer.drawn_noise_sites:
            k = self._clip(params, name)
            thr = self.threshold_default if threshold is None else threshold
            if isinstance(thr, str):
                if thr != "sharp-rise":
                    raise ValueError(f"`threshold` must be a number in [0, 1] or 'sharp-rise', got {thr!r}")
                thr = sharp_rise(k)
            else:
                thr = check_range("threshold", thr, 0.0, 1.0)
            out[name] = k > thr
        return out


# Presets (section 2.2), in this order in ``bd.methods.names()``; a and b of
# Dropout++(1) / (0) as their behaviour requires (see the module docstring).
for _name, _defaults in (
    ("dropout++(0.5)", {"a": 2.0, "b": 2.0}),
    ("dropout++(flat)", {"a": 1.0, "b": 1.0}),
    ("dropout++(1)", {"a": 2.0, "b": 1.0}),
    ("dropout++(0)", {"a": 1.0, "b": 2.0}),
    ("sal", {"a": 0.5, "b": 0.5, "init": 0.5, "gates": "channel"}),
):
    register(_name, **_defaults)(GeneralizedDropout)
