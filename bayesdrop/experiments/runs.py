"""Run configurations and run directories: from a ``config.json`` (or the command line's arguments) to data, model
and guide, and the directory ``bayesdrop train`` writes.

For scripts and the command line alike: ``bayesdrop train`` writes a run directory, :func:`load_run` rebuilds it,
:func:`build` makes data, model and guide from a configuration dictionary.

A run directory is written as a unit: ``config.json`` first, then ``checkpoint.pt`` (every ``--checkpoint-every``
epochs, at the end and on SIGINT / SIGTERM), ``history.json`` and ``metrics.json``, each atomically
(:mod:`bayesdrop.fileio`), and last the completion marker ``complete.json``; a directory without it is a run in
progress or an interrupted one, which ``bayesdrop train --resume`` continues and :func:`load_run` refuses.
:class:`RunLock` (``fcntl.flock`` on ``.lock``, released by the system if the process dies) keeps a second process
out while a run is written or read; :func:`prepare_run_dir` refuses a non-empty directory unless told to overwrite
or resume, and refuses symbolic links in it.

Example
-------
>>> from bayesdrop.experiments import runs
>>> ds, model, guide = runs.build({"method": "vbd", "dataset": "digits", "arch": "mlp:300,100"})
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import pyro
import torch

from .. import data as bd_data
from .. import methods
from ..fileio import TEMP_SUFFIX, atomic_write_json, named_os_error
from ..guides import DropoutGuide
from ..infer import DEFAULT_LR, resolve_kl_warmup, resolve_lr_warmup
from ..infer.checkpoint import check_state_dict, read_checkpoint
from ..infer.train import steps_per_epoch
from ..likelihoods import Classifier, Likelihood, Regressor
from ..methods import Method
from ..models import lenet5, mlp, rnn

try:  # POSIX; elsewhere the lock file is created exclusively and removed on release
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "build",
    "inputs",
    "load_run",
    "load_dataset",
    "parse_arch",
    "parse_hyper",
    "read_config",
    "read_history",
    "check_kfold",
    "dataset_names",
    "RunDirectoryError",
    "RunLock",
    "check_run_path",
    "scan_run_dir",
    "prepare_run_dir",
    "mark_complete",
    "run_status",
    "CONFIG",
    "CHECKPOINT",
    "COMPLETE",
    "LOCK",
]

CONFIG, CHECKPOINT, HISTORY, METRICS = "config.json", "checkpoint.pt", "history.json", "metrics.json"
COMPLETE = "complete.json"  # written last: the run directory is whole
LOCK = ".lock"  # held (flock) while a process writes or reads the run
RUN_FORMAT = "bayesdrop-run-1"
LOCATION_KEYS = ("mnist_dir",)  # where data live, not what the run is: may change after a move


MAX_WIDTH = 65536  # the widest layer a run configuration may ask for
MAX_HIDDEN_WEIGHTS = 1 << 28  # and at most this many weights between its hidden layers (1 GiB of float32)


def parse_arch(spec: str) -> tuple[str, list[int]]:
    """Parse ``mlp:300,100`` / ``lenet300-100`` / ``lenet5`` / ``rnn`` / ``rnn:128`` into (kind, widths); ``rnn``
    is an LSTM of 64 units (``rnn:H``: ``H``) read at its last step over the data's sequences.  Widths are bounded
    (:data:`MAX_WIDTH`, :data:`MAX_HIDDEN_WEIGHTS`), so that a configuration cannot ask for gigabytes."""
    if not isinstance(spec, str):
        raise TypeError(f"`--arch` must be a string such as 'mlp:300,100', got {type(spec).__name__}")
    kind, _, rest = spec.partition(":")
    if kind == "mlp":
        try:
            widths = [int(w) for w in rest.split(",") if w.strip()]
        except ValueError:
            widths = []
        if not widths or min(widths) < 1:
            raise ValueError(f"`--arch` {spec!r}: expected mlp:W1,W2,... with positive widths")
        if max(widths) > MAX_WIDTH or sum(a * b for a, b in zip(widths, widths[1:])) > MAX_HIDDEN_WEIGHTS:
            raise ValueError(
                f"`--arch` {spec!r}: widths at most {MAX_WIDTH} and at most {MAX_HIDDEN_WEIGHTS} weights between "
                "hidden layers"
            )
        return "mlp", widths
    if kind == "lenet300-100" and not rest:
        return "mlp", [300, 100]
    if kind == "lenet5" and not rest:
        return "lenet5", []
    if kind == "rnn":
        if not rest:
            return "rnn", [64]
        if rest.isdigit() and 0 < int(rest) <= MAX_WIDTH:
            return "rnn", [int(rest)]
    raise ValueError(f"`--arch` {spec!r}: accepted are mlp:W1,W2,..., lenet300-100, lenet5, rnn, rnn:H")


def _method(config: dict[str, Any], key: str, hyper_key: str) -> methods.Method:
    """The method ``config[key]`` with its hyper-parameters ``config[hyper_key]``; a refused hyper-parameter's
    error names the entry that gave it (the command line's ``--hyper`` / ``--input-hyper``)."""
    hyper = config.get(hyper_key) or {}
    try:
        return methods.get(config[key], **hyper)
    except (TypeError, ValueError) as err:
        if not hyper:
            raise
        raise type(err)(f"`{hyper_key}` {hyper} of {config[key]!r}: {err}") from None


def parse_hyper(items: list[str]) -> dict[str, Any]:
    """``["p=0.3", "granularity=unit"]`` -> ``{"p": 0.3, "granularity": "unit"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"`--hyper` {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def dataset_names() -> list[str]:
    """The names ``--dataset`` takes: the bundled data sets (``bd.data.DATASETS``) and ``"mnist"``, sorted."""
    return sorted({*bd_data.DATASETS, "mnist"})


def load_dataset(name: str, mnist_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> bd_data.Dataset:
    """A bundled data set by name (``bd.data.load``), or ``"mnist"`` from the IDX files in ``mnist_dir``; an
    unknown name is a ``ValueError`` naming ``--dataset`` and the names it takes (:func:`dataset_names`)."""
    if name not in dataset_names():
        raise ValueError(f"`--dataset` must be one of {dataset_names()}, got {name!r}")
    if name == "mnist":
        if not mnist_dir:
            raise ValueError("`--dataset mnist` needs `--mnist-dir` (a directory with the IDX files)")
        return bd_data.load_mnist(mnist_dir)
    return bd_data.load(name, seed=seed)


def build(
    config: dict[str, Any], dataset: bd_data.Dataset | None = None
) -> tuple[bd_data.Dataset, Likelihood, DropoutGuide]:
    """Data, model and guide from a run configuration (see ``bayesdrop train``).

    The initial weights are drawn after ``pyro.set_rng_seed(config["seed"])`` (default 0), so a run does not
    depend on the global random state of the process.
    """
    ds = dataset or load_dataset(config["dataset"], config.get("mnist_dir"), config.get("data_seed", 0))
    pyro.set_rng_seed(int(config.get("seed", 0)))
    kind, widths = parse_arch(config["arch"])
    method = _method(config, "method", "hyper")
    input_method = None
    if config.get("input_method"):
        input_method = _method(config, "input_method", "input_hyper")
    # classes, the values of a forecast (co2, sunspots), or one regression target
    out = cast(int, ds.num_classes) if ds.task == "classification" else ds.series.horizon if ds.series else 1
    # a method goes where a network takes it: every layer, the inputs (no other noise), the pooling layers, the
    # recurrent layers
    role = method.capabilities.role
    check_placement(config["method"], method, kind)
    if role == "input" and input_method is not None:
        raise ValueError(f"`--method` {config['method']!r} is an input method; `--input-method` cannot be given too")
    layer_method: Method | None = method if role == "layer" else None
    input_method = method if role == "input" else input_method
    if kind == "mlp":
        net = mlp(ds.in_features, widths, out, layer_method, input_method=input_method)
    else:
        if ds.image_shape is None or len(ds.image_shape) not in (2, 3):
            raise ValueError(f"`--arch {kind}` needs image data; {ds.name!r} has image shape {ds.image_shape}")
        if kind == "rnn":
            if input_method is not None:
                raise ValueError("`--input-method` is for `--arch mlp` and `lenet5`")
            features = ds.sequences(ds.test).shape[-1]
            return _wrap(ds, rnn(features, widths[0], out, method))
        pool_method = method if role == "pool" else None
        net = lenet5(ds.image_shape, out, layer_method, input_method=input_method, pool_method=pool_method)
    return _wrap(ds, net)


ROLES = {"mlp": ("layer", "input"), "lenet5": ("layer", "input", "pool"), "rnn": ("layer", "recurrent")}
"""The roles of the methods (:attr:`~bayesdrop.methods.Capabilities.role`) each kind of ``--arch`` takes."""


def check_kfold(k: Any, name: str = "kfold") -> None:
    """``k`` folds of K-fold cross-validation: 0 (none) or an int >= 2, else a ``ValueError`` naming ``name`` (the
    argument, or the command line's ``--kfold``), before any data or training."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 0 or k == 1:
        raise ValueError(f"`{name}` must be 0 (no K-fold cross-validation) or a number of folds >= 2, got {k!r}")


def check_placement(name: str, method: Method, kind: str) -> None:
    """Refuse a method that an architecture of ``kind`` (:func:`parse_arch`) has no place for (a pool method in an
    MLP), naming ``--method`` and the architectures that take it, before any data or training."""
    role = method.capabilities.role
    if role not in ROLES[kind]:
        where = {"input": "on the inputs", "pool": "in pooling layers", "recurrent": "in recurrent layers"}[role]
        wanted = " or ".join(f"`--arch {k}`" for k, roles in ROLES.items() if role in roles)
        raise ValueError(f"`--method` {name!r} acts {where}: use {wanted}")


def _wrap(ds: bd_data.Dataset, net: torch.nn.Module) -> tuple[bd_data.Dataset, Likelihood, DropoutGuide]:
    """The data set, the network's likelihood and its guide."""
    if ds.task == "classification":
        model: Likelihood = Classifier(net, num_data=len(ds.train))
    else:
        model = Regressor(net, num_data=len(ds.train), horizon=ds.series.horizon if ds.series else None)
    return ds, model, DropoutGuide(model)


def fold_builder(config: dict[str, Any], ds: bd_data.Dataset) -> Callable[[int], tuple[Likelihood, DropoutGuide]]:
    """``build(num_data)`` for :func:`bayesdrop.diagnostics.kfold`: a fresh model and guide of the run
    configuration (:func:`build`, its seed) for ``num_data`` training points."""

    def build_fold(num_data: int) -> tuple[Likelihood, DropoutGuide]:
        _, model, guide = build(config, ds)
        model.num_data = num_data
        return model, guide

    return build_fold


def fit_options(config: dict[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`bayesdrop.fit` a run configuration sets (``bayesdrop train`` writes the KL warm-up
    resolved to epochs and the learning-rate warm-up to steps): ``epochs``, ``batch_size``, ``lr``, ``kl_warmup``,
    ``lr_decay`` and ``lr_warmup`` (0 for a run configured before it existed, which trained without it)."""
    return {
        "epochs": config["epochs"],
        "batch_size": config.get("batch_size", 128),
        "lr": config.get("lr", DEFAULT_LR),
        "kl_warmup": config.get("kl_warmup", "auto"),
        "lr_decay": config.get("lr_decay", "linear"),
        "lr_warmup": config.get("lr_warmup", 0),
    }


def resolved_warmups(model: torch.nn.Module, train: bd_data.Split, config: dict[str, Any]) -> dict[str, int]:
    """The run's ``kl_warmup`` in epochs and ``lr_warmup`` in steps, ``"auto"`` resolved as :func:`bayesdrop.fit`
    resolves it for ``model`` on ``train`` with ``config``'s epochs and batch size: what ``config.json`` records."""
    steps = config["epochs"] * steps_per_epoch(train, len(train.y), config["batch_size"])
    return {
        "kl_warmup": resolve_kl_warmup(model, config["epochs"], config["kl_warmup"]),
        "lr_warmup": resolve_lr_warmup(model, steps, config["lr_warmup"]),
    }


def inputs(ds: bd_data.Dataset, config: dict[str, Any], split: bd_data.Split) -> bd_data.Split:
    """The split shaped for the architecture (images for conv nets, sequences for recurrent ones)."""
    kind = parse_arch(config["arch"])[0]
    if kind == "lenet5":
        return bd_data.Split(ds.images(split), split.y)
    if kind == "rnn":
        return bd_data.Split(ds.sequences(split), split.y)
    return split


MAX_CONFIG_BYTES = 1 << 20  # a config.json larger than this is refused unread

# key -> (accepted types, required): what `bayesdrop train` writes into config.json
_CONFIG_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "method": ((str,), True),
    "hyper": ((dict,), False),
    "input_method": ((str, type(None)), False),
    "input_hyper": ((dict,), False),
    "dataset": ((str,), True),
    "mnist_dir": ((str, type(None)), False),
    "arch": ((str,), True),
    "epochs": ((int,), True),
    "batch_size": ((int,), False),
    "lr": ((int, float), False),
    "kl_warmup": ((int, str, type(None)), False),
    "lr_decay": ((str, type(None)), False),
    "lr_warmup": ((int, str), False),
    "seed": ((int,), False),
    "data_seed": ((int,), False),
}


def _read_json(path: Path, what: str, max_bytes: int) -> Any:
    """The JSON value of a run's file ``path`` (a ``what``), not through a symbolic link and at most ``max_bytes``
    long, else an error naming the file."""
    if path.is_symlink():
        raise RunDirectoryError(f"{path}: a symbolic link; refusing to read a {what} through it")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path}: {size} bytes, more than a {what} holds ({max_bytes})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: not a bayesdrop {what} ({type(exc).__name__}: {exc})") from None


def read_config(path: Path) -> dict[str, Any]:
    """Read and check a run's ``config.json``: a JSON object whose keys have the types ``bayesdrop train``
    writes (hyper-parameters: numbers, strings, booleans or null), else a ``ValueError`` naming the file and key."""
    config = _read_json(path, "run configuration", MAX_CONFIG_BYTES)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    for key, (types, required) in _CONFIG_KEYS.items():
        if key not in config:
            if required:
                raise ValueError(f"{path}: missing key {key!r}")
            continue
        value = config[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ValueError(f"{path}: {key!r} must be {names}, got {type(value).__name__}")
    for key in ("hyper", "input_hyper"):
        for name, v in config.get(key, {}).items():
            if not isinstance(v, (int, float, str, bool, type(None))):
                raise ValueError(f"{path}: {key}[{name!r}] must be a number, string, boolean or null")
    if not 1 <= config["epochs"] <= 10**6:
        raise ValueError(f"{path}: 'epochs' must be in [1, 1000000], got {config['epochs']}")
    for key, low in (("batch_size", 1), ("seed", 0), ("data_seed", 0)):
        if key in config and config[key] < low:
            raise ValueError(f"{path}: {key!r} must be >= {low}, got {config[key]}")
    if "lr" in config and not (math.isfinite(config["lr"]) and config["lr"] > 0):
        raise ValueError(f"{path}: 'lr' must be a finite number > 0, got {config['lr']}")
    for key in ("kl_warmup", "lr_warmup"):
        if isinstance(config.get(key), int) and config[key] < 0:
            raise ValueError(f"{path}: {key!r} must be >= 0, got {config[key]}")
    if isinstance(config.get("lr_warmup"), str) and config["lr_warmup"] != "auto":
        raise ValueError(f"{path}: 'lr_warmup' must be 'auto' or an int >= 0, got {config['lr_warmup']!r}")
    return config


MAX_HISTORY_BYTES = 1 << 28  # a history.json larger than this is refused unread


def read_history(path: Path) -> dict[str, list[float]]:
    """Read and check a run's ``history.json``: a JSON object of lists of numbers, one per epoch (what
    ``bd.fit``'s ``FitResult.history`` holds), else a ``ValueError`` naming the file and what is wrong."""
    history = _read_json(path, "training history", MAX_HISTORY_BYTES)
    if not isinstance(history, dict):
        raise ValueError(
            f"{path}: expected a JSON object of lists (one number per epoch), got {type(history).__name__}"
        )
    for key, values in history.items():
        if not isinstance(values, list):
            raise ValueError(f"{path}: {key!r} must be a list of numbers (one per epoch), got {type(values).__name__}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                shown = repr(v) if len(repr(v)) <= 40 else type(v).__name__
                raise ValueError(f"{path}: {key!r} must be a list of numbers (one per epoch), holds {shown}")
    return history


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked: a file or symbolic link, not empty, in use, incomplete, or
    holding files of two runs.  The message names the directory or file and the remedy."""


def check_run_path(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """``path`` as a run directory: refused (:class:`RunDirectoryError` naming ``flag``) if it is a symbolic link or
    an existing file.  It need not exist."""
    run = Path(path)
    if run.is_symlink():
        raise RunDirectoryError(f"`{flag}` {os.fspath(path)!r} is a symbolic link; give the directory itself")
    if run.exists() and not run.is_dir():
        raise RunDirectoryError(f"`{flag}` {os.fspath(path)!r} is a file; give a directory")
    return run


class RunLock:
    """An exclusive lock on a run directory while a process uses it (a context manager).

    ``fcntl.flock`` on ``<run>/.lock``, opened without following a symbolic link (``O_NOFOLLOW``), non-blocking:
    a second process (or a second lock in this one) gets a :class:`RunDirectoryError` at once.  The system drops
    the lock when its process ends, even killed, so no stale lock remains; the file itself stays.

    Parameters
    ----------
    run
        The run directory.
    flag
        The argument named in errors (``--out``, ``run_dir``).
    create
        Create ``run`` (and its parents) first.
    """

    def __init__(self, run: str | os.PathLike[str], flag: str = "--out", *, create: bool = False):
        self.run, self.flag, self.create = Path(run), flag, create
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if self.create:
            try:
                self.run.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise named_os_error(err, self.run, "creating the run directory") from err
        check_run_path(self.run, self.flag)
        if not self.run.is_dir():
            raise RunDirectoryError(f"`{self.flag}` {os.fspath(self.run)!r} is not a directory")
        path = self.run / LOCK
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        if fcntl is None:  # pragma: no cover
            flags |= os.O_EXCL
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP or path.is_symlink():
                raise RunDirectoryError(f"`{self.flag}`: {path} is a symbolic link; refusing to follow it") from None
            if err.errno == errno.EEXIST:  # pragma: no cover - no fcntl
                raise RunDirectoryError(self._busy(path, None)) from None
            raise named_os_error(err, path, "opening the run's lock file") from err
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunDirectoryError(self._busy(path, owner)) from None
                raise named_os_error(err, path, "locking the run") from err
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def _busy(self, path: Path, owner: str | None) -> str:
        by = f" (pid {owner})" if owner and owner.isdigit() else ""
        return (
            f"`{self.flag}` {os.fspath(self.run)!r} is in use by another bayesdrop process{by}, which holds {path}: "
            "wait for it to finish or use another directory"
        )

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if self.fd is None:
            return
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None
        if fcntl is None:  # pragma: no cover
            with contextlib.suppress(OSError):
                os.unlink(self.run / LOCK)


def _stale_temporary(name: str) -> bool:
    """A temporary file of an atomic write that a killed process left (``.<name>.<random>.tmp``)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def scan_run_dir(run: Path, flag: str = "--out") -> list[str]:
    """The names in ``run`` but the lock and stale temporary files; a :class:`RunDirectoryError` if any entry is a
    symbolic link (the run's files are never written or read through one)."""
    names = []
    for entry in os.scandir(run):
        if entry.is_symlink():
            raise RunDirectoryError(
                f"`{flag}` {os.fspath(run)!r} holds a symbolic link, {entry.name!r}; refusing to write or read "
                "through it (remove it)"
            )
        if entry.name != LOCK and not _stale_temporary(entry.name):
            names.append(entry.name)
    return sorted(names)


def prepare_run_dir(run: Path, *, overwrite: bool = False, resume: bool = False, flag: str = "--out") -> None:
    """Make ``run`` (locked by the caller, :class:`RunLock`) ready for ``bayesdrop train``.

    Refused with a :class:`RunDirectoryError` if it holds a symbolic link, or, without ``overwrite`` and
    ``resume``, if it is not empty.  ``overwrite`` empties it (the lock aside); ``resume`` keeps it.  Stale
    temporary files of killed writers are removed.
    """
    names = scan_run_dir(run, flag)
    for entry in os.scandir(run):
        if _stale_temporary(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    if resume or not names:
        return
    if not overwrite:
        shown = ", ".join(names[:5]) + (" and more" if len(names) > 5 else "")
        raise RunDirectoryError(
            f"`{flag}` {os.fspath(run)!r} is not empty (it holds {shown}): pass --overwrite to replace its contents, "
            "--resume to continue the run in it, or choose another directory"
        )
    for name in names:
        path = run / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as err:
            raise named_os_error(err, path, "removing it for --overwrite") from err


def mark_complete(run: Path, info: dict[str, Any]) -> None:
    """Write ``complete.json`` (the run's format, ``info`` and the files of the run), last, atomically."""
    files = [name for name in (CONFIG, CHECKPOINT, HISTORY, METRICS) if (run / name).is_file()]
    atomic_write_json(run / COMPLETE, {"format": RUN_FORMAT, **info, "files": files})


def run_status(run: Path) -> dict[str, Any]:
    """What a run directory holds: ``complete`` (the marker is there), ``config`` (``config.json`` exists),
    ``checkpoint`` (``checkpoint.pt`` exists), and, read from the marker or the checkpoint, ``epochs_done`` and
    ``epochs`` when known."""
    status: dict[str, Any] = {
        "complete": (run / COMPLETE).is_file(),
        "config": (run / CONFIG).is_file(),
        "checkpoint": (run / CHECKPOINT).is_file(),
    }
    if status["checkpoint"]:
        with contextlib.suppress(Exception):
            training = read_checkpoint(run / CHECKPOINT)["training"] or {}
            status.update(epochs_done=int(training["epoch"]), epochs=int(training["epochs"]))
    return status


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys on which two run configurations differ (the data's location aside)."""
    keys = {*a, *b} - set(LOCATION_KEYS)
    return sorted(k for k in keys if a.get(k) != b.get(k))


def load_run(run_dir: str | os.PathLike) -> tuple[bd_data.Dataset, Likelihood, DropoutGuide, dict[str, Any]]:
    """Rebuild data, model and guide of a complete run directory written by ``bayesdrop train``.

    ``config.json`` is checked (:func:`read_config`), the run must be complete (``complete.json``, written last),
    and the configuration embedded in ``checkpoint.pt`` must equal ``config.json``'s (the data's location,
    ``mnist_dir``, aside).  No entry of the directory may be a symbolic link.

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` or its ``config.json`` or ``checkpoint.pt`` is missing.
    ValueError
        (:class:`RunDirectoryError` for the directory's state) naming the file: a hostile or invalid
        ``config.json``, an incomplete run, a checkpoint of another run or model.
    """
    run = check_run_path(run_dir, "run_dir")
    cfg_path = run / CONFIG
    if not run.is_dir() or not cfg_path.is_file():
        raise FileNotFoundError(f"`run_dir` {os.fspath(run_dir)!r} has no config.json (not a bayesdrop run)")
    scan_run_dir(run, "run_dir")
    config = read_config(cfg_path)
    parse_arch(config["arch"])
    ckpt_path = run / CHECKPOINT
    if not (run / COMPLETE).is_file():
        status = run_status(run)
        where = (
            f" (stopped after {status['epochs_done']} of {status['epochs']} epochs)" if "epochs_done" in status else ""
        )
        raise RunDirectoryError(
            f"`run_dir` {os.fspath(run)!r} holds an incomplete run{where}: it has no {COMPLETE}, which `bayesdrop "
            f"train` writes last; continue it with `bayesdrop train --out {os.fspath(run)} --resume`"
        )
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"`run_dir` {os.fspath(run)!r} has no {CHECKPOINT}")
    saved = read_checkpoint(ckpt_path, name="run_dir")
    embedded = saved.get("config")
    if not isinstance(embedded, dict):
        raise RunDirectoryError(f"{ckpt_path}: holds no run configuration to check {cfg_path} against")
    differ = _same_run(config, embedded)
    if differ:
        shown = "; ".join(
            f"{k}: {config.get(k)!r} in config.json, {embedded.get(k)!r} in the checkpoint" for k in differ
        )
        raise RunDirectoryError(
            f"{cfg_path} does not match the configuration embedded in {ckpt_path} ({shown}): the directory mixes two "
            "runs; train it again with --overwrite"
        )
    ds, model, guide = build(config)
    x0 = inputs(ds, config, ds.train).x[:2]
    guide(x0)  # record layer order and shapes before loading state
    where = f"{ckpt_path}"
    check_state_dict(model, saved["model"], "model", where)
    check_state_dict(guide, saved["guide"], "guide", where)
    model.load_state_dict(saved["model"])
    guide.load_state_dict(saved["guide"])
    return ds, model, guide, config
