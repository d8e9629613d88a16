r"""Training by stochastic variational inference: :func:`fit`.

For users who train a likelihood and its :class:`~bayesdrop.DropoutGuide`: :func:`fit` maximises the ELBO

.. math::
    \mathcal L = \frac{N}{B} \sum_{n \in \text{batch}} \log p(y_n \mid x_n, \theta)
                 - \beta\, \mathrm{KL}\big(q(\theta) \,\|\, p(\theta)\big)

with Adam on the parameters of model and guide (``elbo.differentiable_loss``, so Pyro's global parameter store is
not involved), the local reparameterisation trick for methods that support it, and minibatches drawn on the
training device.  What happens once per epoch (the warm-up of :math:`\beta`, the learning-rate decay, held-out
evaluation, collapse detection, the history, the progress bar, checkpoints) is a list of
:mod:`~bayesdrop.infer.callbacks`, to which users add their own.

Pyro's validation follows Pyro's global setting (``pyro.enable_validation``, on by default) in the first epoch,
which checks every minibatch, and is off afterwards, unless ``fit(validate=...)`` sets it for every step; on small
networks it costs a third of a step and more.  Model and guide are unchanged, so ``pyro.infer.SVI`` trains the
same pair.

Example
-------
>>> result = bd.fit(model, guide, data.train, epochs=50, test=data.test)
>>> result.history["test_acc"][-1]
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, cast

import pyro
import torch

from ..checks import integer
from ..checks import seed as check_seed
from ..data import as_tensors
from ..fileio import DeferredSignals, check_path
from ..guides import DropoutGuide
from ..handlers import KLScale, LocalReparameterization, MomentMatching, eval_mode
from ..likelihoods import Classifier, Likelihood
from ..methods import Method, non_defaults
from ..moments import Moments
from ..nn import bayesian_layers
from ..posterior import forked
from .callbacks import (
    Callback,
    Checkpoint,
    CollapseDetection,
    EpochFunction,
    Evaluation,
    History,
    KLWarmup,
    LinearLRDecay,
    ProgressBar,
    TrainState,
)
from .checkpoint import check_checkpoint_path, check_storable, read_checkpoint, rng_state, set_rng_state
from .compiled import CompiledLoss, CompileError, unsupported
from .elbo import MeanFieldELBO
from .resume import (
    FitInterrupted,
    _check_resumed_config,
    _check_resumed_structure,
    _loader_generators,
    _restore,
)

__all__ = [
    "fit",
    "FitResult",
    "DEFAULT_LR",
    "DEFAULT_BATCH_SIZE",
    "resolve_device",
    "resolve_kl_warmup",
    "resolve_lr_warmup",
    "input_fan_in",
    "warmup_factor",
    "steps_per_epoch",
    "LR_WARMUP_FRACTION",
    "LR_WARMUP_FAN_IN",
    "check_schedule",
    "param_groups",
]


DEFAULT_LR = 1e-2  # fit's Adam learning rate, decayed linearly to 0 by default; measurements in docs/defaults.md
LR_WARMUP_FRACTION = 0.1  #: fit(lr_warmup="auto"): the learning rate rises over this fraction of the run's steps
LR_WARMUP_FAN_IN = 512  #: fit(lr_warmup="auto") warms up networks whose first weight layer sums this many inputs


def check_schedule(
    *, epochs: int, lr: float, lr_decay: str | None, kl_warmup: int | str, lr_warmup: int | str = "auto"
) -> None:
    """Refuse a training schedule that :func:`fit` and :class:`~bayesdrop.lightning.BayesdropModule` cannot run,
    naming the argument: ``epochs`` a positive int, ``lr`` a finite number > 0 (a ``TypeError`` for a non-number,
    ``bool`` included), ``lr_decay`` ``None`` or ``"linear"``, ``kl_warmup`` ``"auto"`` or a non-negative int,
    ``lr_warmup`` ``"auto"`` or a non-negative int."""
    integer(epochs, "epochs")
    _check_warmup("kl_warmup", kl_warmup, "epochs")
    _check_warmup("lr_warmup", lr_warmup, "optimiser steps")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise TypeError(f"`lr` must be a number, got {type(lr).__name__}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"`lr` must be a finite number > 0, got {lr!r}")
    if lr_decay not in (None, "linear"):
        raise ValueError(f"`lr_decay` must be None or 'linear', got {lr_decay!r}")


def resolve_kl_warmup(model: torch.nn.Module, epochs: int, kl_warmup: int | str = "auto") -> int:
    """The KL warm-up in epochs: ``kl_warmup`` itself, or for ``"auto"`` the largest fraction of ``epochs`` that
    the methods of ``model``'s layers declare (:attr:`~bayesdrop.methods.TrainingDefaults.kl_warmup`), rounded."""
    if kl_warmup != "auto":
        return int(kl_warmup)
    fraction = max((layer.method.fit_defaults.kl_warmup for _, layer in bayesian_layers(model)), default=0.0)
    return round(fraction * epochs)


def _check_warmup(name: str, value: int | str, unit: str) -> None:
    """A warm-up's length: ``"auto"`` or a non-negative int (in ``unit``; NumPy's too), else a ``ValueError`` naming
    ``name``."""
    if isinstance(value, str) and value == "auto":
        return
    try:
        integer(value, name, low=0)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be 'auto' or a non-negative int ({unit}), got {value!r}") from None


def input_fan_in(model: torch.nn.Module) -> int:
    """The inputs that one unit of ``model``'s first weight layer sums: the product of its first weight site's shape
    but the first (``in_features``, ``in_channels`` times the kernel, an LSTM's input size); 0 without a layer."""
    for _, layer in bayesian_layers(model):
        for site in layer.weight_sites.values():
            return math.prod(site.shape[1:])
    return 0


def resolve_lr_warmup(model: torch.nn.Module, total_steps: int, lr_warmup: int | str = "auto") -> int:
    """The learning-rate warm-up in optimiser steps: ``lr_warmup`` itself, or for ``"auto"`` a tenth
    (:data:`LR_WARMUP_FRACTION`) of the run's ``total_steps``, rounded, where ``model``'s first weight layer sums at
    least :data:`LR_WARMUP_FAN_IN` inputs (:func:`input_fan_in`: MNIST's 784 pixels), and none below."""
    _check_warmup("lr_warmup", lr_warmup, "optimiser steps")
    if lr_warmup != "auto":
        return int(lr_warmup)
    return round(LR_WARMUP_FRACTION * total_steps) if input_fan_in(model) >= LR_WARMUP_FAN_IN else 0


def warmup_factor(step: int, warmup: int) -> float:
    r"""The learning rate's factor at optimiser step ``step`` (from 0) of a linear warm-up over ``warmup`` steps:
    :math:`\min(1, (t + 1) / W)`, so the first step takes :math:`\eta / W` and step :math:`W - 1` on take
    :math:`\eta`; 1 throughout when ``warmup`` is 0."""
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def steps_per_epoch(data: Any, num: int, batch_size: int) -> int:
    """Optimiser steps in one epoch of :func:`fit` over ``data``: ``ceil(num / batch_size)`` for tensors, the
    loader's length for a sized DataLoader, and for a stream without a length ``ceil(num / b)`` with the loader's
    batch size ``b`` (``num``: the model's ``num_data``)."""
    if not isinstance(data, torch.utils.data.DataLoader):
        return math.ceil(num / batch_size)
    try:
        return len(data)
    except TypeError:  # an IterableDataset without __len__
        return math.ceil(num / (data.batch_size or 1))


def param_groups(model: torch.nn.Module, guide: DropoutGuide, lr: float) -> list[dict[str, Any]]:
    """Adam parameter groups of ``model`` and ``guide``: one at ``lr``, and one per learning-rate multiplier that a
    layer's method declares for its variational parameters (:attr:`~bayesdrop.methods.TrainingDefaults.lr_scale`)
    times the layer's own (:attr:`~bayesdrop.nn.BayesianLayer.lr_scale`, 1 unless a layer kind or a user sets it).

    Only trainable parameters, each once.  Use it to train with another optimiser:
    ``torch.optim.SGD(bd.infer.param_groups(model, guide, 0.1), lr=0.1)``.
    """
    scaled: dict[int, float] = {}
    for _, layer, params in guide.pairs():
        scales = layer.method.fit_defaults.lr_scale
        kind = float(getattr(layer, "lr_scale", 1.0))  # the layer's own multiplier
        for p in layer.parameters(recurse=False):
            scaled[id(p)] = kind
        for name, p in params.named_parameters():
            key = next((k for k in scales if name == k or name.endswith(f"_{k}")), None)
            scaled[id(p)] = kind * (scales[key] if key is not None else 1.0)
    groups: dict[float, list[torch.nn.Parameter]] = {}
    seen: set[int] = set()
    for p in [*model.parameters(), *guide.parameters()]:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            groups.setdefault(scaled.get(id(p), 1.0), []).append(p)
    return [{"params": ps, "lr": lr * scale} for scale, ps in sorted(groups.items())]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"`device` must be 'auto' or a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("`device` is 'cuda' but CUDA is not available")
    return dev


def _loader_or_tensors(data: Any, name: str) -> Any:
    if isinstance(data, torch.utils.data.DataLoader):
        return data
    return as_tensors(data, name=name)


DEFAULT_BATCH_SIZE = 128  #: minibatch size of fit on tensors
LABEL_CHECK_EVERY = 100  #: DataLoader batches: the targets of the first batch and of every 100th are checked


def _pair(batch: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A DataLoader batch as ``(x, y)``: a pair (tuple or list) or a dict with keys ``"x"`` and ``"y"``; integer
    targets as int64."""
    if isinstance(batch, dict) and "x" in batch and "y" in batch:
        x, y = batch["x"], batch["y"]
    elif isinstance(batch, (tuple, list)) and len(batch) == 2:
        x, y = batch
    else:
        got = f"a dict with keys {sorted(map(str, batch))}" if isinstance(batch, dict) else type(batch).__name__
        raise TypeError(
            f"`{name}`: a DataLoader must yield (x, y) pairs or dicts with keys 'x' and 'y', got {got}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        )
    if not torch.is_tensor(x) or not torch.is_tensor(y):
        raise TypeError(f"`{name}`: a batch's x and y must be tensors, got {type(x).__name__}, {type(y).__name__}")
    if not y.is_floating_point() and y.dtype != torch.int64:
        y = y.long()
    return x, y


def _check_batch(model: Likelihood, x: torch.Tensor, y: torch.Tensor | None, name: str) -> None:
    """The targets ``y`` of a batch scored by ``model`` (dtype, shape, label range), and floating inputs ``x`` in the
    dtype of the model's parameters, else a ``TypeError`` / ``ValueError`` naming ``name``."""
    _check_targets(model, y, name)
    if isinstance(model, Classifier) and y is not None and y.dim() >= 2 and y.shape[-1] == 1:
        # Pyro would broadcast labels (N, 1) against the batch (N,) into (N, N) and train on every pair
        raise ValueError(
            f"`{name}.y` has shape {tuple(y.shape)}: a classifier takes one label per example, shape (N,); pass "
            "y.squeeze(-1)"
        )
    model.check_inputs(x, name)


def _warn_longer_than_run(name: str, warmup: int, run: int, unit: str, effect: str) -> None:
    """A ``UserWarning`` (attributed to ``fit``'s caller) where the warm-up ``name`` of ``warmup`` ``unit`` is
    longer than the run's ``run``: ``effect``, formatted with the factor the run ends at, ``run / warmup``."""
    if warmup > run:
        warnings.warn(
            f"`{name}` is {warmup} {unit}, longer than the run's {run}: {effect.format(run / warmup)}",
            UserWarning,
            stacklevel=3,
        )


def _probe_test(model: Likelihood, guide: DropoutGuide, test: Any, device: torch.device) -> None:
    """Run ``model`` (at draws of ``guide``, in eval mode, on a fork of the generators, without gradients) on the
    first two examples of ``test`` (its tensors, or a DataLoader's first batch, checked as a training batch is),
    so that test data the network cannot read (the wrong width, an extra axis) is refused before the first epoch,
    not after it; its ``ValueError`` or ``TypeError`` is raised again naming ``test``."""
    if isinstance(test, torch.utils.data.DataLoader):
        with torch.random.fork_rng(devices=[]):  # a shuffling loader draws its order: not the training's stream
            batch = next(iter(test), None)
        if batch is None:
            raise ValueError("`test`: the DataLoader yields no batch")
        x, y = _pair(batch, "test")
        _check_batch(model, x, y, "test")
    else:
        x, y = test
    x, y = x[:2].to(device), y[:2].to(device)
    try:
        with torch.no_grad(), forked(device), eval_mode(model), eval_mode(guide):
            pyro.poutine.replay(model, trace=pyro.poutine.trace(guide).get_trace(x, y))(x, y)
    except (ValueError, TypeError) as err:
        # Pyro's trace raises the error again with the trace's shapes appended: the network's own message
        cause = err.__cause__ if type(err.__cause__) is type(err) else err
        if type(cause) not in (ValueError, TypeError):
            raise
        raise type(cause)(f"`test`: its first examples do not run through the model: {cause}") from err


def _batches(
    data: Any,
    batch_size: int,
    device: torch.device,
    gen: torch.Generator,
    model: Likelihood | None = None,
    name: str = "data",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, torch.utils.data.DataLoader):
        for i, batch in enumerate(data):
            xb, yb = _pair(batch, name)
            if model is not None and i % LABEL_CHECK_EVERY == 0:
                _check_batch(model, xb, yb, name)
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        return
    x, y = data
    perm = torch.randperm(len(x), generator=gen).to(device)
    for i in range(0, len(x), batch_size):
        idx = perm[i : i + batch_size]
        yield x[idx], y[idx]


@dataclass
class FitResult:
    r"""What :func:`fit` returns.

    Attributes
    ----------
    history : dict of list
        Per epoch: ``elbo`` (mean loss per data point, i.e. -ELBO / N), ``nll``
        (mean negative log-likelihood per training point), ``kl`` (KL term of
        the ELBO, the estimate ``loss - N * nll``; for ``vbd`` it includes the
        constant :math:`n_\gamma \log(b - a)` of the ``gamma`` sites, see
        ``VariationalBayesianDropout.kl_constant``), ``beta``, ``lr`` (the rate of the epoch's last step),
        ``train_<metric>`` for the likelihood's :meth:`~bayesdrop.Likelihood.train_metrics` (``train_acc`` for a
        classifier), ``seconds`` and, when ``test`` data were given, ``test_<metric>`` for its
        :meth:`~bayesdrop.Likelihood.metrics` (``test_acc`` and ``test_nll`` for a classifier, ``test_rmse`` and
        ``test_nll`` for a regressor).
    device : torch.device
    warnings : list of str
        The :class:`CollapseWarning` messages of this run (empty for a healthy one).
    compiled : bool
        Whether steps ran through the compiled loss (``fit``'s ``jit``).
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")
    warnings: list[str] = field(default_factory=list)
    compiled: bool = False

    @property
    def seconds_per_epoch(self) -> float:
        """The mean of ``history["seconds"]``: the wall-clock seconds of an epoch's steps, the callbacks' time
        (held-out evaluation included) left out; NaN when the history holds no epoch."""
        s = self.history.get("seconds", [])
        return sum(s) / len(s) if s else float("nan")

    def to_json(self) -> str:
        """The result as a JSON object (indented by one space): ``history``, ``device`` as a string (``"cpu"``,
        ``"cuda"``), ``warnings`` and ``compiled``."""
        return json.dumps(
            {"history": self.history, "device": str(self.device), "warnings": self.warnings, "compiled": self.compiled},
            indent=1,
        )


def fit(
    model: Likelihood,
    guide: DropoutGuide,
    data: Any,
    *,
    epochs: int = 10,
    batch_size: int | None = None,
    lr: float = DEFAULT_LR,
    optimizer: Callable[[list[dict[str, Any]]], torch.optim.Optimizer] | None = None,
    loss: pyro.infer.ELBO | None = None,
    kl_warmup: int | str = "auto",
    lr_decay: str | None = "linear",
    lr_warmup: int | str = "auto",
    lrt: bool = True,
    device: str | torch.device = "auto",
    seed: int | None = 0,
    test: Any = None,
    test_samples: int = 20,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: str | os.PathLike | None = None,
    run_config: dict[str, Any] | None = None,
    validate: bool | None = None,
    jit: bool | None = None,
    callback: Callable[[int, dict[str, list[float]]], bool | None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Train ``model`` and ``guide`` by minibatch SVI.

    Parameters
    ----------
    model, guide
        A likelihood and its :class:`DropoutGuide`; moved to ``device`` in place.
    data
        Training data: a split with ``.x``/``.y``, an ``(x, y)`` tuple, or a
        ``torch.utils.data.DataLoader`` yielding ``(x, y)`` pairs or dicts with keys ``"x"`` and ``"y"``.  Integer
        targets become int64; floating inputs must have the dtype of the model's parameters (``TypeError``
        otherwise).  A loader's targets are checked in its first batch and every 100th
        (:data:`LABEL_CHECK_EVERY`).  A loader over an ``IterableDataset`` without ``__len__`` is taken to have
        ``model.num_data`` examples (the size you state when building the likelihood).
    epochs, batch_size, lr
        Passes over the data, minibatch size (default 128; a DataLoader sets its own: leave it None), Adam learning
        rate (default 1e-2, decayed linearly: see
        ``lr_decay``).  Parameters whose method declares a multiplier
        (:attr:`~bayesdrop.methods.TrainingDefaults.lr_scale`) train at ``lr`` times it (:func:`param_groups`).
        The default was chosen on digits and MNIST-1D; with the warm-up (``lr_warmup``) it also serves real MNIST's
        784-1024-1024-10 MLP (``docs/defaults.md``, "The learning rate and its schedule").
    optimizer
        A function of the parameter groups (:func:`param_groups`, each with its ``"lr"``) returning a torch
        optimiser, e.g. ``lambda groups: torch.optim.SGD(groups, momentum=0.9)``; default Adam.  ``lr_decay``
        scales each group's learning rate.
    loss
        A Pyro ELBO; default :class:`MeanFieldELBO` (``TraceMeanField_ELBO``:
        analytic KL where the method registers one, evaluated lazily).
    kl_warmup
        Epochs over which the KL weight grows linearly from 0 to 1 (0: none).  ``"auto"`` (default): the
        fraction of ``epochs`` that the model's methods declare as their training default
        (:class:`~bayesdrop.methods.TrainingDefaults`; :func:`resolve_kl_warmup`): all of them for the Gaussian
        family (``vd``, ``sparse-vd``, ``vbd``; the weight reaches 1 in the last epoch), none for fixed-rate and
        Generalized Dropout.
    lr_decay
        ``"linear"`` (default) decays the learning rate linearly over the epochs, ``lr * (1 - e / epochs)`` in
        epoch ``e = 0, 1, ...``, as Molchanov et al. (2017) trained sparse VD; ``None`` keeps ``lr``.  With a
        fixed budget of epochs the linear decay trained every registered method to a better test error than a
        constant rate on digits and MNIST-1D (``docs/defaults.md``).
    lr_warmup
        Optimiser steps ``W`` over which the learning rate rises linearly: ``lr * min(1, (t + 1) / W)`` at step
        ``t = 0, 1, ...`` (times the decay); 0: none.  ``"auto"`` (default): a tenth of the run's steps
        (:data:`LR_WARMUP_FRACTION`, as Devlin et al. (2019) trained BERT) where the network's first weight layer
        sums at least 512 inputs (:data:`LR_WARMUP_FAN_IN`: MNIST's 784 pixels), none below (the bundled digits,
        MNIST-1D, regression).  Adam's first steps move every weight by about ``lr`` whatever its gradient, and a
        unit summing 784 inputs moves hundreds of times as far: without the warm-up ``bernoulli`` lost dropout's
        regularisation on real MNIST, and with it on few inputs short regression fits went less far
        (``docs/defaults.md``, "The learning-rate warm-up").
    lrt
        Use the local reparameterisation trick for methods that support it;
        ``False`` samples weights.  With the default ``loss`` the guide then
        skips drawing the weight matrices that the trick ignores
        (:class:`~bayesdrop.nn.LocalReparameterization` with
        ``draw_weights=False``); with another ``loss`` it draws them.
    device
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
    seed
        Seeds torch's and Pyro's generators at the start of training: the minibatch order and every draw of the
        run; ``None`` leaves them.  The network's initial weights were drawn when it was built, from the
        generators' state then: ``pyro.set_rng_seed(s)`` before building it makes the whole run repeatable (the
        command line does so with ``--seed``).
    test
        Optional held-out data, evaluated after every epoch by MC prediction: any form ``data`` takes (a split, an
        ``(x, y)`` tuple, a DataLoader), as :func:`~bayesdrop.evaluate` takes it.
    test_samples
        Networks drawn from the guide for each evaluation of ``test`` (:func:`~bayesdrop.evaluate`'s ``num_samples``,
        ``rule="mc"``, on a fork of the generators): the MC draws per test example behind the ``test_*`` metrics.
        A positive int, default 20 (checked even without ``test``).
    progress
        Show a progress bar with the ELBO and accuracy.
    checkpoint
        A file path in an existing directory: model, guide, optimiser, history and the training state
        (:func:`~bayesdrop.infer.callbacks.training_state`) are saved there after the last epoch, every
        ``checkpoint_every`` epochs, and when SIGINT or SIGTERM arrives (then :class:`FitInterrupted` is raised).
        Each write is atomic.  On a signal the step under way finishes, the epoch in progress is abandoned (the
        parameters, optimiser and generators go back to its start, so at most one epoch's work is lost) and the
        state after the last finished epoch is saved.  The handlers are installed in the main thread only, for
        the duration of ``fit``; the previous ones come back afterwards.
    checkpoint_every
        Save the checkpoint after every ``checkpoint_every``-th epoch too (a positive int; needs ``checkpoint``).
        ``None`` (default): after the last epoch and on a signal only.
    resume
        A checkpoint written by ``fit(checkpoint=...)`` to continue from: model, guide, optimiser, epoch, step,
        schedule positions, random number generators (torch, CUDA, Python, NumPy, the minibatch order), the
        callbacks' states (each callback takes the saved state of the next one of its type) and the history are
        restored, so that the resumed run ends where the uninterrupted one
        would (same final parameters, history and metrics, the ``seconds`` excepted; ``test`` metrics to float
        round-off, as ``predict`` times how it groups the networks on a CPU).  Checked before any step: it
        must be a bayesdrop checkpoint with a training state, of the same model and guide structure, written with
        the same settings (``epochs``, ``batch_size``, ``lr``, ``kl_warmup``, ``lr_decay``, ``lr_warmup``, ``lrt``,
        ``seed``, the number of data points, the loss and optimiser classes, ``test_samples``) and ``run_config``;
        else a ``ValueError`` naming ``resume``.  A checkpoint of a finished run trains no further epoch.  It may be
        the same file as ``checkpoint``.  Loaded with ``torch.load(weights_only=True)`` only.
    run_config
        A dict of plain values describing the run (``bayesdrop train`` passes its ``config.json``), stored in
        every checkpoint as ``config``; with ``resume``, the checkpoint's must be equal.
    validate
        Pyro's shape and support validation.  ``None`` (default): the first epoch of the call under Pyro's global
        setting (``pyro.enable_validation``, on unless switched off), which checks every minibatch's shapes and
        supports, and the later epochs without it (they build the same distributions around new minibatches and
        parameters; ``fit`` itself refuses non-finite losses and parameters): on the digits MLP an epoch was
        1.3-1.7x as long under validation.  ``True`` / ``False``: on / off for every step of this run.
    jit
        Run the steps without validation through the compiled loss (:class:`~bayesdrop.infer.compiled.CompiledLoss`):
        Pyro's traces of guide and model recorded once per minibatch shape with ``torch.jit.trace`` and replayed as
        one graph, the same loss, gradients and random draws without a millisecond of Python per step (on the
        digits MLP a step took 0.9-1.1x a plain PyTorch loop's, against 1.4-1.6x eagerly: ``benchmarks/results/
        speed.md``).  Each graph is checked against the eager loss from the same random state before it is used.
        ``None`` (default): compiled where the model allows it (bd's :class:`MeanFieldELBO` with one particle, a
        tensor output, no batch-norm statistics or forward hooks, a graph equal to the eager loss), else eager;
        :attr:`FitResult.compiled` says which.  ``True``: compiled, else a ``ValueError`` before training (not with
        ``validate=True``).  ``False``: eager, every step through Pyro's handlers.
    callback
        ``callback(epoch, history)`` after each epoch (``epoch`` from 0,
        ``history`` as in :class:`FitResult`); returning ``True`` stops
        training early.  Its time is not in ``history["seconds"]``.
    callbacks
        :class:`~bayesdrop.infer.callbacks.Callback` objects, run after ``fit``'s own (warm-up, learning-rate
        decay, evaluation, collapse detection, history, progress bar) and before ``callback`` and ``checkpoint``.
        A callback with state implements :meth:`~bayesdrop.infer.Callback.state_dict` for resumed runs.

    Returns
    -------
    FitResult

    Raises
    ------
    FitInterrupted
        When SIGINT or SIGTERM arrived during a run with a ``checkpoint`` (after saving it).
    """
    check_schedule(epochs=epochs, lr=lr, lr_decay=lr_decay, kl_warmup=kl_warmup, lr_warmup=lr_warmup)
    if isinstance(data, torch.utils.data.DataLoader) and batch_size is not None:
        raise ValueError("`batch_size`: the DataLoader sets the batches; leave batch_size None")
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
    if not isinstance(guide, DropoutGuide) or guide.model is not model:
        raise ValueError("`guide` must be the DropoutGuide built for `model`")
    if optimizer is not None and not callable(optimizer):
        raise TypeError(f"`optimizer` must be callable as optimizer(param_groups), got {type(optimizer).__name__}")
    if isinstance(loss, type):
        raise TypeError(f"`loss` must be a Pyro ELBO instance, got the class {loss.__name__}: pass {loss.__name__}()")
    if loss is not None and not callable(getattr(loss, "differentiable_loss", None)):
        raise TypeError(f"`loss` must be a Pyro ELBO with differentiable_loss, got {type(loss).__name__}")
    if validate is not None and not isinstance(validate, bool):
        raise TypeError(f"`validate` must be None (Pyro's setting), True or False, got {validate!r}")
    for arg, v in (("lrt", lrt), ("progress", progress)):
        if not isinstance(v, bool):
            raise TypeError(f"`{arg}` must be True or False, got {v!r}")
    if jit is not None and not isinstance(jit, bool):
        raise TypeError(f"`jit` must be None, True or False, got {jit!r}")
    if jit and validate:
        raise ValueError(
            "`jit` is True, which compiles the steps without validation, and `validate` is True, which validates every "
            "step: pass one of them"
        )
    if seed is not None:
        seed = check_seed(seed, "seed", "or None")
    test_samples = integer(test_samples, "test_samples", "MC draws per test example")
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable as callback(epoch, history), got {type(callback).__name__}")
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, (Sequence, set, frozenset, tuple)):
        raise TypeError(f"`callbacks` must be a list of bd.infer.Callback objects, got {type(callbacks).__name__}")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"`callbacks` must hold bd.infer.Callback objects, got {type(cb).__name__}")
    if checkpoint_every is not None:
        checkpoint_every = integer(checkpoint_every, "checkpoint_every", "epochs, or None")
        if checkpoint is None:
            raise ValueError("`checkpoint_every` needs `checkpoint`, the file to write")
    if checkpoint is not None:  # after the arguments' kinds: the file system last
        check_checkpoint_path(checkpoint, "checkpoint")
    if run_config is not None and not isinstance(run_config, dict):
        raise TypeError(f"`run_config` must be None or a dict, got {type(run_config).__name__}")
    check_storable(run_config, "run_config")  # a checkpoint that stores it must load again
    resumed = None
    if resume is not None:
        if not os.path.isfile(check_path(resume, "resume", "a checkpoint file")):
            raise ValueError(f"`resume` {os.fspath(resume)!r} is not an existing checkpoint file")
        try:
            resumed = read_checkpoint(resume, name="resume")
        except FileNotFoundError as err:
            raise ValueError(str(err)) from None
        if resumed["training"] is None:
            raise ValueError(
                f"`resume` {os.fspath(resume)!r} holds no training state (written by save_checkpoint without one); "
                "fit(checkpoint=...) writes checkpoints that resume"
            )
    warmup = resolve_kl_warmup(model, epochs, kl_warmup)
    _warn_longer_than_run(
        "kl_warmup", warmup, epochs, "epochs", "the KL term never gets its full weight (beta ends at {:.2f})"
    )
    schedule: list[Callback] = [KLWarmup(warmup)]
    if lr_decay == "linear":
        schedule.append(LinearLRDecay())
    if isinstance(test, torch.utils.data.DataLoader):  # evaluated batch by batch (bd.evaluate's contract)
        schedule.append(Evaluation(test, num_samples=test_samples))
    elif test is not None:
        test_t = as_tensors(test, name="test")
        _check_batch(model, test_t[0], test_t[1], "test")
        schedule.append(Evaluation(test_t, num_samples=test_samples))
    schedule += [CollapseDetection(), History(), ProgressBar(progress), *callbacks]
    if callback is not None:
        schedule.append(EpochFunction(callback))
    saver = None
    if checkpoint is not None:
        saver = Checkpoint(checkpoint, every=checkpoint_every)
        schedule.append(saver)
    dev = resolve_device(device)
    train = _loader_or_tensors(data, "data")
    if not isinstance(train, torch.utils.data.DataLoader):
        _check_batch(model, train[0], train[1], "data")
        num = len(train[0])
    elif isinstance(train.dataset, torch.utils.data.IterableDataset) and not hasattr(train.dataset, "__len__"):
        num = model.num_data  # a stream's size is the model's num_data, which the user states
    else:
        num = len(cast(Sized, train.dataset))
    if num == 0:
        raise ValueError("`data` has no examples (an empty DataLoader or split)")
    if num != model.num_data:
        raise ValueError(f"`data` has {num} points but the model was built with num_data={model.num_data}")
    total_steps = epochs * steps_per_epoch(train, num, batch_size)
    lr_warm = resolve_lr_warmup(model, total_steps, lr_warmup)
    _warn_longer_than_run(
        "lr_warmup",
        lr_warm,
        total_steps,
        "optimiser steps",
        "the learning rate never reaches `lr` (its factor ends at {:.2f})",
    )
    elbo = loss if loss is not None else MeanFieldELBO(max_plate_nesting=1)
    # bd.fit's own loss records the minibatch's log-likelihood as it scores it (a subclass, e.g. the boosting ELBO,
    # may score the data otherwise: recomputed from the output)
    own_log_lik = type(elbo) is MeanFieldELBO and elbo.num_particles == 1
    fit_config: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": float(lr),
        "kl_warmup": warmup,
        "lr_decay": lr_decay,
        "lr_warmup": lr_warm,
        "lrt": lrt,
        "seed": seed,
        "num_data": num,
        "loss": type(elbo).__name__,
        "test_samples": test_samples if test is not None else None,
    }
    if resumed is not None:
        _check_resumed_config(resumed, fit_config, run_config, os.fspath(cast(str, resume)))
    if seed is not None:
        pyro.set_rng_seed(seed)
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    if not isinstance(train, torch.utils.data.DataLoader):
        train = (train[0].to(dev), train[1].to(dev))
    model.to(dev)
    guide.to(dev)
    captured: dict[str, torch.Tensor] = {}

    def traced_model(*args: Any) -> torch.Tensor:
        captured["out"] = out = model(*args)
        return out

    # The local reparameterisation handler acts on the guide's weight sites (the model replays the tagged values),
    # so it wraps the guide alone: the model's sample statements pass one messenger fewer.  MeanFieldELBO uses
    # analytic KLs and checks it, so the unused weight draw can be skipped.
    fit_guide = LocalReparameterization(draw_weights=not isinstance(elbo, MeanFieldELBO))(guide) if lrt else guide
    if any(layer.method.capabilities.train_rule == "moment-matching" for _, layer in bayesian_layers(model)):
        fit_guide = MomentMatching(training=True)(fit_guide)  # fast dropout: its masks integrated out

    # Initialise the guide (records layer order and shapes) before collecting parameters.
    first = next(_batches(train, batch_size, dev, torch.Generator().manual_seed(0), model), None)
    if first is None:
        raise ValueError("`data`: the DataLoader yields no batch")
    x0, y0 = first
    guide(x0, y0)
    guide.check_dtypes()
    if test is not None:
        _probe_test(model, guide, test if isinstance(test, torch.utils.data.DataLoader) else test_t, dev)
    groups = param_groups(model, guide, lr)
    params = [p for group in groups for p in group["params"]]
    optim = torch.optim.Adam(groups, lr=lr) if optimizer is None else optimizer(groups)
    if not isinstance(optim, torch.optim.Optimizer):
        raise TypeError(f"`optimizer` must return a torch.optim.Optimizer, got {type(optim).__name__}")
    fit_config["optimizer"] = type(optim).__name__
    generators = [gen, *_loader_generators(train)]
    state = TrainState(model=model, guide=guide, optimizer=optim, epochs=epochs, lr=lr, kl_warmup=warmup)
    state.generators, state.schedule, state.fit_config, state.run_config = generators, schedule, fit_config, run_config
    if resumed is not None:
        _check_resumed_structure(resumed, model, guide, optim, os.fspath(cast(str, resume)))
        state.epoch = state.epochs_done = int(resumed["training"]["epoch"])
    for cb in schedule:
        cb.on_fit_start(state)
    if resumed is not None:
        _restore(resumed, state, optim, generators, dev, os.fspath(cast(str, resume)))
    start = state.epochs_done
    steps = state.step  # steps before this epoch
    names = _parameter_names(model, guide)
    settings = functools.partial(_changed_settings, model)  # read only for a message
    buffers = [b for m in (model, guide) for b in m.buffers()]
    # the minibatch shapes of tensor data: full batches and the last one's remainder (a loader's: as they come)
    loader = isinstance(train, torch.utils.data.DataLoader)
    rows = [len(x0)] if loader else [len(x0), num % batch_size]
    compiled = None
    if jit is not False and not validate:
        compiled = _compiled_loss(elbo, model, guide, fit_guide, params, x0, y0, [r for r in rows if r], jit)
    ran_compiled = False
    finished = resumed is not None and bool(resumed["training"]["complete"])
    # SIGINT and SIGTERM with a checkpoint: the first recorded for the loop to act on between steps, a second at once
    with DeferredSignals(saver is not None) as interrupts:
        for epoch in range(start, epochs if not finished else start):
            if interrupts.signum is not None:  # arrived after the last epoch's steps: its state is complete
                break
            state.epoch, state.metrics = epoch, {}
            good = _Snapshot(params, optim, buffers, generators)  # the state a divergence or a signal rolls back to
            for cb in schedule:
                cb.on_epoch_start(state)
            model.train(), guide.train()
            projected = guide.projected()  # per epoch: a callback may have changed a method
            t0 = time.perf_counter()
            # Per step: loss, batch size, log-likelihood sum, the likelihood's training metrics; kept on the device
            # and read once per epoch.
            losses: list[torch.Tensor] = []
            sizes: list[int] = []
            finite_x: list[torch.Tensor] = []  # a DataLoader's inputs, batch by batch (the tensors were checked)
            log_liks: list[torch.Tensor] = []
            sums: dict[str, list[torch.Tensor]] = {}
            counts: list[torch.Tensor] = []  # class counts per step of the first epoch
            handlers: list[contextlib.AbstractContextManager] = []
            if validate is not None:
                handlers.append(pyro.validation_enabled(validate))
            elif epoch > start:  # the first epoch checked every minibatch; the others build the same distributions
                handlers.append(pyro.validation_enabled(False))
            # the compiled loss serves the steps without validation (it was recorded and checked without it)
            unchecked = validate is False or (validate is None and epoch > start)
            graph = compiled if compiled is not None and unchecked else None
            if graph is not None:
                try:  # a callback changed what the graphs froze (a flag, a rate, a module): recorded again
                    graph.refresh()
                except CompileError as err:
                    _train_on_eagerly(err, jit)
                    graph = compiled = None
            beta = torch.tensor(state.beta, dtype=params[0].dtype, device=dev) if graph is not None else None
            if state.beta != 1.0 and graph is None:
                handlers.append(KLScale(state.beta))
            aborted = False
            base_lr = [group["lr"] for group in optim.param_groups]  # this epoch's rates, before the warm-up's factor
            warming, factor = steps < lr_warm, 1.0
            with contextlib.ExitStack() as stack:
                for h in handlers:
                    stack.enter_context(h)
                for xb, yb in _batches(train, batch_size, dev, gen, model):
                    if interrupts.signum is not None:
                        aborted = True
                        break
                    optim.zero_grad(set_to_none=True)
                    if loader and xb.is_floating_point():
                        finite_x.append(xb.isfinite().all())
                    log_lik = None
                    if graph is not None:
                        try:
                            loss_b, captured["out"], log_lik = graph(xb, yb, cast(torch.Tensor, beta))
                            ran_compiled = True
                        except CompileError as err:  # a new minibatch shape whose graph failed: eager from here
                            _train_on_eagerly(err, jit)
                            graph = compiled = None
                            if state.beta != 1.0:
                                stack.enter_context(KLScale(state.beta))
                    try:
                        # pyro.infer.ELBO declares no differentiable_loss; its Trace*_ELBO subclasses define it
                        if graph is None:
                            loss_b = elbo.differentiable_loss(traced_model, fit_guide, xb, yb)  # type: ignore[attr-defined]
                    except ValueError as err:  # Pyro's validation met a distribution with NaN or infinite parameters
                        if not _non_finite_parameter(err):
                            _explain_batch(model, xb, yb, "data", err)
                            raise
                        bad = torch.stack(
                            [*losses, losses[-1].new_tensor(math.nan) if losses else torch.tensor(math.nan)]
                        )
                        message = _nan_message(bad, epoch, steps, lr, warmup, names, params, finite_x, settings)
                        good.restore()
                        raise FloatingPointError(message) from err
                    except (RuntimeError, IndexError) as err:  # e.g. targets of a shape the loss cannot take
                        _explain_batch(model, xb, yb, "data", err)
                        raise
                    loss_b.backward()
                    if warming:  # the learning-rate warm-up, by this step's index over the run
                        factor = warmup_factor(steps + len(losses), lr_warm)
                        for group, rate in zip(optim.param_groups, base_lr):
                            group["lr"] = rate * factor
                        warming = factor < 1.0
                    optim.step()
                    guide.project(projected)  # projected gradient: back in the parameters' domain
                    with torch.no_grad():
                        out = captured["out"]
                        losses.append(loss_b.detach())
                        if len(losses) % NAN_CHECK_EVERY == 0 and not _finite_so_far(losses, params):
                            message = _nan_message(
                                torch.stack(losses), epoch, steps, lr, warmup, names, params, finite_x, settings
                            )
                            good.restore()
                            raise FloatingPointError(message)
                        sizes.append(len(yb))
                        if log_lik is not None:  # the compiled loss's own term
                            log_liks.append(log_lik)
                        elif own_log_lik and "obs" in cast(MeanFieldELBO, elbo).observed:  # the loss's own term
                            log_liks.append(cast(MeanFieldELBO, elbo).observed["obs"])
                        elif isinstance(out, Moments):  # fast dropout: the expected log-likelihood
                            log_liks.append(model.log_likelihood(out.sigma_points(out.dim() - 1), yb).mean(0).sum())
                        else:
                            log_liks.append(model.log_likelihood(out, yb).sum())
                        if isinstance(out, Moments):  # metrics at the mean
                            out = out.mean
                        for k, batch_sum in model.train_metrics(out, yb).items():
                            sums.setdefault(k, []).append(batch_sum)
                        if epoch == 0:
                            c = model.label_counts(yb)
                            if c is not None:
                                counts.append(c)
            for group, rate in zip(optim.param_groups, base_lr):  # the epoch's rates, as callbacks set them
                group["lr"] = rate
            if aborted:
                good.restore(everything=True)  # the epoch in progress is abandoned: back to its start
                break
            count = sum(sizes)
            with torch.no_grad():
                step_losses = torch.stack(losses)
                loss_e = (step_losses @ torch.tensor(sizes, dtype=losses[0].dtype, device=dev)).item() / num
                nll = -torch.stack(log_liks).sum().item() / count
                train_means = {f"train_{k}": torch.stack(ts).sum().item() / count for k, ts in sums.items()}
                if counts:
                    state.label_counts = torch.stack(counts).sum(0).cpu()
            if not math.isfinite(loss_e) or not _all_finite(params):
                message = _nan_message(step_losses, epoch, steps, lr, warmup, names, params, finite_x, settings)
                good.restore()
                raise FloatingPointError(message)
            steps += len(losses)
            state.step, state.epochs_done = steps, epoch + 1
            state.metrics.update(elbo=loss_e / num, nll=nll, kl=loss_e - num * nll, beta=state.beta)
            state.metrics.update(lr=lr * state.lr_scale * factor, **train_means, seconds=time.perf_counter() - t0)
            stop = False
            for cb in schedule:
                stop = bool(cb.on_epoch_end(state)) or stop
            if stop:
                state.stopped = True
                break
        if interrupts.signum is not None:
            for cb in schedule:
                if isinstance(cb, ProgressBar):
                    cb.on_fit_end(state)
            cast(Checkpoint, saver).save(state)
            raise FitInterrupted(interrupts.signum, state.epochs_done, epochs, os.fspath(cast(str, checkpoint)))
        for cb in schedule:
            cb.on_fit_end(state)
    if interrupts.signum is not None:  # arrived during the last callbacks: the final checkpoint is written
        raise FitInterrupted(interrupts.signum, state.epochs_done, epochs, os.fspath(cast(str, checkpoint)))
    return FitResult(history=state.history, device=dev, warnings=state.warnings, compiled=ran_compiled)


def _compiled_loss(
    elbo: pyro.infer.ELBO,
    model: Likelihood,
    guide: DropoutGuide,
    fit_guide: Callable[..., Any],
    params: list[torch.nn.Parameter],
    x0: torch.Tensor,
    y0: torch.Tensor,
    sizes: list[int],
    jit: bool | None,
) -> CompiledLoss | None:
    """``fit``'s compiled loss of ``model`` and ``fit_guide`` (``guide`` in ``fit``'s handlers), recorded and checked
    before training for minibatches of the first one's leading ``sizes`` rows; ``None`` where it cannot be
    (``jit=None``), else a ``ValueError`` naming ``jit`` and the reason (``jit=True``)."""
    reason = unsupported(elbo, model, guide)
    compiled = None
    if reason is None:
        model.train(), guide.train()  # recorded as the steps run it
        compiled = CompiledLoss(cast(MeanFieldELBO, elbo), model, fit_guide, params, (model, guide))
        try:
            with pyro.validation_enabled(False):
                for size in sizes:
                    compiled.record(x0[:size], y0[:size], torch.ones((), dtype=params[0].dtype, device=x0.device))
        except CompileError as err:
            reason, compiled = str(err), None
    if reason is not None and jit:
        raise ValueError(f"`jit` is True but the loss cannot be compiled: {reason}; pass jit=None or False")
    return compiled


def _train_on_eagerly(err: CompileError, jit: bool | None) -> None:
    """A graph failed once training was under way (a new minibatch shape, a changed module): the run goes on eagerly,
    with a warning where ``jit=True`` asked for the compiled loss."""
    if jit:
        warnings.warn(f"fit(jit=True): training on eagerly: {err}", stacklevel=3)


def _non_finite_parameter(err: ValueError) -> bool:
    """Whether ``err`` is torch's validation error for a distribution parameter with NaN or infinite values."""
    msg = str(err)
    return "invalid values" in msg and ("nan" in msg or "inf" in msg)


def _all_finite(params: list[torch.nn.Parameter]) -> bool:
    with torch.no_grad():
        return bool(torch.stack([p.isfinite().all() for p in params]).all())


NAN_CHECK_EVERY = 25  # steps between two checks of the losses and parameters (one device sync each)


class _Snapshot:
    """Copies of the parameters, the optimiser's state and (for :meth:`restore` with ``everything``) the buffers and
    the random number generators, restored in place when a run diverges or is interrupted."""

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        optim: torch.optim.Optimizer,
        buffers: Sequence[torch.Tensor] = (),
        generators: Sequence[torch.Generator] = (),
    ):
        self.params, self.buffers, self.generators = params, list(buffers), list(generators)
        with torch.no_grad():
            self.values = [p.detach().clone() for p in params]
            self.buffer_values = [b.detach().clone() for b in self.buffers]
        self.optim, self.optim_state = optim, copy.deepcopy(optim.state_dict())
        self.rng = rng_state(self.generators)

    def restore(self, everything: bool = False) -> None:
        """Parameters and optimiser; with ``everything`` also the buffers and the generators."""
        with torch.no_grad():
            for p, v in zip(self.params, self.values, strict=True):
                p.copy_(v)
            if everything:
                for b, v in zip(self.buffers, self.buffer_values, strict=True):
                    b.copy_(v)
        self.optim.load_state_dict(self.optim_state)
        if everything:
            set_rng_state(self.rng, self.generators)


def _parameter_names(model: torch.nn.Module, guide: torch.nn.Module) -> dict[int, str]:
    """``id(parameter) -> name``: the model's (``model.…``) and the guide's (``guide.…``) parameters."""
    names = {id(p): f"guide.{n}" for n, p in guide.named_parameters()}
    names.update({id(p): f"model.{n}" for n, p in model.named_parameters()})
    return names


def _finite_so_far(losses: list[torch.Tensor], params: list[torch.nn.Parameter]) -> bool:
    """Whether the losses of the last :data:`NAN_CHECK_EVERY` steps and every parameter are finite (one sync)."""
    with torch.no_grad():
        checks = [torch.stack(losses[-NAN_CHECK_EVERY:]).isfinite().all(), *(p.isfinite().all() for p in params)]
        return bool(torch.stack(checks).all())


def _changed_settings(model: torch.nn.Module) -> str:
    """The methods' hyper-parameters that differ from their defaults (:func:`bayesdrop.methods.non_defaults`), with
    the layers that use them (``"net.0, net.2: sparse-vd's log_sigma2_init=60.0 (default -10.0)"``): where a first
    step that diverges may come from.  Empty if every method is at its defaults."""
    layers: dict[int, list[str]] = {}
    methods: dict[int, Method] = {}
    for name, layer in bayesian_layers(model):
        layers.setdefault(id(layer.method), []).append(name)
        methods[id(layer.method)] = layer.method
    changed = []
    for key, method in methods.items():
        diffs = ", ".join(f"{k}={v!r} (default {d!r})" for k, (v, d) in non_defaults(method).items())
        if diffs:
            changed.append(f"{', '.join(layers[key])}: {method.name or type(method).__name__}'s {diffs}")
    return "; ".join(changed)


def _nan_message(
    step_losses: torch.Tensor,
    epoch: int,
    steps: int,
    lr: float,
    kl_warmup: int,
    names: dict[int, str] | None = None,
    params: Sequence[torch.nn.Parameter] = (),
    finite_x: Sequence[torch.Tensor] = (),
    settings: Callable[[], str] | None = None,
) -> str:
    """Where the run diverged (the first step with a non-finite loss, else the steps that broke a parameter), which
    parameters are not finite, and what to try (for a first step, the method ``settings`` that differ from their
    defaults, :func:`_changed_settings`); a DataLoader batch whose inputs are not finite (``finite_x``, one flag per
    step) is named instead."""
    if finite_x:
        flags = torch.stack(list(finite_x)).cpu()
        if not bool(flags.all()):
            i = int((~flags).nonzero()[0])
            return (
                f"`data`: x of batch {i} of epoch {epoch} (step {steps + i} of the run) contains NaN or inf, from the "
                f"DataLoader. Training stopped; the parameters and the optimiser are restored to the start of epoch "
                f"{epoch}. Clean the data (a tensor or array given as data is checked before training)"
            )
    bad = (~step_losses.isfinite()).nonzero()
    if len(bad):
        i = int(bad[0])
        what = (
            f"the loss became {step_losses[i].item()} at step {i} (batch {i}) of epoch {epoch} (step {steps + i} "
            "of the run)"
        )
    else:
        what = f"a parameter became NaN or infinite in epoch {epoch} (steps {steps} to {steps + len(step_losses) - 1})"
    broken = [(names or {}).get(id(p), "a parameter") for p in params if not bool(p.detach().isfinite().all())]
    if broken:
        what += f"; not finite: {', '.join(broken[:5])}{' and more' if len(broken) > 5 else ''}"
    remedy = f"lower `lr` (now {lr:g}), lengthen `kl_warmup` (now {kl_warmup} epochs)"
    if steps == 0 and len(bad) and int(bad[0]) == 0:
        listed = settings() if settings is not None else ""
        changed = f"the method settings that differ from their defaults ({listed}), " if listed else ""
        remedy = (
            f"check {changed}the data for extreme values and the initial weights (the very first step diverged), or "
            + remedy
        )
    return (
        f"{what}. Training stopped; the parameters and the optimiser are restored to the start of epoch {epoch}. "
        f"Try: {remedy}"
    )


def _explain_batch(model: Likelihood, x: torch.Tensor, y: torch.Tensor, name: str, err: BaseException) -> None:
    """After a step failed with ``err``: a ``ValueError`` / ``TypeError`` naming ``name`` if the batch is at fault
    (targets out of range in a DataLoader batch between two checks); else nothing, and the caller re-raises
    ``err``."""
    try:
        _check_batch(model, x, y, name)
    except (ValueError, TypeError) as bad:
        raise type(bad)(f"{bad} (found in a batch that failed a training step)") from err


def _check_targets(model: Likelihood, y: torch.Tensor | None, name: str) -> None:
    if y is None:
        raise ValueError(f"`{name}` must include targets y")
    model.check_targets(y, name=f"{name}.y")
