"""gather, rope, kv_store and attention (GQA, several slots, decode and a two-sequence prefill)."""
from __future__ import annotations

import math

import pytest
import torch

from braze.codegen.cpp import compile_program
from braze.ir.interpret import attention_reference, rope_reference
from braze.ir.kernel import Buffer, Kernel, View
from cpp_testlib import alloc, cview, program, run

H, HKV, D, S, CTX, V, E = 6, 2, 12, 3, 40, 50, 40
QKV = (H + 2 * HKV) * D  # fused qkv row: [q | k | v]


@pytest.fixture(scope="module")
def attn():
    bufs = [Buffer("ids", ("T",), "int64", "input"), Buffer("emb", (V, E), "bfloat16", "weight"),
            Buffer("x", ("T", E), "float32", "temp"),
            Buffer("qkv", ("T", QKV), "float32", "input"), Buffer("slots", ("T",), "int64", "input"),
            Buffer("pos", ("T",), "int64", "input"), Buffer("cos", (CTX, D // 2), "float32", "weight"),
            Buffer("sin", (CTX, D // 2), "float32", "weight"),
            Buffer("q_rot", ("T", H * D), "float32", "temp"), Buffer("k_rot", ("T", HKV * D), "float32", "temp"),
            Buffer("k_cache", (S, HKV, CTX, D), "float32", "state"), Buffer("v_cache", (S, HKV, CTX, D), "float32", "state"),
            Buffer("out", ("T", H * D), "float32", "temp")]
    T = "T"
    q = View("qkv", (T, H * D), (QKV, 1), 0)
    k = View("qkv", (T, HKV * D), (QKV, 1), H * D)
    v = View("qkv", (T, HKV * D), (QKV, 1), (H + HKV) * D)
    idx = (cview("slots", (T,)), cview("pos", (T,)))
    tables = (cview("cos", (CTX, D // 2)), cview("sin", (CTX, D // 2)))
    cache = lambda name: cview(name, (S, HKV, CTX, D))  # noqa: E731
    rope_attrs = (("head_dim", D),)
    kernels = [
        Kernel("embed", "gather", (cview("emb", (V, E)), cview("ids", (T,))), cview("x", (T, E))),
        Kernel("rope_q", "rope", (q, cview("pos", (T,))) + tables, cview("q_rot", (T, H * D)), attrs=rope_attrs),
        Kernel("rope_k", "rope", (k, cview("pos", (T,))) + tables, cview("k_rot", (T, HKV * D)), attrs=rope_attrs),
        Kernel("store_k", "kv_store", (cache("k_cache"), cview("k_rot", (T, HKV * D))) + idx, cache("k_cache")),
        Kernel("store_v", "kv_store", (v,) + idx, cache("v_cache")),  # the 3-operand form
        Kernel("attn", "attention", (cview("q_rot", (T, H * D)), cache("k_cache"), cache("v_cache")) + idx,
               cview("out", (T, H * D)),
               attrs=(("num_heads", H), ("num_kv_heads", HKV), ("head_dim", D), ("scale", 1 / math.sqrt(D)))),
    ]
    return compile_program(program(kernels, bufs, symbols={"T": 32}))


def _check(cp, slots, pos):
    T = len(slots)
    sym = {"T": T}
    ts = alloc(cp.program, sym)
    ts["ids"] = torch.randint(0, V, (T,))
    ts["slots"], ts["pos"] = torch.tensor(slots), torch.tensor(pos)
    ang = torch.arange(CTX)[:, None] * (10000.0 ** (-torch.arange(D // 2) / (D // 2)))[None]
    ts["cos"], ts["sin"] = ang.cos().contiguous(), ang.sin().contiguous()
    k0, v0 = ts["k_cache"].clone(), ts["v_cache"].clone()
    run(cp, ts, sym)

    torch.testing.assert_close(ts["x"], ts["emb"][ts["ids"]].float(), rtol=0, atol=0)
    qkv = ts["qkv"]
    q = rope_reference(qkv[:, :H * D], ts["pos"], ts["cos"], ts["sin"], D)
    k = rope_reference(qkv[:, H * D:(H + HKV) * D], ts["pos"], ts["cos"], ts["sin"], D)
    v = qkv[:, (H + HKV) * D:]
    torch.testing.assert_close(ts["q_rot"], q, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ts["k_rot"], k, rtol=1e-5, atol=1e-5)
    k0[ts["slots"], :, ts["pos"], :] = k.view(T, HKV, D)
    v0[ts["slots"], :, ts["pos"], :] = v.reshape(T, HKV, D)
    torch.testing.assert_close(ts["k_cache"], k0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ts["v_cache"], v0, rtol=0, atol=0)
    ref = attention_reference(q, k0, v0, ts["slots"], ts["pos"], H, HKV, D, 1 / math.sqrt(D))
    torch.testing.assert_close(ts["out"], ref, rtol=1e-4, atol=1e-5)


def test_decode_several_slots(attn):
    _check(attn, [2, 0, 1], [5, 0, CTX - 1])  # positions 0 and CTX-1 (two 32-row chunks)


def test_decode_single_token(attn):
    _check(attn, [1], [9])


def test_prefill_two_sequences(attn):
    # sequence A in slot 2 (positions 0..4), sequence B in slot 0 (positions 0..2), one batch
    _check(attn, [2, 2, 2, 2, 2, 0, 0, 0], [0, 1, 2, 3, 4, 0, 1, 2])


def test_long_prefill_chunks(attn):
    # every position of one sequence: chunk boundaries at 31|32 included
    _check(attn, [1] * CTX, list(range(CTX)))


@pytest.mark.parametrize("slots, positions", [([2, 0], [17, 3]), ([1] * 5, [0, 1, 2, 3, 4])])
def test_fused_qkv_rope_and_one_kv_store_through_the_pipeline(slots, positions):
    """The model's attention block: rope over q|k|v with v passing through, one k|v cache write; the
    rope is fused into the cache write (k) and attention (q), no kernel of its own."""
    from fused_attention_text import FUSED_ATTENTION_TEXT, fused_attention_case

    from braze.ir.interpret import interpret
    from braze.ir.parse import parse_graph
    from braze.passes.pipeline import lower
    from braze.runtime.executable import Executable

    weights, feeds = fused_attention_case(slots, positions)
    graph = parse_graph(FUSED_ATTENTION_TEXT, weights, {"T": 8})
    want = interpret(graph, {k: v.clone() for k, v in feeds.items()})
    program = lower(graph)
    assert [k.kind for k in program.kernels] == ["kv_store", "attention"]
    got = Executable(program, backend="cpp").run({k: v.clone() for k, v in feeds.items()})
    torch.testing.assert_close(got["out"], want["out"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got["cache"], want["cache"], rtol=1e-6, atol=1e-6)
