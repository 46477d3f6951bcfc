#!/usr/bin/env bash
# One device call: environment, timings, then the test suite natively on the GPU.
# Usage (from the repo root, on a CUDA machine): bash benchmarks/gpu_session.sh [kernelgen bench args...]
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
OUT=${OUT:-/tmp/kernelgen-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$OUT/env.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/env.txt"
python3 -m kernelgen.cli bench "$@" --json "$OUT/bench.json" --markdown "$OUT/bench.md" 2>&1 | tee "$OUT/bench.txt" | tail -40
KERNELGEN_AUTOTUNE=0 timeout ${TEST_TIMEOUT:-420} python3 -m pytest -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest.txt" | tail -8
