"""Drives the generated tq4 and tq3 kernels once each at 1M rows, D=128, fp16, for Nsight Compute:
ncu --clock-control none --section ... -k regex:compress python3 benchmarks/experiments/ncu_drive.py"""
import torch

import kernelgen

x = torch.randn(1 << 20, 128, device="cuda", dtype=torch.float16)
for spec in ("tq4", "tq3"):
    q = kernelgen.quantizer(spec, 128)
    p, n = q.compress(x)
    q.decompress(p, n)
    q.decompress(p, n, rotated=True)
torch.cuda.synchronize()
