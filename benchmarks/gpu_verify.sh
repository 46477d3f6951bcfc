#!/usr/bin/env bash
# One device call (459 s on an H100 with TEST_TIMEOUT=330, 2026-11-26, when the whole suite reached 805 of
# its 826 tests: give it TEST_TIMEOUT=420 for the rest) that checks the shipped kernels and tables without retuning:
#   1. `kernelgen list` (the shipped tables must apply) and the host overhead at 8 rows;
#   2. the launch, tuning and API tests natively on the GPU (CUDA graphs included);
#   3. the whole suite while time allows.
# Logs are packed into $OUT/verify.tar.gz after every step, so a run cut short returns what it finished.
# Usage (repo root, CUDA machine): OUT=/some/dir bash benchmarks/gpu_verify.sh
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
FINAL=${OUT:-/tmp/kernelgen-out}; LOGS=${LOGS:-/tmp/kernelgen-verify}; mkdir -p "$FINAL" "$LOGS"
KG="python3 -m kernelgen.cli"
start=$(date +%s)
stamp() {
  tar -czf "$FINAL/verify.tar.gz.tmp" -C "$LOGS" . && mv "$FINAL/verify.tar.gz.tmp" "$FINAL/verify.tar.gz"
  echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$LOGS/steps.txt"
}
nvidia-smi --query-gpu=name,driver_version --format=csv > "$LOGS/env.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" >> "$LOGS/env.txt"
$KG list > "$LOGS/list.txt" 2>&1
timeout 120 $KG bench --specs tq4 --head-dims 128 --rows 8 --impls kernelgen --host-overhead \
  --markdown "$LOGS/host-overhead.md" > "$LOGS/host-overhead.txt" 2>&1
tail -6 "$LOGS/host-overhead.txt"
stamp "list, host overhead"
KERNELGEN_AUTOTUNE=0 timeout 150 python3 -m pytest -q -rs -p no:cacheprovider tests/test_launch.py tests/test_tuning.py \
  tests/test_quantizer.py > "$LOGS/pytest-launch-tuning-api.txt" 2>&1
tail -3 "$LOGS/pytest-launch-tuning-api.txt"
stamp "tests: launch, tuning, API"
KERNELGEN_AUTOTUNE=0 timeout ${TEST_TIMEOUT:-300} python3 -m pytest -q -rs -p no:cacheprovider > "$LOGS/pytest.txt" 2>&1
tail -3 "$LOGS/pytest.txt"
stamp "done"
