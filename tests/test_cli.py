"""The `bayesdrop` command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import bayesdrop as bd
from bayesdrop import cli
from bayesdrop.experiments.runs import parse_arch


def test_methods_lists_every_registered_method(capsys):
    assert cli.main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in bd.methods.names():
        assert f"| {name} |" in out
    rows = {line.split(" | ")[0].strip("| "): line for line in out.splitlines()}
    assert rows["fast-dropout"].endswith("| mc, moment-matching, weight-scaling | moments integrated out |")
    assert rows["bernoulli"].endswith("| noise | every layer | mc, weight-scaling | sampled |")
    assert rows["cutout"].endswith("| noise | inputs | mc, weight-scaling | sampled |")
    assert rows["max-drop"].endswith("| pool | pooling layers | mc, weight-scaling | sampled |")


def test_train_writes_a_run_that_reloads(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(
        [
            "train",
            "--method",
            "bernoulli",
            "--hyper",
            "p=0.2",
            "--dataset",
            "digits",
            "--arch",
            "mlp:32",
            "--epochs",
            "3",
            "--lr",
            "3e-3",
            "--lr-decay",
            "linear",
            "--num-samples",
            "10",
            "--out",
            str(run),
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "test NLL" in out
    for f in ("config.json", "checkpoint.pt", "history.json", "metrics.json"):
        assert (run / f).stat().st_size > 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.5 < metrics["acc"] <= 1.0
    ds, model, guide, config = cli.load_run(run)
    assert config["hyper"] == {"p": 0.2} and config["lr_decay"] == "linear"
    assert json.loads((run / "history.json").read_text())["lr"] == pytest.approx([3e-3, 2e-3, 1e-3])
    again = bd.evaluate(model, guide, ds.test, rule="weight-scaling")
    assert again["acc"] > 0.5


def test_train_reports_bad_arguments(tmp_path, capsys):
    assert cli.main(["train", "--method", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert cli.main(["train", "--arch", "mlp:", "--out", str(tmp_path)]) == 2
    assert "`--arch`" in capsys.readouterr().err
    assert cli.main(["train", "--dataset", "mnist", "--out", str(tmp_path)]) == 2
    assert "--mnist-dir" in capsys.readouterr().err


def test_train_puts_pool_and_input_methods_where_a_network_takes_them(tmp_path, capsys):
    """``--method`` of a pool method goes into LeNet-5's pooling layers (no other noise), an input method onto the
    first layer; a pool method with an MLP is refused naming the remedy."""
    from bayesdrop.experiments.runs import load_run

    common = ["--dataset", "digits", "--epochs", "1", "--num-samples", "2", "--quiet"]
    assert cli.main(["train", "--method", "max-drop", "--arch", "lenet5", *common, "--out", str(tmp_path / "a")]) == 0
    _, model, _, _ = load_run(tmp_path / "a")
    pools = [m for m in model.net if isinstance(m, bd.nn.MaxPool2d)]
    assert len(pools) == 2 and all(p.method.name == "max-drop" for p in pools)
    assert all(m.method.p == 0.0 for m in model.net if isinstance(m, (bd.nn.Conv2d, bd.nn.Linear)))
    assert cli.main(["train", "--method", "cutout", *common, "--out", str(tmp_path / "b")]) == 0
    _, model, _, _ = load_run(tmp_path / "b")
    assert [m.method.name for m in model.net if isinstance(m, bd.nn.Linear)] == ["cutout", "bernoulli", "bernoulli"]
    assert cli.main(["train", "--method", "maxpool-dropout", *common, "--out", str(tmp_path / "c")]) == 2
    assert "acts in pooling layers: use `--arch lenet5`" in capsys.readouterr().err
    assert cli.main(["train", "--method", "rnndrop", *common, "--out", str(tmp_path / "d")]) == 2
    assert "acts in recurrent layers: use `--arch rnn`" in capsys.readouterr().err
    assert cli.main(["train", "--method", "rnndrop", "--arch", "rnn:16", *common, "--out", str(tmp_path / "e")]) == 0
    _, model, _, _ = load_run(tmp_path / "e")
    assert isinstance(model.net.rnn, bd.nn.LSTM) and model.net.rnn.hidden_size == 16


def test_console_script_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "bayesdrop.cli", "methods"], capture_output=True, text=True, check=True
    )
    assert "bernoulli" in proc.stdout


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("mlp:300,100", ("mlp", [300, 100])),
        ("lenet5", ("lenet5", [])),
        ("lenet300-100", ("mlp", [300, 100])),
        ("rnn", ("rnn", [64])),
        ("rnn:128", ("rnn", [128])),
    ],
)
def test_parse_arch(spec, expected):
    """The ``--arch`` specs (parsed by ``bayesdrop.experiments.runs``, shared by the CLI and the experiments)."""
    assert parse_arch(spec) == expected


def test_prune_writes_the_report_and_a_loadable_model(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "--dataset",
                "digits",
                "--arch",
                "mlp:16",
                "--epochs",
                "1",
                "--num-samples",
                "5",
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    assert cli.main(["prune", str(run)]) == 0
    out = capsys.readouterr().out
    assert "Architecture after pruning" in out and "Pruned network test accuracy" in out
    assert "| **total** |" in (run / "compression.md").read_text()
    ds, model, guide, _ = cli.load_run(run)
    loaded = bd.compress.load(run / "pruned.pt2")
    ref = guide.mean_network(pruned=True)(ds.test.x)
    assert torch.allclose(loaded(ds.test.x), ref, atol=1e-5)
