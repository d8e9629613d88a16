r"""``bd.bayesianize``'s input rule: a torch MLP converted with its default (the layers that read the inputs take the
method's input rule, :meth:`~bayesdrop.methods.Method.input_layer`), with the method on those layers too
(``input_method=method``, what it did before the rule), and ``bd.models.mlp`` of the same widths and seed.

For maintainers checking that a converted network trains as the library's own: with the rule, a bayesianized
64-300-100-10 MLP has ``bd.models.mlp``'s methods layer by layer (``tests/test_nn.py``) and, built from the same
seed, its initial weights, so the two rows of a method agree.  The record is
``benchmarks/results/bayesianize_inputs.md``; ``benchmarks/bayesianize_inputs.py`` is its command line.

Usage::

    python benchmarks/bayesianize_inputs.py [--methods bernoulli vd sparse-vd] [--epochs 100] [--out ...]

Example
-------
>>> from bayesdrop.experiments import bayesianize_inputs as bi
>>> row = bi.run_one("bernoulli", "rule", epochs=100)  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyro
import torch

import bayesdrop as bd

from .report_io import device_name, quoted_command, script_parser, write_results

__all__ = ["ARMS", "run_one", "markdown", "main"]

ARMS = ("models", "rule", "method")  #: bd.models.mlp; bayesianize's default; bayesianize(input_method=method)
WIDTHS = (64, 300, 100, 10)  #: the digits MLP


def _torch_mlp() -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(WIDTHS) - 2 else [])
    return torch.nn.Sequential(*layers)


def run_one(method: str, arm: str, *, epochs: int = 100, num_samples: int = 50, seed: int = 0) -> dict[str, Any]:
    """Train the digits MLP of ``arm`` (one of :data:`ARMS`) with ``method`` by ``bd.fit``'s defaults and evaluate
    it by MC (``num_samples`` draws, ``seed``): the row of the record, with the first layer's method."""
    if arm not in ARMS:
        raise ValueError(f"`arm` must be one of {ARMS}, got {arm!r}")
    data = bd.data.load("digits")
    pyro.set_rng_seed(seed)  # the initial weights: the same for bd.models and the converted torch MLP
    if arm == "models":
        net = bd.models.mlp(WIDTHS[0], list(WIDTHS[1:-1]), WIDTHS[-1], method)
    else:
        net = bd.bayesianize(_torch_mlp(), method, input_method=method if arm == "method" else None)
    model = bd.Classifier(net, num_data=len(data.train))
    guide = bd.DropoutGuide(model)
    start = time.perf_counter()
    bd.fit(model, guide, data.train, epochs=epochs, seed=seed, progress=False)
    metrics = bd.evaluate(model, guide, data.test, num_samples=num_samples, seed=seed)
    first = next(layer for _, layer in bd.nn.bayesian_layers(net)).method
    hyper = ", ".join(f"{k}={v:g}" for k, v in first.hyper().items() if k in ("p", "max_log_alpha") and v is not None)
    return {
        "method": method,
        "arm": arm,
        "first layer": f"{first.name}" + (f" ({hyper})" if hyper else ""),
        "error": 100 * (1 - metrics["acc"]),
        "nll": metrics["nll"],
        "seconds": time.perf_counter() - start,
    }


def markdown(rows: list[dict[str, Any]], command: str, epochs: int, num_samples: int) -> str:
    """The record: one row per method and arm."""
    names = {"models": "`bd.models.mlp`", "rule": "`bayesianize` (input rule)", "method": "`input_method=method`"}
    lines = [
        "# bayesianize: the input rule on a converted MLP",
        "",
        f"Command: `{command}`; {device_name(torch.device('cpu'))}.",
        "",
        f"Digits, a torch MLP {'-'.join(map(str, WIDTHS))} converted by `bd.bayesianize` against `bd.models.mlp` of "
        f"the same widths, each built after `pyro.set_rng_seed(0)`; `bd.fit(epochs={epochs}, seed=0)` with every "
        f"other setting at its default; `bd.evaluate(num_samples={num_samples}, seed=0)` on the test split.  "
        "`input_method=method` gives the layer that reads the pixels the hidden layers' method, as `bayesianize` did "
        "before the input rule.  Protocol: `bayesdrop/experiments/bayesianize_inputs.py`.",
        "",
        "| method | network | first layer's method | test error % | NLL | s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | {names[r['arm']]} | {r['first layer']} | {r['error']:.2f} | {r['nll']:.3f} | "
        f"{r['seconds']:.0f} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def main(
    argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/bayesianize_inputs.md"
) -> list[dict[str, Any]]:
    """Parse ``argv``, train every method in every arm, and write the record to ``--out``."""
    ap = script_parser(__doc__)
    ap.add_argument("--methods", nargs="+", default=["bernoulli", "vd", "sparse-vd"])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--num-samples", type=int, default=50)
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(sys.argv[1:] if argv is None else list(argv))
    torch.set_num_threads(1)
    rows = [run_one(m, arm, epochs=args.epochs, num_samples=args.num_samples) for m in args.methods for arm in ARMS]
    command = quoted_command("benchmarks/bayesianize_inputs.py", sys.argv[1:] if argv is None else list(argv))
    write_results(markdown(rows, command, args.epochs, args.num_samples), args.out)
    return rows
