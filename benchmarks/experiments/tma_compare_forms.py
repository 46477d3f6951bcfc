"""Experiment (not part of the package, branch tma-compress at commit 258970f plus the kernel num_stages
change): the registry's TMA compress (a constant count of row blocks from 0) against tma_persistent_dims.py's
kernel (a loop from the program id by the grid) at kernel num_stages 3 and 1, and the pointer loads; tq4
D=128/96, 1M fp16 rows, B64 w4, three rounds. Output: h100-tma_compare_forms.txt (copied from the device
tool's reply; the script printed to stdout only).
Usage (CUDA machine, repo root): PYTHONPATH=$PWD python3 benchmarks/experiments/tma_compare_forms.py
"""
import os, sys, tempfile
os.environ["KERNELGEN_AUTOTUNE"] = "0"
sys.path.insert(0, "benchmarks/experiments")
from pathlib import Path
import torch
from triton.tools.tensor_descriptor import TensorDescriptor
import kernelgen
from kernelgen import bench, registry
import tma_persistent_dims as t

ROWS = 1 << 20
torch.manual_seed(0)
copy = bench.copy_bandwidth_gbps()
print(f"copy {copy:.0f}", flush=True)
sms = torch.cuda.get_device_properties(0).multi_processor_count
for spec, d in (("tq4", 128), ("tq4", 96)):
    module, lay = t.kernel_module(spec, d, Path(tempfile.mkdtemp()))
    tma = registry.runs_tma
    qp = kernelgen.quantizer(spec, d, device="cuda"); qt = kernelgen.quantizer(spec, d, device="cuda")
    x = torch.randn(ROWS, d, device="cuda", dtype=torch.float16)
    registry.runs_tma = lambda i: False; qp.compress(x)
    registry.runs_tma = tma; qt.compress(x)
    slots = qt._kernel_args("compress", torch.float16, (x,), ())[1]
    packed, norms = qt.compress(x)
    desc = TensorDescriptor.from_tensor(x, [64, lay.dim_pad])
    nbytes = bench.op_bytes("compress", d, qt.packed_dim, ROWS, 2)
    cases = {
        "pointer": lambda: qp.compress(x, out=(packed, norms)),
        "registry-tma": lambda: qt.compress(x, out=(packed, norms)),
        "exp-persistent-s3": lambda: module.compress_tma[(2 * sms,)](desc, slots, packed, norms, ROWS, BLOCK_ROWS=64, STAGES=3, num_warps=4),
        "exp-persistent-s3-ns1": lambda: module.compress_tma[(2 * sms,)](desc, slots, packed, norms, ROWS, BLOCK_ROWS=64, STAGES=3, num_warps=4, num_stages=1),
    }
    for r in range(3):
        print(spec, d, r, "  ".join(f"{k} {bench.graph_time_us([f], rounds=1):6.1f}" for k, f in cases.items()), flush=True)
