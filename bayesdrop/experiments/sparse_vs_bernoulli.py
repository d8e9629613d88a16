"""The accuracy claim: ``sparse-vd`` (Molchanov et al. 2017) and ``vbd`` (Liu et al. 2019) within 1 point of Bernoulli
dropout at >= 90 % sparsity.

For maintainers and for users weighing a sparsifying method against plain dropout:
``benchmarks/sparse_vs_bernoulli.py`` is the command line that writes ``benchmarks/results/sparse_vs_bernoulli.md``,
``tests/test_sparse_vs_bernoulli.py`` checks the statistics, what is written, and the claim.

Protocol: the digits 64-300-100-10 MLP (``bd.models.mlp``) trained for ``--epochs`` by ``bd.fit`` at its defaults:
Adam at batch 128, the learning rate (``--lr``, default ``bd.fit``'s 1e-2) decayed linearly to 0 (as Molchanov et
al. 2017 trained sparse VD), and each method's own KL warm-up (``kl_warmup="auto"``: over all the epochs for the
Gaussian family, none for ``bernoulli``).  ``bernoulli`` has p = 0.5 on the hidden units and noise-free inputs,
the 64-300-100-10 baseline of Liu et al. 2019; the other methods are ``bd.models.mlp``'s defaults.
Every method runs on ``--splits`` stratified train/test splits of digits (``bd.data.load("digits", seed=s)``,
1437/360) with ``--seeds`` training seeds each, and is scored by the mean over those runs:

* *MC*: accuracy of the posterior predictive (100 draws, ``bd.evaluate``);
* *pruned*: accuracy of the deterministic network with the weights of log alpha > 3 removed
  (``guide.mean_network(pruned=True)(x)``, the network ``bd.compress.prune`` exports; for ``bernoulli`` the
  weight-scaling network);
* *sparsity*: the fraction of weights with log alpha > 3 (lowest run reported).

One run's accuracy on 360 test digits has a binomial standard error of ~0.9 points, more than the margin, hence
the mean over splits and seeds.

Usage::

    python benchmarks/sparse_vs_bernoulli.py [--splits 3] [--seeds 3] [--epochs 200] [--lr LR]

Example
-------
>>> from bayesdrop.experiments import sparse_vs_bernoulli as svb
>>> rows = svb.run(["bernoulli", "vbd"], splits=1, seeds=1, epochs=200)  # doctest: +SKIP
>>> svb.summary(rows)["vbd"]["gap_mc"]  # points below Bernoulli's MC accuracy  # doctest: +SKIP
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyro
import torch

import bayesdrop as bd

from .report_io import device_name, script_parser, write_results

__all__ = ["METHODS", "THRESHOLD", "main", "markdown", "one_run", "run", "sparsity", "summary"]

METHODS = ["bernoulli", "sparse-vd", "vbd"]
THRESHOLD = 3.0  # log alpha above which a weight counts as pruned (Molchanov et al. 2017)


def sparsity(model: bd.Classifier, guide: bd.DropoutGuide) -> float:
    """Fraction of all weights whose log alpha exceeds :data:`THRESHOLD`."""
    return (bd.compress.log_alpha(model, guide) > THRESHOLD).float().mean().item()


def one_run(name: str, split: int, seed: int, epochs: int, lr: float | None = None) -> dict[str, Any]:
    """Train ``name`` on digits split ``split`` with training seed ``seed``, at ``bd.fit``'s defaults but ``epochs``
    and ``lr`` (``None``: ``bd.fit``'s).

    Returns
    -------
    dict
        ``method``, ``split``, ``seed``; ``mc`` and ``pruned`` (test accuracies), ``sparsity`` (NaN for
        ``bernoulli``) and ``s`` (training seconds).
    """
    ds = bd.data.load("digits", seed=split)
    pyro.set_rng_seed(seed)  # the initial weights too: a run must not depend on the runs before it
    if name == "bernoulli":
        net = bd.models.mlp(64, [300, 100], 10, name, p=0.5, input_method=bd.methods.get("bernoulli", p=0.0))
    else:
        net = bd.models.mlp(64, [300, 100], 10, name)
    model = bd.Classifier(net, num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    rate: dict[str, Any] = {} if lr is None else {"lr": lr}
    t0 = time.perf_counter()
    bd.fit(model, guide, ds.train, epochs=epochs, seed=seed, progress=False, **rate)
    seconds = time.perf_counter() - t0
    pyro.set_rng_seed(seed)
    mc = bd.evaluate(model, guide, ds.test, num_samples=100)["acc"]
    mean_net = guide.mean_network(pruned=name != "bernoulli", threshold=THRESHOLD)
    with torch.no_grad():
        pruned = (mean_net(ds.test.x).argmax(-1) == ds.test.y).float().mean().item()
    sp = float("nan") if name == "bernoulli" else sparsity(model, guide)
    return {"method": name, "split": split, "seed": seed, "mc": mc, "pruned": pruned, "sparsity": sp, "s": seconds}


def run(methods: Sequence[str], splits: int, seeds: int, epochs: int, lr: float | None = None) -> list[dict[str, Any]]:
    """Every method on every split and seed; one row per run."""
    return [one_run(m, sp, sd, epochs, lr) for m in methods for sp in range(splits) for sd in range(seeds)]


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method: mean MC and pruned accuracy, lowest sparsity, and the gaps to ``bernoulli`` (points)."""
    out: dict[str, dict[str, Any]] = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == m]
        out[m] = {
            "runs": len(rs),
            "mc": statistics.mean(r["mc"] for r in rs),
            "pruned": statistics.mean(r["pruned"] for r in rs),
            "min_sparsity": min(r["sparsity"] for r in rs),
        }
    if "bernoulli" in out:
        ref = out["bernoulli"]["mc"]
        for s in out.values():
            s["gap_mc"] = 100 * (ref - s["mc"])
            s["gap_pruned"] = 100 * (ref - s["pruned"])
    return out


def _pct(x: float) -> str:
    """A fraction as a percentage with two decimals; empty for NaN (no sparsity for ``bernoulli``)."""
    return "" if x != x else f"{100 * x:.2f}"


def markdown(rows: Sequence[dict[str, Any]], command: str) -> str:
    """The Markdown record: the claim per method (from :func:`summary`), then every run; ``command`` is quoted."""
    summ = summary(rows)
    lines = [
        "# `sparse-vd` and `vbd` against Bernoulli dropout on digits",
        "",
        f"Command: `{command}`; {device_name(torch.device('cpu'))}.",
        "",
        "Claim: within 1 percentage point of `bernoulli`'s mean MC accuracy while at least 90 % of the weights have "
        "log alpha > 3.  Gaps are `bernoulli` MC minus the method, in points (positive: below Bernoulli).",
        "",
        "| method | runs | MC accuracy % | pruned accuracy % | gap MC | gap pruned | lowest sparsity % | claim |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, s in summ.items():
        if m == "bernoulli":
            claim = "reference"
        else:
            ok = s["gap_mc"] <= 1.0 and s["gap_pruned"] <= 1.0 and s["min_sparsity"] >= 0.9
            claim = "met" if ok else "not met"
        sp = _pct(s["min_sparsity"])
        lines.append(
            f"| {m} | {s['runs']} | {100 * s['mc']:.2f} | {100 * s['pruned']:.2f} | {s.get('gap_mc', 0):+.2f} | "
            f"{s.get('gap_pruned', 0):+.2f} | {sp} | {claim} |"
        )
    lines += [
        "",
        "Runs (accuracy %, sparsity %, training seconds):",
        "",
        "| method | split | seed | MC | pruned | sparsity | s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | {r['split']} | {r['seed']} | {100 * r['mc']:.2f} | {100 * r['pruned']:.2f} | "
        f"{_pct(r['sparsity'])} | {r['s']:.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/sparse_vs_bernoulli.md"
) -> list[dict[str, Any]]:
    """The command line of ``benchmarks/sparse_vs_bernoulli.py``: run every method, split and seed, write the record.

    ``argv`` and ``default_out`` as :func:`~bayesdrop.experiments.report_io.script_parser` says.

    Returns
    -------
    list of dict
        One row per run, as :func:`one_run`.
    """
    argv = sys.argv[1:] if argv is None else argv
    ap = script_parser(__doc__)
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--splits", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--lr", type=float, default=None, help="default: bd.fit's")
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    rows = run(args.methods, args.splits, args.seeds, args.epochs, args.lr)
    command = " ".join(["python benchmarks/sparse_vs_bernoulli.py", *argv])
    write_results(markdown(rows, command), args.out)
    return rows
