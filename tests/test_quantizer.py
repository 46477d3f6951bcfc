"""The user's API: kernelgen.quantizer(...).compress / .decompress, its checks and its lookups."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import kernelgen
from kernelgen import registry, torch_path
from kernelgen.cli import main

import reference

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def q(device):
    return kernelgen.quantizer("tq4", 128, device=device)


def test_attributes_describe_the_variant(q):
    assert (q.bits, q.head_dim, q.packed_dim) == (4, 128, 64)
    assert q.rotation.shape == (128, 128) and q.rotation.dtype == torch.float32
    assert q.centroids.shape == (16,) and q.boundaries.shape == (15,)
    torch.testing.assert_close(q.boundaries, (q.centroids[1:] + q.centroids[:-1]) / 2, rtol=0, atol=0)


def test_leading_dims_are_kept(q, device, gen):
    x = torch.randn(5, 3, 128, generator=gen, dtype=torch.float16).to(device)
    packed, norms = q.compress(x)
    assert packed.shape == (5, 3, 64) and packed.dtype == torch.uint8
    assert norms.shape == (5, 3, 1) and norms.dtype == torch.float32
    y = q.decompress(packed, norms)
    assert y.shape == (5, 3, 128) and y.dtype == torch.float16


def test_out_buffers_are_filled_and_returned(q, device, gen):
    x = torch.randn(7, 128, generator=gen).to(device)
    packed = torch.empty(7, 64, dtype=torch.uint8, device=device)
    norms = torch.empty(7, 1, device=device)
    got = q.compress(x, out=(packed, norms))
    assert got[0] is packed and got[1] is norms
    out = torch.empty(7, 128, dtype=torch.bfloat16, device=device)
    assert q.decompress(packed, norms, dtype=torch.bfloat16, out=out) is out


@pytest.mark.parametrize("offset", [1, 2, 4])
def test_compress_into_an_out_view_at_any_byte_offset_writes_its_bytes_and_nothing_around(device, gen, offset,
                                                                                          monkeypatch):
    """tq3 at D=128 writes packed rows as 4-byte words, so the kernel must get a packed pointer on a 4-byte
    boundary: an out view off one goes through an aligned buffer. The bytes equal a fresh compress's and
    the bytes around the view keep their poison."""
    q = kernelgen.quantizer("tq3", 128, device=device)
    x = torch.randn(9, 128, generator=gen, dtype=torch.float16).to(device)
    expected_packed, expected_norms = q.compress(x)
    buffer = torch.full((offset + 9 * 48 + 3,), 0xA5, dtype=torch.uint8, device=device)
    packed = buffer[offset:offset + 9 * 48].view(9, 48)
    norms = torch.full((9, 1), float("nan"), device=device)
    handed = []
    launch = q._launch
    monkeypatch.setattr(q, "_launch", lambda op, n, dtype, *args: (handed.append(args[2].data_ptr()),
                                                                   launch(op, n, dtype, *args)))
    assert q.compress(x, out=(packed, norms))[0] is packed
    assert torch.equal(packed, expected_packed) and torch.equal(norms, expected_norms)
    assert torch.all(buffer[:offset] == 0xA5) and torch.all(buffer[offset + 9 * 48:] == 0xA5)
    assert all(pointer % 4 == 0 for pointer in handed)
    assert handed or not q._use_kernels


def test_zero_vector_round_trips_to_zeros(q, device):
    x = torch.zeros(3, 128, dtype=torch.float16, device=device)
    packed, norms = q.compress(x)
    assert torch.all(norms == 0)
    for rotated in (False, True):
        y = q.decompress(packed, norms, rotated=rotated)
        assert not y.isnan().any() and torch.all(y == 0)


def test_non_contiguous_input_gives_the_bytes_of_its_contiguous_copy(q, device, gen):
    base = torch.randn(128, 40, generator=gen, dtype=torch.float16).to(device)
    x = base.T[::3]  # (14, 128), column stride 40, row stride 3
    assert not x.is_contiguous()
    p1, n1 = q.compress(x)
    p2, n2 = q.compress(x.contiguous())
    assert torch.equal(p1, p2) and torch.equal(n1, n2)


def test_empty_batch_returns_empty_tensors(q, device):
    packed, norms = q.compress(torch.empty(0, 4, 128, device=device))
    assert packed.shape == (0, 4, 64) and norms.shape == (0, 4, 1)
    assert q.decompress(packed, norms).shape == (0, 4, 128)


def test_decompress_of_compress_recovers_the_input(q, device, gen):
    x = torch.randn(64, 128, generator=gen).to(device)
    packed, norms = q.compress(x)
    y = q.decompress(packed, norms, dtype=torch.float32)
    rel = ((y - x).pow(2).sum(1) / x.pow(2).sum(1)).mean().item()
    assert rel < 0.012  # the 4-bit codebook's distortion is about 0.0095
    yr = q.decompress(packed, norms, dtype=torch.float32, rotated=True)
    torch.testing.assert_close(yr @ q.rotation, y, atol=1e-4, rtol=1e-4)


def test_cpu_kernels_and_torch_path_give_the_same_results(gen):
    q = kernelgen.quantizer("tq4", 96, device="cpu")
    x = torch.randn(50, 96, generator=gen, dtype=torch.bfloat16)
    packed, norms = q.compress(x)
    t_packed, t_norms = torch_path.compress_rows(x, q.rotation, q.boundaries, q.layout)
    torch.testing.assert_close(norms.view(-1), t_norms, rtol=1e-6, atol=0)
    codes = reference.unpack_bitstream(packed, 4, 96)
    t_codes = reference.unpack_bitstream(t_packed, 4, 96)
    allowed = reference.max_code_flips(q.precision[torch.bfloat16], codes.numel())
    assert (codes != t_codes).sum() <= allowed and (codes - t_codes).abs().max() <= 1
    for rotated in (False, True):
        y = q.decompress(packed, norms, dtype=torch.float32, rotated=rotated)
        t_y = torch_path.decompress_rows(packed, norms.view(-1), q.rotation, q.centroids, q.layout,
                                         torch.float32, rotated)
        # fp32 sums in another order: errors scale with the row (norms here are about 10), not the element
        torch.testing.assert_close(y, t_y, rtol=1e-5, atol=1e-5)


def test_cpu_without_interpreter_uses_the_torch_path():
    code = ("import torch, kernelgen; q = kernelgen.quantizer('tq4', 64, device='cpu'); print(repr(q)); "
            "p, n = q.compress(torch.ones(2, 64)); print(p.shape, q.decompress(p, n).shape)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "backend=torch" in result.stdout
    assert "torch.Size([2, 32]) torch.Size([2, 64])" in result.stdout


# -- bad calls ------------------------------------------------------------------------------------

def test_unknown_spec_lists_the_available_ones():
    with pytest.raises(LookupError, match=r"no generated kernels for spec 'tq9'; available specs: .*tq4"):
        kernelgen.quantizer("tq9", 128)


def test_unknown_head_dim_lists_the_available_ones():
    with pytest.raises(LookupError, match=r"spec 'tq4' has no head dim 100; available: 64, .*128"):
        kernelgen.quantizer("tq4", 100)


@pytest.mark.parametrize("make,error,match", [
    (lambda d: torch.randn(4, 96, device=d), ValueError, r"x must have shape \(\.\.\., 128\).*got \(4, 96\)"),
    (lambda d: torch.ones(4, 128, dtype=torch.int32, device=d), TypeError, "x must have dtype float16, bfloat16, "
                                                                           "float32, got int32"),
    (lambda d: torch.randn(4, 128, dtype=torch.float64, device=d), TypeError, "got float64"),
    (lambda d: [[0.0] * 128], TypeError, "x must be a torch.Tensor"),
    (lambda d: torch.randn(4, 128, device="meta"), ValueError, "x is on meta.*one device"),
    (lambda d: torch.tensor(1.0, device=d), ValueError, r"x must have shape \(\.\.\., 128\)"),
])
def test_compress_rejects_bad_input(q, device, make, error, match):
    with pytest.raises(error, match=match):
        q.compress(make(device))


def test_compress_rejects_bad_out(q, device):
    x = torch.randn(4, 128, device=device)
    good_norms = torch.empty(4, 1, device=device)
    with pytest.raises(ValueError, match=r"out\[0\] \(packed\) must have shape \(4, 64\), got \(4, 128\)"):
        q.compress(x, out=(torch.empty(4, 128, dtype=torch.uint8, device=device), good_norms))
    with pytest.raises(TypeError, match=r"out\[1\] \(norms\) must have dtype float32, got float16"):
        q.compress(x, out=(torch.empty(4, 64, dtype=torch.uint8, device=device),
                           torch.empty(4, 1, dtype=torch.float16, device=device)))
    with pytest.raises(TypeError, match=r"out must be a \(packed, norms\) pair"):
        q.compress(x, out=good_norms)


def test_decompress_rejects_bad_input(q, device):
    packed = torch.zeros(4, 64, dtype=torch.uint8, device=device)
    norms = torch.ones(4, 1, device=device)
    cases = [
        (dict(packed=torch.zeros(4, 128, dtype=torch.uint8, device=device)), ValueError,
         r"packed must have shape \(\.\.\., 64\) .*128\*4/8 bytes a row.*got \(4, 128\)"),
        (dict(packed=packed.to(torch.int16)), TypeError, "packed must have dtype uint8, got int16"),
        (dict(norms=torch.ones(4, device=device)), ValueError, r"norms must have shape \(4, 1\).*got \(4,\)"),
        (dict(norms=torch.ones(3, 1, device=device)), ValueError, r"norms must have shape \(4, 1\)"),
        (dict(norms=norms.half()), TypeError, "norms must have dtype float32, got float16"),
        (dict(norms=torch.ones(4, 1, device="meta")), ValueError, "norms is on meta"),
        (dict(dtype=torch.int8), TypeError, "dtype must be one of torch.float16"),
        (dict(dtype="float16"), TypeError, "dtype must be one of"),
        (dict(rotated="yes"), TypeError, "rotated must be True or False"),
        (dict(out=torch.empty(4, 128, dtype=torch.float32, device=device)), TypeError,
         "out must have dtype float16, got float32"),
        (dict(out=torch.empty(128, 4, dtype=torch.float16, device=device).T), ValueError, "out must be contiguous"),
    ]
    for change, error, match in cases:
        args = dict(packed=packed, norms=norms)
        kwargs = {k: v for k, v in change.items() if k not in args}
        args.update({k: v for k, v in change.items() if k in args})
        with pytest.raises(error, match=match):
            q.decompress(args["packed"], args["norms"], **kwargs)


def test_quantizer_rejects_non_int_head_dim():
    with pytest.raises(TypeError, match="head_dim must be an int"):
        kernelgen.quantizer("tq4", "128")


# -- where kernels come from ----------------------------------------------------------------------

def _build_extra(tmp_path, name):
    data = yaml.safe_load((ROOT / "specs" / "tq4.yaml").read_text())
    data.update(name=name, head_dims=[64])
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(data))
    out = tmp_path / "kernels"
    assert main(["build", str(spec), "--out", str(out)]) == 0
    return out


def test_add_kernel_path_makes_a_new_spec_available(tmp_path, gen):
    out = _build_extra(tmp_path, "tqextra")
    with pytest.raises(LookupError):
        kernelgen.quantizer("tqextra", 64)
    kernelgen.add_kernel_path(out)
    try:
        assert kernelgen.available()["tqextra"] == (64,)
        q = kernelgen.quantizer("tqextra", 64, device="cpu")
        ref = kernelgen.quantizer("tq4", 64, device="cpu")
        x = torch.randn(9, 64, generator=gen)
        assert torch.equal(q.compress(x)[0], ref.compress(x)[0])  # same spec under another name
    finally:
        registry._added_paths.remove(out.resolve())


def test_environment_variable_adds_a_kernel_folder(tmp_path):
    out = _build_extra(tmp_path, "tqenv")
    env = dict(os.environ, KERNELGEN_PATH=str(out), TRITON_INTERPRET="1")
    code = "import kernelgen; print(kernelgen.available()['tqenv']); print(kernelgen.quantizer('tqenv', 64, 'cpu'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "(64,)" in result.stdout and "spec='tqenv'" in result.stdout


def test_non_editable_install_finds_the_shipped_kernels(tmp_path):
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(target), str(ROOT)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    code = ("import kernelgen, torch; from kernelgen import registry; print(registry.shipped_dir()); "
            "q = kernelgen.quantizer('tq4', 128, device='cpu'); print(q.compress(torch.randn(3, 128))[0].shape)")
    env = dict(os.environ, PYTHONPATH=str(target), TRITON_INTERPRET="1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert str(target / "kernelgen" / "generated") in result.stdout
    assert "torch.Size([3, 64])" in result.stdout


def test_demo_command_prints_size_and_error():
    result = subprocess.run([sys.executable, "-m", "kernelgen.cli", "demo", "--spec", "tq4", "--head-dim", "64",
                             "--rows", "100"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "12,800 bytes -> 3,600 bytes (3.56x smaller)" in result.stdout
    err = float(result.stdout.split("=")[-1])
    assert 0.006 < err < 0.014


def test_torch_path_codes_count_boundaries_and_break_negative_ties_away_from_zero():
    """torch_path.codes_of follows the kernels' rule (README, Stored format): the number of boundaries
    <= y, except exactly on a negative boundary and at -0.0, where the code is one lower (farther from
    zero, or below the middle boundary)."""
    b = kernelgen.quantizer("tq4", 128, device="cpu").boundaries
    y = torch.cat([b, torch.nextafter(b, torch.full_like(b, -1.0)), torch.nextafter(b, torch.full_like(b, 1.0)),
                   torch.tensor([0.0, -0.0, 1.0, -1.0]), torch.randn(1000) / 128 ** 0.5])
    on_negative_boundary = torch.isin(y, b) & (y < 0)
    negative_zero = (y == 0) & torch.signbit(y)
    expected = torch.searchsorted(b, y, right=True) - on_negative_boundary.long() - negative_zero.long()
    assert on_negative_boundary.sum() == 7 and negative_zero.sum() == 1
    assert torch.equal(torch_path.codes_of(y, b), expected)


def test_compress_takes_the_transposed_rotation_at_eight_codes_a_group_up_to_d128_and_at_d192_d256_else_the_slots():
    """render.COORDINATE_COMPRESS_CODES_PER_GROUP: tq3 at D<=128, D=192 and D=256 (rows padded past 128
    that the head dim fills or that are read in pieces: render._coordinate_compress) multiplies by the
    padded rotation transposed (coordinates in order); at rows padded to 128 and 256
    (render.LANE_GROUP_DIM_PADS) its columns in lane-group order; the other specs by the slots."""
    from kernelgen import registry

    v = registry.load_variant("tq3", 64)
    assert v.module.COMPRESS_ROTATION == "transposed"
    assert torch.equal(v.compress_rotation("fp16"), v.padded_rotation("fp16").T)
    assert v.compress_rotation("fp16").shape == (64, 64) and v.compress_rotation("fp16").is_contiguous()
    assert torch.equal(v.compress_rotation("fp32"), v.rotation.T)
    for head_dim in (80, 96, 112, 128, 192, 256):
        v = registry.load_variant("tq3", head_dim)
        assert v.module.COMPRESS_ROTATION == "lane_groups"
        rotation_t = v.compress_rotation("fp32")
        pad = v.layout.dim_pad
        assert rotation_t.shape == (pad, pad) and rotation_t.is_contiguous()
        columns = v.layout.lane_group_columns()
        for p in (0, 1, 2, 8, 32, 127, pad - 1):  # column p holds coordinate columns[p], zero past the head dim
            expected = v.rotation[columns[p]] if columns[p] < head_dim else torch.zeros(head_dim)
            assert torch.equal(rotation_t[:head_dim, p], expected) and not rotation_t[head_dim:, p].any()
        assert torch.equal(v.compress_rotation("fp16"), rotation_t.half())
    for spec, head_dim, shape in (("tq4", 192, (2, 256, 128)), ("tq4", 128, (2, 128, 64)), ("tq2", 64, (4, 64, 16))):
        v = registry.load_variant(spec, head_dim)
        assert not hasattr(v.module, "COMPRESS_ROTATION")
        assert torch.equal(v.compress_rotation("fp32"), v.slots("fp32")) and v.slots("fp32").shape == shape


def test_a_module_naming_an_unknown_compress_rotation_form_is_refused(monkeypatch):
    """A module whose COMPRESS_ROTATION the registry does not know (another kernelgen version's) fails
    loudly instead of handing its kernel a rotation in the wrong layout."""
    from kernelgen import registry

    v = registry.load_variant("tq3", 128)
    monkeypatch.setattr(v.module, "COMPRESS_ROTATION", "by_rows")
    with pytest.raises(registry.CorruptVariant, match="'by_rows' is none of 'transposed', 'lane_groups'"):
        v.compress_rotation("fp16")


def test_tq3_decompress_up_to_d128_gathers_centroid_pairs_for_fp16_products_else_single_centroids():
    """render.PAIR_CENTROIDS_CODES_PER_GROUP: tq3 modules up to D=128 say CENTROID_PAIRS, and their fp16
    table is 64 int32 words, entry (a << 3) | b the fp16 centroids of codes a (low half) and b (high
    half), worked out here from the bit patterns; the fp32 table (fp32 products), wider tq3 rows and the
    other specs keep the 2^bits centroids."""
    from kernelgen import registry

    for head_dim in (64, 96, 128):
        v = registry.load_variant("tq3", head_dim)
        assert v.module.CENTROID_PAIRS is True
        pairs = v.centroid_table("fp16")
        assert pairs.dtype == torch.int32 and pairs.shape == (64,)
        half = v.centroids.half()
        for a in range(8):
            for b in range(8):
                word = int(pairs[a * 8 + b]) & 0xFFFFFFFF
                low = torch.tensor([word & 0xFFFF], dtype=torch.int32).to(torch.int16).view(torch.float16)
                high = torch.tensor([word >> 16], dtype=torch.int32).to(torch.int16).view(torch.float16)
                assert torch.equal(low, half[a:a + 1]) and torch.equal(high, half[b:b + 1]), (a, b)
        assert torch.equal(v.centroid_table("fp32"), v.centroids)
    for spec, head_dim in (("tq3", 256), ("tq3", 192), ("tq4", 128), ("tq2", 64)):
        v = registry.load_variant(spec, head_dim)
        assert not hasattr(v.module, "CENTROID_PAIRS")
        assert torch.equal(v.centroid_table("fp16"), v.centroids.half())
