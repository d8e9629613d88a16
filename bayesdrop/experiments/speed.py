"""Per-epoch training time of ``bd.fit`` against plain PyTorch, in one process.

For maintainers checking the library's speed targets: ``benchmarks/speed.py`` is the command line that writes
``benchmarks/results/speed.md``, ``tests/test_speed_benchmark.py`` checks the baselines and the statistic.

Baseline: a hand-written PyTorch loop of the same network (``nn.Dropout`` before
each ``nn.Linear``, as ``bd.models.mlp`` drops each layer's inputs), the same
data, batch size, Adam and learning rate.

Protocol: ``--repeats`` times, a baseline network and a bayesdrop model are
built from the same seed and trained side by side for ``--epochs`` epochs,
each with one optimiser throughout, as in real training: ``bd.fit`` runs its
epochs, and its ``callback`` runs one baseline epoch after each of them, so
every bayesdrop epoch has a baseline epoch next to it in time.  The ratio of
such a pair is bayesdrop's epoch time (``fit``'s own timer) over the
baseline's.  Reported: the median and quartiles of the pairs' ratios from the
second epoch on (the first warms up), over all repeats, and the median epoch
times.  Training both from scratch side by side matters on a CPU: the cost of an
epoch drifts as a network trains (elementwise kernels ran 2-3x slower in early
epochs than later on the development machine), and the machine's speed drifts
from second to second.

Usage::

    python benchmarks/speed.py [--device auto] [--repeats 5] [--epochs 4]
        [--parts configs sweep validation compile ops]
        [--widths 100 300 1000 3000] [--batches 32 128 512 2048] [--out benchmarks/results/speed.md]

``--parts validation`` measures what Pyro's validation costs ``bd.fit`` on the digits MLP: its default (Pyro's
setting in the first epoch, off after it) and ``validate=True`` (every step) against ``validate=False``
(:func:`measure_validation`).

``--parts compile`` measures ``torch.compile`` of ``bd.fit``'s loss against the eager loss, with Dynamo's graph
breaks (:func:`measure_compile`).

``--parts ops`` counts the tensor operators of a training step, ``bd.fit``'s against its floor's, on the digits
MLP (:func:`measure_ops`): a figure that does not depend on the machine's load, and the part of a step's fixed
cost that a GPU pays per kernel launch.

``--parts sweep`` adds the width x batch grid (784-w-w-10 on :func:`synthetic` data, 20 steps per epoch) with the
overhead per step in microseconds; its targets are ``bernoulli`` at most 1.15x and ``sparse-vd`` / ``vbd`` at most
1.10x at every point.

Targets, on the network of real width (40-1024-1024-10): ``bernoulli`` at most 1.3x the plain loop;
``sparse-vd`` (Molchanov et al. 2017) and ``vbd`` (Liu et al. 2019) at most 1.15x a hand-written loop of the same
local reparameterisation estimator (Kingma et al. 2015) and closed-form KL.  ``bd.fit`` runs with Pyro's validation
off (``validate=False``), the setting for speed; with it on, Pyro checks every step.

Example
-------
>>> import torch
>>> from bayesdrop.experiments import speed
>>> row = speed.measure("vbd", "digits", [300, 100], 128, torch.device("cpu"), repeats=1, epochs=2)  # doctest: +SKIP
>>> row["ratio"]  # median of bd.fit's epoch time over the hand-written loop's  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyro
import torch

import bayesdrop as bd

from .report_io import device_name, quoted_command, script_parser, write_results

__all__ = [
    "CONFIGS",
    "GAUSSIAN_METHODS",
    "PlainLRTNet",
    "bd_fit_epochs",
    "compare_runs",
    "gaussian_section",
    "main",
    "measure",
    "plain_dropout_net",
    "plain_epoch",
    "plain_lrt_epoch",
    "SWEEP_BATCHES",
    "SWEEP_METHODS",
    "SWEEP_STEPS",
    "SWEEP_TARGETS",
    "SWEEP_WIDTHS",
    "measure_on",
    "plain_runner",
    "sweep",
    "sweep_section",
    "synthetic",
    "timed",
    "VALIDATION_SETTINGS",
    "bd_model",
    "measure_validation",
    "validation_section",
    "measure_compile",
    "compile_section",
    "NO_DATA_OPS",
    "OPS_EPOCHS",
    "count_ops",
    "measure_ops",
    "ops_section",
]

# (dataset, hidden widths, batch size, epochs as a multiple of --epochs): a small and a large configuration.  A
# digits epoch is ~20x shorter than a mnist1d one, so its runs are 4x longer, for a comparable number of steps.
CONFIGS = [("digits", [300, 100], 128, 4), ("mnist1d", [1024, 1024], 128, 1), ("mnist1d", [1024, 1024], 512, 1)]

EpochCallback = Callable[[int, dict[str, list[float]]], None]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_dropout_net(in_features: int, hidden: list[int], out_features: int, p: float) -> torch.nn.Sequential:
    """The Bernoulli baseline: ``nn.Dropout(p)`` before each ``nn.Linear``, ReLU between the layers.

    Parameters
    ----------
    in_features, hidden, out_features
        The widths, as those of ``bd.models.mlp``.
    p
        The drop probability of every layer's inputs.

    Returns
    -------
    torch.nn.Sequential
    """
    widths = [in_features, *hidden, out_features]
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [torch.nn.Dropout(p), torch.nn.Linear(a, b)]
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def plain_epoch(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    weight_decay_scale: float,
) -> None:
    """One epoch of the baseline: cross-entropy * N plus the same Gaussian-prior penalty.

    Parameters
    ----------
    net, opt
        The baseline network and its optimiser.
    x, y
        The training set, on the device of ``net``.
    batch_size
        Examples per step, in a fresh random order each epoch.
    weight_decay_scale
        Factor of the sum of squared weights (0.5 for the N(0, 1) prior).
    """
    n = len(x)
    for idx in torch.randperm(n, device=x.device).split(batch_size):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx], reduction="sum") * (n / len(idx))
        loss = loss + weight_decay_scale * sum(
            (p * p).sum() for name, p in net.named_parameters() if name.endswith("weight")
        )
        loss.backward()
        opt.step()


def timed(run_epoch: Callable[[], None], device: torch.device) -> float:
    """Seconds of one call of ``run_epoch`` (a baseline epoch), the device synchronised on both sides."""
    _sync(device)
    t0 = time.perf_counter()
    run_epoch()
    _sync(device)
    return time.perf_counter() - t0


def bd_fit_epochs(
    model: bd.Classifier,
    guide: bd.DropoutGuide,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    epochs: int,
    seed: int,
    device: torch.device,
    callback: EpochCallback | None = None,
    validate: bool | None = False,
    *,
    jit: bool | None = None,
) -> list[float]:
    """Seconds of each epoch of one ``bd.fit`` run with Adam at lr 1e-3, as the plain loops (``fit``'s timer).

    ``callback`` is ``fit``'s: it runs after each epoch, outside the epoch's timer.  ``validate`` is ``fit``'s
    (``False``, Pyro's checks off, everywhere but in :func:`measure_validation`).  Collapse warnings are silenced:
    with the full KL from the first step a wide Gaussian-weight network collapses, as its floor does, and the run
    times steps only.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bd.CollapseWarning)
        res = bd.fit(
            model, guide, (x, y), epochs=epochs, batch_size=batch_size, lr=1e-3, device=device, seed=seed,
            kl_warmup=0, lr_decay=None, progress=False, callback=callback, validate=validate, jit=jit,
        )  # fmt: skip
    return res.history["seconds"]


def compare_runs(
    make_plain: Callable[[int], Callable[[], None]],
    bd_run: Callable[[int, int, EpochCallback], list[float]],
    repeats: int,
    epochs: int,
    device: torch.device,
) -> dict[str, float]:
    """Median and quartiles of the per-epoch ratios ``bd / plain`` (epochs 2.., all repeats).

    Parameters
    ----------
    make_plain
        ``make_plain(seed)`` builds a baseline network and optimiser and returns a function running one epoch.
    bd_run
        ``bd_run(seed, epochs, callback)`` builds a bayesdrop model from ``seed``, trains it with ``bd.fit(...,
        callback=callback)`` and returns the seconds of each epoch.  The callback runs one baseline epoch.
    repeats, epochs
        Pairs of runs, and epochs of each (at least 2: the first is a warm-up).
    device
        Synchronised around each baseline epoch.

    Returns
    -------
    dict
        ``plain`` and ``bayesdrop``: median seconds per epoch; ``ratio``, ``q1``, ``q3``: median and quartiles of
        the ratios.
    """
    if epochs < 2:
        raise ValueError(f"`epochs` must be at least 2 (the first is a warm-up), got {epochs!r}")
    plain: list[float] = []
    ours: list[float] = []
    for r in range(repeats):
        run_plain = make_plain(r)
        times: list[float] = []

        def after_epoch(epoch: int, history: dict, run_plain=run_plain, times=times) -> None:
            times.append(timed(run_plain, device))

        seconds = bd_run(r, epochs, after_epoch)
        plain += times[1:]
        ours += seconds[1:]
    ratios = [b / p for p, b in zip(plain, ours)]
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return {
        "plain": statistics.median(plain),
        "bayesdrop": statistics.median(ours),
        "ratio": statistics.median(ratios),
        "q1": q1,
        "q3": q3,
    }


def measure(
    method: str,
    dataset: str,
    hidden: list[int],
    batch_size: int,
    device: torch.device,
    repeats: int,
    epochs: int,
    *,
    jit: bool | None = None,
) -> dict[str, Any]:
    """One row: ``method`` (``"bernoulli"`` with p = 0.5, or one of :data:`GAUSSIAN_METHODS`) against its baseline,
    ``nn.Dropout`` with the N(0, 1) weight penalty or the hand-written LRT loop, on a registered data set;
    ``jit`` is ``bd.fit``'s (``None``: its default, the compiled loss).

    Returns
    -------
    dict
        ``method``, ``dataset``, ``arch``, ``batch`` and the statistics of :func:`compare_runs`.
    """
    ds = bd.data.load(dataset)
    assert ds.num_classes is not None, "a classification data set"
    row = {"method": method, "dataset": dataset, "arch": _arch(ds.in_features, hidden, ds.num_classes)}
    x, y = ds.train.x.to(device), ds.train.y.to(device)
    return row | measure_on(method, x, y, ds.num_classes, hidden, batch_size, device, repeats, epochs, jit=jit)


def measure_on(
    method: str,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    hidden: list[int],
    batch_size: int,
    device: torch.device,
    repeats: int,
    epochs: int,
    *,
    jit: bool | None = None,
) -> dict[str, Any]:
    """:func:`measure` on given training tensors ``x`` (N, D) and ``y`` (N,), already on ``device``.

    Returns
    -------
    dict
        ``batch``, ``steps`` (optimisation steps per epoch) and the statistics of :func:`compare_runs`.
    """
    in_features = x.shape[-1]

    def make_plain(seed: int) -> Callable[[], None]:
        torch.manual_seed(seed)
        return plain_runner(method, x, y, num_classes, hidden, batch_size, device)

    def bd_run(seed: int, epochs: int, callback: EpochCallback) -> list[float]:
        torch.manual_seed(seed)
        model = bd_model(method, in_features, hidden, num_classes, len(x))
        return bd_fit_epochs(model, bd.DropoutGuide(model), x, y, batch_size, epochs, seed, device, callback, jit=jit)

    steps = -(-len(x) // batch_size)
    return {"batch": batch_size, "steps": steps} | compare_runs(make_plain, bd_run, repeats, epochs, device)


def plain_runner(
    method: str,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    hidden: Sequence[int],
    batch_size: int,
    device: torch.device,
) -> Callable[[], None]:
    """One epoch of ``method``'s floor per call, on a network built now from torch's global seed: the
    ``nn.Dropout`` loop with the N(0, 1) prior's penalty 0.5 w^2 (``"bernoulli"``), else the hand-written LRT
    loop (:data:`GAUSSIAN_METHODS`); Adam at lr 1e-3, as :func:`bd_fit_epochs`."""
    if method == "bernoulli":
        net = plain_dropout_net(x.shape[-1], list(hidden), num_classes, 0.5).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        return lambda: plain_epoch(net, opt, x, y, batch_size, 0.5)
    lrt = PlainLRTNet([x.shape[-1], *hidden, num_classes]).to(device)
    lrt_opt = torch.optim.Adam(lrt.parameters(), lr=1e-3)
    return lambda: plain_lrt_epoch(lrt, lrt_opt, x, y, batch_size, method)


def bd_model(method: str, in_features: int, hidden: list[int], num_classes: int, num_data: int) -> bd.Classifier:
    """bayesdrop's network of a row: ``bd.models.mlp`` with ``method``; for ``bernoulli``, p = 0.5 on every layer's
    inputs, as the baseline's ``nn.Dropout`` before each ``nn.Linear``."""
    hyper: dict[str, Any] = (
        {"p": 0.5, "input_method": bd.methods.get("bernoulli", p=0.5)} if method == "bernoulli" else {}
    )
    return bd.Classifier(bd.models.mlp(in_features, hidden, num_classes, method, **hyper), num_data)


def _arch(in_features: int, hidden: Sequence[int], num_classes: int) -> str:
    return "-".join(map(str, [in_features, *hidden, num_classes]))


# -- Pyro's validation: bd.fit's default against validation on and off --------------------------------------------

VALIDATION_SETTINGS = (None, True, False)  #: ``bd.fit(validate=...)``: the default, every step, none


def measure_validation(
    method: str,
    device: torch.device,
    *,
    repeats: int,
    epochs: int,
    data: Any = None,
    hidden: Sequence[int] = (300, 100),
) -> dict[str, Any]:
    """What Pyro's validation costs ``bd.fit``: ``repeats`` rounds of three runs of ``epochs`` epochs from the same
    seed, ``validate=None`` (the default: Pyro's setting in the first epoch, off after it), ``True`` (every step)
    and ``False``, under ``pyro.enable_validation(True)`` (Pyro's default), one after the other in each round, on
    ``data`` (``(x, y, num_classes)``; the digits' training split by default) with an MLP of ``hidden`` widths and
    batches of 128.

    Returns
    -------
    dict
        ``method``, ``batch``; ``seconds``, the median epoch time of each setting from the second epoch on (the
        first is the one the default validates); ``default`` and ``on``, the medians of the per-epoch ratios of the
        default and of ``True`` over ``False`` (epoch ``i`` of one round against epoch ``i`` of the same round).
    """
    if epochs < 2:
        raise ValueError(f"`epochs` must be at least 2 (the first is the one the default validates), got {epochs!r}")
    if data is None:
        ds = bd.data.load("digits")
        data = (ds.train.x, ds.train.y, ds.num_classes)
    x, y, num_classes = data[0].to(device), data[1].to(device), data[2]
    seconds: dict[bool | None, list[float]] = {v: [] for v in VALIDATION_SETTINGS}
    with pyro.validation_enabled(True):
        for r in range(repeats):
            for validate in VALIDATION_SETTINGS:
                torch.manual_seed(r)
                model = bd_model(method, x.shape[-1], list(hidden), num_classes, len(x))
                run = bd_fit_epochs(model, bd.DropoutGuide(model), x, y, 128, epochs, r, device, None, validate)
                seconds[validate] += run[1:]
    off = seconds[False]
    return {
        "method": method,
        "batch": 128,
        "seconds": {v: statistics.median(t) for v, t in seconds.items()},
        "default": statistics.median(a / b for a, b in zip(seconds[None], off)),
        "on": statistics.median(a / b for a, b in zip(seconds[True], off)),
    }


def validation_section(device: torch.device, repeats: int, epochs: int) -> list[str]:
    """The Markdown section of :func:`measure_validation` for ``bernoulli``, ``sparse-vd`` and ``vbd`` on the
    digits MLP (64-300-100-10, batch 128)."""
    lines = [
        "",
        "## Pyro's validation: `bd.fit`'s default against `validate=True` and `validate=False`",
        "",
        f"Digits MLP 64-300-100-10, batch 128; {repeats} rounds of three `bd.fit` runs of {epochs} epochs from the "
        "same seed (the default, `validate=True`, `validate=False`) under `pyro.enable_validation(True)`, Pyro's "
        "default.  Epoch times: medians from the second epoch on (the default validates the first); ratios: "
        "medians of each epoch over the same epoch of the run without validation.",
        "",
        "| method | default s/epoch | `validate=True` s/epoch | `validate=False` s/epoch | default / off | on / off |",
        "|---|---|---|---|---|---|",
    ]
    for method in ("bernoulli", *GAUSSIAN_METHODS):
        r = measure_validation(method, device, repeats=repeats, epochs=epochs)
        t = r["seconds"]
        lines.append(
            f"| {method} | {t[None]:.4f} | {t[True]:.4f} | {t[False]:.4f} | {r['default']:.2f}x | {r['on']:.2f}x |"
        )
    return lines


# -- torch.compile: the loss of bd.fit compiled, against the eager loss -----------------------------------------


def measure_compile(device: torch.device, *, rounds: int = 10, steps: int = 30) -> dict[str, Any]:
    """What ``torch.compile`` does to ``bd.fit``'s step on the digits ``bernoulli`` MLP (64-300-100-10, p = 0.5 on
    every layer's inputs, batch 128): the loss ``bd.fit`` evaluates (:class:`~bayesdrop.infer.MeanFieldELBO` of the
    model and of the guide under :class:`~bayesdrop.nn.LocalReparameterization`, Pyro's validation off as after
    ``fit``'s first epoch) run eagerly and through ``torch.compile``, each step ``zero_grad``, loss, ``backward``
    and an Adam step.

    ``torch._dynamo.explain`` counts the graphs and graph breaks of one evaluation (Dynamo's documented
    troubleshooting entry point); the first compiled step, which compiles, is timed alone; then ``rounds`` rounds
    of ``steps`` eager and ``steps`` compiled steps, alternating.  A compiler that fails (no C++ toolchain, an
    unsupported construct) is reported, not raised.

    Returns
    -------
    dict
        ``graphs``, ``breaks`` and ``reasons`` (each break reason's count, most frequent first) from
        ``explain``; ``compile_s`` (the first compiled step), ``eager_ms`` and ``compiled_ms`` (median
        milliseconds per step of the rounds) and ``ratio`` (compiled / eager, medians of the per-round ratios);
        or ``error`` (the compiler's exception as text) with the eager figures alone.
    """
    ds = bd.data.load("digits")
    assert ds.num_classes is not None
    x, y = ds.train.x[:128].to(device), ds.train.y[:128].to(device)
    torch.manual_seed(0)
    model = bd_model("bernoulli", ds.in_features, [300, 100], ds.num_classes, len(ds.train)).to(device)
    guide = bd.DropoutGuide(model).to(device)
    guide(x, y)
    elbo = bd.infer.MeanFieldELBO(max_plate_nesting=1)
    fit_guide = bd.nn.LocalReparameterization(draw_weights=False)(guide)

    def loss(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return elbo.differentiable_loss(model, fit_guide, xb, yb)

    opt = torch.optim.Adam([*model.parameters(), *guide.parameters()], lr=1e-3)

    def round_ms(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            fn(x, y).backward()
            opt.step()
        _sync(device)
        return 1e3 * (time.perf_counter() - t0) / steps

    out: dict[str, Any] = {}
    compiled: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    with pyro.validation_enabled(False):
        round_ms(loss)  # warm-up
        try:
            import torch._dynamo as dynamo  # Dynamo's own troubleshooting entry point

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Dynamo warns at each break it explains
                explained = dynamo.explain(loss)(x, y)
            out |= {
                "graphs": explained.graph_count,
                "breaks": explained.graph_break_count,
                "reasons": dict(Counter(map(_break_reason, explained.break_reasons)).most_common()),
            }
            compiled = torch.compile(loss)
            _sync(device)
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            compiled(x, y).backward()
            _sync(device)
            out["compile_s"] = time.perf_counter() - t0
        except Exception as err:  # a benchmark reports what the compiler refused
            out["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            compiled = None
        eager, comp = [], []
        for _ in range(rounds):
            eager.append(round_ms(loss))
            if compiled is not None:
                comp.append(round_ms(compiled))
    out["eager_ms"] = statistics.median(eager)
    if comp:
        out |= {"compiled_ms": statistics.median(comp), "ratio": statistics.median(c / e for c, e in zip(comp, eager))}
    return out


def _break_reason(b: Any) -> str:
    """A graph break of ``torch._dynamo.explain``: Dynamo's explanation and the place (a package's file and line)."""
    text = str(b.reason).splitlines()
    why = next((t.strip().removeprefix("Explanation: ") for t in text if "Explanation:" in t), text[0] if text else "")
    if not b.user_stack:
        return why[:120]
    frame, root = b.user_stack[-1], Path(bd.__file__).resolve().parent.parent
    path = Path(frame.filename)
    if "site-packages/" in frame.filename:
        short = frame.filename.split("site-packages/")[-1]
    else:
        short = str(path.relative_to(root)) if path.is_relative_to(root) else frame.filename
    return f"{why[:120]} at `{short}:{frame.lineno}`"


def compile_section(r: dict[str, Any], rounds: int, steps: int) -> list[str]:
    """The Markdown section of :func:`measure_compile`'s result ``r``."""
    lines = [
        "",
        "## `torch.compile` of the loss",
        "",
        "Digits `bernoulli` MLP 64-300-100-10, batch 128: the loss `bd.fit` evaluates, eager and through "
        f"`torch.compile`; graphs and breaks from `torch._dynamo.explain`; {rounds} alternating rounds of {steps} "
        "steps (zero_grad, loss, backward, Adam), medians.",
        "",
    ]
    if "error" in r:
        return lines + [f"The compiler failed: `{r['error']}`; eager step {r['eager_ms']:.2f} ms."]
    lines += [
        "| graphs | graph breaks | first compiled step s | eager step ms | compiled step ms | compiled / eager |",
        "|---|---|---|---|---|---|",
        f"| {r['graphs']} | {r['breaks']} | {r['compile_s']:.1f} | {r['eager_ms']:.2f} | {r['compiled_ms']:.2f} | "
        f"{r['ratio']:.2f}x |",
        "",
        "The breaks `explain` lists, by reason and place (count):",
        "",
    ]
    return lines + [f"- {n} x {reason}" for reason, n in r["reasons"].items()]


# -- Operators per step: the device-independent part of a step's fixed cost ---------------------------------------

#: Operators that compute nothing on a tensor's data: views, shape queries, allocations, detaching, and the
#: conversions that in a training step are of Python numbers; :func:`count_ops` leaves them out.
NO_DATA_OPS = frozenset(
    "aten::" + name
    for name in (
        "view _unsafe_view _reshape_alias reshape t transpose permute expand expand_as as_strided unsqueeze squeeze "
        "select slice narrow split unbind chunk flatten unflatten view_as alias detach detach_ lift_fresh numpy_T "
        "size stride dim result_type broadcast_tensors empty empty_like empty_strided new_empty new_empty_strided "
        "resize_ set_ to _to_copy contiguous item _local_scalar_dense is_nonzero Int ScalarImplicit resolve_conj "
        "resolve_neg"
    ).split()
)


#: Reductions, whose CPU kernels fill their output before summing into it (a GPU's kernels write it once).
_REDUCTIONS = frozenset(f"aten::{n}" for n in "sum dot mean all any max min prod mv".split())


def _computes(e: Any) -> bool:
    """Whether profiler event ``e`` is an operator that computes on data (not a view, an allocation, a conversion,
    or the fill a CPU reduction does)."""
    if not e.name.startswith("aten::") or e.name in NO_DATA_OPS:
        return False
    return not (
        e.name in ("aten::fill_", "aten::zero_") and e.cpu_parent is not None and e.cpu_parent.name in _REDUCTIONS
    )


def _operators(prof: Any) -> Counter[str]:
    """What :func:`count_ops` counts, from a finished ``torch.profiler.profile``."""
    counts: Counter[str] = Counter()
    for e in prof.events():
        if not _computes(e) or any(_computes(c) for c in e.cpu_children):  # innermost: its parts are not counted
            continue
        parent = e.cpu_parent
        while parent is not None and parent.name not in NO_DATA_OPS and not parent.name.startswith("Optimizer.step"):
            parent = parent.cpu_parent
        if parent is None:
            counts[e.name] += 1
    return counts


def count_ops(run: Callable[[], Any]) -> Counter[str]:
    """The tensor operators that ``run()`` computes with, by name: roughly the kernels it launches on a GPU.

    Counted: every innermost ``aten`` operator that ``torch.profiler`` sees, forward and backward; not
    :data:`NO_DATA_OPS` (views, allocations, conversions of Python numbers) nor what they call, not the fill that
    a CPU reduction does before it sums, and not the optimiser's step (``Optimizer.step``).  Each has a fixed cost
    of dispatch, and a GPU launches a kernel for each, so that where a step is short (a small network on a GPU)
    the count bounds its time from below whatever the widths.
    """
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run()
    return _operators(prof)


OPS_EPOCHS = 3  #: ``bd.fit``'s epochs in :func:`measure_ops`: the first validates, the second records the graph


def measure_ops(
    method: str, device: torch.device, *, hidden: Sequence[int] = (300, 100), batch_size: int = 128
) -> dict[str, Any]:
    """Operators per training step (:func:`count_ops`) of ``bd.fit`` and of its floor (the baselines of
    :func:`measure_on`) on the digits MLP: ``fit``'s last of :data:`OPS_EPOCHS` epochs, with what ``fit`` does once
    per epoch, against the floor's second epoch.

    Returns
    -------
    dict
        ``method``, ``steps`` (per epoch), ``plain`` and ``bayesdrop`` (operators per step) and ``extra`` (name to
        bd's operators per step beyond the floor's, for the names where bd calls more, most first).
    """
    ds = bd.data.load("digits")
    assert ds.num_classes is not None
    x, y = ds.train.x.to(device), ds.train.y.to(device)
    steps = -(-len(x) // batch_size)
    torch.manual_seed(0)
    floor_epoch = plain_runner(method, x, y, ds.num_classes, hidden, batch_size, device)

    def plain_run() -> None:
        floor_epoch()
        _sync(device)

    plain_run()
    plain = count_ops(plain_run)
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])

    def last_epoch(epoch: int, history: dict[str, list[float]]) -> None:
        _sync(device)
        if epoch == OPS_EPOCHS - 2:
            prof.start()
        elif epoch == OPS_EPOCHS - 1:
            prof.stop()

    model = bd_model(method, x.shape[1], list(hidden), ds.num_classes, len(x))
    bd_fit_epochs(model, bd.DropoutGuide(model), x, y, batch_size, OPS_EPOCHS, 0, device, last_epoch)
    ours = _operators(prof)
    extra = {k: (ours[k] - plain[k]) / steps for k in ours if ours[k] > plain[k]}
    return {
        "method": method,
        "steps": steps,
        "plain": sum(plain.values()) / steps,
        "bayesdrop": sum(ours.values()) / steps,
        "extra": dict(sorted(extra.items(), key=lambda kv: -kv[1])),
    }


def ops_section(rows: list[dict[str, Any]]) -> list[str]:
    """The Markdown section of :func:`measure_ops`' rows."""
    lines = [
        "",
        "## Operators per training step",
        "",
        f"Digits MLP 64-300-100-10, batch 128 ({rows[0]['steps']} steps per epoch): the innermost tensor operators "
        "of a step, "
        "forward and backward (`bd.experiments.speed.count_ops`: views, allocations, conversions of Python numbers "
        "and the optimiser's step aside), `bd.fit`'s third epoch with what it does once per epoch, against the "
        "floor's second.  The count does not depend on the machine's load; on a GPU each operator is a kernel "
        "launch, which bounds the time of a short step from below.",
        "",
        "| method | floor | plain ops/step | bd.fit ops/step | ratio | bd's extra operators per step (most first) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        floor = "`nn.Dropout` loop" if r["method"] == "bernoulli" else "hand-written LRT loop"
        extra = ", ".join(f"{k.removeprefix('aten::')} +{v:.1f}" for k, v in list(r["extra"].items())[:6])
        lines.append(
            f"| {r['method']} | {floor} | {r['plain']:.1f} | {r['bayesdrop']:.1f} | "
            f"{r['bayesdrop'] / r['plain']:.2f}x | {extra or 'none'} |"
        )
    return lines


# -- Gaussian family: sparse-vd and vbd against a hand-written LRT loop ------------------------------------------
#
# Baseline: the same network as ``bd.models.mlp`` with every layer's weights Gaussian (theta, log sigma^2 per
# weight, additive parameterisation), trained with the same local reparameterisation estimator
# (b = x theta^T + sqrt((x * x) exp(log sigma^2)^T) eps + bias) and the same KL in closed form: Molchanov et
# al. (2017)'s approximation with log alpha clipped to [-10, 10] (sparse-vd), sum 0.5 log(1 + 1/alpha) (vbd, Liu et
# al. 2019, eq. 18).
# Same data, batch size, Adam and learning rate; the protocol of the module docstring.

GAUSSIAN_METHODS = ["sparse-vd", "vbd"]


class PlainLRTNet(torch.nn.Module):
    """MLP with Gaussian weights N(theta, sigma^2) trained by the local reparameterisation trick.

    Parameters
    ----------
    widths
        Input, hidden and output widths.
    log_sigma2_init
        Initial log sigma^2 of every weight.
    """

    def __init__(self, widths: list[int], log_sigma2_init: float = -10.0):
        super().__init__()
        self.theta = torch.nn.ParameterList()
        self.log_sigma2 = torch.nn.ParameterList()
        self.bias = torch.nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:]):
            ref = torch.nn.Linear(a, b)
            self.theta.append(torch.nn.Parameter(ref.weight.detach().clone()))
            self.log_sigma2.append(torch.nn.Parameter(torch.full_like(ref.weight, log_sigma2_init)))
            self.bias.append(torch.nn.Parameter(ref.bias.detach().clone()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x``, with one draw of the pre-activations of each layer."""
        n = len(self.theta)
        for i, (th, ls2, b) in enumerate(zip(self.theta, self.log_sigma2, self.bias)):
            mean = x @ th.T
            var = (x * x) @ ls2.exp().T
            x = mean + var.clamp_min(1e-16).sqrt() * torch.randn_like(mean) + b
            if i < n - 1:
                x = torch.relu(x)
        return x

    def kl(self, method: str) -> torch.Tensor:
        """The closed-form KL of every weight: Molchanov et al. (2017)'s approximation for ``"sparse-vd"``, sum
        0.5 log(1 + 1/alpha) otherwise (``"vbd"``)."""
        total = self.theta[0].new_zeros(())
        for th, ls2 in zip(self.theta, self.log_sigma2):
            log_alpha = ls2 - (th * th + 1e-16).log()
            if method == "sparse-vd":
                k1, k2, k3 = 0.63576, 1.87320, 1.48695
                la = log_alpha.clamp(-10.0, 10.0)
                kl = k1 - k1 * torch.sigmoid(k2 + k3 * la) + 0.5 * torch.nn.functional.softplus(-la)
            else:
                kl = 0.5 * torch.nn.functional.softplus(-log_alpha)
            total = total + kl.sum()
        return total


def plain_lrt_epoch(
    net: PlainLRTNet, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int, method: str
) -> None:
    """One epoch of the LRT baseline: cross-entropy * N / B plus ``net.kl(method)`` per step."""
    n = len(x)
    for idx in torch.randperm(n, device=x.device).split(batch_size):
        opt.zero_grad(set_to_none=True)
        nll = torch.nn.functional.cross_entropy(net(x[idx]), y[idx], reduction="sum") * (n / len(idx))
        loss = nll + net.kl(method)
        loss.backward()
        opt.step()


def gaussian_section(device: torch.device, repeats: int, epochs: int, *, jit: bool | None = None) -> list[str]:
    """Markdown lines of the sparse-vd / vbd comparison (target on 40-1024-1024-10: at most 1.15x)."""
    rows = [
        measure(m, d, h, b, device, repeats, epochs * k, jit=jit) for m in GAUSSIAN_METHODS for d, h, b, k in CONFIGS
    ]
    lines = [
        "",
        "## `sparse-vd` and `vbd` against a hand-written LRT loop (target on 40-1024-1024-10: at most 1.15x)",
        "",
        "Baseline: the same MLP with Gaussian weights (theta, log sigma^2), the same local reparameterisation "
        "estimator and the same closed-form KL (Molchanov's approximation / sum 0.5 log(1 + 1/alpha)) in plain "
        "PyTorch; `bd.fit` uses `MeanFieldELBO` with the registered KLs and `LocalReparameterization`.",
        "",
        "| method | data | network | batch | plain PyTorch s/epoch | bd.fit s/epoch | ratio | ratio IQR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['method']} " + _cells(r) for r in rows]
    return lines


# -- The width x batch sweep -------------------------------------------------------------------------------------
#
# Two hidden layers of one width on 784 Gaussian inputs and 10 classes (:func:`synthetic`), with a training set of
# ``SWEEP_STEPS`` batches, so that every point times the same number of steps per epoch.  The overhead per step is
# (bd.fit's epoch - the floor's epoch) / steps: the fixed cost that dominates small networks and small batches.

SWEEP_WIDTHS = (100, 300, 1000, 3000)
SWEEP_BATCHES = (32, 128, 512, 2048)
SWEEP_METHODS = ("bernoulli", "sparse-vd", "vbd")
SWEEP_STEPS = 20  #: optimisation steps per epoch at every point of the sweep
SWEEP_TARGETS = {"bernoulli": 1.15, "sparse-vd": 1.10, "vbd": 1.10}  #: at most this ratio at every point


def synthetic(
    n_train: int, n_test: int, dim: int, classes: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian inputs ``x ~ N(0, I_dim)`` labelled ``argmax(x W)`` for a fixed ``W ~ N(0, 1)`` of ``dim x classes``.

    Returns
    -------
    tuple of torch.Tensor
        ``x_train, y_train, x_test, y_test``; the same for the same arguments.
    """
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, classes, generator=torch.Generator().manual_seed(seed + 1234))
    x = torch.randn(n_train + n_test, dim, generator=g)
    y = (x @ w).argmax(-1)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def sweep(
    device: torch.device,
    repeats: int,
    epochs: int,
    widths: Sequence[int] = SWEEP_WIDTHS,
    batches: Sequence[int] = SWEEP_BATCHES,
    methods: Sequence[str] = SWEEP_METHODS,
    steps: int = SWEEP_STEPS,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    *,
    jit: bool | None = None,
) -> list[dict[str, Any]]:
    """Every ``method`` against its floor on a 784-w-w-10 MLP for every width ``w`` and batch size.

    Parameters
    ----------
    device
        Where both train.
    repeats, epochs
        As :func:`compare_runs`; an epoch is ``steps`` optimisation steps.
    widths, batches, methods
        The grid; methods are ``"bernoulli"`` and :data:`GAUSSIAN_METHODS`.
    steps
        Batches in the training set.
    on_row
        Called with each row as soon as it is measured (the command line rewrites its record then).
    jit
        ``bd.fit``'s (``None``: its default, the compiled loss).

    Returns
    -------
    list of dict
        Rows of :func:`measure_on` with ``method``, ``dataset`` (``"synthetic"``), ``arch``, ``width`` and
        ``overhead_us``, bd.fit's extra microseconds per step over the floor's (medians of the epoch times).
    """
    rows = []
    for batch in batches:
        x, y, _, _ = synthetic(steps * batch, 0, 784, 10)
        x, y = x.to(device), y.to(device)
        for width in widths:
            for method in methods:
                row: dict[str, Any] = {"method": method, "dataset": "synthetic", "width": width}
                row["arch"] = _arch(784, [width, width], 10)
                row |= measure_on(method, x, y, 10, [width, width], batch, device, repeats, epochs, jit=jit)
                row["overhead_us"] = (row["bayesdrop"] - row["plain"]) / row["steps"] * 1e6
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


def sweep_section(rows: list[dict[str, Any]], steps: int) -> list[str]:
    """Markdown lines of the sweep: per method, a grid of ratios (overhead per step) and whether the target holds."""
    if not rows:
        return []
    batches = sorted({r["batch"] for r in rows})
    lines = [
        "",
        "## Width x batch sweep: 784-w-w-10 on synthetic data",
        "",
        f"Each epoch is {steps} steps of the given batch ({steps} x batch Gaussian inputs, :func:`synthetic`); "
        "`bernoulli` against the `nn.Dropout` loop, `sparse-vd` and `vbd` against the hand-written LRT loop.  Cell: "
        "median per-epoch ratio bd.fit / floor, and in brackets bd.fit's overhead in microseconds per step "
        "((bd.fit - floor) median epoch times / steps).  Targets: "
        + ", ".join(f"`{m}` at most {t:.2f}x" for m, t in SWEEP_TARGETS.items())
        + " at every point.",
        "",
        "| method | width | " + " | ".join(f"batch {b}" for b in batches) + " | target met |",
        "|---|---|" + "---|" * len(batches) + "---|",
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        for width in sorted({r["width"] for r in rows if r["method"] == method}):
            cells = {r["batch"]: r for r in rows if r["method"] == method and r["width"] == width}
            text = [
                f"{cells[b]['ratio']:.2f}x ({cells[b]['overhead_us']:+.0f} us)" if b in cells else "" for b in batches
            ]
            met = all(r["ratio"] <= SWEEP_TARGETS.get(method, math.inf) for r in cells.values())
            lines.append(f"| {method} | {width} | " + " | ".join(text) + f" | {'yes' if met else 'no'} |")
    lines += [
        "",
        "| method | network | batch | floor s/epoch | bd.fit s/epoch | ratio | ratio IQR | overhead us/step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | {r['arch']} | {r['batch']} | {r['plain']:.4f} | {r['bayesdrop']:.4f} | {r['ratio']:.2f}x "
        f"| {r['q1']:.2f}-{r['q3']:.2f}x | {r['overhead_us']:.0f} |"
        for r in rows
    ]
    return lines


def _cells(r: dict[str, Any]) -> str:
    """The shared table cells of a row, from the data set to the ratio's interquartile range."""
    return (
        f"| {r['dataset']} | {r['arch']} | {r['batch']} | {r['plain']:.4f} | {r['bayesdrop']:.4f} | "
        f"{r['ratio']:.2f}x | {r['q1']:.2f}-{r['q3']:.2f}x |"
    )


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/speed.md") -> int:
    """The command line of ``benchmarks/speed.py``: measure the parts asked for and write the Markdown record.

    ``argv`` and ``default_out`` as :func:`~bayesdrop.experiments.report_io.script_parser` says.  The record is
    rewritten after each part and each point of the sweep, so an interrupted run keeps what it measured.

    Returns
    -------
    int
        The exit status, 0.
    """
    ap = script_parser(__doc__)
    ap.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu or cuda (default: auto)")
    ap.add_argument("--repeats", type=int, default=5, help="pairs of runs per row (default: 5)")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run, 4x on digits (default: 4)")
    ap.add_argument(
        "--parts", nargs="+", choices=["configs", "sweep", "validation", "compile", "ops"], default=["configs"],
        help="configs: the digits and mnist1d rows; sweep: the width x batch grid, long on a CPU; validation: "
        "bd.fit's default against Pyro's validation on and off on the digits MLP; compile: torch.compile of the "
        "loss against the eager loss; ops: tensor operators per step against the floors (default: configs)",
    )  # fmt: skip
    ap.add_argument("--widths", type=int, nargs="+", default=list(SWEEP_WIDTHS), help="the sweep's hidden widths")
    ap.add_argument("--batches", type=int, nargs="+", default=list(SWEEP_BATCHES), help="the sweep's batch sizes")
    ap.add_argument(
        "--methods", nargs="+", choices=list(SWEEP_METHODS), default=list(SWEEP_METHODS), help="the sweep's methods"
    )
    ap.add_argument(
        "--eager", action="store_true",
        help="bd.fit(jit=False): every step through Pyro's handlers (default: bd.fit's default, the compiled loss)",
    )  # fmt: skip
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    jit = False if args.eager else None
    for name in ("repeats", "epochs"):
        if getattr(args, name) < 1 + (name == "epochs"):
            ap.error(f"--{name} must be at least {1 + (name == 'epochs')}")
    if min(args.widths) < 1 or min(args.batches) < 1:
        ap.error("--widths and --batches must be positive")
    device = bd.infer.resolve_device(args.device)
    lines = [
        "# Training speed: `bd.fit` against a plain PyTorch loop",
        "",
        f"Device: {device_name(device)}.  {args.repeats} repeats; in each, a baseline network and a bayesdrop model "
        f"built from the same seed train side by side for {args.epochs} epochs"
        + (f" ({4 * args.epochs} on digits, whose epochs are ~20x shorter)" if "configs" in args.parts else "")
        + ", each with one optimiser, one baseline epoch after each `bd.fit` epoch (`fit`'s callback).  Ratio: median "
        "and interquartile range of the per-epoch ratios `bd.fit / plain` from the second epoch on, over all "
        "repeats; epoch times are medians.  `bd.fit` "
        + (
            "with `jit=False`: every step through Pyro's handlers."
            if args.eager
            else "with its default `jit`: the steps after its set-up run the compiled loss (`bd.infer.compiled`)."
        ),
        f"Command: `{quoted_command('benchmarks/speed.py', list(sys.argv[1:] if argv is None else argv))}`",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if "configs" in args.parts:
        rows = [measure("bernoulli", d, h, b, device, args.repeats, args.epochs * k, jit=jit) for d, h, b, k in CONFIGS]
        lines += [
            "",
            "## `bernoulli` (target on 40-1024-1024-10: at most 1.3x)",
            "",
            "| data | network | batch | plain PyTorch s/epoch | bd.fit s/epoch | ratio | ratio IQR |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [_cells(r) for r in rows]
        lines += gaussian_section(device, args.repeats, args.epochs, jit=jit)
        out.write_text("\n".join(lines) + "\n")
    if "validation" in args.parts:
        lines += validation_section(device, args.repeats, args.epochs)
        out.write_text("\n".join(lines) + "\n")
    if "compile" in args.parts:
        rounds, steps = 2 * args.repeats, 30
        lines += compile_section(measure_compile(device, rounds=rounds, steps=steps), rounds, steps)
        out.write_text("\n".join(lines) + "\n")
    if "ops" in args.parts:
        lines += ops_section([measure_ops(m, device) for m in SWEEP_METHODS])
        out.write_text("\n".join(lines) + "\n")
    if "sweep" in args.parts:
        swept: list[dict[str, Any]] = []

        def on_row(row: dict[str, Any]) -> None:
            swept.append(row)
            print(f"{row['method']} {row['arch']} b{row['batch']}: {row['ratio']:.2f}x", file=sys.stderr, flush=True)
            out.write_text("\n".join(lines + sweep_section(swept, SWEEP_STEPS)) + "\n")

        sweep(
            device,
            args.repeats,
            args.epochs,
            args.widths,
            args.batches,
            methods=args.methods,
            steps=SWEEP_STEPS,
            on_row=on_row,
            jit=jit,
        )
        lines += sweep_section(swept, SWEEP_STEPS)
    write_results("\n".join(lines), out)
    return 0
