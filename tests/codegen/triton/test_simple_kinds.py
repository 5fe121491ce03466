"""Triton emitters for reduction, gather, rope and kv_store, checked against the Graph IR interpreter
(graphs lowered by the real pipeline) and, for hand-written kernels, the Kernel IR reference executor.

Without CUDA these run in Triton's CPU interpreter (conftest.py), so shapes stay small.
"""
from __future__ import annotations

import pytest
import torch

from braze.codegen.triton import compile_program
from braze.ir.interpret import interpret
from braze.ir.kernel import Buffer, Expr, Kernel, Program, View
from braze.ir.kernel_interpret import run_program
from braze.ir.parse import parse_graph
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# rows past the last one in a block compute 0/0 before their store is masked off (numpy warns)
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def check_graph(text, weights, feeds, run_program_triton, symbols=None, rtol=1e-5, atol=1e-5, kinds=None):
    g = parse_graph(text, weights, symbols or {"T": 16})
    program = lower(g)
    if kinds is not None:
        assert sorted({k.kind for k in program.kernels}) == sorted(kinds), [k.kind for k in program.kernels]
    want = interpret(g, {k: v.clone() for k, v in feeds.items()})
    got = run_program_triton(program, feeds)
    assert list(got) == list(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")
    return program


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- reductions through the pipeline


def test_rms_norm_alone_softmax_and_row_max(run_program_triton):
    text = """
        %x = input() {name="x"} : f32[T, 72]
        %n = weight() {name="n"} : f32[72]
        %0 = rms_norm(%x, %n) {eps=1e-06} : f32[T, 72]
        %1 = softmax(%x) : f32[T, 72]
        %2 = max(%x) : f32[T, 1]
        %3 = sum(%x) : f32[T, 1]
        return rms=%0, sm=%1, mx=%2, sm2=%3"""
    w = {"n": torch.randn(72, generator=gen(0)) + 1}
    for t in (1, 13):
        feeds = {"x": 3 * torch.randn(t, 72, generator=gen(t))}
        check_graph(text, w, feeds, run_program_triton, kinds={"reduction", "pointwise"})


def test_per_head_rms_norm_of_a_column_slice(run_program_triton):
    # the qk-norm pattern: [T, 3, 12] read through a reshape of columns 4..40 of a wider buffer
    text = """
        %qkv = input() {name="qkv"} : f32[T, 50]
        %n = weight() {name="n"} : f32[12]
        %0 = slice(%qkv) {axis=1, start=4, stop=40} : f32[T, 36]
        %1 = reshape(%0) {shape=["T", 3, 12]} : f32[T, 3, 12]
        %2 = rms_norm(%1, %n) {eps=1e-06} : f32[T, 3, 12]
        return y=%2"""
    w = {"n": torch.randn(12, generator=gen(1))}
    p = check_graph(text, w, {"qkv": torch.randn(13, 50, generator=gen(2))}, run_program_triton,
                    kinds={"reduction"})
    assert p.kernels[0].operands[0].offset == 4


# ---------------------------------------------------------------- hand-written reduction kernels


def _load(i):
    return Expr("load", value=i)


def _op(name, *args):
    return Expr(name, tuple(args))


def _rowred(j):
    return Expr("rowred", value=j)


def test_one_kernel_softmax_and_a_row_wider_than_one_block():
    """softmax as one kernel (the sum reads the max) over a strided slice, stored as float16; and a
    mean over 20000 columns (folded in column chunks); one value per row reading column 0."""
    wide_c = 20000
    bufs = (Buffer("x", ("T", 100), "float32", "input"), Buffer("sm", ("T", 72), "float16", "temp"),
            Buffer("big", ("T", wide_c), "float32", "input"), Buffer("mean", ("T", 1), "float32", "temp"),
            Buffer("cent", ("T", wide_c), "float32", "temp"))
    xs = View("x", ("T", 72), (100, 1), 10)
    shifted = _op("exp", _op("sub", _load(0), _rowred(0)))
    softmax = Kernel("softmax", "reduction", (xs,), View("sm", ("T", 72), (72, 1)), expr=_op("div", shifted, _rowred(1)),
                     reductions=(("max", _load(0)), ("sum", shifted)))
    big = View("big", ("T", wide_c), (wide_c, 1))
    inv_c = Expr("const", value=1.0 / wide_c)
    mean = Kernel("mean", "reduction", (big,), View("mean", ("T", 1), (1, 1)), expr=_op("mul", _rowred(0), inv_c),
                  reductions=(("sum", _load(0)),))
    # centered values (needs the max too, after the sum): output over the whole wide row, chunked
    cent = Kernel("cent", "reduction", (big,), View("cent", ("T", wide_c), (wide_c, 1)),
                  expr=_op("sub", _load(0), _op("mul", _rowred(0), inv_c)),
                  reductions=(("sum", _load(0)), ("max", _op("sub", _load(0), _rowred(0)))))
    # one value per row that also reads the row's first element: x[:, 10] * max(x[:, 10:82])
    first = Kernel("first", "reduction", (xs,), View("first", ("T", 1), (1, 1)), expr=_op("mul", _load(0), _rowred(0)),
                   reductions=(("max", _load(0)),))
    bufs += (Buffer("first", ("T", 1), "float32", "temp"),)
    program = Program((softmax, mean, cent, first), bufs, outputs=(), symbols={"T": 4})
    tp = compile_program(program)
    assert "for c0 in range(0, 20000, BC)" in tp.source
    for t in (1, 3):
        flat = {"x": torch.randn(t * 100, generator=gen(t)), "big": torch.randn(t * wide_c, generator=gen(t + 1)) + 1,
                "sm": torch.zeros(t * 72, dtype=torch.float16), "mean": torch.zeros(t), "cent": torch.zeros(t * wide_c), "first": torch.zeros(t)}
        ref = {k: v.clone() for k, v in flat.items()}
        run_program(program, ref, {"T": t})
        dev = {k: v.to(DEVICE) for k, v in flat.items()}
        tp.run([dev[b.name] for b in program.buffers], {"T": t})
        torch.testing.assert_close(dev["sm"].cpu(), ref["sm"], rtol=1e-2, atol=1e-3)
        torch.testing.assert_close(dev["mean"].cpu(), ref["mean"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dev["cent"].cpu(), ref["cent"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(dev["first"].cpu(), ref["first"], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- gather, rope, kv_store


def test_gather_embedding_rows_with_odd_hidden(run_program_triton):
    text = """
        %emb = weight() {name="emb"} : f32[50, 72]
        %tok = input() {name="tok"} : i64[T]
        %0 = gather(%emb, %tok) : f32[T, 72]
        %idx = input() {name="idx"} : i64[N]
        %1 = gather(%0, %idx) : f32[N, 72]
        return y=%0, z=%1"""
    w = {"emb": torch.randn(50, 72, generator=gen(3))}
    feeds = {"tok": torch.tensor([49, 0, 7, 7, 31, 2, 18]), "idx": torch.tensor([6, 0, 3])}
    check_graph(text, w, feeds, run_program_triton, symbols={"T": 8, "N": 4}, kinds={"gather"})


ROPE_TEXT = """
    %qkv = input() {name="qkv"} : f32[T, 700]
    %pos = input() {name="pos"} : i64[T]
    %cos64 = weight() {name="cos64"} : f32[40, 32]
    %sin64 = weight() {name="sin64"} : f32[40, 32]
    %cos12 = weight() {name="cos12"} : f32[40, 6]
    %sin12 = weight() {name="sin12"} : f32[40, 6]
    %0 = slice(%qkv) {axis=1, start=0, stop=576} : f32[T, 576]
    %1 = rope(%0, %pos, %cos64, %sin64) {head_dim=64} : f32[T, 576]
    %2 = slice(%qkv) {axis=1, start=600, stop=636} : f32[T, 36]
    %3 = rope(%2, %pos, %cos12, %sin12) {head_dim=12} : f32[T, 36]
    return q=%1, k=%3"""


def _rope_weights():
    w = {}
    for d in (64, 12):
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
        ang = torch.arange(40).float()[:, None] * inv[None, :]
        w[f"cos{d}"], w[f"sin{d}"] = ang.cos(), ang.sin()
    return w


def test_rope_9_heads_of_64_and_3_heads_of_12_from_a_wide_qkv(run_program_triton):
    feeds = {"qkv": torch.randn(13, 700, generator=gen(4)), "pos": torch.arange(13) + 20}
    feeds["pos"][3] = 39
    check_graph(ROPE_TEXT, _rope_weights(), feeds, run_program_triton, symbols={"T": 16}, kinds={"rope"})


KV_TEXT = """
    %cache = input() {name="cache"} : f32[2, 3, 16, 8]
    %x = input() {name="x"} : f32[T, 40]
    %slots = input() {name="slots"} : i64[T]
    %pos = input() {name="pos"} : i64[T]
    %0 = slice(%x) {axis=1, start=10, stop=34} : f32[T, 24]
    %1 = kv_store(%cache, %0, %slots, %pos) : f32[2, 3, 16, 8]
    return cache=%1"""


def test_kv_store_two_slots_mixed_positions_one_module_for_every_t():
    g = parse_graph(KV_TEXT, {}, {"T": 16})
    program = lower(g)
    assert [k.kind for k in program.kernels] == ["kv_store"]
    exe = Executable(program, backend="triton", device=DEVICE)
    module = exe.compiled.module
    cache = torch.randn(2, 3, 16, 8, generator=gen(5))
    steps = [(torch.tensor([1]), torch.tensor([9])),
             (torch.tensor([0] * 7 + [1] * 6), torch.tensor([0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15])),
             (torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))]  # an empty step
    for slots, pos in steps:
        t = len(slots)
        feeds = {"cache": cache, "x": torch.randn(t, 40, generator=gen(t)), "slots": slots, "pos": pos}
        want = interpret(g, {k: v.clone() for k, v in feeds.items()})["cache"]
        dev = {k: v.to(DEVICE, copy=True) for k, v in feeds.items()}
        got = exe.run(dev)["cache"]
        assert got.data_ptr() == dev["cache"].data_ptr()  # updated in place
        torch.testing.assert_close(got.cpu(), want, rtol=0, atol=0)
        cache = want
    # the same source again is a cache hit returning the very module already loaded
    again = compile_program(program)
    assert again.cache_hit and again.module is module


def test_no_symbol_value_reaches_the_jit_source():
    p16, p64 = (lower(parse_graph(ROPE_TEXT, _rope_weights(), {"T": t})) for t in (16, 64))
    src16, src64 = compile_program(p16).source, compile_program(p64).source
    assert src16 == src64  # the symbols' bounds only size the arena, never the kernels
    assert "do_not_specialize=['T']" in src16


# ---------------------------------------------------------------- float16 end to end


def test_float16_embedding_norm_rope_cache(run_program_triton):
    text = """
        %emb = weight() {name="emb"} : f16[30, 48]
        %tok = input() {name="tok"} : i64[T]
        %pos = input() {name="pos"} : i64[T]
        %slots = input() {name="slots"} : i64[T]
        %n = weight() {name="n"} : f16[12]
        %cos = weight() {name="cos"} : f16[40, 6]
        %sin = weight() {name="sin"} : f16[40, 6]
        %cache = input() {name="cache"} : f16[2, 2, 40, 12]
        %0 = gather(%emb, %tok) : f16[T, 48]
        %1 = reshape(%0) {shape=["T", 4, 12]} : f16[T, 4, 12]
        %2 = rms_norm(%1, %n) {eps=1e-06} : f16[T, 4, 12]
        %3 = reshape(%2) {shape=["T", 48]} : f16[T, 48]
        %4 = rope(%3, %pos, %cos, %sin) {head_dim=12} : f16[T, 48]
        %5 = slice(%4) {axis=1, start=24, stop=48} : f16[T, 24]
        %6 = kv_store(%cache, %5, %slots, %pos) : f16[2, 2, 40, 12]
        %7 = softmax(%4) : f16[T, 48]
        return y=%7, cache=%6"""
    rw = _rope_weights()
    w = {"emb": torch.randn(30, 48, generator=gen(6)).half(), "n": (torch.randn(12, generator=gen(7)) + 1).half(),
         "cos": rw["cos12"].half(), "sin": rw["sin12"].half()}
    feeds = {"tok": torch.tensor([1, 29, 5, 5, 17]), "pos": torch.tensor([7, 8, 9, 0, 1]),
             "slots": torch.tensor([1, 1, 1, 0, 0]), "cache": torch.zeros(2, 2, 40, 12, dtype=torch.float16)}
    p = check_graph(text, w, feeds, run_program_triton, symbols={"T": 8}, rtol=1e-2, atol=1e-2)
    assert {"gather", "reduction", "rope", "kv_store"} <= {k.kind for k in p.kernels}
    assert {"float16", "int64"} <= {b.dtype for b in p.buffers}


@pytest.mark.parametrize("decode_max_t", [10 ** 6, 0], ids=["decode", "prefill"])
def test_fused_qkv_rope_and_one_kv_store(run_program_triton, monkeypatch, decode_max_t):
    """The model's attention block: rope over q|k|v with v passing through, one k|v cache write. The
    rope is no kernel of its own: the cache write rotates k and attention rotates q as they read
    them, on both of attention's launch paths (split-KV decode and flash prefill)."""
    from fused_attention_text import FUSED_ATTENTION_TEXT, fused_attention_case

    from braze.codegen.triton import attention as attn_mod
    monkeypatch.setattr(attn_mod, "DECODE_MAX_T", decode_max_t)
    for slots, positions in (([2, 0], [17, 3]), ([1] * 5, [0, 1, 2, 3, 4])):
        weights, feeds = fused_attention_case(slots, positions)
        check_graph(FUSED_ATTENTION_TEXT, weights, feeds, run_program_triton, symbols={"T": 8}, rtol=1e-4,
                    kinds={"kv_store", "attention"})


def test_a_scalar_operand_is_one_unmasked_load(run_program_triton):
    """A 0-d input (torch.compile hands a region its scalar constants so) broadcast over the block:
    a block mask on its scalar pointer does not compile on the GPU."""
    text = """
        %x = input() {name="x"} : f32[T, 24]
        %s = input() {name="s"} : f32[]
        %0 = mul(%x, %s) : f32[T, 24]
        %1 = add(%0, %s) : f32[T, 24]
        %2 = sum(%1) : f32[T, 1]
        %3 = add(%2, %s) : f32[T, 1]
        return y=%1, r=%3"""
    feeds = {"x": torch.randn(5, 24, generator=gen(3)), "s": torch.tensor(1.5)}
    program = check_graph(text, {}, feeds, run_program_triton)
    from braze.codegen.triton import emit_module
    assert "tl.load(in1 + 0).to(tl.float32)" in emit_module(program)
