"""The reference interpreter against hand-written torch (the IR's semantics, checked independently)."""
from __future__ import annotations

import math

import pytest
import torch

from braze.ir.builder import GraphBuilder
from braze.ir.interpret import interpret, rope_reference

torch.manual_seed(0)


def test_rms_norm_and_softmax_and_mean():
    b = GraphBuilder(symbols={"T": 8})
    x = b.input("x", ("T", 12), "float32")
    w = b.weight("w", torch.randn(12))
    g = b.build({"norm": b.rms_norm(x, w, 1e-5), "sm": b.op("softmax", x), "mean": b.op("mean", x)})
    xv = torch.randn(5, 12) * 3
    out = interpret(g, {"x": xv})
    expected_norm = xv / torch.sqrt((xv * xv).sum(-1, keepdim=True) / 12 + 1e-5) * b.weights["w"]
    e = torch.exp(xv - xv.max(-1, keepdim=True).values)
    torch.testing.assert_close(out["norm"], expected_norm)
    torch.testing.assert_close(out["sm"], e / e.sum(-1, keepdim=True))
    torch.testing.assert_close(out["mean"], xv.sum(-1, keepdim=True) / 12)


def test_rms_norm_bf16_rounds_before_weight():
    """HF recipe: normalize in f32, round to the input dtype, then multiply by the weight."""
    b = GraphBuilder(symbols={"T": 4})
    x = b.input("x", ("T", 16), "bfloat16")
    w = b.weight("w", torch.randn(16).bfloat16())
    g = b.build({"y": b.rms_norm(x, w, 1e-6)})
    xv = torch.randn(3, 16).bfloat16()
    xf = xv.float()
    normed = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).bfloat16()
    y = interpret(g, {"x": xv})["y"]
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, normed * b.weights["w"])


def _rope_complex(x, positions, theta, head_dim):
    """RoPE as complex rotation of the pairs (x[i], x[i + D/2]) by angle pos * theta_i."""
    t, half = x.shape[0], head_dim // 2
    xh = x.view(t, -1, head_dim).double()
    z = torch.complex(xh[..., :half], xh[..., half:])
    angle = positions.double()[:, None] * theta.double()[None, :]  # [T, half]
    z = z * torch.polar(torch.ones_like(angle), angle)[:, None, :]
    return torch.cat([z.real, z.imag], dim=-1).reshape(x.shape).float()


def _rope_hf(x, positions, cos_table, sin_table, head_dim):
    """HF's apply_rotary_pos_emb with rotate_half, written out."""
    t = x.shape[0]
    xh = x.view(t, -1, head_dim)
    cos = torch.cat([cos_table[positions]] * 2, dim=-1)[:, None, :]
    sin = torch.cat([sin_table[positions]] * 2, dim=-1)[:, None, :]

    def rotate_half(v):
        lo, hi = v[..., : head_dim // 2], v[..., head_dim // 2:]
        return torch.cat([-hi, lo], dim=-1)
    return (xh * cos + rotate_half(xh) * sin).reshape(x.shape)


@pytest.mark.parametrize("head_dim, heads", [(8, 3), (6, 2)])
def test_rope(head_dim, heads):
    context, half = 20, head_dim // 2
    theta = 1.0 / (10000.0 ** (torch.arange(half, dtype=torch.float64) * 2 / head_dim))
    angles = torch.arange(context, dtype=torch.float64)[:, None] * theta[None, :]
    cos_t, sin_t = angles.cos().float(), angles.sin().float()
    b = GraphBuilder(symbols={"T": 8})
    x = b.input("x", ("T", heads * head_dim), "float32")
    pos = b.input("pos", ("T",), "int64")
    y = b.rope(x, pos, b.weight("cos", cos_t), b.weight("sin", sin_t), head_dim)
    g = b.build({"y": y})
    xv = torch.randn(5, heads * head_dim)
    pv = torch.tensor([0, 1, 7, 19, 3])
    out = interpret(g, {"x": xv, "pos": pv})["y"]
    torch.testing.assert_close(out, _rope_hf(xv, pv, cos_t, sin_t, head_dim))
    torch.testing.assert_close(out, _rope_complex(xv, pv, theta, head_dim), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rope_reference(xv, pv, cos_t, sin_t, head_dim), out)
    # position 0 is the identity
    assert torch.allclose(out[0], xv[0])


def _attention_loops(q, kc, vc, slots, positions, h, hkv, d, scale):
    out = torch.zeros(q.shape[0], h * d, dtype=torch.float64)
    for t in range(q.shape[0]):
        s, p = int(slots[t]), int(positions[t])
        for head in range(h):
            kvh = head // (h // hkv)
            qv = q[t, head * d:(head + 1) * d].double()
            keys = kc[s, kvh, : p + 1].double()  # [p+1, d]
            vals = vc[s, kvh, : p + 1].double()
            scores = keys @ qv * scale
            probs = torch.exp(scores - scores.max())
            probs = probs / probs.sum()
            out[t, head * d:(head + 1) * d] = probs @ vals
    return out.float()


def test_attention_gqa_causal_two_slots():
    h, hkv, d, slots_n, ctx = 6, 2, 4, 2, 10
    b = GraphBuilder(symbols={"T": 8})
    q = b.input("q", ("T", h * d), "float32")
    kc = b.input("k_cache", (slots_n, hkv, ctx, d), "float32")
    vc = b.input("v_cache", (slots_n, hkv, ctx, d), "float32")
    slots = b.input("slots", ("T",), "int64")
    pos = b.input("pos", ("T",), "int64")
    scale = 1.0 / math.sqrt(d)
    g = b.build({"o": b.attention(q, kc, vc, slots, pos, h, hkv, d, scale)})
    feeds = {"q": torch.randn(5, h * d), "k_cache": torch.randn(slots_n, hkv, ctx, d),
             "v_cache": torch.randn(slots_n, hkv, ctx, d),
             "slots": torch.tensor([0, 0, 0, 1, 1]), "pos": torch.tensor([0, 1, 2, 0, 6])}
    out = interpret(g, feeds)["o"]
    torch.testing.assert_close(out, _attention_loops(*feeds.values(), h, hkv, d, scale), rtol=1e-5, atol=1e-5)
    # token at position 0 only sees cache row 0: its output is that row's value, per kv head group
    for head in range(h):
        torch.testing.assert_close(out[0, head * d:(head + 1) * d], feeds["v_cache"][0, head // 3, 0])
    # rows past a token's position are invisible: changing them changes nothing
    feeds2 = dict(feeds, k_cache=feeds["k_cache"].clone(), v_cache=feeds["v_cache"].clone())
    feeds2["k_cache"][:, :, 7:] = 100.0
    feeds2["v_cache"][:, :, 7:] = -100.0
    torch.testing.assert_close(interpret(g, feeds2)["o"], out)


def _kv_graph():
    b = GraphBuilder(symbols={"T": 8})
    cache = b.input("cache", (2, 2, 6, 3), "float32")
    x = b.input("x", ("T", 6), "float32")
    slots, pos = b.input("slots", ("T",), "int64"), b.input("pos", ("T",), "int64")
    return b.build({"cache": b.kv_store(cache, x, slots, pos)})


def test_kv_store_is_pure_by_default():
    g = _kv_graph()
    cache = torch.zeros(2, 2, 6, 3)
    x = torch.arange(18, dtype=torch.float32).view(3, 6)
    feeds = {"cache": cache, "x": x, "slots": torch.tensor([1, 0, 1]), "pos": torch.tensor([2, 0, 5])}
    out = interpret(g, feeds)["cache"]
    assert torch.count_nonzero(cache) == 0  # the input is untouched
    assert out.data_ptr() != cache.data_ptr()
    expected = torch.zeros(2, 2, 6, 3)
    for t, (s, p) in enumerate([(1, 2), (0, 0), (1, 5)]):
        expected[s, :, p, :] = x[t].view(2, 3)
    assert torch.equal(out, expected)

    out2 = interpret(g, feeds, inplace_state=True)["cache"]
    assert out2.data_ptr() == cache.data_ptr()
    assert torch.equal(cache, expected)


def test_interpreter_binds_symbols_consistently():
    b = GraphBuilder(symbols={"T": 8})
    x, y = b.input("x", ("T", 4), "float32"), b.input("y", ("T", 4), "float32")
    g = b.build({"z": b.add(x, y)})
    with pytest.raises(ValueError, match="symbol T is 3 elsewhere but 2"):
        interpret(g, {"x": torch.randn(3, 4), "y": torch.randn(2, 4)})
    with pytest.raises(ValueError, match="graph says"):
        interpret(g, {"x": torch.randn(3, 5), "y": torch.randn(3, 5)})


def test_rope_rotary_heads_rotate_the_first_heads_and_pass_the_rest_through():
    from braze.ir.interpret import rope_reference
    x, pos = torch.randn(5, 4 * 8), torch.tensor([0, 3, 1, 7, 2])
    ang = torch.arange(10)[:, None] * torch.rand(4)[None]
    cos, sin = ang.cos(), ang.sin()
    partial = rope_reference(x, pos, cos, sin, 8, rotary_heads=3)
    assert torch.equal(partial[:, 24:], x[:, 24:])
    torch.testing.assert_close(partial[:, :24], rope_reference(x[:, :24], pos, cos, sin, 8))
    assert torch.equal(partial[0, :24], x[0, :24])  # position 0: the identity rotation
