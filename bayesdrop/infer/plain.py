r"""The plain ``torch.nn`` modules behind a prediction: the test-time network of ``rule="weight-scaling"``, kept
until the model changes, and the networks a guide draws, run through it one after another.

For users who want to know what :func:`bayesdrop.predict` runs, and for contributors.  The plain module is
:func:`bayesdrop.compress.mean_module`'s: each Bayesian layer as the plain layer of its effective weights
(:meth:`~bayesdrop.nn.BayesianLayer.fold`).  :func:`weight_scaling_network` keeps it per guide, so that a
deterministic prediction costs one plain forward pass.  :class:`PlainDraws` runs the networks of a
:class:`~bayesdrop.posterior.PosteriorSampler` through it, each with its drawn weights swapped in, where they draw
nothing per example (the Gaussian weights of ``vd``, ``sparse-vd`` and ``vbd``, SBP's noise per unit): the weights
a network draws are then the whole network, and one plain pass per network is the floor of a Monte Carlo
prediction on a CPU (``benchmarks/results/predict_speed.md``).

Example
-------
>>> net = weight_scaling_network(model, guide)            # a plain module, kept until a parameter changes
>>> probs = net(x_test).softmax(-1)
"""

from __future__ import annotations

import copy
import functools
import itertools
import operator
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import pyro.distributions as dist
import torch
from pyro.poutine.util import site_is_subsample

from ..compress import mean_module_parts
from ..data import all_finite
from ..distributions import base_distribution
from ..guides import DropoutGuide
from ..likelihoods import Likelihood
from ..nn import BayesianLayer
from ..posterior import NOT_FINITE, PosteriorSampler, device_of

__all__ = [
    "weight_scaling_network",
    "cached_plain",
    "cached_network",
    "clear_cache",
    "PlainCache",
    "PlainState",
    "PlainDraws",
    "plain_draws",
]


class PlainCache(NamedTuple):
    """What :func:`weight_scaling_network` keeps per guide: the module trees it was built from (weak references to
    every module of ``model`` and ``guide``, so that the cache holds neither alive), their parameters and buffers
    (held, so that their identities stay theirs), the state it was built in (:class:`PlainState`; None while it is
    being built), the plain module (None: the methods have none), the path in it of each weight layer's plain
    module (by the layer's name in ``guide.pairs()``: :func:`~bayesdrop.compress.mean_module_parts`) and the device
    it is on."""

    modules: list[weakref.ref[torch.nn.Module]]
    tensors: list[torch.Tensor]
    state: PlainState | None
    network: torch.nn.Module | None
    paths: dict[str, str]
    device: torch.device


class PlainState(NamedTuple):
    """The state a :class:`PlainCache` depends on, as :func:`cached_plain` compares it: the Bayesian layers
    (``layers``: their positions in ``PlainCache.modules``), whether their methods' attributes are all plain
    scalars (``scalar``), and the flat :func:`_snapshot` (per module how many children, parameters and buffers it
    has, and the identities of what each holds; per tensor its version counter and storage; per layer the type of
    its method and its attributes, a copy compared by value, by ``repr`` where one is not a plain scalar)."""

    layers: list[int]
    scalar: bool
    snapshot: list[Any]


_PLAIN: weakref.WeakKeyDictionary[DropoutGuide, PlainCache] = weakref.WeakKeyDictionary()
_SCALARS = frozenset({int, float, str, bool, type(None)})  # method attributes compared as they are; others by repr


def weight_scaling_network(model: Likelihood, guide: DropoutGuide) -> Callable[[torch.Tensor], Any]:
    """The test-time network of ``rule="weight-scaling"``: the plain module of
    :func:`bayesdrop.compress.mean_module`, built once and kept (per guide) until a parameter or buffer of the
    model or guide changes (their version counters and storage), a submodule is added, removed or replaced, or a
    layer's method changes (its type or attributes, e.g. a pooling method's test rule), so that a prediction costs
    one plain forward pass (forward hooks on the bayesdrop layers do not run in it); for methods without a plain
    test-time network (Standout, RNNDrop, recurrent dropout), the model run at the guide's means
    (:meth:`~bayesdrop.DropoutGuide.mean_network`).  The same outputs either way, to rounding.

    A write through a parameter's ``.data`` (``p.data.mul_(0)``) changes no version counter, as autograd does not
    see it either: call :func:`clear_cache` after one.
    """
    return cached_network(cached_plain(model, guide), guide)


def cached_network(kept: PlainCache, guide: DropoutGuide) -> Callable[[torch.Tensor], Any]:
    """The test-time network of ``kept``: its plain module, else the model at ``guide``'s means."""
    return guide.mean_network() if kept.network is None else kept.network


def cached_plain(model: Likelihood, guide: DropoutGuide) -> PlainCache:
    """:func:`weight_scaling_network`'s cache of ``guide``, built anew where the state it was built from changed."""
    cached = _PLAIN.get(guide)
    if cached is None or cached.modules[0]() is not model or not _unchanged(cached):
        guide.check_dtypes()  # a model cast after its guide ran: named here, not inside the network's first layer
        modules = [*model.modules(), *guide.modules()]
        layers = [m for m in modules if isinstance(m, BayesianLayer)]
        exportable = all(layer.method.capabilities.plain_export for layer in layers)
        network, paths = mean_module_parts(model, guide) if exportable else (None, {})
        refs = [weakref.ref(m) for m in modules]
        cached = PlainCache(refs, _tensors(modules), None, network, paths, device_of(model, guide))
        cached = _PLAIN[guide] = cached._replace(state=_state(cached))
    return cached


def clear_cache(guide: DropoutGuide | None = None) -> None:
    """Forget the test-time network kept for ``guide`` (for every guide where None), so that the next prediction
    builds it from the parameters as they are: after a write the cache cannot see, through a parameter's or a
    buffer's ``.data`` (which changes no version counter).

    Raises
    ------
    TypeError
        If ``guide`` is neither a :class:`~bayesdrop.DropoutGuide` nor None.
    """
    if guide is None:
        _PLAIN.clear()
    elif isinstance(guide, DropoutGuide):
        _PLAIN.pop(guide, None)
    else:
        raise TypeError(f"`guide` must be a bd.DropoutGuide or None, got {type(guide).__name__}")


def _state(cached: PlainCache) -> PlainState:
    """The state of the modules and tensors of ``cached`` now (its modules alive)."""
    modules = list(map(_call, cached.modules))
    layers = [i for i, m in enumerate(modules) if isinstance(m, BayesianLayer)]
    scalar = all(type(v) in _SCALARS for i in layers for v in vars(modules[i].method).values())
    snapshot = _snapshot(cached, modules, layers, scalar)
    if scalar and layers:  # the methods' attributes as they are now, not the live dictionaries
        snapshot[-len(layers) :] = map(dict, snapshot[-len(layers) :])
    return PlainState(layers, scalar, snapshot)


def _unchanged(cached: PlainCache) -> bool:
    """Whether the modules and tensors of ``cached`` are in the state it was built in: every module alive, the
    module trees as they were (a child, parameter or buffer added, removed or replaced anywhere changes its
    module's), every tensor's values (its version counter, and its storage: a move to another dtype or device
    allocates new storage while the old one is alive) and every layer's method (its type and attributes, e.g. a
    test rule).

    It runs on every prediction, whose floor on digits is a half-millisecond forward pass: one flat list built in
    C-level maps and compared at once.  Children and tensors are compared by identity: no object the cache was
    built from has been freed and its address reused, since the walk stops at a module that is gone and the cache
    holds the tensors.  Writes through ``.data`` change no version counter: :func:`clear_cache`.
    """
    modules = list(map(_call, cached.modules))
    if None in modules:
        return False
    state = cast(PlainState, cached.state)
    return _snapshot(cached, modules, state.layers, state.scalar) == state.snapshot


def _snapshot(cached: PlainCache, modules: list[Any], layers: list[int], scalar: bool) -> list[Any]:
    """The state of ``cached``'s ``modules`` as one flat list: the sizes of their children, parameters and buffers,
    the identities of those, the tensors' version counters and storage, the type of the method of each layer
    (positions in ``modules``) and, last, its attributes (by ``repr`` where not all are plain ``scalar``
    values; the live dictionaries otherwise, which :func:`_state` copies)."""
    dicts = list(_chain(map(_DICTS, modules)))
    methods = [modules[i].method for i in layers]
    return [
        *map(len, dicts),
        *map(id, _chain(map(dict.values, dicts))),
        *map(_VERSION, cached.tensors),
        *map(_DATA_PTR, cached.tensors),
        *map(type, methods),
        *(map(vars, methods) if scalar else _reprs(methods)),
    ]


def _reprs(methods: list[Any]) -> list[dict[str, Any]]:
    """The attributes of each method, those that are not plain scalars by their ``repr`` (seen changed in place)."""
    return [{k: v if type(v) in _SCALARS else repr(v) for k, v in vars(m).items()} for m in methods]


def _tensors(modules: list[torch.nn.Module]) -> list[torch.Tensor]:
    """The parameters and buffers of ``modules``, their own (not their children's)."""
    return list(filter(_is_tensor, _chain(map(dict.values, [*map(_PARAMETERS, modules), *map(_BUFFERS, modules)]))))


def _call(ref: weakref.ref[Any]) -> Any:
    """The object of a weak reference (None once it is gone)."""
    return ref()


_chain = itertools.chain.from_iterable
_DICTS = operator.attrgetter("_modules", "_parameters", "_buffers")
_PARAMETERS = operator.attrgetter("_parameters")
_BUFFERS = operator.attrgetter("_buffers")
_VERSION = operator.attrgetter("_version")
_DATA_PTR = torch.Tensor.data_ptr
_is_tensor = functools.partial(operator.is_not, None)


class PlainDraws:
    """The networks of a lazy :class:`~bayesdrop.posterior.PosteriorSampler` run one after another through the plain
    module of the test-time network, each with its own effective weights swapped in:
    the outputs of the sampler's passes, to float round-off, without Pyro's traces of the guide and the model.

    Network ``i`` draws its sites in the guide's order from its own stream (``sampler.states[i]``), as
    :class:`~bayesdrop.handlers.NetworkStreams` draws them in the sampler's passes: the same networks.  With
    ``keep``, each network's weights are drawn when it first runs and kept for later batches (S copies of the
    weights, as the sampler's traces hold); without, they are dropped once it has run (a prediction in one pass:
    the memory of one network's weights, and none of the page faults of S fresh copies).  Build it with
    :func:`plain_draws`, which says where it applies; :func:`bayesdrop.predict` checks once per guide that its
    outputs are the sampler's.

    Parameters
    ----------
    sampler : PosteriorSampler
        The networks: their streams, and the laws of their sites (``sampler.example_trace``).
    network : torch.nn.Module
        The plain module (:func:`~bayesdrop.compress.mean_module_parts`).
    layers : list of (BayesianLayer, str)
        Each Bayesian layer and the name in ``network`` of its plain module's ``weight`` parameter.
    keep : bool
        Keep the networks' weights between calls of :meth:`outputs` (several batches), else draw them at every call.
    """

    def __init__(
        self,
        sampler: PosteriorSampler,
        network: torch.nn.Module,
        layers: list[tuple[BayesianLayer, str]],
        keep: bool = True,
    ) -> None:
        self.sampler, self.keep = sampler, keep
        self.network = _swappable(network, [param for _, param in layers])
        # the attributes of the module of each weight, and its name
        self.slots = [(vars(module), name) for module, name in (_slot(self.network, p) for _, p in layers)]
        # per layer: its sites (name in the layer, name in the traces)
        sites = [
            [(site, layer.site(site)) for site in [*layer.weight_sites, *layer.noise_sites]] for layer, _ in layers
        ]
        used = {name for pairs in sites for _, name in pairs}
        #: the guide's sample sites in its order (the order a network's stream draws them): their names and laws,
        #: but for point estimates (Delta: nothing drawn) that no layer reads (e.g. VBD's prior variances)
        self.laws: list[tuple[str, torch.distributions.Distribution]] = [
            (name, cast(torch.distributions.Distribution, site["fn"]))
            for name, site in sampler.example_trace.nodes.items()
            if site["type"] == "sample"
            and not site_is_subsample(site)
            and not site["is_observed"]
            and (
                name in used
                or not isinstance(base_distribution(cast(torch.distributions.Distribution, site["fn"])), dist.Delta)
            )
        ]
        # per layer: the layer, its sites, and the name of its weight site where no noise site is drawn (the
        # effective weights are the drawn ones: nothing to fold), else None
        drawn = {name for name, _ in self.laws}
        self.layers = [
            (layer, pairs, None if any(n in drawn for site, n in pairs if site != "weight") else layer.site("weight"))
            for (layer, _), pairs in zip(layers, sites)
        ]
        self.drawn: dict[int, list[torch.Tensor]] = {}  # the networks' effective weights, where kept

    def weights(self, i: int) -> list[torch.Tensor]:
        """Network ``i``'s effective weights, one per layer: drawn from its stream, and kept where ``keep``."""
        if i in self.drawn:
            return self.drawn[i]
        values = self._draw(i)
        weights = [
            values[weight]
            if weight is not None
            else layer.fold({site: values[name] for site, name in pairs if name in values})["weight"]
            for layer, pairs, weight in self.layers
        ]
        if self.keep:
            self.drawn[i] = weights
        return weights

    def _draw(self, i: int) -> dict[str, torch.Tensor]:
        """Network ``i``'s draw of every site, from its stream (the current one where the device has no generator to
        swap); the caller restores the generator's state."""
        generator = self.sampler.generator
        if generator is not None:
            generator.set_state(self.sampler.states[i])
        return {name: fn.sample() for name, fn in self.laws}

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs ``(S, B, ...)`` of the S networks on a batch ``x`` ``(B, ...)``."""
        generator = self.sampler.generator
        outer = None if generator is None else generator.get_state()
        outs = []
        try:
            for i in range(self.sampler.num_samples):
                for (attributes, name), weight in zip(self.slots, self.weights(i)):
                    attributes[name] = weight  # a plain attribute of the module (_swappable)
                outs.append(self.network(x))
        finally:
            if generator is not None and outer is not None:
                generator.set_state(outer)
        out = torch.stack(outs)
        if not all_finite(out):
            raise ValueError(NOT_FINITE)
        return out


# per plain module: its copy whose weight layers take each network's weights (a weak key: kept while the module is)
_SWAPPABLE: weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module] = weakref.WeakKeyDictionary()


def _swappable(network: torch.nn.Module, params: list[str]) -> torch.nn.Module:
    """A copy of ``network`` (made once) in which the parameters ``params`` are plain tensor attributes, which
    :meth:`PlainDraws.outputs` sets to each network's weights in turn: ``torch.func.functional_call`` did the same
    in 90 microseconds a call, a tenth of a pass of a digits MLP."""
    if network not in _SWAPPABLE:
        swappable = copy.deepcopy(network)
        for param in params:
            module, name = _slot(swappable, param)
            value = getattr(module, name).detach()
            delattr(module, name)  # the Parameter goes; a tensor attribute of the same name takes its place
            setattr(module, name, value)
        _SWAPPABLE[network] = swappable
    return _SWAPPABLE[network]


def _slot(network: torch.nn.Module, param: str) -> tuple[torch.nn.Module, str]:
    """The module of ``network`` that holds parameter ``param`` (a dotted name) and its attribute name."""
    path, _, name = param.rpartition(".")
    return network.get_submodule(path), name


def plain_draws(
    model: Likelihood, guide: DropoutGuide, sampler: PosteriorSampler, keep: bool = True
) -> PlainDraws | None:
    """The networks of ``sampler`` as :class:`PlainDraws`, or None where a network's outputs are more than the plain
    module at its drawn weights: where it draws anything per example (masks, noise, the local
    reparameterisation) or shares such draws, draws a site the guide does not (from the prior), computes more than
    ``model.net`` (a likelihood with its own ``forward``), or has a layer without a plain module of one weight
    (:func:`~bayesdrop.compress.mean_module_parts`)."""
    if sampler.draws_per_example or sampler.shared_noise or sampler.model_only:
        return None
    if type(model).forward is not Likelihood.forward or not isinstance(guide, DropoutGuide):
        return None
    kept = cached_plain(model, guide)
    network = kept.network
    if network is None:
        return None
    layers = []
    for name, layer, _ in guide.pairs():
        path = kept.paths.get(name)
        if path is None:
            return None
        weight = getattr(network.get_submodule(path), "weight", None)
        if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != tuple(layer.weight_sites["weight"].shape):
            return None
        layers.append((layer, f"{path}.weight" if path else "weight"))
    return PlainDraws(sampler, network, layers, keep)
