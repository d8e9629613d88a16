"""Dropout in recurrent networks: an LSTM with no dropout, dropout of the non-recurrent connections, variational RNN
dropout, RNNDrop and recurrent dropout on two sequence classification tasks and two real forecasting tasks, and the
training time of ``bd.nn.LSTM`` against a hand-written loop and the fused ``torch.nn.LSTM``.

For users choosing a dropout for their recurrent network, and for maintainers checking the recurrent methods end to
end: ``benchmarks/rnn_dropout.py`` is the command line that writes ``benchmarks/results/rnn_dropout.md`` (one
section per task, each run replacing its own); ``tests/test_rnn_dropout_benchmark.py`` checks the networks, the
scores and the record.

Protocol: ``bd.models.rnn`` (one LSTM layer read at its last step, a dense head; :data:`HIDDEN` units) on ``--task``
(:data:`TASKS`): ``digits`` (8 rows of 8 pixels, 1437 / 360) and ``mnist1d`` (Greydanus 2020: 40 steps of one value,
4000 / 1000) with ``bd.Classifier``; ``co2`` (Mauna Loa, monthly, test from 1990) and ``sunspots`` (yearly, test from
1950) with ``bd.Regressor(horizon=12)``, forecasting the next 12 values from the 24 before them
(``bd.data.load``; every value relative to the window's last one).  Every configuration (:data:`CONFIGS`) trains with
``bd.DropoutGuide`` and ``bd.fit``'s defaults (only ``epochs`` and the seed are set; Pyro's validation off) for the
task's :data:`EPOCHS`, one run per training seed, ``--jobs`` runs at a time in processes of one thread each.

Configurations (:func:`network`): ``none`` (no noise); ``naive``: ``bernoulli`` (its defaults) on the LSTM's inputs,
a fresh mask per step, and on the head's input, the dropout of the non-recurrent connections of Zaremba et al.
(2014); ``variational-rnn`` (Gal & Ghahramani 2016), ``rnndrop`` (Moon et al. 2015) and ``recurrent-dropout``
(Semeniuta et al. 2016) with their defaults, the head without noise.

Reported, mean and standard deviation over the seeds.  Classification: test error (%) and NLL of the Monte Carlo
predictive (:data:`EVAL_SAMPLES` draws) and test error of the deterministic test-time network (``rule=
"weight-scaling"``: each paper's rule).  Forecasting, in the series' units: RMSE of the MC predictive mean and of the
deterministic network, NLL per forecast value of the MC predictive (the mixture of the draws, each with the learned
noise of its step), coverage of its central 90 % intervals, and its standard deviation at the first and the last
step.  Speed (``--task speed``, :func:`speed`): seconds per training epoch on digits of ``bd.nn.LSTM`` with
``variational-rnn`` under ``bd.fit``, of a hand-written PyTorch LSTM loop applying the same masks, and of the fused
``torch.nn.LSTM`` without dropout, interleaved in one process; the ratios per round, their median reported.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/rnn_dropout.py [--task {digits,mnist1d,co2,sunspots,speed}] [--seeds 3]
        [--epochs E] [--jobs 2] [--configs NAME ...] [--eval-samples 100] [--hidden H] [--out FILE]

Example
-------
>>> from bayesdrop.experiments import rnn_dropout
>>> rows = rnn_dropout.run(["none", "variational-rnn"], task="co2", seeds=1, epochs=2)  # doctest: +SKIP
>>> print(rnn_dropout.markdown(rows, "python benchmarks/rnn_dropout.py --task co2"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pyro
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule

import bayesdrop as bd

from .report_io import device_name, merge_sections, quoted_command, run_jobs, script_parser, write_results

__all__ = [
    "CONFIGS",
    "EPOCHS",
    "EVAL_SAMPLES",
    "HIDDEN",
    "TASKS",
    "TITLE",
    "forecast_scores",
    "persistence_rmse",
    "main",
    "markdown",
    "network",
    "one_run",
    "run",
    "speed",
    "speed_markdown",
]

TASKS = ("digits", "mnist1d", "co2", "sunspots")
FORECASTING = ("co2", "sunspots")
EPOCHS = {"digits": 100, "mnist1d": 30, "co2": 1000, "sunspots": 1000}
HIDDEN = {"digits": 64, "mnist1d": 64, "co2": 32, "sunspots": 32}
EVAL_SAMPLES = 100
LEVEL = 0.9  # the central interval whose coverage is reported
TITLE = "# Dropout in recurrent networks: LSTM classifiers and forecasters"
# configuration -> (method of the recurrent layer, or None)
_METHODS: dict[str, str | None] = {
    "none": None,
    "naive": "bernoulli",
    "variational-rnn": "variational-rnn",
    "rnndrop": "rnndrop",
    "recurrent-dropout": "recurrent-dropout",
}
CONFIGS = tuple(_METHODS)
_NAMES = {
    "digits": "Digits as 8 rows of 8 pixels, the default split",
    "mnist1d": "MNIST-1D (Greydanus 2020) as 40 steps of one value, the generator's split",
    "co2": "Mauna Loa CO2 (ppm), monthly means 1958-2001 from statsmodels, test targets from 1990",
    "sunspots": "Yearly sunspot numbers 1700-2008 from statsmodels, test targets from 1950",
}


def _check(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}, got {value!r}")


def network(config: str, features: int, out: int, hidden: int) -> PyroModule:
    """The LSTM of configuration ``config`` (one of :data:`CONFIGS`): ``features`` inputs per step, ``hidden`` units,
    ``out`` outputs (classes, or the values forecast)."""
    _check("config", config, CONFIGS)
    return bd.models.rnn(features, hidden, out, method=_METHODS[config])


def forecast_scores(out: torch.Tensor, noise: torch.Tensor, y: torch.Tensor, scale: float) -> dict[str, Any]:
    r"""Scores of a forecast's Monte Carlo predictive, the mixture of :math:`\mathcal N(\mu_{snh}, \sigma_h^2)` over
    the draws s, in the series' units (targets scaled by ``scale``).

    Parameters
    ----------
    out : torch.Tensor
        Network outputs :math:`\mu` ``(S, N, H)``.
    noise : torch.Tensor
        :math:`\sigma` ``(H,)`` (``bd.Regressor.noise_scale``).
    y : torch.Tensor
        Targets ``(N, H)``.
    scale : float
        The series' scale :math:`s` (``Series.scale``): values are :math:`s y`.

    Returns
    -------
    dict
        ``rmse`` of the mixture mean; ``nll``, :math:`-\frac{1}{NH}\sum_{n,h} \log \frac1S \sum_s
        \mathcal N(s y_{nh}; s\mu_{snh}, s^2\sigma_h^2)`; ``coverage`` (%), the fraction of values whose PIT
        :math:`\frac1S \sum_s \Phi((y_{nh} - \mu_{snh}) / \sigma_h)` lies in the central :data:`LEVEL` interval;
        ``std_first`` and ``std_last``, the mixture's standard deviation averaged over the examples at the first and
        the last step.
    """
    out, noise, y = out.double(), noise.double(), y.double()
    normal = torch.distributions.Normal(out, noise)
    lp = normal.log_prob(y).logsumexp(0) - math.log(out.shape[0]) - math.log(scale)
    u = normal.cdf(y).mean(0)
    std = (out.var(0, unbiased=False) + noise**2).sqrt().mean(0) * scale
    lo, hi = (1 - LEVEL) / 2, (1 + LEVEL) / 2
    return {
        "rmse": scale * (out.mean(0) - y).pow(2).mean().sqrt().item(),
        "nll": -lp.mean().item(),
        "coverage": 100 * ((u >= lo) & (u <= hi)).double().mean().item(),
        "std_first": std[0].item(),
        "std_last": std[-1].item(),
    }


def _class_scores(probs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    return {
        "error": 100 * (probs.argmax(-1) != y).double().mean().item(),
        "nll": -probs.gather(-1, y[:, None]).clamp_min(1e-12).log().mean().item(),
    }


def _subset(split: bd.data.Split, n: int | None) -> bd.data.Split:
    return split if n is None else bd.data.Split(split.x[:n], split.y[:n])


def one_run(
    config: str,
    seed: int,
    *,
    task: str,
    epochs: int,
    hidden: int | None = None,
    eval_samples: int = EVAL_SAMPLES,
    n_train: int | None = None,
    n_test: int | None = None,
) -> dict[str, Any]:
    """Train configuration ``config`` on ``task`` from training seed ``seed`` and score it on the test split.

    Parameters
    ----------
    config, task
        One of :data:`CONFIGS`, one of :data:`TASKS`.
    seed
        Seeds the initial weights, ``bd.fit`` and the predictive's draws.
    epochs
        Training epochs (``bd.fit``'s other arguments keep their defaults).
    hidden
        LSTM units (``None``: the task's :data:`HIDDEN`).
    eval_samples
        Draws of the Monte Carlo predictive.
    n_train, n_test
        Only the first ``n_train`` training and ``n_test`` test examples (``None``: all; tests use few).

    Returns
    -------
    dict
        ``config``, ``seed``, ``task``, ``epochs``, ``hidden``, ``steps`` and ``features`` (of one sequence),
        ``n_train``, ``n_test``, ``eval_samples``, ``mc`` (classification: ``error`` (%) and ``nll``; forecasting:
        :func:`forecast_scores`), ``det`` (the deterministic network's ``error`` or ``rmse``), ``s_per_epoch``,
        ``seconds``, ``device`` and ``warnings`` (``bd.fit``'s collapse warnings).
    """
    _check("config", config, CONFIGS)
    _check("task", task, TASKS)
    t0 = time.perf_counter()
    ds = bd.data.load(task)
    hidden = HIDDEN[task] if hidden is None else hidden
    train, test = _subset(ds.train, n_train), _subset(ds.test, n_test)
    x_train, x_test = ds.sequences(train), ds.sequences(test)
    forecast = ds.series is not None
    out_features = ds.series.horizon if ds.series is not None else cast(int, ds.num_classes)
    pyro.set_rng_seed(seed)
    net = network(config, x_train.shape[-1], out_features, hidden)
    model: bd.Likelihood = (
        bd.Regressor(net, num_data=len(train), horizon=out_features)
        if forecast
        else bd.Classifier(net, num_data=len(train))
    )
    guide = bd.DropoutGuide(model)
    with pyro.validation_enabled(False):
        result = bd.fit(model, guide, (x_train, train.y), epochs=epochs, seed=seed, progress=False)
    pyro.set_rng_seed(seed)
    prediction, out = bd.predict(model, guide, x_test, num_samples=eval_samples, return_samples=True)
    det_out = bd.predict(model, guide, x_test, rule="weight-scaling", return_samples=True)[1]
    if ds.series is not None:
        reg = cast(bd.Regressor, model)
        scale = ds.series.scale
        mc = forecast_scores(out, reg.noise_scale.detach(), test.y, scale)
        det = {"rmse": scale * (det_out[0] - test.y).pow(2).mean().sqrt().item()}
    else:
        mc = _class_scores(prediction, test.y)
        det = {"error": _class_scores(det_out[0].softmax(-1), test.y)["error"]}
    return {
        "config": config, "seed": seed, "task": task, "epochs": epochs, "hidden": hidden,
        "steps": x_train.shape[1], "features": x_train.shape[2], "n_train": len(train), "n_test": len(test),
        "eval_samples": eval_samples, "mc": mc, "det": det, "s_per_epoch": result.seconds_per_epoch,
        "seconds": time.perf_counter() - t0, "device": device_name(result.device), "warnings": list(result.warnings),
    }  # fmt: skip


def _progress(done: int, total: int, row: dict[str, Any]) -> None:
    score = ", ".join(f"{k} {v:.3g}" for k, v in row["mc"].items())
    print(
        f"[{done}/{total}] {row['task']} {row['config']} seed {row['seed']}: {score}; "
        f"{row['s_per_epoch']:.2f} s/epoch, {row['seconds']:.0f} s",
        flush=True,
    )


def run(
    configs: Sequence[str] = CONFIGS,
    seeds: int = 3,
    epochs: int | None = None,
    *,
    task: str = "digits",
    jobs: int = 1,
    hidden: int | None = None,
    eval_samples: int = EVAL_SAMPLES,
    n_train: int | None = None,
    n_test: int | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Every configuration of ``configs`` with every training seed ``0 .. seeds - 1`` on ``task`` (:func:`one_run`),
    ``jobs`` at a time in worker processes of one thread each; ``epochs`` ``None``: the task's :data:`EPOCHS`.

    Returns
    -------
    list of dict
        One row per run, in the order of ``configs``, then of the seeds.
    """
    if isinstance(configs, str) or not configs or any(c not in CONFIGS for c in configs):
        raise ValueError(f"`configs` must be a non-empty list of {list(CONFIGS)}, got {configs!r}")
    _check("task", task, TASKS)
    epochs = EPOCHS[task] if epochs is None else epochs
    for name, v in (("seeds", seeds), ("epochs", epochs), ("jobs", jobs), ("eval_samples", eval_samples)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}")
    kwargs: dict[str, Any] = {"task": task, "epochs": epochs, "hidden": hidden, "eval_samples": eval_samples,
                              "n_train": n_train, "n_test": n_test}  # fmt: skip
    jobs_args = [(c, s) for c in configs for s in range(seeds)]
    return run_jobs(one_run, jobs_args, kwargs, jobs=jobs, progress=_progress if progress else None)


def persistence_rmse(task: str) -> float:
    """The test RMSE, in the series' units, of the persistence forecast of a forecasting task (every future value
    the last one seen: the targets' zero), the reference a forecaster must beat."""
    ds = bd.data.load(task)
    if ds.series is None:
        raise ValueError(f"`task` {task!r} is not a forecasting task ({FORECASTING})")
    return ds.series.scale * ds.test.y.double().pow(2).mean().sqrt().item()


def _persistence_sentence(task: str) -> str:
    return (
        f"  The persistence forecast (every future value the last one seen) has test RMSE {persistence_rmse(task):.3f}."
    )


def _cell(values: list[float], digits: int) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def markdown(rows: Sequence[dict[str, Any]], command: str, *, jobs: int = 1) -> str:
    """The section of the record for the task of ``rows`` (the same task, epochs and widths in every row): the
    protocol and one table, a line per configuration; ``command`` is quoted, ``jobs`` runs shared the machine."""
    first = rows[0]
    task = first["task"]
    forecast = task in FORECASTING
    seeds = sorted({r["seed"] for r in rows})
    devices = "; ".join(dict.fromkeys(r["device"] for r in rows))
    units = {"co2": "ppm", "sunspots": "sunspot number"}.get(task, "")
    if forecast:
        header = (
            f"| configuration | runs | MC RMSE ({units}) | MC NLL per value | {100 * LEVEL:g} % interval coverage % "
            "| MC std, step 1 | MC std, step 12 | deterministic RMSE | s / epoch |"
        )
        keys = [("mc", "rmse", 3), ("mc", "nll", 3), ("mc", "coverage", 1), ("mc", "std_first", 3),
                ("mc", "std_last", 3), ("det", "rmse", 3)]  # fmt: skip
    else:
        header = "| configuration | runs | MC test error % | MC NLL | deterministic test error % | s / epoch |"
        keys = [("mc", "error", 2), ("mc", "nll", 4), ("det", "error", 2)]
    lines = [
        f"## {task}: LSTM {first['hidden']}, {first['epochs']} epochs",
        "",
        f"Command: `{command}`; {devices}; {jobs} run(s) at a time.",
        "",
        f"{_NAMES[task]} ({first['n_train']} / {first['n_test']} sequences of {first['steps']} steps of "
        f"{first['features']}); `bd.models.rnn` with `bd.{'Regressor(horizon=12)' if forecast else 'Classifier'}`, "
        f"`bd.DropoutGuide` and `bd.fit`'s defaults for {first['epochs']} epochs, training seeds "
        f"{', '.join(map(str, seeds))}; mean ± standard deviation over the seeds.  MC: {first['eval_samples']} "
        'draws of `bd.predict`; deterministic: the test-time network (`rule="weight-scaling"`).  Protocol and '
        "configurations in `bayesdrop/experiments/rnn_dropout.py`." + (_persistence_sentence(task) if forecast else ""),
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for config in dict.fromkeys(r["config"] for r in rows):
        rs = [r for r in rows if r["config"] == config]
        cells = [_cell([r[g][k] for r in rs], d) for g, k, d in keys] + [_cell([r["s_per_epoch"] for r in rs], 2)]
        lines.append(f"| {config} | {len(rs)} | {' | '.join(cells)} |")
    if warned := sum(len(r["warnings"]) for r in rows):
        lines += ["", f"`bd.fit` issued {warned} collapse warning(s) over these runs."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------- speed


def _hand_epoch(x: torch.Tensor, y: torch.Tensor, hidden: int, p: float, batch_size: int) -> Any:
    """A hand-written LSTM (the equations of ``bd.nn.LSTM``) with variational RNN dropout's masks, one epoch of
    Adam per call of the returned function."""
    features = x.shape[-1]
    w_ih = torch.nn.Parameter(torch.randn(4 * hidden, features) / math.sqrt(hidden))
    w_hh = torch.nn.Parameter(torch.randn(4 * hidden, hidden) / math.sqrt(hidden))
    b = torch.nn.Parameter(torch.zeros(4 * hidden))
    head = torch.nn.Linear(hidden, int(y.max()) + 1)
    opt = torch.optim.Adam([w_ih, w_hh, b, *head.parameters()], lr=1e-3)

    def epoch() -> None:
        for idx in torch.randperm(len(x)).split(batch_size):
            xb, n = x[idx], len(idx)
            mx = (torch.rand(n, 1, features) >= p).to(x.dtype)
            mh = (torch.rand(n, hidden) >= p).to(x.dtype)
            gx = (xb * mx) @ w_ih.T + b
            h = c = xb.new_zeros(n, hidden)
            for t in range(xb.shape[1]):
                i, f, g, o = (gx[:, t] + (h * mh) @ w_hh.T).chunk(4, -1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            loss = F.cross_entropy(head(h), y[idx]) + 0.5 * (w_ih.square().sum() + w_hh.square().sum()) / len(x)
            opt.zero_grad()
            loss.backward()
            opt.step()

    return epoch


def _fused_epoch(x: torch.Tensor, y: torch.Tensor, hidden: int, batch_size: int) -> Any:
    rnn = torch.nn.LSTM(x.shape[-1], hidden, batch_first=True)
    head = torch.nn.Linear(hidden, int(y.max()) + 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)

    def epoch() -> None:
        for idx in torch.randperm(len(x)).split(batch_size):
            loss = F.cross_entropy(head(rnn(x[idx])[0][:, -1]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    return epoch


def speed(*, rounds: int = 5, epochs: int = 3, hidden: int = 64) -> dict[str, Any]:
    """Seconds per training epoch on the digits' sequences (batch 128): ``bd`` (``bd.nn.LSTM`` with
    ``variational-rnn``, trained by ``bd.fit`` with validation off), ``hand`` (:func:`_hand_epoch`: the same
    network and masks written in PyTorch) and ``fused`` (``torch.nn.LSTM``, no dropout), interleaved over ``rounds``
    rounds of ``epochs`` epochs each after one warm-up epoch.

    Returns
    -------
    dict
        ``seconds`` (the median seconds per epoch of each contender), ``bd_vs_hand`` and ``bd_vs_fused`` (the
        median over the rounds of the per-round ratios), ``rounds``, ``epochs``, ``hidden``, ``device``.
    """
    ds = bd.data.load("digits")
    x, y = ds.sequences("train"), ds.train.y
    pyro.set_rng_seed(0)
    model = bd.Classifier(bd.models.rnn(x.shape[-1], hidden, 10), num_data=len(x))
    guide = bd.DropoutGuide(model)
    p = cast(Any, bd.methods.get("variational-rnn")).p

    def bd_epochs(n: int) -> None:
        with pyro.validation_enabled(False):
            bd.fit(model, guide, (x, y), epochs=n, progress=False)

    hand, fused = _hand_epoch(x, y, hidden, p, 128), _fused_epoch(x, y, hidden, 128)
    contenders: dict[str, Any] = {
        "bd": bd_epochs,
        "hand": lambda n: [hand() for _ in range(n)],
        "fused": lambda n: [fused() for _ in range(n)],
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for f in contenders.values():
        f(1)
    for _ in range(rounds):
        for k, f in contenders.items():
            t = time.perf_counter()
            f(epochs)
            times[k].append((time.perf_counter() - t) / epochs)
    return {
        "seconds": {k: statistics.median(v) for k, v in times.items()},
        "bd_vs_hand": statistics.median(b / h for b, h in zip(times["bd"], times["hand"], strict=True)),
        "bd_vs_fused": statistics.median(b / f for b, f in zip(times["bd"], times["fused"], strict=True)),
        "rounds": rounds,
        "epochs": epochs,
        "hidden": hidden,
        "device": device_name(torch.device("cpu")),
    }


TARGET = 1.5  # bd.nn.LSTM's training time at most this factor of the hand-written loop's


def speed_markdown(result: dict[str, Any], command: str) -> str:
    """The ``speed`` section of the record from :func:`speed`'s ``result``."""
    s = result["seconds"]
    verdict = "met" if result["bd_vs_hand"] <= TARGET else "NOT met"
    return "\n".join(
        [
            f"## speed: LSTM {result['hidden']}, digits, batch 128",
            "",
            f"Command: `{command}`; {result['device']}.",
            "",
            f"Seconds per training epoch, medians over {result['rounds']} interleaved rounds of {result['epochs']} "
            "epochs (`speed` in `bayesdrop/experiments/rnn_dropout.py`); ratios are per round, then the median.",
            "",
            "| contender | s / epoch | ratio |",
            "|---|---|---|",
            f"| `bd.nn.LSTM` + `variational-rnn`, `bd.fit` | {s['bd']:.3f} | 1 |",
            f"| hand-written LSTM loop, the same masks | {s['hand']:.3f} | bd / hand = {result['bd_vs_hand']:.2f} |",
            f"| `torch.nn.LSTM` (fused), no dropout | {s['fused']:.3f} | bd / fused = {result['bd_vs_fused']:.2f} |",
            "",
            f"Target: bd at most {TARGET:g}x the hand-written loop: {verdict}.  The fused LSTM is the floor no "
            "per-step masking can reach (one kernel over the sequence); it is reported, not a target.",
        ]
    )


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/rnn_dropout.md") -> int:
    """The command line of ``benchmarks/rnn_dropout.py``: run ``--task`` and write its section into the record
    (the other tasks' sections stay).  Returns the exit status, 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = script_parser(__doc__)
    ap.add_argument("--task", default="digits", choices=[*TASKS, "speed"])
    ap.add_argument("--epochs", type=int, default=None, help=f"default per task: {EPOCHS}")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs at a time (processes)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS), metavar="NAME")
    ap.add_argument("--eval-samples", type=int, default=EVAL_SAMPLES)
    ap.add_argument("--hidden", type=int, default=None, help=f"LSTM units (default per task: {HIDDEN})")
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    for name in ("epochs", "seeds", "jobs", "eval_samples", "hidden"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be positive")
    command = quoted_command("benchmarks/rnn_dropout.py", argv)
    if args.task == "speed":
        section = speed_markdown(speed(hidden=args.hidden or HIDDEN["digits"]), command)
    else:
        rows = run(
            args.configs, args.seeds, args.epochs, task=args.task, jobs=args.jobs, hidden=args.hidden,
            eval_samples=args.eval_samples,
        )  # fmt: skip
        section = markdown(rows, command, jobs=args.jobs)
    out = Path(args.out)
    write_results(merge_sections(out.read_text() if out.is_file() else None, section, title=TITLE,
                                 order=[*TASKS, "speed"]), out)  # fmt: skip
    return 0
