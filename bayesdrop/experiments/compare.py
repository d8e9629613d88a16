"""Train every method on the same data, architecture, seed and budget, and compare.

The table follows Liu et al. (2019) Table 1, with the columns a Bayesian user
needs beside the error: test error and NLL of the Monte Carlo predictive,
expected calibration error, the mean learned keep probability, the compression
ratio :math:`|W| / |W \\ne 0|` of :func:`bayesdrop.compress.report` and the
training time per epoch.

Every method runs under the library's defaults (those of ``bd.models.mlp`` and
``bd.fit``): fixed-rate methods drop 0.2 of the inputs and 0.5 of hidden units;
methods that learn their rates act on every layer, inputs included, and bring
their own KL warm-up (:class:`bayesdrop.methods.TrainingDefaults`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

import torch
from tqdm.auto import tqdm

from .. import compress, methods
from ..diagnostics import expected_calibration_error
from ..guides import dropout_rates
from ..infer import DEFAULT_LR, fit, predict, resolve_device
from .runs import build, inputs, parse_arch

__all__ = ["compare", "to_markdown"]
COLUMNS = ("method", "test error %", "NLL", "ECE", "mean keep", "|W|/|W≠0|", "s/epoch")


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
    num_samples: int = 100,
    seed: int = 0,
    device: str = "auto",
    mnist_dir: str | None = None,
    progress: bool = True,
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
    lr_decay
        ``"linear"`` (default) or ``None`` (see :func:`bayesdrop.fit`).
    num_samples
        Monte Carlo draws of the predictive.
    """
    if not method_names or method_names == ["all"]:  # every method the architecture takes
        roles = {"mlp": ("layer", "input"), "lenet5": ("layer", "input", "pool"), "rnn": ("layer", "recurrent")}
        taken = {n for role in roles[parse_arch(arch)[0]] for n in methods.names(role=role)}
        names = [n for n in methods.names() if n in taken]
    else:
        names = list(method_names)
    for n in names:
        methods.get(n)  # unknown names fail before any training
    dev = resolve_device(device)
    rows = []
    bar = tqdm(names, desc="compare", disable=not progress)
    for name in bar:
        bar.set_postfix(method=name)
        config = {
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
        t0 = time.perf_counter()
        res = fit(
            model,
            guide,
            train,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            kl_warmup=kl_warmup,
            lr_decay=lr_decay,
            device=dev,
            seed=seed,
            progress=False,
        )
        wall = time.perf_counter() - t0
        probs = cast(torch.Tensor, predict(model, guide, test.x, num_samples=num_samples)).cpu()  # classification
        y = test.y
        rates = dropout_rates(model, guide)
        keep = torch.cat([r.flatten().cpu() for r in rates.values()])
        rep = compress.report(model, guide)
        rows.append(
            {
                "method": name,
                "test error %": 100 * (probs.argmax(-1) != y).float().mean().item(),
                "NLL": -probs.gather(-1, y[:, None]).clamp_min(1e-12).log().mean().item(),
                "ECE": expected_calibration_error(probs, y),
                "mean keep": keep.mean().item(),
                "|W|/|W≠0|": rep.ratio,
                "s/epoch": res.seconds_per_epoch,
                "architecture": rep.architecture,
                "train seconds": wall,
            }
        )
    return rows


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison as a markdown table."""
    fmt = {
        "test error %": "{:.2f}",
        "NLL": "{:.3f}",
        "ECE": "{:.3f}",
        "mean keep": "{:.3f}",
        "|W|/|W≠0|": "{:.1f}",
        "s/epoch": "{:.3f}",
    }
    head = "| " + " | ".join(c.replace("|", "\\|") for c in COLUMNS) + " | architecture |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for r in rows:
        cells = [r["method"]] + [fmt[c].format(r[c]) for c in COLUMNS[1:]] + [f"`{r['architecture']}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(rows: list[dict[str, Any]], out: str | Path, header: str = "") -> str:
    """Write ``compare.json`` and ``compare.md`` into ``out``; return the markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = (header + "\n\n" if header else "") + to_markdown(rows) + "\n"
    (out / "compare.json").write_text(json.dumps(rows, indent=1))
    (out / "compare.md").write_text(text)
    return text
