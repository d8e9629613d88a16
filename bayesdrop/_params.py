"""Direct parameter reads for :func:`bayesdrop.fit`.

Reading a ``torch.nn.Parameter`` attribute of a :class:`~pyro.nn.PyroModule`
issues a ``pyro.param`` statement: it goes through the effect-handler stack and
Pyro's global parameter store, so that ``pyro.infer.SVI`` finds the parameters
in a trace.  :func:`bayesdrop.fit` hands the parameters to its optimiser
itself and never looks at parameter sites, so inside :func:`direct_parameters`
the modules of this package (:class:`~bayesdrop.methods.LayerGuide`,
:class:`~bayesdrop.nn.BayesianLayer`, :class:`~bayesdrop.models.Likelihood`)
return their parameters directly (about 5 us per read, a dozen reads per
training step of a three-layer network), and are called as plain
``torch.nn.Module`` s, without ``PyroModule``'s context and settings look-ups.
Outside the context (the plain-Pyro path, ``Predictive``) nothing changes.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["DirectParameters", "direct_parameters"]

_DIRECT: contextvars.ContextVar[bool] = contextvars.ContextVar("bayesdrop_direct_parameters", default=False)


@contextlib.contextmanager
def direct_parameters() -> Iterator[None]:
    """Inside this context, :class:`DirectParameters` modules read their parameters without ``pyro.param``."""
    token = _DIRECT.set(True)
    try:
        yield
    finally:
        _DIRECT.reset(token)


class DirectParameters:
    """Mixin placed before :class:`~pyro.nn.PyroModule`: direct parameter reads inside :func:`direct_parameters`.

    Buffers are read directly everywhere: ``PyroModule`` issues no statement for them, only the slower lookup.
    """

    def __getattr__(self, name: str) -> Any:
        buffer = self.__dict__["_buffers"].get(name)
        if buffer is not None:
            return buffer
        if _DIRECT.get():
            param = self.__dict__["_parameters"].get(name)
            if param is not None:
                return param
        return super().__getattr__(name)  # type: ignore[misc]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # PyroModule.__call__ enters the module's Pyro context, which PyroParam / PyroSample attributes need, and
        # looks up two global settings.  The package's modules have no such attributes; a subclass that adds one
        # keeps the context.
        d = self.__dict__
        if _DIRECT.get() and not d["_pyro_params"] and not d["_pyro_samples"]:
            return torch.nn.Module.__call__(self, *args, **kwargs)
        return super().__call__(*args, **kwargs)  # type: ignore[misc]
