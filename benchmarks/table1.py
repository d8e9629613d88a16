"""Liu et al. (2019), Table 1 protocol: test error of dropout methods against network width.

The paper trains fully connected networks with 3 hidden layers of {100, 340, 580, 820, 1060} ReLU units on
MNIST for 50 epochs (architecture of Srivastava et al. 2014) and reports the test error (%) of no dropout,
Bernoulli and Gaussian dropout, variational dropout (VD) and VBD.  This script runs the same protocol with
``bd.fit`` on the bundled ``digits`` and ``mnist1d`` data, and on MNIST when ``--mnist-dir`` is given.

Methods (``--methods``; ``all`` adds every registered method):

* ``none``: ``bernoulli`` with ``p = 0`` (MAP under the N(0, 1) weight prior);
* every registered name (``bernoulli``, ``gaussian``, ``vd``, ``vbd``, ``standout``, ...) through ``bd.models.mlp``
  with its default hyper-parameters (the fixed-rate methods' input rule: 0.2 of the pixels dropped, Srivastava et
  al. 2014); ``name:key=value,...`` sets hyper-parameters, e.g. ``vbd:granularity=layer``.

Training: ``bd.fit``'s defaults (Adam at its learning rate, linear decay, each method's KL warm-up; the local
reparameterisation trick where a method supports it) with batch 128 and ``--epochs``; ``--lr`` and
``--kl-warmup`` override them for every method at once.  Test error: the Monte Carlo predictive with
``--samples`` draws (one deterministic pass for deterministic methods).

Usage::

    python benchmarks/table1.py                       # default size (~10 min on 2 CPU cores)
    python benchmarks/table1.py --widths 100 340 580 820 1060 --mnist-dir ~/data/mnist   # the full protocol
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
import time
from typing import Any

import torch
from _common import RESULTS, device_name, write_results

import bayesdrop as bd

# vbd with one alpha per layer is eq. 17, the classification setting of the paper's Table 1; per-weight vbd (eq. 18)
# is the compression variant and needs many more steps than 50 epochs of the small data sets give (it collapses).
DEFAULT_METHODS = [
    "none",
    "bernoulli",
    "gaussian",
    "dropconnect",
    "standout",
    "fast-dropout",
    "concrete",
    "vd",
    "vbd:granularity=layer",
    "vbd",
]
# Liu et al. (2019), Table 1 (MNIST, test error %), for reference.
PAPER = {
    "no dropout": [1.80, 1.77, 1.78, 1.78, 1.71],
    "dropout, Bernoulli": [1.69, 1.68, 1.67, 1.67, 1.63],
    "dropout, Gaussian": [1.70, 1.66, 1.68, 1.69, 1.62],
    "Gaussian dropout (Wang & Manning)": [1.66, 1.64, 1.71, 1.65, 1.64],
    "concrete dropout": [2.39, 1.61, 1.55, 1.54, 1.51],
    "VD": [1.69, 1.62, 1.67, 1.62, 1.63],
    "VBD (ours)": [1.56, 1.53, 1.53, 1.52, 1.45],
}
PAPER_WIDTHS = [100, 340, 580, 820, 1060]


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``"name:key=value,..."`` -> (name, hyper-parameters); values are parsed as Python literals
    where possible (numbers, None, True/False), else kept as strings."""
    name, _, rest = spec.partition(":")
    hyper: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"method spec {spec!r}: expected key=value, got {item!r}")
        try:
            hyper[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            hyper[key] = value
    if name != "none" and name not in bd.methods.names():
        raise ValueError(f"unknown method {name!r}; accepted: none, {', '.join(bd.methods.names())}")
    return name, hyper


def build(spec: str, in_features: int, width: int, num_classes: int) -> torch.nn.Module:
    """The 3-hidden-layer MLP of Table 1 with the method of ``spec``."""
    name, hyper = parse_method(spec)
    hidden = [width] * 3
    if name == "none":
        return bd.models.mlp(in_features, hidden, num_classes, "bernoulli", p=0.0)
    return bd.models.mlp(in_features, hidden, num_classes, name, **hyper)


def run_one(spec: str, ds, width: int, args: argparse.Namespace, seed: int) -> float:
    """Train one network and return its test error in percent."""
    torch.manual_seed(seed)
    net = build(spec, ds.train.x.shape[1], width, ds.num_classes)
    model = bd.Classifier(net, num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    overrides = {k: v for k, v in (("lr", args.lr), ("kl_warmup", args.kl_warmup)) if v is not None}
    bd.fit(
        model,
        guide,
        ds.train,
        epochs=args.epochs,
        batch_size=128,
        device=args.device,
        seed=seed,
        progress=False,
        **overrides,
    )
    stochastic = any(layer.method.stochastic for _, layer in bd.nn.bayesian_layers(model))
    if stochastic:
        acc = bd.evaluate(model, guide, ds.test, num_samples=args.samples)["acc"]
    else:
        acc = bd.evaluate(model, guide, ds.test, rule="weight-scaling")["acc"]
    return 100.0 * (1.0 - acc)


def table(dataset: str, results: dict[str, dict[int, list[float]]], widths: list[int], seconds: float) -> str:
    lines = [f"## {dataset}", "", "| method | " + " | ".join(str(w) for w in widths) + " |"]
    lines.append("|---|" + "---|" * len(widths))
    for spec, row in results.items():
        cells = []
        for w in widths:
            errs = row[w]
            cell = f"{statistics.mean(errs):.2f}"
            if len(errs) > 1:
                cell += f" ± {statistics.stdev(errs):.2f}"
            cells.append(cell)
        lines.append(f"| {spec} | " + " | ".join(cells) + " |")
    lines += ["", f"Wall time: {seconds / 60:.1f} min.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=50, help="training epochs (paper: 50)")
    ap.add_argument("--datasets", nargs="+", default=["digits", "mnist1d"], help="bundled data sets to use")
    ap.add_argument(
        "--widths", type=int, nargs="+", default=[100, 340], help="hidden units per layer (paper: 100 340 580 820 1060)"
    )
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, help="method specs, or 'all'")
    ap.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files (adds MNIST)")
    ap.add_argument("--out", default=str(RESULTS / "table1.md"))
    ap.add_argument("--seeds", type=int, default=1, help="repetitions per cell (mean ± sd)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate of every method (default: bd.fit's)")
    ap.add_argument("--kl-warmup", type=int, default=None, help="KL warm-up epochs (default: each method's own)")
    ap.add_argument("--samples", type=int, default=50, help="Monte Carlo draws for the test predictive")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.seeds < 1 or args.samples < 1 or any(w < 1 for w in args.widths):
        ap.error("--epochs, --seeds, --samples and --widths must be positive")
    methods = list(args.methods)
    if "all" in methods:
        methods = ["none", *bd.methods.names()]
    for spec in methods:
        try:
            parse_method(spec)
        except ValueError as err:
            ap.error(str(err))
    datasets = [(name, lambda name=name: bd.data.load(name)) for name in args.datasets]
    if args.mnist_dir:
        datasets.append(("mnist", lambda: bd.data.load_mnist(args.mnist_dir)))

    device = bd.infer.resolve_device(args.device)
    command = "python benchmarks/table1.py " + " ".join(sys.argv[1:] if argv is None else argv)
    parts = [
        "# Liu et al. (2019), Table 1 protocol: test error (%) against width",
        "",
        "Fully connected networks with 3 hidden layers of the given width (ReLU), `bd.fit`'s defaults "
        f"(lr {'default' if args.lr is None else args.lr}, KL warm-up "
        f"{'per method' if args.kl_warmup is None else f'over {args.kl_warmup} epochs'}), batch 128, "
        f"{args.epochs} epochs, local reparameterisation where supported; test error of the Monte Carlo predictive "
        f"({args.samples} draws).  {args.seeds} seed(s) per cell.",
        "",
        f"Command: `{command.strip()}`; device: {device_name(device)}.",
        "",
        "Methods: `none` = no dropout (MAP, N(0, 1) prior); the others as registered, with their defaults, "
        "through `bd.models.mlp` (the fixed-rate methods drop 0.2 of the 64 digits pixels and none of MNIST-1D's "
        "40 inputs).",
        "",
    ]
    for dataset, load in datasets:
        ds = load()
        t0 = time.perf_counter()
        results: dict[str, dict[int, list[float]]] = {}
        for spec in methods:
            results[spec] = {}
            for width in args.widths:
                errs = [run_one(spec, ds, width, args, seed) for seed in range(args.seeds)]
                results[spec][width] = errs
                print(f"{dataset} {spec} {width}: {statistics.mean(errs):.2f} %", flush=True)
        parts.append(table(dataset, results, args.widths, time.perf_counter() - t0))
    ref = ["## Reference: Liu et al. (2019), Table 1 (MNIST, 50 epochs)", ""]
    ref.append("| method | " + " | ".join(map(str, PAPER_WIDTHS)) + " |")
    ref.append("|---|" + "---|" * len(PAPER_WIDTHS))
    ref += [f"| {k} | " + " | ".join(f"{v:.2f}" for v in vals) + " |" for k, vals in PAPER.items()]
    parts += ref + [""]
    write_results("\n".join(parts), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
