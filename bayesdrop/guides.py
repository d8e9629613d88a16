"""The variational guide: each Bayesian layer's own family, side by side.

:class:`DropoutGuide` walks the model's :mod:`bayesdrop.nn` layers and asks each
layer's method for its variational parameters and sites.  Like Pyro's
autoguides it runs the model once on its first call (blocked) to learn the
order in which layers are called and their per-example input shapes.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, cast

import pyro
import pyro.poutine as poutine
import torch
from pyro.nn import PyroModule

from .checks import real_number
from .handlers import PosteriorMean, posterior_mean
from .methods.base import LayerGuide, Method
from .nn import BayesianLayer, bayesian_layers
from .sites import noise_shared, shared_plate

__all__ = ["DropoutGuide", "dropout_rates"]


MAX_INPUT_SHAPES = 64  #: input shapes whose draw shapes a guide keeps (the oldest is dropped first)


def _input_shapes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[int, ...], ...]:
    """The per-example shape of the network's input, the first argument of model and guide (whether or not the
    targets follow); of every tensor argument where the first is not a tensor."""
    inputs = args[:1] if args and torch.is_tensor(args[0]) else (*args, *kwargs.values())
    return tuple(tuple(int(d) for d in a.shape[1:]) for a in inputs if torch.is_tensor(a))


@contextlib.contextmanager
def _buffers_kept(module: torch.nn.Module) -> Iterator[None]:
    """The buffers of ``module`` as they were after the block: the runs of the model that only record its sites
    leave batch normalisation's running statistics alone."""
    kept = [(b, b.clone()) for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in kept:
                b.copy_(value)


def _key(name: str) -> str:
    return name.replace(".", "__") or "_root"


class _LazyPlate:
    """The model's data plate, built when a layer's guide first uses it.

    A subsampled ``pyro.plate`` is a sample statement of its own, through the handler stack every step; a guide
    whose model has no per-example latent site (the Gaussian family) need not build it.  Entering it
    (``with plate:``) and its attributes act on the plate itself.
    """

    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._plate: Any = None

    @property
    def plate(self) -> Any:
        if self._plate is None:
            self._plate = self._make()
        return self._plate

    def __enter__(self) -> Any:
        return self.plate.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self.plate.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.plate, name)


class DropoutGuide(PyroModule):
    """Mean-field guide made of each layer's variational family.

    Parameters
    ----------
    model : torch.nn.Module
        A likelihood (:class:`~bayesdrop.likelihoods.Classifier`, ...) or any module
        with Bayesian layers and a ``data_plate(*args, **kwargs)`` method
        returning the ``pyro.plate`` of its data.

    Examples
    --------
    >>> guide = bd.DropoutGuide(model)
    >>> svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), pyro.infer.TraceMeanField_ELBO())
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__(name="guide")
        if not hasattr(model, "data_plate"):
            raise TypeError(
                "`model` must provide data_plate(x, ...) (use bd.Classifier / bd.Regressor or subclass bd.Likelihood)"
            )
        pairs = bayesian_layers(model)
        if not pairs:
            raise ValueError("`model` contains no bayesdrop.nn layers")
        self._model = (model,)  # a tuple: not registered as a submodule
        module_dict = cast("type[torch.nn.ModuleDict]", PyroModule[torch.nn.ModuleDict])  # Pyro: type[PyroModule]
        self.layers = module_dict({_key(n): layer.method.init_guide(layer) for n, layer in pairs})
        self._order: list[tuple[BayesianLayer, LayerGuide]] | None = None
        # per-example draw shapes of the layers, by the per-example shape of the network's input (_input_shapes)
        self._draw_shapes: dict[tuple[tuple[int, ...], ...], list[tuple[BayesianLayer, dict[str, Any]]]] = {}

    @property
    def model(self) -> torch.nn.Module:
        """The model this guide was built for (read-only).  Held outside the guide's submodules: its parameters and
        buffers are not in the guide's ``parameters()`` or ``state_dict()``, and ``guide.to(...)`` does not move
        it."""
        return self._model[0]

    def layer_guide(self, layer: BayesianLayer) -> LayerGuide:
        """The variational parameters of ``layer``."""
        for n, candidate in bayesian_layers(self.model):
            if candidate is layer:
                return cast(LayerGuide, self.layers[_key(n)])
        raise KeyError("layer is not part of this guide's model")

    def pairs(self) -> list[tuple[str, BayesianLayer, LayerGuide]]:
        """``(name, layer, params)`` for every Bayesian layer, in module order."""
        return [(n, layer, cast(LayerGuide, self.layers[_key(n)])) for n, layer in bayesian_layers(self.model)]

    def check_dtypes(self) -> None:
        """Refuse variational parameters of another dtype or device than their layer's: a model cast or moved after
        its guide ran (``model.double()``), which would fail deep inside a matrix product.

        Raises
        ------
        ValueError
            Naming the first such parameter, its layer and the remedy.
        """
        for name, layer, params in self.pairs():
            like = layer.like
            for pname, p in params.named_parameters():
                if p.dtype != like.dtype or p.device != like.device:
                    raise ValueError(
                        f"the guide's parameter {name}.{pname} is {p.dtype} on {p.device}, but layer {name!r} is "
                        f"{like.dtype} on {like.device}: the model was cast or moved after its guide ran; cast the "
                        "guide the same way (e.g. guide.double()) or build bd.DropoutGuide(model) afterwards"
                    )

    def _setup(self, *args: Any, **kwargs: Any) -> None:
        # One blocked run of the model records call order and per-example shapes.
        frozen = [p for p in self.model.parameters() if not p.requires_grad]
        try:
            with torch.no_grad(), poutine.block(), _buffers_kept(self.model):
                trace = poutine.trace(self.model).get_trace(*args, **kwargs)
        except RuntimeError as err:
            found = re.search(r"Multiple (?:sample|param) sites named '([^']*)'", str(err))
            if found is None:
                raise
            raise ValueError(
                f"the site {found.group(1)!r} is drawn twice in one forward pass: a bayesdrop layer draws its weights "
                "and noise once per pass, under its name, so each layer may run once per forward (give each call a "
                "layer of its own, e.g. copy.deepcopy)"
            ) from err
        finally:
            for p in frozen:  # Pyro's param store turns requires_grad on as it registers a parameter: kept off
                p.requires_grad_(False)
        first_site: dict[str, int] = {}
        for i, name in enumerate(trace.nodes):
            first_site.setdefault(name.rsplit(".", 1)[0], i)
        pairs = [(layer, g) for _, layer, g in self.pairs()]
        self._order = sorted(pairs, key=lambda lg: first_site.get(lg[0]._pyro_name, len(first_site)))
        # Per-example latent sites (masks, noise) sit in the data plate; without them the plate is built lazily.
        self._local = any(
            site["type"] == "sample" and not site["is_observed"] and site["cond_indep_stack"]
            for site in trace.nodes.values()
        )
        self._draw_shapes = {_input_shapes(args, kwargs): self._recorded_shapes()}

    def _recorded_shapes(self) -> list[tuple[BayesianLayer, dict[str, tuple[int, ...]]]]:
        return [(layer, dict(layer.draw_shapes)) for layer, _ in self._order or [] if layer.draw_shapes]

    def _prepare_shapes(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Put every layer's per-example draw shapes at those of this input (an LSTM's steps, an image's size):
        the guide draws before the model runs.  Recorded by a blocked run of the model, off the random stream,
        the first time an input shape comes; set from that record afterwards."""
        key = _input_shapes(args, kwargs)
        shapes = self._draw_shapes.get(key)
        if shapes is None:
            devices = [a.device for a in (*args, *kwargs.values()) if torch.is_tensor(a) and a.device.type == "cuda"]
            with torch.random.fork_rng(devices=sorted(set(devices), key=str)), torch.no_grad(), poutine.block():
                with _buffers_kept(self.model):
                    self.model(*args, **kwargs)
            if len(self._draw_shapes) >= MAX_INPUT_SHAPES:
                self._draw_shapes.pop(next(iter(self._draw_shapes)))
            shapes = self._draw_shapes[key] = self._recorded_shapes()
        for layer, recorded in shapes:
            layer.draw_shapes.update(recorded)

    def forward(self, *args: Any, **kwargs: Any) -> None:
        if self._order is None:
            self._setup(*args, **kwargs)
        else:
            self._prepare_shapes(args, kwargs)
        # Built first, as in the model, where a layer has per-example sites: TraceMeanField_ELBO checks the order.
        assert self._order is not None  # set by _setup
        data_plate = cast("Callable[..., pyro.plate]", self.model.data_plate)  # checked in __init__
        make_plate = functools.partial(data_plate, *args, **kwargs)
        if noise_shared():  # per-example sites drawn once per network, as the model's layers draw them
            plate: Any = shared_plate()
        else:
            plate = make_plate() if self._local else _LazyPlate(make_plate)
        for layer, params in self._order:
            layer.guide(params, plate)

    def projected(self) -> list[tuple[BayesianLayer, LayerGuide]]:
        """The layers whose method projects its variational parameters (:meth:`~bayesdrop.methods.Method.project`
        overridden), with their parameters."""
        return [
            (layer, params) for _, layer, params in self.pairs() if type(layer.method).project is not Method.project
        ]

    def project(self, layers: list[tuple[BayesianLayer, LayerGuide]] | None = None) -> None:
        """Put every layer's variational parameters back in their domain (:meth:`~bayesdrop.methods.Method.project`),
        in place: what :func:`~bayesdrop.fit` does after each optimiser step; call it after yours in a loop of your
        own.  ``layers``: the list :meth:`projected` gave (a loop takes it once per epoch), else found now."""
        for layer, params in self.projected() if layers is None else layers:
            layer.method.project(layer, params)

    def keep_masks(self, threshold: float | str | None = None) -> dict[str, torch.Tensor]:
        """What pruning keeps: Pyro site name to a boolean mask, from every layer's method at ``threshold`` (each
        method's own when ``None``; see :meth:`~bayesdrop.methods.Method.keep_masks`).

        Raises
        ------
        TypeError
            If ``threshold`` is not None, a string or a real number.
        ValueError
            If a numeric ``threshold`` is NaN or infinite (it would prune every weight, or none, silently).
        """
        if threshold is not None and not isinstance(threshold, str):
            threshold = real_number(threshold, "threshold", "or None, or a method's named rule")
            if not math.isfinite(threshold):
                raise ValueError(f"`threshold` must be a finite number, got {threshold!r}")
        masks = {}
        for _, layer, params in self.pairs():
            for site, mask in layer.method.keep_masks(layer, params, threshold).items():
                masks[layer.site(site)] = mask
        return masks

    def mean_network(self, pruned: bool = False, threshold: float | str | None = None) -> Callable[..., Any]:
        """The deterministic test-time network: the model as a function of its arguments, run at the mean of every
        guide site (:func:`~bayesdrop.handlers.posterior_mean`): the weight-scaling rule of dropout, the
        posterior-mean network of the Gaussian family.

        With ``pruned=True`` the entries each method prunes at ``threshold`` (:meth:`keep_masks`) are zeroed: the
        network that :func:`bayesdrop.compress.prune` exports.  Example: ``logits = guide.mean_network()(x)``.
        """
        return posterior_mean(self.model, self, self.keep_masks(threshold) if pruned else None)

    @torch.no_grad()
    def point_values(self, pruned: bool = False, threshold: float | str | None = None) -> dict[str, dict[str, Any]]:
        """The posterior mean of every layer's sites, for one example: ``{layer name: {site: value}}``, local
        (per-example) sites with a leading axis of size 1; pruned entries zeroed with ``pruned=True``, those that
        each method prunes at ``threshold`` (:meth:`keep_masks`: a number, a method's named rule, or ``None``, the
        default, for each method's own), which is not read without ``pruned``.

        ``layer.fold(values)`` turns them into the effective weights of the test-time network and
        ``layer.to_plain(values)`` into a plain module (:mod:`bayesdrop.compress`).
        """
        if self._order is None:
            raise RuntimeError("call the guide once (e.g. guide(x)) before reading its point values")
        masks = self.keep_masks(threshold) if pruned else None
        plate = pyro.plate("_point", 1, dim=-1)
        with poutine.block(), poutine.trace() as tr, PosteriorMean(masks):
            for layer, params in self._order:
                layer.guide(params, plate)
        out: dict[str, dict[str, Any]] = {}
        for name, layer, _ in self.pairs():
            prefix = layer.site("")
            out[name] = {
                site_name[len(prefix) :]: site["value"]
                for site_name, site in tr.trace.nodes.items()
                if site["type"] == "sample" and site_name.startswith(prefix) and "." not in site_name[len(prefix) :]
            }
        return out


def dropout_rates(model: torch.nn.Module, guide: DropoutGuide) -> dict[str, torch.Tensor]:
    """Learned keep probabilities of every Bayesian layer.

    For Bernoulli families the keep probability of each gate; for Gaussian
    families :math:`1 / (1 + \\alpha)`.  Returns ``{layer name: tensor}`` (per
    input unit, or per weight for per-weight methods), detached.  A layer with several rate sites
    (:meth:`~bayesdrop.methods.Method.rate_sites`: a recurrent layer's, per layer, direction and role) has one entry
    per site, ``{layer name}.{site}`` (``net.rnn.noise_l0``, ``net.rnn.weight_ih_l1``, ...).

    Parameters
    ----------
    model : torch.nn.Module
        The model whose Bayesian layers are read.
    guide : DropoutGuide
        The guide built for ``model``, holding the layers' variational parameters.

    Raises
    ------
    ValueError
        If ``guide`` is not a :class:`DropoutGuide` built for ``model`` (``guide.model is model``).
    """
    if not isinstance(guide, DropoutGuide) or guide.model is not model:
        raise ValueError("`guide` must be the DropoutGuide built for `model`")
    with torch.no_grad():
        return {  # a layer's only site: keep_prob(layer, params), as methods written before rate sites take it
            key: (
                layer.method.keep_prob(layer, params) if site is None else layer.method.keep_prob(layer, params, site)
            ).detach()
            for key, (_, layer, params, site) in rate_entries(guide).items()
        }


def rate_entries(guide: DropoutGuide) -> dict[str, tuple[str, BayesianLayer, LayerGuide, str | None]]:
    """The entries of :func:`dropout_rates`: key to ``(layer name, layer, its guide parameters, site)``, the site
    ``None`` for a layer's only rate site (the key is then the layer's name)."""
    out: dict[str, tuple[str, BayesianLayer, LayerGuide, str | None]] = {}
    for name, layer, params in guide.pairs():
        sites = layer.method.rate_sites(layer)
        if len(sites) <= 1:
            out[name] = (name, layer, params, None)
        else:
            out.update({f"{name}.{site}": (name, layer, params, site) for site in sites})
    return out
