"""Shared fixtures: every test is seeded, starts from an empty param store and
runs with Pyro validation and with Python's own SIGINT handler (also when the
suite runs as a background job, whose SIGINT is ignored); ``BAYESDROP_DEVICE``
selects the device so the same suite re-runs on CUDA
(``BAYESDROP_DEVICE=cuda pytest -m "gpu or not gpu"``)."""

from __future__ import annotations

import os
import signal

import matplotlib
import pyro
import pytest
import torch

matplotlib.use("Agg")
# One thread per pytest-xdist worker (make test runs two on two cores), two for a serial run.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


def _device() -> torch.device:
    return torch.device(os.environ.get("BAYESDROP_DEVICE", "cpu"))


@pytest.fixture(autouse=True)
def _terminal_sigint():
    """SIGINT as in a terminal (``KeyboardInterrupt``), whatever the suite's parent did: the tests that interrupt
    training send it to themselves or to the commands they start."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(autouse=True)
def _seeded_pyro():
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    pyro.enable_validation(True)
    yield
    pyro.enable_validation(False)


@pytest.fixture
def device() -> torch.device:
    """The device under test (``BAYESDROP_DEVICE``, default CPU)."""
    dev = _device()
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("BAYESDROP_DEVICE=cuda but CUDA is not available")
    return dev


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
