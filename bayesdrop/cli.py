"""The ``bayesdrop`` command.

``bayesdrop methods``
    List the registered methods with their references and capabilities.
``bayesdrop train --method M --dataset D --arch mlp:300,100 --epochs E --out DIR``
    Train, print test accuracy and NLL, and write a *run directory*:
    ``config.json`` (everything needed to rebuild model and guide),
    ``checkpoint.pt`` (loaded with ``weights_only=True``), ``history.json`` and
    ``metrics.json``.  :func:`bayesdrop.experiments.runs.load_run` rebuilds a run for later commands.

Argument parsing only: what a run is (config to data, model and guide) lives in :mod:`bayesdrop.experiments`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from . import methods
from .experiments import compare
from .experiments.runs import build, inputs, load_run, parse_hyper
from .infer import DEFAULT_LR, evaluate, fit, resolve_device, resolve_kl_warmup, save_checkpoint

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


def _output_dir(path: str) -> Path:
    """``path`` as an output directory, refused if it is an existing file (before any training)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`--out` {path!r} is a file; give a directory")
    return out


def cmd_train(args: argparse.Namespace) -> int:
    _positive(num_samples=args.num_samples, epochs=args.epochs, batch_size=args.batch_size)
    _output_dir(args.out)
    config = {
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
    ds, model, guide = build(config)
    config["kl_warmup"] = args.kl_warmup = resolve_kl_warmup(model, args.epochs, args.kl_warmup)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = inputs(ds, config, ds.train), inputs(ds, config, ds.test)
    result = fit(
        model,
        guide,
        train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        kl_warmup=args.kl_warmup,
        lr_decay=_decay(args),
        device=resolve_device(args.device),
        seed=args.seed,
        progress=not args.quiet,
    )
    metrics = evaluate(model, guide, test, num_samples=args.num_samples)
    metrics["seconds_per_epoch"] = result.seconds_per_epoch
    save_checkpoint(out / "checkpoint.pt", model.cpu(), guide.cpu(), history=result.history, config=config)
    (out / "config.json").write_text(json.dumps(config, indent=1))
    (out / "history.json").write_text(json.dumps(result.history, indent=1))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    shown = "  ".join(f"test {_METRIC_NAMES.get(k, k)} {v:.4f}" for k, v in metrics.items() if k != "seconds_per_epoch")
    print(f"{shown}  ({args.method}, {args.dataset}, {args.epochs} epochs)")
    print(f"run written to {out}")
    return 0


_METRIC_NAMES = {"acc": "accuracy", "nll": "NLL", "rmse": "RMSE"}  # how the likelihoods' metrics are printed


def cmd_prune(args: argparse.Namespace) -> int:
    from . import compress

    ds, model, guide, config = load_run(args.run_dir)
    rep = compress.report(model, guide, threshold=args.threshold)
    pruned = compress.prune(model, guide, threshold=args.threshold)
    test = inputs(ds, config, ds.test)
    with torch.no_grad():  # the pruned network's output as a single draw of the predictive
        pruned_metrics = model.metrics(pruned(test.x).unsqueeze(0), test.y)
    run = Path(args.run_dir)
    compress.save(pruned, run / "pruned.pt2", test.x)
    text = f"# Compression of {run.name} ({config['method']}, {config['dataset']})\n\n{rep.to_markdown()}\n"
    text += "\n" + "".join(
        f"- Pruned network test {_METRIC_NAMES.get(k, k)}: {v:.4f}\n" for k, v in pruned_metrics.items()
    )
    (run / "compression.md").write_text(text)
    print(text)
    print(f"pruned model written to {run / 'pruned.pt2'} (load with bd.compress.load)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    _positive(num_samples=args.num_samples, epochs=args.epochs, batch_size=args.batch_size)
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
    ds, model, guide, config = load_run(args.run_dir)
    run = Path(args.run_dir)
    test = inputs(ds, config, ds.test)
    new, label = None, None
    if ds.task == "classification" and args.ood_points > 0:
        # out-of-distribution inputs: uniform noise over the training inputs' value range
        train_x = inputs(ds, config, ds.train).x
        lo, hi = float(train_x.min()), float(train_x.max())
        gen = torch.Generator().manual_seed(args.seed)
        new = lo + (hi - lo) * torch.rand((args.ood_points, *test.x.shape[1:]), generator=gen)
        label = f"uniform noise on [{lo:.3g}, {hi:.3g}]"
    idata = diagnostics.to_inference_data(
        model, guide, test, num_samples=args.num_samples, predictions=new, seed=args.seed, batch_size=args.batch_size
    )
    if label is not None:
        idata.attrs["predictions_label"] = label
    diagnostics.save_netcdf(idata, run / "inference_data.nc")
    header = [
        f"Run `{run.name}`: method `{config['method']}`, dataset `{config['dataset']}`, architecture "
        f"`{config['arch']}`, {config['epochs']} epochs.  Test split, {args.num_samples} draws, seed {args.seed}.",
        "InferenceData: `inference_data.nc` (load with `bd.diagnostics.load_netcdf`).",
    ]
    train = inputs(ds, config, ds.train)
    path = diagnostics.write_report(idata, run, title=f"Report: {run.name}", header=header, train=train)
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


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesdrop", description="Dropout methods as Bayesian model/guide pairs (Pyro)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("methods", help="list the registered methods").set_defaults(func=cmd_methods)
    t = sub.add_parser("train", help="train one method and write a run directory")
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
    t.add_argument("--num-samples", type=int, default=100, help="MC draws for the test metrics")
    t.add_argument("--device", default="auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, help="run directory to write")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
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
    rp.add_argument("--num-samples", type=int, default=200, help="draws from the variational posterior")
    rp.add_argument("--seed", type=int, default=0, help="seed of the draws and of the noise inputs")
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
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as err:  # bad arguments or files (missing, existing, not permitted)
        print(f"bayesdrop: error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # training diverged (bd.fit's NaN check)
        print(f"bayesdrop: training failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bayesdrop: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
