"""The launch path: after the first launch of a key, the compiled kernel's launcher is called directly.

On the CPU the path is checked with a fake Triton function (the interpreter has no compiled kernels);
on a GPU the real one runs, including pointers of another alignment (another compiled kernel)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from triton.knobs import HookChain

import kernelgen
import reference
from kernelgen import registry, tuning
from kernelgen.layout import PackLayout


class _Pointer:
    def __init__(self, address: int):
        self.address = address

    def data_ptr(self) -> int:
        return self.address


class _FakeCompiled:
    function, packed_metadata = "function-handle", "packed-metadata"

    def __init__(self, calls):
        self.calls = calls

    def run(self, *args):
        self.calls.append(("direct", args))


class _FakeJit:
    def __init__(self, arg_names, calls):
        self.arg_names, self.calls = arg_names, calls

    def __getitem__(self, grid):
        def launch(*args, **meta):
            self.calls.append(("triton", grid, args, meta))
            return _FakeCompiled(self.calls)
        return launch


@pytest.fixture
def fake_kernel(monkeypatch):
    """The compress kernel of tq4 D=128 with a fake compiled-kernel world and a fixed config."""
    kernel = registry.BoundKernel(registry.load_variant("tq4", 128), "compress")
    calls = []
    kernel.fn = _FakeJit(kernel.fn.arg_names, calls)
    kernel.interpreted, kernel._direct = False, True
    kernel._knobs = SimpleNamespace(launch_enter_hook=HookChain(), launch_exit_hook=HookChain(reversed=True))
    kernel._current_stream = lambda index: f"stream-of-{index}"
    monkeypatch.setattr(kernel, "config", lambda n, dtype, device, args: tuning.LaunchConfig(64, 4, 1))
    return kernel, calls


def test_the_second_launch_of_a_key_calls_the_compiled_launcher_with_every_argument(fake_kernel):
    kernel, calls = fake_kernel
    args = (_Pointer(4096), _Pointer(8192), _Pointer(1024), _Pointer(2048))
    dev = torch.device("cuda", 0)
    kernel.launch(100, "float16", dev, *args)
    assert calls == [("triton", (2, 1), (*args, 100, 128), {"BLOCK_ROWS": 64, "num_warps": 4, "num_stages": 1,
                                                            "PRECISION": "fp16", "INLINE_PTX": True, "ROW_BLOCKS": 1,
                                                            "TMA_STAGES": 0, "RAW_PRODUCT": True, "x_desc": None})]
    kernel.launch(120, "float16", dev, *args)  # same bucket (128), dtype, device and alignment
    assert calls[1] == ("direct", (2, 1, 1, "stream-of-0", "function-handle", "packed-metadata", None, None, None,
                                   *args, 120, 128, 64, "fp16", True, 1, 0, True, None))
    kernel.launch(129, "float16", dev, *args)  # another bucket: the first launch of that key
    assert calls[2][0] == "triton" and calls[2][1] == (3, 1)


def test_decompress_spreads_output_steps_over_grid_axis_1_only_up_to_the_split_bucket(monkeypatch):
    kernel = registry.BoundKernel(registry.load_variant("tq4", 256), "decompress")
    calls = []
    kernel.fn = _FakeJit(kernel.fn.arg_names, calls)
    kernel.interpreted, kernel._direct = False, True
    kernel._knobs = SimpleNamespace(launch_enter_hook=HookChain(), launch_exit_hook=HookChain(reversed=True))
    kernel._current_stream = lambda index: f"stream-of-{index}"
    monkeypatch.setattr(kernel, "config", lambda n, dtype, device, args: tuning.LaunchConfig(32, 4, 1))
    args = (_Pointer(4096), _Pointer(8192), _Pointer(1024), _Pointer(2048), _Pointer(512))
    dev = torch.device("cuda", 0)
    assert kernel.output_steps == 2  # 256 output dims, 128 a step
    small, large = registry.COLUMN_SPLIT_MAX_ROWS, registry.COLUMN_SPLIT_MAX_ROWS + 1
    kernel.launch(8, "float16", dev, *args)
    kernel.launch(8, "float16", dev, *args)
    kernel.launch(small, "float16", dev, *args)
    kernel.launch(large, "float16", dev, *args)
    assert calls[0] == ("triton", (1, 2), (*args, 8, 8), {"BLOCK_ROWS": 32, "num_warps": 4, "num_stages": 1,
                                                            "PRECISION": "fp16", "COLUMN_SPLIT": True,
                                                            "ROW_BLOCKS": 1})
    assert calls[1] == ("direct", (1, 2, 1, "stream-of-0", "function-handle", "packed-metadata", None, None, None,
                                   *args, 8, 8, 32, "fp16", True, 1))
    assert calls[2][:2] == ("triton", (-(-small // 32), 2)) and calls[2][3]["COLUMN_SPLIT"] is True
    bucket = registry.row_bucket(large)
    assert calls[3][:3] == ("triton", (-(-large // 32), 1), (*args, large, bucket))
    assert calls[3][3]["COLUMN_SPLIT"] is False and calls[3][3]["ROW_BLOCKS"] == 1


def test_wide_decompress_takes_row_blocks_past_the_split_bucket(monkeypatch):
    """Head dims over 128: without the column split, a program takes ROW_BLOCKS row blocks (the whole
    rotation in shared memory for fp16 operands), on a grid of one column."""
    kernel = registry.BoundKernel(registry.load_variant("tq4", 256), "decompress")
    kernel.ws_kernel = None  # the Triton kernel's launch (on Hopper GPUs its warp-specialized kernel takes these buckets)
    calls = []
    kernel.fn = _FakeJit(kernel.fn.arg_names, calls)
    kernel.interpreted, kernel._direct = False, False
    monkeypatch.setattr(kernel, "config", lambda n, dtype, device, args: tuning.LaunchConfig(64, 8, 1))
    args = (_Pointer(4096), _Pointer(8192), _Pointer(1024), _Pointer(2048), _Pointer(512))
    assert kernel.loops_rows and kernel.output_steps == 2
    for rows in (1 << 16, 1 << 20):
        kernel.launch(rows, "float16", torch.device("cuda", 0), *args)
    assert calls[0] == ("triton", ((1 << 16) // 128, 1), (*args, 1 << 16, 1 << 16),
                        {"BLOCK_ROWS": 64, "num_warps": 8, "num_stages": 1, "PRECISION": "fp16",
                         "COLUMN_SPLIT": False, "ROW_BLOCKS": 2})
    assert calls[1][:2] == ("triton", ((1 << 20) // 256, 1)) and calls[1][3]["ROW_BLOCKS"] == 4


def test_one_step_decompress_takes_more_row_blocks_a_program_at_larger_buckets(monkeypatch):
    kernel = registry.BoundKernel(registry.load_variant("tq4", 128), "decompress")
    kernel.ws_kernel = None  # the Triton kernel's launch (on Hopper GPUs its warp-specialized kernel takes 2^16 on)
    calls = []
    kernel.fn = _FakeJit(kernel.fn.arg_names, calls)
    kernel.interpreted, kernel._direct = False, True
    kernel._knobs = SimpleNamespace(launch_enter_hook=HookChain(), launch_exit_hook=HookChain(reversed=True))
    kernel._current_stream = lambda index: f"stream-of-{index}"
    monkeypatch.setattr(kernel, "config", lambda n, dtype, device, args: tuning.LaunchConfig(64, 4, 1))
    monkeypatch.setitem(registry.ROW_BLOCKS_FROM_BUCKET, "decompress", ((1 << 18, 4), (1 << 16, 2)))
    args = (_Pointer(4096), _Pointer(8192), _Pointer(1024), _Pointer(2048), _Pointer(512))
    dev = torch.device("cuda", 0)
    assert kernel.loops_rows and kernel.output_steps == 1
    assert [registry.row_blocks("decompress", b, "float16") for b in (1, 1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 20)] == \
        [1, 1, 2, 2, 4, 4]
    one, two, four = 1 << 15, (1 << 16) + 5, (1 << 18) + 7  # buckets 2^15, 2^17 and 2^19
    for n in (one, two, four, four + 1000):
        kernel.launch(n, "float16", dev, *args)
    base = {"BLOCK_ROWS": 64, "num_warps": 4, "num_stages": 1, "PRECISION": "fp16"}
    assert calls[0] == ("triton", (one // 64, 1), (*args, one, one), {**base, "ROW_BLOCKS": 1})
    assert calls[1] == ("triton", (-(-two // 128), 1), (*args, two, 1 << 17), {**base, "ROW_BLOCKS": 2})
    assert calls[2] == ("triton", (-(-four // 256), 1), (*args, four, 1 << 19), {**base, "ROW_BLOCKS": 4})
    assert calls[3] == ("direct", (-(-(four + 1000) // 256), 1, 1, "stream-of-0", "function-handle",
                                   "packed-metadata", None, None, None, *args, four + 1000, 1 << 19, 64, "fp16", 4))


def test_one_step_compress_takes_more_row_blocks_a_program_at_larger_buckets(fake_kernel, monkeypatch):
    kernel, calls = fake_kernel
    monkeypatch.setitem(registry.ROW_BLOCKS_FROM_BUCKET, "compress", ((1 << 18, 4), (1 << 16, 2)))
    args = (_Pointer(4096), _Pointer(8192), _Pointer(1024), _Pointer(2048))
    dev = torch.device("cuda", 0)
    assert kernel.loops_rows and kernel.inline_ptx
    one, two, four = 1 << 15, (1 << 16) + 5, (1 << 18) + 7  # buckets 2^15, 2^17 and 2^19
    for n in (one, two, four, four + 1000):
        kernel.launch(n, "bfloat16", dev, *args)
    base = {"BLOCK_ROWS": 64, "num_warps": 4, "num_stages": 1, "PRECISION": "fp16", "INLINE_PTX": True,
            "TMA_STAGES": 0, "RAW_PRODUCT": False, "x_desc": None}  # no TMA below 2^20 rows; bf16 rows
    assert calls[0] == ("triton", (one // 64, 1), (*args, one, one), {**base, "ROW_BLOCKS": 1})
    assert calls[1] == ("triton", (-(-two // 128), 1), (*args, two, 1 << 17), {**base, "ROW_BLOCKS": 2})
    assert calls[2] == ("triton", (-(-four // 256), 1), (*args, four, 1 << 19), {**base, "ROW_BLOCKS": 4})
    assert calls[3] == ("direct", (-(-(four + 1000) // 256), 1, 1, "stream-of-0", "function-handle",
                                   "packed-metadata", None, None, None, *args, four + 1000, 1 << 19, 64, "fp16", True, 4,
                                   0, False, None))
    kernel.launch(four, "float32", dev, *args)  # fp32 rows: one block a program at every bucket
    assert calls[4][:2] == ("triton", (-(-four // 64), 1)) and calls[4][3]["ROW_BLOCKS"] == 1
    assert [registry.row_blocks("compress", b, "float32") for b in (1, 1 << 16, 1 << 20)] == [1, 1, 1]


def test_compress_runs_its_fp16_search_as_ptx_only_outside_the_interpreter(monkeypatch):
    """INLINE_PTX: the PTX on a GPU; the interpreter cannot run PTX, so it gets the Triton form. Wide
    compress kernels take row blocks too (their one-step fp16 form; on a GPU without TMA); 3-byte groups
    (tq3) have no fp16 search."""
    monkeypatch.setattr(registry, "runs_tma", lambda interpreted: False)
    kernel = registry.BoundKernel(registry.load_variant("tq4", 256), "compress")
    config = tuning.LaunchConfig(32, 4, 1)
    kernel.interpreted = False
    assert kernel.meta(config, "float16", 8) == {"BLOCK_ROWS": 32, "num_warps": 4, "num_stages": 1,
                                                  "PRECISION": "fp16", "INLINE_PTX": True, "ROW_BLOCKS": 1,
                                                  "SLOT_SPLIT": 2, "TMA_STAGES": 0, "RAW_PRODUCT": True, "x_desc": None}
    assert kernel.meta(config, "float16", 1 << 20)["ROW_BLOCKS"] == 16  # rows padded past 128
    kernel.interpreted = True
    assert kernel.meta(config, "float16", 8)["INLINE_PTX"] is False
    tq3 = registry.BoundKernel(registry.load_variant("tq3", 128), "compress")
    assert not tq3.inline_ptx and "INLINE_PTX" not in tq3.meta(config, "float16", 1 << 20)
    tq3_wide = registry.BoundKernel(registry.load_variant("tq3", 256), "compress")
    assert tq3_wide.meta(config, "float16", 1 << 20) == {"BLOCK_ROWS": 32, "num_warps": 4, "num_stages": 1,
                                                         "PRECISION": "fp16", "ROW_BLOCKS": 16, "TMA_STAGES": 0,
                                                         "RAW_PRODUCT": True, "x_desc": None}  # no slots to split


def test_compress_of_rows_padded_past_128_takes_16_row_blocks_at_the_largest_bucket(monkeypatch):
    """registry.WIDE_COMPRESS_ROW_BLOCKS: D=192/256 compress takes 16 row blocks a program at 2^20 rows,
    D<=128 keeps 8 (where it does not read its rows by TMA); smaller buckets, decompress and fp32 rows keep
    their own rule."""
    monkeypatch.setattr(registry, "runs_tma", lambda interpreted: False)
    config = tuning.LaunchConfig(64, 8, 1)
    for spec, head_dim, blocks in (("tq4", 256, 16), ("tq3", 192, 16), ("tq2", 256, 16), ("tq4", 128, 8),
                                   ("tq3", 96, 8), ("tq2", 64, 8)):
        kernel = registry.BoundKernel(registry.load_variant(spec, head_dim), "compress")
        assert kernel.meta(config, "float16", 1 << 20)["ROW_BLOCKS"] == blocks
        assert kernel.meta(config, "bfloat16", 1 << 19)["ROW_BLOCKS"] == 4
        assert kernel.meta(config, "float32", 1 << 20)["ROW_BLOCKS"] == 1
    wide_decompress = registry.BoundKernel(registry.load_variant("tq4", 256), "decompress")
    assert wide_decompress.meta(config, "float16", 1 << 20)["ROW_BLOCKS"] == 4
    assert registry.row_blocks("compress", 1 << 20, "float16", 256) == 16
    assert registry.row_blocks("compress", 1 << 20, "float16", 128) == 8
    assert registry.row_blocks("compress", 1 << 20, "float16") == 8  # no dim given: the bucket rule


def test_wide_compress_splits_its_slot_columns_over_two_programs_at_small_row_counts_for_4_and_3_bits():
    """registry.SLOT_SPLIT_RULE: D=192/256 compress with fp16 operands gives each row block to 2 programs
    up to 2,048 rows at 4 and 3 bits (each half of every slot's columns); 2 bits, larger buckets, fp32
    rows and head dims up to 128 (no SLOT_SPLIT) keep one, and tq3, whose wide compress is one
    coordinate-order product, has no slots to split. The grid holds both programs of each block."""
    config = tuning.LaunchConfig(32, 8, 1)
    for spec, head_dim, small in (("tq4", 256, 2), ("tq4", 192, 2), ("tq2", 256, 1), ("tq2", 192, 1)):
        kernel = registry.BoundKernel(registry.load_variant(spec, head_dim), "compress")
        assert kernel.splits_slots
        for dtype in ("float16", "bfloat16"):
            splits = [kernel.meta(config, dtype, b)["SLOT_SPLIT"] for b in (8, 2048, 4096, 1 << 20)]
            assert splits == [small, small, 1, 1]
        assert kernel.meta(config, "float32", 8)["SLOT_SPLIT"] == 1  # two passes a block: no split
        meta = kernel.meta(config, "float16", 2048)
        assert kernel.grid(1000, meta) == (-(-1000 // 32) * small, 1)
    narrow = registry.BoundKernel(registry.load_variant("tq4", 128), "compress")
    assert not narrow.splits_slots and "SLOT_SPLIT" not in narrow.meta(config, "float16", 8)
    for head_dim in (192, 256):  # tq3: one coordinate-order product, no slots
        coordinate = registry.BoundKernel(registry.load_variant("tq3", head_dim), "compress")
        assert not coordinate.splits_slots and "SLOT_SPLIT" not in coordinate.meta(config, "float16", 8)
    decompress = registry.BoundKernel(registry.load_variant("tq4", 256), "decompress")
    assert not decompress.splits_slots and "SLOT_SPLIT" not in decompress.meta(config, "float16", 8)


def test_compress_reads_its_rows_by_tma_at_the_largest_bucket_on_gpus_with_tma(monkeypatch):
    """registry.TMA_COMPRESS: every spec up to D=128 (one product step a row) takes the TMA loop from 2^20
    rows for 16-bit rows where runs_tma (pipelined 3 deep: the kernel's num_stages too); fp32 rows, smaller
    buckets and the interpreter keep the pointer loads. Rows padded to 256 take it for fp16 and bf16 rows
    (the raw product, and the rows normalized first), one slot column share a program (SLOT_SPLIT 1), at 4
    and 2 bits, for tq3 at D=192 and 256 (in coordinate order, no slots to split; D=192 read in pieces);
    decompress has no TMA form."""
    config = tuning.LaunchConfig(64, 4, 1)
    monkeypatch.setattr(registry, "runs_tma", lambda interpreted: True)
    for spec, head_dim in (("tq4", 128), ("tq4", 96), ("tq3", 128), ("tq2", 64), ("tq4", 64)):
        kernel = registry.BoundKernel(registry.load_variant(spec, head_dim), "compress")
        assert kernel.tma_rows
        meta = kernel.meta(config, "float16", 1 << 20)
        assert (meta["TMA_STAGES"], meta["num_stages"], meta["ROW_BLOCKS"], meta["x_desc"]) == (3, 3, 1, None)
        assert kernel.meta(config, "bfloat16", 1 << 20)["TMA_STAGES"] == 3
        for dtype, bucket in (("float32", 1 << 20), ("float16", 1 << 19), ("float16", 8)):
            other = kernel.meta(config, dtype, bucket)
            assert (other["TMA_STAGES"], other["num_stages"], other["x_desc"]) == (0, 1, None)
    monkeypatch.setattr(registry, "runs_tma", lambda interpreted: False)
    assert kernel.meta(config, "float16", 1 << 20)["TMA_STAGES"] == 0
    monkeypatch.setattr(registry, "runs_tma", lambda interpreted: True)
    for spec, head_dim in (("tq4", 256), ("tq4", 192), ("tq3", 192), ("tq2", 256), ("tq2", 192), ("tq3", 256)):
        kernel = registry.BoundKernel(registry.load_variant(spec, head_dim), "compress")
        assert kernel.tma_rows
        meta = kernel.meta(config, "float16", 1 << 20)
        assert (meta["TMA_STAGES"], meta["num_stages"], meta["ROW_BLOCKS"], meta.get("SLOT_SPLIT", 1)) == (3, 3, 1, 1)
        bf16 = kernel.meta(config, "bfloat16", 1 << 20)
        assert (bf16["TMA_STAGES"], bf16["ROW_BLOCKS"], bf16.get("SLOT_SPLIT", 1), bf16["RAW_PRODUCT"]) == (3, 1, 1, False)
        assert kernel.meta(config, "float32", 1 << 20)["ROW_BLOCKS"] == 1  # fp32 rows: pointer loads
        assert kernel.meta(config, "float16", 8)["TMA_STAGES"] == 0
    assert not registry.BoundKernel(registry.load_variant("tq4", 128), "decompress").tma_rows
    # a head dim off a multiple of 8 has rows off 16 bytes, which a tensor descriptor refuses
    assert [registry.tma_stages(1 << 20, "float16", d, 128, True) for d in (96, 100, 104, 127)] == [3, 0, 3, 0]


def test_rows_go_by_tma_only_on_nvidia_gpus_of_compute_capability_9_on_outside_the_interpreter(monkeypatch):
    """registry.runs_tma: Hopper and later NVIDIA GPUs; not Ampere, not without a GPU, not under the
    interpreter, not on ROCm (no PTX there: registry.runs_ptx)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "hip", None)
    for capability, expected in (((8, 0), False), ((8, 9), False), ((9, 0), True), ((10, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda c=capability: c)
        assert registry.runs_tma(False) is expected, capability
        assert registry.runs_tma(True) is False
    monkeypatch.setattr(torch.version, "hip", "6.2.0")
    assert registry.runs_tma(False) is False
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert registry.runs_tma(False) is False


def test_tma_compress_reads_rows_in_pieces_only_where_the_head_dim_cuts_into_pieces():
    """render._tma_k: the compress of a head dim cut in pieces (D=96 = 64 + 32) reads its rows in boxes
    of render.MIN_PIECE columns (the module's TMA_K, which the registry's descriptor takes), D=128 in boxes
    of render.ROW_TMA_K, and D=192 (padded to 256) in boxes of render.WIDE_TMA_K, for every spec; other
    head dims read one padded box."""
    for spec in ("tq4", "tq3", "tq2"):
        for head_dim in (64, 80, 96, 112, 128, 192, 256):
            kernel = registry.BoundKernel(registry.load_variant(spec, head_dim), "compress")
            box = {96: 32, 128: 64, 192: 64}.get(head_dim)
            tma_k = getattr(kernel.variant.module, "TMA_K", None)
            assert (tma_k and tma_k.value) == box, (spec, head_dim)
            assert kernel.tma_box_columns == (box or kernel.variant.layout.dim_pad)


def test_only_fp16_rows_with_fp16_operands_go_into_a_tma_compress_product_raw():
    """registry.raw_product, which meta passes to every compress kernel with a TMA form as RAW_PRODUCT:
    fp16 rows are exact fp16 operands; bf16 rows (which fp16 may not hold) and fp32 operands take the rows
    normalized first."""
    assert registry.raw_product("float16", "fp16")
    assert not registry.raw_product("bfloat16", "fp16")
    assert not registry.raw_product("float16", "tf32x3") and not registry.raw_product("float16", "ieee")
    config = tuning.LaunchConfig(64, 4, 1)
    for spec, head_dim in (("tq4", 128), ("tq3", 96), ("tq2", 256)):
        kernel = registry.BoundKernel(registry.load_variant(spec, head_dim), "compress")
        for dtype, bucket in (("float16", 1 << 20), ("float16", 8), ("bfloat16", 1 << 20), ("float32", 1 << 20)):
            meta = kernel.meta(config, dtype, bucket)
            assert meta["RAW_PRODUCT"] is (dtype == "float16"), (spec, head_dim, dtype)
            assert meta["RAW_PRODUCT"] is registry.raw_product(dtype, meta["PRECISION"])
    assert "RAW_PRODUCT" not in registry.BoundKernel(registry.load_variant("tq4", 128), "decompress").meta(
        config, "float16", 1 << 20)  # no TMA form


def test_a_tma_launch_takes_a_descriptor_of_the_rows_and_a_few_programs_an_sm(monkeypatch):
    """BoundKernel.tma_launch: the descriptor covers (n_rows, HEAD_DIM) with blocks of BLOCK_ROWS x DIM_PAD,
    or x TMA_K where the module reads its rows in pieces (tq4 D=96: boxes of 32 columns, three a block;
    D=128: two of 64); the grid holds TMA_COMPRESS's programs an SM for the padding and the box (at DIM_PAD
    128, where the product takes the raw fp16 rows, fp16 rows with fp16 operands: 4 in boxes of 32, else
    3; rows normalized first into fp16 products: 3 in pieces, 2 in one box (D=112); into fp32 operands, the
    one-box 2 in pieces too; at 64: 4 either way; at 256: 1 for all), never more than the row blocks."""
    for head_dim, rows, dtype, precision, programs in (
            (96, 100_000, torch.float16, "fp16", 528), (96, 100_000, torch.bfloat16, "fp16", 396),
            (128, 100_000, torch.float16, "fp16", 396), (128, 100_000, torch.bfloat16, "fp16", 396),
            (112, 100_000, torch.float16, "fp16", 396), (112, 100_000, torch.bfloat16, "fp16", 264),
            (96, 100_000, torch.float16, "tf32x3", 264), (128, 100_000, torch.bfloat16, "tf32x3", 264),
            (64, 100_000, torch.float16, "fp16", 528),
            (64, 100_000, torch.bfloat16, "fp16", 528), (96, 1000, torch.float16, "fp16", 16),
            (256, 100_000, torch.float16, "fp16", 132), (192, 100_000, torch.float16, "fp16", 132),
            (256, 100_000, torch.bfloat16, "fp16", 132), (192, 100_000, torch.bfloat16, "fp16", 132)):
        meta = {"BLOCK_ROWS": 64, "PRECISION": precision, "TMA_STAGES": 3, "x_desc": None,
                "RAW_PRODUCT": registry.raw_product(str(dtype).removeprefix("torch."), precision)}
        kernel = registry.BoundKernel(registry.load_variant("tq4", head_dim), "compress")
        monkeypatch.setattr(kernel, "_multiprocessors", lambda: 132)
        x = torch.zeros(rows, head_dim, dtype=dtype)
        grid, launch_meta = kernel.tma_launch(rows, meta, (x,))
        assert grid == (programs, 1)
        desc = launch_meta["x_desc"]
        assert desc.base is x and meta["x_desc"] is None  # the memoized meta is not touched
        assert (list(desc.shape), list(desc.strides)) == ([rows, head_dim], [head_dim, 1])
        assert list(desc.block_shape) == [64, {96: 32, 64: 64, 112: 128, 128: 64, 192: 64}.get(head_dim, 256)]


def test_compress_runs_the_triton_form_of_its_fp16_search_on_rocm(monkeypatch):
    """AMD GPUs (a ROCm build of torch) cannot run PTX: compress there takes the Triton form."""
    kernel = registry.BoundKernel(registry.load_variant("tq4", 128), "compress")
    kernel.interpreted = False
    monkeypatch.setattr(torch.version, "hip", "6.2.0")
    assert kernel.meta(tuning.LaunchConfig(64, 4, 1), "float16", 8)["INLINE_PTX"] is False
    monkeypatch.setattr(torch.version, "hip", None)
    assert kernel.meta(tuning.LaunchConfig(64, 4, 1), "float16", 8)["INLINE_PTX"] is True


def test_another_alignment_device_or_dtype_goes_through_triton_first(fake_kernel):
    kernel, calls = fake_kernel
    aligned = (_Pointer(4096), _Pointer(8192), _Pointer(1024), _Pointer(2048))
    odd_out = (*aligned[:3], _Pointer(2052))  # norms 4 bytes off: Triton compiles another kernel
    kernel.launch(8, "float16", torch.device("cuda", 0), *aligned)
    kernel.launch(8, "float16", torch.device("cuda", 0), *odd_out)
    kernel.launch(8, "float16", torch.device("cuda", 1), *aligned)
    kernel.launch(8, "bfloat16", torch.device("cuda", 0), *aligned)
    assert [c[0] for c in calls] == ["triton"] * 4
    kernel.launch(8, "float16", torch.device("cuda", 0), *odd_out)
    kernel.launch(8, "float16", torch.device("cuda", 1), *aligned)
    assert [c[0] for c in calls[4:]] == ["direct", "direct"]
    assert calls[5][1][3] == "stream-of-1"


@pytest.mark.parametrize("hook", ["chain", "function"])
def test_a_launch_hook_sends_every_launch_through_triton(fake_kernel, hook):
    kernel, calls = fake_kernel
    args = (_Pointer(4096), _Pointer(8192), _Pointer(1024), _Pointer(2048))
    if hook == "chain":  # Triton 3.6: profilers add to the (empty by default) HookChain
        kernel._knobs.launch_exit_hook.add(lambda metadata: None)
    else:  # older Tritons: the hook is a function or None
        kernel._knobs.launch_enter_hook = lambda metadata: None
    for _ in range(3):
        kernel.launch(8, "float16", torch.device("cuda", 0), *args)
    assert [c[0] for c in calls] == ["triton"] * 3


def test_triton_s_default_hooks_do_not_block_the_direct_launch():
    from triton import knobs

    assert not registry._hooked(knobs.runtime.launch_enter_hook)
    assert not registry._hooked(knobs.runtime.launch_exit_hook)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled kernels need a GPU")
def test_repeated_calls_and_misaligned_outputs_give_the_reference_codes(gen):
    q = kernelgen.quantizer("tq4", 128, device="cuda")
    for offset in (0, 1, 0, 1):  # 1: packed and norms one element into their buffers (not 16-byte aligned)
        x = torch.randn(40, 128, generator=gen)
        packed_buf = torch.full((40 * 64 + 1,), 0xAA, dtype=torch.uint8, device="cuda")
        norms_buf = torch.full((41,), float("nan"), device="cuda")
        packed = packed_buf[offset:offset + 40 * 64].view(40, 64)
        norms = norms_buf[offset:offset + 40].view(40, 1)
        q.compress(x.cuda().half(), out=(packed, norms))
        _, ref_norms, ref_codes, _ = reference.compress(x.half(), q.rotation.cpu(), q.boundaries.cpu(), 4)
        codes = reference.unpack_bitstream(packed.cpu(), 4, 128)
        assert (codes != ref_codes).float().mean() < 0.005
        torch.testing.assert_close(norms.cpu().view(-1).double(), ref_norms, rtol=1e-3, atol=0)


def test_direct_launches_only_for_compiled_kernels_of_triton_3_6(monkeypatch):
    variant = registry.load_variant("tq4", 128)
    compiled = not registry.is_interpreted(variant.kernel("compress"))
    monkeypatch.setattr(registry, "DIRECT_LAUNCH", True)
    assert registry.BoundKernel(variant, "compress")._direct == compiled  # never under the interpreter
    monkeypatch.setattr(registry, "DIRECT_LAUNCH", False)  # another Triton version
    assert not registry.BoundKernel(variant, "compress")._direct


# -- the warp-specialized decompress (Gluon, Hopper) ------------------------------------------------------

def test_warp_specialized_decompress_is_rendered_for_rows_padded_to_256_and_rows_of_128_and_96():
    """render._ws_decompress: every spec at D=96, 128, 192 and 256 carries WS_DECOMPRESS, naming a Gluon
    kernel of the module, which reads one-byte groups (tq4, tq2) by TMA, and 3-byte groups (tq3) and tq2's
    24-byte rows at D=96 by pointers; D=64, 80 and 112 do not (not measured), nor would a spec whose 16-bit
    dtypes take fp32 products, nor one-byte groups whose packed rows neither TMA nor WS_DECOMPRESS_PARTS
    takes."""
    from kernelgen import render
    from kernelgen.layout import PackLayout

    for spec in ("tq4", "tq3", "tq2"):
        for head_dim in (64, 80, 96, 112, 128, 192, 256):
            module = registry.load_variant(spec, head_dim).module
            expected = head_dim in (96, 128, 192, 256)
            assert hasattr(module, "WS_DECOMPRESS") is expected, (spec, head_dim)
            if expected:
                kernel = getattr(module, module.WS_DECOMPRESS)
                assert type(kernel).__name__ == "GluonJITFunction"
                by_pointers = spec == "tq3" or (spec, head_dim) == ("tq2", 96)
                assert kernel.arg_names[0] == ("packed_ptr" if by_pointers else "packed_desc"), (spec, head_dim)
                assert registry.BoundKernel(registry.load_variant(spec, head_dim), "decompress").ws_kernel is not None
    fp16 = {"float16": "fp16", "bfloat16": "fp16", "float32": "ieee"}
    assert render._ws_decompress(PackLayout(4, 256), fp16)
    assert not render._ws_decompress(PackLayout(4, 256), {"float16": "ieee", "float32": "ieee"})
    assert render._ws_decompress(PackLayout(4, 160), fp16)  # 80 packed bytes a row: TMA takes 16-byte rows
    assert not render._ws_decompress(PackLayout(4, 136), fp16)  # 68: it does not, nor pointers at 256
    assert render._ws_decompress(PackLayout(3, 136), fp16)  # 3-byte groups go by pointers
    for bits in (4, 3, 2):
        assert render._ws_decompress(PackLayout(bits, 128), fp16) and render._ws_decompress(PackLayout(bits, 96), fp16)
        assert not render._ws_decompress(PackLayout(bits, 112), fp16)


def test_warp_specialized_decompress_partitions_follow_the_padding_and_the_loads():
    """render.WS_DECOMPRESS_PARTS, as the modules carry it: two compute partitions (232 registers a thread
    for the second) where it lists nothing (D=128 by TMA, D=192, 256); tq4 D=96 three (160); tq3 D=128
    three and D=96 four (128), their products issued asynchronously and their codes gathered in pairs of
    groups from the pair table; tq2 D=96, one-byte groups by pointers, four. The ring holds two row blocks
    a partition; each partition has its output buffer and its place in warp_specialize."""
    from kernelgen import render

    expected = {("tq4", 96): (3, 160, False, False), ("tq3", 96): (4, 128, True, True),
                ("tq3", 128): (3, 160, True, True), ("tq2", 96): (4, 128, False, False)}
    for spec in ("tq4", "tq3", "tq2"):
        for head_dim in (96, 128, 192, 256):
            variant = registry.load_variant(spec, head_dim)
            module = variant.module
            parts, regs, issued, pairs = expected.get((spec, head_dim), (2, 232, False, False))
            assert render._ws_decompress_form(variant.layout) == (parts, regs, issued, pairs)
            source = Path(module.__file__).read_text()
            assert module.WS_WORKER_REGS.value == regs, (spec, head_dim)
            ring = hasattr(module, "WS_STAGES")
            assert ring is (spec != "tq3" and (spec, head_dim) != ("tq2", 96))
            if ring:
                assert module.WS_STAGES.value == 2 * parts
            assert f"Compute partition PART of {parts} " in source
            assert f"outs = gl.allocate_shared_memory(out_desc.dtype, [{parts}, BM, D]" in source
            assert source.count("(_ws_decompress_blocks, (") == parts
            workers = ["1"] * ring + ["4"] * (parts - 1), ["24"] * ring + ["WS_WORKER_REGS"] * (parts - 1)
            assert f"], [{', '.join(workers[0])}], [{', '.join(workers[1])}])" in source, (spec, head_dim)
            assert ("is_async=True" in source) is issued and ("warpgroup_mma_wait(0" in source) is issued
            assert hasattr(module, "WS_CENTROID_PAIRS") is pairs and ("pair0 = gl.load(centroids_ptr" in source) is pairs
            assert f"programs), {parts}):" in source


def test_hopper_decompress_of_rows_padded_to_128_starts_at_the_largest_bucket():
    """registry.ws_from: compress's Gluon kernel from WS_COMPRESS_FROM, decompress's from
    WS_DECOMPRESS_FROM, but for a head dim padded to 128 (D=96, no faster than its Triton kernel at 65,536
    rows) from WS_DECOMPRESS_PADDED_128_FROM (the largest bucket); takes_ws follows the layout."""
    assert registry.WS_DECOMPRESS_PADDED_128_FROM == registry.MAX_ROW_BUCKET > registry.WS_DECOMPRESS_FROM
    for spec, head_dim, first in (("tq4", 96, registry.WS_DECOMPRESS_PADDED_128_FROM),
                                  ("tq3", 96, registry.WS_DECOMPRESS_PADDED_128_FROM),
                                  ("tq2", 96, registry.WS_DECOMPRESS_PADDED_128_FROM),
                                  ("tq4", 128, registry.WS_DECOMPRESS_FROM), ("tq3", 192, registry.WS_DECOMPRESS_FROM)):
        variant = registry.load_variant(spec, head_dim)
        assert registry.BoundKernel(variant, "decompress").ws_kernel is not None, (spec, head_dim)
        assert registry.ws_from("decompress", variant.layout) == first
        assert registry.takes_ws("decompress", first, "float16", "fp16", True, variant.layout)
        assert not registry.takes_ws("decompress", first // 2, "float16", "fp16", True, variant.layout)
    assert registry.ws_from("compress", registry.load_variant("tq4", 256).layout) == registry.WS_COMPRESS_FROM
    assert registry.ws_from("decompress") == registry.WS_DECOMPRESS_FROM


# -- the warp-specialized compress (Gluon, Hopper) --------------------------------------------------------

def test_warp_specialized_compress_is_rendered_for_one_product_a_block_at_d256():
    """render._ws_compress: every spec at D=256 carries WS_COMPRESS, naming a Gluon kernel that takes
    descriptors of the rows and of the rotation, and the packed rows by descriptor (tq4 and tq2, the joined
    product) or by pointer (tq3, coordinate order, words); every other module does not, nor would a layout
    whose fp16 rows take fp32 products, one without the Triton kernel's one product a block (D=192 reads
    its rows in pieces), or one without the Hopper decompress."""
    from kernelgen import render
    from kernelgen.layout import PackLayout

    for spec in ("tq4", "tq3", "tq2"):
        for head_dim in (64, 80, 96, 112, 128, 192, 256):
            variant = registry.load_variant(spec, head_dim)
            expected = head_dim == 256
            assert hasattr(variant.module, "WS_COMPRESS") is expected, (spec, head_dim)
            bound = registry.BoundKernel(variant, "compress")
            assert (bound.ws_kernel is not None) is expected
            if expected:
                kernel = getattr(variant.module, variant.module.WS_COMPRESS)
                assert type(kernel).__name__ == "GluonJITFunction"
                packed = "packed_ptr" if spec == "tq3" else "packed_desc"
                assert kernel.arg_names == ["x_desc", "rotation_desc", packed, "norms_ptr", "n_rows"]
                assert bound.ws_warps == 8
            assert registry.BoundKernel(variant, "decompress_rotated").ws_kernel is None
    fp16 = {"float16": "fp16", "bfloat16": "fp16", "float32": "ieee"}
    assert render._ws_compress(PackLayout(4, 256), fp16, True, False, True)
    assert render._ws_compress(PackLayout(3, 256), fp16, False, True, True)
    assert not render._ws_compress(PackLayout(4, 256), {"float16": "ieee", "float32": "ieee"}, True, False, True)
    assert not render._ws_compress(PackLayout(4, 256), fp16, False, False, True)
    assert not render._ws_compress(PackLayout(4, 256), fp16, True, False, False)
    assert not render._ws_compress(PackLayout(3, 224), fp16, False, True, True)  # groups past the row
    assert not render._ws_compress(PackLayout(4, 128), fp16, True, False, True)


@pytest.mark.parametrize("spec", ["tq4", "tq2"])
def test_the_hopper_compress_rotation_is_the_triton_kernels_joined_slots(spec):
    """LoadedVariant.hopper_compress_rotation (made on the host for WS_COMPRESS) equals the `joined` that the
    Triton compress builds from the slots in its kernel (the same join, reshape and permute, in torch), and
    its order (PackLayout.joined_columns) puts all codes of a group in the columns one thread of the
    product's accumulator holds: lane q of a quad holds columns 8c + 2q and 8c + 2q + 1 of every 8-column
    chunk c, so with g codes a group, chunks (g/2) a .. (g/2) a + g/2 - 1 of lane q hold group 4a + q
    (g = 4) or group 4c + q (g = 2)."""
    variant = registry.load_variant(spec, 256)
    lay = variant.layout
    slots = variant.slots("fp16")
    if lay.codes_per_group == 2:
        joined = torch.stack([slots[0], slots[1]], dim=-1).reshape(256, 256)
    else:
        joined = torch.stack([torch.stack([slots[0], slots[1]], -1), torch.stack([slots[2], slots[3]], -1)], -1)
        joined = joined.reshape(256, lay.slot_pad // 4, 4, 2, 2).permute(0, 1, 4, 2, 3).reshape(256, 256)
    host = variant.hopper_compress_rotation()
    assert host.dtype == torch.float16 and host.is_contiguous()
    assert torch.equal(host, joined)
    g, columns = lay.codes_per_group, lay.joined_columns()
    assert sorted(columns) == list(range(256))
    chunks = g // 2
    for q in range(4):
        for a in range(256 // (8 * chunks)):
            held = {columns[8 * (chunks * a + k) + 2 * q + e] for k in range(chunks) for e in range(2)}
            group = 4 * a + q
            assert held == {g * group + j for j in range(g)}, (q, a)


def test_the_joined_order_refuses_groups_it_cannot_split_in_a_thread():
    """PackLayout.joined_columns is defined for 2 and 4 codes a group; 3-bit groups (8 codes) take the
    lane-group order instead, and asking for the joined order raises a LayoutError saying what it takes."""
    from kernelgen.layout import LayoutError, PackLayout

    assert PackLayout(4, 256).joined_columns() == tuple(range(256))
    with pytest.raises(LayoutError, match="2 or 4 codes a group"):
        PackLayout(3, 256).joined_columns()


def test_the_ws_rule_takes_16_bit_rows_for_compress_and_16_bit_output_for_decompress(monkeypatch):
    """registry.takes_ws: from ws_from(op) rows on, where the GPU can (`ws`), with fp16 products, of 16-bit
    rows (compress) or output (decompress)."""
    monkeypatch.setattr(registry, "WS_COMPRESS_FROM", 1 << 16)
    monkeypatch.setattr(registry, "WS_DECOMPRESS_FROM", 1 << 15)
    assert registry.takes_ws("compress", 1 << 16, "float16", "fp16", True)
    assert not registry.takes_ws("compress", 1 << 15, "float16", "fp16", True)
    assert registry.takes_ws("compress", 1 << 20, "bfloat16", "fp16", True)
    assert not registry.takes_ws("compress", 1 << 20, "float32", "tf32x3", True)
    assert not registry.takes_ws("compress", 1 << 20, "float16", "fp16", False)
    assert not registry.takes_ws("compress", 1 << 20, "float16", "ieee", True)
    assert registry.takes_ws("decompress", 1 << 15, "bfloat16", "fp16", True)
    assert not registry.takes_ws("decompress", 1 << 14, "float16", "fp16", True)
    assert not registry.takes_ws("decompress", 1 << 20, "float32", "fp16", True)


@pytest.mark.parametrize("spec,dtype", [("tq4", "float16"), ("tq2", "float16"), ("tq3", "float16"),
                                        ("tq4", "bfloat16"), ("tq3", "bfloat16")])
def test_warp_specialized_compress_compiles_for_hopper_without_a_gpu(spec, dtype):
    """The rendered Gluon compress compiles for sm_90a here: two compute partitions of 8 warps and a
    one-warp loader (twenty warps: warps go by fours), each warpgroup's product a wgmma of N=128 (half of
    the rotation's columns), the rows by TMA, turns by mbarriers, and shared memory within an H100's 227 KB
    a block (the 128 KB rotation, two 32 KB row buffers). tq4 and tq2 search with the module's fp16 PTX
    and store by TMA; tq3 searches in fp32 and stores 4-byte words, never a byte: 3 a quad of groups, a
    thread holding one quad of each of its 2 rows, in each partition (besides the norms' 2 stores a
    partition). bf16 rows are normalized in place as fp16 first (conversions to fp16, none to bf16)."""
    compiled = _compile_ws_for_hopper(spec, 256, op="compress", dtype=dtype)
    ptx = compiled["ptx"]
    assert compiled["num_warps"] == 20
    assert 128 * 1024 + 2 * 32 * 1024 < compiled["shared"] <= 227 * 1024
    assert "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16" in ptx
    assert "setmaxnreg" in ptx and "cp.async.bulk.tensor" in ptx
    assert "mbarrier.try_wait" in ptx.split(".entry")[1]
    assert ("set.ge.f16x2.f16x2" in ptx) is compiled["by_tma"] is (spec != "tq3")
    stores = re.findall(r"st\.global[.\w]* ", ptx)
    assert set(stores) == {"st.global.b32 "}, set(stores)
    assert len(stores) == 2 * 2 + (0 if compiled["by_tma"] else 2 * 2 * 3), len(stores)
    if spec == "tq3":  # its search runs in fp32: fp16 conversions only for bf16 rows' operand
        assert ("cvt.rn.f16x2.f32" in ptx) is (dtype == "bfloat16")
    assert "cvt.rn.bf16" not in ptx


@pytest.mark.parametrize("spec", ["tq4", "tq2", "tq3"])
def test_warp_specialized_compress_launches_go_through_the_compiled_launcher_once_compiled(spec, monkeypatch):
    """BoundKernel.launch_ws for compress, checked with a fake Gluon kernel and launcher: fp16 rows from
    WS_COMPRESS_FROM on go to the Gluon kernel at 8 warps, with descriptors of the rows (block 64 x 256) and
    of the rotation, the packed rows (tq4, tq2: a descriptor, block 64 x SLOT_PAD; tq3: the tensor) and the
    norms; grid at most one program an SM; the second launch calls the compiled kernel's launcher; bf16 rows
    and n_rows off 16 are other specializations. Rows below the rule, rows off 16 bytes, and packed rows off
    16 bytes (TMA) or off 4 (tq3's word stores) are declined (the Triton kernel runs)."""
    kernel = registry.BoundKernel(registry.load_variant(spec, 256), "compress")
    lay = kernel.variant.layout
    calls = []

    class FakeGluon:
        arg_names = kernel.ws_kernel.arg_names

        def __getitem__(self, grid):
            def launch(*args, num_warps):
                calls.append(("gluon", grid, args, num_warps))
                return f"compiled-{len(calls)}"
            return launch

    from triton.experimental.gluon import language as gl

    kernel.ws_kernel = FakeGluon()
    kernel.interpreted, kernel._direct = False, True
    kernel._knobs = SimpleNamespace(launch_enter_hook=HookChain(), launch_exit_hook=HookChain(reversed=True))
    state = {"sms": 132, "stream": lambda index: f"stream-of-{index}", "rotation_desc": "rotation-descriptor",
             "row_layouts": {dt: gl.NVMMASharedLayout.get_default_for([64, 256], g)
                             for dt, g in ((torch.float16, gl.float16), (torch.bfloat16, gl.bfloat16))},
             "packed_layout": gl.NVMMASharedLayout.get_default_for([64, lay.slot_pad], gl.uint8)}
    monkeypatch.setattr(kernel, "_ws_state", lambda device: state)
    monkeypatch.setattr(registry, "launch_compiled", lambda compiled, grid, stream, args:
                        calls.append(("direct", compiled, grid, stream, args)))
    dev = torch.device("cuda", 0)

    def args_for(n, dtype=torch.float16, x_offset=0, packed_offset=0):
        x = torch.zeros(n * 256 + 8, dtype=dtype)[x_offset:x_offset + n * 256].view(n, 256)
        packed = torch.zeros(n * lay.packed_dim + 16, dtype=torch.uint8)[packed_offset:packed_offset + n * lay.packed_dim]
        return x, None, packed.view(n, lay.packed_dim), torch.zeros(n, 1)

    big = 1 << 20
    first = args_for(big)
    assert kernel.launch_ws(big, big, "float16", dev, first)
    assert kernel.launch_ws(big, big, "float16", dev, first)
    kind, grid, args, warps = calls[0]
    assert (kind, grid, warps, args[1], args[3:]) == ("gluon", (132, 1), 8, "rotation-descriptor", (first[3], big))
    assert args[0].base is first[0] and args[0].block_shape == [64, 256] and args[0].shape == [big, 256]
    if spec == "tq3":
        assert args[2] is first[2]
    else:
        assert args[2].base is first[2] and args[2].block_shape == [64, lay.slot_pad]
        assert args[2].shape == [big, lay.packed_dim]
    kind, compiled, grid, stream, direct_args = calls[1]
    assert (kind, compiled, grid, stream) == ("direct", "compiled-1", (132, 1), "stream-of-0")
    assert direct_args[0].base is first[0] and direct_args[1] == args[1] and direct_args[3:] == args[3:]
    assert direct_args[2] is first[2] if spec == "tq3" else direct_args[2].base is first[2]
    before = len(calls)
    assert kernel.launch_ws(63, big, "float16", dev, args_for(63))  # n_rows off 16: another specialization
    assert calls[before][:2] == ("gluon", (1, 1))
    assert kernel.launch_ws(big, big, "bfloat16", dev, args_for(big, torch.bfloat16))  # another specialization
    assert calls[-1][:2] == ("gluon", (132, 1)) and calls[-1][2][0].base.dtype == torch.bfloat16
    before = len(calls)
    assert kernel.launch_ws(big, registry.WS_COMPRESS_FROM // 2, "float16", dev, first) is False
    assert kernel.launch_ws(100, big, "float16", dev, args_for(100, x_offset=4)) is False  # 8 bytes in
    assert kernel.launch_ws(100, big, "float16", dev, args_for(100, packed_offset=2)) is False
    assert len(calls) == before
    assert kernel.launch_ws(100, big, "float16", dev, args_for(100, packed_offset=4)) is (spec == "tq3")


def test_the_joined_product_is_rendered_for_tq4_rows_padded_to_256_in_one_box():
    """render._joined_product: tq4 D=256's TMA compress takes one product against the slots joined into
    coordinate order (fp16 rows, RAW_PRODUCT); D=192 (read in TMA_K pieces), tq2 (four codes a group), tq3
    (coordinate order already) and rows of 128 or less do not."""
    for spec in ("tq4", "tq3", "tq2"):
        for head_dim in (64, 80, 96, 112, 128, 192, 256):
            source = Path(registry.load_variant(spec, head_dim).module.__file__).read_text()
            assert ("joined = tl.join(w0, w1).reshape(DIM_PAD, DIM_PAD)" in source) is ((spec, head_dim) == ("tq4", 256))


def test_rotation_pieces_hold_the_rows_each_code_of_a_byte_group_multiplies():
    """LoadedVariant.rotation_pieces: piece j (rows j * SLOT_PAD on) is the padded rotation's rows j, j + g,
    ..., fp16, in group order for one-byte groups and in the module's WS_GROUP_ORDER for tq3; past the head
    dim, zero rows (D=192: groups 96..127 of tq4, 24..31 of tq3)."""
    for spec, head_dim in (("tq4", 256), ("tq2", 192), ("tq4", 192), ("tq3", 256), ("tq3", 192)):
        variant = registry.load_variant(spec, head_dim)
        lay = variant.layout
        g, pad = lay.codes_per_group, lay.slot_pad
        order = getattr(variant.module, "WS_GROUP_ORDER", tuple(range(pad)))
        assert (order != tuple(range(pad))) is (spec == "tq3")
        pieces = variant.rotation_pieces()
        assert pieces.dtype == torch.float16 and pieces.shape == (g * pad, lay.dim_pad)
        rotation = variant.rotation.to(torch.float16)
        for j in range(g):
            for k in range(pad):
                if order[k] < lay.groups:
                    assert torch.equal(pieces[j * pad + k, :head_dim], rotation[g * order[k] + j])
                else:
                    assert not pieces[j * pad + k].any()
            assert not pieces[:, head_dim:].any()


@pytest.mark.parametrize("head_dim", [128, 136, 192, 200, 256])
def test_quarter_group_order_gives_each_lane_of_a_quad_one_contiguous_quarter_of_the_packed_row(head_dim):
    """layout.PackLayout.quarter_group_order, for 3-byte groups: a permutation of the slot's positions in
    which lane q of a quad, holding positions 8i + 2q and 8i + 2q + 1 of every 8-position chunk i (a wgmma
    register operand's columns), holds groups SLOT_PAD/4 * q .. SLOT_PAD/4 * (q + 1) - 1 in order; and
    quarter_word_bytes divides the packed row and the quarter."""
    lay = PackLayout(3, head_dim)
    pad = lay.slot_pad
    order = lay.quarter_group_order()
    assert sorted(order) == list(range(pad))
    for q in range(4):
        held = [order[8 * i + 2 * q + h] for i in range(pad // 8) for h in (0, 1)]
        assert held == list(range(pad // 4 * q, pad // 4 * (q + 1)))
    word = lay.quarter_word_bytes
    assert lay.packed_dim % word == 0 and (pad // 4 * 3) % word == 0 and word in (1, 2, 4, 8)
    assert word == {128: 4, 136: 1, 192: 8, 200: 1, 256: 8}[head_dim]  # D=128: 48-byte rows, 12-byte quarters


@pytest.mark.parametrize("head_dim", [128, 192, 256])
def test_tq3_operand_by_quarters_times_the_reordered_pieces_is_the_reference_decompress(head_dim, gen):
    """What the tq3 Hopper decompress computes, written in torch: each row's 3-byte groups read as a
    little-endian word a quarter (as the kernel's 8-byte loads do), a group's bytes put back together, the
    group words placed in WS_GROUP_ORDER, code j's centroids times piece j, summed and scaled by the norm;
    equal to the float64 reference decompress within fp16 rounding."""
    variant = registry.load_variant("tq3", head_dim)
    lay, module = variant.layout, variant.module
    pad, order = lay.slot_pad, module.WS_GROUP_ORDER
    rows = 37
    packed = torch.randint(0, 256, (rows, lay.packed_dim), generator=gen, dtype=torch.uint8)
    norms = torch.rand(rows, generator=gen) * 10
    full = torch.zeros(rows, pad * 3, dtype=torch.int64)
    full[:, :lay.packed_dim] = packed.long()
    quarters = full.view(rows, 4, pad // 4 * 3)  # a thread's bytes: one quarter of a row
    groups = quarters.view(rows, 4, pad // 4, 3)
    words = (groups[..., 0] << 16 | groups[..., 1] << 8 | groups[..., 2]).view(rows, pad)  # group n at n
    operand = words[:, list(order)]  # position k holds group order[k]
    pieces = variant.rotation_pieces().double().view(lay.codes_per_group, pad, lay.dim_pad)
    centroids = variant.centroids.to(torch.float16).double()
    out = sum(centroids[(operand >> lay.code_shift(j)) & (lay.levels - 1)] @ pieces[j]
              for j in range(lay.codes_per_group))
    out = out[:, :head_dim] * norms[:, None].double()
    expected = reference.decompress(packed, norms, variant.rotation, variant.centroids, 3, head_dim,
                                    rotated=False, dtype=torch.float32)
    scale = expected.abs().max(dim=1, keepdim=True).values
    assert ((out - expected).abs() / scale).max() < 2e-3


def test_decompress_takes_the_warp_specialized_kernel_only_for_16_bit_output_on_hopper_at_large_buckets(
        monkeypatch):
    """registry.runs_ws: NVIDIA GPUs of compute capability 9 only (Hopper's warpgroup products), not
    under the interpreter nor on ROCm, nor with a Triton other than the one the Gluon kernels are written
    against (GLUON_TRITON); registry.takes_ws: 16-bit output with fp16 products from WS_DECOMPRESS_FROM
    rows on."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(registry, "_triton_minor", lambda: registry.GLUON_TRITON)
    for capability, expected in (((8, 0), False), ((9, 0), True), ((10, 0), False), ((12, 0), False)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda c=capability: c)
        assert registry.runs_ws(False) is expected, capability
        assert registry.runs_ws(True) is False
    for version in ((3, 5), (3, 7), (4, 0)):
        monkeypatch.setattr(registry, "_triton_minor", lambda v=version: v)
        assert registry.runs_ws(False) is False, version
    monkeypatch.setattr(registry, "_triton_minor", lambda: registry.GLUON_TRITON)
    monkeypatch.setattr(torch.version, "hip", "6.2.0")
    assert registry.runs_ws(False) is False
    first = registry.WS_DECOMPRESS_FROM
    assert registry.takes_ws("decompress", first, "float16", "fp16", True)
    assert registry.takes_ws("decompress", 1 << 20, "bfloat16", "fp16", True)
    assert not registry.takes_ws("decompress", first // 2, "float16", "fp16", True)
    assert not registry.takes_ws("decompress", first, "float32", "ieee", True)
    assert not registry.takes_ws("decompress", first, "float16", "ieee", True)
    assert not registry.takes_ws("decompress", first, "float16", "fp16", False)


def test_without_a_hopper_gpu_decompress_keeps_its_triton_kernel_at_every_bucket(device, gen, monkeypatch):
    """BoundKernel.launch_ws declines where runs_ws does not hold (here: no Hopper GPU, or the
    interpreter), so the Triton kernel runs, its config looked up, and matches the reference, even with
    WS_DECOMPRESS_FROM at 1 row."""
    if registry.runs_ws(registry.is_interpreted(registry.load_variant("tq4", 256).kernel("decompress"))):
        pytest.skip("this GPU runs the warp-specialized kernel (tests/test_generated_kernels.py covers it)")
    monkeypatch.setattr(registry, "WS_DECOMPRESS_FROM", 1)
    q = kernelgen.quantizer("tq4", 256, device=device)
    kernel = q._kernels["decompress"]
    assert kernel.ws_kernel is not None
    args = (torch.zeros(1, 128, dtype=torch.uint8), None, None, None, torch.zeros(1, 256, dtype=torch.float16))
    assert kernel.launch_ws(1, 1 << 20, "float16", torch.device(device), args) is False
    rows = 37
    packed = torch.randint(0, 256, (rows, q.packed_dim), generator=gen, dtype=torch.uint8)
    norms = torch.rand(rows, 1, generator=gen) * 10
    out = torch.full((rows, 256), float("nan"), dtype=torch.float16, device=device)
    q.decompress(packed.to(device), norms.to(device), out=out)
    assert kernel._memo, "the Triton kernel's config was not looked up"
    expected = reference.decompress(packed, norms.view(-1), q.rotation.cpu(), q.centroids.cpu(), q.bits, 256,
                                    rotated=False, dtype=torch.float16)
    got = out.cpu().double()
    assert not got.isnan().any()
    scale = expected.abs().max(dim=1, keepdim=True).values
    assert ((got - expected).abs() / scale).max() <= 2e-3


# The compile runs in a fresh process: the Triton interpreter, which runs the other kernels of this suite,
# leaves triton.language patched after an interpreted kernel calls a @triton.jit helper (its
# InterpretedFunction.__call__ restores nothing), and a real compile in that process then fails (in
# gl.cdiv, on an IR value) unless Triton's cache already holds the kernel.
_COMPILE_WS = r"""
import json, sys
import torch, triton
from triton.backends.compiler import GPUTarget
from triton.experimental.gluon import language as gl
from triton.experimental.gluon._runtime import GluonASTSource
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
from triton.runtime.jit import mangle_type
from kernelgen import registry

spec, head_dim, kernels, op, dtype = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
if kernels:
    registry.add_kernel_path(kernels)
variant = registry.load_variant(spec, head_dim)
module, lay = variant.module, variant.layout
block = module.WS_BLOCK_ROWS.value


def desc(t, shape, box, dtype):
    return TensorDescriptor(t, shape, [shape[1], 1], box, gl.NVMMASharedLayout.get_default_for(box, dtype))


if op == "compress":
    kernel = getattr(module, module.WS_COMPRESS)
    rotation = variant.hopper_compress_rotation()
    by_tma = "packed_desc" in kernel.arg_names
    signature = {"x_desc": mangle_type(desc(torch.zeros(4, head_dim, dtype=getattr(torch, dtype)), [4, head_dim],
                                            [block, lay.dim_pad], getattr(gl, dtype))),
                 "rotation_desc": mangle_type(desc(rotation, list(rotation.shape), list(rotation.shape), gl.float16)),
                 kernel.arg_names[2]: mangle_type(desc(torch.zeros(4, lay.packed_dim, dtype=torch.uint8),
                                                       [4, lay.packed_dim], [block, lay.slot_pad], gl.uint8))
                 if by_tma else "*u8",
                 "norms_ptr": "*fp32", "n_rows": "i32"}
    pointers = (3,) if by_tma else (2, 3)
    source = GluonASTSource(fn=kernel, signature=signature, constexprs={},
                            attrs={(i,): [["tt.divisibility", 16]] for i in pointers})
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 8})
    print(json.dumps({"num_warps": compiled.metadata.num_warps, "shared": compiled.metadata.shared,
                      "ptx": compiled.asm["ptx"], "by_tma": by_tma}))
    sys.exit(0)
pieces = variant.rotation_pieces()
kernel = getattr(module, module.WS_DECOMPRESS)
by_tma = kernel.arg_names[0] == "packed_desc"
packed = by_tma and desc(torch.zeros(4, lay.packed_dim, dtype=torch.uint8), [4, lay.packed_dim],
                         [block, lay.slot_pad], gl.uint8)
signature = {kernel.arg_names[0]: mangle_type(packed) if by_tma else "*u8",
             "pieces_desc": mangle_type(desc(pieces, list(pieces.shape), [lay.slot_pad, lay.dim_pad], gl.float16)),
             "out_desc": mangle_type(desc(torch.zeros(4, head_dim, dtype=torch.float16), [4, head_dim],
                                          [block, lay.dim_pad], gl.float16)),
             "norms_ptr": "*fp32", "centroids_ptr": "*i32" if getattr(module, "WS_CENTROID_PAIRS", False) else "*fp16",
             "n_rows": "i32"}
pointers = (3, 4) if by_tma else (0, 3, 4)
source = GluonASTSource(fn=kernel, signature=signature, constexprs={},
                        attrs={(i,): [["tt.divisibility", 16]] for i in pointers})
compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
print(json.dumps({"num_warps": compiled.metadata.num_warps, "shared": compiled.metadata.shared,
                  "ptx": compiled.asm["ptx"], "by_tma": by_tma}))
"""


def _compile_ws_for_hopper(spec, head_dim, kernels="", op="decompress", dtype="float16"):
    """The module's WS_DECOMPRESS (or WS_COMPRESS, of `dtype` rows) compiled for sm_90a on this machine
    (ptxas ships with Triton), in a fresh process without the interpreter: its warps, shared memory, PTX and
    whether it reads (decompress) or stores (compress) the packed rows by TMA."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", _COMPILE_WS, spec, str(head_dim), str(kernels), op, dtype], env=env,
                         cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.parametrize("spec,head_dim", [("tq4", 256), ("tq2", 192), ("tq3", 256), ("tq4", 128), ("tq2", 128),
                                           ("tq3", 128), ("tq4", 96), ("tq3", 96), ("tq2", 96)])
def test_warp_specialized_decompress_compiles_for_hopper_without_a_gpu(spec, head_dim):
    """The rendered Gluon kernel compiles for sm_90a here: its compute partitions (render.WS_DECOMPRESS_PARTS,
    4 warps each) and, for packed rows by TMA, a loader (warps go by fours: 12 for two partitions, 16 for
    three), the products as wgmma of the whole padded row, and shared memory within an H100's 227 KB a
    block. tq4 D=256 has two pieces of K=128; tq2 D=192 four of K=64, its rows padded; tq3 eight of K=32,
    its bytes by pointers (at D=128 and 96, of K=16, its quarters of 12 bytes in 4-byte words); tq2 D=96
    four of K=32, its 24-byte rows by pointers (a quarter of a row, 8 bytes, a load)."""
    from kernelgen import render

    compiled = _compile_ws_for_hopper(spec, head_dim)
    variant = registry.load_variant(spec, head_dim)
    lay, by_tma, ptx = variant.layout, compiled["by_tma"], compiled["ptx"]
    parts, _, _, pairs = render._ws_decompress_form(lay)
    assert parts == {("tq4", 96): 3, ("tq3", 128): 3, ("tq3", 96): 4, ("tq2", 96): 4}.get((spec, head_dim), 2)
    assert compiled["num_warps"] == 4 * parts + (4 if by_tma else 0)
    assert 0 < compiled["shared"] <= 227 * 1024
    assert f"wgmma.mma_async.sync.aligned.m64n{lay.dim_pad}k16.f32.f16.f16" in ptx
    assert "setmaxnreg" in ptx and "cp.async.bulk.tensor" in ptx
    assert "mbarrier.try_wait" in ptx.split(".entry")[1]
    # packed bytes by pointers: loads of WS_PACKED_ALIGN bytes (a quarter of a row in words, 2 rows a
    # thread, once before a partition's loop and once in it), never a byte a load; the norms' loads are
    # 4 bytes wide too (2 rows a thread, 2 a partition)
    # tq3 at D<=128 gathers two groups' codes a load from the pair table: 4-byte loads, none of 2 bytes
    gathers = re.findall(r"ld\.global(?:\.nc)?\.[bu]16 ", ptx)
    assert (not gathers) is pairs is (spec == "tq3" and head_dim <= 128), len(gathers)
    word = 8 * getattr(variant.module, "WS_PACKED_ALIGN", 8)
    byte_loads = re.findall(r"ld\.global(?:\.nc)?\.[bu]8 ", ptx)
    word_loads = re.findall(rf"ld\.global(?:\.nc)?\.[bu]{word} ", ptx)
    quarter_words = lay.slot_pad // 4 * lay.bytes_per_group * 8 // word
    norm_loads = 2 * parts if word == 32 else 0
    pair_gathers = parts * lay.codes_per_group * 2 * lay.slot_pad // 8 if pairs else 0  # 2 rows, 2 pairs a quarter
    assert not byte_loads and len(word_loads) == (0 if by_tma else parts * 2 * 2 * quarter_words + norm_loads
                                                  + pair_gathers), (
        len(byte_loads), len(word_loads))


@pytest.mark.parametrize("head_dim,word", [(136, 1), (144, 2), (160, 4)])
def test_tq3_hopper_decompress_of_rows_off_8_bytes_reads_narrower_words_and_compiles(tq3_odd_rows, head_dim, word):
    """The template's other word widths (the shipped tq3 rows, 72 and 96 bytes, take 8): the module says the
    width (WS_PACKED_ALIGN, PackLayout.quarter_word_bytes), its groups come in WS_GROUP_ORDER, and the kernel
    compiles for sm_90a with its products as wgmma; byte loads only where the width is 1."""
    folder, spec = tq3_odd_rows
    compiled = _compile_ws_for_hopper(spec, head_dim, folder)
    variant = registry.load_variant(spec, head_dim)
    module, lay, ptx = variant.module, variant.layout, compiled["ptx"]
    assert not compiled["by_tma"] and module.WS_PACKED_ALIGN == word == lay.quarter_word_bytes
    assert module.WS_GROUP_ORDER == lay.quarter_group_order()
    assert compiled["num_warps"] == 8 and 0 < compiled["shared"] <= 227 * 1024
    assert f"wgmma.mma_async.sync.aligned.m64n{lay.dim_pad}k16.f32.f16.f16" in ptx
    assert bool(re.findall(r"ld\.global(?:\.nc)?\.[bu]8 ", ptx)) is (word == 1)


@pytest.mark.parametrize("spec", ["tq4", "tq3"])
def test_warp_specialized_launches_go_through_the_compiled_launcher_once_a_specialization_compiled(spec, monkeypatch):
    """BoundKernel.launch_ws, checked with a fake Gluon kernel and launcher: the first launch of each
    specialization goes through `kernel[grid](...)` with tensor descriptors of the packed rows (one-byte
    groups; tq3 passes its pointer) and the output, grid at most one program an SM; later launches of it
    call the compiled kernel's launcher with the same arguments. A specialization is the device, the output
    dtype, n_rows being 1 (Triton makes it a constant), a multiple of 16 or past 32 bits, and the 16-byte
    alignment of each pointer."""
    kernel = registry.BoundKernel(registry.load_variant(spec, 256), "decompress")
    lay = kernel.variant.layout
    calls = []

    class FakeGluon:
        arg_names = kernel.ws_kernel.arg_names

        def __getitem__(self, grid):
            def launch(*args, num_warps):
                calls.append(("gluon", grid, args, num_warps))
                return f"compiled-{len(calls)}"
            return launch

    from triton.experimental.gluon import language as gl

    kernel.ws_kernel = FakeGluon()
    kernel.interpreted, kernel._direct = False, True
    kernel._knobs = SimpleNamespace(launch_enter_hook=HookChain(), launch_exit_hook=HookChain(reversed=True))
    state = {"sms": 132, "stream": lambda index: f"stream-of-{index}", "rotation_desc": "pieces-descriptor",
             "packed_layout": gl.NVMMASharedLayout.get_default_for([64, lay.slot_pad], gl.uint8),
             "row_layouts": {dt: gl.NVMMASharedLayout.get_default_for([64, 256], g)
                             for dt, g in ((torch.float16, gl.float16), (torch.bfloat16, gl.bfloat16))}}
    monkeypatch.setattr(kernel, "_ws_state", lambda device: state)
    monkeypatch.setattr(registry, "launch_compiled", lambda compiled, grid, stream, args:
                        calls.append(("direct", compiled, grid, stream, args)))
    dev = torch.device("cuda", 0)

    def args_for(n, dtype=torch.float16, norms_offset=0):
        norms = torch.zeros(n + 4)[norms_offset:norms_offset + n]
        return (torch.zeros(n, lay.packed_dim, dtype=torch.uint8), norms, None, torch.zeros(2 ** lay.bits, dtype=torch.float16),
                torch.zeros(n, 256, dtype=dtype))

    big = 1 << 20
    first = args_for(big)
    assert kernel.launch_ws(big, big, "float16", dev, first)
    assert kernel.launch_ws(big, big, "float16", dev, first)
    kind, grid, args, warps = calls[0]
    assert (kind, grid, warps, args[1:]) == ("gluon", (132, 1), 4, ("pieces-descriptor", args[2], first[1], first[3], big))
    assert args[2].base is first[4] and args[2].block_shape == [64, 256] and args[2].shape == [big, 256]
    if spec == "tq3":
        assert args[0] is first[0]
    else:
        assert args[0].base is first[0] and args[0].block_shape == [64, lay.slot_pad]
    kind, compiled, grid, stream, direct_args = calls[1]
    assert (kind, compiled, grid, stream) == ("direct", "compiled-1", (132, 1), "stream-of-0")
    assert direct_args[1] == "pieces-descriptor" and direct_args[2].base is first[4] and direct_args[3:] == args[3:]
    # each of these is another specialization: compiled through Gluon first
    for n, dtype, offset in ((big, torch.bfloat16, 0), (1, torch.float16, 0), (63, torch.float16, 0),
                             (big, torch.float16, 1)):
        before = len(calls)
        assert kernel.launch_ws(n, big, "float16" if dtype == torch.float16 else "bfloat16", dev, args_for(n, dtype, offset))
        assert calls[before][0] == "gluon", (n, dtype, offset)
        assert calls[before][1] == (min(132, -(-n // 64)), 1)
    assert kernel.launch_ws(63, big, "float16", dev, args_for(63))
    assert calls[-1][0] == "direct"
    # an output off 16 bytes: declined (the Triton kernel runs)
    odd = args_for(100)
    odd = (*odd[:4], torch.zeros(100 * 256 + 1, dtype=torch.float16)[1:].view(100, 256))
    assert kernel.launch_ws(100, big, "float16", dev, odd) is False
    # packed rows off 16 bytes (TMA's rule, tq4) or off the width of tq3's loads (8 bytes): declined;
    # tq3's rows on 8 bytes but not 16 run, as another specialization
    for offset in (1, 4, 8):
        shifted = args_for(100)
        shifted = (torch.zeros(100 * lay.packed_dim + offset, dtype=torch.uint8)[offset:].view(100, lay.packed_dim),
                   *shifted[1:])
        before = len(calls)
        runs = spec == "tq3" and offset == 8
        assert kernel.launch_ws(100, big, "float16", dev, shifted) is runs, offset
        assert len(calls) == before + runs and (not runs or calls[-1][0] == "gluon")


def test_a_hopper_decompress_state_s_fp16_codebook_replaces_the_table_it_is_given():
    """BoundKernel._ws_args with a hand-made state: where the state holds an fp16 codebook (which _ws_state
    makes where the Triton decompress takes the pair table and the Gluon kernel gathers a code at a time:
    the next test), the Gluon kernel gets that in place of the table it was given (tq3 D=128's int32 pair
    table here); without one, the table as it is (tq3 D=256's fp16 codebook)."""
    from triton.experimental.gluon import language as gl

    for head_dim in (128, 256):
        kernel = registry.BoundKernel(registry.load_variant("tq3", head_dim), "decompress")
        lay = kernel.variant.layout
        pairs = getattr(kernel.variant.module, "CENTROID_PAIRS", False)
        assert pairs is (head_dim == 128)
        codebook = kernel.variant.centroids.half()
        state = {"rotation_desc": "pieces", "row_layouts": {
            torch.float16: gl.NVMMASharedLayout.get_default_for([64, lay.dim_pad], gl.float16)}}
        if pairs:
            state["codebook"] = codebook
        table = torch.zeros(4 ** 3, dtype=torch.int32) if pairs else codebook.clone()
        n = 100
        args = (torch.zeros(n, lay.packed_dim, dtype=torch.uint8), torch.zeros(n), None, table,
                torch.zeros(n, lay.head_dim, dtype=torch.float16))
        made, pointers = kernel._ws_args(n, state, args)
        assert made[4] is (codebook if pairs else table) and pointers[1] is made[4]


def test_tq2_d96_hopper_decompress_reads_its_24_byte_rows_by_pointers_on_8_bytes():
    """tq2 D=96's packed rows (24 bytes) are no TMA box: BoundKernel._ws_args hands its Gluon kernel the
    packed tensor itself (a pointer, among those it specializes on), descriptors of the output only, and
    declines (the Triton kernel runs) packed rows that do not start on WS_PACKED_ALIGN = 8 bytes, the width
    of its loads."""
    from triton.experimental.gluon import language as gl

    kernel = registry.BoundKernel(registry.load_variant("tq2", 96), "decompress")
    lay = kernel.variant.layout
    assert lay.packed_dim == 24 and kernel.variant.module.WS_PACKED_ALIGN == 8
    assert kernel.ws_kernel.arg_names[0] == "packed_ptr"
    state = {"rotation_desc": "pieces", "row_layouts": {
        torch.float16: gl.NVMMASharedLayout.get_default_for([64, lay.dim_pad], gl.float16)}}
    n = 100
    for offset in (0, 8, 16, 4, 1):
        packed = torch.zeros(n * lay.packed_dim + offset, dtype=torch.uint8)[offset:].view(n, lay.packed_dim)
        table = kernel.variant.centroids.half()
        args = (packed, torch.zeros(n), None, table, torch.zeros(n, 96, dtype=torch.float16))
        made = kernel._ws_args(n, state, args)
        if offset % 8:
            assert made is None, offset
            continue
        made, pointers = made
        assert made[0] is packed and any(t is packed for t in pointers) and made[4] is table, offset
        assert made[2].block_shape == [64, 128] and made[2].shape == [n, 96]


def test_the_hopper_decompress_set_up_holds_the_fp16_codebook_where_only_the_triton_kernel_takes_pairs(
        monkeypatch):
    """BoundKernel._ws_state, made here on the CPU with the GPU's answers faked (an SM count, a stream
    getter, a device index): where the Triton decompress takes the pair table (CENTROID_PAIRS) and the
    Gluon kernel gathers a code at a time (no WS_CENTROID_PAIRS: tq3 D=128 with that attribute taken away),
    the state holds the variant's codebook in fp16, and _ws_args hands that to the Gluon kernel in place
    of the table it was given; where both take pairs (tq3 D=96 and 128 as shipped), and for 16-entry
    codebooks without pairs (tq3 D=256, tq4 D=128), it holds none and passes the table on."""
    monkeypatch.setattr(registry, "runs_ws", lambda interpreted: True)
    monkeypatch.setattr(registry, "index_of", lambda device: 0)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(multi_processor_count=132))
    monkeypatch.setattr(sys.modules["triton.runtime.driver"], "driver",
                        SimpleNamespace(active=SimpleNamespace(get_current_stream=lambda index: "stream")))
    cpu = torch.device("cpu")
    for spec, head_dim, single in (("tq3", 128, True), ("tq3", 128, False), ("tq3", 96, False), ("tq3", 256, False),
                                   ("tq4", 128, False)):
        variant = registry.load_variant(spec, head_dim)
        pairs = getattr(variant.module, "CENTROID_PAIRS", False)
        assert getattr(variant.module, "WS_CENTROID_PAIRS", False) is pairs, (spec, head_dim)
        with monkeypatch.context() as patch:
            if single:
                patch.delattr(variant.module, "WS_CENTROID_PAIRS")
            kernel = registry.BoundKernel(variant, "decompress")
            lay = kernel.variant.layout
            state = kernel._ws_state(cpu)
            assert ("codebook" in state) is single, (spec, head_dim)
            table = torch.zeros(4 ** lay.bits, dtype=torch.int32) if pairs else kernel.variant.centroids.half()
            n = 100
            args = (torch.zeros(n, lay.packed_dim, dtype=torch.uint8), torch.zeros(n), None, table,
                    torch.zeros(n, lay.head_dim, dtype=torch.float16))
            made, _ = kernel._ws_args(n, state, args)
            if single:
                assert made[4].dtype == torch.float16 and torch.equal(made[4], kernel.variant.centroids.half())
            else:
                assert made[4] is table


def test_the_warp_specialized_kernel_s_first_set_up_refuses_a_cuda_graph_capture(monkeypatch):
    """BoundKernel._ws_state copies the rotation's pieces to the GPU at the first launch on a device, which a
    CUDA graph capture cannot hold: during a capture it raises TuningDuringCapture, which tells to warm up
    first (as the Triton kernels' tuning does), and makes nothing."""
    kernel = registry.BoundKernel(registry.load_variant("tq4", 256), "decompress")
    monkeypatch.setattr(registry, "runs_ws", lambda interpreted: True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    with pytest.raises(tuning.TuningDuringCapture, match="warmup"):
        kernel._ws_state(torch.device("cuda", 0))
    assert kernel._ws == {}
    assert kernel._ws_state(torch.device("cpu")) is None  # no GPU: nothing to set up, no error
