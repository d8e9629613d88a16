"""The convolutional-dropout benchmark (:mod:`bayesdrop.experiments.cnn_dropout`): every configuration builds the
network it names, max-pooling dropout's two test rules act on one trained network, the record has one row per
configuration with finite numbers, bad arguments are refused, and MNIST runs from IDX files.  Tiny widths, one epoch
and a few examples: what is checked is the protocol, not the accuracies."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bayesdrop as bd
from bayesdrop.experiments import cnn_dropout as E

TINY = {"channels": (3, 4), "hidden": 8}
SMALL = {**TINY, "epochs": 1, "eval_samples": 4, "n_train": 128, "n_test": 64}


def _write_idx(path, magic, dims, payload: bytes) -> None:
    path.write_bytes(np.array([magic, *dims], dtype=">i4").tobytes() + payload)


def _write_mnist(root, n_train=24, n_test=12, side=28, seed=0) -> None:
    """Tiny MNIST IDX files (random pixels and labels) in ``root``."""
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(
            root / f"{prefix}-images-idx3-ubyte",
            2051,
            (n, side, side),
            rng.integers(0, 256, (n, side, side), dtype=np.uint8).tobytes(),
        )
        _write_idx(root / f"{prefix}-labels-idx1-ubyte", 2049, (n,), rng.integers(0, 10, n, dtype=np.uint8).tobytes())


def _layers(net):
    """The four weight layers (two convolutions, two dense) and the two pooling modules of a lenet5."""
    weights = [m for _, m in bd.nn.bayesian_layers(net) if isinstance(m, (bd.nn.Conv1d, bd.nn.Conv2d, bd.nn.Linear))]
    pools = [m for m in net if "Pool" in type(m).__name__]
    assert len(weights) == 4 and len(pools) == 2
    return weights, pools


# configuration: (first layer's method and p, p of the other weight layers, noise of the second convolution,
# pooling: None for torch's plain max pooling, else (bd.nn class prefix, method))
_CLAIMS = {
    "none": (("bernoulli", 0.0), 0.0, "element", None),
    "standard": (("bernoulli", "input"), 0.5, "element", None),
    "spatial": (("bernoulli", "input"), 0.5, "channel", None),
    "maxpool-dropout": (("bernoulli", 0.0), 0.0, "element", ("MaxPool", "maxpool-dropout")),
    "avgpool-dropout": (("bernoulli", 0.0), 0.0, "element", ("AvgPool", "avgpool-dropout")),
    "stochastic-pooling": (("bernoulli", 0.0), 0.0, "element", ("MaxPool", "stochastic-pooling")),
    "max-drop": (("bernoulli", 0.0), 0.0, "element", ("MaxPool", "max-drop")),
    "cutout": (("cutout", None), 0.0, "element", None),
    "cutout+spatial": (("cutout", None), 0.5, "channel", None),
}


def test_the_claims_cover_every_configuration():
    assert set(_CLAIMS) == set(E.CONFIGS) and len(E.CONFIGS) == 9


@pytest.mark.parametrize("shape, input_p", [((1, 8, 8), 0.2), ((1, 40), 0.0), ((1, 28, 28), 0.2)])
@pytest.mark.parametrize("config", E.CONFIGS)
def test_every_configuration_builds_the_network_it_claims(config, shape, input_p):
    """Digits images, MNIST-1D signals (Conv1d, 40 inputs: no input dropout by lenet5's rule) and MNIST images."""
    net = E.network(config, shape, 10, **TINY)
    (first_name, first_p), other_p, noise, pooling = _CLAIMS[config]
    weights, pools = _layers(net)
    conv = bd.nn.Conv1d if len(shape) == 2 else bd.nn.Conv2d
    assert isinstance(weights[0], conv) and isinstance(weights[1], conv)
    assert weights[0].out_channels == 3 and weights[1].out_channels == 4 and weights[2].out_features == 8
    assert weights[0].method.name == first_name
    if first_name == "bernoulli":
        assert weights[0].method.p == (input_p if first_p == "input" else first_p)
    assert [w.method.name for w in weights[1:]] == ["bernoulli"] * 3
    assert [w.method.p for w in weights[1:]] == [other_p] * 3
    assert weights[1].noise_kind == noise and weights[0].noise_kind == "element"
    dims = len(shape) - 1
    if pooling is None:
        plain = getattr(torch.nn, f"MaxPool{dims}d")
        assert all(type(p) is plain for p in pools)
    else:
        cls = getattr(bd.nn, f"{pooling[0]}{dims}d")
        assert all(type(p) is cls and p.method.name == pooling[1] for p in pools)
    if config == "maxpool-dropout":
        assert [p.method.test_rule for p in pools] == ["probabilistic", "probabilistic"]
        assert pools[0].method.p == 0.5


def _expected_probabilistic(x: torch.Tensor, p: float) -> torch.Tensor:
    """Wu & Gu's probabilistic weighted pooling of 2 x 2 windows: sum_i (1 - p) p^(K - i) a_(i), a ascending."""
    b, c, h, w = x.shape
    win = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h // 2, w // 2, 4)
    ascending = win.sort(-1).values
    weights = (1 - p) * p ** torch.arange(3, -1, -1, dtype=x.dtype)
    return (ascending * weights).sum(-1)


def test_pool_test_rule_switches_the_deterministic_pooling_and_restores_it():
    """The deterministic network pools by the rule set in the block (checked on the pooling layers' inputs and
    outputs), the Monte Carlo predictive is untouched, and the rule is restored, also after an error."""
    net = E.network("maxpool-dropout", (1, 8, 8), 10, **TINY)
    model = bd.Classifier(net, num_data=16)
    guide = bd.DropoutGuide(model)
    x = torch.rand(16, 1, 8, 8)
    guide(x)  # the guide's set-up run, before the pooling layers are watched
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    _, pools = _layers(net)
    for pool in pools:
        pool.register_forward_hook(lambda mod, args, out: seen.append((args[0], out)))
    outputs = {}
    for rule in ("probabilistic", "scaled"):
        seen.clear()
        with E.pool_test_rule(net, rule), torch.no_grad():
            model.eval()
            outputs[rule] = guide.mean_network()(x).softmax(-1)
            # bd.predict's plain module (kept per guide) is rebuilt for the rule in force
            torch.testing.assert_close(bd.predict(model, guide, x, rule="weight-scaling"), outputs[rule])
        assert len(seen) == 2
        for inp, out in seen:
            assert (inp >= 0).all()  # after a ReLU
            want = 0.5 * F.max_pool2d(inp, 2) if rule == "scaled" else _expected_probabilistic(inp, 0.5)
            torch.testing.assert_close(out, want)
        assert [p.method.test_rule for p in pools] == ["probabilistic", "probabilistic"]
    assert not torch.allclose(outputs["probabilistic"], outputs["scaled"])
    torch.testing.assert_close(outputs["probabilistic"], bd.predict(model, guide, x, rule="weight-scaling"))
    with pytest.raises(RuntimeError, match="inside"), E.pool_test_rule(net, "scaled"):
        raise RuntimeError("inside")
    assert [p.method.test_rule for p in pools] == ["probabilistic", "probabilistic"]
    with pytest.raises(ValueError, match="`rule` must be one of"):
        with E.pool_test_rule(net, "mean"):
            pass
    with pytest.raises(ValueError, match="no pooling layer"):
        with E.pool_test_rule(E.network("stochastic-pooling", (1, 8, 8), 10, **TINY), "scaled"):
            pass


def test_max_pool_rules_are_scored_on_one_trained_network(monkeypatch):
    """``maxpool-dropout`` trains once and scores that network under both rules (recomputed here from the trained
    model); the other configurations have the one deterministic rule."""
    trained = []
    fit = bd.fit

    def counting_fit(model, guide, *args, **kwargs):
        trained.append((model, guide, kwargs))
        return fit(model, guide, *args, **kwargs)

    monkeypatch.setattr(bd, "fit", counting_fit)
    row = E.one_run("maxpool-dropout", 0, dataset="digits", **SMALL)
    assert len(trained) == 1
    model, guide, kwargs = trained[0]
    assert kwargs == {"epochs": 1, "seed": 0, "progress": False}  # fit's defaults otherwise
    assert list(row["deterministic"]) == ["probabilistic", "scaled"]
    x, y = bd.data.load("digits").images("test")[:64], bd.data.load("digits").test.y[:64]
    for rule, got in row["deterministic"].items():
        with E.pool_test_rule(model, rule):
            want = E.scores(bd.predict(model, guide, x, rule="weight-scaling"), y)
        assert got == pytest.approx({"error": want["error"], "nll": want["nll"]}, rel=1e-6)
    assert row["deterministic"]["probabilistic"]["nll"] != row["deterministic"]["scaled"]["nll"]
    assert [m.method.test_rule for m in model.modules() if isinstance(m, bd.nn.MaxPool2d)] == ["probabilistic"] * 2
    other = E.one_run("standard", 0, dataset="digits", **SMALL)
    assert list(other["deterministic"]) == ["weight-scaling"] and len(trained) == 2


def test_scores_are_error_nll_and_ece():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    y = torch.tensor([0, 1, 1, 0])
    s = E.scores(probs, y)
    assert s["error"] == pytest.approx(25.0)
    assert s["nll"] == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.5)) / 4)
    assert s["ece"] == pytest.approx(bd.diagnostics.expected_calibration_error(probs, y))


_CELL = re.compile(r"^(-?\d+\.\d+) ± (\d+\.\d+)$")


def _table(section: str) -> dict[str, list[str]]:
    """Configuration -> cells of a section's table."""
    rows = [line.strip("|").strip().split(" | ") for line in section.splitlines() if line.startswith("| ")]
    assert rows[0][0] == "configuration"
    return {r[0].strip(): [c.strip() for c in r[1:]] for r in rows[1:]}


def test_the_record_has_one_row_per_configuration_with_finite_numbers(capsys):
    rows = E.run(E.CONFIGS, 2, dataset="digits", **SMALL)
    printed = capsys.readouterr().out
    assert printed.count("\n") == 18 and "[18/18] digits cutout+spatial seed 1" in printed
    assert [(r["config"], r["seed"]) for r in rows] == [(c, s) for c in E.CONFIGS for s in (0, 1)]
    section = E.markdown(rows, "python benchmarks/cnn_dropout.py --seeds 2")
    assert section.startswith("## digits: LeNet-5 3-4-8, 1 epochs\n")
    assert "`python benchmarks/cnn_dropout.py --seeds 2`" in section and "torch " in section
    assert "(128 / 64)" in section and "p = 0.2 on the 64 inputs" in section and "4 x 4 square" in section
    table = _table(section)
    labels = [c for c in E.CONFIGS if c != "maxpool-dropout"]
    labels[3:3] = ["maxpool-dropout (probabilistic)", "maxpool-dropout (scaled)"]
    assert list(table) == labels
    for cells in table.values():
        assert cells[0] == "2" and len(cells) == 7
        for cell in cells[1:]:
            mean, sd = map(float, _CELL.match(cell).groups())
            assert math.isfinite(mean) and math.isfinite(sd) and sd >= 0
    prob, scaled = table["maxpool-dropout (probabilistic)"], table["maxpool-dropout (scaled)"]
    assert prob[1:4] == scaled[1:4] and prob[6] == scaled[6]  # the same runs: MC and time shared
    assert prob[5] != scaled[5]  # deterministic NLL: the rules differ
    none = table["none"]
    assert none[1] == none[4] and none[2] == none[5]  # no noise: MC and deterministic agree
    # the record: a second data set's section is added in order, a rerun replaces its own section
    other = E.markdown(E.run(["standard", "cutout"], 1, dataset="mnist1d", progress=False, **SMALL), "second")
    record = E.merge(E.merge(None, other), section)
    assert record.startswith(E.TITLE) and record.count("\n## ") == 2
    assert record.index("## digits:") < record.index("## mnist1d:") and "no noise on the 40 inputs" in record
    assert "segment of 10 of the 40 samples" in record
    again = E.merge(record, section.replace("--seeds 2", "--seeds 3"))
    assert again.count("\n## ") == 2 and "--seeds 3" in again and "--seeds 2`" not in again and other in again


def test_worker_processes_give_the_runs_of_one_process():
    """``jobs=2``: the same rows, in the same order, as in-process (each run seeds itself)."""
    configs = ["maxpool-dropout", "cutout"]
    serial = E.run(configs, 1, dataset="digits", progress=False, **SMALL)
    parallel = E.run(configs, 1, dataset="digits", jobs=2, progress=False, **SMALL)
    assert [r["config"] for r in parallel] == configs and "(1 threads" in parallel[0]["device"]
    for a, b in zip(serial, parallel):
        assert a["mc"] == pytest.approx(b["mc"], rel=1e-4, abs=1e-6)
        for rule in a["deterministic"]:
            assert a["deterministic"][rule] == pytest.approx(b["deterministic"][rule], rel=1e-4, abs=1e-6)


def test_bad_arguments_are_refused(capsys, tmp_path):
    with pytest.raises(ValueError, match="`config` must be one of"):
        E.network("dropblock", (1, 8, 8))
    with pytest.raises(ValueError, match="`configs` must be a non-empty list of"):
        E.run(["none", "dropblock"], 1, 1)
    with pytest.raises(ValueError, match="`configs` must be a non-empty list of"):
        E.run("none", 1, 1)  # a string, not a list of names
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        E.run(["none"], 1, 1, dataset="cifar10")
    with pytest.raises(ValueError, match="`seeds` must be a positive int"):
        E.run(["none"], 0, 1)
    with pytest.raises(ValueError, match="needs `--mnist-dir`"):
        E.run(["none"], 1, 1, dataset="mnist")
    with pytest.raises(FileNotFoundError):
        E.run(["none"], 1, 1, dataset="mnist", mnist_dir=tmp_path / "missing")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        E.main(["--configs", "dropblock", "--out", str(tmp_path / "x.md")])
    assert "invalid choice: 'dropblock'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        E.main(["--dataset", "mnist", "--out", str(tmp_path / "x.md")])
    assert "--dataset mnist needs --mnist-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        E.main(["--jobs", "0", "--out", str(tmp_path / "x.md")])
    assert "--jobs must be positive" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


def test_main_runs_mnist_from_idx_files(tmp_path):
    """``--dataset mnist --mnist-dir DIR`` on tiny 28 x 28 IDX files: the record's MNIST section (no padding at
    28 x 28), the command quoted without ``--out``."""
    _write_mnist(tmp_path)
    out = tmp_path / "cnn.md"
    argv = ["--dataset", "mnist", "--mnist-dir", str(tmp_path), "--configs", "none", "maxpool-dropout", "cutout"]
    argv += ["--seeds", "1", "--epochs", "1", "--jobs", "1", "--eval-samples", "3", "--channels", "3", "4"]
    argv += ["--hidden", "8", "--out", str(out)]
    assert E.main(argv) == 0
    text = out.read_text()
    assert text.startswith(E.TITLE) and "## mnist: LeNet-5 3-4-8, 1 epochs" in text
    assert "(24 / 12)" in text and "images (1, 28, 28): 5 x 5 convolutions (padding none)" in text
    assert "--mnist-dir" in text and str(out) not in text and "14 x 14 square" in text
    assert list(_table(text)) == ["none", "maxpool-dropout (probabilistic)", "maxpool-dropout (scaled)", "cutout"]
