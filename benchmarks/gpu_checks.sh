#!/usr/bin/env bash
# The checks that need a GPU, in one run: the CUDA tests, then training and prediction speed on CUDA.
#
# For maintainers with a few minutes on a CUDA machine that has torch but not bayesdrop's other dependencies:
# `make gpu-wheels` (here, online) puts their wheels in .gpu_wheels/ (git-ignored); carry that folder, and on the
# CUDA machine, in the repository's root:
#
#     OUT=/some/dir bash benchmarks/gpu_checks.sh
#
# Each step has its own time limit (seconds: TESTS_S, SPEED_S, PREDICT_S), so that a slow step leaves the others
# their turn, and writes its record to $OUT: pytest_gpu.txt, speed_cuda.md, predict_speed_cuda.md, and the log of
# each step.  A step that fails or runs out of time does not stop the others; the script exits non-zero if any did.
# Splice the records into benchmarks/results/speed.md and predict_speed.md ("On a GPU" sections) by hand, with the
# device and the commit named.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
PY=${PY:-python3}
mkdir -p "$OUT"
if [ -d .gpu_wheels ]; then
    "$PY" -m pip install -q --no-deps --no-index .gpu_wheels/*.whl >"$OUT/install.log" 2>&1 || echo "wheels: see install.log"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 BAYESDROP_DEVICE=cuda
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" \
    || exit 2

status=0
step() {  # step NAME SECONDS COMMAND...: run COMMAND under a time limit, its output in $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || status=1
}
step pytest_gpu "${TESTS_S:-150}" "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
cp "$OUT/pytest_gpu.log" "$OUT/pytest_gpu.txt"
step speed "${SPEED_S:-240}" "$PY" benchmarks/speed.py --device cuda --repeats 3 --epochs 3 --parts configs ops sweep \
    --out "$OUT/speed_cuda.md"
step predict "${PREDICT_S:-180}" "$PY" benchmarks/predict_speed.py --device cuda --repeats 3 \
    --out "$OUT/predict_speed_cuda.md"
exit $status
