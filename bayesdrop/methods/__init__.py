"""The method registry: every dropout method is a small :class:`Method` object.

A method couples the prior it implies (the *model* side: sample sites a layer
adds to the Pyro model) with the variational family it trains (the *guide*
side), says how it acts at test time (Monte Carlo or the weight-scaling rule)
and reports its learned keep probabilities.  Families live in one module each
(:mod:`~bayesdrop.methods.classic`, ...) and register here under their names:

>>> import bayesdrop as bd
>>> bd.methods.names()[:2]
['bernoulli', 'gaussian']
>>> m = bd.methods.get("bernoulli", p=0.3)

Capabilities (one typed record, :class:`Capabilities`, read with :func:`info`): ``analytic_kl``
(the KL between guide and prior is registered in closed form, so
``TraceMeanField_ELBO`` is exact in it), ``lrt`` (the local reparameterisation
trick applies), ``structured`` (it removes whole units), ``learns_rates``, and the
kinds of site (weight, noise) its randomness sits on.  A new method of the common shape is one file
(``docs/architecture.md``).  Training defaults (:class:`TrainingDefaults`, read by :func:`bayesdrop.fit`): the KL warm-up and
per-parameter learning-rate multipliers a method needs to show its paper's behaviour.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .base import INPUT_MIN_FEATURES, Capabilities, LayerGuide, Method, PointWeights, TrainingDefaults

__all__ = [
    "Method",
    "PointWeights",
    "Capabilities",
    "LayerGuide",
    "TrainingDefaults",
    "register",
    "unregister",
    "get",
    "names",
    "ROLES",
    "info",
    "non_defaults",
    "resolve",
]

Factory = Callable[..., Method]
_REGISTRY: dict[str, tuple[Factory, dict[str, Any]]] = {}


def register(name: str, **defaults: Any) -> Callable[[Factory], Factory]:
    """Decorator registering a :class:`Method` class (or a function returning one) under ``name`` with preset
    hyper-parameters.

    Stack it to register several presets of one family (e.g. the Dropout++
    variants), each with its own ``defaults`` that :func:`get` can override.

    Raises
    ------
    ValueError
        If ``name`` is taken.
    TypeError
        If the factory's signature cannot be called with ``defaults`` alone (``get(name)`` builds it so: every
        hyper-parameter needs a default, here or in the signature).
    """

    def deco(cls: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"method name {name!r} is already registered")
        inspect.signature(cls).bind_partial(**defaults)  # presets must be valid arguments
        try:
            inspect.signature(cls).bind(**defaults)
        except TypeError as err:
            raise TypeError(
                f"register({name!r}): {getattr(cls, '__name__', cls)!r} cannot be built from its presets ({err}); "
                "get(name) builds it with them alone: give every hyper-parameter a default"
            ) from None
        _REGISTRY[name] = (cls, dict(defaults))
        return cls

    return deco


def unregister(name: str) -> None:
    """Remove the method registered as ``name`` (e.g. to register an edited class again in a notebook)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; accepted names: {', '.join(names())}")
    del _REGISTRY[name]


ROLES = ("layer", "input", "pool", "recurrent")


def names(role: str | None = None) -> list[str]:
    """Names of the registered methods, in registration order.

    Parameters
    ----------
    role : {"layer", "input", "pool", "recurrent"}, optional
        Only the methods a network takes there (:attr:`Capabilities.role`): ``"layer"``, on every weight layer
        (``bd.models.mlp(..., method=...)``); ``"input"``, on its inputs (``input_method=``: the layer methods and
        the augmentations of the inputs, such as ``cutout``); ``"pool"``, in its pooling layers
        (``bd.nn.MaxPool2d(..., method=...)``, ``pool_method=``); ``"recurrent"``, in its recurrent layers only
        (``bd.nn.LSTM(..., method=...)``: inside the recurrence).  ``None``: every method.
    """
    if role is None:
        return list(_REGISTRY)
    if role not in ROLES:
        raise ValueError(f"`role` must be one of {ROLES} or None, got {role!r}")
    accepted = {"layer": {"layer"}, "input": {"layer", "input"}, "pool": {"pool"}, "recurrent": {"recurrent"}}[role]
    return [n for n in _REGISTRY if get(n).capabilities.role in accepted]


def get(name: str, **hyper: Any) -> Method:
    """Build the method registered as ``name``; ``hyper`` overrides its presets.

    Raises
    ------
    ValueError
        If ``name`` is not registered (the message lists the accepted names) or
        a hyper-parameter is out of range.
    TypeError
        If ``name`` is not a str, or ``hyper`` names an argument the method does not take.
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a method's registered name (a str), got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; accepted names: {', '.join(names())}")
    cls, defaults = _REGISTRY[name]
    params = inspect.signature(cls).parameters
    unknown = sorted(set(hyper) - set(params))
    if unknown:
        raise TypeError(f"method {name!r} got unknown hyper-parameter(s) {unknown}; accepted: {sorted(params)}")
    method = cls(**{**defaults, **hyper})
    method.name = name
    return method


def non_defaults(method: Method) -> dict[str, tuple[Any, Any]]:
    """The hyper-parameters of ``method`` that differ from the defaults it was built from, as ``{name: (value,
    default)}``: the registered preset of its name (``get(method.name)``) or, for a network's first layer, that
    preset's :meth:`~Method.input_layer` rule (with many inputs or few), whichever is nearest; for a method not
    registered, its constructor's defaults.  Scalar hyper-parameters only; ``{}`` when they cannot be read back
    (:meth:`Method.hyper`)."""
    try:
        hyper = method.hyper()
    except TypeError:
        return {}
    refs = []
    if method.name in _REGISTRY:
        preset = get(method.name)
        candidates = (preset, preset.input_layer(INPUT_MIN_FEATURES), preset.input_layer(1))
        refs = [m.hyper() for m in candidates if type(m) is type(method)]
    if not refs:
        params = inspect.signature(type(method)).parameters.values()
        refs = [{p.name: p.default for p in params if p.default is not inspect.Parameter.empty}]
    scalars = {k: v for k, v in hyper.items() if isinstance(v, (bool, int, float, str))}
    return min(({k: (v, ref[k]) for k, v in scalars.items() if k in ref and ref[k] != v} for ref in refs), key=len)


def info(name: str) -> dict[str, Any]:
    """Capabilities (the record and its fields), reference and hyper-parameters of the method registered as
    ``name``."""
    m = get(name)
    c = m.capabilities
    return {
        "name": name,
        "reference": m.reference,
        "capabilities": c,
        "analytic_kl": c.analytic_kl,
        "lrt": c.lrt,
        "structured": c.structured,
        "learns_rates": c.learns_rates,
        "role": c.role,
        "conv": c.role != "recurrent",  # in a convolutional network (a pool method in its pooling layers)
        "stochastic": m.stochastic,
        "hyper": m.hyper(),
    }


def resolve(method: str | Method, **hyper: Any) -> Method:
    """A :class:`Method` from a registered name or an existing instance."""
    if isinstance(method, Method):
        if hyper:
            raise TypeError("hyper-parameters can only be given with a method name, not an instance")
        return method
    if isinstance(method, str):
        return get(method, **hyper)
    raise TypeError(f"`method` must be a registered name or a Method, got {type(method).__name__}")


# Families register themselves on import (keep this at the bottom).
# Registration order is the order of bd.methods.names() (tables, `compare`): the first families, then the later ones.
from . import classic, gaussian, generalized  # noqa: E402,F401,I001
from . import dropconnect, concrete, standout, fast_dropout  # noqa: E402,F401,I001
from . import pooling, cutout  # noqa: E402,F401,I001
from . import recurrent, sbp  # noqa: E402,F401,I001
