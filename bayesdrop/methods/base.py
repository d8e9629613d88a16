"""The :class:`Method` protocol shared by every dropout family."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pyro.nn import PyroModule

from .._params import DirectParameters
from ..distributions import CenteredNormal

if TYPE_CHECKING:  # pragma: no cover
    import pyro
    from torch.distributions import Distribution

    from ..nn import BayesianLayer

__all__ = ["Method", "LayerGuide", "gaussian_weight_prior"]


def gaussian_weight_prior(layer: BayesianLayer, like: torch.Tensor, scale: float) -> Distribution:
    r"""The prior :math:`W \sim \mathcal N(0, s^2 I)` of a layer's weights (Gal & Ghahramani's weight decay).

    A :class:`~bayesdrop.distributions.CenteredNormal` with one scalar variance, expanded: its log density is
    three passes over the weights.  Build it through ``layer.fixed`` (it never changes).
    """
    prior = CenteredNormal(like.new_full((), scale**2))
    return prior.expand(layer.weight_shape).to_event(layer.weight_event_dim)


class LayerGuide(DirectParameters, PyroModule):
    """Container for one layer's variational parameters (a :class:`~pyro.nn.PyroModule`).

    Parameters set as ``torch.nn.Parameter`` attributes are seen by
    ``pyro.infer.SVI`` through ``pyro.param`` statements, so the plain-Pyro
    training path optimises them too.
    """


class Method:
    """A dropout method as a Pyro model/guide pair for one layer.

    Subclasses implement the five hooks below; a layer calls :meth:`model` in
    the model, :class:`~bayesdrop.guides.DropoutGuide` calls :meth:`guide`.
    Site names come from ``layer.site(...)`` so model and guide match.

    Global sites (weights, rates) are sampled outside the data plate; local
    sites (per-example masks and noise) through ``layer.sample_local`` in the
    model and inside ``plate`` in the guide, so every draw of a vectorised
    ``Predictive`` gets its own masks.
    """

    name: str = ""
    reference: ClassVar[str] = ""
    analytic_kl: ClassVar[bool] = True
    lrt: ClassVar[bool] = False
    structured: ClassVar[bool] = False
    conv: ClassVar[bool] = True

    @property
    def stochastic(self) -> bool:
        """Whether Monte Carlo draws of the predictive differ."""
        return True

    def hyper(self) -> dict[str, Any]:
        """Hyper-parameters as given to the constructor (for configs and checkpoints)."""
        return {k: getattr(self, k) for k in inspect.signature(type(self)).parameters}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper().items())
        return f"{type(self).__name__}({args})"

    # -- the five hooks ---------------------------------------------------------
    def init_guide(self, layer: BayesianLayer) -> LayerGuide:
        """Create the layer's variational parameters."""
        raise NotImplementedError

    def model(self, layer: BayesianLayer, x: torch.Tensor) -> torch.Tensor:
        """Sample the prior sites and return the layer's pre-bias output."""
        raise NotImplementedError

    def guide(self, layer: BayesianLayer, params: LayerGuide, plate: pyro.plate) -> None:
        """Sample the matching guide sites (local ones inside ``plate``, the model's data plate, built when it is
        first entered)."""
        raise NotImplementedError

    def mean_forward(self, layer: BayesianLayer, params: LayerGuide, x: torch.Tensor) -> torch.Tensor:
        """One deterministic pass: the weight-scaling rule / posterior-mean network."""
        raise NotImplementedError

    def keep_prob(self, layer: BayesianLayer, params: LayerGuide) -> torch.Tensor:
        """Learned (or fixed) keep probabilities, per input unit or per weight."""
        raise NotImplementedError

    def point_weights(
        self, layer: BayesianLayer, params: LayerGuide, threshold: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic test-time weights and which of them survive pruning.

        Returns ``(weight, keep)``, both of the layer's weight shape: the weight
        of the test-time network with the method's input scaling folded in (so
        that ``op(x, weight * keep) + bias`` is the pruned mean network), and a
        boolean mask of the weights kept at ``threshold`` (the method's default
        when ``None``, e.g. log alpha > 3 prunes).  An input unit (or channel)
        is kept when any of its weights is.
        """
        raise NotImplementedError

    def kl(self, layer: BayesianLayer, params: LayerGuide) -> torch.Tensor:
        """The closed-form KL(q || p) of the layer's global sites, as in the paper.

        Written out independently of the registered KL so that tests can check
        the ELBO that Pyro computes against the paper's formula.
        """
        raise NotImplementedError


def check_range(name: str, value: float, lo: float, hi: float, *, lo_open=False, hi_open=False) -> float:
    """Validate a scalar hyper-parameter, raising ``ValueError`` naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}") from None
    ok_lo = v > lo if lo_open else v >= lo
    ok_hi = v < hi if hi_open else v <= hi
    if not (ok_lo and ok_hi) or v != v:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"`{name}` must lie in {interval}, got {value!r}")
    return v
