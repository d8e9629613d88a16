"""bayesdrop.experiments.compression (benchmarks/compression.py): the structure of what it writes (fast) and the
digits claims (slow)."""

from __future__ import annotations

import itertools

import pytest
import torch

import bayesdrop as bd
from bayesdrop.experiments import compression


@pytest.fixture
def one_thread():
    """The benchmark runs single-threaded (``--threads 1``); restore the suite's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    assert set(lines[1].strip("|").split("|")) == {"---"}
    return [dict(zip(header, (c.strip() for c in line.strip("|").split(" | ")))) for line in lines[2:]]


@pytest.mark.slow  # 12-26 s; test_dense_mean_network_is_the_unpruned_mean_network keeps the protocol's core fast
def test_main_writes_a_row_per_method_and_dataset(tmp_path, one_thread):
    out = tmp_path / "compression.md"
    argv = ["--datasets", "digits", "mnist1d", "--epochs", "1", "--kl-warmup", "10", "--max-train", "256"]
    results = compression.main([*argv, "--repeats", "1", "--out", str(out)])
    text = out.read_text()
    assert "python benchmarks/compression.py --datasets digits mnist1d --epochs 1" in text
    rows = _table(text)
    labels = [m.label for m in compression.METHODS.values()]
    expected = set(itertools.product(["digits", "mnist1d"], compression.ARCHS, labels))
    assert [(r["data"], r["network"], r["method"]) for r in rows] == [(r.dataset, r.arch, r.label) for r in results]
    assert {(r["data"], r["network"], r["method"]) for r in rows} == expected and len(rows) == len(expected)

    datasets = {name: bd.data.load(name) for name in ("digits", "mnist1d")}
    checked = 0
    for row, res in zip(rows, results):
        spec = compression.METHODS[res.method]
        rep = bd.compress.report(res.model, res.guide, threshold=spec.threshold)
        kept, dense = (int(v) for v in row["params"].split(" / "))
        assert kept == sum(p.numel() for p in res.pruned.parameters())
        if not res.collapsed:  # (a collapsed Conv2d keeps one zero-read channel in the module, not in the report)
            assert kept == rep.params_pruned
        assert dense == rep.params_dense
        assert row["architecture"].split(" ")[0] == rep.architecture
        assert float(row[r"\|W\|/\|W≠0\|"]) == pytest.approx(rep.ratio, abs=0.051)
        assert row["per-layer sparsity %"].count("/") == len(rep.layers) - 1
        widths = [int(v) for v in rep.architecture.split("-")]
        assert row["hidden units"] == f"{sum(widths[1:-1])}/{res.hidden_total}"
        assert res.hidden_total == (400 if res.arch == "mlp" else 570)
        dense_row = next(r for r in rows if (r["data"], r["network"]) == (row["data"], row["network"]))
        assert dense_row["method"].startswith("dense")
        delta = float(row["acc pruned"]) - float(dense_row["acc pruned"])
        assert float(row["Δ vs dense"]) == pytest.approx(delta, abs=0.011)
        test = compression.inputs(datasets[res.dataset], res.arch, datasets[res.dataset].test)
        with torch.no_grad():
            out_pruned = res.pruned(test.x)
            masked = res.guide.mean_network(pruned=True, threshold=spec.threshold)(test.x)
            mean = res.guide.mean_network()(test.x)
        assert torch.allclose(out_pruned, masked, atol=1e-5, rtol=0)
        acc = (out_pruned.argmax(-1) == test.y).float().mean().item()
        assert float(row["acc pruned"]) == pytest.approx(100 * acc, abs=0.006)
        assert float(row["acc mean"]) == pytest.approx(
            100 * (mean.argmax(-1) == test.y).float().mean().item(), abs=0.006
        )
        if res.collapsed:  # a layer lost every unit: marked, no timing
            assert "(collapsed)" in row["architecture"] and row["speed-up"] == "—"
            continue
        speed = float(row["dense ms"]) / float(row["pruned ms"])
        assert float(row["speed-up"].rstrip("x")) == pytest.approx(speed, rel=0.01, abs=0.006)
        checked += 1
    assert checked >= len(rows) // 2


def test_dense_mean_network_is_the_unpruned_mean_network(one_thread):
    ds = bd.data.load("digits")
    res = compression.train_one(ds, "lenet5", "sal", epochs=1, lr=1e-3, kl_warmup=10, max_train=128, repeats=0)
    dense = compression.dense_module(res.model, res.guide)
    x = compression.inputs(ds, "lenet5", ds.test).x[:50]
    with torch.no_grad():
        ref = res.guide.mean_network()(x)
    assert torch.allclose(dense(x), ref, atol=1e-5, rtol=0)
    assert sum(p.numel() for p in dense.parameters()) == res.params_dense == res.report.params_dense
    plain = [m for m in dense if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    bayes = [layer for _, layer in bd.nn.bayesian_layers(res.model.net)]
    assert len(dense) == len(res.model.net)
    assert [m.weight.shape for m in plain] == [b.weight_sites["weight"].shape for b in bayes]


@pytest.mark.slow
def test_vbd_compresses_the_digits_mlp_within_one_point_of_dense(one_thread):
    """The benchmark's claims at its digits budget (64-300-100-10 MLP, training seed 0; the compression protocol of
    Liu et al. 2019, Tables 4-5): ``vbd`` per weight reaches at least 20x compression within 1 point of the dense
    network; ``vbd`` per unit removes at least half of the hidden units within 1 point."""
    ds = bd.data.load("digits")
    epochs, lr = compression.BUDGETS[("digits", "mlp")]
    dense, weight, unit = (
        compression.train_one(ds, "mlp", m, epochs=epochs, lr=lr, repeats=0) for m in ("dense", "vbd", "vbd-unit")
    )
    print(
        f"\ndense {dense.acc_pruned:.4f}; vbd {weight.acc_pruned:.4f} at {weight.report.ratio:.1f}x; "
        f"vbd unit {unit.acc_pruned:.4f}, {unit.report.architecture}"
    )
    assert dense.report.ratio < 1.01 and dense.acc_pruned > 0.95
    assert weight.report.ratio >= 20
    assert weight.acc_pruned >= dense.acc_pruned - 0.01 - 1e-9
    assert unit.hidden_kept <= unit.hidden_total / 2 and unit.hidden_total == 400
    assert unit.acc_pruned >= dense.acc_pruned - 0.01 - 1e-9


@pytest.mark.slow
def test_sbp_keeps_fewer_than_half_the_hidden_units_within_one_point(one_thread):
    """Neklyudov et al. 2017 on the digits 64-300-100-10 MLP (the benchmark's budget), training seeds 0, 1, 2: on
    every seed ``sbp``'s pruned network keeps fewer than half of the 400 hidden units, within 1 point of the dense
    network of the same seed (recorded: ``benchmarks/results/compression_seeds.md``)."""
    ds = bd.data.load("digits")
    results = compression.run([ds], ["mlp"], ["dense", "sbp"], seeds=(0, 1, 2), repeats=0)
    for res in results:
        if res.method == "sbp":
            print(f"\nseed {res.seed}: dense {res.acc_dense:.4f}, sbp {res.acc_pruned:.4f}, {res.report.architecture}")
            assert res.hidden_kept < res.hidden_total / 2 and res.hidden_total == 400
            assert res.acc_pruned >= res.acc_dense - 0.01 - 1e-9
