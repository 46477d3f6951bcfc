"""Drives generated kernels once each at 1M fp16 rows for Nsight Compute, the variants named on the
command line as spec:head_dim[:op] (op compress, the default, or decompress; default variants tq3:128
tq3:256 tq4:96 tq4:128, compress):
ncu --clock-control none --section ... -k regex:compress -s N python3 benchmarks/experiments/ncu_drive_variants.py
(-s N, N the number of variants, skips the warm-up launches: each variant runs once to compile, then once
more for the profile; -k regex:decompress for decompress variants)."""
import sys

import torch

import kernelgen

runs = []
for name in sys.argv[1:] or ["tq3:128", "tq3:256", "tq4:96", "tq4:128"]:
    spec, head_dim, *op = name.split(":")
    q = kernelgen.quantizer(spec, int(head_dim))
    x = torch.randn(1 << 20, int(head_dim), device="cuda", dtype=torch.float16)
    packed, norms = q.compress(x)  # warm-up: the first launch may compile and tune
    run = (lambda q=q, x=x: q.compress(x)) if op in ([], ["compress"]) else \
        (lambda q=q, p=packed, n=norms: q.decompress(p, n))
    run()
    runs.append(run)
torch.cuda.synchronize()
for run in runs:
    run()
torch.cuda.synchronize()
