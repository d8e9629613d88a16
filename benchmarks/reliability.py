"""Hostile and unlucky inputs, by category, and how bayesdrop answers each.

A catalogue of cases, most generated from lists of bad values: arguments of ``bd.fit`` and its data, DataLoaders,
the command line, MNIST IDX files, checkpoints, ``.pt2`` files, run directories, signals and concurrent writers.
Each outcome is classified:

- **clear error**: a ``ValueError``, ``TypeError``, ``OSError`` (``FileNotFoundError``, ...), ``FloatingPointError``
  or a command-line exit with one line, whose message names the argument, option or file;
- **handled correctly**: no error, and the result checked (a resumed run equal to the uninterrupted one, a file
  intact, a loaded model that predicts as the saved one, ...);
- **deep traceback**: another exception (from inside torch, Pyro or NumPy), a traceback printed by the command
  line, or a message that names neither the argument nor the file;
- **silently wrong**: no error where one was due, or a result that fails its check.

The record (``benchmarks/results/reliability.md``) holds the counts by category, the cases that are neither clear
nor handled, and the largest difference between an interrupted-then-resumed run and the uninterrupted one.

Usage::

    python benchmarks/reliability.py [--out benchmarks/results/reliability.md]
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported: one thread, as the record says

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import errno  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import pickle  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
import zipfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402
from _common import RESULTS, device_name, write_results  # noqa: E402
from torch.utils.data import DataLoader, IterableDataset, TensorDataset  # noqa: E402

import bayesdrop as bd  # noqa: E402
from bayesdrop import cli, fileio  # noqa: E402
from bayesdrop.experiments import runs  # noqa: E402
from bayesdrop.experiments.report_io import quoted_command  # noqa: E402
from bayesdrop.infer.checkpoint import read_checkpoint  # noqa: E402

torch.set_num_threads(1)

CATEGORIES = [
    "API arguments",
    "DataLoaders",
    "CLI",
    "IDX files",
    "checkpoints",
    ".pt2 files",
    "run directories",
    "signals",
    "concurrent writers",
]
VERDICTS = ["clear error", "handled correctly", "deep traceback", "silently wrong"]
CLEAR_TYPES = (ValueError, TypeError, OSError, FloatingPointError)


@dataclass
class Case:
    """One hostile input: ``run()`` does it; a clear error names one of ``names``; ``check(result)`` says whether a
    result without an error is right (``None``: an error is due)."""

    category: str
    name: str
    run: Callable[[], Any]
    names: tuple[str, ...] = ()
    check: Callable[[Any], bool] | None = None
    note: str = ""  # where the fix of a case that is neither clear nor handled belongs


@dataclass
class Outcome:
    case: Case
    verdict: str
    detail: str


class CommandFailed(ValueError):
    """The command line exited non-zero with a one-line message (which the classifier reads)."""


def _innermost(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


def classify(case: Case) -> Outcome:
    """Run ``case`` and classify its outcome."""
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = case.run()
    except CLEAR_TYPES as err:
        message = " ".join(str(err).split())
        if any(n in message for n in case.names):
            return Outcome(case, "clear error", f"{type(err).__name__}: {message[:160]}")
        return Outcome(case, "deep traceback", f"{type(err).__name__} names none of {case.names}: {message[:200]}")
    except Exception as err:  # anything else is a deep traceback
        message = " ".join(str(err).split())
        return Outcome(case, "deep traceback", f"{type(err).__name__} at {_innermost(err)}: {message[:200]}")
    if case.check is None:
        return Outcome(case, "silently wrong", f"no error; returned {type(result).__name__}")
    try:
        ok = bool(case.check(result))
    except Exception as err:
        return Outcome(case, "silently wrong", f"its check failed: {type(err).__name__}: {err}")
    return Outcome(
        case, "handled correctly" if ok else "silently wrong", "" if ok else f"wrong result: {result!r}"[:200]
    )


# ----------------------------------------------------------------------------- builders


def classifier(width: int = 8, n: int = 40, seed: int = 0) -> tuple[bd.Classifier, bd.DropoutGuide]:
    torch.manual_seed(seed)
    model = bd.Classifier(bd.models.mlp(4, [width], 3), num_data=n)
    return model, bd.DropoutGuide(model)


def xy(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def quick_fit(data: Any = None, **kwargs: Any) -> bd.FitResult:
    model, guide = classifier()
    return bd.fit(model, guide, xy() if data is None else data, **{"epochs": 1, "progress": False, **kwargs})


def epochs_run(n: int) -> Callable[[bd.FitResult], bool]:
    return lambda r: len(r.history["elbo"]) == n and all(math.isfinite(v) for v in r.history["elbo"])


def cli_run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return int(code or 0), out.getvalue(), err.getvalue()


def command(argv: list[str]) -> Callable[[], str]:
    """A command line as a case: a non-zero exit is a :class:`CommandFailed` with its message (a traceback a
    ``RuntimeError``); success returns the output."""

    def run() -> str:
        code, out, err = cli_run(argv)
        if "Traceback" in err:
            raise RuntimeError(f"traceback printed: {err.strip().splitlines()[-1]}")
        if code != 0:  # one line of error (argparse's usage lines before its own are not counted)
            lines = [line for line in err.splitlines() if line.strip()]
            if code == 2 and lines and lines[0].startswith("usage:"):
                lines = [line for line in lines if ": error: " in line]
            if len(lines) != 1:
                raise RuntimeError(f"exit {code} with {len(lines)} lines: {' / '.join(lines)[:200]}")
            raise CommandFailed(f"exit {code}: {lines[0]}")
        return out

    return run


TRAIN = ["train", "--arch", "mlp:8", "--epochs", "1", "--num-samples", "2", "--quiet"]


class Workspace:
    """A temporary directory with a finished run (``base``) to copy for the run-directory cases."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bd-reliability-"))
        self.count = 0
        self.base = self.root / "base"
        code, _, err = cli_run([*TRAIN, "--out", str(self.base)])
        if code != 0:
            raise RuntimeError(f"the base run failed: {err}")

    def path(self, name: str = "x") -> Path:
        self.count += 1
        return self.root / f"{self.count:03d}-{name}"

    def run_copy(self) -> Path:
        dst = self.path("run")
        shutil.copytree(self.base, dst)
        return dst

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# ----------------------------------------------------------------------------- API arguments

BAD_FIT_ARGUMENTS: dict[str, list[Any]] = {
    "epochs": [0, -1, 1.5, "2", True, None, float("nan")],
    "batch_size": [0, -3, 2.5, "8", False],
    "lr": [0, -0.1, float("nan"), float("inf"), "0.01", True, None, [0.1]],
    "kl_warmup": [-1, 1.5, "half", True, None],
    "lr_decay": ["cosine", "", 1, True],
    "seed": [-1, 1.5, "0", True],
    "test_samples": [0, -1, 2.5, "5"],
    "checkpoint_every": [0, -2, 1.5, "3", True],
    "validate": ["yes", 1, 0.0],
    "lrt": ["no", None, 1],
    "progress": ["no", None],
    "optimizer": ["adam", 3],
    "loss": ["elbo", 3],
    "callbacks": ["abc", [lambda e, h: None], 5],
    "callback": ["stop", 3],
    "device": ["gpu0", 3.5],
    "run_config": ["config", [1, 2]],
    "resume": [3, 2.5],
    "checkpoint": [3, 2.5],
}
NAMES = {"device": ("`device`",)}


def _show(value: Any) -> str:
    """A value as a case's name shows it (a function without its address)."""
    if callable(value):
        return "<function>"
    if isinstance(value, list):
        return "[" + ", ".join(map(_show, value)) + "]"
    return repr(value)


OUTSIDE = "the fix belongs in `Classifier.check_targets` (bayesdrop/likelihoods.py): refuse labels of shape (N, 1)"


def api_cases(ws: Workspace) -> list[Case]:
    cases = []
    for arg, values in BAD_FIT_ARGUMENTS.items():
        for value in values:
            extra: dict[str, Any] = {arg: value}
            if arg == "checkpoint_every":
                extra["checkpoint"] = ws.path("ckpt") / "never.pt"
            cases.append(
                Case(
                    "API arguments",
                    f"fit({arg}={_show(value)})"[:60],
                    lambda extra=extra: quick_fit(**extra),
                    NAMES.get(arg, (f"`{arg}`",)),
                )
            )
    x, y = xy()
    cases += [
        Case("API arguments", "fit(epochs=2, batch_size=1000 > N)", lambda: quick_fit(epochs=2, batch_size=1000), (), epochs_run(2)),
        Case("API arguments", "fit(kl_warmup=0, lr_decay=None, seed=None)", lambda: quick_fit(kl_warmup=0, lr_decay=None, seed=None), (), epochs_run(1)),
        Case("API arguments", "fit(checkpoint=<missing dir>/x.pt)", lambda: quick_fit(checkpoint=ws.root / "nope" / "x.pt"), ("`checkpoint`",)),
        Case("API arguments", "fit(checkpoint=<a directory>)", lambda: quick_fit(checkpoint=ws.root), ("`checkpoint`",)),
        Case("API arguments", "fit(guide of another model)", lambda: bd.fit(classifier()[0], classifier()[1], xy(), epochs=1, progress=False), ("`guide`",)),
        Case("API arguments", "data: x float64 for a float32 model", lambda: quick_fit((x.double(), y)), ("`data`",)),
        Case("API arguments", "data: int32 labels", lambda: quick_fit((x, y.int())), (), epochs_run(1)),
        Case("API arguments", "data: labels 3..5 for 3 classes", lambda: quick_fit((x, y + 3)), ("`data.y`", "`data`")),
        Case("API arguments", "data: negative labels", lambda: quick_fit((x, y - 1)), ("`data.y`", "`data`")),
        Case("API arguments", "data: float labels for a classifier", lambda: quick_fit((x, y.float())), ("`data.y`", "`data`")),
        Case("API arguments", "data: labels of shape (N, 1)", lambda: quick_fit((x, y[:, None])), ("`data.y`", "`data`")),
        Case("API arguments", "data: 39 labels for 40 inputs", lambda: quick_fit((x, y[:39])), ("`data`",)),
        Case("API arguments", "data: 30 points, model built for 40", lambda: quick_fit((x[:30], y[:30])), ("`data`", "num_data")),
        Case("API arguments", "data: x with 5 features for 4 inputs", lambda: quick_fit((torch.randn(40, 5), y)), ("`x`", "`data`")),
        Case("API arguments", "data: NaN inputs", lambda: quick_fit((torch.full((40, 4), math.nan), y)), ("data", "`lr`")),
        Case("API arguments", "data: a string", lambda: quick_fit("digits"), ("`data`",)),
        Case("API arguments", "data: x only", lambda: quick_fit((x,)), ("`data`",)),
        Case("API arguments", "data: numpy arrays", lambda: quick_fit((x.numpy(), y.numpy())), (), epochs_run(1)),
        Case("API arguments", "test: labels out of range", lambda: quick_fit(test=(x, y + 7)), ("`test",)),
        Case("API arguments", "regression: y of shape (N, 1)", lambda: _regression(lambda y: y[:, None]), ("`data.y`", "`data`"), _regression_ok),
        Case("API arguments", "regression: y of shape (N, 2)", lambda: _regression(lambda y: torch.stack([y, y], 1)), ("`data.y`", "`data`")),
        Case("API arguments", "predict(num_samples=0)", lambda: bd.predict(*classifier(), x, num_samples=0), ("`num_samples`",)),
        Case("API arguments", "predict(rule='nope')", lambda: bd.predict(*classifier(), x, rule="nope"), ("`rule`",)),
        Case("API arguments", "predict(x of 5 features)", lambda: bd.predict(*classifier(), torch.randn(3, 5)), ("`x`",)),
        Case("API arguments", "evaluate: labels of shape (N, 1)", lambda: _trained_eval(lambda m, g: bd.evaluate(m, g, (x, y[:, None]))), ("`data.y`", "`data`"), note=OUTSIDE),
        Case("API arguments", "to_inference_data: labels (N, 1)", lambda: _trained_eval(lambda m, g: bd.to_inference_data(m, g, (x, y[:, None]), num_samples=3)), ("`data.y`", "`data`"), note=OUTSIDE),
        Case("API arguments", "evaluate(guide of another model)", lambda: bd.evaluate(classifier()[0], classifier()[1], (x, y)), ("`guide`",)),
        Case("API arguments", "compress.prune(threshold=nan)", lambda: _prune(math.nan), ("`threshold`",)),
        Case("API arguments", "compress.prune(threshold=inf)", lambda: _prune(math.inf), ("`threshold`",)),
        Case("API arguments", "compress.report(threshold='x'), vbd", lambda: _prune("x", report=True, method="vbd"), ("`threshold`",)),
        Case("API arguments", "compress.prune(threshold='x'), sparse-vd", lambda: _prune("x", method="sparse-vd"), ("`threshold`",)),
        Case("API arguments", "compress.prune(threshold=[3.0])", lambda: _prune([3.0], method="vbd"), ("`threshold`",)),
        Case("API arguments", "calibration: probabilities of 5", lambda: bd.diagnostics.expected_calibration_error(torch.full((4, 3), 5.0), torch.tensor([0, 1, 2, 0])), ("`probs`",)),
        Case("API arguments", "save_checkpoint into a missing directory", lambda: bd.save_checkpoint(ws.root / "none" / "c.pt", *classifier()), ("c.pt",)),
        Case("API arguments", "data.load('nope')", lambda: bd.data.load("nope"), ("`name`",)),
        Case("API arguments", "data.load('digits', seed=-1)", lambda: bd.data.load("digits", seed=-1), ("`seed`",)),
        Case("API arguments", "data: x with an extra axis (N, 1, 4)", lambda: quick_fit((x[:, None], y)), ("`x`",)),
        Case("API arguments", "test: x with an extra axis (N, 1, 4)", lambda: quick_fit(test=(x[:, None], y)), ("`test`",)),
        Case("API arguments", "test: x with 5 features for 4 inputs", lambda: quick_fit(test=(torch.randn(40, 5), y)), ("`test`",)),
        Case("API arguments", "a Classifier of one output", lambda: bd.Classifier(bd.models.mlp(4, [8], 1), num_data=40), ("`net`",)),
        Case("API arguments", "fit(run_config holding an object)", lambda: quick_fit(checkpoint=ws.path("rc.pt"), run_config={"a": object()}), ("`run_config",)),
        Case("API arguments", "fit(loss=an ELBO class)", lambda: quick_fit(loss=pyro.infer.TraceMeanField_ELBO), ("`loss`",)),
        Case("API arguments", "fit(seed=2**40)", lambda: quick_fit(seed=2**40), ("`seed`",)),
        Case("API arguments", "predict(return_samples='yes')", lambda: bd.predict(*classifier(), x, return_samples="yes"), ("`return_samples`",)),
        Case("API arguments", "nn.Conv2d(stride=0)", lambda: bd.nn.Conv2d(1, 4, 3, stride=0), ("`stride`",)),
        Case("API arguments", "compress.save(a Bayesian model)", lambda: bd.compress.save(classifier()[0], ws.path("m.pt2"), x[:2]), ("`module`",)),
        Case("API arguments", "posterior_mean(guide of another model)", lambda: bd.handlers.posterior_mean(classifier()[0], classifier()[1]), ("`guide`",)),
    ]  # fmt: skip
    return cases


def _notes(ws: Workspace) -> Path:
    """A directory holding a user's file: no comparison's output, which ``compare --out`` must not write into."""
    notes = ws.path("notes")
    notes.mkdir()
    (notes / "mynotes.txt").write_text("mine")
    return notes


def _trained_eval(call: Callable[[bd.Classifier, bd.DropoutGuide], Any]) -> Any:
    model, guide = classifier()
    guide(xy()[0])
    return call(model, guide)


def _regression(shape: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, float]:
    """A regressor fitted with targets reshaped by ``shape``: (its train RMSE, that of the same fit with (N,))."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 2, generator=g)
    y = x[:, 0] * 2 + 0.1 * torch.randn(60, generator=g)
    rmses = []
    for target in (shape(y), y):
        pyro.set_rng_seed(0)
        model = bd.Regressor(bd.models.mlp(2, [16], 1), num_data=60)
        guide = bd.DropoutGuide(model)
        bd.fit(model, guide, (x, target), epochs=30, batch_size=20, progress=False)
        rmses.append(bd.evaluate(model, guide, (x, y), num_samples=5)["rmse"])
    return rmses[0], rmses[1]


def _regression_ok(result: tuple[float, float]) -> bool:
    shaped, flat = result
    return abs(shaped - flat) < 1e-6


def _prune(threshold: Any, report: bool = False, method: str = "bernoulli") -> Any:
    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(4, [8], 3, method), num_data=40)
    guide = bd.DropoutGuide(model)
    guide(xy()[0])
    return (bd.compress.report if report else bd.compress.prune)(model, guide, threshold=threshold)


# ----------------------------------------------------------------------------- DataLoaders


class _Stream(IterableDataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield from zip(self.x, self.y)


class _Broken(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 40

    def __getitem__(self, i: int) -> Any:
        return {"inputs": torch.zeros(4), "label": 0}


def loader_cases(ws: Workspace) -> list[Case]:
    x, y = xy()

    def dl(*tensors: torch.Tensor, **kw: Any) -> DataLoader:
        return DataLoader(TensorDataset(*tensors), batch_size=8, **kw)

    dicts = [{"x": x[i], "y": y[i]} for i in range(40)]
    late = torch.cat([y[:-8], torch.full((8,), 9)])  # the last batch's labels out of range
    return [
        Case("DataLoaders", "labels out of range in the first batch", lambda: quick_fit(dl(x, y + 5)), ("`data.y`",)),
        Case("DataLoaders", "labels out of range in a later batch", lambda: quick_fit(dl(x, late)), ("`data.y`", "`data`")),
        Case("DataLoaders", "float64 batches", lambda: quick_fit(dl(x.double(), y)), ("`data`",)),
        Case("DataLoaders", "int32 labels", lambda: quick_fit(dl(x, y.int())), (), epochs_run(1)),
        Case("DataLoaders", "dict batches {'x', 'y'}", lambda: quick_fit(DataLoader(dicts, batch_size=8)), (), epochs_run(1)),
        Case("DataLoaders", "dict batches with other keys", lambda: quick_fit(DataLoader(_Broken(), batch_size=8)), ("`data`",)),
        Case("DataLoaders", "(x, y, w) triples", lambda: quick_fit(dl(x, y, y)), ("`data`",)),
        Case("DataLoaders", "x-only batches", lambda: quick_fit(dl(x)), ("`data`",)),
        Case("DataLoaders", "an empty loader", lambda: quick_fit(dl(x[:0], y[:0])), ("`data`",)),
        Case("DataLoaders", "IterableDataset without a length", lambda: quick_fit(DataLoader(_Stream(x, y), batch_size=8)), (), epochs_run(1)),
        Case("DataLoaders", "an empty IterableDataset", lambda: quick_fit(DataLoader(_Stream(x[:0], y[:0]), batch_size=8)), ("`data`",)),
        Case("DataLoaders", "30 examples for num_data=40", lambda: quick_fit(dl(x[:30], y[:30])), ("`data`",)),
        Case("DataLoaders", "shuffled loader, 2 epochs", lambda: quick_fit(dl(x, y, shuffle=True), epochs=2), (), epochs_run(2)),
        Case("DataLoaders", "float labels for a classifier", lambda: quick_fit(dl(x, y.float())), ("`data.y`", "`data`")),
        Case("DataLoaders", "labels of shape (B, 1)", lambda: quick_fit(dl(x, y[:, None])), ("`data.y`", "`data`")),
        Case("DataLoaders", "a batch_size beside a loader", lambda: quick_fit(dl(x, y), batch_size=8), ("`batch_size`",)),
        Case("DataLoaders", "a loader as `test`", lambda: quick_fit(test=dl(x, y)), ("`test`",), epochs_run(1)),
    ]  # fmt: skip


# ----------------------------------------------------------------------------- command line


def cli_cases(ws: Workspace) -> list[Case]:
    out = lambda: str(ws.path("out"))  # noqa: E731 - a fresh directory per case
    a_file = ws.root / "a_file"
    a_file.write_text("x")
    incomplete = ws.run_copy()
    (incomplete / runs.COMPLETE).unlink()
    bad: list[tuple[list[str], tuple[str, ...]]] = [
        (["--epochs", "0"], ("--epochs",)),
        (["--epochs", "-3"], ("--epochs",)),
        (["--epochs", "two"], ("--epochs",)),
        (["--batch-size", "0"], ("--batch-size",)),
        (["--num-samples", "0"], ("--num-samples",)),
        (["--lr", "nan"], ("--lr", "`lr`")),
        (["--lr", "-1"], ("--lr", "`lr`")),
        (["--lr", "0"], ("--lr", "`lr`")),
        (["--kl-warmup", "-1"], ("--kl-warmup",)),
        (["--kl-warmup", "x"], ("--kl-warmup",)),
        (["--lr-decay", "cosine"], ("--lr-decay",)),
        (["--method", "nope"], ("nope", "--method")),
        (["--arch", "mlp:"], ("--arch",)),
        (["--arch", "mlp:0"], ("--arch",)),
        (["--arch", "mlp:100000,100000"], ("--arch",)),
        (["--arch", "transformer"], ("--arch",)),
        (["--dataset", "nope"], ("nope", "`name`", "--dataset")),
        (["--dataset", "mnist"], ("--mnist-dir",)),
        (["--dataset", "mnist", "--mnist-dir", str(ws.root / "none")], ("none",)),
        (["--hyper", "p=2"], ("`p`", "p=", "'p'")),
        (["--hyper", "junk"], ("--hyper",)),
        (["--hyper", "q=0.1"], ("q",)),
        (["--device", "nope"], ("`device`", "--device")),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "cuda:99"], ("`device`", "--device")),
        (["--checkpoint-every", "0"], ("--checkpoint-every",)),
        (["--seed", "-1"], ("`seed`", "--seed")),
        (["--input-method", "nope"], ("nope", "--input-method")),
    ]
    cases = [
        Case("CLI", f"train {' '.join(flags)}"[:60], command([*TRAIN, *flags, "--out", out()]), names)
        for flags, names in bad
    ]
    cases += [
        Case("CLI", "train --out <a file>", command([*TRAIN, "--out", str(a_file)]), ("--out",)),
        Case("CLI", "train --resume into an empty directory", command([*TRAIN, "--resume", "--out", out()]), ("--resume",)),
        Case("CLI", "train --resume --overwrite", command([*TRAIN, "--resume", "--overwrite", "--out", out()]), ("--resume",)),
        Case("CLI", "train --resume with another --epochs", command([*TRAIN[:3], "--epochs", "3", "--resume", "--out", str(incomplete)]), ("--epochs",)),
        Case("CLI", "train --resume of a finished run", command([*TRAIN, "--resume", "--out", str(ws.run_copy())]), (), lambda o: "already complete" in o),
        Case("CLI", "report <missing>", command(["report", str(ws.root / "missing")]), ("run_dir", "missing")),
        Case("CLI", "report --num-samples 0", command(["report", str(ws.base), "--num-samples", "0"]), ("--num-samples",)),
        Case("CLI", "report --ood-points -1", command(["report", str(ws.base), "--ood-points", "-1"]), ("--ood-points",)),
        Case("CLI", "report <an incomplete run>", command(["report", str(incomplete)]), ("run_dir", "incomplete")),
        Case("CLI", "prune --threshold nan", command(["prune", str(ws.run_copy()), "--threshold", "nan"]), ("`threshold`", "--threshold")),
        Case("CLI", "prune --threshold inf", command(["prune", str(ws.run_copy()), "--threshold", "inf"]), ("`threshold`", "--threshold")),
        Case("CLI", "prune <a file>", command(["prune", str(a_file)]), ("run_dir", "a_file")),
        Case("CLI", "compare --out <a file>", command(["compare", "--methods", "bernoulli", "--out", str(a_file)]), ("--out",)),
        Case("CLI", "compare --out <a directory of notes>", command(["compare", "--methods", "bernoulli", "--epochs", "1", "--out", str(_notes(ws))]), ("--out",)),
        Case("CLI", "prune --threshold sharp-rise of a bernoulli run", command(["prune", str(ws.run_copy()), "--threshold", "sharp-rise"]), ("--threshold",)),
        Case("CLI", "compare --methods nope", command(["compare", "--methods", "nope", "--epochs", "1", "--out", out()]), ("nope",)),
        Case("CLI", "compare --epochs 0", command(["compare", "--epochs", "0", "--out", out()]), ("--epochs",)),
        Case("CLI", "an unknown command", command(["fly"]), ("fly", "invalid choice")),
    ]  # fmt: skip
    return cases


# ----------------------------------------------------------------------------- IDX files


def _idx_header(magic: int, dims: tuple[int, ...]) -> bytes:
    return np.array([magic, *dims], dtype=">i4").tobytes()


def _mnist_dir(root: Path, n: int = 4, side: int = 28) -> None:
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(
            _idx_header(2049, (n,)) + rng.integers(0, 10, n, dtype=np.uint8).tobytes()
        )
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(
            _idx_header(2051, (n, side, side)) + rng.integers(0, 256, (n, side, side), dtype=np.uint8).tobytes()
        )


def _bomb_member() -> bytes:
    return gzip.compress(bytes(64 << 20), compresslevel=9)


def idx_cases(ws: Workspace) -> list[Case]:
    member = _bomb_member()
    images = "train-images-idx3-ubyte"
    labels = "train-labels-idx1-ubyte"

    def with_file(name: str, content: bytes | None, *, gz: bool = False, link: bool = False) -> Callable[[], Any]:
        def run() -> Any:
            root = ws.path("mnist")
            root.mkdir()
            _mnist_dir(root)
            (root / name).unlink()
            target = root / (f"{name}.gz" if gz else name)
            if link:
                os.symlink(target, target)  # a loop
            elif content is None:
                target.mkdir()
            else:
                target.write_bytes(content)
            t0 = time.perf_counter()
            ds = bd.data.load_mnist(root)
            return ds, time.perf_counter() - t0

        return run

    def bomb() -> bytes:
        return gzip.compress(_idx_header(2051, (60000, 28, 28))) + member * 48

    ok = lambda r: r[0].train.x.shape == (4, 784) and r[1] < 5  # noqa: E731
    hdr = _idx_header(2051, (4, 28, 28))
    return [
        Case("IDX files", "a valid directory", with_file(images, hdr + bytes(4 * 784)), (), ok),
        Case("IDX files", "the directory missing", lambda: bd.data.load_mnist(ws.root / "no-mnist"), ("no-mnist",)),
        Case("IDX files", "a file missing", _missing(ws, images), (images,)),
        Case("IDX files", "an empty file", with_file(images, b""), (images,)),
        Case("IDX files", "a 3-byte file", with_file(images, b"abc"), (images,)),
        Case("IDX files", "the wrong magic", with_file(images, _idx_header(2049, (4, 28, 28)) + bytes(4 * 784)), (images,)),
        Case("IDX files", "a negative dimension", with_file(images, _idx_header(2051, (-4, 28, 28))), (images,)),
        Case("IDX files", "a zero dimension", with_file(images, _idx_header(2051, (4, 0, 28))), (images,)),
        Case("IDX files", "a header declaring 7.6 GB", with_file(images, _idx_header(2051, (9_700_000, 28, 28)) + bytes(100)), (images,)),
        Case("IDX files", "dimensions of 2^31 - 1", with_file(images, _idx_header(2051, (2**31 - 1,) * 3)), (images,)),
        Case("IDX files", "a truncated payload", with_file(images, hdr + bytes(100)), (images,)),
        Case("IDX files", "a longer payload", with_file(images, hdr + bytes(4 * 784 + 1)), (images,)),
        Case("IDX files", "a 3 MB gzip bomb (3 GiB)", with_file(images, bomb(), gz=True), (images,)),
        Case("IDX files", "corrupt gzip", with_file(images, b"\x1f\x8b\x08\x00garbage" * 10, gz=True), (images,)),
        Case("IDX files", "a truncated gzip stream", with_file(images, _cut(gzip.compress(hdr + bytes(4 * 784))), gz=True), (images,)),
        Case("IDX files", "a raw file named .gz", with_file(images, hdr + bytes(4 * 784), gz=True), (images,)),
        Case("IDX files", "labels above 9", with_file(labels, _idx_header(2049, (4,)) + bytes([0, 1, 12, 3])), (labels,)),
        Case("IDX files", "3 labels for 4 images", with_file(labels, _idx_header(2049, (3,)) + bytes(3)), (labels, images)),
        Case("IDX files", "train 20x20, test 28x28", with_file(images, _idx_header(2051, (4, 20, 20)) + bytes(1600)), (images,)),
        Case("IDX files", "a directory in a file's place", with_file(images, None), (images,)),
        Case("IDX files", "a symbolic link loop", with_file(images, b"", link=True), (images,)),
        Case("IDX files", "load_mnist(3)", lambda: bd.data.load_mnist(3), ("`directory`", "3")),  # type: ignore[arg-type]
    ]  # fmt: skip


def _cut(blob: bytes) -> bytes:
    return blob[: len(blob) // 2]


def _missing(ws: Workspace, name: str) -> Callable[[], Any]:
    def run() -> Any:
        root = ws.path("mnist")
        root.mkdir()
        _mnist_dir(root)
        (root / name).unlink()
        return bd.data.load_mnist(root)

    return run


# ----------------------------------------------------------------------------- checkpoints


class _Payload:
    """Unpickling this creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


def checkpoint_cases(ws: Workspace) -> list[Case]:
    x, y = xy()
    good = ws.path("good.pt")
    model, guide = classifier()
    bd.fit(model, guide, (x, y), epochs=2, progress=False, checkpoint=good)
    state = read_checkpoint(good)
    marker = ws.root / "payload_ran"

    def written(name: str, blob: bytes) -> Path:
        p = ws.path(name)
        p.write_bytes(blob)
        return p

    def saved(obj: Any, name: str = "c.pt") -> Path:
        p = ws.path(name)
        torch.save(obj, p)
        return p

    def tampered(change: Callable[[dict], None]) -> Path:
        s = copy.deepcopy(state)
        change(s)
        return saved(s)

    def load(path: Path) -> Any:
        m, g = classifier()
        g(x)
        return bd.load_checkpoint(path, m, g)

    def resume(path: Path, **kw: Any) -> Any:
        m, g = classifier()
        return bd.fit(m, g, (x, y), **{"epochs": 2, "progress": False, "resume": path, **kw})

    blob = good.read_bytes()
    flipped = bytearray(blob)
    for i in range(200, len(flipped), 997):
        flipped[i] ^= 0xFF
    files: dict[str, Path] = {
        "missing": ws.root / "missing.pt",
        "empty": written("empty.pt", b""),
        "junk": written("junk.pt", b"not a checkpoint at all"),
        "pickle payload": written("evil.pt", pickle.dumps(_Payload(marker))),
        "torch pickle payload": saved(_Payload(marker), "evil2.pt"),
        "a dict without format": saved({"model": {}}),
        "another format": saved({**state, "format": "other-9"}),
        "model entry not a dict": saved({**state, "model": [1, 2]}),
        "cut in half": written("half.pt", blob[: len(blob) // 2]),
        "cut by one byte": written("cut1.pt", blob[:-1]),
        "bytes flipped": written("flipped.pt", bytes(flipped)),
        "a directory": ws.root,
    }
    cases = []
    for what, path in files.items():
        names = (path.name, "`path`")
        cases.append(Case("checkpoints", f"load_checkpoint: {what}", lambda p=path: load(p), names))
        cases.append(Case("checkpoints", f"fit(resume=): {what}", lambda p=path: resume(p), ("`resume`",)))
    m9, g9 = classifier(width=9)
    other = ws.path("other.pt")
    bd.fit(m9, g9, (x, y), epochs=2, progress=False, checkpoint=other)
    plain = ws.path("plain.pt")
    bd.save_checkpoint(plain, model, guide)
    cases += [
        Case("checkpoints", "load_checkpoint: another model's state", lambda: load(other), (other.name,)),
        Case("checkpoints", "fit(resume=): another model's state", lambda: resume(other), ("`resume`",)),
        Case("checkpoints", "fit(resume=): no training state", lambda: resume(plain), ("`resume`",)),
        Case("checkpoints", "fit(resume=): other epochs", lambda: resume(good, epochs=5), ("`resume`",)),
        Case("checkpoints", "fit(resume=): other lr", lambda: resume(good, lr=0.5), ("`resume`",)),
        Case("checkpoints", "fit(resume=): other seed", lambda: resume(good, seed=3), ("`resume`",)),
        Case("checkpoints", "fit(resume=): with test data added", lambda: resume(good, test=(x, y)), ("`resume`",)),
        Case(
            "checkpoints", "fit(resume=): another run_config", lambda: resume(good, run_config={"a": 1}), ("`resume`",)
        ),
        Case("checkpoints", "fit(resume=): the finished run", lambda: resume(good), (), epochs_run(2)),
    ]
    tampers: dict[str, Callable[[dict], None]] = {
        "torch RNG state of 3 bytes": lambda s: s["training"]["rng"].__setitem__("torch", torch.zeros(3, dtype=torch.uint8)),
        "numpy RNG key of 5 values": lambda s: s["training"]["rng"]["numpy"].__setitem__("key", torch.zeros(5, dtype=torch.int64)),
        "python RNG state junk": lambda s: s["training"]["rng"].__setitem__("python", {"version": 3, "state": [1], "gauss": None}),
        "generator states missing": lambda s: s["training"]["rng"].__setitem__("generators", []),
        "epoch > epochs": lambda s: s["training"].__setitem__("epoch", 9),
        "step negative": lambda s: s["training"].__setitem__("step", -1),
        "epoch a string": lambda s: s["training"].__setitem__("epoch", "2"),
        "complete a tensor": lambda s: s["training"].__setitem__("complete", torch.ones(3)),
        "history None": lambda s: s.__setitem__("history", None),
        "history of strings": lambda s: s["history"].__setitem__("elbo", ["a", "b"]),
        "callbacks junk": lambda s: s["training"].__setitem__("callbacks", [1, 2]),
        "collapse counter a string": lambda s: s["training"]["callbacks"][2].__setitem__("state", {"at_chance": "x"}),
        "label counts empty": lambda s: s["training"].__setitem__("label_counts", torch.zeros(0)),
        "optimizer None": lambda s: s.__setitem__("optimizer", None),
        "optimizer moments of the wrong shape": lambda s: [v.__setitem__("exp_avg", torch.zeros(2, 2)) for v in s["optimizer"]["state"].values()],
        "optimizer param ids junk": lambda s: s["optimizer"]["param_groups"][0].__setitem__("params", ["a"]),
        "model weights of another shape": lambda s: s.__setitem__("model", {k: torch.zeros(1) for k in s["model"]}),
        "fit settings missing": lambda s: s["training"].__setitem__("fit", {}),
    }  # fmt: skip
    for what, change in tampers.items():
        path = tampered(change)
        cases.append(Case("checkpoints", f"fit(resume=): {what}", lambda p=path: resume(p), ("`resume`",)))
    cases.append(
        Case("checkpoints", "no pickled payload ever ran", lambda: marker.exists(), (), lambda ran: ran is False)
    )
    return cases


# ----------------------------------------------------------------------------- .pt2 files


def pt2_cases(ws: Workspace) -> list[Case]:
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    rows = torch.randn(50, 4)
    path = ws.path("pruned.pt2")
    bd.compress.save(module, path, rows)
    marker = ws.root / "pt2_payload_ran"

    def rewrite(change: Callable[[str, bytes], bytes | None]) -> Path:
        dst = ws.path("evil.pt2")
        with zipfile.ZipFile(path) as zin, zipfile.ZipFile(dst, "w") as zout:
            for info in zin.infolist():
                data = change(info.filename, zin.read(info.filename))
                if data is not None:
                    zout.writestr(info, data)
        return dst

    def use_pickle(name: str, data: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            config["config"][next(iter(config["config"]))]["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("weights/weight_0"):
            buf = io.BytesIO()
            torch.save(_Payload(marker), buf)
            return buf.getvalue()
        return data

    def sample_pickle(name: str, data: bytes) -> bytes:
        return pickle.dumps(_Payload(marker)) if "sample_inputs" in name else data

    def legacy_weights() -> Path:
        """The program renamed ``weight_evil``, its raw weights replaced by torch's legacy weights file
        ``data/weights/weight_evil.pt`` (a pickle), whose name carries the raw weights' prefix."""
        dst, buf = ws.path("legacy.pt2"), io.BytesIO()
        torch.save({"x": _Payload(marker)}, buf)
        with zipfile.ZipFile(path) as zin, zipfile.ZipFile(dst, "w") as zout:
            for name in zin.namelist():
                if "/data/weights/" not in name:
                    zout.writestr(
                        name.replace("/model.", "/weight_evil.").replace("/model_", "/weight_evil_"), zin.read(name)
                    )
            zout.writestr(name.split("/")[0] + "/data/weights/weight_evil.pt", buf.getvalue())
        return dst

    def blob(name: str, content: bytes) -> Path:
        p = ws.path(name)
        p.write_bytes(content)
        return p

    def loads_equal(loaded: torch.nn.Module) -> bool:
        return torch.allclose(loaded(rows), module(rows), atol=1e-6)

    def no_rows(_: Any) -> bool:
        with zipfile.ZipFile(path) as z:
            data = b"".join(z.read(n) for n in z.namelist())
        return rows[0].numpy().tobytes() not in data

    files = {
        "a weight marked use_pickle": rewrite(use_pickle),
        "sample inputs a bare pickle": rewrite(sample_pickle),
        "a legacy weights file (a pickle)": legacy_weights(),
        "an entry dropped": rewrite(lambda n, d: None if n.endswith(".json") else d),
        "junk": blob("junk.pt2", b"junk"),
        "empty": blob("empty.pt2", b""),
        "a zip of text": _zip_of(ws.path("text.pt2"), {"a.txt": b"hello"}),
        "truncated": blob("cut.pt2", path.read_bytes()[:500]),
        "missing": ws.root / "missing.pt2",
        "a directory": ws.root,
    }
    cases = [
        Case(".pt2 files", f"compress.load: {what}", lambda p=p: bd.compress.load(p), (p.name, "`path`"))
        for what, p in files.items()
    ]
    cases += [
        Case(".pt2 files", "compress.load: the saved model", lambda: bd.compress.load(path), (), loads_equal),
        Case(".pt2 files", "the saved model holds no data rows", lambda: None, (), no_rows),
        Case(".pt2 files", "no pickled payload ever ran", lambda: marker.exists(), (), lambda ran: ran is False),
    ]
    return cases


def _zip_of(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


# ----------------------------------------------------------------------------- run directories


def run_dir_cases(ws: Workspace) -> list[Case]:
    victim = ws.root / "victim.txt"
    victim.write_text("keep")

    def planted(name: str) -> Path:
        out = ws.path("planted")
        out.mkdir()
        os.symlink(victim, out / name)
        return out

    def edited(change: Callable[[Path], None]) -> Path:
        run = ws.run_copy()
        change(run)
        return run

    def set_config(**values: Any) -> Callable[[Path], None]:
        def change(run: Path) -> None:
            config = json.loads((run / "config.json").read_text())
            config.update(values)
            (run / "config.json").write_text(json.dumps(config))

        return change

    def report(run: Path) -> Callable[[], str]:
        return command(["report", str(run), "--num-samples", "2", "--ood-points", "0"])

    link = ws.path("link")
    os.symlink(ws.root / "elsewhere", link)
    stale = ws.run_copy()
    (stale / ".config.json.abc123.tmp").write_bytes(b"{")

    def in_use() -> str:
        out = ws.path("locked")
        with runs.RunLock(out, create=True):
            return command([*TRAIN, "--out", str(out)])()

    def overwrite() -> tuple[bool, bool]:
        run = ws.run_copy()
        (run / "report.md").write_text("old")
        command([*TRAIN, "--method", "gaussian", "--overwrite", "--out", str(run)])()
        return (run / "report.md").exists(), json.loads((run / "config.json").read_text())["method"] == "gaussian"

    cases = [
        Case("run directories", "--out a symbolic link", command([*TRAIN, "--out", str(link)]), ("--out",)),
        Case("run directories", "a second train into a locked --out", in_use, ("--out", "in use")),
        Case(
            "run directories",
            "train into a non-empty --out",
            command([*TRAIN, "--out", str(ws.run_copy())]),
            ("--out",),
        ),
        Case("run directories", "--overwrite replaces every file", overwrite, (), lambda r: r == (False, True)),
        Case(
            "run directories",
            "a stale temporary file is ignored",
            command([*TRAIN, "--resume", "--out", str(stale)]),
            (),
            lambda o: "complete" in o,
        ),
    ]
    for name in ("config.json", "history.json", "checkpoint.pt", ".lock"):
        for flags in ([], ["--overwrite"], ["--resume"]):
            cases.append(
                Case(
                    "run directories",
                    f"a symbolic link {name} in --out {' '.join(flags)}".strip(),
                    command([*TRAIN, *flags, "--out", str(planted(name))]),
                    ("--out", "symbolic link"),
                )
            )
    hostile = {
        "config.json of another method": (set_config(method="gaussian"), ("config.json",)),
        "config.json of another arch": (set_config(arch="mlp:9"), ("config.json",)),
        "config.json with epochs a bool": (set_config(epochs=True), ("config.json",)),
        "config.json with an unknown method": (set_config(method="nope"), ("config.json", "nope")),
        "config.json with lr NaN": (set_config(lr=float("nan")), ("config.json",)),
        "config.json of 0 bytes": (lambda r: (r / "config.json").write_text(""), ("config.json",)),
        "config.json a list": (lambda r: (r / "config.json").write_text("[1, 2]"), ("config.json",)),
        "config.json nested 100000 deep": (lambda r: (r / "config.json").write_text("[" * 100000 + "]" * 100000), ("config.json",)),
        "config.json of 2 MB": (lambda r: (r / "config.json").write_text(" " * (2 << 20) + "{}"), ("config.json",)),
        "config.json missing": (lambda r: (r / "config.json").unlink(), ("config.json",)),
        "checkpoint.pt of 0 bytes": (lambda r: (r / "checkpoint.pt").write_bytes(b""), ("checkpoint.pt",)),
        "checkpoint.pt missing": (lambda r: (r / "checkpoint.pt").unlink(), ("checkpoint.pt",)),
        "checkpoint.pt of another run": (lambda r: shutil.copy(_other_run(ws) / "checkpoint.pt", r / "checkpoint.pt"), ("config.json", "checkpoint.pt")),
        "complete.json missing": (lambda r: (r / "complete.json").unlink(), ("incomplete", "run_dir")),
        "a symbolic link config.json": (lambda r: ((r / "config.json").unlink(), os.symlink(victim, r / "config.json")), ("symbolic link",)),
    }  # fmt: skip
    for what, (change, names) in hostile.items():
        cases.append(Case("run directories", f"report: {what}", report(edited(change)), names))
    cases.append(
        Case("run directories", "report on the intact run", report(ws.run_copy()), (), lambda o: "report written" in o)
    )
    cases.append(
        Case("run directories", "the planted links' target", lambda: victim.read_text(), (), lambda t: t == "keep")
    )
    return cases


_OTHER: dict[str, Path] = {}


def _other_run(ws: Workspace) -> Path:
    if "run" not in _OTHER:
        _OTHER["run"] = ws.path("other")
        code, _, err = cli_run([*TRAIN, "--method", "gaussian", "--out", str(_OTHER["run"])])
        assert code == 0, err
    return _OTHER["run"]


# ----------------------------------------------------------------------------- signals


class _SignalAt(bd.infer.Callback):
    def __init__(self, epoch: int, signum: int, where: str):
        self.epoch, self.signum, self.where = epoch, signum, where

    def on_epoch_start(self, state: bd.infer.TrainState) -> None:
        if self.where == "start" and state.epoch == self.epoch:
            os.kill(os.getpid(), self.signum)

    def on_epoch_end(self, state: bd.infer.TrainState) -> None:
        if self.where == "end" and state.epoch == self.epoch:
            os.kill(os.getpid(), self.signum)


def _resumable(path: Path, *, signal_at: tuple[int, int, str] | None = None, resume: Path | None = None) -> tuple:
    pyro.set_rng_seed(0)
    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(4, [8], 3, "sparse-vd"), num_data=40)
    guide = bd.DropoutGuide(model)
    x, y = xy()
    result = bd.fit(
        model,
        guide,
        DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True),
        epochs=8,
        progress=False,
        test=(x, y),
        test_samples=3,
        checkpoint=path,
        checkpoint_every=3,
        resume=resume,
        callbacks=[] if signal_at is None else [_SignalAt(*signal_at)],
    )
    return (
        [*model.state_dict().values(), *guide.state_dict().values()],
        result.history,
        bd.evaluate(model, guide, (x, y), num_samples=5),
    )


def _difference(a: tuple, b: tuple) -> float:
    (ta, ha, ma), (tb, hb, mb) = a, b
    diffs = [float((u - v).abs().max()) for u, v in zip(ta, tb, strict=True)]
    diffs += [abs(u - v) for k in ha if k != "seconds" for u, v in zip(ha[k], hb[k], strict=True)]
    diffs += [abs(ma[k] - mb[k]) for k in ma]
    return max(diffs)


RESUME_DIFFERENCES: dict[str, float] = {}


def signal_cases(ws: Workspace) -> list[Case]:
    def interrupted(signum: int, where: str) -> Callable[[], float]:
        def run() -> float:
            reference = _resumable(ws.path("ref.pt"))
            path = ws.path("run.pt")
            before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
            try:
                _resumable(path, signal_at=(4, signum, where))
            except bd.FitInterrupted as err:
                if err.signum != signum:
                    return math.inf
            else:
                return math.inf
            if (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) != before:
                return math.inf
            diff = _difference(reference, _resumable(path, resume=path))
            RESUME_DIFFERENCES[f"fit, {signal.Signals(signum).name} at the {where} of epoch 4 of 8"] = diff
            return diff

        return run

    def without_checkpoint() -> bool:
        try:
            quick_fit(epochs=3, callbacks=[_SignalAt(1, signal.SIGINT, "end")])
        except KeyboardInterrupt as err:
            return not isinstance(err, bd.FitInterrupted)
        return False

    def in_a_thread() -> bool:
        box: list[Any] = []
        t = threading.Thread(target=lambda: box.append(quick_fit(epochs=2, checkpoint=ws.path("thread.pt"))))
        t.start()
        t.join()
        return bool(box) and len(box[0].history["elbo"]) == 2

    def command_line(signum: int) -> Callable[[], float]:
        def run() -> float:
            out, whole = ws.path("killed"), ws.path("whole")
            argv = [*TRAIN[:3], "--epochs", "10", "--num-samples", "2", "--quiet", "--checkpoint-every", "1"]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            proc = subprocess.Popen(
                [sys.executable, "-m", "bayesdrop.cli", *argv, "--out", str(out)],
                stderr=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            deadline = time.time() + 120
            while not (out / runs.CHECKPOINT).exists() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.02)
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=120)
            lines = [line for line in err.splitlines() if line.strip()]
            if proc.returncode != 128 + signum or len(lines) != 1 or "resume with:" not in lines[0]:
                raise RuntimeError(f"exit {proc.returncode}, stderr {err[-300:]!r}")
            if (out / runs.COMPLETE).exists():
                raise RuntimeError("an interrupted run is marked complete")
            command([*argv, "--resume", "--out", str(out)])()
            command([*argv, "--out", str(whole)])()
            diffs = [0.0]
            for name in (runs.HISTORY, runs.METRICS):
                a, b = (json.loads((d / name).read_text()) for d in (out, whole))
                for k in a:
                    if k not in ("seconds", "seconds_per_epoch"):
                        u, v = np.asarray(a[k], dtype=float), np.asarray(b[k], dtype=float)
                        diffs.append(float(np.abs(u - v).max()))
            RESUME_DIFFERENCES[f"`bayesdrop train`, {signal.Signals(signum).name} after the first checkpoint"] = max(
                diffs
            )
            return max(diffs)

        return run

    small = lambda d: d <= 1e-6  # noqa: E731
    return [
        *(
            Case("signals", f"fit: {signal.Signals(s).name} at the {w} of an epoch, resumed", interrupted(s, w), (), small)
            for s in (signal.SIGINT, signal.SIGTERM)
            for w in ("start", "end")
        ),
        Case("signals", "fit: SIGINT without a checkpoint", without_checkpoint, (), lambda ok: ok),
        Case("signals", "fit with a checkpoint in another thread", in_a_thread, (), lambda ok: ok),
        Case("signals", "bayesdrop train: SIGINT, then --resume", command_line(signal.SIGINT), (), small),
        Case("signals", "bayesdrop train: SIGTERM, then --resume", command_line(signal.SIGTERM), (), small),
    ]  # fmt: skip


# ----------------------------------------------------------------------------- concurrent writers


def concurrency_cases(ws: Workspace) -> list[Case]:
    def two_writers() -> tuple[int, int, list[str]]:
        path = ws.path("shared.pt")
        modules = []
        for k in range(2):
            m, g = classifier()
            with torch.no_grad():
                for p in m.parameters():
                    p.fill_(float(k))
            modules.append((m, g))
        bd.save_checkpoint(path, *modules[0], history={"writer": [0.0]})
        done, failures, loads = threading.Event(), [], [0]

        def write(k: int) -> None:
            for _ in range(200):
                bd.save_checkpoint(path, *modules[k], history={"writer": [float(k)]})

        def read() -> None:
            while not done.is_set():
                try:
                    s = read_checkpoint(path)
                    k = s["history"]["writer"][0]
                    if not all(bool((v == k).all()) for n, v in s["model"].items() if n.endswith("weight")):
                        failures.append("mixed")
                    loads[0] += 1
                except Exception as err:
                    failures.append(repr(err))

        threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
        reader = threading.Thread(target=read)
        reader.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        reader.join()
        return loads[0], len(failures), sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".shared"))

    def another_process() -> tuple[int, int]:
        path = ws.path("proc.pt")
        bd.save_checkpoint(path, *classifier())
        script = (
            "import sys, torch, bayesdrop as bd\n"
            "m = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40)\n"
            "g = bd.DropoutGuide(m)\n"
            "for _ in range(200):\n"
            "    bd.save_checkpoint(sys.argv[1], m, g, history={'writer': [1.0]})\n"
        )
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)], env={**os.environ, "OMP_NUM_THREADS": "1"})
        failures = loads = 0
        m, g = classifier()
        while proc.poll() is None:
            bd.save_checkpoint(path, m, g, history={"writer": [0.0]})
            try:
                read_checkpoint(path)
                loads += 1
            except Exception:
                failures += 1
        return loads, failures + proc.returncode

    def full_disk() -> tuple[bool, str]:
        path = ws.path("metrics.json")
        fileio.atomic_write_text(path, "old")
        real = os.fsync

        def enospc(fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        os.fsync = enospc
        try:
            fileio.atomic_write_json(path, {"acc": 1.0})
        except OSError as err:
            return err.filename == str(path), path.read_text()
        finally:
            os.fsync = real
        return False, path.read_text()

    def concurrent_trains() -> tuple[list[int], list[str]]:
        out = ws.path("shared-run")
        argv = [*TRAIN[:3], "--epochs", "15", "--num-samples", "2", "--quiet"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bayesdrop.cli", *argv, "--out", str(out)],
                stderr=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            for _ in range(2)
        ]
        errs = [p.communicate(timeout=300)[1] for p in procs]
        return sorted(p.returncode for p in procs), errs

    return [
        Case("concurrent writers", "2 threads x 200 checkpoint saves, a reader", two_writers, (), lambda r: r[0] > 10 and r[1] == 0 and not r[2]),
        Case("concurrent writers", "another process's 200 saves, a reader", another_process, (), lambda r: r[0] > 10 and r[1] == 0),
        Case("concurrent writers", "a full disk during a write", full_disk, (), lambda r: r == (True, "old")),
        Case("concurrent writers", "a write into a missing directory", lambda: fileio.atomic_write_text(ws.root / "no" / "x.json", "{}"), ("x.json",)),
        Case("concurrent writers", "two trains into one --out", concurrent_trains, (), lambda r: r[0] == [0, 2] and any("in use" in e or "not empty" in e for e in r[1])),
    ]  # fmt: skip


# ----------------------------------------------------------------------------- the record


def record(outcomes: list[Outcome], argv: list[str], seconds: float, tmp: Path) -> str:
    counts = {c: dict.fromkeys(VERDICTS, 0) for c in CATEGORIES}
    for o in outcomes:
        counts[o.case.category][o.verdict] += 1
    lines = [
        "# Reliability: hostile and unlucky inputs",
        "",
        f"Device: {device_name(torch.device('cpu'))}.  {len(outcomes)} cases in {seconds:.0f} s.",
        f"Command: `{quoted_command('benchmarks/reliability.py', argv)}`",
        "",
        "Each case is a bad or hostile input (or an unlucky event: a signal, a full disk, a second writer).  *Clear "
        "error*: a `ValueError`, `TypeError`, `OSError` or `FloatingPointError` (on the command line: exit 2 and one "
        "line) whose message names the argument, option or file.  *Handled correctly*: no error and a checked result.  "
        "*Deep traceback*: any other exception, a printed traceback, or a message naming neither argument nor file.  "
        "*Silently wrong*: no error where one was due, or a result that fails its check.",
        "",
        "| category | cases | " + " | ".join(VERDICTS) + " |",
        "|---|---|" + "---|" * len(VERDICTS),
    ]
    for c in CATEGORIES:
        row = counts[c]
        lines.append(f"| {c} | {sum(row.values())} | " + " | ".join(str(row[v]) for v in VERDICTS) + " |")
    totals = {v: sum(counts[c][v] for c in CATEGORIES) for v in VERDICTS}
    lines.append(f"| **total** | {len(outcomes)} | " + " | ".join(f"**{totals[v]}**" for v in VERDICTS) + " |")
    lines += ["", "## Interrupted, then resumed", ""]
    lines.append(
        "Largest difference of the final parameters, the history (`seconds` aside) and the metrics between an "
        "interrupted-then-resumed run and the uninterrupted one (same seed):"
    )
    lines.append("")
    for what, diff in RESUME_DIFFERENCES.items():
        lines.append(f"- {what}: {diff:.3g}")
    bad = [o for o in outcomes if o.verdict in ("deep traceback", "silently wrong")]
    lines += ["", "## Cases neither clear nor handled", ""]
    lines += [
        f"- {o.case.category}: {o.case.name}: **{o.verdict}**: {o.detail}"
        + (f" ({o.case.note})" if o.case.note else "")
        for o in bad
    ] or ["None."]
    lines += ["", "## Every case", ""]
    for c in CATEGORIES:
        lines += [f"### {c}", "", "| case | outcome | detail |", "|---|---|---|"]
        for o in outcomes:
            if o.case.category == c:
                detail = o.detail.replace("|", "\\|")
                lines.append(f"| {o.case.name.replace('|', '/')} | {o.verdict} | {detail} |")
        lines.append("")
    return "\n".join(lines).replace(str(tmp), "<tmp>")  # the temporary directory's random name


def main(argv: list[str] | None = None) -> int:
    """Run the catalogue and write the record (by default ``benchmarks/results/reliability.md``)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\nUsage")[0])
    ap.add_argument("--out", default=str(RESULTS / "reliability.md"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    ws = Workspace()
    try:
        builders = [api_cases, loader_cases, cli_cases, idx_cases, checkpoint_cases, pt2_cases, run_dir_cases]
        builders += [signal_cases, concurrency_cases]
        outcomes = []
        for build in builders:
            for case in build(ws):
                outcome = classify(case)
                outcomes.append(outcome)
                print(f"{outcome.verdict:18s} {case.category}: {case.name}", file=sys.stderr)
    finally:
        ws.close()
    seconds = time.perf_counter() - t0
    write_results(record(outcomes, sys.argv[1:] if argv is None else argv, seconds, ws.root), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
