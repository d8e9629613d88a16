"""Files written whole or not at all.

For code that writes results other processes may read (checkpoints, run directories): :func:`atomic_write` fills a
unique temporary file in the target's directory, flushes and fsyncs it, then renames it over the target with
``os.replace``.  A reader sees the old file or the new one, never a part; two concurrent writers each publish a
whole file (the last rename wins); an interrupted or failed write (a full disk, a signal) leaves the target as it
was and removes its temporary file.  The rename replaces a symbolic link at the target path itself, so a link
planted there is never written through.  Every ``OSError`` names the file it concerns.  The published file has
the permission bits ``mode`` (0644 by default, whatever the umask).  :func:`atomic_write_path` does the same for
writers that take a file name rather than a file object (netCDF).

Example
-------
>>> from bayesdrop.fileio import atomic_write_text
>>> atomic_write_text("metrics.json", '{"acc": 0.97}\\n')  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from typing import IO, Any

__all__ = [
    "DeferredSignals",
    "atomic_write",
    "atomic_write_path",
    "atomic_write_text",
    "atomic_write_json",
    "check_path",
    "named_os_error",
    "TEMP_SUFFIX",
]

TEMP_SUFFIX = ".tmp"  # the temporary files of atomic_write: ``.<name>.<random>.tmp`` beside the target


def check_path(path: Any, name: str = "path", what: str = "") -> str:
    """``path`` as a ``str`` (``os.fspath``) if it is a path, a ``str`` or an ``os.PathLike`` (``pathlib.Path``);
    a ``TypeError`` naming ``name`` (and ``what`` it is, if given) otherwise: ``None``, a number, a file object or
    ``bytes``; a ``ValueError`` for the empty path (which ``pathlib`` would read as the current directory).

    The one check of a path argument, before anything is read or written.

    Example
    -------
    >>> check_path(3, "out_dir", "the report's directory")
    Traceback (most recent call last):
    ...
    TypeError: `out_dir` must be a path (str or os.PathLike; the report's directory), got int
    """
    accepted = f"a path (str or os.PathLike{f'; {what}' if what else ''})"
    shown = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(shown, str):
        got = f"{type(path).__name__} of bytes" if isinstance(path, os.PathLike) else type(path).__name__
        raise TypeError(f"`{name}` must be {accepted}, got {got}")
    if not shown:
        raise ValueError(f"`{name}` must be {accepted}, got the empty path ''")
    return shown


def named_os_error(err: OSError, path: str | os.PathLike[str], doing: str = "writing") -> OSError:
    """``err`` with ``path`` as its file name (``doing`` says what failed), of the same ``OSError`` subclass.

    An error from ``write`` or ``fsync`` (a full disk) names no file; an error on a temporary file names that one.
    The returned error names the file the caller asked for.
    """
    strerror = err.strerror or str(err) or type(err).__name__
    code = err.errno if err.errno is not None else errno.EIO
    named = OSError(code, f"{strerror} ({doing})", os.fspath(path))
    return named if isinstance(named, type(err)) else type(err)(code, f"{strerror} ({doing})", os.fspath(path))


def _fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable where the platform allows it (best effort)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    with contextlib.suppress(OSError):
        fd = os.open(directory, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _publish(path: str | os.PathLike[str], fill: Callable[[int, str], None], mode: int) -> None:
    """Make a unique temporary file beside ``path``, let ``fill(fd, name)`` write and fsync it (``fill`` owns the
    descriptor ``fd`` and closes it, whether it succeeds or not), give it the permission bits ``mode`` and rename
    it over ``path``; on any failure remove it and raise ``OSError`` naming ``path``."""
    target = os.fspath(path)
    directory = os.path.dirname(target) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.", suffix=TEMP_SUFFIX)
    except OSError as err:
        raise named_os_error(err, target, "creating a temporary file beside it") from err
    try:
        fill(fd, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise named_os_error(err, target) from err
        if isinstance(err, RuntimeError) and "write" in str(err).lower():  # torch's stream writer on a full disk
            raise OSError(errno.EIO, f"{err} (writing)", target) from err
        raise
    _fsync_directory(directory)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any], *, mode: int = 0o644) -> None:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file that then replaces ``path``.

    Parameters
    ----------
    path
        The file to write; its directory must exist.  A symbolic link at ``path`` is replaced, not followed.
    write
        Called once with the temporary file, opened for binary writing.
    mode
        Permission bits of the published file.

    Raises
    ------
    OSError
        Of the subclass the system gave (``FileNotFoundError``, ``PermissionError``, a full disk, ...), naming
        ``path``.  ``path`` is left as it was.
    """

    def fill(fd: int, tmp: str) -> None:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())

    _publish(path, fill, mode)


def atomic_write_path(path: str | os.PathLike[str], write: Callable[[str], Any], *, mode: int = 0o644) -> None:
    """Write ``path`` atomically with a writer that takes a file name (``xarray``'s ``to_netcdf``, HDF5): as
    :func:`atomic_write`, but ``write(name)`` is called with the path of the temporary file, which it may reopen
    or replace; the file is then fsynced, given ``mode`` and renamed over ``path``.

    Parameters
    ----------
    path
        The file to write; its directory must exist.  A symbolic link at ``path`` is replaced, not followed.
    write
        Called once with the name of the temporary file (an empty file beside ``path``).
    mode
        Permission bits of the published file.

    Raises
    ------
    OSError
        Of the subclass the system gave, naming ``path`` (not the temporary file).  ``path`` is left as it was.
    """

    def fill(fd: int, tmp: str) -> None:
        os.close(fd)
        write(tmp)
        done = os.open(tmp, os.O_RDWR if os.name == "nt" else os.O_RDONLY)  # Windows syncs writable handles only
        try:
            os.fsync(done)
        finally:
            os.close(done)

    _publish(path, fill, mode)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON (and a final newline) to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


class DeferredSignals:
    """SIGINT and SIGTERM recorded instead of raised while the block runs (in the main thread; elsewhere, and with
    ``enabled=False``, nothing changes): the first signal is kept in :attr:`signum` for the block to act on where it
    can stop cleanly (:meth:`raise_pending`); a second one raises ``KeyboardInterrupt`` at once.  The previous
    handlers come back on exit.  A signal the process ignores (``SIG_IGN``: the SIGINT of a job a script started
    in the background) stays ignored.

    For work that a signal must not cut in the middle: ``bd.fit`` stops between steps and saves its checkpoint;
    a netCDF write, whose library would swallow a ``KeyboardInterrupt`` raised inside one of its callbacks, stops
    before its file replaces the old one.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise _interrupt(signum, f"second {signal.Signals(signum).name}: stopped at once")
        self.signum = signum

    def raise_pending(self) -> None:
        """Raise ``KeyboardInterrupt`` (its ``signum`` the signal's number) if a signal arrived in the block."""
        if self.signum is not None:
            raise _interrupt(self.signum, signal.Signals(self.signum).name)

    def __enter__(self) -> DeferredSignals:
        if self.enabled:
            for s in self.SIGNALS:
                if signal.getsignal(s) is signal.SIG_IGN:  # the process ignores it (a background job's SIGINT)
                    continue
                with contextlib.suppress(ValueError, OSError):
                    self.previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self.previous = {}


def _interrupt(signum: int, message: str) -> KeyboardInterrupt:
    """A ``KeyboardInterrupt`` carrying the signal's number as ``signum`` (the command line exits 128 + it)."""
    err = KeyboardInterrupt(message)
    setattr(err, "signum", signum)  # noqa: B010 - KeyboardInterrupt declares no such attribute
    return err
