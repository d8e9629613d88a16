"""What a dropout method sees of a layer: its weight, noise and pool sites, and the :class:`Layer` protocol.

For people who write a method: the hooks of :class:`~bayesdrop.methods.Method` receive a layer (any
:class:`~bayesdrop.nn.BayesianLayer`) through this protocol and one of its sites, so methods do not depend on the
layer classes and every layer kind serves every method.

Example
-------
>>> site = bd.sites.NoiseSite("noise", unit_shape=(64,), weight="weight")
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pyro
import torch
from pyro.distributions import TorchDistribution
from pyro.poutine.runtime import get_plates

__all__ = [
    "WeightSite",
    "NoiseSite",
    "PoolSite",
    "Layer",
    "Draws",
    "draws",
    "shared_noise",
    "noise_shared",
    "shared_plate",
    "SHARED_PLATE",
    "RUN_SHARED_PLATE",
    "RUN_DRAWS",
    "active_draws",
    "site_shaped",
    "per_example_shape",
    "NOISE_ROLES",
]

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
    batched_weights: bool  # whether the layer takes one weight per example or per draw, (G, *weight.shape)

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

    @property
    def drawn_noise_sites(self) -> dict[str, NoiseSite]:
        """The noise sites whose role the layer's method draws on."""
        ...

    def init_value(self, site: WeightSite | str) -> torch.Tensor:
        """The initial value of a weight site."""
        ...

    def draw_shape(self, site: NoiseSite | PoolSite) -> tuple[int, ...]:
        """The per-example shape of one draw of a noise site, or of the windows ``(C, *out, K)`` of a pool site."""
        ...

    def sample_local(self, name: str, fn: TorchDistribution, x: torch.Tensor) -> torch.Tensor:
        """Sample a per-example site inside the data plate: the layer's site ``name`` (the Pyro site
        ``site(name)``) from ``fn``, the distribution of one example's draw (empty batch shape, the per-example event
        shape), for the tensor ``x`` it acts on (batch first; outside a data plate its leading axes give the batch
        shape).  See :meth:`bayesdrop.nn.BayesianLayer.sample_local`."""
        ...


# The data plate of the network being run (set by bayesdrop.nn.local_plate): layers sample their per-example
# sites inside it, and read from it the batch size of a vectorised run.
DATA_PLATE: contextvars.ContextVar[Any] = contextvars.ContextVar("bayesdrop_plate", default=None)

_TAGS = ("_bayesdrop_lrt", "_bayesdrop_local", "_bayesdrop_posterior_mean")

# Whether per-example sites are drawn once per network and shared by every input (set by shared_noise).
_SHARED: contextvars.ContextVar[bool] = contextvars.ContextVar("bayesdrop_shared_noise", default=False)

SHARED_PLATE = "_bayesdrop_shared"  #: the size-1 plate of per-example sites drawn once per network

# The instance of that plate for the network being run (set by bayesdrop.nn.local_plate inside shared_noise): a
# plate records its site when it is built, so each run of a model builds one and its layers share it.
RUN_SHARED_PLATE: contextvars.ContextVar[Any] = contextvars.ContextVar("bayesdrop_shared_plate", default=None)


@contextlib.contextmanager
def shared_noise(enabled: bool = True) -> Iterator[None]:
    r"""Draw every per-example site (masks, multiplicative noise, cutout centres, pooling draws) once per network
    and share it by all inputs, instead of once per example.

    A network drawn this way is one sample of the weights of Gal & Ghahramani (2016): dropout's masks are part of
    the weight sample, :math:`W_s = M \operatorname{diag}(z_s)`, the same for every input.  Its output on an input
    does not depend on the other inputs of the batch, and its log-likelihoods :math:`\log p(y_n \mid \theta_s)`
    over the data are those of one posterior sample, as PSIS-LOO and WAIC need them (Vehtari et al. 2017).  The
    training objective keeps one draw per example (the lower-variance estimate of the same expected
    log-likelihood).

    Inside the context a layer samples a per-example site in the plate :data:`SHARED_PLATE` of size 1 (at dim
    -1, outside the data plate): its value has a leading axis of size 1 where the examples' axis was, and broadcasts
    over the batch; the guide (:class:`~bayesdrop.guides.DropoutGuide`) samples its matching sites in the same
    plate.  In a vectorised run (:func:`draws`) each network's draw is expanded over its examples.

    Parameters
    ----------
    enabled : bool
        ``False`` restores one draw per example inside an enclosing ``shared_noise()``.

    Examples
    --------
    >>> with bd.sites.shared_noise():
    ...     trace = pyro.poutine.trace(guide).get_trace(x[:1])  # one network, masks included
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be a bool, got {type(enabled).__name__}")
    token = _SHARED.set(enabled)
    try:
        yield
    finally:
        _SHARED.reset(token)


def noise_shared() -> bool:
    """Whether per-example sites are drawn once per network (inside :func:`shared_noise`)."""
    return _SHARED.get()


def shared_plate() -> pyro.plate:
    """A new plate, of size 1 at dim -1, for the per-example sites drawn once per network (:func:`shared_noise`):
    build one per run of a model or guide (it records its site when built) and enter it for each such site."""
    return pyro.plate(SHARED_PLATE, 1, dim=-1)


@dataclass(frozen=True)
class Draws:
    """A vectorised run of the network: ``count`` networks at once (``pyro.infer.Predictive(parallel=True)``, or a
    ``pyro.plate`` of particles around the model) on a minibatch of ``batch`` examples.

    Layout.  Every per-example tensor of the network (inputs, activations, masks) has its draws folded into its
    leading axis, draw-major: row ``s * batch + b`` is example ``b`` under network ``s`` (so any ``torch.nn``
    module between the Bayesian layers works unchanged).  A global site whose draws differ (a Gaussian weight) is
    one value per draw, ``(count, *shape)``, tagged ``_bayesdrop_per_draw``; one the draws share (a point
    estimate) is its single value.  The likelihood unfolds the network's output to ``(count, batch, ...)``.
    """

    count: int
    batch: int
    shape: tuple[int, ...]  # the draws' plates in Pyro's batch layout, ending with the data plate's batch

    def fold(self, x: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """``x`` with the draws folded into axis ``dim``: repeated ``count`` times if it has ``batch`` rows there
        (the network's input), unchanged if it has ``count * batch``; ``ValueError`` otherwise."""
        n = x.shape[dim]
        if n == self.count * self.batch:
            return x
        if n != self.batch:
            raise ValueError(
                f"an input with {n} rows on axis {dim} in a vectorised run of {self.count} networks on a minibatch "
                f"of {self.batch}: expected {self.batch} rows (the data plate's) or {self.count * self.batch}"
            )
        x = x.unsqueeze(dim)
        x = x.expand(*x.shape[:dim], self.count, *x.shape[dim + 1 :])
        return x.reshape(*x.shape[:dim], self.count * self.batch, *x.shape[dim + 2 :])

    def unfold(self, out: torch.Tensor) -> torch.Tensor:
        """A folded ``(count * batch, ...)`` network output in Pyro's batch layout ``(count, ..., batch, ...)``."""
        return out.reshape(*self.shape, *out.shape[1:])


# The draws of the network being run, found once when bayesdrop.nn.local_plate is entered: (data plate, draws)
RUN_DRAWS: contextvars.ContextVar[tuple[Any, Draws | None] | None] = contextvars.ContextVar(
    "bayesdrop_run_draws", default=None
)


def draws() -> Draws | None:
    """The vectorised run the network is in, or ``None`` for one network (no ``pyro.plate`` around the model).

    The draws are the vectorised plates active while the network runs: a layer is run inside
    :func:`~bayesdrop.nn.local_plate` and outside the data plate itself, so every active plate is one of the
    draws' (``pyro.infer.Predictive(parallel=True)`` puts its samples in one, left of the data plate).  They are
    found once per run, as :func:`~bayesdrop.nn.local_plate` is entered (each look at the active plates is a
    message through Pyro's handlers, and a three-layer network asked a dozen times per step)."""
    plate = DATA_PLATE.get()
    if plate is None:
        return None
    run = RUN_DRAWS.get()
    if run is not None and run[0] is plate:
        return run[1]
    return active_draws(plate)


def active_draws(plate: Any) -> Draws | None:
    """The draws of a network whose data plate is ``plate``, from the plates active now: :func:`draws`."""
    outer = [(f.dim, f.size) for f in get_plates() if f.vectorized and f.name != plate.name and f.dim is not None]
    count = math.prod(size for _, size in outer)
    if count == 1:
        return None
    shape = [1] * -min(dim for dim, _ in outer)
    for dim, size in outer:
        shape[len(shape) + dim] = size
    shape[-1] = plate.subsample_size  # the data plate's dim, -1 (bayesdrop's likelihoods put it there)
    return Draws(count, plate.subsample_size, tuple(shape))


def site_shaped(value: torch.Tensor, shape: tuple[int, ...], *, per_draw: bool = False) -> torch.Tensor:
    """The value of a global site of ``shape``, without the leading dimensions of Pyro's plates.

    Outside a vectorised run these are singletons (``pyro.infer.Predictive`` aligns global sites with the data
    plate) and the value has ``shape``.  In a vectorised run (:func:`draws`) a value the draws share (expanded, as
    a point estimate's) is its one value, of ``shape``; a value that differs between draws is
    ``(count, *shape)``, tagged ``_bayesdrop_per_draw``, where the caller takes one (``per_draw``, e.g. a layer's
    weights), and ``ValueError`` where it cannot.  Tags of the value (the local reparameterisation's moments) are
    kept, shaped alike.
    """
    if value.dim() == len(shape):
        return value
    k = value.dim() - len(shape)
    lead = value.shape[:k]
    if k < 0 or tuple(value.shape[k:]) != tuple(shape):
        raise ValueError(f"a global site of shape {tuple(shape)} got a value of shape {tuple(value.shape)}")
    tags = {t: getattr(value, t) for t in _TAGS if hasattr(value, t)}
    shared = all(n == 1 or st == 0 for n, st in zip(lead, value.stride()[:k]))
    if shared:
        value = value[(0,) * k]
    else:
        d = draws()
        if not per_draw or d is None or math.prod(lead) != d.count:
            raise ValueError(
                f"a global site of shape {tuple(shape)} got {math.prod(lead)} different values {tuple(lead)}: "
                "this site takes one value per network here; draw the networks one at a time "
                "(Predictive(parallel=False) or bd.posterior.PosteriorSampler)"
            )
        value = value.reshape(-1, *shape)
        setattr(value, "_bayesdrop_per_draw", True)  # noqa: B010 -- a tag on the tensor object
    if "_bayesdrop_lrt" in tags:
        tags["_bayesdrop_lrt"] = tuple(site_shaped(t, shape, per_draw=per_draw) for t in tags["_bayesdrop_lrt"])
    value = value.view(value.shape) if shared else value  # a new tensor object for the tags
    for t, tag in tags.items():
        setattr(value, t, tag)
    return value


def per_example_shape(x: torch.Tensor, unit_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of one draw per example of a per-unit quantity (``unit_shape``) multiplying ``x``: the batch axis
    of ``x``, ones for its other axes before the unit shape (shared over a sequence's steps or a map's positions),
    then ``unit_shape``; ``unit_shape`` alone for an ``x`` without a batch axis."""
    if x.dim() <= len(unit_shape):
        return tuple(unit_shape)
    return (x.shape[0],) + (1,) * (x.dim() - 1 - len(unit_shape)) + tuple(unit_shape)
