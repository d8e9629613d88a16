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


MAX_WIDTH = 65536  # the widest layer a run configuration may ask for
MAX_HIDDEN_WEIGHTS = 1 << 28  # and at most this many weights between its hidden layers (1 GiB of float32)


def parse_arch(spec: str) -> tuple[str, list[int]]:
    """Parse ``mlp:300,100`` / ``lenet300-100`` / ``lenet5`` / ``rnn`` / ``rnn:128`` into (kind, widths); ``rnn``
    is an LSTM of 64 units (``rnn:H``: ``H``) read at its last step over the data's sequences.  Widths are bounded
    (:data:`MAX_WIDTH`, :data:`MAX_HIDDEN_WEIGHTS`), so that a configuration cannot ask for gigabytes."""
    if not isinstance(spec, str):
        raise TypeError(f"`--arch` must be a string such as 'mlp:300,100', got {type(spec).__name__}")
    kind, _, rest = spec.partition(":")
    if kind == "mlp":
        try:
            widths = [int(w) for w in rest.split(",") if w.strip()]
        except ValueError:
            widths = []
        if not widths or min(widths) < 1:
            raise ValueError(f"`--arch` {spec!r}: expected mlp:W1,W2,... with positive widths")
        if max(widths) > MAX_WIDTH or sum(a * b for a, b in zip(widths, widths[1:])) > MAX_HIDDEN_WEIGHTS:
            raise ValueError(
                f"`--arch` {spec!r}: widths at most {MAX_WIDTH} and at most {MAX_HIDDEN_WEIGHTS} weights between "
                "hidden layers"
            )
        return "mlp", widths
    if kind == "lenet300-100" and not rest:
        return "mlp", [300, 100]
    if kind == "lenet5" and not rest:
        return "lenet5", []
    if kind == "rnn":
        if not rest:
            return "rnn", [64]
        if rest.isdigit() and 0 < int(rest) <= MAX_WIDTH:
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


# key -> (accepted types, required): what `bayesdrop train` writes into config.json
_CONFIG_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "method": ((str,), True),
    "hyper": ((dict,), False),
    "input_method": ((str, type(None)), False),
    "input_hyper": ((dict,), False),
    "dataset": ((str,), True),
    "mnist_dir": ((str, type(None)), False),
    "arch": ((str,), True),
    "epochs": ((int,), True),
    "batch_size": ((int,), False),
    "lr": ((int, float), False),
    "kl_warmup": ((int, str, type(None)), False),
    "lr_decay": ((str, type(None)), False),
    "seed": ((int,), False),
    "data_seed": ((int,), False),
}


def read_config(path: Path) -> dict[str, Any]:
    """Read and check a run's ``config.json``: a JSON object whose keys have the types ``bayesdrop train``
    writes (hyper-parameters: numbers, strings, booleans or null), else a ``ValueError`` naming the file and key."""
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: not a bayesdrop run configuration ({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    for key, (types, required) in _CONFIG_KEYS.items():
        if key not in config:
            if required:
                raise ValueError(f"{path}: missing key {key!r}")
            continue
        value = config[key]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ValueError(f"{path}: {key!r} must be {names}, got {type(value).__name__}")
    for key in ("hyper", "input_hyper"):
        for name, v in config.get(key, {}).items():
            if not isinstance(v, (int, float, str, bool, type(None))):
                raise ValueError(f"{path}: {key}[{name!r}] must be a number, string, boolean or null")
    if not 1 <= config["epochs"] <= 10**6:
        raise ValueError(f"{path}: 'epochs' must be in [1, 1000000], got {config['epochs']}")
    return config


def load_run(run_dir: str | os.PathLike) -> tuple[bd_data.Dataset, Likelihood, DropoutGuide, dict[str, Any]]:
    """Rebuild data, model and guide of a run directory written by ``bayesdrop train``."""
    run = Path(run_dir)
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"`run_dir` {os.fspath(run_dir)!r} has no config.json (not a bayesdrop run)")
    config = read_config(cfg_path)
    ds, model, guide = build(config)
    x0 = inputs(ds, config, ds.train).x[:2]
    guide(x0)  # record layer order and shapes before loading state
    load_checkpoint(run / "checkpoint.pt", model, guide)
    return ds, model, guide, config
