"""bayesdrop.experiments.sparse_vs_bernoulli (benchmarks/sparse_vs_bernoulli.py): the claim that sparse VD
(Molchanov et al. 2017) and VBD (Liu et al. 2019) match Bernoulli dropout's accuracy while pruning most weights
(slow), and what the script computes and writes (fast)."""

from __future__ import annotations

import math

import pytest
import torch

import bayesdrop as bd
from bayesdrop.experiments import sparse_vs_bernoulli as svb


def test_sparsity_counts_weights_above_log_alpha_3():
    """With log sigma^2 set so that log alpha = 5 on a known set of weights (and -5 elsewhere), the reported
    fraction is exactly that set's share of all weights."""
    model = bd.Classifier(bd.models.mlp(6, [5], 3, "sparse-vd"), num_data=10)
    guide = bd.DropoutGuide(model)
    guide(torch.zeros(2, 6))
    total = high = 0
    with torch.no_grad():
        for _, layer, g in guide.pairs():
            g.weight.fill_(0.5)
            shape = layer.weight_sites["weight"].shape
            mask = torch.rand(shape, generator=torch.Generator().manual_seed(total)) < 0.3
            g.log_sigma2.copy_(math.log(0.25) + torch.where(mask, 5.0, -5.0))
            total, high = total + mask.numel(), high + int(mask.sum())
    assert svb.sparsity(model, guide) == pytest.approx(high / total, abs=1e-7)


def test_summary_gaps_and_the_written_claim():
    """Gaps are Bernoulli's mean MC accuracy minus the method's, in points; "met" needs both gaps <= 1 and every
    run >= 90 % sparse."""
    rows = [
        {"method": "bernoulli", "mc": 0.98, "pruned": 0.97, "sparsity": math.nan},
        {"method": "bernoulli", "mc": 0.96, "pruned": 0.97, "sparsity": math.nan},
        {"method": "vbd", "mc": 0.965, "pruned": 0.962, "sparsity": 0.95},
        {"method": "vbd", "mc": 0.965, "pruned": 0.962, "sparsity": 0.92},
        {"method": "sparse-vd", "mc": 0.975, "pruned": 0.975, "sparsity": 0.89},
    ]
    for i, r in enumerate(rows):
        r.update(split=0, seed=i, s=1.0)
    summ = svb.summary(rows)
    assert summ["bernoulli"]["mc"] == pytest.approx(0.97)
    assert summ["vbd"]["gap_mc"] == pytest.approx(0.5) and summ["vbd"]["gap_pruned"] == pytest.approx(0.8)
    assert summ["vbd"]["min_sparsity"] == 0.92
    text = svb.markdown(rows, "python benchmarks/sparse_vs_bernoulli.py")
    head = text.split("Runs (")[0]  # the summary table, before the per-run table
    lines = {line.split(" | ")[0].strip("| "): line for line in head.splitlines() if line.startswith("| ")}
    assert lines["vbd"].endswith("| met |") and "+0.50 | +0.80 | 92.00" in lines["vbd"]
    assert lines["sparse-vd"].endswith("| not met |")  # accurate enough, but one run only 89 % sparse


def test_main_runs_the_protocol_and_writes_the_table(tmp_path):
    out = tmp_path / "svb.md"
    rows = svb.main(
        ["--methods", "bernoulli", "vbd", "--splits", "1", "--seeds", "1", "--epochs", "2", "--out", str(out)]
    )
    assert [(r["method"], r["split"], r["seed"]) for r in rows] == [("bernoulli", 0, 0), ("vbd", 0, 0)]
    assert all(0.0 <= r["mc"] <= 1.0 for r in rows) and 0.0 <= rows[1]["sparsity"] <= 1.0
    text = out.read_text()
    assert "--epochs 2" in text and text.count("| vbd |") == 2  # summary row and run row


@pytest.mark.slow
def test_sparse_vd_and_vbd_match_bernoulli_and_prune_90_percent():
    """On the digits 64-300-100-10 MLP, ``sparse-vd`` and ``vbd`` come within 1 percentage point of
    Bernoulli dropout's accuracy (mean of 3 splits x 3 seeds, both the MC predictive and the pruned deterministic
    network) while every run has at least 90 % of its weights at log alpha > 3.  200 epochs at ``bd.fit``'s defaults
    (lr 1e-2 decayed linearly, each method's KL warm-up); the figures are in
    benchmarks/results/sparse_vs_bernoulli.md."""
    rows = svb.run(svb.METHODS, splits=3, seeds=3, epochs=200)
    summ = svb.summary(rows)
    print("\n" + svb.markdown(rows, "slow test"))
    for name in ("sparse-vd", "vbd"):
        s = summ[name]
        assert s["min_sparsity"] >= 0.90, (name, s)
        assert s["gap_mc"] <= 1.0 and s["gap_pruned"] <= 1.0, (name, s)
