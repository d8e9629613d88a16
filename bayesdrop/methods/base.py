"""The :class:`Method` protocol shared by every dropout family."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pyro.nn import PyroModule

from .._params import DirectParameters
from ..distributions import CenteredNormal

if TYPE_CHECKING:  # pragma: no cover
    import pyro
    from torch.distributions import Distribution

    from ..nn import BayesianLayer

__all__ = ["Method", "LayerGuide", "TrainingDefaults", "gaussian_weight_prior", "INPUT_MIN_FEATURES"]

INPUT_MIN_FEATURES = 64  # fixed-rate methods add input noise only to networks with at least this many inputs


def gaussian_weight_prior(layer: BayesianLayer, like: torch.Tensor, scale: float) -> Distribution:
    r"""The prior :math:`W \sim \mathcal N(0, s^2 I)` of a layer's weights (Gal & Ghahramani's weight decay).

    A :class:`~bayesdrop.distributions.CenteredNormal` with one scalar variance, expanded: its log density is
    three passes over the weights.  Build it through ``layer.fixed`` (it never changes).
    """
    prior = CenteredNormal(like.new_full((), scale**2))
    return prior.expand(layer.weight_shape).to_event(layer.weight_event_dim)


@dataclass(frozen=True)
class TrainingDefaults:
    r"""The training settings a method needs to show its paper's behaviour; :func:`bayesdrop.fit` reads them.

    Attributes
    ----------
    kl_warmup : float
        Fraction of the epochs over which ``fit(kl_warmup="auto")`` (the default) grows the KL weight
        :math:`\beta` linearly from 0 to 1.  A model mixing methods takes the largest fraction.
    lr_scale : mapping of str to float
        Learning-rate multipliers of the method's variational parameters, by the name of the parameter in its
        :class:`LayerGuide` (e.g. ``{"k": 30.0}``): ``fit`` gives each its own Adam parameter group with
        ``lr * scale``.  Parameters not named train at ``lr``.
    """

    kl_warmup: float = 0.0
    lr_scale: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not 0.0 <= self.kl_warmup <= 1.0:
            raise ValueError(f"`kl_warmup` must be a fraction of the epochs in [0, 1], got {self.kl_warmup!r}")
        for name, scale in self.lr_scale.items():
            if not scale > 0:
                raise ValueError(f"`lr_scale[{name!r}]` must be > 0, got {scale!r}")
        object.__setattr__(self, "lr_scale", MappingProxyType(dict(self.lr_scale)))


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
    fit_defaults: ClassVar[TrainingDefaults] = TrainingDefaults()

    @property
    def stochastic(self) -> bool:
        """Whether Monte Carlo draws of the predictive differ."""
        return True

    def input_layer(self, in_features: int) -> Method:
        """The method of a network's first layer, whose inputs are the ``in_features`` data features (pixels,
        samples of a signal, covariates), when the user names none.

        Methods that learn their rates return themselves: they learn how much noise the inputs need.  Fixed-rate
        methods return a copy with the literature's input rate (Srivastava et al. 2014: drop 0.2 of the inputs,
        0.5 of hidden units) when there are at least :data:`INPUT_MIN_FEATURES` (64) inputs, and no input noise
        below: the recommendation is for many redundant inputs such as the pixels of an image; with few inputs
        each carries information no other does (measured, ``docs/defaults.md``: on MNIST-1D's 40 samples input
        dropout cost 7 points of test error at 50 epochs; on the 1-D toy regression test RMSE 0.52 with it, 0.43
        without).
        """
        return self

    def replace(self, **hyper: Any) -> Method:
        """A copy with some hyper-parameters changed (same registered name)."""
        new = type(self)(**{**self.hyper(), **hyper})
        new.name = self.name
        return new

    def pruning_rule(self) -> str | None:
        """What :meth:`point_weights` prunes, in words (e.g. ``"log alpha >= 3"``), or ``None`` if it never prunes.

        :func:`bayesdrop.fit` warns (:class:`~bayesdrop.infer.CollapseWarning`) when the rule removes every weight
        of a layer.
        """
        return None

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
