r"""The base of every Bayesian layer: which sites it has, and how a method fills them.

For people who write a new layer kind.  A layer declares its *sites*: weight sites (a tensor of parameters, e.g.
``weight`` of a ``Linear``; an LSTM has two), noise sites (multiplicative noise on a tensor of the computation,
e.g. ``noise`` on a layer's inputs, with the shape of one draw per example) and pool sites (a pooling layer's window
weights).  Its ``forward`` says how they enter the computation, by calling :meth:`BayesianLayer.weight`,
:meth:`BayesianLayer.noise` and :meth:`BayesianLayer.pool`; its
:class:`~bayesdrop.methods.Method` says what each site's prior and variational family are.  So a new layer kind
works with every method, and a new method with every layer kind.

Example
-------
A layer that scales its inputs by a learned-or-fixed noise and sums them (``docs/architecture.md``)::

    class NoisySum(bd.nn.BayesianLayer):
        def __init__(self, features, method="bernoulli"):
            super().__init__(method, weights={}, noise={"noise": bd.nn.NoiseSite("noise", (features,))})

        def forward(self, x):
            return self.noise("noise", x).sum(-1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from ..methods import LayerGuide, Method, resolve
from ..moments import Moments
from ..sites import (
    DATA_PLATE,
    RUN_DRAWS,
    RUN_SHARED_PLATE,
    NoiseSite,
    PoolSite,
    WeightSite,
    active_draws,
    draws,
    noise_shared,
    per_example_shape,
    shared_plate,
    site_shaped,
)

__all__ = ["BayesianLayer", "WeightSite", "NoiseSite", "PoolSite", "local_plate", "bayesian_layers", "is_input"]


@contextlib.contextmanager
def local_plate(plate: pyro.plate) -> Iterator[None]:
    """Make ``plate`` the data plate in which layers sample per-example sites.

    Call the network inside this context and *outside* the plate itself, so that weights stay global while masks
    are local::

        plate = pyro.plate("data", N, subsample=torch.arange(len(x)))
        with bd.nn.local_plate(plate):
            logits = net(x)
        with plate:
            pyro.sample("obs", dist.Categorical(logits=logits), obs=y)

    The plates of vectorised draws (``pyro.infer.Predictive(parallel=True)``'s) are entered before this context,
    around the whole run: they are read once, as it is entered (:func:`~bayesdrop.sites.draws`).
    """
    token = DATA_PLATE.set(plate)
    shared = RUN_SHARED_PLATE.set(shared_plate() if noise_shared() else None)  # one per run (shared_noise)
    found = RUN_DRAWS.set((plate, active_draws(plate)))  # the plates around the run: looked at once
    try:
        yield
    finally:
        RUN_DRAWS.reset(found)
        RUN_SHARED_PLATE.reset(shared)
        DATA_PLATE.reset(token)


def is_input(x: Any) -> bool:
    """Whether ``x`` is what a layer takes: a tensor, or the :class:`~bayesdrop.moments.Moments` of one (fast
    dropout)."""
    return torch.is_tensor(x) or isinstance(x, Moments)


class BayesianLayer(PyroModule):
    """Base class: a layer whose weight and noise sites are governed by a dropout method.

    Parameters
    ----------
    method : str or Method
        Registered name or instance; ``**hyper`` are its hyper-parameters when given by name.
    weights : mapping of str to torch.Tensor
        Initial value of every weight site (kept as buffers ``{name}_init``, from which guides start).
    noise : mapping of str to NoiseSite
        The noise sites.
    bias : torch.Tensor or None
        Initial deterministic bias (a point estimate, as in Kingma et al. 2015), added by the subclass.
    pool : mapping of str to PoolSite
        The pool sites (a pooling layer's).
    """

    batched_weights: bool = False  # whether forward takes a weight per example or per draw, (G, *weight.shape)
    # Multiplier of bd.fit's learning rate for this layer's parameters (its own and its guide's), times the method's
    # lr_scale: set it on a layer (or a layer kind) that needs another step size.  1 for every layer kind of the
    # library: 0.3 on the recurrent layers was measured and rejected (docs/defaults.md).
    lr_scale: float = 1.0

    def __init__(
        self,
        method: str | Method,
        weights: Mapping[str, torch.Tensor],
        noise: Mapping[str, NoiseSite] | None = None,
        bias: torch.Tensor | None = None,
        pool: Mapping[str, PoolSite] | None = None,
        **hyper: Any,
    ):
        super().__init__()
        self.method = resolve(method, **hyper)
        self.weight_sites: dict[str, WeightSite] = {}
        for name, w in weights.items():
            self.register_buffer(f"{name}_init", w.detach().clone())
            self.weight_sites[name] = WeightSite(name, w.shape)
        self.noise_sites: dict[str, NoiseSite] = dict(noise or {})
        self.pool_sites: dict[str, PoolSite] = dict(pool or {})
        self.method.check_layer(self)
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone())
        self.register_buffer("_like", torch.zeros(()), persistent=False)  # follows the layer's dtype and device
        self.site_order: list[str] = []  # the order in which forward uses the sites (the guide follows it)
        self.draw_shapes: dict[str, tuple[int, ...]] = {
            n: s.shape for n, s in self.noise_sites.items() if s.shape is not None
        }

    # -- sites ---------------------------------------------------------------------------------------------------
    @property
    def like(self) -> torch.Tensor:
        """A 0-d tensor of the layer's dtype and device (for building distributions)."""
        like = self._buffers["_like"]  # read directly: PyroModule's attribute lookup costs ~15 us per read
        assert like is not None
        return like

    @property
    def units(self) -> int:
        """Number of input units of the layer: the leading axis of its ``noise`` (or ``pool``) site's unit shape."""
        site = self.noise_sites.get("noise") or self.pool_sites["pool"]
        return site.unit_shape[0]

    @property
    def drawn_noise_sites(self) -> dict[str, NoiseSite]:
        """The noise sites whose role the method draws on (``capabilities.noise_roles``); the others get no noise,
        no Pyro site and no variational parameter (a recurrent layer's hidden-state, cell and update sites under a
        method of the inputs)."""
        roles = self.method.capabilities.noise_roles
        return {n: s for n, s in self.noise_sites.items() if s.role in roles}

    def site(self, name: str) -> str:
        """The Pyro site name of this layer's ``name`` (e.g. ``"net.0.weight"``)."""
        return f"{self._pyro_name}.{name}" if self._pyro_name else name

    def init_value(self, site: WeightSite | str) -> torch.Tensor:
        """Initial value of a weight site (the guide's starting point)."""
        value = self._buffers[f"{site if isinstance(site, str) else site.name}_init"]  # as :attr:`like`
        assert value is not None
        return value

    def draw_shape(self, site: NoiseSite | PoolSite) -> tuple[int, ...]:
        """Per-example shape of one draw of ``site`` (recorded at the last forward pass for per-element noise, and
        for the windows ``(C, *out, K)`` of a pool site)."""
        shape = self.draw_shapes.get(site.name)
        if shape is None:
            raise RuntimeError(f"layer {self._pyro_name!r}: run the model once before its guide (noise shapes)")
        return shape

    def sample_local(self, name: str, fn: dist.TorchDistribution, x: torch.Tensor) -> torch.Tensor:
        """Sample a per-example site; ``fn`` has empty batch shape and the per-example event shape.  In a vectorised
        run (:func:`~bayesdrop.sites.draws`) the draws are folded into the leading axis, ``(count * B, *event)``.

        Inside :func:`~bayesdrop.sites.shared_noise` the site is drawn once per network, in the size-1 plate
        :data:`~bayesdrop.sites.SHARED_PLATE` outside the data plate: ``(1, *event)``, broadcast over the examples
        (Gal & Ghahramani 2016: the masks are part of the weight sample); in a vectorised run each network's draw is
        repeated for its examples.

        Parameters
        ----------
        name : str
            The layer's site name (e.g. ``"noise"``); the Pyro site is ``self.site(name)`` (e.g. ``"net.0.noise"``).
        fn : pyro.distributions.TorchDistribution
            The distribution of one example's draw: empty batch shape, the per-example event shape.
        x : torch.Tensor
            The tensor the site acts on, batch first.  Read only outside a likelihood (no data plate, e.g. a layer
            called directly): its leading ``x.dim() - len(fn.event_shape)`` axes give the batch shape of the draw.
        """
        plate = DATA_PLATE.get()
        if plate is None:  # used outside a likelihood: one draw per example, explicit batch
            return pyro.sample(self.site(name), fn.expand(x.shape[: x.dim() - len(fn.event_shape)]))
        shared = RUN_SHARED_PLATE.get()  # inside shared_noise: the run's size-1 plate
        with shared if shared is not None else plate:
            value = pyro.sample(self.site(name), fn)
        d = draws()
        if d is None:
            return value
        event = value.shape[value.dim() - len(fn.event_shape) :]
        if shared is not None:  # (..., 1, *event): each network's one draw, for every example of the batch
            value_ = value.expand(*d.shape, *event)
            for tag in ("_bayesdrop_posterior_mean", "_bayesdrop_moments"):
                if hasattr(value, tag):
                    setattr(value_, tag, getattr(value, tag))
            value = value_
        folded = value.reshape(d.count * d.batch, *event)
        for tag in ("_bayesdrop_posterior_mean", "_bayesdrop_moments"):
            if hasattr(value, tag):
                setattr(folded, tag, getattr(value, tag))
        return folded

    def fold_draws(self, x: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """``x`` (batch on axis ``dim``) with the draws of a vectorised run folded into that axis (``x`` itself
        outside one): layers call it on their input before they compute (:class:`~bayesdrop.sites.Draws`)."""
        d = draws()
        if d is None:
            return x
        if isinstance(x, Moments):
            raise TypeError(
                f"layer {self._pyro_name!r}: the Gaussian moments of fast dropout are one deterministic pass; "
                "predict them without vectorised draws (Predictive(parallel=False), bd.predict)"
            )
        return d.fold(x, dim)

    # -- what a layer's forward calls --------------------------------------------------------------------------
    def weight(self, name: str = "weight") -> torch.Tensor:
        """The value of weight site ``name``: sampled from the method's prior (replayed from the guide in SVI)."""
        if name not in self.site_order:
            self.site_order.append(name)
        site = self.weight_sites[name]
        value = self.method.weight_model(self, site)
        if getattr(value, "_bayesdrop_per_example", False) and self.batched_weights:
            return value  # one weight per example, (B, *shape): DropConnect's per-example masks
        # one weight per network of a vectorised run, (count, *shape), where the draws differ
        return site_shaped(value, tuple(site.shape), per_draw=self.batched_weights)

    def noise(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``x`` times the method's noise at site ``name`` (``x`` itself if the method puts none there)."""
        z = self.multiplier(name, x)
        return x if z is None else self.fold_draws(x) * z

    def multiplier(self, name: str, x: torch.Tensor) -> torch.Tensor | None:
        """The method's noise at site ``name`` on ``x`` (broadcastable to it), or ``None`` where it puts none (a
        site whose role the method does not draw on: nothing is sampled).  A recurrent layer draws the noise of
        its recurrent sites before the loop, on a placeholder ``x`` of the shape ``(B, T, units)``."""
        site = self.noise_sites[name]
        if site.role not in self.method.capabilities.noise_roles:
            return None
        if name not in self.site_order:
            self.site_order.append(name)
        if site.shape is None:  # one draw per element: the per-example shape of x
            shape = tuple(x.shape[x.dim() - max(len(site.unit_shape), x.dim() - 1) :])
            if self.draw_shapes.get(name) != shape:
                self.draw_shapes[name] = shape
        if isinstance(x, Moments) and self.method.capabilities.train_rule != "moment-matching":
            raise TypeError(
                f"layer {self._pyro_name!r} ({self.method.name!r}) draws its noise, and its input is the Gaussian "
                "moments of an earlier fast-dropout layer: use fast-dropout (or no noise) after the first one"
            )
        x = self.fold_draws(x)
        z = self.method.noise_model(self, site, x)
        if z is not None and getattr(z, "_bayesdrop_per_draw", False):  # (count, *unit): one draw per network
            d = draws()
            assert d is not None
            unit = per_example_shape(x, tuple(z.shape[1:]))[1:]
            z = z.reshape(d.count, 1, *unit).expand(d.count, d.batch, *unit).reshape(-1, *unit)
        return z

    def pool(self, name: str, windows: torch.Tensor) -> torch.Tensor:
        """The pooled values of ``windows`` ``(B, C, *out, K)`` at pool site ``name``: the sum over each window of
        its values times the method's window weights (:meth:`~bayesdrop.methods.Method.pool_model`)."""
        site = self.pool_sites[name]
        if name not in self.site_order:
            self.site_order.append(name)
        windows = self.fold_draws(windows)
        shape = tuple(windows.shape[1:])
        if self.draw_shapes.get(name) != shape:
            self.draw_shapes[name] = shape
        weights = self.method.pool_model(self, site, windows)
        return (windows * weights).sum(-1)

    @staticmethod
    def lrt(
        op: Callable[..., torch.Tensor], x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``op(x, w)`` for an operation linear in ``x`` and ``w``; with a ``bias``, ``op(x, w, bias)``, which adds it
        to the output (as ``F.linear`` and the convolutions do, in one kernel); under
        :class:`~bayesdrop.handlers.LocalReparameterization` a Gaussian ``w`` is tagged and the output is drawn
        instead (Kingma et al. 2015):
        :math:`\\mathcal N(\\mathrm{op}(x, \\mu) + b, \\mathrm{op}(x^2, \\sigma^2))`.  For the
        :class:`~bayesdrop.moments.Moments` of an input (fast dropout) it returns the output's moments instead."""
        tag = getattr(w, "_bayesdrop_lrt", None)
        if isinstance(x, Moments):  # fast dropout: the output's mean and variance, nothing drawn
            return x.linear(op, w, bias=bias) if tag is None else x.linear(op, *tag, bias=bias)
        if tag is None:
            return op(x, w) if bias is None else op(x, w, bias)
        loc, variance = tag
        mean = op(x, loc) if bias is None else op(x, loc, bias)
        var = op(x * x, variance)
        return torch.addcmul(mean, var.clamp_min(1e-16).sqrt(), torch.randn_like(mean))

    # -- the guide's side ---------------------------------------------------------------------------------------
    def guide(self, params: LayerGuide, plate: Any) -> None:
        """Sample the variational sites of every weight, noise and pool site (called by the guide), in the order the
        layer's forward uses them (``TraceMeanField_ELBO`` checks that model and guide agree on it).

        Parameters
        ----------
        params : LayerGuide
            This layer's variational parameters (the guide's :class:`~bayesdrop.methods.LayerGuide` for it), passed to
            the method's ``weight_guide``, ``noise_guide`` and ``pool_guide``.
        plate : pyro.plate
            The plate in which the per-example sites are sampled: the model's data plate (``model.data_plate(...)``,
            built lazily when no layer has per-example sites); inside :func:`~bayesdrop.sites.shared_noise` its
            size-1 plate instead, and a plate of size 1 for
            :meth:`~bayesdrop.guides.DropoutGuide.point_values`.
        """
        sites = (*self.weight_sites, *self.drawn_noise_sites, *self.pool_sites)
        order = self.site_order + [n for n in sites if n not in self.site_order]
        for name in order:
            if name in self.weight_sites:
                self.method.weight_guide(self, self.weight_sites[name], params, plate)
            elif name in self.noise_sites:
                self.method.noise_guide(self, self.noise_sites[name], params, plate)
            else:
                self.method.pool_guide(self, self.pool_sites[name], params, plate)

    # -- the test-time network ------------------------------------------------------------------------------------
    def fold(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Effective weights from site values: each weight times the per-unit value of the noise on its inputs.

        ``values`` maps site names (``"weight"``, ``"noise"``, ...) to one value each, noise values per example
        (e.g. the posterior means from :meth:`~bayesdrop.guides.DropoutGuide.point_values`); a missing noise site
        counts as one.  The effective weights compute the same network without its noise sites, except for a method
        whose noise depends on the input (``capabilities.input_dependent``, Standout): its noise is not folded.
        """
        out = {name: values[name] for name in self.weight_sites}
        if self.method.capabilities.input_dependent:  # its test-time noise is a function of the input, not a value
            return out
        for site in self.noise_sites.values():
            if site.name not in values or site.weight is None:
                continue
            z = values[site.name]
            units = z.reshape(-1, *z.shape[z.dim() - len(site.unit_shape) :])[0]  # drop the example axis
            per_unit = _per_unit(units, site.unit_shape)
            w = out[site.weight]
            dim = self.weight_sites[site.weight].unit_dim
            out[site.weight] = w * per_unit.reshape((1,) * dim + (-1,) + (1,) * (w.dim() - dim - 1))
        return out

    def kept_weights(self, masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Which weights survive pruning, per weight site (boolean, the weight's shape), from the method's
        :meth:`~bayesdrop.methods.Method.keep_masks` (``masks``, by site name): a weight is kept when its own mask
        and the mask of the noise on its input unit keep it."""
        like = self.like
        values = {
            n: masks[n].to(like.dtype).expand(s.shape) if n in masks else like.new_ones(s.shape)
            for n, s in self.weight_sites.items()
        }
        values.update({n: masks[n].to(like.dtype) for n in self.noise_sites if n in masks})
        return {n: w != 0 for n, w in self.fold(values).items()}

    def to_plain(self, values: Mapping[str, torch.Tensor], bias: torch.Tensor | None = None) -> torch.nn.Module:
        """A plain deterministic ``torch.nn`` module computing this layer at the site values ``values`` (as for
        :meth:`fold`), with its bias or ``bias`` (e.g. with fewer units after pruning)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be exported as a plain module")


def grouped_rows(x: torch.Tensor, w: torch.Tensor) -> tuple[int, int]:
    """``(G, N // G)`` for inputs ``x`` ``(N, ...)`` and weights ``w`` ``(G, ...)``, one per group of ``N / G``
    consecutive rows: one per example (``G = N``, DropConnect's per-example masks) or one per network of a
    vectorised run (the draw-major layout of :class:`~bayesdrop.sites.Draws`); ``ValueError`` if ``G`` does not
    divide ``N``."""
    g, n = w.shape[0], x.shape[0]
    if g == 0 or n % g:
        raise ValueError(
            f"batched weights {tuple(w.shape)} need inputs whose leading axis is a multiple of {g}, got "
            f"{tuple(x.shape)}"
        )
    return g, n // g


def _per_unit(z: torch.Tensor, unit_shape: tuple[int, ...]) -> torch.Tensor:
    """One value per unit (the leading axis of ``unit_shape``) of a per-example noise value constant over the other
    axes; raises if it is not."""
    n = unit_shape[0]
    z = z.reshape(z.shape[0] if z.dim() else 1, -1) if z.dim() > 1 else z.reshape(-1, 1)
    z = z.expand(n, z.shape[1]) if z.shape[0] == 1 else z
    if z.shape[1] > 1 and not torch.equal(z.amax(1), z.amin(1)):
        raise ValueError("noise that varies within a unit cannot be folded into the weights")
    return z[:, 0]


def filled(module: torch.nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.nn.Module:
    """``module`` (a fresh plain layer) with its ``weight`` and ``bias`` set, on the weight's device and dtype."""
    w, b = module.weight, module.bias
    assert isinstance(w, torch.Tensor)
    with torch.no_grad():
        w.copy_(weight)
        if bias is not None:
            assert isinstance(b, torch.Tensor)
            b.copy_(bias)
    return module.to(weight.device, weight.dtype)


def bayesian_layers(module: torch.nn.Module) -> list[tuple[str, BayesianLayer]]:
    """All :class:`BayesianLayer` submodules of ``module`` with their names."""
    return [(n, m) for n, m in module.named_modules() if isinstance(m, BayesianLayer)]
