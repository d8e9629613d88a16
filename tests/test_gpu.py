"""CUDA checks (``pytest -m gpu``); skipped without a GPU."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_classifier

import bayesdrop as bd

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("method", bd.methods.names())
def test_training_and_prediction_stay_on_cuda(method):
    model, guide, x, y = tiny_classifier(method, device="cuda")
    res = bd.fit(model, guide, (x, y), epochs=2, batch_size=10, device="cuda", progress=False)
    assert res.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in [*model.parameters(), *guide.parameters()])
    probs = bd.predict(model, guide, x, num_samples=5)
    assert probs.device.type == "cuda"
    assert torch.isfinite(probs).all()


def test_auto_device_picks_cuda():
    assert bd.infer.resolve_device("auto").type == "cuda"
