"""What a dropout method sees of a layer: its weight, noise and pool sites, and the :class:`Layer` protocol.

For people who write a method: the hooks of :class:`~bayesdrop.methods.Method` receive a layer (any
:class:`~bayesdrop.nn.BayesianLayer`) through this protocol and one of its sites, so methods do not depend on the
layer classes and every layer kind serves every method.

Example
-------
>>> site = bd.sites.NoiseSite("noise", unit_shape=(64,), weight="weight")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from pyro.distributions import TorchDistribution

__all__ = ["WeightSite", "NoiseSite", "PoolSite", "Layer", "site_shaped", "NOISE_ROLES"]

NOISE_ROLES = ("input", "recurrent", "cell", "update")


@dataclass(frozen=True)
class WeightSite:
    """A weight tensor of a layer.

    Attributes
    ----------
    name : str
        Site name within the layer (the Pyro site is ``f"{layer}.{name}"``).
    shape : torch.Size
        The weight's shape, e.g. ``(out, in)``.
    unit_dim : int
        The axis of the weight that indexes the layer's input units (1 for ``Linear`` and convolutions): a unit
        whose weights are all pruned is removed by :mod:`bayesdrop.compress`.
    lrt : bool
        Whether the layer may draw its output by local reparameterisation (Kingma et al. 2015) when the weight is
        Gaussian: true where every example and position uses the weight once, in one linear operation; false for a
        recurrent weight, which every time step of a sequence shares (the steps' pre-activations are not
        independent), so the weight itself is drawn.
    """

    name: str
    shape: torch.Size
    unit_dim: int = 1
    lrt: bool = True


@dataclass(frozen=True)
class NoiseSite:
    r"""A multiplicative noise of a layer.

    Attributes
    ----------
    name : str
        Site name within the layer.
    unit_shape : tuple of int
        Shape of per-unit quantities (learned rates, gates), broadcastable against one example of the tensor the
        noise multiplies: ``(in,)`` for a ``Linear``'s inputs, ``(C, 1, 1)`` for a ``Conv2d``'s.
    shape : tuple of int or None
        The shape of one draw per example, or ``None`` for one draw per element of the tensor it multiplies (its
        per-example shape, recorded at each forward pass).  ``(C, 1, 1)`` is one draw per feature map (spatial
        dropout).
    weight : str or None
        The weight site whose inputs this noise multiplies, along that weight's ``unit_dim``, so that the noise's
        mean can be folded into the weight (``None``: the noise is applied elsewhere).
    role : {"input", "recurrent", "cell", "update"}
        What the noise multiplies: a layer's inputs (every layer kind); in a recurrent layer also the previous
        hidden state :math:`h_{t-1}` (``"recurrent"``), the cell state :math:`c_t` (``"cell"``) or the cell's
        update :math:`i_t \circ \tilde c_t` (``"update"``).  A method draws on the roles of its
        ``capabilities.noise_roles``.
    sequence : bool
        Whether the first axis of one example of the tensor is time (a recurrent layer's sites, ``(T, units)``):
        a method may draw once per sequence, shared by every step, instead of once per step.
    """

    name: str
    unit_shape: tuple[int, ...]
    shape: tuple[int, ...] | None = None
    weight: str | None = None
    role: str = "input"
    sequence: bool = False

    def __post_init__(self) -> None:
        if self.role not in NOISE_ROLES:
            raise ValueError(f"`role` must be one of {NOISE_ROLES}, got {self.role!r}")

    @property
    def shared(self) -> bool:
        """Whether one draw is shared by several elements of the tensor it multiplies (a fixed ``shape`` with a
        broadcast axis, e.g. ``(C, 1, 1)``: one draw per feature map)."""
        return self.shape is not None and any(n == 1 for n in self.shape)


@dataclass(frozen=True)
class PoolSite:
    """A pooling of a layer: each output is a weighted sum of the values of its window, with the weights (one per
    element of the window) given by the method, e.g. a one-hot vector at the window's maximum (max pooling),
    ``1 / K`` everywhere (average pooling), the one-hot vector of an element drawn with probability proportional to
    its value (stochastic pooling).

    Attributes
    ----------
    name : str
        Site name within the layer.
    unit_shape : tuple of int
        Shape of per-unit quantities, broadcastable against one example of the windows ``(C, *out, K)``: ``(C, 1,
        ..., 1)``, one unit per feature map.
    reduce : {"max", "avg"}
        The layer's deterministic pooling, which the method randomises.
    window : int
        ``K``, the number of elements of a window.
    """

    name: str
    unit_shape: tuple[int, ...]
    reduce: str
    window: int


class Layer(Protocol):
    """The part of a layer a method uses (implemented by :class:`~bayesdrop.nn.BayesianLayer`)."""

    weight_sites: dict[str, WeightSite]
    noise_sites: dict[str, NoiseSite]
    pool_sites: dict[str, PoolSite]
    batched_weights: bool  # whether the layer takes one weight per example, shape (B, *weight.shape)

    def site(self, name: str) -> str:
        """The Pyro site name of the layer's ``name``."""
        ...

    @property
    def like(self) -> torch.Tensor:
        """A 0-d tensor of the layer's dtype and device."""
        ...

    @property
    def units(self) -> int:
        """The number of input units."""
        ...

    def init_value(self, site: WeightSite | str) -> torch.Tensor:
        """The initial value of a weight site."""
        ...

    def draw_shape(self, site: NoiseSite | PoolSite) -> tuple[int, ...]:
        """The per-example shape of one draw of a noise site, or of the windows ``(C, *out, K)`` of a pool site."""
        ...

    def sample_local(self, name: str, fn: TorchDistribution, x: torch.Tensor) -> torch.Tensor:
        """Sample a per-example site inside the data plate."""
        ...


def site_shaped(value: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``value`` of a global site with ``shape``, without the leading singletons ``pyro.infer.Predictive`` adds to
    align global sites with the data plate; a leading axis of several samples is refused (draw networks one at a
    time: ``Predictive(parallel=False)`` or :class:`~bayesdrop.posterior.PosteriorSampler`)."""
    if value.dim() == len(shape):
        return value
    lead = value.shape[: value.dim() - len(shape)]
    if any(n != 1 for n in lead) or tuple(value.shape[len(lead) :]) != shape:
        raise ValueError(
            f"a global site of shape {shape} got a value of shape {tuple(value.shape)}: layers take one network "
            "at a time; use Predictive(parallel=False) or bd.posterior.PosteriorSampler"
        )
    tags = {k: getattr(value, k) for k in ("_bayesdrop_lrt", "_bayesdrop_local") if hasattr(value, k)}
    value = value.reshape(shape)
    for k, tag in tags.items():
        setattr(value, k, tag)
    return value


def per_example_shape(x: torch.Tensor, unit_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of one draw per example of a per-unit quantity (``unit_shape``) multiplying ``x``: the batch axis
    of ``x``, ones for its other axes before the unit shape (shared over a sequence's steps or a map's positions),
    then ``unit_shape``; ``unit_shape`` alone for an ``x`` without a batch axis."""
    if x.dim() <= len(unit_shape):
        return tuple(unit_shape)
    return (x.shape[0],) + (1,) * (x.dim() - 1 - len(unit_shape)) + tuple(unit_shape)
