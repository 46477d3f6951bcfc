"""Drives generated compress kernels once each at 1M fp16 rows for Nsight Compute, the variants named on
the command line as spec:head_dim (default tq3:128 tq3:256 tq4:96 tq4:128):
ncu --clock-control none --section ... -k regex:compress -s N python3 benchmarks/experiments/ncu_drive_variants.py
(-s N, N the number of variants, skips the warm-up launches: each variant runs once to compile, then once
more for the profile)."""
import sys

import torch

import kernelgen

runs = []
for name in sys.argv[1:] or ["tq3:128", "tq3:256", "tq4:96", "tq4:128"]:
    spec, head_dim = name.split(":")
    q = kernelgen.quantizer(spec, int(head_dim))
    x = torch.randn(1 << 20, int(head_dim), device="cuda", dtype=torch.float16)
    q.compress(x)  # warm-up: the first launch may compile and tune
    runs.append((q, x))
torch.cuda.synchronize()
for q, x in runs:
    q.compress(x)
torch.cuda.synchronize()
