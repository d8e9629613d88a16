"""Runs that survive interruption: the signal handlers of :func:`~bayesdrop.fit`, and the checks and restoration
of a checkpoint it resumes from (``fit(resume=...)``).

For maintainers of the training loop; users meet :class:`FitInterrupted` (raised when SIGINT or SIGTERM stopped a
run that had a checkpoint) and ``fit``'s ``checkpoint``, ``checkpoint_every`` and ``resume`` arguments
(``docs/reliability.md``).

Example
-------
>>> try:
...     bd.fit(model, guide, data.train, epochs=50, checkpoint="run.pt")
... except bd.FitInterrupted as stop:
...     bd.fit(model, guide, data.train, epochs=50, checkpoint="run.pt", resume=stop.checkpoint)
"""

from __future__ import annotations

import signal
from typing import Any

import torch

from .callbacks import TrainState
from .checkpoint import TRAINING_ENTRIES, check_state_dict, rng_state, set_rng_state

__all__ = ["FitInterrupted"]


class FitInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped :func:`~bayesdrop.fit`, which saved a checkpoint to resume from.

    A ``KeyboardInterrupt`` (so ``except Exception`` does not swallow it, and a Ctrl-C stays one) for either signal.

    Attributes
    ----------
    signum : int
        ``signal.SIGINT`` or ``signal.SIGTERM``.
    epochs_done, epochs : int
        Epochs whose state the checkpoint holds (the resumed run starts there), of the run's budget.
    checkpoint : str
        The file written; ``fit(..., resume=checkpoint)`` continues the run.
    """

    def __init__(self, signum: int, epochs_done: int, epochs: int, checkpoint: str):
        self.signum, self.epochs_done, self.epochs, self.checkpoint = signum, epochs_done, epochs, checkpoint
        super().__init__(
            f"training interrupted by {signal.Signals(signum).name} after {epochs_done} of {epochs} epochs; the "
            f"state is saved in {checkpoint!r}: continue with fit(..., resume={checkpoint!r})"
        )


def _loader_generators(data: Any) -> list[torch.Generator]:
    """The generators that order a DataLoader's batches (its own, its sampler's), each once; the global torch
    generator, which a loader without one uses, is saved with the other global states."""
    if not isinstance(data, torch.utils.data.DataLoader):
        return []
    found: list[torch.Generator] = []
    for owner in (data, data.sampler, getattr(data.batch_sampler, "sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator) and g.device.type == "cpu" and all(g is not h for h in found):
            found.append(g)
    return found


# fit's settings added after checkpoints were first written, with the value that runs before them had
ADDED_SETTINGS: dict[str, Any] = {"lr_warmup": 0}


def _check_resumed_config(
    resumed: dict[str, Any],
    fit_config: dict[str, Any],
    run_config: dict[str, Any] | None,
    path: str,
) -> None:
    """``ValueError`` naming ``resume`` unless the checkpoint was written with these settings and ``run_config``
    (before anything is built)."""
    training = resumed["training"]
    saved = training.get("fit")
    for key, types in TRAINING_ENTRIES.items():
        value = training.get(key)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"`resume` {path!r}: its training state is not one fit writes ({key!r})")
    done, total = training["epoch"], training["epochs"]
    if not 0 <= done <= total or training["step"] < 0:
        raise ValueError(
            f"`resume` {path!r}: its training state is not one fit writes (epoch {done} of {total}, step "
            f"{training['step']})"
        )
    schedule = training["schedule"]
    if not all(isinstance(schedule.get(k, 1.0), (int, float)) for k in ("beta", "lr_scale")):
        raise ValueError(f"`resume` {path!r}: its training state is not one fit writes ('schedule')")
    if not all(isinstance(w, str) for w in training["warnings"]):
        raise ValueError(f"`resume` {path!r}: its training state is not one fit writes ('warnings')")
    counts = training["label_counts"]
    if counts is not None and not (
        counts.dim() == 1 and counts.numel() > 0 and not counts.is_complex() and bool((counts >= 0).all())
    ):
        raise ValueError(f"`resume` {path!r}: its training state is not one fit writes ('label_counts')")
    saved = {**ADDED_SETTINGS, **saved}  # a checkpoint from before a setting existed ran without it
    differ = [
        f"{k}={saved.get(k)!r} there, {fit_config[k]!r} here"
        for k in fit_config
        if not _plain_equal(saved.get(k), fit_config[k])
    ]
    if differ:
        raise ValueError(
            f"`resume` {path!r} was written by a run with other settings: {'; '.join(differ)} (resume with the "
            "settings of the interrupted run)"
        )
    if run_config is not None and not _plain_equal(resumed.get("config"), run_config):
        theirs = resumed.get("config") or {}
        keys = sorted(k for k in {*theirs, *run_config} if not _plain_equal(theirs.get(k), run_config.get(k)))
        raise ValueError(
            f"`resume` {path!r} holds another run's configuration than `run_config`: {keys} differ "
            f"({', '.join(f'{k}={theirs.get(k)!r} there, {run_config.get(k)!r} here' for k in keys[:5])})"
        )
    entries = training.get("callbacks")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("state", {}), dict) for e in entries
    ):
        raise ValueError(f"`resume` {path!r}: its callback states are not ones fit writes")


def _plain_equal(a: Any, b: Any) -> bool:
    """Whether two values of plain types (numbers, strings, None, lists, dicts of them) are equal, of the same
    types; anything else (a tensor planted in a checkpoint) is unequal."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_plain_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_plain_equal(u, v) for u, v in zip(a, b))
    plain = (type(None), bool, int, float, str)
    return isinstance(a, plain) and isinstance(b, plain) and type(a) is type(b) and a == b


def _check_resumed_structure(
    resumed: dict[str, Any], model: torch.nn.Module, guide: torch.nn.Module, optim: torch.optim.Optimizer, path: str
) -> None:
    """``ValueError`` naming ``resume`` unless the checkpoint holds the state of this model, guide and optimiser."""
    where = f"`resume` {path!r}"
    check_state_dict(model, resumed["model"], "model", where)
    check_state_dict(guide, resumed["guide"], "guide", where)
    saved = resumed["optimizer"]
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or not isinstance(saved.get("state"), dict):
        raise ValueError(f"{where}: it holds no optimiser state")
    own = [len(g["params"]) for g in optim.param_groups]
    try:
        theirs = [len(g["params"]) for g in groups]
        ids = [i for g in groups for i in g["params"]]
    except (TypeError, KeyError):
        raise ValueError(f"{where}: its optimiser state is not a torch optimiser's") from None
    if own != theirs:
        raise ValueError(f"{where}: its optimiser has parameter groups of sizes {theirs}, this run's {own}")
    params = [p for g in optim.param_groups for p in g["params"]]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"{where}: its optimiser state is not a torch optimiser's (parameter ids)")
    shapes = {i: tuple(p.shape) for i, p in zip(ids, params)}
    for i, entry in saved["state"].items():
        if i not in shapes or not isinstance(entry, dict):
            raise ValueError(f"{where}: its optimiser state names a parameter {i!r} that this run does not have")
        for name, value in entry.items():
            if torch.is_tensor(value) and value.numel() != 1 and tuple(value.shape) != shapes[i]:
                raise ValueError(
                    f"{where}: its optimiser state {name!r} of parameter {i} has shape {tuple(value.shape)}, the "
                    f"parameter {shapes[i]}"
                )
            if torch.is_tensor(value) and (value.is_complex() or not value.is_floating_point() and value.numel() > 1):
                raise ValueError(f"{where}: its optimiser state {name!r} of parameter {i} is not a float tensor")


def _restore(
    resumed: dict[str, Any],
    state: TrainState,
    optim: torch.optim.Optimizer,
    generators: list[torch.Generator],
    dev: torch.device,
    path: str,
) -> None:
    """Load the checkpoint ``resumed`` into the run: modules, optimiser, history, callbacks, generators."""
    where = f"`resume` {path!r}"
    training = resumed["training"]
    history = resumed.get("history") or {}
    if not all(
        isinstance(k, str)
        and isinstance(v, list)
        and all(isinstance(u, (int, float)) and not isinstance(u, bool) for u in v)
        for k, v in history.items()
    ):
        raise ValueError(f"{where}: its history is not a dict of lists of numbers")
    done = int(training["epoch"])
    if len(history.get("elbo", [])) != done or any(len(v) > done for v in history.values()):
        raise ValueError(f"{where}: its history does not hold the {done} epochs its training state has done")
    label_counts = training.get("label_counts")
    if label_counts is not None and not torch.is_tensor(label_counts):
        raise ValueError(f"{where}: its label counts are not a tensor")
    # each callback takes the state of the next saved callback of its type (a callback added on resume starts
    # afresh; one left out is dropped)
    saved: dict[str, list[dict[str, Any]]] = {}
    for entry in training["callbacks"]:
        saved.setdefault(entry["type"], []).append(dict(entry.get("state") or {}))
    pairs = [(cb, saved[type(cb).__qualname__].pop(0)) for cb in state.schedule if saved.get(type(cb).__qualname__)]
    snapshot = rng_state(generators)
    set_rng_state(training.get("rng") or {}, generators, where=where)  # checked first: nothing loaded if invalid
    try:
        with torch.no_grad():
            state.model.load_state_dict(resumed["model"])
            state.guide.load_state_dict(resumed["guide"])
        optim.load_state_dict(resumed["optimizer"])
        for cb, entry in pairs:
            cb.load_state_dict(entry)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        set_rng_state(snapshot, generators)
        raise ValueError(f"{where}: cannot be loaded into this run ({type(err).__name__}: {err})") from None
    state.model.to(dev)
    state.guide.to(dev)
    state.history = {k: list(v) for k, v in history.items()}
    state.label_counts = label_counts
    state.warnings = [str(w) for w in training.get("warnings") or []]
    state.step = int(training["step"])
    state.stopped = bool(training.get("complete")) and state.epochs_done < state.epochs
    schedule = training.get("schedule") or {}
    state.beta = float(schedule.get("beta", 1.0))
    state.lr_scale = float(schedule.get("lr_scale", 1.0))
