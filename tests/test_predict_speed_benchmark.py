"""bayesdrop.experiments.predict_speed (benchmarks/predict_speed.py): every configuration builds and predicts both
ways, and the record has a row per configuration with the ratio of the two medians."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

import bayesdrop as bd
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
    assert row["floor"][1] in ("sequential", "vectorised") and row["floor"][0] > 0
    assert row["weights_mib"] > 0 and row["activations_mib"] == pytest.approx(3 * 4 * 300 * 4 / 2**20)
    monkeypatch.setattr(predict_speed, "CONFIGS", small)
    out = tmp_path / "predict_speed.md"
    assert predict_speed.main(["--repeats", "1", "--out", str(out)]) == 0
    table = [line for line in out.read_text().splitlines() if line.startswith("| digits")]
    assert all(line.count("|") == 14 and "(one)" in line for line in table[:2])
    assert len(table) == 6 and all(line.count("|") == 9 for line in table[4:])  # the weight-scaling rows
    assert all(line.count("|") == 8 for line in table[2:4])  # networks per pass: 1, k = 2 (< S = 3), all S
    swept = predict_speed.measure_per_pass(small[0], torch.device("cpu"), repeats=1, per_pass=(2, 5))
    assert set(swept["seconds"]) == {1, 2, 3} and min(swept["seconds"].values()) > 0
    scaled = predict_speed.measure_weight_scaling(small[0], torch.device("cpu"), repeats=2)
    assert scaled["ratio"] == pytest.approx(scaled["bd"] / scaled["plain"]) and scaled["plain"] > 0
    assert predict_speed.main(["--repeats", "1", "--parts", "weight-scaling", "--out", str(out)]) == 0
    text = out.read_text()
    assert "## The deterministic rule" in text and "## Networks per pass" not in text and "| hand-written s" not in text
    with pytest.raises(SystemExit):
        predict_speed.main(["--repeats", "0", "--out", str(out)])
    with pytest.raises(SystemExit):
        predict_speed.main(["--parts", "sweep", "--out", str(out)])


@pytest.mark.parametrize("method", ["bernoulli", "sparse-vd"])
def test_the_hand_written_loops_compute_the_predictive_of_bd(method):
    """The floors of the MC rows draw from bd's law: over 4000 networks each, their class probabilities and
    ``bd.predict``'s agree within 5 Monte Carlo standard errors (sd of a probability at most 0.5, so 5 * 0.5 /
    sqrt(4000) < 0.04, with room for the two estimates' independent errors: 0.06)."""
    config = dataclasses.replace(
        next(c for c in predict_speed.CONFIGS if c.method == method and c.dataset == "digits"), num_inputs=6
    )
    model, guide, x, _ = predict_speed.build(config)
    floors = predict_speed.hand_written(model, guide, x)
    assert floors is not None and set(floors) == {"sequential", "vectorised"}
    ref = bd.predict(model, guide, x, num_samples=4000, parallel=True)
    with torch.no_grad():
        for fn in floors.values():
            probs = fn(x, 4000, 3)
            assert probs.shape == ref.shape and (probs - ref).abs().max() < 0.06
    lstm = next(c for c in predict_speed.CONFIGS if c.arch == "lstm")
    model, guide, x, _ = predict_speed.build(dataclasses.replace(lstm, num_inputs=2))
    assert predict_speed.hand_written(model, guide, x) is None


def test_alternate_times_a_loop_of_calls_and_reports_one_call():
    counts = {"a": 0, "b": 0}

    def run(key):
        counts[key] += 1

    times = predict_speed._alternate(
        {k: functools.partial(run, k) for k in counts}, repeats=3, device=torch.device("cpu"), calls=7
    )
    assert counts == {"a": 28, "b": 28}  # a warm-up and 3 timings, 7 calls each
    assert set(times) == {"a", "b"} and all(0 < t < 1e-3 for t in times.values())
