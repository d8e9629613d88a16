"""Train every method on the same data, architecture, seed and budget, and compare.

The table follows Liu et al. (2019) Table 1, with the columns a Bayesian user
needs beside the error: test error and NLL of the Monte Carlo predictive,
expected calibration error (the definitions of :mod:`bayesdrop.diagnostics.metrics`, on the draws of
:func:`bayesdrop.to_inference_data`), PSIS-LOO on the training data ranked by ``az.compare`` (elpd_loo and
its standard error, the difference to the best method and its standard error), out-of-distribution detection of
uniform noise of the inputs' shape and range (AUROC of the mutual information and of the predictive entropy,
FPR at 95 % TPR of the mutual information; :func:`bayesdrop.diagnostics.ood`), the mean learned keep probability,
the compression ratio :math:`|W| / |W \\ne 0|` of :func:`bayesdrop.compress.report` and the training time per
epoch.

Every method runs under the library's defaults (those of ``bd.models.mlp`` and
``bd.fit``): fixed-rate methods drop 0.2 of the inputs and 0.5 of hidden units;
methods that learn their rates act on every layer, inputs included, and bring
their own KL warm-up (:class:`bayesdrop.methods.TrainingDefaults`).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import compress, methods
from ..diagnostics import arviz as _arviz
from ..diagnostics import calibration, compare_kfold, compare_loo, loo_summary, ood, to_inference_data
from ..diagnostics import kfold as kfold_cv
from ..fileio import atomic_write_json, atomic_write_text
from ..guides import dropout_rates
from ..infer import DEFAULT_LR, fit, resolve_device
from . import runs
from .runs import build, inputs, parse_arch

__all__ = ["compare", "methods_to_compare", "to_markdown", "uniform_noise", "write", "JSON"]
JSON = "compare.json"  #: the comparison's rows in the output directory (``compare.md`` beside it)
COLUMNS = (
    "method",
    "test error %",
    "NLL",
    "ECE",
    "elpd_loo",
    "Δelpd_loo",
    "AUROC MI",
    "AUROC H",
    "FPR95 MI",
    "mean keep",
    "|W|/|W≠0|",
    "s/epoch",
)
OOD_LABEL = "uniform noise of the inputs' shape and range"


def uniform_noise(x: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` inputs of uniform noise of the shape of one row of ``x`` over its value range (the out-of-distribution
    inputs of ``compare`` and ``bayesdrop report``)."""
    lo, hi = float(x.min()), float(x.max())
    gen = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand((n, *x.shape[1:]), generator=gen, dtype=x.dtype)


def methods_to_compare(method_names: list[str] | None, arch: str, kfold: int | None = None) -> list[str]:
    """The methods :func:`compare` trains, checked before any training (and before ``bayesdrop compare`` replaces a
    previous comparison): ``method_names``, or for ``None`` / ``["all"]`` every method the architecture ``arch``
    takes; a ``ValueError`` for a method named twice, an unknown one or one the architecture has no place for, and
    for a ``kfold`` of 1 or below 0."""
    kind = parse_arch(arch)[0]
    if not method_names or method_names == ["all"]:  # every method the architecture takes
        taken = {n for role in runs.ROLES[kind] for n in methods.names(role=role)}
        names = [n for n in methods.names() if n in taken]
    else:
        names = list(method_names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # one run directory, and one row, per method
        raise ValueError(f"`method_names` names {', '.join(map(repr, repeated))} more than once: give each method once")
    for n in names:  # unknown names, and methods the architecture has no place for, fail before any training
        runs.check_placement(n, methods.get(n), kind)
    runs.check_kfold(kfold)
    return names


def compare(
    dataset: str = "digits",
    method_names: list[str] | None = None,
    *,
    arch: str = "mlp:300,100",
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = DEFAULT_LR,
    kl_warmup: int | str = "auto",
    lr_decay: str | None = "linear",
    lr_warmup: int | str = "auto",
    num_samples: int = 100,
    seed: int = 0,
    device: str = "auto",
    mnist_dir: str | None = None,
    progress: bool = True,
    runs_dir: str | os.PathLike[str] | None = None,
    kfold: int = 0,
) -> list[dict[str, Any]]:
    """Train each method and return one row of metrics per method.

    Parameters
    ----------
    dataset
        ``digits``, ``mnist1d``, ``mnist`` (with ``mnist_dir``) — classification.
    method_names
        Registered names; ``None`` or ``["all"]`` for every method the architecture takes (an MLP: the layer and
        input methods; ``lenet5``: also the pool methods; ``rnn``: the layer and recurrent methods).
    arch, epochs, batch_size, lr, seed, device
        The shared budget (see ``bayesdrop train``).
    kl_warmup
        Epochs of linear KL warm-up for every method, or ``"auto"`` (default): each method's own
        (:func:`bayesdrop.infer.resolve_kl_warmup`).
    lr_decay, lr_warmup
        As :func:`bayesdrop.fit` takes them (defaults: ``"linear"`` and ``"auto"``).
    num_samples
        Posterior draws of the predictive (:func:`bayesdrop.to_inference_data`, seed 0, each draw one network).
    mnist_dir
        The directory of the MNIST IDX files (``dataset="mnist"``).
    progress
        A progress bar over the methods.
    runs_dir
        If given, each method's run directory is kept in ``runs_dir/<method>``, with the files ``bayesdrop
        train`` writes (``config.json``, ``checkpoint.pt``, ``history.json``, ``metrics.json``: the test accuracy,
        NLL and ECE of the draws above, and ``complete.json``), so that ``bayesdrop report`` and ``bayesdrop
        prune`` take it.  A directory there that holds anything but a bayesdrop run is refused
        (:class:`~bayesdrop.experiments.runs.RunDirectoryError`); one that holds a run is replaced.
    kfold
        If >= 2, also ``kfold``-fold cross-validation of each method (:func:`bayesdrop.diagnostics.kfold`: the
        method's recipe refitted ``kfold`` times, the same folds for every method), ranked by the paired elpd
        differences (:func:`bayesdrop.diagnostics.compare_kfold`): the ranking to trust where PSIS-LOO's Pareto k
        are large (fixed-rate dropout).  0: none.

    Returns
    -------
    list of dict
        One row per method, in the order given: the columns of :data:`COLUMNS` and ``elpd_loo_se``, ``p_loo``,
        ``dse`` (the standard error of ``Δelpd_loo``), ``loo_rank`` (``az.compare``'s, 0 the best), ``k>0.7``
        (points whose Pareto k exceeds 0.7), ``AUPR MI``, ``architecture`` and ``train seconds``.

    Raises
    ------
    ValueError
        Before any training: a method named twice in ``method_names``, an unknown one or one the architecture has
        no place for (a pool method in an MLP), a ``kfold`` of 1 or below 0; a ``dataset`` that is not a
        classification data set, once it is loaded.
    """
    names = methods_to_compare(method_names, arch, kfold)
    dev = resolve_device(device)
    rows = []
    loo_data: dict[str, Any] = {}
    folds: dict[str, Any] = {}
    bar = tqdm(names, desc="compare", disable=not progress)
    for name in bar:
        bar.set_postfix(method=name)
        config: dict[str, Any] = {
            "method": name,
            "hyper": {},
            "dataset": dataset,
            "mnist_dir": mnist_dir,
            "arch": arch,
            "data_seed": 0,
            "seed": seed,
        }
        ds, model, guide = build(config)
        if ds.task != "classification":
            raise ValueError(f"`dataset` must be a classification data set for compare, got {dataset!r}")
        train, test = inputs(ds, config, ds.train), inputs(ds, config, ds.test)
        config.update(  # the run's configuration as `bayesdrop train` writes it (config.json)
            input_method=None,
            input_hyper={},
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            kl_warmup=kl_warmup,
            lr_decay=lr_decay,
            lr_warmup=lr_warmup,
        )
        config.update(runs.resolved_warmups(model, train, config))
        with contextlib.ExitStack() as stack:
            run = None
            if runs_dir is not None:
                run = _method_run(Path(runs_dir) / name, stack)
                atomic_write_json(run / runs.CONFIG, config)
            t0 = time.perf_counter()
            res = fit(
                model,
                guide,
                train,
                **runs.fit_options(config),
                device=dev,
                seed=seed,
                progress=False,
                checkpoint=None if run is None else run / runs.CHECKPOINT,
                run_config=None if run is None else config,
            )
            wall = time.perf_counter() - t0
            noise = uniform_noise(train.x, len(test.x), seed=seed)
            draws: dict[str, Any] = {"num_samples": num_samples, "seed": 0}
            idata = to_inference_data(model, guide, test, predictions=noise, **draws)
            cal = calibration(idata)
            if run is not None:
                metrics = {"acc": cal["accuracy"], "nll": cal["nll"], "ece": cal["ece"]}
                atomic_write_json(run / runs.HISTORY, res.history)
                atomic_write_json(run / runs.METRICS, {**metrics, "seconds_per_epoch": res.seconds_per_epoch})
                runs.mark_complete(run, {"epochs": len(res.history.get("elbo", []))})
        if kfold:
            options = {**runs.fit_options(config), "device": dev}
            folds[name] = kfold_cv(
                runs.fold_builder(config, ds),
                train,
                kfold,
                num_samples=num_samples,
                seed=seed,
                fit_kwargs=options,
                progress=False,
            )
        detection = ood(idata)
        idata_train = to_inference_data(model, guide, train, **draws)
        loo = loo_summary(idata_train)
        loo_data[name] = _arviz.only(idata_train, "log_likelihood")
        rates = dropout_rates(model, guide)
        keep = torch.cat([r.flatten().cpu() for r in rates.values()])
        rep = compress.report(model, guide)
        rows.append(
            {
                "method": name,
                "test error %": 100 * (1.0 - cal["accuracy"]),
                "NLL": cal["nll"],
                "ECE": cal["ece"],
                "elpd_loo": loo["elpd_loo"],
                "elpd_loo_se": loo["se"],
                "p_loo": loo["p_loo"],
                "k>0.7": loo["0.7<k<=1"] + loo["k>1"],
                "Δelpd_loo": 0.0,
                "dse": 0.0,
                "loo_rank": 0,
                "AUROC MI": detection["mutual_information"]["auroc"],
                "AUROC H": detection["predictive_entropy"]["auroc"],
                "FPR95 MI": detection["mutual_information"]["fpr95"],
                "AUPR MI": detection["mutual_information"]["aupr"],
                "mean keep": keep.mean().item(),
                "|W|/|W≠0|": rep.ratio,
                "s/epoch": res.seconds_per_epoch,
                "architecture": rep.architecture,
                "train seconds": wall,
            }
        )
    if len(loo_data) > 1:  # az.compare on PSIS-LOO of the training data: elpd differences and their SEs
        for ranked in compare_loo(loo_data):
            row = next(r for r in rows if r["method"] == ranked["name"])
            row.update({"Δelpd_loo": ranked["elpd_diff"], "dse": ranked["dse"], "loo_rank": ranked["rank"]})
    for ranked in compare_kfold(folds) if len(folds) > 1 else []:  # paired differences over the same folds
        row = next(r for r in rows if r["method"] == ranked["name"])
        row.update(
            {
                "elpd_kfold": ranked["elpd_kfold"],
                "kfold_se": ranked["se"],
                "Δelpd_kfold": ranked["elpd_diff"],
                "kfold_dse": ranked["dse"],
                "kfold_rank": ranked["rank"],
            }
        )
    return rows


def _method_run(path: Path, stack: contextlib.ExitStack) -> Path:
    """``path`` as one method's run directory, locked on ``stack`` (:class:`~bayesdrop.experiments.runs.RunLock`)
    and emptied: refused if it holds anything but a bayesdrop run (no ``config.json``)."""
    run = runs.check_run_path(path, "--out")
    if run.is_dir() and runs.scan_run_dir(run, "--out") and not (run / runs.CONFIG).is_file():
        raise runs.RunDirectoryError(
            f"{os.fspath(run)!r} is not empty and holds no bayesdrop run (no {runs.CONFIG}); compare keeps each "
            "method's run there: move it, or choose another --out"
        )
    stack.enter_context(runs.RunLock(run, "--out", create=True))
    runs.prepare_run_dir(run, overwrite=True)
    return run


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison as a markdown table."""
    fmt = {
        "test error %": "{:.2f}",
        "NLL": "{:.3f}",
        "ECE": "{:.3f}",
        "AUROC MI": "{:.3f}",
        "AUROC H": "{:.3f}",
        "FPR95 MI": "{:.3f}",
        "mean keep": "{:.3f}",
        "|W|/|W≠0|": "{:.1f}",
        "s/epoch": "{:.3f}",
    }

    def cell(r: dict[str, Any], c: str) -> str:
        if c == "elpd_loo":
            return f"{r['elpd_loo']:.1f} ± {r['elpd_loo_se']:.1f}"
        if c == "Δelpd_loo":
            return f"{r['Δelpd_loo']:.1f} ± {r['dse']:.1f} (rank {r['loo_rank']})"
        if c == "elpd_kfold":
            return f"{r['elpd_kfold']:.1f} ± {r['kfold_se']:.1f}"
        if c == "Δelpd_kfold":
            return f"{r['Δelpd_kfold']:.1f} ± {r['kfold_dse']:.1f} (rank {r['kfold_rank']})"
        return fmt[c].format(r[c])

    kfold = bool(rows) and all("elpd_kfold" in r for r in rows)
    columns = (*COLUMNS[:6], "elpd_kfold", "Δelpd_kfold", *COLUMNS[6:]) if kfold else COLUMNS
    head = "| " + " | ".join(c.replace("|", "\\|") for c in columns) + " | architecture |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    for r in rows:
        cells = [r["method"]] + [cell(r, c) for c in columns[1:]] + [f"`{r['architecture']}`"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        "elpd_loo: PSIS-LOO on the training data ± its standard error; Δelpd_loo: the difference to the best "
        "method by `az.compare` ± the standard error of the difference (rank 0 is the best).  AUROC and FPR at 95 % "
        f"TPR: the test inputs against as many inputs of {OOD_LABEL}, by mutual information (MI) and predictive "
        "entropy (H).",
    ]
    if kfold:
        notes[-1] += (
            "  elpd_kfold: K-fold cross-validation on the training data (each method refitted on every K - 1 folds, "
            "the same folds for all) ± its standard error; Δelpd_kfold: the paired difference to the best ± its "
            "standard error, the ranking to trust where PSIS-LOO's Pareto k are large (`k>0.7` in compare.json)."
        )
    return "\n".join(lines + notes)


def write(rows: list[dict[str, Any]], out: str | Path, header: str = "") -> str:
    """Write ``compare.json`` and ``compare.md`` into ``out``; return the markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = (header + "\n\n" if header else "") + to_markdown(rows) + "\n"
    atomic_write_json(out / JSON, rows)
    atomic_write_text(out / "compare.md", text)
    return text
