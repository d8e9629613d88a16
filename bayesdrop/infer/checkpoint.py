"""Checkpoints of a model and its guide that load without executing code.

For users who save a trained run and load it elsewhere: :func:`save_checkpoint` writes state dicts, the optimiser
state, the history and a configuration (tensors and plain containers only, written atomically); :func:`load_checkpoint`
reads them with ``torch.load(..., weights_only=True)``.

Example
-------
>>> bd.save_checkpoint("run.pt", model, guide, history=result.history)
>>> state = bd.load_checkpoint("run.pt", model, guide)
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    guide: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    history: dict | None = None,
    config: dict | None = None,
) -> None:
    """Save model, guide (and optimiser, history, config) state to ``path``.

    Only tensors and plain containers are written, so :func:`load_checkpoint`
    reads it with ``torch.load(..., weights_only=True)``.
    """
    state = {
        "format": "bayesdrop-checkpoint-1",
        "model": model.state_dict(),
        "guide": guide.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "history": history,
        "config": config,
    }
    tmp = f"{os.fspath(path)}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: str | os.PathLike, model: torch.nn.Module, guide: torch.nn.Module, *, map_location: Any = "cpu"
) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` and ``guide``.

    Uses ``torch.load(..., weights_only=True)``.  Returns the whole state
    (``history``, ``config``, ``optimizer``) for the caller.

    Raises
    ------
    FileNotFoundError, ValueError
        If the file is missing or is not a bayesdrop checkpoint.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint `path` {os.fspath(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt file, pickle with code, ...
        raise ValueError(f"`path` {os.fspath(path)!r} is not a readable bayesdrop checkpoint: {err}") from err
    if not isinstance(state, dict) or state.get("format") != "bayesdrop-checkpoint-1":
        raise ValueError(f"`path` {os.fspath(path)!r} is not a bayesdrop checkpoint")
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    return state
