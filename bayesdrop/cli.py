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

Argument parsing only: what a run is (config to data, model and guide) lives in :mod:`bayesdrop.experiments`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from . import methods
from .experiments import compare, runs
from .experiments.runs import build, inputs, load_dataset, load_run, parse_hyper
from .fileio import atomic_write_json, atomic_write_text
from .infer import DEFAULT_LR, FitInterrupted, evaluate, fit, resolve_device, resolve_kl_warmup

__all__ = ["main", "make_parser"]


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


def _output_dir(path: str) -> Path:
    """``path`` as an output directory, refused if it is an existing file (before any training)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`--out` {path!r} is a file; give a directory")
    return out


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
        if key in runs.LOCATION_KEYS or (key == "kl_warmup" and wanted[key] == "auto"):
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
    config = _resumed_config(args, out) if args.resume else _config_from_args(args)
    data_config = {**config, "mnist_dir": args.mnist_dir or config.get("mnist_dir")}
    dataset = load_dataset(data_config["dataset"], data_config.get("mnist_dir"), data_config.get("data_seed", 0))
    ds, model, guide = build(data_config, dataset)
    if not args.resume:
        config["kl_warmup"] = resolve_kl_warmup(model, config["epochs"], config["kl_warmup"])
    train, test = inputs(ds, config, ds.train), inputs(ds, config, ds.test)
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
                epochs=config["epochs"],
                batch_size=config.get("batch_size", 128),
                lr=config.get("lr", DEFAULT_LR),
                kl_warmup=config["kl_warmup"],
                lr_decay=config.get("lr_decay", "linear"),
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
    if not run.is_dir():
        raise FileNotFoundError(f"`run_dir` {run_dir!r} has no config.json (not a bayesdrop run)")
    with runs.RunLock(run, "run_dir"):
        yield run


def cmd_prune(args: argparse.Namespace) -> int:
    from . import compress

    with _using_run(args.run_dir) as run:
        ds, model, guide, config = load_run(args.run_dir)
        rep = compress.report(model, guide, threshold=args.threshold)
        pruned = compress.prune(model, guide, threshold=args.threshold)
        test = inputs(ds, config, ds.test)
        with torch.no_grad():  # the pruned network's output as a single draw of the predictive
            pruned_metrics = model.metrics(pruned(test.x).unsqueeze(0), test.y)
        compress.save(pruned, run / "pruned.pt2", test.x)
        text = f"# Compression of {run.name} ({config['method']}, {config['dataset']})\n\n{rep.to_markdown()}\n"
        text += "\n" + "".join(
            f"- Pruned network test {_METRIC_NAMES.get(k, k)}: {v:.4f}\n" for k, v in pruned_metrics.items()
        )
        atomic_write_text(run / "compression.md", text)
        print(text)
        print(f"pruned model written to {run / 'pruned.pt2'} (load with bd.compress.load)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    _positive(num_samples=args.num_samples, epochs=args.epochs, batch_size=args.batch_size)
    _run_numbers(args)
    _output_dir(args.out)

    kw = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        kl_warmup=args.kl_warmup,
        lr_decay=_decay(args),
        num_samples=args.num_samples,
    )
    if args.quick:
        kw.update(epochs=QUICK_EPOCHS, num_samples=50)
    rows = compare.compare(
        args.dataset,
        args.methods,
        arch=args.arch,
        seed=args.seed,
        device=args.device,
        mnist_dir=args.mnist_dir,
        progress=not args.quiet,
        **kw,
    )
    header = (
        f"Dataset {args.dataset}, architecture {args.arch}, {kw['epochs']} epochs, batch {kw['batch_size']}, "
        f"lr {kw['lr']}"
        + (f" ({kw['lr_decay']} decay)" if kw["lr_decay"] else "")
        + f", KL warm-up {kw['kl_warmup']}"
        + (" (each method's default: a fraction of the epochs)" if kw["kl_warmup"] == "auto" else " epochs")
        + f", seed {args.seed}, {kw['num_samples']} MC draws."
    )
    print(compare.write(rows, args.out, header))
    print(f"written to {Path(args.out) / 'compare.md'} and compare.json")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Posterior predictive analysis of a run: InferenceData (netCDF), plots and ``report.md``."""
    from . import diagnostics

    for flag, v, low in (
        ("--num-samples", args.num_samples, 1),
        ("--seed", args.seed, 0),
        ("--ood-points", args.ood_points, 0),
    ):
        if v < low:
            raise ValueError(f"`{flag}` must be an int >= {low}, got {v!r}")
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
        history_file = run / runs.HISTORY
        history = json.loads(history_file.read_text()) if history_file.is_file() else None
        path = diagnostics.write_report(
            idata,
            run,
            title=f"Report: {run.name}",
            header=header,
            train=train,
            idata_train=idata_train,
            history=history or None,
        )
        print(path.read_text())
        print(f"report written to {path}")
    return 0


def _decay(args: argparse.Namespace) -> str | None:
    """``--lr-decay`` as ``bd.fit`` takes it (``"none"`` is ``None``)."""
    return None if args.lr_decay == "none" else args.lr_decay


QUICK_EPOCHS = 100  # `compare --quick` (make demo): the README's budget on digits


def _warmup(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a non-negative number of epochs, got {text!r}")
    return value


def _training_options(p: argparse.ArgumentParser) -> None:
    """The options shared by `train` and `compare`, with `bd.fit`'s defaults."""
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"Adam learning rate (default: {DEFAULT_LR:g})")
    p.add_argument(
        "--kl-warmup",
        type=_warmup,
        default="auto",
        help="epochs of linear KL warm-up, or 'auto' (default): each method's own fraction of the epochs",
    )
    p.add_argument(
        "--lr-decay",
        choices=["linear", "none"],
        default="linear",
        help="'linear' (default) decays the learning rate linearly to 0; 'none' keeps it",
    )


def _checkpoint_every(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of epochs, got {text!r}")
    return value


def _train_arguments(t: argparse.ArgumentParser) -> None:
    """The options of ``bayesdrop train``."""
    t.add_argument("--method", default="bernoulli", help="registered method name (see `bayesdrop methods`)")
    t.add_argument("--hyper", nargs="*", default=[], metavar="KEY=VALUE", help="method hyper-parameters, e.g. p=0.3")
    t.add_argument("--input-method", default=None, help="a different method for the input layer")
    t.add_argument("--input-hyper", nargs="*", default=[], metavar="KEY=VALUE")
    t.add_argument(
        "--dataset",
        default="digits",
        help="digits, mnist1d, toy-regression, co2 and sunspots (forecasts), or mnist (with --mnist-dir)",
    )
    t.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files")
    t.add_argument("--arch", default="mlp:300,100", help="mlp:W1,W2,..., lenet300-100 or lenet5")
    t.add_argument("--epochs", type=int, default=50)
    t.add_argument("--batch-size", type=int, default=128)
    _training_options(t)
    t.add_argument(
        "--num-samples",
        type=int,
        default=DRAWS,
        help=f"posterior draws for the test metrics (default: {DRAWS}, as `report`, which prints the same metrics)",
    )
    t.add_argument("--device", default="auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, help="run directory to write (must be empty unless --overwrite/--resume)")
    t.add_argument(
        "--checkpoint-every",
        type=_checkpoint_every,
        default=CHECKPOINT_EVERY,
        metavar="K",
        help=f"save the checkpoint every K epochs (default: {CHECKPOINT_EVERY}); it is also saved at the end and on "
        "SIGINT / SIGTERM",
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


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesdrop", description="Dropout methods as Bayesian model/guide pairs (Pyro)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("methods", help="list the registered methods").set_defaults(func=cmd_methods)
    t = sub.add_parser("train", help="train one method and write a run directory")
    _train_arguments(t)
    t.set_defaults(func=cmd_train)
    c = sub.add_parser("compare", help="train every method on the same budget and print a comparison table")
    c.add_argument("--dataset", default="digits")
    c.add_argument("--mnist-dir", default=None)
    c.add_argument("--methods", nargs="+", default=["all"], help="registered names, or `all`")
    c.add_argument("--arch", default="mlp:300,100")
    c.add_argument("--epochs", type=int, default=100)
    c.add_argument("--batch-size", type=int, default=128)
    _training_options(c)
    c.add_argument("--num-samples", type=int, default=100)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="auto")
    c.add_argument("--quick", action="store_true", help=f"the demo preset: {QUICK_EPOCHS} epochs, 50 MC draws")
    c.add_argument("--out", default="runs/compare")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_compare)
    pr = sub.add_parser("prune", help="prune a trained run to a smaller plain network")
    pr.add_argument("run_dir", help="a run directory written by `bayesdrop train`")
    pr.add_argument("--threshold", type=float, default=None, help="pruning threshold (default: each method's own)")
    pr.set_defaults(func=cmd_prune)
    rp = sub.add_parser("report", help="posterior predictive analysis of a run: plots, LOO and a markdown summary")
    rp.add_argument("run_dir", help="a run directory written by `bayesdrop train`")
    rp.add_argument(
        "--num-samples",
        type=int,
        default=DRAWS,
        help=f"draws from the variational posterior (default: {DRAWS}, as `train`)",
    )
    rp.add_argument(
        "--seed",
        type=int,
        default=DRAWS_SEED,
        help=f"seed of the draws and of the noise inputs (default: {DRAWS_SEED}, the seed of `train`'s test draws)",
    )
    rp.add_argument("--batch-size", type=int, default=256, help="inputs per vectorised pass")
    rp.add_argument(
        "--ood-points",
        type=int,
        default=500,
        help="uniform-noise inputs for the uncertainty table (classification; 0: none)",
    )
    rp.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    args.argv = words
    try:
        with _signals_raise():
            return args.func(args)
    except (ValueError, TypeError, OSError) as err:  # bad arguments or files (missing, existing, not permitted)
        print(f"bayesdrop: error: {err}", file=sys.stderr)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
