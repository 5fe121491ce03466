"""Quantized weight formats: packing, round-to-nearest error bounds, GGUF blocks against gguf's
own dequantize, method names and shape checks."""
import numpy as np
import pytest
import torch

from braze.errors import InvalidArgumentError
from braze.quant.formats import (QuantizedTensor, check_quantized_shapes, pack_int4, quantize_fp8, quantize_int4,
                                 quantize_int8, unpack_int4)
from braze.quant.methods import parse_method


def test_int4_pack_unpack_round_trip():
    q = torch.randint(0, 16, (7, 64), dtype=torch.uint8)
    packed = pack_int4(q)
    assert packed.shape == (7, 32) and packed.dtype == torch.uint8
    assert torch.equal(unpack_int4(packed), q)
    assert packed[0, 0].item() == q[0, 0].item() | (q[0, 1].item() << 4)  # adjacent pairs, low nibble first


@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("zero_point", [True, False])
def test_int4_rtn_error_is_within_half_a_step(group, zero_point):
    w = torch.randn(9, 256, generator=torch.Generator().manual_seed(group))
    q = quantize_int4(w, group, zero_point)
    assert q.packed.shape == (9, 128) and q.scales.shape == (9, 256 // group)
    step = q.scales.float().repeat_interleave(group, 1)
    err = (q.dequantize() - w).abs()
    # symmetric: [-max, max] in 15 steps, no clipping; zero points: the integer zero shifts the grid
    # by up to half a step, so the ends may clip by that much more
    assert (err <= (1.0 if zero_point else 0.5) * step + 1e-3).all()
    assert (err / step).mean() < 0.3
    assert abs(q.bits_per_weight - (4 + 16 * (2 if zero_point else 1) / group)) < 1e-6


@pytest.mark.parametrize("zero_point", [True, False])
def test_int4_short_last_group(zero_point):
    w = torch.randn(3, 80, generator=torch.Generator().manual_seed(1))  # groups of 32: 32 + 32 + 16
    q = quantize_int4(w, 32, zero_point)
    assert q.scales.shape == (3, 3) and q.packed.shape == (3, 40)
    step = q.scales.float().repeat_interleave(32, 1)[:, :80]
    assert ((q.dequantize() - w).abs() <= (1.0 if zero_point else 0.5) * step + 1e-3).all()
    q8 = quantize_int8(w, 32)
    assert q8.scales.shape == (3, 3) and ((q8.dequantize() - w).abs() <= 0.01 * w.abs().max()).all()


def test_int8_and_fp8_errors():
    w = torch.randn(5, 96)
    q8 = quantize_int8(w)
    assert q8.group == 96 and ((q8.dequantize() - w).abs() <= 0.5 * q8.scales + 1e-6).all()
    f8 = quantize_fp8(w)
    assert f8.packed.dtype == torch.float8_e4m3fn
    rel = ((f8.dequantize() - w).abs() / w.abs().clamp(min=1e-3)).median()
    assert rel < 0.04  # e4m3: 3 mantissa bits, relative rounding <= 1/16


def test_shape_checks_name_the_problem():
    with pytest.raises(ValueError, match="group 33 and K=64 must be even"):
        check_quantized_shapes("int4", 33, 64, (8, 32), (8, 2), None)
    with pytest.raises(ValueError, match=r"ceil\(K/group\)"):
        check_quantized_shapes("int4", 48, 64, (8, 32), (8, 1), None)  # 64 = 48 + a short group of 16
    with pytest.raises(ValueError, match="does not hold K=64"):
        check_quantized_shapes("int4", 32, 64, (8, 64), (8, 2), None)
    with pytest.raises(ValueError, match="mins"):
        check_quantized_shapes("int8", 32, 64, (8, 64), (8, 2), (8, 2))


def test_method_names():
    s = parse_method("int4-awq-g64")
    assert (s.format, s.group, s.zero_point, s.awq) == ("int4", 64, True, True)
    assert parse_method("int4-rtn-g128-sym").zero_point is False
    with pytest.raises(InvalidArgumentError, match="int4-awq-g128"):
        parse_method("int3")


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1", "Q8_0"])
def test_gguf_blocks_decode_like_gguf(kind):
    gguf = pytest.importorskip("gguf")
    from braze.quant.gguf_blocks import blocks_to_quantized

    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 160)).astype(np.float32)
    qtype = getattr(gguf.GGMLQuantizationType, kind)
    raw = gguf.quants.quantize(a, qtype)
    expected = gguf.quants.dequantize(raw, qtype).reshape(6, 160)
    q = blocks_to_quantized(kind, raw, (6, 160))
    assert isinstance(q, QuantizedTensor) and q.group == 32
    np.testing.assert_array_equal(q.dequantize().numpy(), expected)


@pytest.mark.parametrize("kind", ["Q4_K", "Q6_K"])
def test_gguf_k_quant_blocks_decode_like_gguf(kind):
    """Q4_K_M files' super-blocks (random bytes, finite fp16 scales) as int4 g32 with mins / int8
    g16: the same floats as gguf's own dequantization."""
    gguf = pytest.importorskip("gguf")
    from braze.quant.gguf_blocks import blocks_to_quantized

    rng = np.random.default_rng(1)
    n, k = 5, 512
    size = {"Q4_K": 144, "Q6_K": 210}[kind]
    raw = rng.integers(0, 256, (n, k // 256, size), dtype=np.uint8)
    halves = rng.uniform(1e-3, 2e-2, (n, k // 256, 2)).astype(np.float16).view(np.uint8)
    if kind == "Q4_K":
        raw[..., 0:4] = halves.reshape(n, k // 256, 4)  # d, dmin
    else:
        raw[..., 208:210] = halves[..., :2]  # d
    qtype = getattr(gguf.GGMLQuantizationType, kind)
    expected = gguf.quants.dequantize(raw.reshape(n, -1), qtype).reshape(n, k)
    q = blocks_to_quantized(kind, raw.reshape(n, -1), (n, k))
    assert (q.format, q.group) == (("int4", 32) if kind == "Q4_K" else ("int8", 16))
    np.testing.assert_array_equal(q.dequantize().numpy(), expected)
