"""Checkpoints of a model and its guide that load without executing code.

For users who save a trained run and load it elsewhere, or continue it: :func:`save_checkpoint` writes state dicts,
the optimiser state, the history, a configuration and, from :func:`~bayesdrop.fit`, the training state a resumed
run needs (epoch, step, schedule, random number generators); tensors and plain containers only, written atomically
(:func:`bayesdrop.fileio.atomic_write`: a unique temporary file, fsync, ``os.replace``), so that concurrent writers
and interruptions never leave a torn file.  :func:`load_checkpoint` and :func:`read_checkpoint` read them with
``torch.load(..., weights_only=True)``: a file carrying pickled code is refused, never run.

Example
-------
>>> bd.save_checkpoint("run.pt", model, guide, history=result.history)
>>> state = bd.load_checkpoint("run.pt", model, guide)
"""

from __future__ import annotations

import errno
import os
import random
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..fileio import atomic_write, check_path
from ..guides import DropoutGuide

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "check_state_dict",
    "check_storable",
    "check_checkpoint_path",
    "rng_state",
    "set_rng_state",
]

FORMAT = "bayesdrop-checkpoint-1"  # the "format" entry of every checkpoint

# The entries of the training state that fit writes (callbacks.training_state) and resumes from, with their types.
TRAINING_ENTRIES: dict[str, tuple[type, ...]] = {
    "epoch": (int,),
    "epochs": (int,),
    "step": (int,),
    "complete": (bool,),
    "fit": (dict,),
    "schedule": (dict,),
    "rng": (dict,),
    "callbacks": (list,),
    "label_counts": (torch.Tensor, type(None)),
    "warnings": (list,),
}

# What torch.load(weights_only=True) reads back as it was written: these exact types (a subclass, an enum, a NumPy
# scalar or array is refused, or comes back as its base class), containers of them, and tensors.
_ATOMS: tuple[type, ...] = (type(None), bool, int, float, complex, str, bytes)
_LEAVES: tuple[type, ...] = (*_ATOMS, torch.Tensor, torch.nn.Parameter, torch.Size, torch.dtype, torch.device)
_SEQUENCES: tuple[type, ...] = (list, tuple, set)
_MAPPINGS: tuple[type, ...] = (dict, OrderedDict)
STORABLE = "None, bool, int, float, str, tensors, and lists, tuples and dicts of them"  # for error messages


def _storable_key(key: Any) -> bool:
    """Whether ``key`` may key a stored dict: an atom (``None``, ``bool``, ``int``, ``float``, ``complex``,
    ``str``, ``bytes``) or a tuple of such keys."""
    return type(key) in _ATOMS or (type(key) is tuple and all(_storable_key(k) for k in key))


def _not_storable(kind: type, where: str) -> TypeError:
    """The error for a value of type ``kind`` at ``where`` (the argument and the key path, in backticks)."""
    shown = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    hint = ""
    base = next((b for b in (*_LEAVES, *_SEQUENCES, *_MAPPINGS) if issubclass(kind, b)), None)
    if kind.__module__.split(".")[0] == "numpy":
        hint = " (a NumPy value: convert it with .item(), .tolist() or torch.from_numpy)"
    elif base is not None:
        hint = f" (a subclass of {base.__qualname__}: pass a plain {base.__qualname__})"
    return TypeError(f"{where}: {shown} is not storable in a checkpoint{hint}: use {STORABLE}")


def check_storable(value: Any, name: str) -> None:
    """A ``TypeError`` naming ``name`` and the key path to the first value that a checkpoint cannot hold.

    A checkpoint is read with ``torch.load(..., weights_only=True)``, which refuses any other object (and would
    blame the file, after the run that wrote it).  Check what will be saved before the work that produces it.

    Parameters
    ----------
    value
        What would be saved.  Storable: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``,
        tensors (``torch.Tensor``, ``torch.nn.Parameter``), ``torch.Size``, ``torch.dtype``, ``torch.device``, and
        lists, tuples, sets and dicts (``dict``, ``OrderedDict``; keyed by atoms or tuples of them) of storable
        values, nested to any depth.  These exact types only: a subclass (an ``IntEnum``, a named tuple, a
        ``defaultdict``), a NumPy scalar or array, or any other object is refused.
    name
        The argument's name, as error messages give it (``"run_config"``); a nested value is named by its path,
        such as ``run_config['a'][0]``.

    Raises
    ------
    TypeError
        If ``value`` is not storable, naming the first offending entry and what is accepted.

    Examples
    --------
    >>> check_storable({"lr": 0.01, "layers": [8, 8]}, "run_config")
    >>> check_storable({"a": object()}, "run_config")
    Traceback (most recent call last):
    ...
    TypeError: `run_config['a']`: object is not storable in a checkpoint: use None, bool, int, ...
    """
    seen: set[int] = set()  # containers already checked (shared or self-containing ones are walked once)
    stack: list[tuple[Any, str]] = [(value, name)]
    while stack:
        item, where = stack.pop()
        kind = type(item)
        if kind in _LEAVES:
            continue
        if kind not in _SEQUENCES and kind not in _MAPPINGS:
            raise _not_storable(kind, f"`{where}`")
        if id(item) in seen:
            continue
        seen.add(id(item))
        if kind in _MAPPINGS:
            for key, entry in reversed(list(item.items())):  # reported in order: the first bad entry first
                if not _storable_key(key):
                    raise TypeError(
                        f"`{where}`: its key {key!r} ({type(key).__qualname__}) is not storable in a checkpoint: "
                        "dict keys must be None, bool, int, float, str or tuples of them"
                    )
                stack.append((entry, f"{where}[{key!r}]"))
        elif kind is set:
            for entry in item:
                if type(entry) not in _LEAVES and not _storable_key(entry):
                    raise _not_storable(type(entry), f"an element of the set `{where}`")
        else:
            stack.extend((entry, f"{where}[{i}]") for i, entry in reversed(list(enumerate(item))))


def check_checkpoint_path(path: Any, name: str = "path") -> None:
    """Check, before any work, that a checkpoint can be written to ``path``.

    Parameters
    ----------
    path
        The file to write: a ``str`` or ``os.PathLike``, in a directory that exists, and not itself a directory.
        It need not exist (an existing file is replaced).
    name
        The argument's name in error messages (``"checkpoint"`` for :func:`~bayesdrop.fit`).

    Raises
    ------
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike`` (of a ``str``).
    ValueError
        If ``path`` is a directory, or its directory does not exist.
    """
    target = Path(check_path(path, name, "the checkpoint file to write"))
    if target.is_dir() or not target.parent.is_dir():
        raise ValueError(
            f"`{name}` must be a file path in an existing directory, got {os.fspath(path)!r}"
            + (" (a directory)" if target.is_dir() else f" ({os.fspath(target.parent)!r} does not exist)")
        )


def _check_modules(model: Any, guide: Any) -> None:
    """``TypeError`` unless ``model`` and ``guide`` are modules; ``ValueError`` for a :class:`DropoutGuide` built
    for another model."""
    for value, arg, kind in ((model, "model", "a bd.Likelihood"), (guide, "guide", "bd.DropoutGuide(model)")):
        if not isinstance(value, torch.nn.Module):
            raise TypeError(f"`{arg}` must be a torch.nn.Module ({kind}), got {type(value).__name__}")
    if isinstance(guide, DropoutGuide) and guide.model is not model:
        raise ValueError("`guide` must be the DropoutGuide built for `model` (bd.DropoutGuide(model))")


def _check_map_location(map_location: Any) -> None:
    """``TypeError`` / ``ValueError`` naming ``map_location`` unless ``torch.load`` can use it here."""
    if map_location is None or callable(map_location):  # a function (storage, location) -> storage
        return
    if isinstance(map_location, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in map_location.items()):
            raise TypeError("`map_location`: a dict must map device names (str) to device names (str)")
        devices = list(map_location.values())
    elif isinstance(map_location, (str, torch.device)):
        devices = [map_location]
    else:
        raise TypeError(
            "`map_location` must be None, a device (torch.device or a str such as 'cpu' or 'cuda:0'), a dict of "
            f"device names or a function, as for torch.load; got {type(map_location).__name__}"
        )
    for device in devices:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(
                f"`map_location` must name a torch device such as 'cpu' or 'cuda:0', got {device!r}"
            ) from None
        if (dev.type == "cuda" and not torch.cuda.is_available()) or (
            dev.type == "mps" and not torch.backends.mps.is_available()
        ):
            raise ValueError(f"`map_location` is {str(device)!r} but {dev.type.upper()} is not available")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"`map_location` is {str(device)!r} but there are {torch.cuda.device_count()} CUDA devices"
            )


def _check_history(history: Any) -> None:
    """``TypeError`` naming ``history`` unless it is ``None`` or a dict of lists of numbers (what fit records and
    a resumed run reads)."""
    if history is None:
        return
    if type(history) is not dict:
        raise TypeError(f"`history` must be None or a dict of lists of numbers, got {type(history).__name__}")
    for key, values in history.items():
        if type(key) is not str:
            raise TypeError(f"`history` must be keyed by metric names (str), got the key {key!r}")
        if type(values) is not list:
            raise TypeError(
                f"`history[{key!r}]` must be a list of numbers (one per epoch), got {type(values).__name__}"
            )
        for i, v in enumerate(values):
            if type(v) not in (int, float):
                raise TypeError(
                    f"`history[{key!r}][{i}]` must be a number (int or float), got {type(v).__name__}"
                    + (" (a NumPy or tensor value: convert it with float())" if hasattr(v, "item") else "")
                )


def _check_training(training: Any) -> None:
    """``TypeError`` / ``ValueError`` naming ``training`` unless it is ``None`` or a training state as
    :func:`~bayesdrop.infer.callbacks.training_state` returns it."""
    if training is None:
        return
    if type(training) is not dict:
        raise TypeError(
            "`training` must be None or the training state of a run (bd.infer.callbacks.training_state), got "
            f"{type(training).__name__}"
        )
    missing = [k for k in TRAINING_ENTRIES if k not in training]
    if missing:
        raise ValueError(
            f"`training` must be a training state as bd.infer.callbacks.training_state returns it: it lacks {missing}"
        )
    for key, types in TRAINING_ENTRIES.items():
        value = training[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise TypeError(
                f"`training[{key!r}]` must be {' or '.join(t.__name__ for t in types)}, got {type(value).__name__}"
            )
    check_storable(training, "training")


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    guide: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    history: dict | None = None,
    config: dict | None = None,
    training: dict | None = None,
) -> None:
    """Save model, guide (and optimiser, history, config, training) state to ``path``, atomically.

    Only tensors and plain containers are written, so :func:`load_checkpoint` reads it with
    ``torch.load(..., weights_only=True)``; every argument is checked first (:func:`check_storable`), so nothing
    is written that it would refuse.

    Parameters
    ----------
    path
        The file (``str`` or ``os.PathLike``); its directory must exist.  Written through a unique temporary file
        in the same directory, then renamed over ``path``: a reader sees the previous checkpoint or this one, whole.
    model, guide
        Modules (a :class:`~bayesdrop.Likelihood` and the :class:`~bayesdrop.DropoutGuide` built for it); their
        ``state_dict()`` is saved, and must hold tensors only.
    optimizer
        A ``torch.optim.Optimizer``, whose ``state_dict()`` (every parameter group, Adam's moments) is saved, or
        ``None``.
    history
        Per-epoch figures, as in :class:`~bayesdrop.FitResult`: a dict of lists of numbers (``int``, ``float``)
        keyed by metric name, or ``None``.
    config
        A JSON-like description of the run, a dict of storable values (:func:`check_storable`) or ``None``
        (``bayesdrop train`` stores its ``config.json`` here; ``report`` and ``train --resume`` check the two
        agree).
    training
        The state :func:`~bayesdrop.fit` resumes from, a dict as :func:`~bayesdrop.infer.callbacks.training_state`
        returns it (written by ``fit(checkpoint=...)``; ``None`` here makes a checkpoint that loads but cannot be
        resumed).

    Raises
    ------
    TypeError
        Naming the argument, if ``path`` is not a ``str`` or ``os.PathLike``, ``model`` or ``guide`` not a module
        (or its state dict holds something else than tensors), ``optimizer`` neither ``None`` nor a torch
        optimiser, ``history`` not a dict of lists of numbers, ``config`` not a dict, ``training`` not a training
        state's dict, or if any of them holds a value that a checkpoint cannot store (with its key path).
    ValueError
        If ``guide`` is a :class:`~bayesdrop.DropoutGuide` built for another model than ``model``, or ``training``
        lacks entries of a training state.
    OSError
        Naming ``path``, if it cannot be written; ``path`` is then left as it was.
    """
    check_path(path, "path")
    _check_modules(model, guide)
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"`optimizer` must be None or a torch.optim.Optimizer, got {type(optimizer).__name__}")
    _check_history(history)
    if config is not None and type(config) is not dict:
        raise TypeError(f"`config` must be None or a dict, got {type(config).__name__}")
    check_storable(config, "config")
    _check_training(training)
    modules = {"model": model.state_dict(), "guide": guide.state_dict()}
    for arg, sd in modules.items():
        for key, value in sd.items():
            if not torch.is_tensor(value):
                raise TypeError(
                    f"`{arg}`: its state_dict() entry {key!r} is a {type(value).__name__}, not a tensor (a "
                    "checkpoint holds tensors only: a module's get_extra_state() is not supported)"
                )
        check_storable(sd, f"{arg}.state_dict()")
    optimizer_state = optimizer.state_dict() if optimizer is not None else None
    check_storable(optimizer_state, "optimizer.state_dict()")
    state = {
        "format": FORMAT,
        **modules,
        "optimizer": optimizer_state,
        "history": history,
        "config": config,
        "training": training,
    }
    atomic_write(path, lambda f: torch.save(state, f))


def read_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu", name: str = "path") -> dict:
    """Read and check a checkpoint written by :func:`save_checkpoint`, without loading it into modules.

    Parameters
    ----------
    path
        The file.
    map_location
        Where the file's tensors are loaded, as for ``torch.load``: ``None`` (where they were saved), a device
        (``torch.device``, or a ``str`` such as ``"cpu"`` or ``"cuda:0"``; default ``"cpu"``), a dict mapping
        device names to device names, or a function ``(storage, location) -> storage``.  A named device must be
        available here.
    name
        The argument name that error messages give for ``path`` (``"resume"`` for :func:`~bayesdrop.fit`).

    Returns
    -------
    dict
        ``format``, ``model``, ``guide``, ``optimizer``, ``history``, ``config`` and ``training`` (``None`` when
        the file holds no training state).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    ValueError
        If it is not a readable bayesdrop checkpoint (a corrupt file, a pickle with code, another format); or,
        naming ``map_location``, if that is not a device name or names a device not available here.
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike``, or ``map_location`` is none of the types above.
    OSError
        If the file exists but cannot be read (permissions, an I/O error), naming it.
    """
    shown = check_path(path, name)
    _check_map_location(map_location)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint `{name}` {shown!r} does not exist (or is not a file)")
    try:
        _check_crcs(path)
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as err:
        if err.filename is not None or err.errno in (errno.EACCES, errno.EIO, errno.EISDIR, errno.ENOENT):
            raise OSError(err.errno, f"cannot read checkpoint `{name}`: {err.strerror or err}", shown) from err
        raise ValueError(f"`{name}` {shown!r} is not a readable bayesdrop checkpoint: {_reason(err)}") from err
    except Exception as err:  # corrupt file, pickle with code, ...
        raise ValueError(f"`{name}` {shown!r} is not a readable bayesdrop checkpoint: {_reason(err)}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"`{name}` {shown!r} is not a bayesdrop checkpoint")
    for key in ("model", "guide"):
        sd = state.get(key)
        if not isinstance(sd, Mapping) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in sd.items()):
            raise ValueError(f"`{name}` {shown!r}: its {key!r} entry is not a state dict of tensors")
    for key, kind in (("optimizer", dict), ("history", dict), ("config", dict), ("training", dict)):
        if state.get(key) is not None and not isinstance(state[key], kind):
            raise ValueError(f"`{name}` {shown!r}: its {key!r} entry must be a {kind.__name__} or None")
    state.setdefault("training", None)
    return state


def _check_crcs(path: str | os.PathLike) -> None:
    """Refuse a zip archive (what ``torch.save`` writes) whose members' bytes do not match their CRC-32:
    ``torch.load`` does not check them, so a flipped bit in a tensor would load as a changed value."""
    if not zipfile.is_zipfile(path):
        return  # not an archive: torch.load says what it is
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise ValueError(f"the file is corrupt: the bytes of its member {bad!r} do not match their checksum")


def _reason(err: BaseException) -> str:
    """Why a file did not load, in words: the error's message, with its type where the message alone is empty or
    says nothing (``EOFError()`` for an empty file, ``KeyError(101)`` for a text file)."""
    message = str(err)
    if isinstance(err, ValueError) and message:
        return message
    if isinstance(err, EOFError):
        return "the file ends early (empty or truncated)"
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


def check_state_dict(module: torch.nn.Module, saved: Mapping[str, torch.Tensor], what: str, where: str) -> None:
    """A ``ValueError`` (``where``: the argument and file) unless ``saved`` has ``module``'s keys and shapes.

    ``load_state_dict`` would raise a ``RuntimeError`` from torch; this says which entries differ first.
    """
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    shapes = [
        f"{k} {tuple(saved[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in saved and tuple(saved[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' and more' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' and more' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append(f"shapes differ (saved vs {what}): {shapes[:5]}{' and more' if len(shapes) > 5 else ''}")
        raise ValueError(f"{where}: its {what} state does not fit this {what}: " + "; ".join(parts))


def load_checkpoint(
    path: str | os.PathLike, model: torch.nn.Module, guide: torch.nn.Module, *, map_location: Any = "cpu"
) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` and ``guide``.

    Uses ``torch.load(..., weights_only=True)``.  Returns the whole state (``history``, ``config``, ``optimizer``,
    ``training``) for the caller.  Call the guide once on a batch before loading (it records its layers' shapes
    then).

    Parameters
    ----------
    path
        The file (``str`` or ``os.PathLike``), read and checked by :func:`read_checkpoint`.
    model, guide
        The modules to load into, in place (``load_state_dict``): a :class:`~bayesdrop.Likelihood` and the
        :class:`~bayesdrop.DropoutGuide` built for it.  Their keys and shapes must be the saved ones
        (:func:`check_state_dict`); nothing is loaded otherwise.  They keep their devices and dtypes.
    map_location
        As for ``torch.load`` (:func:`read_checkpoint` lists the forms): where the file's tensors are loaded,
        those of the returned state included (default ``"cpu"``).

    Returns
    -------
    dict
        The checkpoint as :func:`read_checkpoint` returns it: ``format``, ``model``, ``guide``, ``optimizer``,
        ``history``, ``config`` and ``training`` (``None`` when the file holds no training state).

    Raises
    ------
    FileNotFoundError, ValueError
        If the file is missing, is not a bayesdrop checkpoint, or holds the state of another model or guide.
    ValueError
        Naming ``guide``, if it is a :class:`~bayesdrop.DropoutGuide` built for another model than ``model``;
        naming ``map_location``, if that is not a device name or names a device not available here.
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike``, ``model`` or ``guide`` not a module, or ``map_location``
        of none of the types :func:`read_checkpoint` takes.
    OSError
        If the file exists but cannot be read (permissions, an I/O error).
    """
    _check_modules(model, guide)
    state = read_checkpoint(path, map_location=map_location)
    where = f"checkpoint {os.fspath(path)!r}"
    check_state_dict(model, state["model"], "model", where)
    check_state_dict(guide, state["guide"], "guide", where)
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    return state


# ----------------------------------------------------------------------------- random number generators


def rng_state(generators: Sequence[torch.Generator] = ()) -> dict[str, Any]:
    """The states of torch's (CPU and, once initialised, CUDA), Python's and NumPy's global generators and of
    ``generators``, as tensors and plain containers (``torch.load(weights_only=True)`` reads them)."""
    version, mt, gauss = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(cuda),
        "python": {"version": int(version), "state": list(mt), "gauss": gauss},
        "numpy": {
            "name": str(name),
            "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "generators": [g.get_state() for g in generators],
    }


def set_rng_state(state: Mapping[str, Any], generators: Sequence[torch.Generator] = (), *, where: str = "") -> None:
    """Restore what :func:`rng_state` returned (``where`` names the source in errors).

    Raises
    ------
    ValueError
        If ``state`` is not such a record, or holds another number of ``generators``; nothing is changed then.
    """
    try:
        cpu = state["torch"]
        py, npy, gens = state["python"], state["numpy"], list(state["generators"])
        if not (torch.is_tensor(cpu) and cpu.dtype == torch.uint8 and cpu.shape == torch.get_rng_state().shape):
            raise ValueError("torch's state has the wrong size or type")
        mt = tuple(int(v) for v in py["state"])
        python = (int(py["version"]), mt, None if py["gauss"] is None else float(py["gauss"]))
        key = npy["key"]
        if not (torch.is_tensor(key) and key.numel() == 624) or len(mt) != 625:
            raise ValueError("the Mersenne twister states have the wrong size")
        numpy_state = (
            str(npy["name"]),
            key.cpu().numpy().astype(np.uint32),
            int(npy["pos"]),
            int(npy["has_gauss"]),
            float(npy["cached"]),
        )
        if len(gens) != len(generators):
            raise ValueError(f"it holds {len(gens)} data generator states, this run has {len(generators)}")
        for g, s in zip(generators, gens):
            own = g.get_state()
            if not (torch.is_tensor(s) and s.dtype == own.dtype and s.shape == own.shape):
                raise ValueError("a data generator's state has the wrong size or type")
        previous = random.getstate()
        random.setstate(python)  # checks the state before numpy's and torch's are touched
        try:
            np.random.set_state(numpy_state)
        except (ValueError, TypeError):
            random.setstate(previous)
            raise
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{where}: not a valid random number generator state ({err})") from None
    torch.set_rng_state(cpu.cpu())
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([c.cpu() for c in cuda])
    for g, s in zip(generators, gens):
        g.set_state(s.cpu())
