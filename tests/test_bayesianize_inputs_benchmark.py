"""bayesdrop.experiments.bayesianize_inputs (benchmarks/bayesianize_inputs.py): a small run of the record (the full
record: benchmarks/results/bayesianize_inputs.md)."""

from __future__ import annotations

import pytest

from bayesdrop.experiments import bayesianize_inputs as BI


def test_a_converted_mlp_trains_as_bd_models_and_the_old_default_does_not(tmp_path):
    """Two epochs: the converted MLP with the input rule gives bd.models.mlp's test figures exactly (same methods,
    same initial weights, same draws); with the method on the pixels too (the old default) the first layer's rate
    and the figures differ; an unknown arm is refused."""
    out = tmp_path / "bi.md"
    rows = BI.main(["--methods", "bernoulli", "--epochs", "2", "--num-samples", "4", "--out", str(out)])
    by_arm = {r["arm"]: r for r in rows}
    assert list(by_arm) == list(BI.ARMS)
    models, rule, method = (by_arm[a] for a in BI.ARMS)
    assert (rule["error"], rule["nll"]) == (models["error"], models["nll"])
    assert rule["first layer"] == "bernoulli (p=0.2)" and method["first layer"] == "bernoulli (p=0.5)"
    assert method["nll"] != models["nll"]
    text = out.read_text()
    assert "| bernoulli | `input_method=method` | bernoulli (p=0.5) |" in text
    with pytest.raises(ValueError, match="`arm` must be one of"):
        BI.run_one("bernoulli", "old")
