"""Every tutorial runs at quick size (``BAYESDROP_QUICK=1``) and its figures are checked.

A tutorial writes ``NN_results.json`` into ``BAYESDROP_TUTORIAL_OUT``; ``CHECKS``
holds one function per tutorial asserting what its text claims.  A new
tutorial without checks fails ``test_every_tutorial_has_checks``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


def _check_01(r):
    relu = r["relu"]
    assert relu["std_beyond"] > 2 * relu["std_inside"]  # uncertainty grows away from the data
    assert 0.05 < relu["noise_scale"] < 0.3  # the data's noise is 0.1


def _check_04(r):
    assert r["accuracy"] > 0.8
    assert 0.05 < r["ece"] < 0.4  # MC dropout with p = 0.5 is under-confident on digits
    assert r["mean_confidence"] < r["accuracy"]
    assert r["entropy_wrong"] > r["entropy_correct"]
    assert r["mi_noise"] > 1.5 * r["mi_test"]  # epistemic uncertainty flags the noise images
    assert r["mi_auroc"] > 0.9
    assert isinstance(r["pareto_k_over_0.7"], int) and 0 <= r["pareto_k_over_0.7"] <= r["n_test"]
    assert r["lppd"] > r["elpd_loo"]
    assert 0.6 < r["coverage90_support"] <= 1
    assert r["coverage90_grid"] < r["coverage90_support"]  # MC dropout under-covers beyond the data
    assert r["coverage50_support"] < r["coverage80_support"] < r["coverage90_support"] <= r["coverage95_support"]
    assert r["std_outside"] > 1.5 * r["std_support"]
    assert r["netcdf_roundtrip"]


def _check_05(r):
    assert r["loss_last"] < r["loss_first"]
    assert r["aleatoric_edge"] > 1.5 * r["aleatoric_centre"]  # true noise: 0.05 + 0.15 |x|
    assert r["epistemic_outside"] > r["epistemic_inside"]


def _check_06(r):
    assert r["exact_max_error"] < 1e-6
    assert r["mc"]["50"]["nll"] < r["mc"]["1"]["nll"]
    assert r["weight_scaling"]["acc"] > 0.85


CHECKS = {"01": _check_01, "04": _check_04, "05": _check_05, "06": _check_06}


def test_every_tutorial_has_checks():
    assert TUTORIALS
    missing = [t.name for t in TUTORIALS if t.name[:2] not in CHECKS]
    assert not missing, f"tutorials without checks in tests/test_tutorials.py: {missing}"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs_and_its_figures_hold(path, tmp_path):
    env = {**os.environ, "BAYESDROP_QUICK": "1", "BAYESDROP_TUTORIAL_OUT": str(tmp_path), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pngs = list(tmp_path.glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    results = json.loads((tmp_path / f"{path.name[:2]}_results.json").read_text())
    CHECKS[path.name[:2]](results)
