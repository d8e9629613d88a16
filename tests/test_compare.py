"""`bayesdrop compare`: every method on one budget, one table."""

from __future__ import annotations

import json

import pytest
import torch

import bayesdrop as bd
from bayesdrop import cli
from bayesdrop.experiments import compare


def test_expected_calibration_error_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    y = torch.tensor([0, 1, 1])
    # bins of width 1/15: |1 - 0.9|, |0 - 0.6|, |1 - 0.8| each with weight 1/3
    assert bd.diagnostics.expected_calibration_error(probs, y) == pytest.approx((0.1 + 0.6 + 0.2) / 3, abs=1e-6)
    with pytest.raises(ValueError, match="`probs`"):
        bd.diagnostics.expected_calibration_error(probs[0], y)


def test_compare_cli_prints_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--methods",
        "bernoulli",
        "gaussian",
        "--arch",
        "mlp:32",
        "--epochs",
        "3",
        "--lr",
        "1e-2",
        "--num-samples",
        "5",
        "--out",
        str(out),
        "--quiet",
    ]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    assert "| bernoulli |" in text and "| gaussian |" in text and "ECE" in text
    rows = json.loads((out / "compare.json").read_text())
    assert [r["method"] for r in rows] == ["bernoulli", "gaussian"]
    for r in rows:
        assert 0 <= r["test error %"] < 50  # 3 epochs on digits already beat chance (90 % error) by far
        assert 0 <= r["ECE"] <= 1 and r["NLL"] > 0 and r["s/epoch"] > 0
        assert r["|W|/|W≠0|"] == pytest.approx(1.0)  # fixed-rate methods prune nothing
    assert rows[0]["mean keep"] == pytest.approx((64 * 0.8 + 32 * 0.5) / 96)  # mlp's defaults: p = 0.2 / 0.5
    # az.compare on PSIS-LOO of the training data: ranks 0 and 1, the best at a difference of 0
    assert sorted(r["loo_rank"] for r in rows) == [0, 1]
    best, other = sorted(rows, key=lambda r: r["loo_rank"])
    assert best["Δelpd_loo"] == 0 and other["Δelpd_loo"] == pytest.approx(best["elpd_loo"] - other["elpd_loo"])
    assert other["dse"] > 0 and all(r["elpd_loo_se"] > 0 and r["p_loo"] > 0 for r in rows)
    for r in rows:  # out-of-distribution detection of uniform noise
        assert 0 <= r["AUROC MI"] <= 1 and 0 <= r["AUROC H"] <= 1 and 0 <= r["FPR95 MI"] <= 1
    assert "(rank 0)" in text and "AUROC MI" in text and "uniform noise" in text
    assert (out / "compare.md").read_text().count("\n| ") == 3


def test_compare_rejects_unknown_methods_before_training():
    with pytest.raises(ValueError, match="unknown method"):
        compare.compare("digits", ["bernoulli", "nope"], epochs=1, progress=False)


def test_compare_warms_up_the_kl_so_per_weight_methods_do_not_collapse():
    """The methods' own KL warm-up (``kl_warmup="auto"``): sparse-vd and vbd learn and prune instead of being
    pruned before the likelihood fits (without warm-up, at the demo's 300-100 width and 30 epochs, they fell to
    chance, 90 % error)."""
    rows = compare.compare(
        "digits", ["sparse-vd", "vbd"], arch="mlp:50", epochs=12, lr=1e-2, num_samples=10, progress=False
    )
    for r in rows:
        assert r["test error %"] < 10, r
        assert r["|W|/|W≠0|"] > 3, r  # and they still sparsify


def test_compare_does_not_depend_on_the_global_random_state():
    """The first method's initial weights are seeded too (they were drawn from the process's random state)."""
    runs = []
    for state in (1, 2):
        torch.manual_seed(state)
        rows = compare.compare("digits", ["bernoulli"], arch="mlp:16", epochs=1, num_samples=5, progress=False)
        runs.append((rows[0]["NLL"], rows[0]["test error %"]))
    assert runs[0] == runs[1]


def test_compare_keeps_each_methods_run_for_report_and_prune(tmp_path, capsys):
    """``compare --out DIR`` keeps ``DIR/runs/<method>/`` with the files ``train`` writes, and ``report`` and
    ``prune`` run on it; a second compare replaces the runs, and a folder there that is not a run is refused."""
    out = tmp_path / "cmp"
    args = ["compare", "--methods", "bernoulli", "--arch", "mlp:16", "--epochs", "2", "--num-samples", "5"]
    assert cli.main([*args, "--out", str(out), "--quiet"]) == 0
    run = out / "runs" / "bernoulli"
    for f in ("config.json", "checkpoint.pt", "history.json", "metrics.json", "complete.json"):
        assert (run / f).stat().st_size > 0, f
    assert f"{out / 'runs'}/<method>" in capsys.readouterr().out
    ds, model, guide, config = cli.load_run(run)
    assert (config["method"], config["arch"], config["epochs"], config["lr"]) == ("bernoulli", "mlp:16", 2, 1e-2)
    row = json.loads((out / "compare.json").read_text())[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["acc"] == pytest.approx(1 - row["test error %"] / 100) and metrics["nll"] == row["NLL"]
    assert len(json.loads((run / "history.json").read_text())["elbo"]) == 2

    assert cli.main(["report", str(run), "--num-samples", "5", "--ood-points", "20"]) == 0
    assert (run / "report.md").is_file() and (run / "inference_data.nc").is_file()
    assert cli.main(["prune", str(run)]) == 0
    assert (run / "compression.md").is_file() and (run / "pruned.pt2").is_file()
    capsys.readouterr()

    assert cli.main([*args, "--out", str(out), "--quiet"]) == 0  # replaces the run (its report files too)
    assert not (run / "report.md").exists() and (run / "complete.json").is_file()
    (out / "runs" / "gaussian").mkdir()
    (out / "runs" / "gaussian" / "notes.txt").write_text("mine")
    assert cli.main([*args[:2], "gaussian", *args[3:], "--out", str(out), "--quiet"]) == 2
    assert "is not empty and holds files a comparison does not write" in capsys.readouterr().err
    assert (out / "runs" / "gaussian" / "notes.txt").read_text() == "mine"


def test_compare_checks_every_method_before_training_any(monkeypatch):
    """A method named twice, or one the architecture has no place for, is refused before the first method trains."""

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking every method")

    monkeypatch.setattr(compare, "fit", no_training)
    with pytest.raises(ValueError, match=r"`method_names` names 'bernoulli' more than once"):
        compare.compare("digits", ["bernoulli", "gaussian", "bernoulli"], epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"`--method` 'max-drop' acts in pooling layers: use `--arch lenet5`"):
        compare.compare("digits", ["bernoulli", "max-drop"], epochs=1, progress=False)
