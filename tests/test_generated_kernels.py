"""The generated-kernel matrix: every (spec, head dim, op, dtype) in generated/ x row counts,
against the float64 reference in tests/reference.py.

Promises, as asserted:
- norms equal the reference to fp32 rounding (rtol 1e-5);
- codes equal the reference except at most reference.max_code_flips(precision, n) of n, each flip
  to an adjacent code and only where the reference value lies within BOUNDARY_SLACK of a boundary;
  both depend on the operand precision of the rotation products the spec asks for that dtype (fp32 operands,
  or fp16 operands whose rounding moves a unit vector's rotated coordinate by at most 2^-10);
- rotated-space decompress is exact (centroid * norm in fp32, then the cast);
- original-space decompress within the output dtype's rounding (DECOMPRESS_RTOL);
- the round trip's mean squared error matches the codebook's theoretical distortion.
"""

from pathlib import Path

import pytest
import torch

import kernelgen
from kernelgen import constants, registry, tuning
from kernelgen.manifest import Manifest

import reference

FP16_OPERANDS = "fp16"
# |y - boundary| in the rotated unit space (y ~ N(0, 1/D)) within which a flip is rounding: for fp16
# operands |sum_k x_k R_ik (d_k + e_k)| <= 2 * 2^-11 * |x| |R_i| = 2^-10 (plus fp32 accumulation).
BOUNDARY_SLACK = {FP16_OPERANDS: 2.0 ** -10 + 1e-5}
BOUNDARY_SLACK_FP32 = 2e-5
DECOMPRESS_RTOL = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 2e-5}


def _variants():
    found = []
    for folder in sorted(p for p in registry.shipped_dir().iterdir() if (p / "manifest.json").is_file()):
        manifest = Manifest.read(folder)
        for entry in manifest.variants:
            found.append((manifest.spec_name, entry.head_dim, manifest.dtypes, manifest))
    return found


VARIANTS = _variants()
BLOCKS = sorted({c.kwargs["BLOCK_ROWS"] for s, d, _, _ in VARIANTS
                 for c in registry.load_variant(s, d).kernel("compress").configs}) if VARIANTS else [64]
ROWS = [1, 37, 3 * max(BLOCKS) + 5]  # one row; no multiple of any block size; several blocks
assert all(37 % b for b in BLOCKS)

CASES = [pytest.param(s, d, dt, n, id=f"{s}-d{d}-{dt}-rows{n}")
         for s, d, dtypes, _ in VARIANTS for dt in dtypes for n in ROWS]


def test_matrix_is_not_empty():
    assert VARIANTS, "generated/ holds no variants"
    assert {"tq4"} <= {s for s, *_ in VARIANTS}


def _check_codes(codes, ref_codes, y, boundaries, precision):
    diff = codes - ref_codes
    flips = diff != 0
    assert diff.abs().max() <= 1, "a code differs from the reference by more than one level"
    allowed = reference.max_code_flips(precision, flips.numel())  # 0.2% with fp16 operands, 0.1% with fp32
    assert flips.sum() <= allowed, \
        f"{int(flips.sum())} of {flips.numel()} codes differ from the reference ({precision} products)"
    if flips.any():
        gap = (y[flips][:, None] - boundaries.double()[None, :]).abs().min(dim=1).values
        slack = BOUNDARY_SLACK.get(precision, BOUNDARY_SLACK_FP32)
        assert gap.max() <= slack, f"a code flipped {gap.max():.2e} away from any boundary ({precision} products)"


@pytest.mark.parametrize("spec,head_dim,dtype,rows", CASES)
def test_compress_matches_reference(spec, head_dim, dtype, rows, device, gen):
    q = kernelgen.quantizer(spec, head_dim, device=device)
    dt = getattr(torch, dtype)
    x = (torch.randn(rows, head_dim, generator=gen) * torch.rand(rows, 1, generator=gen) * 4).to(dt)
    packed = torch.full((rows, q.packed_dim), 0xA5, dtype=torch.uint8, device=device)  # poison
    norms = torch.full((rows, 1), float("nan"), device=device)
    q.compress(x.to(device), out=(packed, norms))

    ref_packed, ref_norms, ref_codes, y = reference.compress(x, q.rotation.cpu(), q.boundaries.cpu(), q.bits)
    torch.testing.assert_close(norms.cpu().double().view(-1), ref_norms, rtol=1e-5, atol=1e-6)
    codes = reference.unpack_bitstream(packed.cpu(), q.bits, head_dim)
    _check_codes(codes, ref_codes, y, q.boundaries.cpu(), q.precision[dt])


@pytest.mark.parametrize("spec,head_dim,dtype,rows", CASES)
def test_decompress_rotated_is_exact(spec, head_dim, dtype, rows, device, gen):
    q = kernelgen.quantizer(spec, head_dim, device=device)
    dt = getattr(torch, dtype)
    packed = torch.randint(0, 256, (rows, q.packed_dim), generator=gen, dtype=torch.uint8)
    norms = torch.rand(rows, 1, generator=gen) * 10
    out = torch.full((rows, head_dim), float("nan"), dtype=dt, device=device)
    q.decompress(packed.to(device), norms.to(device), dtype=dt, rotated=True, out=out)
    expected = reference.decompress(packed, norms.view(-1), q.rotation.cpu(), q.centroids.cpu(), q.bits,
                                    head_dim, rotated=True, dtype=dt)
    assert torch.equal(out.cpu(), expected)


@pytest.mark.parametrize("spec,head_dim,dtype,rows", CASES)
def test_decompress_matches_reference(spec, head_dim, dtype, rows, device, gen):
    _check_decompress(kernelgen.quantizer(spec, head_dim, device=device), dtype, rows, device, gen)


# Decompress kernels of head dims over 128 split a row's output steps over grid axis 1 up to
# registry.COLUMN_SPLIT_MAX_ROWS rows (every row count of the matrix above); beyond, fp16 operands take
# the whole rotation in one product and fp32 operands loop over the output steps.
WIDE = [pytest.param(s, d, dt, id=f"{s}-d{d}-{dt}") for s, d, dtypes, _ in VARIANTS if d > 128
        for dt in ("float16", "float32") if dt in dtypes]


@pytest.mark.parametrize("spec,head_dim,dtype", WIDE)
def test_decompress_of_wide_rows_without_the_column_split_matches_reference(spec, head_dim, dtype, device, gen,
                                                                             monkeypatch):
    monkeypatch.setattr(registry, "COLUMN_SPLIT_MAX_ROWS", 0)  # no bucket splits
    q = kernelgen.quantizer(spec, head_dim, device=device)
    _check_decompress(q, dtype, 37, device, gen)
    kernel = q._kernels["decompress"]
    assert kernel.output_steps > 1
    assert [m[1]["COLUMN_SPLIT"] for m in kernel._memo.values()] == [False]


# Decompress kernels take several row blocks a program from 2^16 rows on (registry.ROW_BLOCKS_FROM_BUCKET;
# above every row count of the matrix); those of head dims over 128 with and without the column split.
SPLITS = [pytest.param(s, d, dt, split, id=f"{s}-d{d}-{dt}{'-split' if split else ''}")
          for s, d, dtypes, _ in VARIANTS for dt in ("float16", "float32") if dt in dtypes
          for split in ((True, False) if d > 128 else (False,))]


@pytest.mark.parametrize("spec,head_dim,dtype,split", SPLITS)
def test_decompress_taking_several_row_blocks_a_program_matches_reference(spec, head_dim, dtype, split, device,
                                                                            gen, monkeypatch):
    monkeypatch.setitem(registry.ROW_BLOCKS_FROM_BUCKET, "decompress", ((1, 4),))  # every bucket, 4 blocks a program
    if not split:
        monkeypatch.setattr(registry, "COLUMN_SPLIT_MAX_ROWS", 0)
    q = kernelgen.quantizer(spec, head_dim, device=device)
    kernel = q._kernels["decompress"]
    rows = kernel.configs[0].kwargs["BLOCK_ROWS"] * 4 + 37  # the last program's tail: 1 block partly, 3 not at all
    _check_decompress(q, dtype, rows, device, gen)
    assert kernel.loops_rows
    assert [m[1]["ROW_BLOCKS"] for m in kernel._memo.values()] == [4]
    assert [m[1].get("COLUMN_SPLIT", False) for m in kernel._memo.values()] == [split]


# On NVIDIA GPUs of compute capability 9, decompress of 16-bit output runs the module's warp-specialized
# Gluon kernel from registry.WS_DECOMPRESS_FROM rows on (every spec at D=128/192/256; at D=96 from
# WS_DECOMPRESS_PADDED_128_FROM); here from every bucket, at row counts that leave blocks partly filled and
# give each program 9 blocks (each of its 2-4 compute partitions several; the ring, 2 blocks a partition,
# wraps), the Triton kernel never run.
WS = [pytest.param(s, d, dt, id=f"{s}-d{d}-{dt}") for s, d, dtypes, _ in VARIANTS
      if hasattr(registry.load_variant(s, d).module, "WS_DECOMPRESS")
      for dt in ("float16", "bfloat16") if dt in dtypes]


@pytest.mark.skipif(not registry.runs_ws(False), reason="needs an NVIDIA GPU of compute capability 9")
@pytest.mark.parametrize("spec,head_dim,dtype", WS)
def test_warp_specialized_decompress_matches_reference(spec, head_dim, dtype, device, gen, monkeypatch):
    monkeypatch.setattr(registry, "WS_DECOMPRESS_FROM", 1)
    monkeypatch.setattr(registry, "WS_DECOMPRESS_PADDED_128_FROM", 1)
    q = kernelgen.quantizer(spec, head_dim, device=device)
    kernel = q._kernels["decompress"]
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    for rows in (1, 63, 1000, sms * 64 * 9 + 37, sms * 64 * 9 + 37):  # the last through the compiled launcher
        _check_decompress(q, dtype, rows, device, gen)
    assert not kernel._memo, "the Triton kernel ran (its config was looked up)"
    assert kernel._ws_compiled, "no compiled kernel kept for the direct launch"
    # an output off 16 bytes, which a tensor descriptor cannot take: the Triton kernel runs instead
    dt = getattr(torch, dtype)
    packed = torch.randint(0, 256, (100, q.packed_dim), generator=gen, dtype=torch.uint8).to(device)
    norms = (torch.rand(100, 1, generator=gen) * 10).to(device)
    out = torch.full((100 * head_dim + 1,), float("nan"), dtype=dt, device=device)[1:].view(100, head_dim)
    q.decompress(packed, norms, dtype=dt, out=out)
    expected = q.decompress(packed, norms, dtype=dt)  # aligned: the warp-specialized kernel
    assert kernel._memo
    scale = expected.float().abs().max(dim=1, keepdim=True).values
    assert ((out.float() - expected.float()).abs() / scale).max() <= DECOMPRESS_RTOL[dt]
    # packed rows off the kernel's loads (16 bytes for TMA, 8 for tq3's words): the Triton kernel again
    kernel._memo.clear()
    shifted = torch.empty(100 * q.packed_dim + 1, dtype=torch.uint8, device=device)[1:].view(100, q.packed_dim)
    shifted.copy_(packed)
    got = q.decompress(shifted, norms, dtype=dt)
    assert kernel._memo
    assert ((got.float() - expected.float()).abs() / scale).max() <= DECOMPRESS_RTOL[dt]


# Compress of 16-bit rows runs the module's warp-specialized Gluon kernel from registry.WS_COMPRESS_FROM rows on
# (every spec at D=256); here from every bucket.
WS_COMPRESS = [pytest.param(s, d, dt, id=f"{s}-d{d}-{dt}") for s, d, dtypes, _ in VARIANTS
               if hasattr(registry.load_variant(s, d).module, "WS_COMPRESS")
               for dt in ("float16", "bfloat16") if dt in dtypes]


@pytest.mark.skipif(not registry.runs_ws(False), reason="needs an NVIDIA GPU of compute capability 9")
@pytest.mark.parametrize("spec,head_dim,dtype", WS_COMPRESS)
def test_warp_specialized_compress_matches_reference(spec, head_dim, dtype, device, gen, monkeypatch):
    """Rows that leave the last block partly filled, programs of one block (or none for the second
    partition), and programs of several blocks each partition (the ring wraps, the turns alternate); the
    last row count twice, the second time through the compiled launcher. Every byte and norm written
    (poisoned first); norms and codes against the float64 reference. Packed rows 4 bytes off 16 (an `out=`
    view): TMA cannot store there, so tq4 and tq2 take the Triton kernel; tq3 stores 4-byte words and runs
    its Gluon kernel; the codes as the aligned call's."""
    monkeypatch.setattr(registry, "WS_COMPRESS_FROM", 1)
    q = kernelgen.quantizer(spec, head_dim, device=device)
    kernel = q._kernels["compress"]
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    for rows in (1, 63, 1000, sms * 64 * 9 + 37, sms * 64 * 9 + 37):
        x = (torch.randn(rows, head_dim, generator=gen) * torch.rand(rows, 1, generator=gen) * 4).to(getattr(torch, dtype))
        packed = torch.full((rows, q.packed_dim), 0xA5, dtype=torch.uint8, device=device)  # poison
        norms = torch.full((rows, 1), float("nan"), device=device)
        q.compress(x.to(device), out=(packed, norms))
        ref_packed, ref_norms, ref_codes, y = reference.compress(x, q.rotation.cpu(), q.boundaries.cpu(), q.bits)
        torch.testing.assert_close(norms.cpu().double().view(-1), ref_norms, rtol=1e-5, atol=1e-6)
        codes = reference.unpack_bitstream(packed.cpu(), q.bits, head_dim)
        _check_codes(codes, ref_codes, y, q.boundaries.cpu(), q.precision[getattr(torch, dtype)])
    assert not kernel._memo, "the Triton kernel ran (its config was looked up)"
    assert kernel._ws_compiled, "no compiled kernel kept for the direct launch"
    x = torch.randn(100, head_dim, generator=gen).to(device, getattr(torch, dtype))
    expected, expected_norms = q.compress(x)
    shifted = torch.full((100 * q.packed_dim + 4,), 0xA5, dtype=torch.uint8, device=device)[4:].view(100, q.packed_dim)
    norms = torch.empty(100, 1, device=device)
    q.compress(x, out=(shifted, norms))
    assert bool(kernel._memo) is (q.bits != 3), "packed rows off 16 bytes: the wrong kernel ran"
    codes = reference.unpack_bitstream(shifted.cpu(), q.bits, head_dim)
    assert (codes != reference.unpack_bitstream(expected.cpu(), q.bits, head_dim)).float().mean() <= 0.002
    torch.testing.assert_close(norms, expected_norms, rtol=1e-5, atol=0)


@pytest.mark.skipif(not registry.runs_ws(False), reason="needs an NVIDIA GPU of compute capability 9")
def test_after_warmup_the_hopper_compress_replays_in_a_cuda_graph(device, gen):
    """Compress of 2^15 fp16 rows or more at D=256 runs the Gluon kernel (registry.WS_COMPRESS_FROM). After
    warmup a capture at 70,001 rows records it, and replays equal the eager call on new inputs."""
    q = kernelgen.quantizer("tq4", 256, device=device)
    q.warmup(max_rows=1 << 17, dtypes=[torch.float16], ops=("compress",))
    rows = 70001
    x = torch.empty(rows, 256, dtype=torch.float16, device=device)
    packed = torch.full((rows, q.packed_dim), 0xA5, dtype=torch.uint8, device=device)
    norms = torch.full((rows, 1), float("nan"), device=device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        q.compress(x, out=(packed, norms))
    if registry.DIRECT_LAUNCH:  # the capture compiled the Hopper kernel's n_rows % 16 != 0 specialization
        assert any(not key[3] for key in q._kernels["compress"]._ws_compiled), "the capture ran another kernel"
    for _ in range(2):
        x.copy_(torch.randn(rows, 256, generator=gen).half())
        graph.replay()
        torch.cuda.synchronize()
        eager_packed, eager_norms = q.compress(x)
        assert torch.equal(packed, eager_packed) and torch.equal(norms, eager_norms)
    assert q._kernels["compress"]._ws, "the Hopper kernel never set up"


@pytest.mark.skipif(not registry.runs_ws(False), reason="needs an NVIDIA GPU of compute capability 9")
def test_the_hopper_decompress_set_up_inside_a_real_cuda_graph_capture_raises_and_runs_outside(device):
    """BoundKernel._ws_state copies the rotation's pieces to the GPU, which a CUDA graph capture cannot hold:
    inside a real capture it raises TuningDuringCapture (telling to warm up) and keeps nothing; outside,
    it sets up."""
    kernel = registry.BoundKernel(registry.load_variant("tq2", 192), "decompress")
    dev = torch.device(device)
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(tuning.TuningDuringCapture, match="warmup"):
        with torch.cuda.graph(graph):
            kernel._ws_state(dev)
    assert kernel._ws == {}
    assert kernel._ws_state(dev) is not None


@pytest.mark.skipif(not registry.runs_ws(False), reason="needs an NVIDIA GPU of compute capability 9")
def test_after_warmup_the_hopper_decompress_replays_in_a_cuda_graph(device, gen):
    """Decompress of 2^16 rows or more at D=256 runs the Gluon kernel (registry.WS_DECOMPRESS_FROM). After
    warmup a capture at a row count warmup never launched (70,001: not a multiple of 16, another of the
    kernel's specializations) records it, and replays equal the eager call on new inputs."""
    q = kernelgen.quantizer("tq3", 256, device=device)
    q.warmup(max_rows=1 << 17, dtypes=[torch.float16], ops=("decompress",))
    rows = 70001
    packed = torch.empty(rows, q.packed_dim, dtype=torch.uint8, device=device)
    norms = torch.empty(rows, 1, device=device)
    out = torch.full((rows, 256), float("nan"), dtype=torch.float16, device=device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        q.decompress(packed, norms, out=out)
    if registry.DIRECT_LAUNCH:  # the capture compiled the Hopper kernel's n_rows % 16 != 0 specialization
        assert any(not key[3] for key in q._kernels["decompress"]._ws_compiled), "the capture ran another kernel"
    for _ in range(2):
        packed.copy_(torch.randint(0, 256, (rows, q.packed_dim), generator=gen, dtype=torch.uint8))
        norms.copy_(torch.rand(rows, 1, generator=gen) + 0.5)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, q.decompress(packed, norms))
    assert q._kernels["decompress"]._ws, "the Hopper kernel never set up"


@pytest.mark.skipif(not registry.runs_ws(False), reason="needs an NVIDIA GPU of compute capability 9")
@pytest.mark.parametrize("head_dim", [136, 144, 160])
def test_tq3_hopper_decompress_of_rows_off_8_bytes_matches_reference(tq3_odd_rows, head_dim, device, gen, monkeypatch):
    """tq3's Hopper decompress where its packed rows (51, 54 and 60 bytes) take words of 1, 2 and 4 bytes
    (no shipped spec has them: the shipped rows take 8), from every bucket, against the float64 reference."""
    monkeypatch.setattr(registry, "WS_DECOMPRESS_FROM", 1)
    q = kernelgen.quantizer(tq3_odd_rows[1], head_dim, device=device)
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    for rows in (1, 63, 1000, sms * 64 * 3 + 37):
        _check_decompress(q, "float16", rows, device, gen)
    assert not q._kernels["decompress"]._memo, "the Triton kernel ran (its config was looked up)"


def _check_decompress(q, dtype, rows, device, gen):
    head_dim = q.head_dim
    dt = getattr(torch, dtype)
    packed = torch.randint(0, 256, (rows, q.packed_dim), generator=gen, dtype=torch.uint8)
    norms = torch.rand(rows, 1, generator=gen) * 10
    out = torch.full((rows, head_dim), float("nan"), dtype=dt, device=device)
    q.decompress(packed.to(device), norms.to(device), dtype=dt, out=out)
    expected = reference.decompress(packed, norms.view(-1), q.rotation.cpu(), q.centroids.cpu(), q.bits,
                                    head_dim, rotated=False, dtype=dt)
    got = out.cpu().double()
    assert not got.isnan().any(), "some outputs were never written"
    scale = expected.abs().max(dim=1, keepdim=True).values
    # plus the output dtype's subnormal spacing: rows of tiny norm land in fp16's subnormals
    subnormal_step = torch.finfo(dt).smallest_normal * torch.finfo(dt).eps
    err = ((got - expected).abs() - subnormal_step).clamp(min=0) / scale
    assert err.max() <= DECOMPRESS_RTOL[dt], f"max error {err.max():.2e} of the row's largest value"


@pytest.mark.parametrize("spec,head_dim,manifest", [
    pytest.param(s, d, m, id=f"{s}-d{d}") for s, d, _, m in VARIANTS])
def test_round_trip_mse_matches_codebook_distortion(spec, head_dim, manifest, device, gen):
    q = kernelgen.quantizer(spec, head_dim, device=device)
    x = torch.randn(ROWS[-1] * 4, head_dim, generator=gen)
    packed, norms = q.compress(x.to(device))
    x_hat = q.decompress(packed, norms, dtype=torch.float32).cpu()
    mse = (((x_hat - x) ** 2).sum(1) / (x ** 2).sum(1)).mean().item()
    codebook = constants.Codebook(tuple(q.centroids.tolist()), tuple(q.boundaries.tolist()), 0)
    # The real law of a rotated coordinate is the Beta law, whatever law the codebook was fit to.
    theory = constants.expected_mse(codebook, "beta", head_dim)
    assert abs(mse - theory) <= 0.05 * theory, f"round-trip MSE {mse:.5f}, codebook predicts {theory:.5f}"


def _fp16_model_codes(q, x):
    """The codes compress gives with fp16 operands, modelled: the row normalized in fp32 and rounded to
    fp16, times the fp16-rounded rotation (accumulated in float64 here, fp32 in the kernel); where the
    module has the fp16 search, that value rounded to fp16 and searched against FP16_THRESHOLDS, else
    the fp32 boundaries."""
    from kernelgen import torch_path

    xf = x.float()
    unit = xf * (1.0 / (xf.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
    y = (unit.half().double() @ q.rotation.cpu().half().double().T).float()
    module = q._variant.module
    if not hasattr(module, "FP16_THRESHOLDS"):
        return torch_path.codes_of(y, q.boundaries.cpu())
    t = torch.tensor(module.FP16_THRESHOLDS)
    return torch_path.codes_of(y.half().float(), torch.cat([-t.flip(0), torch.zeros(1), t]))


@pytest.mark.parametrize("spec", ["tq4", "tq2", "tq3"])
def test_fp16_and_bf16_data_run_the_spec_s_fp16_operands_and_search(spec, device, gen):
    """The spec's rotation.precision reaches the kernels: for fp16 and bf16 data (fp16 operands in every
    shipped spec) the codes are those of _fp16_model_codes (the fp16 search where a byte group is one
    byte: tq4, tq2), which differ from the exact product's for about 0.1% of codes (values that close to
    a boundary)."""
    q = kernelgen.quantizer(spec, 128, device=device)
    assert q.precision == {torch.float16: "fp16", torch.bfloat16: "fp16", torch.float32: "tf32x3"}
    assert hasattr(q._variant.module, "FP16_THRESHOLDS") == (spec != "tq3")
    for dt in (torch.float16, torch.bfloat16):
        x = torch.randn(1000, 128, generator=gen).to(dt)
        codes = reference.unpack_bitstream(q.compress(x.to(device))[0].cpu(), q.bits, 128)
        model = _fp16_model_codes(q, x)
        _, _, exact, _ = reference.compress(x, q.rotation.cpu(), q.boundaries.cpu(), q.bits)
        assert (codes != model).sum() <= 10  # fp32 accumulation order only
        assert (codes != exact).sum() >= 5  # 30-130 expected: the rotation operand is not fp32


WIDE_COMPRESS = [pytest.param(s, d, split, id=f"{s}-d{d}-split{split}") for s, d, _, _ in VARIANTS
                 for split in (2, 4) if "SLOT_SPLIT" in registry.load_variant(s, d).kernel("compress").fn.arg_names
                 and registry.load_variant(s, d).layout.slot_pad // split >= 16]


@pytest.mark.parametrize("spec,head_dim,split", WIDE_COMPRESS)
def test_wide_compress_with_its_slot_columns_split_over_programs_matches_reference(spec, head_dim, split, device,
                                                                                  gen, monkeypatch):
    """SLOT_SPLIT (registry.SLOT_SPLIT_RULE), forced for every bit width: `split` programs take each row
    block, each a share of every slot's columns; every byte written once (poison gone), the norm by one of
    them, two row blocks and a partial one."""
    monkeypatch.setattr(registry, "SLOT_SPLIT_RULE", (1 << 20, {2: split, 3: split, 4: split}))
    q = kernelgen.quantizer(spec, head_dim, device=device)
    rows = 2 * q._kernels["compress"].configs[0].kwargs["BLOCK_ROWS"] + 5
    x = (torch.randn(rows, head_dim, generator=gen) * torch.rand(rows, 1, generator=gen) * 4).half()
    packed = torch.full((rows, q.packed_dim), 0xA5, dtype=torch.uint8, device=device)  # poison
    norms = torch.full((rows, 1), float("nan"), device=device)
    q.compress(x.to(device), out=(packed, norms))
    assert [m[1]["SLOT_SPLIT"] for m in q._kernels["compress"]._memo.values()] == [split]
    ref_packed, ref_norms, ref_codes, y = reference.compress(x, q.rotation.cpu(), q.boundaries.cpu(), q.bits)
    torch.testing.assert_close(norms.cpu().double().view(-1), ref_norms, rtol=1e-5, atol=1e-6)
    codes = reference.unpack_bitstream(packed.cpu(), q.bits, head_dim)
    _check_codes(codes, ref_codes, y, q.boundaries.cpu(), q.precision[torch.float16])


TMA_COMPRESS = [pytest.param(s, d, dt, id=f"{s}-d{d}-{dt}") for s, d, _, _ in VARIANTS
                for dt in ("float16", "bfloat16")
                if "x_desc" in registry.load_variant(s, d).kernel("compress").fn.arg_names
                and registry.tma_stages(registry.MAX_ROW_BUCKET, dt, d, registry.load_variant(s, d).layout.dim_pad,
                                        True)]


@pytest.mark.parametrize("spec,head_dim,dtype", TMA_COMPRESS)
def test_compress_reading_its_rows_by_tma_matches_reference(spec, head_dim, dtype, device, gen, monkeypatch):
    """registry.TMA_COMPRESS, forced at every bucket: the rows come through a tensor descriptor (zeros past
    the head dim) in a loop over every num_programs-th row block. With one "SM" under the interpreter, the
    grid is 3 programs for fp16 rows (the product on the raw rows: RAW_PRODUCT; 4 in boxes of 32 columns,
    D=96) and for bf16 rows read in pieces (D=96, 128), 2 for bf16 rows in one box (4 for both at D=64; at
    rows padded to 256, one program for either) over 6 blocks, the last partial:
    programs take 2 or 3 blocks (2 or 1 where 4 programs, all 6 at 256); every byte and norm written (poison
    gone). The spec's first config on a GPU too: a tuned table's config for these small buckets is the
    pointer loads' (the TMA loop runs from 2^20 rows), which may not fit the loop's shared memory (tq2
    D=256 at B128: 270,352 bytes)."""
    monkeypatch.setenv("KERNELGEN_AUTOTUNE", "0")
    monkeypatch.setattr(registry, "runs_tma", lambda interpreted: True)
    monkeypatch.setattr(registry, "TMA_COMPRESS", (1, *registry.TMA_COMPRESS[1:]))
    q = kernelgen.quantizer(spec, head_dim, device=device)
    kernel = q._kernels["compress"]
    monkeypatch.setattr(kernel, "_multiprocessors", lambda: 1)
    dt = getattr(torch, dtype)
    rows = 5 * kernel.configs[0].kwargs["BLOCK_ROWS"] + 7
    x = (torch.randn(rows, head_dim, generator=gen) * torch.rand(rows, 1, generator=gen) * 4).to(dt)
    packed = torch.full((rows, q.packed_dim), 0xA5, dtype=torch.uint8, device=device)  # poison
    norms = torch.full((rows, 1), float("nan"), device=device)
    q.compress(x.to(device), out=(packed, norms))
    assert [(m[1]["TMA_STAGES"], m[1]["ROW_BLOCKS"], m[1]["RAW_PRODUCT"]) for m in kernel._memo.values()] == [
        (3, 1, dtype == "float16")]
    ref_packed, ref_norms, ref_codes, y = reference.compress(x, q.rotation.cpu(), q.boundaries.cpu(), q.bits)
    torch.testing.assert_close(norms.cpu().double().view(-1), ref_norms, rtol=1e-5, atol=1e-6)
    codes = reference.unpack_bitstream(packed.cpu(), q.bits, head_dim)
    _check_codes(codes, ref_codes, y, q.boundaries.cpu(), q.precision[dt])


def test_a_tma_compress_refuses_the_raw_product_for_bf16_rows(device, gen, monkeypatch):
    """RAW_PRODUCT comes from the registry (registry.raw_product); a kernel handed it for bf16 rows, which
    fp16 products may not hold, stops at compile time (the interpreter: at its static_assert) instead of
    multiplying them."""
    monkeypatch.setattr(registry, "runs_tma", lambda interpreted: True)
    monkeypatch.setattr(registry, "TMA_COMPRESS", (1, *registry.TMA_COMPRESS[1:]))
    q = kernelgen.quantizer("tq4", 128, device=device)
    kernel = q._kernels["compress"]
    x = torch.randn(70, 128, generator=gen).bfloat16().to(device)
    packed = torch.empty(70, q.packed_dim, dtype=torch.uint8, device=device)
    norms = torch.empty(70, 1, device=device)
    args = q._kernel_args("compress", torch.bfloat16, (x,), (packed, norms))
    bucket = registry.row_bucket(70)
    meta = kernel.meta(kernel.config(70, "bfloat16", q.device, args), "bfloat16", bucket)
    assert meta["TMA_STAGES"] and meta["RAW_PRODUCT"] is False
    grid, tma_meta = kernel.tma_launch(70, dict(meta, RAW_PRODUCT=True), args)
    with pytest.raises(Exception, match="RAW_PRODUCT takes fp16 rows into fp16 products"):
        kernel.fn[grid](*args, 70, bucket, **tma_meta)


def test_tma_compress_of_rows_off_16_bytes_reads_their_aligned_copy(device, gen, monkeypatch):
    """A tensor descriptor needs rows that start on 16 bytes (Triton's TensorDescriptor refuses others): a
    contiguous view that starts 2 bytes in reaches the TMA loop as an aligned copy, and gives the bytes and
    norms of that copy compressed directly."""
    monkeypatch.setattr(registry, "runs_tma", lambda interpreted: True)
    monkeypatch.setattr(registry, "TMA_COMPRESS", (1, *registry.TMA_COMPRESS[1:]))
    q = kernelgen.quantizer("tq4", 128, device=device)
    rows = 70
    flat = torch.randn(rows * 128 + 1, generator=gen).half().to(device)
    x = flat[1:].view(rows, 128)
    assert x.is_contiguous() and x.data_ptr() % 16 == 2
    packed, norms = q.compress(x)
    assert [m[1]["TMA_STAGES"] for m in q._kernels["compress"]._memo.values()] == [3]
    aligned_packed, aligned_norms = q.compress(x.clone())
    assert torch.equal(packed, aligned_packed) and torch.equal(norms, aligned_norms)


# Every compress kernel takes row blocks (over 128 dims: the one-step form for fp16 operands, two passes
# a block for fp32 rows).
ROW_BLOCK_COMPRESS = [pytest.param(s, d, dt, id=f"{s}-d{d}-{dt}") for s, d, dtypes, _ in VARIANTS
                      for dt in ("float16", "float32") if dt in dtypes]


@pytest.mark.parametrize("spec,head_dim,dtype", ROW_BLOCK_COMPRESS)
def test_compress_taking_several_row_blocks_a_program_matches_reference(spec, head_dim, dtype, device, gen,
                                                                          monkeypatch):
    """Compress kernels loop over ROW_BLOCKS row blocks (16-bit rows read one block ahead): every block
    written, the last program's tail masked. The registry gives fp32 rows one block a program
    (registry.row_blocks); their loop (no read-ahead; two passes a block over 128 dims) runs here by a
    direct launch."""
    monkeypatch.setitem(registry.ROW_BLOCKS_FROM_BUCKET, "compress", ((1, 4),))  # every bucket, 4 blocks a program
    q = kernelgen.quantizer(spec, head_dim, device=device)
    kernel = q._kernels["compress"]
    assert kernel.loops_rows
    dts = [dtype] + (["bfloat16"] if dtype == "float16" else [])  # 16-bit rows take the prefetching form
    for dt_name in dts:
        dt = getattr(torch, dt_name)
        rows = kernel.configs[0].kwargs["BLOCK_ROWS"] * 4 + 37  # the last program's tail: 1 block partly, 3 not at all
        x = (torch.randn(rows, head_dim, generator=gen) * torch.rand(rows, 1, generator=gen) * 4).to(dt)
        packed = torch.full((rows, q.packed_dim), 0xA5, dtype=torch.uint8, device=device)  # poison
        norms = torch.full((rows, 1), float("nan"), device=device)
        if dt_name == "float32":
            meta = dict(kernel.meta(tuning.LaunchConfig.of(kernel.configs[0]), dt_name, registry.row_bucket(rows)))
            assert meta["ROW_BLOCKS"] == 1
            meta["ROW_BLOCKS"] = 4
            kernel.fn[kernel.grid(rows, meta)](x.to(device), q._compress_rotation[dt], packed, norms, rows,
                                               registry.row_bucket(rows), **meta)
        else:
            q.compress(x.to(device), out=(packed, norms))
        ref_packed, ref_norms, ref_codes, y = reference.compress(x, q.rotation.cpu(), q.boundaries.cpu(), q.bits)
        torch.testing.assert_close(norms.cpu().double().view(-1), ref_norms, rtol=1e-5, atol=1e-6)
        codes = reference.unpack_bitstream(packed.cpu(), q.bits, head_dim)
        _check_codes(codes, ref_codes, y, q.boundaries.cpu(), q.precision[dt])
    if dtype == "float16":
        assert {m[1]["ROW_BLOCKS"] for m in kernel._memo.values()} == {4}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the PTX runs on a GPU only")
@pytest.mark.parametrize("spec,head_dim", sorted({(s, d) for s, d, _, _ in VARIANTS}))
def test_the_fp16_search_s_ptx_and_its_triton_form_give_the_same_bytes(spec, head_dim, gen):
    """On a GPU, compress with INLINE_PTX (what the registry launches) and without it (the Triton form
    the interpreter runs) write identical bytes, for fp16 and bf16 rows."""
    q = kernelgen.quantizer(spec, head_dim, device="cuda")
    kernel = q._kernels["compress"]
    if not kernel.inline_ptx:
        pytest.skip(f"{spec} has no fp16 search (byte groups of {q.layout.bytes_per_group} bytes)")
    for dt in (torch.float16, torch.bfloat16):
        x = (torch.randn(3000, head_dim, generator=gen) * 3).to(dt).cuda()
        x[:5] = 0.0
        packed, norms = q.compress(x)
        again = torch.full_like(packed, 0xA5)
        config = kernel.last_config(3000, str(dt)[6:])
        meta = {**kernel.meta(config, str(dt)[6:], registry.row_bucket(3000)), "INLINE_PTX": False}
        kernel.fn[kernel.grid(3000, meta)](x, q._compress_rotation[dt], again, torch.empty_like(norms), 3000,
                                           registry.row_bucket(3000), **meta)
        assert torch.equal(packed, again)


def test_three_bit_rows_padded_to_256_short_of_pieces_keep_the_slot_form(tmp_path, device, gen):
    """render._coordinate_compress: 3-bit rows padded to 256 that the head dim neither fills nor cuts into
    64-column pieces (D=160; no shipped spec has one) compress by eight slot products, with SLOT_SPLIT at
    small row counts and no TMA form, while the shipped tq3 D=192 and 256 take the coordinate order: the
    slot form, which no shipped module renders any more, still matches the reference (fp16 rows in one
    step, fp32 rows in two passes), and so does decompress."""
    import yaml

    from kernelgen import render
    from kernelgen.cli import main
    from kernelgen.layout import PackLayout

    assert [render._coordinate_compress(PackLayout(3, d)) for d in (64, 128, 160, 192, 224, 256)] == [
        True, True, False, True, False, True]
    assert not any(render._coordinate_compress(PackLayout(b, 256)) for b in (2, 4))
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "specs" / "tq3.yaml").read_text())
    data.update(name="tqslots", head_dims=[160])
    spec = tmp_path / "specs" / "tqslots.yaml"
    spec.parent.mkdir()
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "generated"
    assert main(["build", str(spec), "--out", str(out)]) == 0
    registry.add_kernel_path(out)
    try:
        q = kernelgen.quantizer("tqslots", 160, device=device)
        compress = q._kernels["compress"]
        assert not hasattr(compress.variant.module, "COMPRESS_ROTATION") and compress.splits_slots
        assert not compress.tma_rows
        for dt_name in ("float16", "float32"):
            dt = getattr(torch, dt_name)
            x = torch.randn(37, 160, generator=gen).to(dt)
            packed = torch.full((37, q.packed_dim), 0xA5, dtype=torch.uint8, device=device)  # poison
            norms = torch.full((37, 1), float("nan"), device=device)
            q.compress(x.to(device), out=(packed, norms))
            _, ref_norms, ref_codes, y = reference.compress(x, q.rotation.cpu(), q.boundaries.cpu(), q.bits)
            torch.testing.assert_close(norms.cpu().double().view(-1), ref_norms, rtol=1e-5, atol=1e-6)
            codes = reference.unpack_bitstream(packed.cpu(), q.bits, 160)
            _check_codes(codes, ref_codes, y, q.boundaries.cpu(), q.precision[dt])
            _check_decompress(q, dt_name, 37, device, gen)
        assert [m[1]["SLOT_SPLIT"] for m in compress._memo.values()] == [2, 1]  # fp16 rows split, fp32 not
    finally:
        registry._added_paths.remove(out.resolve())


def test_head_dims_past_the_whole_rotation_keep_two_pass_compress_and_the_step_loop(tmp_path, device, gen,
                                                                                    monkeypatch):
    """A row padded past render.WHOLE_ROTATION_MAX_DIM (D=320 -> 512; no shipped spec has one) compresses in
    two passes and decompresses one 128-dim output step at a time, split over grid axis 1 or looped, with
    no row-block loop: those forms, which no shipped module renders, still match the reference."""
    import yaml

    from kernelgen import render
    from kernelgen.cli import main

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "specs" / "tq4.yaml").read_text())
    data.update(name="tqwide", head_dims=[320])
    spec = tmp_path / "specs" / "tqwide.yaml"
    spec.parent.mkdir()
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "generated"
    assert main(["build", str(spec), "--out", str(out)]) == 0
    assert 320 > render.WHOLE_ROTATION_MAX_DIM
    registry.add_kernel_path(out)
    try:
        q = kernelgen.quantizer("tqwide", 320, device=device)
        assert not q._kernels["compress"].loops_rows and not q._kernels["decompress"].loops_rows
        assert q._kernels["decompress"].output_steps == 4
        for dt_name in ("float16", "float32"):
            dt = getattr(torch, dt_name)
            x = torch.randn(37, 320, generator=gen).to(dt)
            packed = torch.full((37, q.packed_dim), 0xA5, dtype=torch.uint8, device=device)  # poison
            norms = torch.full((37, 1), float("nan"), device=device)
            q.compress(x.to(device), out=(packed, norms))
            _, ref_norms, ref_codes, y = reference.compress(x, q.rotation.cpu(), q.boundaries.cpu(), q.bits)
            torch.testing.assert_close(norms.cpu().double().view(-1), ref_norms, rtol=1e-5, atol=1e-6)
            codes = reference.unpack_bitstream(packed.cpu(), q.bits, 320)
            _check_codes(codes, ref_codes, y, q.boundaries.cpu(), q.precision[dt])
            _check_decompress(q, dt_name, 37, device, gen)  # split over grid axis 1 (37 rows)
        monkeypatch.setattr(registry, "COLUMN_SPLIT_MAX_ROWS", 0)
        q = kernelgen.quantizer("tqwide", 320, device=device)
        _check_decompress(q, "float16", 37, device, gen)  # one program loops over the steps
        assert [m[1]["COLUMN_SPLIT"] for m in q._kernels["decompress"]._memo.values()] == [False]
    finally:
        registry._added_paths.remove(out.resolve())
