"""``benchmarks/gpu_checks.sh``, the GPU checks in one run, wired up on a machine without CUDA: a stand-in Python
records the commands the script would run."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_checks.sh"


def _stand_in(tmp_path: Path, failing: str | None = None) -> Path:
    """A ``python3`` that logs its arguments and exits 0 (1 where they name ``failing``)."""
    fake = tmp_path / "python3"
    fail = f'case "$*" in *"{failing}"*) exit 1;; esac\n' if failing else ""
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >>"{tmp_path}/calls.txt"\n{fail}exit 0\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    assert subprocess.run(["bash", "-n", str(fake)]).returncode == 0  # the stand-in itself parses
    return fake


def _run(tmp_path: Path, fake: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PY": str(fake)}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_the_gpu_checks_run_the_cuda_tests_and_both_speed_benchmarks_on_cuda(tmp_path):
    res = _run(tmp_path, _stand_in(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls[0].startswith("-c import torch")  # CUDA is checked first
    tests, speed, predict = calls[1:]
    assert "-m pytest" in tests and "-m gpu" in tests
    assert speed.startswith("benchmarks/speed.py --device cuda") and "--parts configs ops sweep" in speed
    assert predict.startswith("benchmarks/predict_speed.py --device cuda")
    for call in (speed, predict):  # the records go to $OUT, not over the committed CPU ones
        assert f"--out {tmp_path / 'out'}/" in call
        assert (ROOT / call.split()[0]).is_file()
    assert (tmp_path / "out" / "pytest_gpu.txt").is_file()
    assert [line.split(":")[0] for line in res.stdout.splitlines()] == ["pytest_gpu", "speed", "predict"]


@pytest.mark.parametrize("failing", ["-c import torch", "benchmarks/speed.py"])
def test_a_failed_step_fails_the_checks_and_no_cuda_stops_them(tmp_path, failing):
    res = _run(tmp_path, _stand_in(tmp_path, failing))
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    if failing.startswith("-c"):  # no CUDA: nothing else runs
        assert res.returncode == 2 and len(calls) == 1
    else:  # a failed step: the next still runs, and the script fails
        assert res.returncode == 1 and len(calls) == 4
        assert "speed: exit 1" in res.stdout
