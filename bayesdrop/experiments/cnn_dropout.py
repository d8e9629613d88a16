"""Dropout in convolutional networks: LeNet-5 analogs with the dropouts of the pixels, the feature maps and the
pooling layers, on digits, MNIST-1D and MNIST.

For users choosing where to put the noise in a convolutional network, and for maintainers checking the pooling
methods and Cutout end to end: ``benchmarks/cnn_dropout.py`` is the command line that writes
``benchmarks/results/cnn_dropout.md`` (one section per data set, each run replacing its own),
``tests/test_cnn_dropout_benchmark.py`` checks the networks, the two test rules of max-pooling dropout and the record.

Protocol: ``bd.models.lenet5`` (widths 20-50-500 by default: two convolutions with max pooling, one hidden dense
layer) on ``--dataset`` (:data:`DATASETS`): digits (8 x 8 images, 1437 / 360), MNIST-1D (Greydanus 2020; signals of
40 samples, ``image_shape=(1, 40)``, one-dimensional convolutions; 4000 / 1000) or MNIST from ``--mnist-dir``
(28 x 28, 60000 / 10000), the inputs given as images (``Dataset.images``).  Every configuration (:data:`CONFIGS`)
trains with ``bd.Classifier``, ``bd.DropoutGuide`` and ``bd.fit``'s defaults (only ``epochs`` and the seed are set;
Pyro's validation is off during training, as for speed) for ``--epochs`` (:data:`EPOCHS`: 100 for digits and
MNIST-1D, 20 for MNIST), one run per training seed ``0 .. --seeds - 1``, ``--jobs`` runs at a time in worker
processes of one thread each.

Configurations (:func:`network`): ``none`` (no noise: point estimates under the N(0, 1) prior); ``standard``
(``bernoulli``, p = 0.5 on the inputs of the second convolution and of the dense layers, 0.2 on the pixels when there
are at least 64 of them); ``spatial``, the same with one draw per feature map on the second convolution's input
(Tompson et al. 2015); ``maxpool-dropout`` (Wu & Gu 2015), ``avgpool-dropout`` (the same mask before average
pooling), ``stochastic-pooling`` (Zeiler & Fergus 2013) and ``max-drop`` (Park & Kwak 2016) in the two pooling
layers of a network without other noise; ``cutout`` (DeVries & Taylor 2017) on the pixels of a network without
other noise; ``cutout+spatial``, Cutout on the pixels and ``spatial`` elsewhere.

Reported per configuration, mean and standard deviation over the seeds: test error (%), NLL and expected
calibration error (15 bins) of the Monte Carlo predictive (``bd.predict``, :data:`EVAL_SAMPLES` draws), test error
and NLL of the deterministic test-time network (``rule="weight-scaling"``: each method's own test rule), and the
training seconds per epoch.  Max-pooling dropout has two deterministic rules, probabilistic weighted pooling and the
max scaled by the keep probability: the same trained networks are evaluated under both (:func:`pool_test_rule`),
one table row each, with the same Monte Carlo columns.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/cnn_dropout.py [--dataset {digits,mnist1d,mnist}] [--mnist-dir DIR]
        [--seeds 3] [--epochs E] [--jobs 2] [--configs NAME ...] [--eval-samples 100]
        [--channels 20 50] [--hidden 500] [--out FILE]

Example
-------
>>> from bayesdrop.experiments import cnn_dropout
>>> rows = cnn_dropout.run(["standard", "maxpool-dropout"], seeds=1, epochs=2, hidden=8)  # doctest: +SKIP
>>> print(cnn_dropout.markdown(rows, "python benchmarks/cnn_dropout.py"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pyro
import torch
from pyro.nn import PyroModule

import bayesdrop as bd

from .report_io import (
    chosen_epochs,
    dataset_arguments,
    device_name,
    merge_sections,
    quoted_command,
    run_jobs,
    script_parser,
    write_results,
)
from .runs import load_dataset

__all__ = [
    "CHANNELS",
    "CONFIGS",
    "DATASETS",
    "EPOCHS",
    "EVAL_SAMPLES",
    "HIDDEN",
    "TEST_RULES",
    "TITLE",
    "main",
    "markdown",
    "merge",
    "network",
    "one_run",
    "pool_test_rule",
    "run",
    "scores",
    "summary",
]

DATASETS = ("digits", "mnist1d", "mnist")
EPOCHS = {"digits": 100, "mnist1d": 100, "mnist": 20}  # default epochs per data set
CHANNELS, HIDDEN = (20, 50), 500  # lenet5's default widths
EVAL_SAMPLES = 100  # draws of the Monte Carlo predictive
PREDICT_BATCH = 1000  # test examples per call of bd.predict (bounds the memory of a pass over MNIST)
TITLE = "# Dropout in convolutional networks: LeNet-5 analogs"

# configuration -> the arguments of bd.models.lenet5 besides the shape, the classes and the widths
_NETWORKS: dict[str, dict[str, Any]] = {
    "none": {"method": None},
    "standard": {"method": "bernoulli"},
    "spatial": {"method": "bernoulli", "noise": "channel"},
    "maxpool-dropout": {"method": None, "pool_method": "maxpool-dropout"},
    "avgpool-dropout": {"method": None, "pool_method": "avgpool-dropout"},
    "stochastic-pooling": {"method": None, "pool_method": "stochastic-pooling"},
    "max-drop": {"method": None, "pool_method": "max-drop"},
    "cutout": {"method": None, "input_method": "cutout"},
    "cutout+spatial": {"method": "bernoulli", "input_method": "cutout", "noise": "channel"},
}
CONFIGS = tuple(_NETWORKS)
# configurations evaluated under more than one deterministic test rule: the rules, the first the method's default
TEST_RULES: dict[str, tuple[str, ...]] = {"maxpool-dropout": ("probabilistic", "scaled")}
_DEFAULT_RULE = "weight-scaling"  # the key of the one deterministic rule of the other configurations
_NAMES = {
    "digits": ("Digits", "the default split"),
    "mnist1d": ("MNIST-1D (Greydanus 2020)", "the generator's split"),
    "mnist": ("MNIST (LeCun et al. 1998)", "the standard split"),
}


def _check_configs(configs: Sequence[str]) -> None:
    unknown = [c for c in configs if c not in _NETWORKS]
    if isinstance(configs, str) or unknown or not configs:
        raise ValueError(f"`configs` must be a non-empty list of {list(CONFIGS)}, got {configs!r}")


def network(
    config: str,
    image_shape: Sequence[int],
    num_classes: int = 10,
    *,
    channels: tuple[int, int] = CHANNELS,
    hidden: int = HIDDEN,
) -> PyroModule:
    """The LeNet-5 analog of configuration ``config`` (one of :data:`CONFIGS`) for images ``(C, H, W)`` or signals
    ``(C, L)``.

    Parameters
    ----------
    config
        The configuration: where the noise goes (see the module's docstring).
    image_shape, num_classes
        As :func:`bayesdrop.models.lenet5`.
    channels, hidden
        The widths of the two convolutions and of the hidden dense layer.

    Returns
    -------
    PyroModule
        ``bd.models.lenet5(image_shape, num_classes, ...)`` with the configuration's methods.
    """
    if config not in _NETWORKS:
        raise ValueError(f"`config` must be one of {list(CONFIGS)}, got {config!r}")
    kwargs = dict(_NETWORKS[config])
    method = kwargs.pop("method")
    return bd.models.lenet5(image_shape, num_classes, method, channels=channels, hidden=hidden, **kwargs)


def _pool_layers(net: torch.nn.Module) -> list[bd.nn.BayesianLayer]:
    """The pooling layers of ``net`` whose method has a choice of deterministic rule (``test_rule``)."""
    pools = (bd.nn.MaxPool1d, bd.nn.MaxPool2d, bd.nn.AvgPool1d, bd.nn.AvgPool2d)
    return [m for m in net.modules() if isinstance(m, pools) and hasattr(m.method, "test_rule")]


@contextlib.contextmanager
def pool_test_rule(net: torch.nn.Module, rule: str) -> Iterator[None]:
    """Within the block, the pooling layers of ``net`` apply the deterministic test rule ``rule`` (``test_rule`` of
    ``maxpool-dropout``: ``"probabilistic"`` or ``"scaled"``); their methods' rules are restored on leaving.

    The rule is set on the methods in place: nothing is retrained or rebuilt, so the predictions inside the block come
    from the same trained network, and the Monte Carlo predictive (which draws the masks) does not change.

    Raises
    ------
    ValueError
        If ``net`` has no pooling layer with a ``test_rule``, or ``rule`` is not one of its method's rules.
    """
    layers = _pool_layers(net)
    if not layers:
        raise ValueError("`net` has no pooling layer whose method has a `test_rule`")
    # lenet5 shares one method between its pooling layers; a method with rules is e.g. MaxPoolDropout
    methods: list[Any] = list({id(layer.method): layer.method for layer in layers}.values())
    for m in methods:
        rules = getattr(m, "TEST_RULES", ())
        if rule not in rules:
            raise ValueError(f"`rule` must be one of {rules}, got {rule!r}")
    before = [cast(str, m.test_rule) for m in methods]
    try:
        for m in methods:
            m.test_rule = rule
        yield
    finally:
        for m, old in zip(methods, before):
            m.test_rule = old


def scores(probs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Test error (%), mean negative log-likelihood (nats) and expected calibration error (15 equal-width bins,
    :func:`bayesdrop.diagnostics.expected_calibration_error`) of class probabilities ``probs`` ``(N, C)`` for
    labels ``y`` ``(N,)``; the likelihood of a class is clamped at 1e-12, as ``bd.Classifier.metrics`` does."""
    y = y.to(probs.device)
    nll = -probs.gather(-1, y[:, None]).clamp_min(1e-12).log().mean().item()
    error = 100.0 * (probs.argmax(-1) != y).double().mean().item()
    return {"error": error, "nll": nll, "ece": bd.diagnostics.expected_calibration_error(probs, y)}


def _predict(model: bd.Likelihood, guide: bd.DropoutGuide, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """``bd.predict`` over ``x`` in chunks of :data:`PREDICT_BATCH` examples (every draw of these methods is
    per example, so chunks give the same predictive as one call), the class probabilities concatenated."""
    chunks = [bd.predict(model, guide, x[i : i + PREDICT_BATCH], **kwargs) for i in range(0, len(x), PREDICT_BATCH)]
    return torch.cat(cast(list[torch.Tensor], chunks))


def _subset(split: bd.data.Split, n: int | None) -> bd.data.Split:
    return split if n is None else bd.data.Split(split.x[:n], split.y[:n])


def one_run(
    config: str,
    seed: int,
    *,
    epochs: int,
    dataset: str = "digits",
    mnist_dir: str | os.PathLike[str] | None = None,
    channels: tuple[int, int] = CHANNELS,
    hidden: int = HIDDEN,
    eval_samples: int = EVAL_SAMPLES,
    n_train: int | None = None,
    n_test: int | None = None,
) -> dict[str, Any]:
    """Train the network of ``config`` (:func:`network`) on ``dataset`` from training seed ``seed`` and score it
    on the test set.

    Parameters
    ----------
    config
        One of :data:`CONFIGS`.
    seed
        Seeds the initial weights, ``bd.fit`` and the predictive's draws.
    epochs
        Training epochs (``bd.fit``'s other arguments keep their defaults).
    dataset, mnist_dir
        One of :data:`DATASETS`; MNIST from the IDX files in ``mnist_dir``.
    channels, hidden
        Widths of the network (tests use tiny ones).
    eval_samples
        Draws of the Monte Carlo predictive.
    n_train, n_test
        Use only the first ``n_train`` training and ``n_test`` test examples (``None``: all).

    Returns
    -------
    dict
        ``config``, ``seed``, ``dataset``, ``epochs``, ``image_shape``, ``widths`` (``"20-50-500"``), ``n_train``,
        ``n_test``, ``eval_samples``; ``mc`` (the Monte Carlo predictive's ``error`` (%), ``nll`` and ``ece``),
        ``deterministic`` (per deterministic rule, its ``error`` (%) and ``nll``: the keys :data:`TEST_RULES` gives
        the configuration, else the one key ``"weight-scaling"``), ``s_per_epoch`` (``FitResult.seconds_per_epoch``),
        ``seconds`` (training and evaluation), ``device`` (:func:`~bayesdrop.experiments.report_io.device_name`
        of the training device, with the threads of this process) and ``warnings`` (``bd.fit``'s collapse
        warnings).
    """
    if config not in _NETWORKS:
        raise ValueError(f"`config` must be one of {list(CONFIGS)}, got {config!r}")
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {dataset!r}")
    t0 = time.perf_counter()
    ds = load_dataset(dataset, mnist_dir)
    if ds.image_shape is None or ds.num_classes is None:
        raise ValueError(f"`dataset` {dataset!r} has no images or classes")
    train, test = _subset(ds.train, n_train), _subset(ds.test, n_test)
    x_train, x_test = ds.images(train), ds.images(test)
    pyro.set_rng_seed(seed)  # the initial weights: a run must not depend on the runs before it
    net = network(config, ds.image_shape, ds.num_classes, channels=channels, hidden=hidden)
    model = bd.Classifier(net, num_data=len(train))
    guide = bd.DropoutGuide(model)
    with pyro.validation_enabled(False):
        result = bd.fit(model, guide, (x_train, train.y), epochs=epochs, seed=seed, progress=False)
    pyro.set_rng_seed(seed)
    mc = scores(_predict(model, guide, x_test, num_samples=eval_samples), test.y)
    deterministic: dict[str, dict[str, float]] = {}
    for rule in TEST_RULES.get(config, (_DEFAULT_RULE,)):
        with pool_test_rule(net, rule) if config in TEST_RULES else contextlib.nullcontext():
            s = scores(_predict(model, guide, x_test, rule="weight-scaling"), test.y)
        deterministic[rule] = {"error": s["error"], "nll": s["nll"]}
    return {
        "config": config, "seed": seed, "dataset": dataset, "epochs": epochs, "image_shape": tuple(ds.image_shape),
        "widths": "-".join(map(str, (*channels, hidden))), "n_train": len(train), "n_test": len(test),
        "eval_samples": eval_samples, "mc": mc, "deterministic": deterministic,
        "s_per_epoch": result.seconds_per_epoch, "seconds": time.perf_counter() - t0,
        "device": device_name(result.device), "warnings": list(result.warnings),
    }  # fmt: skip


def _progress(done: int, total: int, row: dict[str, Any]) -> None:
    det = "; ".join(f"{k} {v['error']:.2f} %" for k, v in row["deterministic"].items())
    warned = f"; {len(row['warnings'])} collapse warning(s)" if row["warnings"] else ""
    print(
        f"[{done}/{total}] {row['dataset']} {row['config']} seed {row['seed']}: MC error {row['mc']['error']:.2f} %, "
        f"deterministic {det}; {row['s_per_epoch']:.2f} s/epoch, {row['seconds']:.0f} s{warned}",
        flush=True,
    )


def run(
    configs: Sequence[str] = CONFIGS,
    seeds: int = 3,
    epochs: int | None = None,
    *,
    dataset: str = "digits",
    mnist_dir: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    channels: tuple[int, int] = CHANNELS,
    hidden: int = HIDDEN,
    eval_samples: int = EVAL_SAMPLES,
    n_train: int | None = None,
    n_test: int | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Every configuration of ``configs`` with every training seed ``0 .. seeds - 1`` on ``dataset``
    (:func:`one_run`), ``jobs`` at a time in worker processes of one thread each (``jobs=1``: in this process).

    ``epochs`` ``None``: the data set's own (:data:`EPOCHS`).  With ``progress`` a line is printed as each run
    finishes.

    Returns
    -------
    list of dict
        One row per run (:func:`one_run`), in the order of ``configs``, then of the seeds.
    """
    _check_configs(configs)
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {dataset!r}")
    epochs = EPOCHS[dataset] if epochs is None else epochs
    for name, v in (("seeds", seeds), ("epochs", epochs), ("jobs", jobs), ("eval_samples", eval_samples)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}")
    if dataset == "mnist" and not mnist_dir:
        raise ValueError("`--dataset mnist` needs `--mnist-dir` (a directory with the IDX files)")
    if dataset == "mnist":
        load_dataset(dataset, mnist_dir)  # a missing or broken file fails here, before any training
    kwargs: dict[str, Any] = {"epochs": epochs, "dataset": dataset, "mnist_dir": mnist_dir, "hidden": hidden,
                              "channels": tuple(channels), "eval_samples": eval_samples, "n_train": n_train,
                              "n_test": n_test}  # fmt: skip
    jobs_args = [(c, s) for c in configs for s in range(seeds)]
    return run_jobs(one_run, jobs_args, kwargs, jobs=jobs, progress=_progress if progress else None)


def _label(config: str, rule: str) -> str:
    return config if rule == _DEFAULT_RULE else f"{config} ({rule})"


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per table row (the configuration, or ``"maxpool-dropout (probabilistic)"`` and ``"... (scaled)"`` for
    each deterministic rule of :data:`TEST_RULES`), in the order of ``rows``: ``runs``, and (mean, standard
    deviation) over the runs of ``mc_error``, ``mc_nll``, ``mc_ece``, ``det_error``, ``det_nll`` and
    ``s_per_epoch``; the rows of one configuration share its Monte Carlo and timing statistics."""
    out: dict[str, dict[str, Any]] = {}
    for config in dict.fromkeys(r["config"] for r in rows):
        rs = [r for r in rows if r["config"] == config]
        shared = {
            "runs": len(rs),
            **{f"mc_{k}": _stats([r["mc"][k] for r in rs]) for k in ("error", "nll", "ece")},
            "s_per_epoch": _stats([r["s_per_epoch"] for r in rs]),
        }
        for rule in rs[0]["deterministic"]:
            det = {f"det_{k}": _stats([r["deterministic"][rule][k] for r in rs]) for k in ("error", "nll")}
            out[_label(config, rule)] = {**shared, **det}
    return out


def _cell(ms: tuple[float, float], digits: int) -> str:
    return f"{ms[0]:.{digits}f} ± {ms[1]:.{digits}f}"


def _architecture(shape: Sequence[int], widths: str) -> str:
    if len(shape) == 2:
        return (
            f"LeNet-5 analog {widths} for signals {tuple(shape)}: one-dimensional convolutions of kernel 5 with "
            "padding 2, each followed by a ReLU and pooling of 2"
        )
    pad = "none" if min(shape[1:]) >= 28 else "2"
    return (
        f"LeNet-5 analog {widths} for images {tuple(shape)}: 5 x 5 convolutions (padding {pad}), each followed by a "
        "ReLU and 2 x 2 pooling"
    )


def _inputs(shape: Sequence[int]) -> tuple[str, str]:
    """What ``standard`` does to the inputs, and Cutout's region, for inputs of shape ``shape``."""
    p = cast(Any, bd.methods.get("bernoulli")).input_layer(math.prod(shape)).p
    pixels = f"p = {p:g} on the {math.prod(shape)} inputs" if p else f"no noise on the {math.prod(shape)} inputs"
    cutout = cast(Any, bd.methods.get("cutout"))
    spatial = tuple(shape[1:])
    side = cutout.side(spatial)
    region = f"a segment of {side} of the {spatial[0]} samples" if len(spatial) == 1 else f"a {side} x {side} square"
    return pixels, region


def _describe(config: str, pixels: str, region: str, configs: Sequence[str]) -> str:
    """What configuration ``config`` does, for the protocol paragraph of a table of ``configs``; ``pixels`` and
    ``region`` from :func:`_inputs`."""
    pool = "in the two pooling layers"
    standard = f"`bernoulli`, p = 0.5 on the inputs of the second convolution and of the dense layers, {pixels}"
    return {
        "none": "`none`: no noise (point estimates under the N(0, 1) prior)",
        "standard": f"`standard`: {standard}",
        "spatial": f"`spatial`: {'as `standard`' if 'standard' in configs else standard}, with one draw per feature "
        "map on the second convolution's input (Tompson et al. 2015)",
        "maxpool-dropout": f"`maxpool-dropout` (Wu & Gu 2015) {pool}",
        "avgpool-dropout": f"`avgpool-dropout` (the same, with average pooling) {pool}",
        "stochastic-pooling": f"`stochastic-pooling` (Zeiler & Fergus 2013) {pool}",
        "max-drop": f"`max-drop` (Park & Kwak 2016) {pool}",
        "cutout": f"`cutout` (DeVries & Taylor 2017): {region} of the inputs zeroed at a uniform centre",
        "cutout+spatial": "`cutout+spatial`: Cutout on the inputs, `spatial` elsewhere",
    }[config]


def markdown(rows: Sequence[dict[str, Any]], command: str, *, jobs: int = 1) -> str:
    """The section of the record for the data set of ``rows`` (their ``dataset``, ``epochs``, ``image_shape``,
    ``widths``, ``n_train``, ``n_test`` and ``eval_samples``, the same in every row): the protocol and one table,
    one line per :func:`summary` row; ``command`` is quoted, the devices come from the rows, ``jobs`` is the
    number of runs that shared the machine.  :func:`merge` puts it into the record."""
    first = rows[0]
    name, split = _NAMES[first["dataset"]]
    seeds = sorted({r["seed"] for r in rows})
    devices = "; ".join(dict.fromkeys(r["device"] for r in rows))
    pixels, region = _inputs(first["image_shape"])
    warnings = sum(len(r["warnings"]) for r in rows)
    configs = list(dict.fromkeys(r["config"] for r in rows))
    alone = any(_NETWORKS[c]["method"] is None and c != "none" for c in configs)  # a method without other noise
    training = (
        "`bd.Classifier`, `bd.DropoutGuide` and `bd.fit` with its defaults (only the epochs and the seed set; Pyro's "
        f"validation off) for {first['epochs']} epochs, training seeds {', '.join(map(str, seeds))}; mean ± standard "
        "deviation over the seeds"
    )
    rules = 'deterministic: the test-time network (`rule="weight-scaling"`, each method\'s own rule)'
    if "maxpool-dropout" in configs:
        rules += (
            "; max-pooling dropout's two rules, probabilistic weighted pooling and the max scaled by 1 - p, evaluate "
            "the same trained networks (the pooling layers' `test_rule` switched between two predictions), so its "
            "two rows share the MC columns"
        )
    protocol = " ".join(
        [
            f"{name}, {split} ({first['n_train']} / {first['n_test']});",
            f"{_architecture(first['image_shape'], first['widths'])} (`bd.models.lenet5`). ",
            f"{training}. ",
            "; ".join(_describe(c, pixels, region, configs) for c in configs) + ". ",
            *(
                ["The pooling methods and `cutout` keep their defaults and are their networks' only noise. "]
                if alone
                else []
            ),
            f"MC: the mean of the class probabilities over {first['eval_samples']} draws (`bd.predict`); {rules}. ",
            "NLL in nats; ECE over 15 equal-width confidence bins; s / epoch: training time of an epoch. ",
            f"One test example is {100 / first['n_test']:.2f} points of error.",
        ]
    )
    lines = [
        f"## {first['dataset']}: LeNet-5 {first['widths']}, {first['epochs']} epochs",
        "",
        f"Command: `{command}`; {devices}; {jobs} run(s) at a time.",
        "",
        protocol,
        "",
        "| configuration | runs | MC test error % | MC NLL | MC ECE | deterministic test error % | deterministic NLL "
        "| s / epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, s in summary(rows).items():
        cells = [
            _cell(s["mc_error"], 2), _cell(s["mc_nll"], 4), _cell(s["mc_ece"], 4), _cell(s["det_error"], 2),
            _cell(s["det_nll"], 4), _cell(s["s_per_epoch"], 2),
        ]  # fmt: skip
        lines.append(f"| {label} | {s['runs']} | {' | '.join(cells)} |")
    if warnings:
        lines += ["", f"`bd.fit` issued {warnings} collapse warning(s) over these runs."]
    return "\n".join(lines)


def merge(record: str | None, section: str) -> str:
    """The record (:data:`TITLE`, then one section per data set, in the order of :data:`DATASETS`) with ``section``
    (from :func:`markdown`) in place of the section of its data set in ``record``, or added to it; the other
    sections are kept as they are.  ``record`` ``None``: the title and ``section``."""
    return merge_sections(record, section, title=TITLE, order=DATASETS)


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/cnn_dropout.md") -> int:
    """The command line of ``benchmarks/cnn_dropout.py``: run every configuration and seed on ``--dataset``, and
    write its section into the Markdown record (:func:`merge`: the sections of the other data sets stay).

    ``argv`` and ``default_out`` as :func:`~bayesdrop.experiments.report_io.script_parser` says.

    Returns
    -------
    int
        The exit status, 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = script_parser(__doc__)
    dataset_arguments(ap, DATASETS, "default: 100 for digits and MNIST-1D, 20 for MNIST")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs at a time (processes)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS), metavar="NAME",
                    help=f"configurations to run (default all: {', '.join(CONFIGS)})")  # fmt: skip
    ap.add_argument("--eval-samples", type=int, default=EVAL_SAMPLES, help="draws of the MC predictive")
    ap.add_argument("--channels", type=int, nargs=2, default=list(CHANNELS), metavar=("C1", "C2"))
    ap.add_argument("--hidden", type=int, default=HIDDEN)
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    epochs = chosen_epochs(ap, args, EPOCHS)
    for name in ("seeds", "jobs", "eval_samples", "hidden"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    if epochs < 1 or min(args.channels) < 1:
        ap.error("--epochs and --channels must be positive")
    rows = run(
        args.configs, args.seeds, epochs, dataset=args.dataset, mnist_dir=args.mnist_dir, jobs=args.jobs,
        channels=tuple(args.channels), hidden=args.hidden, eval_samples=args.eval_samples,
    )  # fmt: skip
    command = quoted_command("benchmarks/cnn_dropout.py", argv)
    section = markdown(rows, command, jobs=args.jobs)
    out = Path(args.out)
    write_results(merge(out.read_text() if out.is_file() else None, section), out)
    return 0
