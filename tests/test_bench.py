"""The benchmark's own logic on the CPU: bytes counted, the table and JSON it writes, the code
agreement it reports, and the per-row baseline it compares against. No timings here."""

import json

import pytest
import torch

import kernelgen
from kernelgen import baseline, bench, registry, torch_path
from kernelgen.cli import main

import reference


def test_op_bytes_counts_float_side_packed_codes_and_norm_once_per_row():
    # tq4 at D=128, fp16: 256 input bytes + 64 packed bytes + a 4-byte norm
    assert bench.op_bytes("compress", 128, 64, 1000, 2) == 1000 * (256 + 64 + 4)
    assert bench.op_bytes("decompress", 128, 64, 1000, 2) == 1000 * 324
    # tq3 at D=96, fp32 output: 384 + 36 + 4
    assert bench.op_bytes("decompress_rotated", 96, 36, 7, 4) == 7 * 424
    with pytest.raises(ValueError, match="op must be one of"):
        bench.op_bytes("pack", 128, 64, 1, 2)


def test_graph_time_is_the_median_of_rounds_each_a_graph_of_its_own(monkeypatch):
    """bench.ROUNDS rounds, each timing its own captured graph (here a stand-in that records its calls):
    the reported time is their median, not the first, the fastest or the mean."""
    rounds = iter([9.0, 1.0, 4.0, 100.0, 3.0])
    seen = []

    def one_round(calls, replays):
        seen.append((calls, replays))
        return next(rounds)

    monkeypatch.setattr(bench, "_graph_round_us", one_round)
    calls = [lambda: None]
    assert bench.ROUNDS == 5
    assert bench.graph_time_us(calls) == 4.0
    assert seen == [(calls, 20)] * 5
    rounds = iter([7.0])
    assert bench.graph_time_us(calls, replays=3, rounds=1) == 7.0 and seen[-1] == (calls, 3)


def test_input_sets_rotate_past_the_l2_cache_but_stay_bounded():
    small = bench.op_bytes("compress", 128, 64, 8, 2)
    assert bench.input_sets(small) == bench.MAX_SETS
    big = bench.op_bytes("compress", 128, 64, 1 << 20, 2)
    assert bench.input_sets(big) == 1
    mid = 10 << 20
    assert bench.input_sets(mid) * mid >= bench.ROTATE_BYTES > (bench.input_sets(mid) - 1) * mid


def test_result_rate_and_fraction_of_copy():
    r = bench.Result("tq4", 128, 1 << 20, "float16", "compress", "kernelgen", us=200.0, bytes=600_000_000)
    assert r.gbps == pytest.approx(3000.0)
    assert r.fraction(3000.0) == pytest.approx(1.0)


def _results():
    R = bench.Result
    n = 1 << 20
    moved = bench.op_bytes("compress", 128, 64, n, 2)  # 339,738,624 bytes
    return [
        R("tq4", 128, n, "float16", "compress", "kernelgen", 200.0, moved, 0.999),
        R("tq4", 128, n, "float16", "compress", "baseline", 13228.0, moved, 1.0),
        R("tq4", 128, n, "float16", "compress", "torch", 4156.0, moved, 1.0),
        R("tq4", 128, n, "float16", "decompress", "kernelgen", 150.0, moved),
        R("tq4", 128, n, "float16", "decompress", "torch", 4388.0, moved),
    ]


def test_markdown_table_puts_implementations_side_by_side():
    table = bench.markdown_table(_results(), copy_gbps=3000.0)
    lines = table.splitlines()
    assert lines[0] == "Device-to-device copy: 3,000 GB/s (read + write)."
    assert lines[2].startswith("| spec | D | rows | dtype | op | kernelgen µs |")
    rows = [line for line in lines if line.startswith("| tq4")]
    assert len(rows) == 2  # one line per op, not per implementation
    # 339,738,624 bytes in 200 µs = 1,699 GB/s = 56.6% of 3000 GB/s; 99.9% of codes equal the fp32 path's
    assert rows[0] == ("| tq4 | 128 | 1,048,576 | float16 | compress | 200.0 | 1,699 | 56.6% | 99.900% | 13,228.0 | "
                       "4,156.0 |")
    # in 150 µs: 2,265 GB/s = 75.5%; no agreement for decompress, no baseline run
    assert rows[1] == "| tq4 | 128 | 1,048,576 | float16 | decompress | 150.0 | 2,265 | 75.5% | — | — | 4,388.0 |"


def test_json_holds_every_result_with_rate_and_fraction():
    data = json.loads(bench.to_json(_results(), 3000.0, "test device"))
    assert data["device"] == "test device" and data["copy_gbps"] == 3000.0
    assert len(data["results"]) == 5
    first = data["results"][0]
    assert first["impl"] == "kernelgen" and first["code_agreement"] == 0.999
    assert first["fraction_of_copy"] == pytest.approx(339_738_624 / 200.0 / 1e3 / 3000.0)


def test_code_agreement_counts_codes_not_bytes(gen):
    q = kernelgen.quantizer("tq4", 64, device="cpu")
    packed = torch.randint(0, 256, (10, 32), dtype=torch.uint8, generator=gen)
    assert bench.code_agreement(packed, packed.clone(), q.layout) == 1.0
    changed = packed.clone()
    changed[3, 5] ^= 0x01  # the low nibble: one code of 640 differs
    assert bench.code_agreement(changed, packed, q.layout) == pytest.approx(639 / 640)


def test_bench_without_cuda_says_so_and_exits_2(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["bench", "--rows", "8"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.parametrize("head_dim", [64, 96])
def test_baseline_per_row_compress_matches_reference(head_dim, device, gen):
    if device == "cpu" and not registry.is_interpreted(baseline._compress_row):
        pytest.skip("the baseline needs the Triton interpreter on a CPU")
    q = kernelgen.quantizer("tq4", head_dim, device=device)
    x = torch.randn(5, head_dim, generator=gen).to(torch.float16)
    packed = torch.full((5, head_dim // 2), 0xA5, dtype=torch.uint8, device=device)
    norms = torch.full((5, 1), float("nan"), device=device)
    baseline.compress(x.to(device), q.rotation, q.boundaries, packed, norms)
    ref_packed, ref_norms, ref_codes, _ = reference.compress(x, q.rotation.cpu(), q.boundaries.cpu(), 4)
    torch.testing.assert_close(norms.cpu().double().view(-1), ref_norms, rtol=1e-5, atol=1e-6)
    codes = reference.unpack_bitstream(packed.cpu(), 4, head_dim)
    assert (codes != ref_codes).sum() <= 1  # fp32 sums: at most a rounding flip on a boundary


@pytest.mark.parametrize("head_dim", [64, 96])
def test_baseline_rotated_decompress_is_centroid_times_norm(head_dim, device, gen):
    if device == "cpu" and not registry.is_interpreted(baseline._compress_row):
        pytest.skip("the baseline needs the Triton interpreter on a CPU")
    q = kernelgen.quantizer("tq4", head_dim, device=device)
    packed = torch.randint(0, 256, (5, head_dim // 2), dtype=torch.uint8, generator=gen)
    norms = torch.rand(5, 1, generator=gen) * 3
    out = torch.full((5, head_dim), float("nan"), dtype=torch.float32, device=device)
    baseline.decompress_rotated(packed.to(device), norms.to(device), q.centroids, out)
    expected = torch_path.decompress_rows(packed, norms.view(-1), q.rotation.cpu(), q.centroids.cpu(), q.layout,
                                          torch.float32, rotated=True)
    assert torch.equal(out.cpu(), expected)


def test_baseline_is_only_offered_for_the_seeds_bit_width():
    assert baseline.supports(4)
    assert not baseline.supports(3) and not baseline.supports(2)
