r"""The compiled training loss of :func:`~bayesdrop.fit`: Pyro's traces run once per minibatch shape, then replayed
as one TorchScript graph.

For users who train small networks, where a step is a few milliseconds of arithmetic: each step of
:func:`~bayesdrop.fit` runs the guide and the model under Pyro's handlers, builds their traces and the
distributions of every site, and scores them (:class:`~bayesdrop.infer.MeanFieldELBO`), about a millisecond of
Python per step whatever the width.  :class:`CompiledLoss` records the tensor operations of that loss once, with
``torch.jit.trace`` (the mechanism of Pyro's ``JitTrace_ELBO``), with the parameters, the minibatch and the KL weight
:math:`\beta` as the graph's inputs, and runs the recorded graph afterwards: the same operations, the same random
draws from the same generator, the same value and gradients, without the Python.

A recorded graph holds what the Python decided while it was recorded: the shapes (one graph per minibatch shape),
the modules' and methods' scalar attributes (a rate, a flag), and anything a model computes from the values of
tensors in Python (``if x.sum() > 0``, ``int(draw)``), which would be frozen at the recorded value.  So before a
graph is used, it is checked: the eager loss and the graph are evaluated from the same random state, and they must
give the same loss, network output, log-likelihood and gradients (to float rounding); a random draw that nothing
uses, which the graph drops (and every later draw moves), fails it too.  A model whose graph differs is trained
eagerly.  :meth:`CompiledLoss.refresh`, called by ``fit`` before each epoch, records the graphs again when a
scalar attribute or the module tree changed (a callback lowered a rate).  Losses other than bd's own
:class:`MeanFieldELBO` (one particle), networks whose output is neither a tensor nor
:class:`~bayesdrop.moments.Moments` (fast dropout's, whose mean the graph returns), modules
with forward hooks and modules that update buffers in training (batch normalisation's running statistics) are
trained eagerly too.  The graph runs in TorchScript's plain interpreter (``torch.jit.optimized_execution(False)``),
so its backward is autograd's, as eagerly.

Example
-------
>>> loss = CompiledLoss(MeanFieldELBO(max_plate_nesting=1), model, guide, params)
>>> value, output, log_lik = loss(x, y, torch.tensor(1.0))  # the first call of a shape records and checks
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ..handlers import KLScale
from ..moments import Moments
from .elbo import MeanFieldELBO

__all__ = ["CompiledLoss", "CompileError", "MAX_SHAPES", "MAX_RERECORDS", "python_state", "unsupported"]

MAX_SHAPES = 8  #: minibatch shapes recorded per run at most; a loader of more distinct shapes trains the rest eagerly
MAX_RERECORDS = 3  #: times the graphs are recorded again after a change of the modules' Python state, at most


class CompileError(RuntimeError):
    """The loss cannot be recorded as a graph, or the recorded graph does not compute the eager loss."""


def unsupported(elbo: Any, *modules: torch.nn.Module) -> str | None:
    """Why the loss of ``modules`` (model and guide) under ``elbo`` cannot be compiled, or ``None`` if it may be."""
    if getattr(torch.jit, "trace", None) is None:
        return "this torch has no torch.jit.trace"
    if type(elbo) is not MeanFieldELBO or elbo.num_particles != 1:
        return f"the loss is {type(elbo).__name__} (compiled: bd's MeanFieldELBO with one particle)"
    for name, m in [named for module in modules for named in module.named_modules()]:
        if getattr(m, "track_running_stats", False) and getattr(m, "running_mean", None) is not None:
            return f"module {name!r} ({type(m).__name__}) updates its running statistics in training"
        if m._forward_hooks or m._forward_pre_hooks:
            return f"module {name!r} ({type(m).__name__}) has forward hooks, Python that a graph would not run"
    return None


_SCALARS = (bool, int, float, str, type(None))


def python_state(*modules: torch.nn.Module) -> tuple:
    """What a recorded graph freezes of ``modules`` besides their tensors: the module trees, each module's scalar
    attributes (its training mode, a flag a callback sets) and forward hooks, and the scalar attributes of each
    layer's method (a rate, a temperature)."""
    key = []
    for m in {id(m): m for module in modules for m in module.modules()}.values():
        method = getattr(m, "method", None)
        key.append(
            (
                id(m),
                tuple((k, v) for k, v in vars(m).items() if isinstance(v, _SCALARS)),
                tuple(map(id, m._modules.values())),
                len(m._forward_hooks) + len(m._forward_pre_hooks),
                tuple((k, v) for k, v in vars(method).items() if isinstance(v, _SCALARS)) if method is not None else (),
            )
        )
    return tuple(key)


class CompiledLoss:
    """``elbo.differentiable_loss(model, guide, x, y)`` under ``KLScale(beta)``, recorded once per minibatch shape.

    Parameters
    ----------
    elbo : MeanFieldELBO
        The loss; its :attr:`~MeanFieldELBO.observed` log-likelihood is returned by each call.
    model, guide : callable
        The model (``model(x, y)`` returns the network output, a tensor) and the guide, as ``fit`` runs them (the
        guide possibly wrapped in the local reparameterisation handler).
    params : list of torch.Tensor
        Every trainable parameter the loss reads: the graph's inputs.  A parameter read that is not among them is
        a :class:`CompileError` when recording.
    modules : tuple of torch.nn.Module
        The modules whose Python state the graphs freeze (:func:`python_state`; ``fit`` passes model and guide),
        for :meth:`refresh`.

    Calling it returns ``(loss, output, log_lik)``: the loss (0-d), the network output of shape ``(B, ...)`` and
    the unscaled log-likelihood of the minibatch (0-d, detached), or raises :class:`CompileError` on the first call
    of a shape whose graph cannot be recorded or differs from the eager loss.
    """

    def __init__(
        self,
        elbo: MeanFieldELBO,
        model: Callable[..., Any],
        guide: Callable[..., Any],
        params: list,
        modules: tuple[torch.nn.Module, ...] = (),
    ):
        self.elbo, self.model, self.guide = elbo, model, guide
        self.params = list(params)
        self.modules = modules
        self.graphs: dict[tuple, Any] = {}
        self.state = python_state(*modules)
        self.rerecorded = 0

    def refresh(self) -> None:
        """Drop the graphs if the Python state of :attr:`modules` changed since they were recorded
        (:func:`python_state`): the next call of each shape records it again, or raises :class:`CompileError` if
        the state changed :data:`MAX_RERECORDS` times or a module gained forward hooks."""
        state = python_state(*self.modules)
        if state == self.state:
            return
        self.graphs.clear()
        self.state, self.rerecorded = state, self.rerecorded + 1
        reason = unsupported(self.elbo, *self.modules)
        if reason is not None:
            raise CompileError(reason)
        if self.rerecorded > MAX_RERECORDS:
            raise CompileError(f"the modules' Python state changed more than {MAX_RERECORDS} times")

    def eager(self, x: torch.Tensor, y: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """The loss, output and log-likelihood computed by Pyro's traces, as the recorded graph computes them."""
        captured: dict[str, Any] = {}

        def model(*args: Any) -> Any:
            captured["out"] = out = self.model(*args)
            return out

        with KLScale(beta):
            loss = self.elbo.differentiable_loss(model, self.guide, x, y)
        obs = self.elbo.observed.get("obs")
        out = captured["out"]
        if isinstance(out, Moments):  # fast dropout: the graph gives the mean, what fit's metrics read
            out = out.mean
        if not torch.is_tensor(out) or obs is None:
            raise CompileError("the network output is not a tensor or the model observes no 'obs' site")
        return loss, out, obs

    def __call__(self, x: torch.Tensor, y: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        graph = self.record(x, y, beta)
        with torch.jit.optimized_execution(False):
            return graph(*self.params, x, y, beta)

    def record(self, x: torch.Tensor, y: torch.Tensor, beta: torch.Tensor) -> Any:
        """The graph of the minibatch shape of ``x`` and ``y``, recorded and checked on them if it is new; the
        random stream is left as it was."""
        key = (x.shape, x.dtype, y.shape, y.dtype, x.device)
        graph = self.graphs.get(key)
        if graph is None:
            if len(self.graphs) >= MAX_SHAPES:
                raise CompileError(f"more than {MAX_SHAPES} minibatch shapes")
            graph = self.graphs[key] = self._record(x, y, beta)
        return graph

    def _record(self, x: torch.Tensor, y: torch.Tensor, beta: torch.Tensor) -> Any:
        n = len(self.params)

        def loss(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return self.eager(*inputs[n:])

        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # recording and checking leave the training's stream as it was
            with torch.no_grad():  # the guide records the draw shapes of a new input shape, outside the graph
                self.eager(x, y, beta)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes read in Python: one graph each
                    warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace's deprecation notice
                    graph = torch.jit.trace(loss, (*self.params, x, y, beta), check_trace=False)
            except CompileError:
                raise
            except Exception as err:  # noqa: BLE001 - any failure to record means: train eagerly
                raise CompileError(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
            state = [torch.get_rng_state(), *(torch.cuda.get_rng_state(d) for d in devices)]
            want = self.eager(x, y, beta)
            want = (*want, *self._gradients(want[0]))
            torch.set_rng_state(state[0])
            for d, s in zip(devices, state[1:]):
                torch.cuda.set_rng_state(s, d)
            try:
                with torch.jit.optimized_execution(False):
                    got = graph(*self.params, x, y, beta)
                got = (*got, *self._gradients(got[0]))
            except RuntimeError as err:  # the interpreter cannot run what was recorded
                raise CompileError(f"the recorded graph fails: {str(err).splitlines()[-1]}") from err
        _check_same(want, got)
        return graph

    def _gradients(self, loss: torch.Tensor) -> list[torch.Tensor]:
        """The gradient of ``loss`` for every parameter (zeros for one it does not reach)."""
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads)]


def _check_same(want: tuple[torch.Tensor, ...], got: tuple[torch.Tensor, ...]) -> None:
    """The recorded graph's loss, output, log-likelihood and gradients against the eager ones, from the same random
    state.

    Tolerance: float rounding of sums over the minibatch and the parameters (the graph may sum in another order),
    relative ``sqrt(eps)`` of the dtype: a decision frozen at recording (a mask, a branch) changes them by far more.
    """
    names = ["loss", "output", "log-likelihood"] + [f"gradient {i}" for i in range(len(want) - 3)]
    for name, w, g in zip(names, want, got):
        if w.shape != g.shape:
            raise CompileError(f"the recorded {name} has shape {tuple(g.shape)}, the eager one {tuple(w.shape)}")
        tol = math.sqrt(torch.finfo(w.dtype).eps) if w.is_floating_point() else 0.0
        w, g = w.detach(), g.detach()
        scale = w.abs().nan_to_num(0.0, 0.0, 0.0).max().item() if w.numel() else 0.0
        if not torch.allclose(g, w, rtol=tol, atol=tol * max(scale, 1.0), equal_nan=True):
            raise CompileError(
                f"the recorded {name} differs from the eager one from the same random state (the model reads a "
                "tensor's value in Python, which a recorded graph freezes)"
            )
