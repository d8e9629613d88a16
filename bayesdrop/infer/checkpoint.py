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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..fileio import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "check_state_dict", "rng_state", "set_rng_state"]

FORMAT = "bayesdrop-checkpoint-1"  # the "format" entry of every checkpoint


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
    ``torch.load(..., weights_only=True)``.

    Parameters
    ----------
    path
        The file; its directory must exist.  Written through a unique temporary file in the same directory, then
        renamed over ``path``: a reader sees the previous checkpoint or this one, whole.
    model, guide
        Their ``state_dict()`` is saved.
    optimizer
        Its ``state_dict()`` (every parameter group, Adam's moments), or ``None``.
    history
        Per-epoch figures, as in :class:`~bayesdrop.FitResult`.
    config
        A JSON-like description of the run (``bayesdrop train`` stores its ``config.json`` here; ``report`` and
        ``train --resume`` check the two agree).
    training
        The state :func:`~bayesdrop.fit` resumes from (written by ``fit(checkpoint=...)``; ``None`` here makes a
        checkpoint that loads but cannot be resumed).

    Raises
    ------
    OSError
        Naming ``path``, if it cannot be written; ``path`` is then left as it was.
    """
    state = {
        "format": FORMAT,
        "model": model.state_dict(),
        "guide": guide.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
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
        As for ``torch.load``.
    name
        The argument name that error messages give (``"resume"`` for :func:`~bayesdrop.fit`).

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
        If it is not a readable bayesdrop checkpoint (a corrupt file, a pickle with code, another format).
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike``.
    OSError
        If the file exists but cannot be read (permissions, an I/O error), naming it.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a path (str or os.PathLike), got {type(path).__name__}")
    shown = os.fspath(path)
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
        The modules to load into, in place (``load_state_dict``): their keys and shapes must be the saved ones
        (:func:`check_state_dict`); nothing is loaded otherwise.  They keep their devices and dtypes.
    map_location
        As for ``torch.load``: where the file's tensors are loaded, those of the returned state included (default
        ``"cpu"``).

    Returns
    -------
    dict
        The checkpoint as :func:`read_checkpoint` returns it: ``format``, ``model``, ``guide``, ``optimizer``,
        ``history``, ``config`` and ``training`` (``None`` when the file holds no training state).

    Raises
    ------
    FileNotFoundError, ValueError
        If the file is missing, is not a bayesdrop checkpoint, or holds the state of another model or guide.
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike``.
    OSError
        If the file exists but cannot be read (permissions, an I/O error).
    """
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
