"""Scaling out: time per epoch against the data size, one process against two, and the memory of prediction.

For users planning a run on more data or more processes, and for maintainers checking that the cost grows as it
should: ``benchmarks/scale.py`` is the command line that writes ``benchmarks/results/scale.md``;
``tests/test_lightning.py`` checks the distributed step itself (one DDP step over two processes equals the
single-process step on the same global batch).

Protocol.

- *Data size*: ``bd.fit`` for one timed epoch (after one warm-up epoch) of a ``bernoulli`` MLP 20-100-100-2 on
  synthetic data (Gaussian inputs, labels from the sign of a fixed linear function), N = 10^3 .. ``--max-n``, batch
  1024; reported: seconds per epoch and microseconds per example (constant if the time is linear in N).
- *Processes*: the default ``bernoulli`` MLP 64-300-100-10 on digits, global batch 128, ``--epochs`` epochs, seed
  0: ``bd.fit``, :class:`~bayesdrop.lightning.BayesdropModule` in one process, and in two (``ddp_spawn``, gloo,
  64 examples per process and step); reported: test accuracy (MC, 100 draws; for two processes, of the rank-0
  checkpoint loaded into a fresh model in this process with ``bd.load_checkpoint``) and seconds per epoch.  No speed
  target on this 2-core machine: the two processes share its cores with the rest of the system.
- *Prediction memory*: peak resident memory of a fresh process that predicts (``bd.predict``, 100 draws, class
  probabilities) for ``--predict-n`` inputs of an untrained digits-width MLP, with ``batch_size=1000`` and all at
  once (the inputs themselves and the ``(N, C)`` result are the floor).

Usage::

    python benchmarks/scale.py [--max-n 1000000] [--epochs 30] [--predict-n 100000] [--out benchmarks/results/scale.md]

Example
-------
>>> from bayesdrop.experiments import scale
>>> scale.epoch_time(1000, epochs=1)["us_per_example"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import bayesdrop as bd

from .report_io import device_name, quoted_command, script_parser, write_results

__all__ = ["synthetic", "epoch_time", "processes", "predict_memory", "main"]

BATCH = 1024
GLOBAL_BATCH = 128


def synthetic(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples of 20 Gaussian features, labelled by the sign of a fixed linear function of them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    w = torch.randn(20, generator=torch.Generator().manual_seed(1234))
    return x, (x @ w > 0).long()


def epoch_time(n: int, epochs: int = 1) -> dict[str, Any]:
    """Seconds per epoch of ``bd.fit`` on ``n`` synthetic examples (the median of ``epochs`` after a warm-up)."""
    x, y = synthetic(n)
    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(20, [100, 100], 2, "bernoulli"), num_data=n)
    guide = bd.DropoutGuide(model)
    result = bd.fit(model, guide, (x, y), epochs=epochs + 1, batch_size=BATCH, progress=False, validate=False)
    seconds = sorted(result.history["seconds"][1:])[epochs // 2]
    return {"n": n, "seconds": seconds, "us_per_example": seconds / n * 1e6}


def processes(epochs: int, out_dir: str | Path) -> list[dict[str, Any]]:
    """Digits with ``bd.fit`` and with Lightning in one and in two processes (the module docstring)."""
    import lightning

    from ..lightning import BayesdropModule

    data = bd.data.load("digits")
    rows: list[dict[str, Any]] = []

    def fresh() -> tuple[bd.Likelihood, bd.DropoutGuide]:
        torch.manual_seed(0)
        model = bd.Classifier(bd.models.mlp(64, [300, 100], 10), num_data=len(data.train))
        guide = bd.DropoutGuide(model)
        guide(data.train.x[:2])
        return model, guide

    model, guide = fresh()
    t0 = time.perf_counter()
    bd.fit(model, guide, data.train, epochs=epochs, batch_size=GLOBAL_BATCH, progress=False, validate=False)
    rows.append({"run": "bd.fit, 1 process", "seconds": (time.perf_counter() - t0) / epochs, "model": (model, guide)})
    for devices in (1, 2):
        model, guide = fresh()
        module = BayesdropModule(model, guide, epochs=epochs)
        ds = torch.utils.data.TensorDataset(data.train.x, data.train.y)
        loader = torch.utils.data.DataLoader(ds, batch_size=GLOBAL_BATCH // devices, shuffle=True)
        trainer = lightning.Trainer(
            accelerator="cpu",
            devices=devices,
            strategy="ddp_spawn" if devices > 1 else "auto",
            max_epochs=epochs,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=str(out_dir),
        )
        t0 = time.perf_counter()
        trainer.fit(module, loader)
        seconds = (time.perf_counter() - t0) / epochs
        path = Path(out_dir) / f"lightning{devices}.ckpt"
        trainer.save_checkpoint(path)  # rank 0's state, on every process count
        model, guide = fresh()
        bd.load_checkpoint(path, model, guide)
        rows.append({"run": f"Lightning, {devices} process{'es' if devices > 1 else ''}", "seconds": seconds,
                     "model": (model, guide)})  # fmt: skip
    for row in rows:
        model, guide = row.pop("model")
        torch.manual_seed(0)
        row.update(bd.evaluate(model, guide, data.test, num_samples=100))
    return rows


_MEMORY = """
import json, sys, torch, bayesdrop as bd
torch.set_num_threads(1)
n, batch = int(sys.argv[1]), (None if sys.argv[2] == "all" else int(sys.argv[2]))
torch.manual_seed(0)
x = torch.randn(n, 64)
model = bd.Classifier(bd.models.mlp(64, [300, 100], 10), num_data=n)
guide = bd.DropoutGuide(model)
guide(x[:2])
def high_water():  # this process's peak resident memory in MiB (VmHWM: unlike ru_maxrss, not the parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
before = high_water()
if sys.argv[3] == "predict":
    shape = list(bd.predict(model, guide, x, num_samples=100, batch_size=batch).shape)
else:  # labelled data: every group of the InferenceData, probs (1, 100, n, 10) the largest
    y = torch.randint(0, 10, (n,))
    shape = list(bd.to_inference_data(model, guide, (x, y), 100, batch_size=batch).posterior_predictive["probs"].shape)
print(json.dumps({"before_mib": before, "peak_mib": high_water(), "shape": shape}))
"""


def predict_memory(n: int, batch_size: int | None, what: str = "predict") -> dict[str, Any]:
    """Peak resident memory (MiB, Linux's ``VmHWM``) of a fresh process drawing 100 networks for ``n`` inputs:
    ``bd.predict`` (``what="predict"``) or ``bd.to_inference_data`` (``"inference_data"``)."""
    arg = "all" if batch_size is None else str(batch_size)
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY, str(n), arg, what], check=True, capture_output=True, text=True, timeout=3600
    )
    return {"n": n, "batch_size": batch_size, **json.loads(done.stdout.strip().splitlines()[-1])}


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/scale.md") -> int:
    """The command line of ``benchmarks/scale.py``: measure and write the Markdown record.

    Returns
    -------
    int
        The exit status, 0.
    """
    ap = script_parser(__doc__)
    ap.add_argument("--max-n", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--predict-n", type=int, default=100_000)
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    for flag, value in (("--max-n", args.max_n), ("--epochs", args.epochs), ("--predict-n", args.predict_n)):
        if value < 1:
            ap.error(f"{flag} must be a positive int")
    torch.set_num_threads(1)
    sizes = [n for n in (1_000, 10_000, 100_000, 1_000_000, 10_000_000) if n <= args.max_n]
    timing = [epoch_time(n) for n in sizes]
    with tempfile.TemporaryDirectory() as tmp:
        runs = processes(args.epochs, tmp)
    memory = [predict_memory(args.predict_n, b) for b in (1000, None)]
    idata_memory = [predict_memory(args.predict_n, b, "inference_data") for b in (1000, None)]
    lines = [
        "# Scaling out: data size, processes, prediction memory",
        "",
        f"Device: {device_name(torch.device('cpu'))}.  Protocol: `bayesdrop/experiments/scale.py`.",
        f"Command: `{quoted_command('benchmarks/scale.py', list(argv) if argv is not None else sys.argv[1:])}`",
        "",
        f"## Time per epoch against N (`bd.fit`, `bernoulli` MLP 20-100-100-2, batch {BATCH})",
        "",
        "| N | s / epoch | us / example |",
        "|---|---|---|",
        *[f"| {r['n']:,} | {r['seconds']:.3f} | {r['us_per_example']:.2f} |" for r in timing],
        "",
        f"## One process against two (digits, MLP 64-300-100-10, global batch {GLOBAL_BATCH}, {args.epochs} epochs)",
        "",
        "| run | test accuracy | test NLL | s / epoch |",
        "|---|---|---|---|",
        *[f"| {r['run']} | {r['acc']:.4f} | {r['nll']:.4f} | {r['seconds']:.2f} |" for r in runs],
        "",
        f"## Peak memory of `bd.predict` (100 draws, {args.predict_n:,} inputs of 64 features, MLP 64-300-100-10)",
        "",
        "| batch_size | resident before MiB | peak MiB |",
        "|---|---|---|",
        *[f"| {r['batch_size'] or 'all'} | {r['before_mib']:.0f} | {r['peak_mib']:.0f} |" for r in memory],
        "",
        f"## Peak memory of `bd.to_inference_data` (100 draws, {args.predict_n:,} labelled inputs, the same MLP)",
        "",
        "Every group of the InferenceData, `posterior_predictive` `probs` (1, 100, N, 10) float32 the largest; the "
        "peak includes importing ArviZ and xarray (about 140 MiB).",
        "",
        "| batch_size | resident before MiB | peak MiB |",
        "|---|---|---|",
        *[f"| {r['batch_size'] or 'all'} | {r['before_mib']:.0f} | {r['peak_mib']:.0f} |" for r in idata_memory],
    ]
    write_results("\n".join(lines), args.out)
    return 0
