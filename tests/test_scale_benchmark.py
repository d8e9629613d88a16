"""bayesdrop.experiments.scale (benchmarks/scale.py): the synthetic data, the epoch timer and the memory probe.
The distributed runs themselves are checked in ``test_lightning.py``."""

from __future__ import annotations

import pytest
import torch

from bayesdrop.experiments import scale


def test_synthetic_data_is_balanced_and_learnable():
    x, y = scale.synthetic(4000)
    assert x.shape == (4000, 20) and y.dtype == torch.int64
    assert 0.4 < y.float().mean() < 0.6  # the sign of a linear function of Gaussian inputs
    torch.testing.assert_close(scale.synthetic(4000)[0], x)  # seeded


def test_epoch_time_reports_time_per_example():
    row = scale.epoch_time(2048)
    assert row["seconds"] > 0 and row["us_per_example"] == pytest.approx(row["seconds"] / 2048 * 1e6)


def test_predict_memory_runs_a_fresh_process():
    row = scale.predict_memory(200, 50)
    assert row["shape"] == [200, 10] and row["peak_mib"] >= row["before_mib"] > 0


@pytest.mark.slow  # a fresh process importing torch and ArviZ
def test_inference_data_memory_runs_a_fresh_process():
    row = scale.predict_memory(200, 50, "inference_data")  # the probs of 100 draws in the InferenceData
    assert row["shape"] == [1, 100, 200, 10] and row["peak_mib"] >= row["before_mib"] > 0


def test_arguments_are_checked():
    with pytest.raises(SystemExit):
        scale.main(["--max-n", "0"])
