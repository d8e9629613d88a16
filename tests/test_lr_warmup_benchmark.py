"""bayesdrop.experiments.lr_warmup (benchmarks/lr_warmup.py): the dead-unit count of the posterior-mean network, and
a small run of the record with both warm-ups and the floor (the full record: benchmarks/results/lr_warmup.md)."""

from __future__ import annotations

import re

import pytest
import torch

import bayesdrop as bd
from bayesdrop.experiments import lr_warmup as W


def test_dead_units_counts_the_first_layers_units_never_active():
    """Units 0-2 of the first layer have weights -1 and bias -1 on positive inputs (never active), units 3-5
    weights +1 (always active): half the layer is dead, whatever the second layer."""
    model = bd.Classifier(bd.models.mlp(4, [6], 3, "bernoulli"), num_data=10)
    guide = bd.DropoutGuide(model)
    x = torch.rand(20, 4) + 0.1
    guide(x)
    (_, first, params), *_ = guide.pairs()
    with torch.no_grad():
        params.weight.copy_(torch.cat([-torch.ones(3, 4), torch.ones(3, 4)]))
        first.bias.copy_(torch.tensor([-1.0, -1.0, -1.0, 0.0, 0.0, 0.0]))
    assert W.dead_units(model, guide, x) == pytest.approx(50.0)
    with torch.no_grad():
        params.weight.fill_(1.0)
    assert W.dead_units(model, guide, x) == 0.0


def test_a_small_record_has_both_warm_ups_and_the_floor(tmp_path):
    """Digits, 5 epochs (60 steps: a tenth is 6, and ``auto`` none on 64 inputs): one row per warm-up and the floor;
    the warm-up changes the trained network (the NLLs differ); a bad option is refused before any training."""
    out = tmp_path / "lr_warmup.md"
    rows = W.main(
        ["--datasets", "digits", "--methods", "bernoulli", "--seeds", "1", "--epochs", "5", "--jobs", "1",
         "--out", str(out)]
    )  # fmt: skip
    assert [(r["method"], r["arm"]) for r in rows] == [("bernoulli", 6), ("bernoulli", 0), ("floor", 0)]
    assert rows[0]["nll"] != rows[1]["nll"] and all(0 <= r["error"] <= 100 for r in rows)
    text = out.read_text()
    assert "## digits: MLP 300-100, 5 epochs (60 steps, a tenth 6; `auto` warms up over 0)" in text
    assert len(re.findall(r"^\| bernoulli \| `(6|0)` \|", text, flags=re.M)) == 2
    with pytest.raises(SystemExit):
        W.main(["--methods", "maxpool-dropout", "--out", str(tmp_path / "no.md")])
    assert not (tmp_path / "no.md").exists()
