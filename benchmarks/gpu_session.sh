set -o pipefail
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv | tee $OUT/env.txt
python3 -c "import torch, triton, jinja2, yaml; print(torch.__version__, triton.__version__)" | tee -a $OUT/env.txt
export PYTHONPATH=$PWD
python3 - <<'PY' 2>&1 | tee $OUT/bench.txt
import torch
from kernelgen import bench
copy = bench.copy_bandwidth_gbps()
res = []
for rows in (8, 65536, 1048576):
    res += bench.bench_variant("tq4", 128, rows, torch.float16)
print(bench.markdown_table(res, copy))
PY
KERNELGEN_AUTOTUNE=0 timeout 420 python3 -m pytest -q -x -p no:cacheprovider 2>&1 | tee $OUT/pytest.txt | tail -15
