"""Run configurations: from a ``config.json`` (or the command line's arguments) to data, model and guide.

For scripts and the command line alike: ``bayesdrop train`` writes a run directory, :func:`load_run` rebuilds it,
:func:`build` makes data, model and guide from a configuration dictionary.

Example
-------
>>> from bayesdrop.experiments import runs
>>> ds, model, guide = runs.build({"method": "vbd", "dataset": "digits", "arch": "mlp:300,100"})
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

import pyro
import torch

from .. import data as bd_data
from .. import methods
from ..guides import DropoutGuide
from ..infer import load_checkpoint
from ..likelihoods import Classifier, Likelihood, Regressor
from ..methods import Method
from ..models import lenet5, mlp, rnn

__all__ = ["build", "inputs", "load_run", "load_dataset", "parse_arch", "parse_hyper"]


def parse_arch(spec: str) -> tuple[str, list[int]]:
    """Parse ``mlp:300,100`` / ``lenet300-100`` / ``lenet5`` / ``rnn`` / ``rnn:128`` into (kind, widths); ``rnn``
    is an LSTM of 64 units (``rnn:H``: ``H``) read at its last step over the data's sequences."""
    kind, _, rest = spec.partition(":")
    if kind == "mlp":
        try:
            widths = [int(w) for w in rest.split(",") if w.strip()]
        except ValueError:
            widths = []
        if not widths or min(widths) < 1:
            raise ValueError(f"`--arch` {spec!r}: expected mlp:W1,W2,... with positive widths")
        return "mlp", widths
    if kind == "lenet300-100" and not rest:
        return "mlp", [300, 100]
    if kind == "lenet5" and not rest:
        return "lenet5", []
    if kind == "rnn":
        if not rest:
            return "rnn", [64]
        if rest.isdigit() and int(rest) > 0:
            return "rnn", [int(rest)]
    raise ValueError(f"`--arch` {spec!r}: accepted are mlp:W1,W2,..., lenet300-100, lenet5, rnn, rnn:H")


def parse_hyper(items: list[str]) -> dict[str, Any]:
    """``["p=0.3", "granularity=unit"]`` -> ``{"p": 0.3, "granularity": "unit"}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"`--hyper` {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_dataset(name: str, mnist_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> bd_data.Dataset:
    """A bundled data set by name (``bd.data.load``), or ``"mnist"`` from the IDX files in ``mnist_dir``."""
    if name == "mnist":
        if not mnist_dir:
            raise ValueError("`--dataset mnist` needs `--mnist-dir` (a directory with the IDX files)")
        return bd_data.load_mnist(mnist_dir)
    return bd_data.load(name, seed=seed)


def build(
    config: dict[str, Any], dataset: bd_data.Dataset | None = None
) -> tuple[bd_data.Dataset, Likelihood, DropoutGuide]:
    """Data, model and guide from a run configuration (see ``bayesdrop train``).

    The initial weights are drawn after ``pyro.set_rng_seed(config["seed"])`` (default 0), so a run does not
    depend on the global random state of the process.
    """
    ds = dataset or load_dataset(config["dataset"], config.get("mnist_dir"), config.get("data_seed", 0))
    pyro.set_rng_seed(int(config.get("seed", 0)))
    kind, widths = parse_arch(config["arch"])
    method = methods.get(config["method"], **config.get("hyper", {}))
    input_method = None
    if config.get("input_method"):
        input_method = methods.get(config["input_method"], **config.get("input_hyper", {}))
    # classes, the values of a forecast (co2, sunspots), or one regression target
    out = cast(int, ds.num_classes) if ds.task == "classification" else ds.series.horizon if ds.series else 1
    # a method goes where a network takes it: every layer, the inputs (no other noise), the pooling layers, the
    # recurrent layers
    role = method.capabilities.role
    takes = {"mlp": ("layer", "input"), "lenet5": ("layer", "input", "pool"), "rnn": ("layer", "recurrent")}
    if role not in takes[kind]:
        where = {"input": "on the inputs", "pool": "in pooling layers", "recurrent": "in recurrent layers"}[role]
        wanted = " or ".join(f"`--arch {k}`" for k, roles in takes.items() if role in roles)
        raise ValueError(f"`--method` {config['method']!r} acts {where}: use {wanted}")
    if role == "input" and input_method is not None:
        raise ValueError(f"`--method` {config['method']!r} is an input method; `--input-method` cannot be given too")
    layer_method: Method | None = method if role == "layer" else None
    input_method = method if role == "input" else input_method
    if kind == "mlp":
        net = mlp(ds.in_features, widths, out, layer_method, input_method=input_method)
    else:
        if ds.image_shape is None or len(ds.image_shape) not in (2, 3):
            raise ValueError(f"`--arch {kind}` needs image data; {ds.name!r} has image shape {ds.image_shape}")
        if kind == "rnn":
            if input_method is not None:
                raise ValueError("`--input-method` is for `--arch mlp` and `lenet5`")
            features = ds.sequences(ds.test).shape[-1]
            return _wrap(ds, rnn(features, widths[0], out, method))
        pool_method = method if role == "pool" else None
        net = lenet5(ds.image_shape, out, layer_method, input_method=input_method, pool_method=pool_method)
    return _wrap(ds, net)


def _wrap(ds: bd_data.Dataset, net: torch.nn.Module) -> tuple[bd_data.Dataset, Likelihood, DropoutGuide]:
    """The data set, the network's likelihood and its guide."""
    if ds.task == "classification":
        model: Likelihood = Classifier(net, num_data=len(ds.train))
    else:
        model = Regressor(net, num_data=len(ds.train), horizon=ds.series.horizon if ds.series else None)
    return ds, model, DropoutGuide(model)


def inputs(ds: bd_data.Dataset, config: dict[str, Any], split: bd_data.Split) -> bd_data.Split:
    """The split shaped for the architecture (images for conv nets, sequences for recurrent ones)."""
    kind = parse_arch(config["arch"])[0]
    if kind == "lenet5":
        return bd_data.Split(ds.images(split), split.y)
    if kind == "rnn":
        return bd_data.Split(ds.sequences(split), split.y)
    return split


def load_run(run_dir: str | os.PathLike) -> tuple[bd_data.Dataset, Likelihood, DropoutGuide, dict[str, Any]]:
    """Rebuild data, model and guide of a run directory written by ``bayesdrop train``."""
    run = Path(run_dir)
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"`run_dir` {os.fspath(run_dir)!r} has no config.json (not a bayesdrop run)")
    config = json.loads(cfg_path.read_text())
    ds, model, guide = build(config)
    x0 = inputs(ds, config, ds.train).x[:2]
    guide(x0)  # record layer order and shapes before loading state
    load_checkpoint(run / "checkpoint.pt", model, guide)
    return ds, model, guide, config
