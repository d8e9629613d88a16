"""The parts of :func:`~bayesdrop.fit`'s loop that act once per epoch, as callbacks.

For users who want to change how training runs without rewriting the loop: ``fit`` builds its own schedule from
its arguments (:class:`KLWarmup`, :class:`LinearLRDecay`, :class:`Evaluation`, :class:`CollapseDetection`,
:class:`History`, :class:`ProgressBar`, :class:`Checkpoint`) and runs the user's ``callbacks`` after them.  A
callback sees one :class:`TrainState`; the training step itself stays Pyro's (``elbo.differentiable_loss``), so
no hook runs per step.

Example
-------
Stop when the training NLL stops improving, and keep a checkpoint of every fifth epoch:

>>> class Plateau(bd.infer.Callback):
...     def on_epoch_end(self, state):
...         nll = state.history["nll"]
...         return len(nll) > 5 and nll[-1] > min(nll[:-5])
>>> bd.fit(model, guide, data.train, callbacks=[Plateau(), bd.infer.Checkpoint("run.pt", every=5)])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..posterior import device_of, forked
from .checkpoint import check_checkpoint_path, rng_state, save_checkpoint
from .predict import evaluate

__all__ = [
    "Callback",
    "TrainState",
    "KLWarmup",
    "LinearLRDecay",
    "Evaluation",
    "CollapseDetection",
    "CollapseWarning",
    "History",
    "ProgressBar",
    "Checkpoint",
    "EpochFunction",
    "training_state",
    "CHANCE_EPOCHS",
    "CHANCE_MARGIN",
]

CHANCE_EPOCHS = 5  # consecutive epochs at chance training accuracy after which fit warns of a collapse
CHANCE_MARGIN = 0.02  # "at chance": training accuracy at most the majority-class frequency plus this


class CollapseWarning(UserWarning):
    """:func:`fit` found a dead network: a layer with every weight pruned, or training accuracy at chance.

    The message names the layer or the epochs, the likely cause and the remedy; :attr:`FitResult.warnings` keeps
    it.  Filter it with ``warnings.simplefilter("ignore", bd.CollapseWarning)``, or make it an error with
    ``warnings.simplefilter("error", bd.CollapseWarning)``.
    """


@dataclass
class TrainState:
    """What :func:`~bayesdrop.fit`'s callbacks see and may change.

    Attributes
    ----------
    model, guide, optimizer
        The likelihood, its guide and the torch optimiser.
    epochs, lr, kl_warmup
        The run's budget, base learning rate and KL warm-up in epochs (resolved from ``"auto"``).
    epoch : int
        The current epoch, from 0.
    beta : float
        The KL weight of this epoch's steps (set in ``on_epoch_start``; 1 by default).
    lr_scale : float
        The factor applied to every parameter group's base learning rate this epoch.
    metrics : dict of float
        This epoch's figures (``elbo``, ``nll``, ``kl``, ``beta``, ``lr``, ``train_*``, ``seconds``, ``test_*``),
        filled after the epoch's steps; :class:`History` appends them to :attr:`history`.
    history : dict of list of float
        Every finished epoch's metrics.
    label_counts : torch.Tensor or None
        Class counts of the training data (from the first epoch), for classification likelihoods.
    warnings : list of str
        :class:`CollapseWarning` messages so far.
    epochs_done : int
        Epochs whose steps have run (from a resumed checkpoint on, too); during ``on_epoch_end`` it counts the
        current epoch.
    step : int
        Optimiser steps so far, over the whole run.
    stopped : bool
        Whether a callback stopped the run early (set after that epoch's ``on_epoch_end``).
    generators : list of torch.Generator
        The generators of the minibatch order (``fit``'s own for tensor data, a DataLoader's), saved in checkpoints.
    schedule : list of Callback
        Every callback of the run, in order (their :meth:`Callback.state_dict` goes into checkpoints).
    fit_config : dict
        ``fit``'s settings that a resumed run must share (epochs, batch size, learning rate, ...).
    run_config : dict or None
        ``fit(run_config=...)``: the caller's description of the run, stored in checkpoints.
    """

    model: Any
    guide: Any
    optimizer: torch.optim.Optimizer
    epochs: int
    lr: float
    kl_warmup: int
    epoch: int = 0
    beta: float = 1.0
    lr_scale: float = 1.0
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    label_counts: torch.Tensor | None = None
    warnings: list[str] = field(default_factory=list)
    epochs_done: int = 0
    step: int = 0
    stopped: bool = False
    generators: list[torch.Generator] = field(default_factory=list)
    schedule: list[Callback] = field(default_factory=list)
    fit_config: dict[str, Any] = field(default_factory=dict)
    run_config: dict[str, Any] | None = None

    def warn(self, message: str) -> None:
        """Record ``message`` and issue it as a :class:`CollapseWarning` (attributed to the caller of ``fit``)."""
        self.warnings.append(message)
        warnings.warn(message, CollapseWarning, stacklevel=4)

    def remedy(self) -> str:
        """The remedy for a collapsed run, with this run's settings."""
        return (
            "the KL term overwhelmed the likelihood or the steps were too large: lengthen `kl_warmup` (now "
            f"{self.kl_warmup} of {self.epochs} epochs; 'auto' takes the methods' defaults) or lower `lr` "
            f"(now {self.lr:g})"
        )


class Callback:
    """Base class of :func:`~bayesdrop.fit`'s callbacks; every hook does nothing by default.

    ``on_epoch_end`` returning ``True`` stops training after that epoch (the later callbacks of the epoch still
    run, then ``on_fit_end``).
    """

    def on_fit_start(self, state: TrainState) -> None:
        """Before the first epoch (the optimiser and parameter groups exist), with ``state`` the run's
        :class:`TrainState`.  On a resumed run ``state.epoch`` is already the first epoch to train, but the
        checkpoint's modules, optimiser, history and callback states are loaded after this hook."""

    def on_epoch_start(self, state: TrainState) -> None:
        """Before the steps of epoch ``state.epoch``."""

    def on_epoch_end(self, state: TrainState) -> bool | None:
        """After the steps of epoch ``state.epoch``, with ``state.metrics`` filled."""
        return None

    def on_fit_end(self, state: TrainState) -> None:
        """After the last epoch (also after an early stop, ``state.stopped``), with ``state`` the run's
        :class:`TrainState`.  Not called when a run fails, nor when SIGINT / SIGTERM stops the epochs (``fit`` then
        calls :class:`ProgressBar`'s alone and saves the checkpoint itself)."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of this callback, for a resumed run (tensors and plain containers; default:
        nothing).  A callback that counts epochs or keeps a best value returns it here."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (default: nothing)."""


class KLWarmup(Callback):
    r"""The KL weight grows linearly over ``epochs``: :math:`\beta_e = \min(1, (e + 1) / \text{epochs})`.

    Applied to the steps by :class:`~bayesdrop.handlers.KLScale`; ``epochs = 0`` keeps :math:`\beta = 1`.
    """

    def __init__(self, epochs: int):
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
            raise ValueError(f"`epochs` must be a non-negative int, got {epochs!r}")
        self.epochs = epochs

    def on_epoch_start(self, state: TrainState) -> None:
        state.beta = min(1.0, (state.epoch + 1) / self.epochs) if self.epochs else 1.0


class LinearLRDecay(Callback):
    r"""Every parameter group's learning rate decays linearly to 0: :math:`\eta_e = \eta (1 - e / \text{epochs})`.

    Molchanov et al. (2017) trained sparse variational dropout this way.
    """

    def __init__(self) -> None:
        self.base: list[float] = []

    def on_fit_start(self, state: TrainState) -> None:
        self.base = [group["lr"] for group in state.optimizer.param_groups]

    def on_epoch_start(self, state: TrainState) -> None:
        state.lr_scale = 1 - state.epoch / state.epochs
        for group, base in zip(state.optimizer.param_groups, self.base):
            group["lr"] = base * state.lr_scale


class Evaluation(Callback):
    """After every epoch, :func:`~bayesdrop.evaluate` on held-out ``data`` into ``test_<metric>``, on a fork of the
    generators: the training's random stream, and so the trained parameters, do not depend on whether or how
    held-out data are evaluated.

    Parameters
    ----------
    data
        Labelled held-out data, any form :func:`~bayesdrop.evaluate` takes (a split, an ``(x, y)`` tuple, a
        DataLoader).
    num_samples : int
        Networks drawn from the guide per evaluation (``evaluate``'s ``num_samples``, ``rule="mc"``): the MC draws
        per held-out example.  Default 20; :func:`~bayesdrop.fit` passes its ``test_samples``.
    """

    def __init__(self, data: Any, num_samples: int = 20):
        self.data, self.num_samples = data, num_samples

    def on_epoch_end(self, state: TrainState) -> None:
        with forked(device_of(state.model, state.guide)):
            metrics = evaluate(state.model, state.guide, self.data, num_samples=self.num_samples)
        for k, value in metrics.items():
            state.metrics[f"test_{k}"] = value


class CollapseDetection(Callback):
    """:class:`CollapseWarning` when training accuracy stays at chance for ``CHANCE_EPOCHS`` epochs, when a run
    ends at chance before that many epochs (a short run whose KL term reached full weight before the likelihood was
    fitted), or when the trained guide's pruning rule removes every weight of a layer.

    Chance is the majority-class frequency of the training data plus ``CHANCE_MARGIN``; it needs a likelihood
    that reports ``train_acc`` and class counts (:class:`~bayesdrop.Classifier`).
    """

    def __init__(self) -> None:
        self.at_chance = 0

    def state_dict(self) -> dict[str, Any]:
        return {"at_chance": self.at_chance}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.at_chance = int(state.get("at_chance", 0))

    def on_epoch_end(self, state: TrainState) -> None:
        acc = state.metrics.get("train_acc")
        if acc is None or state.label_counts is None:
            return
        chance = state.label_counts.max().item() / state.label_counts.sum().item()
        self.at_chance = self.at_chance + 1 if acc <= chance + CHANCE_MARGIN else 0
        if self.at_chance == CHANCE_EPOCHS:
            state.warn(
                f"training accuracy has stayed at chance ({acc:.3f}, the majority class being {chance:.3f}) for "
                f"{CHANCE_EPOCHS} epochs, up to epoch {state.epoch}: the network predicts nothing from its "
                f"inputs; {state.remedy()}"
            )

    def on_fit_end(self, state: TrainState) -> None:
        if 0 < self.at_chance < CHANCE_EPOCHS:  # ended at chance, too soon for the warning of on_epoch_end
            acc = state.history["train_acc"][-1]
            state.warn(
                f"training ended at chance accuracy ({acc:.3f}) after {len(state.history['train_acc'])} epochs: "
                f"the network predicts nothing from its inputs; train for more epochs, or {state.remedy()}"
            )
        with torch.no_grad():
            for name, layer, params in state.guide.pairs():
                rule = layer.method.pruning_rule()
                if rule is None:
                    continue
                kept = layer.kept_weights(layer.method.keep_masks(layer, params))
                total = sum(k.numel() for k in kept.values())
                if total and not any(bool(k.any()) for k in kept.values()):
                    state.warn(
                        f"all {total} weights of layer {name!r} ({layer.method.name}) are pruned ({rule}); "
                        f"{state.remedy()}"
                    )


class History(Callback):
    """Appends each epoch's :attr:`TrainState.metrics` to :attr:`TrainState.history` (one list per key)."""

    def on_epoch_end(self, state: TrainState) -> None:
        for k, value in state.metrics.items():
            state.history.setdefault(k, []).append(value)


class ProgressBar(Callback):
    """A tqdm bar over the epochs with the loss (the negative ELBO per example, ``-ELBO/example``), training
    accuracy and test metrics.

    Parameters
    ----------
    enabled : bool
        Show the bar (default ``True``); ``False`` builds it disabled (tqdm's ``disable``), so nothing is shown.
        :func:`~bayesdrop.fit` passes its ``progress``.
    """

    LABELS = {"elbo": "-ELBO/example", "train_acc": "acc"}  # metric -> the name the bar shows

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar: Any = None

    def on_fit_start(self, state: TrainState) -> None:
        self.bar = tqdm(total=state.epochs, initial=state.epoch, desc="fit", disable=not self.enabled, leave=False)

    def on_epoch_end(self, state: TrainState) -> None:
        postfix = {label: f"{state.metrics[k]:.4f}" for k, label in self.LABELS.items() if k in state.metrics}
        postfix.update({k: f"{v:.3f}" for k, v in state.metrics.items() if k.startswith("test_")})
        self.bar.set_postfix(postfix)
        self.bar.update(1)

    def on_fit_end(self, state: TrainState) -> None:
        self.bar.close()


class Checkpoint(Callback):
    """Save everything a resumed run needs to ``path``: model, guide, optimiser (every parameter group, Adam's
    moments), history and :func:`training_state` (epoch, step, schedule, generators, callbacks), after the last
    epoch and, with ``every``, after every ``every``-th epoch (counted over the whole run, from 1).

    Each write is atomic (a unique temporary file, fsync, ``os.replace``), so an interrupted run, or two writers,
    leave the last complete checkpoint.  ``fit(checkpoint=path, checkpoint_every=k)`` adds one as its last callback
    and also saves on SIGINT / SIGTERM; ``fit(resume=path)`` continues from the file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write, in a directory that exists (an existing file is replaced); checked here, before any
        training (:func:`~bayesdrop.infer.checkpoint.check_checkpoint_path`).
    every : int or None
        Also save after every ``every``-th epoch (a positive int), or only after the last one (``None``).

    Raises
    ------
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike``.
    ValueError
        If ``path`` is a directory or its directory does not exist, or ``every`` is not ``None`` or a positive int.
    """

    def __init__(self, path: str | os.PathLike, every: int | None = None):
        check_checkpoint_path(path, "path")
        if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
            raise ValueError(f"`every` must be None or a positive int (epochs), got {every!r}")
        self.path, self.every = path, every

    def save(self, state: TrainState) -> None:
        """Write the checkpoint of ``state`` now."""
        save_checkpoint(
            self.path,
            state.model,
            state.guide,
            optimizer=state.optimizer,
            history=state.history,
            config=state.run_config,
            training=training_state(state),
        )

    def on_epoch_end(self, state: TrainState) -> None:
        if self.every is not None and (state.epoch + 1) % self.every == 0:
            self.save(state)

    def on_fit_end(self, state: TrainState) -> None:
        self.save(state)


def training_state(state: TrainState) -> dict[str, Any]:
    """What :func:`~bayesdrop.fit` resumes from, besides the modules, optimiser and history of a checkpoint, read
    from ``state``, the run's :class:`TrainState` (after its last finished epoch, as :class:`Checkpoint` saves it).

    ``epoch`` (epochs done: the resumed run starts there), ``epochs``, ``step``, ``complete`` (no epoch left, or
    stopped early), ``fit`` (the settings a resumed run must share), ``schedule`` (the KL weight, learning-rate
    factor and warm-up of the last epoch), ``rng`` (:func:`~bayesdrop.infer.checkpoint.rng_state`: torch, CUDA,
    Python, NumPy and the minibatch generators), ``callbacks`` (each callback's type and
    :meth:`Callback.state_dict`), ``label_counts`` and ``warnings``.
    """
    return {
        "epoch": state.epochs_done,
        "epochs": state.epochs,
        "step": state.step,
        "complete": state.stopped or state.epochs_done >= state.epochs,
        "fit": dict(state.fit_config),
        "schedule": {"beta": state.beta, "lr_scale": state.lr_scale, "kl_warmup": state.kl_warmup, "lr": state.lr},
        "rng": rng_state(state.generators),
        "callbacks": [{"type": type(cb).__qualname__, "state": cb.state_dict()} for cb in state.schedule],
        "label_counts": state.label_counts,
        "warnings": list(state.warnings),
    }


class EpochFunction(Callback):
    """A function ``fn(epoch, history)`` called after each epoch; returning ``True`` stops training."""

    def __init__(self, fn: Callable[[int, dict[str, list[float]]], bool | None]):
        if not callable(fn):
            raise TypeError(f"`callback` must be callable as callback(epoch, history), got {type(fn).__name__}")
        self.fn = fn

    def on_epoch_end(self, state: TrainState) -> bool | None:
        return self.fn(state.epoch, state.history)
