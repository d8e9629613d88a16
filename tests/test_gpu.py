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


def test_auto_prediction_is_vectorised_in_passes_that_fit_the_device():
    """``parallel="auto"`` on CUDA: passes of as many networks as fit an eighth of the device's memory (all 50 for
    a tiny network), the same count for the same batch; the probes leave the random stream alone; and
    the prediction is a distribution over the classes."""
    from bayesdrop.infer.predict import auto_parallel

    model, guide, x, y = tiny_classifier("bernoulli", device="cuda")
    guide(x, y)
    state = torch.cuda.get_rng_state()
    assert auto_parallel(model, guide, x, 50) == 50 == auto_parallel(model, guide, x, 50)
    assert torch.equal(torch.cuda.get_rng_state(), state)  # the probes ran on a fork
    probs = bd.predict(model, guide, x, num_samples=50)
    assert probs.device.type == "cuda" and torch.allclose(probs.sum(-1), torch.ones(len(x), device="cuda"))


@pytest.mark.parametrize("method", ["bernoulli", "vd", "standout"])
def test_a_cuda_prediction_is_the_same_however_the_networks_are_grouped(method):
    """Each network draws from its own stream of the CUDA generator (:class:`bayesdrop.handlers.NetworkStreams`):
    one seed gives the same class probabilities in one pass per network, in passes of 7 and all at once (to
    float32 round-off, which may differ between the kernels of a folded and an unfolded batch)."""
    model, guide, x, y = tiny_classifier(method, device="cuda")
    guide(x, y)
    probs = {}
    for parallel in (False, 7, True):
        torch.manual_seed(3)
        probs[parallel] = bd.predict(model, guide, x, num_samples=20, parallel=parallel)
    for parallel in (7, True):
        torch.testing.assert_close(probs[parallel], probs[False], rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["bernoulli", "sparse-vd", "vbd"])
def test_the_compiled_loss_trains_on_cuda_as_the_eager_one(method):
    """On CUDA too, ``fit``'s compiled loss (recorded on a fork of the CUDA generator) takes the eager run's draws:
    the same history to the float32 rounding of the KL weight, and the generator left where the eager run leaves
    it.  (Untested on a GPU so far: no GPU was lent since the compiled loss was written.)"""
    runs = []
    for jit in (False, None):
        torch.manual_seed(0)
        model, guide, x, y = tiny_classifier(method, n=50, hidden=(16,), device="cuda")
        res = bd.fit(model, guide, (x, y), epochs=3, batch_size=16, device="cuda", progress=False, jit=jit)
        runs.append((res, torch.cuda.get_rng_state()))
    (eager, eager_state), (compiled, compiled_state) = runs
    assert compiled.compiled and not eager.compiled
    for key in ("elbo", "nll", "train_acc"):
        assert compiled.history[key] == pytest.approx(eager.history[key], rel=1e-5, abs=1e-6), key
    assert torch.equal(compiled_state, eager_state)


def test_a_seeded_evaluation_leaves_the_other_devices_generators_alone():
    """``seed=`` runs on a fork of the generators of the CPU and of the model's device, and seeds those alone:
    ``torch.manual_seed`` reseeded every GPU's generator outside the fork, for good.  A CPU model's seeded
    evaluation leaves the CUDA stream where it was, and a CUDA model's the CPU stream; the same seed gives the
    same metrics."""
    model, guide, x, y = tiny_classifier("bernoulli")
    torch.rand(3, device="cuda")  # CUDA's generator in use, not at its seed
    cuda_state = torch.cuda.get_rng_state()
    first = bd.evaluate(model, guide, (x, y), num_samples=5, seed=3)
    assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
    assert bd.evaluate(model, guide, (x, y), num_samples=5, seed=3) == first
    model_c, guide_c, x_c, y_c = tiny_classifier("bernoulli", device="cuda")
    cpu_state = torch.get_rng_state()
    first_c = bd.evaluate(model_c, guide_c, (x_c, y_c), num_samples=5, seed=3)
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert bd.evaluate(model_c, guide_c, (x_c, y_c), num_samples=5, seed=3) == first_c
