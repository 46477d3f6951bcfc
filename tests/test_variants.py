"""Bit widths and their stored format, quality against the Lloyd-Max table, and K/V pairs."""

import pytest
import torch

import kernelgen
from kernelgen import torch_path
from kernelgen.layout import PackLayout

import reference

# ../shared/ANCHORS.md: unit-vector MSE of a Gaussian Lloyd-Max codebook.
LLOYD_MAX_MSE = {"tq2": 0.1175, "tq3": 0.03454, "tq4": 0.009497}


@pytest.mark.parametrize("bits,dim,codes_per_group,bytes_per_group,packed", [
    (4, 128, 2, 1, 64), (2, 128, 4, 1, 32), (3, 128, 8, 3, 48), (3, 80, 8, 3, 30), (1, 64, 8, 1, 8),
    (2, 112, 4, 1, 28), (3, 192, 8, 3, 72)])
def test_layout_packs_whole_byte_groups(bits, dim, codes_per_group, bytes_per_group, packed):
    lay = PackLayout(bits, dim)
    assert (lay.codes_per_group, lay.bytes_per_group, lay.packed_dim) == (codes_per_group, bytes_per_group, packed)
    assert lay.packed_dim == dim * bits // 8


def test_three_bit_codes_form_an_msb_first_bit_stream():
    # codes 0..7 -> 000 001 010 011 100 101 110 111 -> 00000101 00111001 01110111
    codes = torch.arange(8).repeat(2).view(1, 16)
    expected = torch.tensor([[0x05, 0x39, 0x77, 0x05, 0x39, 0x77]], dtype=torch.uint8)
    assert torch.equal(torch_path.pack_codes(codes, PackLayout(3, 16)), expected)
    assert torch.equal(reference.pack_bitstream(codes, 3), expected)
    assert torch.equal(torch_path.unpack_codes(expected, PackLayout(3, 16)), codes)


def test_four_bit_even_coordinate_is_the_high_nibble():
    codes = torch.tensor([[3, 12] * 8])
    assert torch.all(torch_path.pack_codes(codes, PackLayout(4, 16)) == 0x3C)


@pytest.mark.parametrize("spec", ["tq2", "tq3", "tq4"])
def test_kernels_read_the_documented_bit_stream(spec, device, gen):
    # Rotated-space decompress of hand-packed bytes must give centroid[code] * norm, code by code.
    q = kernelgen.quantizer(spec, 64, device=device)
    codes = torch.randint(0, 2**q.bits, (5, 64), generator=gen)
    packed = reference.pack_bitstream(codes, q.bits)
    norms = torch.ones(5, 1)
    got = q.decompress(packed.to(device), norms.to(device), dtype=torch.float32, rotated=True).cpu()
    assert torch.equal(got, q.centroids.cpu()[codes])


@pytest.mark.parametrize("spec", ["tq2", "tq3", "tq4"])
def test_round_trip_mse_at_d128_is_within_a_few_percent_of_lloyd_max(spec, device, gen):
    q = kernelgen.quantizer(spec, 128, device=device)
    x = torch.randn(2048, 128, generator=gen)
    x = x / x.norm(dim=1, keepdim=True)
    x_hat = q.decompress(*q.compress(x.to(device)), dtype=torch.float32).cpu()
    mse = (x_hat - x).pow(2).sum(1).mean().item()
    assert mse == pytest.approx(LLOYD_MAX_MSE[spec], rel=0.04)


def test_keys_and_values_with_different_bit_widths(device, gen):
    kv = kernelgen.kv_pair("tq4", "tq3", head_dim=128, device=device)
    k = torch.randn(37, 8, 128, generator=gen, dtype=torch.float16)
    v = torch.randn(37, 8, 128, generator=gen, dtype=torch.float16)
    (kp, kn), (vp, vn) = kv.compress(k.to(device), v.to(device))
    assert kp.shape == (37, 8, 64) and vp.shape == (37, 8, 48)
    assert kn.shape == vn.shape == (37, 8, 1)
    for side, x, packed, norms in ((kv.keys, k, kp, kn), (kv.values, v, vp, vn)):
        _, ref_norms, ref_codes, _ = reference.compress(x.view(-1, 128), side.rotation.cpu(), side.boundaries.cpu(),
                                                        side.bits)
        codes = reference.unpack_bitstream(packed.cpu().view(-1, packed.shape[-1]), side.bits, 128)
        assert (codes != ref_codes).sum() <= reference.max_code_flips(side.precision[torch.float16], codes.numel())
        torch.testing.assert_close(norms.cpu().view(-1).double(), ref_norms, rtol=1e-5, atol=1e-6)
    k_hat, v_hat = kv.decompress((kp, kn), (vp, vn), dtype=torch.float32)
    k_err = ((k_hat.cpu() - k.float()).pow(2).sum(-1) / k.float().pow(2).sum(-1)).mean()
    v_err = ((v_hat.cpu() - v.float()).pow(2).sum(-1) / v.float().pow(2).sum(-1)).mean()
    assert k_err < 0.012 and 0.03 < v_err < 0.04  # 4 bits ~0.0095, 3 bits ~0.034


def test_kv_pair_rejects_mismatched_shapes(device):
    kv = kernelgen.kv_pair("tq4", "tq2", head_dim=64, device=device)
    with pytest.raises(ValueError, match="k and v must have the same shape"):
        kv.compress(torch.randn(2, 64, device=device), torch.randn(3, 64, device=device))
