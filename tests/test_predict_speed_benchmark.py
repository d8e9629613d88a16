"""bayesdrop.experiments.predict_speed (benchmarks/predict_speed.py): every configuration builds and predicts both
ways, and the record has a row per configuration with the ratio of the two medians."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bayesdrop.experiments import predict_speed


@pytest.mark.parametrize("config", predict_speed.CONFIGS, ids=lambda c: f"{c.arch}-{c.method}")
def test_every_configuration_builds(config):
    model, guide, x, width = predict_speed.build(dataclasses.replace(config, num_inputs=4))
    assert len(x) == 4 and width > 0
    assert model(x).shape == (4, 10)


def test_measure_reports_the_ratio_of_the_medians(monkeypatch, tmp_path):
    small = [dataclasses.replace(c, samples=3, batch_size=4, num_inputs=8) for c in predict_speed.CONFIGS[:2]]
    row = predict_speed.measure(small[1], torch.device("cpu"), repeats=2)
    assert row["ratio"] == pytest.approx(row["looped"] / row["vectorised"])
    assert row["auto"] > 0 and row["auto_per_pass"] == 0  # on a CPU the default is one pass per network
    assert row["weights_mib"] > 0 and row["activations_mib"] == pytest.approx(3 * 4 * 300 * 4 / 2**20)
    monkeypatch.setattr(predict_speed, "CONFIGS", small)
    out = tmp_path / "predict_speed.md"
    assert predict_speed.main(["--repeats", "1", "--out", str(out)]) == 0
    table = [line for line in out.read_text().splitlines() if line.startswith("| digits")]
    assert len(table) == 4 and all(line.count("|") == 12 and "(one)" in line for line in table[:2])
    assert all(line.count("|") == 9 for line in table[2:])  # the weight-scaling rows
    scaled = predict_speed.measure_weight_scaling(small[0], torch.device("cpu"), repeats=2)
    assert scaled["ratio"] == pytest.approx(scaled["bd"] / scaled["plain"]) and scaled["plain"] > 0
    with pytest.raises(SystemExit):
        predict_speed.main(["--repeats", "0", "--out", str(out)])
