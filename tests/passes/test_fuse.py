"""fuse_into_kernels: which kernels a graph becomes, checked through the Kernel IR, and every fused
program run by the Kernel IR reference executor equals the graph interpreter."""
from __future__ import annotations

import pytest
import torch
from pass_testlib import random_feeds

from braze.ir.interpret import interpret
from braze.ir.kernel import Expr, Program
from braze.ir.kernel_verify import verify_program
from braze.ir.parse import parse_graph
from braze.models.config import ModelConfig, expected_weight_shapes
from braze.models.llama import build_llama, cache_shape
from braze.passes.fuse import fuse_into_kernels
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable

torch.manual_seed(0)
W = {"n": torch.randn(8) + 1, "gate": torch.randn(12, 8), "up": torch.randn(12, 8), "down": torch.randn(8, 12),
     "w": torch.randn(6, 8), "b": torch.randn(6)}


def ops_of(e: Expr | None) -> list[str]:
    return [x.op for x in e.walk()] if e is not None else []


def compile_and_check(text: str, weights=W, symbols=None, t_values=(1, 5)) -> Program:
    """lower(text) and check the reference executor against the interpreter at several T."""
    g = parse_graph(text, weights, symbols or {"T": 6})
    program = lower(g)
    exe = Executable(program, backend="reference")
    for t in t_values:
        feeds = random_feeds(g, {"T": t}, seed=t)
        want = interpret(g, feeds)
        got = exe.run({k: v.clone() for k, v in feeds.items()})
        assert list(got) == list(want)
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-5)
    return program


def test_rms_norm_then_linear_is_one_matmul_with_a_reduction_prologue():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 8]
        %n = weight() {name="n"} : f32[8]
        %0 = rms_norm(%x, %n) {eps=1e-05} : f32[T, 8]
        %w = weight() {name="w"} : f32[6, 8]
        %1 = linear(%0, %w) : f32[T, 6]
        return y=%1""")
    (k,) = p.kernels
    assert k.kind == "matmul"
    assert [op for op, _ in k.reductions] == ["sum"]
    assert ops_of(k.reductions[0][1]) == ["load", "mul"]  # sum(x * x)
    assert {"rowred", "rsqrt", "mul"} <= set(ops_of(k.prologue))
    assert ops_of(k.expr) == ["acc"]
    assert k.operands[k.attr("weight")].buffer == "w"
    assert k.sources[-1] == "linear" and "rsqrt" in k.sources


def test_mlp_is_two_matmuls_the_second_with_prologue_and_residual_epilogue():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 8]
        %n = weight() {name="n"} : f32[8]
        %h = rms_norm(%x, %n) {eps=1e-05} : f32[T, 8]
        %gate = weight() {name="gate"} : f32[12, 8]
        %up = weight() {name="up"} : f32[12, 8]
        %down = weight() {name="down"} : f32[8, 12]
        %0 = linear(%h, %gate) : f32[T, 12]
        %1 = linear(%h, %up) : f32[T, 12]
        %2 = silu(%0) : f32[T, 12]
        %3 = mul(%2, %1) : f32[T, 12]
        %4 = linear(%3, %down) : f32[T, 8]
        %5 = add(%x, %4) : f32[T, 8]
        return y=%5""")
    assert [k.kind for k in p.kernels] == ["matmul", "matmul"]
    gate_up, down = p.kernels
    assert gate_up.operands[gate_up.attr("weight")].buffer == "gate|up"  # gate and up as one linear
    assert len(gate_up.reductions) == 1
    assert down.reductions == ()
    assert [o for o in ops_of(down.prologue) if o != "load"] == ["silu", "mul"]
    # the prologue reads gate and up as two column windows of the one gate|up buffer
    loads = [down.operands[e.value] for e in down.prologue.walk() if e.op == "load"]
    assert {v.buffer for v in loads} == {gate_up.output.buffer}
    assert sorted(v.offset for v in loads) == [0, 12]
    assert set(ops_of(down.expr)) == {"acc", "load", "add"}  # residual add fused as epilogue
    assert down.output.buffer == p.outputs[0][1]


def test_linear_with_bias_and_activation_epilogue():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 8]
        %w = weight() {name="w"} : f32[6, 8]
        %0 = linear(%x, %w) : f32[T, 6]
        %b = weight() {name="b"} : f32[6]
        %1 = add(%0, %b) : f32[T, 6]
        %2 = gelu(%1) : f32[T, 6]
        return y=%2""")
    (k,) = p.kernels
    assert k.kind == "matmul" and ops_of(k.expr)[-1] == "gelu"
    bias = next(v for v in k.operands if v.buffer == "b")
    assert bias.strides == (0, 1)  # broadcast over rows for free


def test_pointwise_chain_is_one_pointwise_kernel():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 8]
        %y = input() {name="y"} : f32[T, 1]
        %b = weight() {name="n"} : f32[8]
        %0 = exp(%x) : f32[T, 8]
        %1 = mul(%0, %y) : f32[T, 8]
        %2 = add(%1, %b) : f32[T, 8]
        %3 = tanh(%2) : f32[T, 8]
        %4 = constant() {value=0.5} : f32[]
        %5 = mul(%3, %4) : f32[T, 8]
        %6 = sigmoid(%5) : f32[T, 8]
        return z=%6""")
    (k,) = p.kernels
    assert k.kind == "pointwise"
    assert ops_of(k.expr).count("load") == 3
    assert [o for o in ops_of(k.expr) if o not in ("load", "const")] == ["exp", "mul", "add", "tanh", "mul", "sigmoid"]
    assert {v.buffer: v.strides for v in k.operands} == {"x": (8, 1), "y": (1, 0), "n": (0, 1)}  # broadcasts


def test_views_are_free_in_a_pointwise_kernel():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 4, 6]
        %y = input() {name="y"} : f32[T, 6, 4]
        %0 = transpose(%y) : f32[T, 4, 6]
        %1 = add(%x, %0) : f32[T, 4, 6]
        %2 = slice(%1) {axis=2, start=1, stop=5} : f32[T, 4, 4]
        %3 = reshape(%x) {shape=["T", 24]} : f32[T, 24]
        %4 = exp(%3) : f32[T, 24]
        return a=%2, b=%4""")
    assert [k.kind for k in p.kernels] == ["pointwise", "pointwise", "pointwise"]
    # the transpose is read through strides, never copied
    k_add = next(k for k in p.kernels if "add" in k.sources)
    assert strides_of(k_add, "y") == (24, 1, 4)


def strides_of(k, buffer):
    return next(v.strides for v in k.operands if v.buffer == buffer)


def test_softmax_lowers_to_reduction_kernels():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 3, 7]
        %0 = softmax(%x) : f32[T, 3, 7]
        return y=%0""")
    assert [k.kind for k in p.kernels] == ["reduction", "reduction"]
    assert [op for op, _ in p.kernels[0].reductions] == ["max"]
    assert [op for op, _ in p.kernels[1].reductions] == ["sum"]
    assert "exp" in ops_of(p.kernels[0].expr) and "div" in ops_of(p.kernels[1].expr)


def test_rms_norm_alone_is_one_reduction_kernel_and_sum_keepdim():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 9]
        %n = weight() {name="n"} : f32[8]
        %0 = slice(%x) {axis=1, start=1, stop=9} : f32[T, 8]
        %1 = rms_norm(%0, %n) {eps=1e-06} : f32[T, 8]
        %2 = max(%x) : f32[T, 1]
        return y=%1, m=%2""")
    assert [k.kind for k in p.kernels] == ["reduction", "reduction"]
    assert p.kernels[1].output.shape == ("T", 1)


def test_runtime_concat_computes_into_its_slices_and_copies_buffers():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 4]
        %y = input() {name="y"} : f32[T, 3]
        %0 = exp(%x) : f32[T, 4]
        %1 = concat(%0, %y) {axis=1} : f32[T, 7]
        %2 = sum(%1) : f32[T, 1]
        return y=%2""")
    assert [k.kind for k in p.kernels] == ["pointwise", "pointwise", "reduction"]
    exp, copy, _ = p.kernels  # exp writes its slice of the concat; the input y is copied into the other
    assert exp.output.buffer == copy.output.buffer
    assert [k.output.offset for k in (exp, copy)] == [0, 4]
    assert [k.output.strides for k in (exp, copy)] == [(7, 1), (7, 1)]
    assert exp.expr.op == "exp" and copy.expr.op == "load" and copy.operands[0].buffer == "y"


def test_a_normalised_head_view_is_computed_into_the_concat():
    """Qwen3's q norm: rms over each head of a [T, H, D] view, reshaped back, then concatenated."""
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 12]
        %v = input() {name="v"} : f32[T, 6]
        %n = weight() {name="n"} : f32[6]
        %0 = reshape(%x) {shape=["T", 2, 6]} : f32[T, 2, 6]
        %1 = rms_norm(%0, %n) {eps=1e-06} : f32[T, 2, 6]
        %2 = reshape(%1) {shape=["T", 12]} : f32[T, 12]
        %3 = concat(%2, %v) {axis=1} : f32[T, 18]
        %4 = exp(%3) : f32[T, 18]
        return y=%4""", weights={"n": torch.rand(6) + 0.5})
    assert [k.kind for k in p.kernels] == ["reduction", "pointwise", "pointwise"]
    norm = p.kernels[0]
    assert norm.output.shape == ("T", 2, 6) and norm.output.strides == (18, 6, 1)


def test_two_matmuls_in_one_region_demote_one_into_its_own_kernel():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 8]
        %y = input() {name="y"} : f32[T, 12]
        %w = weight() {name="w"} : f32[6, 8]
        %down = weight() {name="down"} : f32[8, 12]
        %0 = linear(%x, %w) : f32[T, 6]
        %1 = linear(%y, %down) : f32[T, 8]
        %2 = slice(%1) {axis=1, start=2, stop=8} : f32[T, 6]
        %3 = add(%0, %2) : f32[T, 6]
        %4 = silu(%3) : f32[T, 6]
        return z=%4""")
    assert [k.kind for k in p.kernels] == ["matmul", "matmul"]
    first, second = p.kernels
    assert {"add", "silu", "acc"} <= set(ops_of(second.expr))
    window = next(v for v in second.operands if v.buffer == first.output.buffer)
    assert (window.offset, window.strides) == (2, (8, 1))


def test_fuse_alone_gives_a_verified_unplanned_program_with_graph_buffers():
    g = parse_graph("""
        %x = input() {name="x"} : f32[T, 8]
        %w = weight() {name="w"} : f32[6, 8]
        %0 = linear(%x, %w) : f32[T, 6]
        %1 = relu(%0) : f32[T, 6]
        return y=%1""", W, {"T": 3})
    p = verify_program(fuse_into_kernels(g))
    assert p.plan is None
    assert {(b.name, b.kind) for b in p.buffers} == {("x", "input"), ("w", "weight"), ("t0", "temp")}
    assert p.outputs == (("y", "t0"),)
    assert p.kernels[0].sources == ("linear", "relu")


def test_a_value_with_two_consumers_is_materialized_once():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 8]
        %w = weight() {name="w"} : f32[6, 8]
        %0 = exp(%x) : f32[T, 8]
        %1 = sum(%0) : f32[T, 1]
        %2 = linear(%0, %w) : f32[T, 6]
        %3 = mul(%2, %1) : f32[T, 6]
        return z=%3""")
    assert [k.kind for k in p.kernels] == ["pointwise", "reduction", "matmul"]
    assert p.kernels[0].sources == ("exp",)


# ---------------------------------------------------------------- a whole tiny llama


@pytest.mark.parametrize("bias, qk_norm, tied", [(False, False, False), (True, False, True), (False, True, False)])
def test_tiny_llama_reference_executor_matches_interpreter(bias, qk_norm, tied):
    c = ModelConfig("LlamaForCausalLM", vocab_size=40, hidden_size=24, intermediate_size=20, num_layers=2,
                    num_heads=4, num_kv_heads=2, head_dim=6, attention_bias=bias, qk_norm=qk_norm,
                    tie_word_embeddings=tied)
    gen = torch.Generator().manual_seed(1)
    weights = {k: torch.randn(s, generator=gen) / (s[-1] ** 0.5 if len(s) == 2 else 1)
               for k, s in expected_weight_shapes(c).items()}
    g = build_llama(c, weights, max_seqs=2, context=8, max_tokens=8)
    program = lower(g)
    kinds = [k.kind for k in program.kernels]
    # one k|v cache write per layer; the rope over q|k|v is fused into it and into attention
    assert kinds.count("attention") == 2 and kinds.count("kv_store") == 2 and kinds.count("rope") == 0
    assert all(k.attr("rope_heads") for k in program.kernels if k.kind in ("attention", "kv_store"))
    assert kinds.count("matmul") == 2 * 4 + 1  # qkv, o, gate|up, down per layer; lm head
    shape = cache_shape(c, 2, 8)
    feeds = {"tokens": torch.tensor([3, 7, 1, 9, 2]), "positions": torch.tensor([0, 1, 2, 0, 1]),
             "slots": torch.tensor([0, 0, 0, 1, 1]), "logits_index": torch.tensor([2, 4])}
    for i in range(c.num_layers):
        feeds[f"kv_cache.{i}"] = torch.zeros(shape)
    want = interpret(g, feeds)
    got = Executable(program, backend="reference").run({k: v.clone() for k, v in feeds.items()})
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- rope fused into its readers

ROPE_LAYER = """
    %qkv = input() {name="qkv"} : f32[T, 16]
    %pos = input() {name="pos"} : i64[T]
    %slots = input() {name="slots"} : i64[T]
    %cache = input() {name="cache"} : f32[2, 2, 4, 4]
    %cos = weight() {name="cos"} : f32[4, 2]
    %sin = weight() {name="sin"} : f32[4, 2]
    %0 = rope(%qkv, %pos, %cos, %sin) {head_dim=4, rotary_heads=3} : f32[T, 16]
    %1 = slice(%0) {axis=1, start=8, stop=16} : f32[T, 8]
    %2 = kv_store(%cache, %1, %slots, %pos) : f32[2, 2, 4, 4]
    %3 = slice(%2) {axis=1, start=0, stop=1} : f32[2, 1, 4, 4]
    %4 = slice(%2) {axis=1, start=1, stop=2} : f32[2, 1, 4, 4]
    %5 = slice(%0) {axis=1, start=0, stop=8} : f32[T, 8]
    %6 = attention(%5, %3, %4, %slots, %pos) {head_dim=4, num_heads=2, num_kv_heads=1, scale=0.5} : f32[T, 8]
    %7 = exp(%6) : f32[T, 8]
    return out=%7, cache=%2"""
ROPE_TABLES = {"cos": torch.randn(4, 2), "sin": torch.randn(4, 2)}


def test_rope_read_only_by_kv_store_and_attention_is_fused_into_both():
    p = compile_and_check(ROPE_LAYER, ROPE_TABLES)
    kernels = "\n".join(str(p).split("\n  outputs ")[1].split("\n")[1:])
    # the cache write rotates k (the first of its two heads), attention rotates both q heads; each
    # reads the unrotated q|k|v, and the tables ride along as the last two operands
    assert kernels == """\
kernel k0_kv_store kv_store rope_heads=1 rope_head_dim=4 decode_rows_by=k1_attention -> cache[2, 2, 4, 4; 32, 16, 4, 1]   # rope kv_store
  $0 = qkv+8[T, 8; 16, 1]
  $1 = slots[T; 1]
  $2 = pos[T; 1]
  $3 = cos[4, 2; 2, 1]
  $4 = sin[4, 2; 2, 1]
kernel k1_attention attention head_dim=4 num_heads=2 num_kv_heads=1 scale=0.5 rope_heads=2 rope_head_dim=4 decode_rows_of=k0_kv_store -> t0[T, 8; 8, 1]   # rope attention
  $0 = qkv[T, 8; 16, 1]
  $1 = cache[2, 1, 4, 4; 32, 16, 4, 1]
  $2 = cache+16[2, 1, 4, 4; 32, 16, 4, 1]
  $3 = slots[T; 1]
  $4 = pos[T; 1]
  $5 = cos[4, 2; 2, 1]
  $6 = sin[4, 2; 2, 1]
kernel k2_pointwise pointwise -> t1[T, 8; 8, 1]   # exp
  $0 = t0[T, 8; 8, 1]
  out:
    %0 = exp($0)
    out = %0""", kernels


@pytest.mark.parametrize("other_reader", [
    "%8 = slice(%0) {axis=1, start=0, stop=8} : f32[T, 8]\n    %9 = exp(%8) : f32[T, 8]",  # a pointwise reader
    "%8 = slice(%0) {axis=1, start=2, stop=10} : f32[T, 8]\n    %9 = exp(%8) : f32[T, 8]",  # not head-aligned
])
def test_rope_with_another_reader_stays_its_own_kernel(other_reader):
    text = ROPE_LAYER.replace("    return out=%7, cache=%2", f"    {other_reader}\n    return out=%7, cache=%2, y=%9")
    p = compile_and_check(text, ROPE_TABLES)
    assert [k.kind for k in p.kernels].count("rope") == 1
    assert not any(k.attr("rope_heads") for k in p.kernels)


def test_comparisons_and_where_fuse_into_pointwise_kernels():
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 8]
        %m = input() {name="m"} : bool[8]
        %z = constant() {value=0.0} : f32[]
        %0 = gt(%x, %z) : bool[T, 8]
        %1 = logical_and(%0, %m) : bool[T, 8]
        %2 = exp(%x) : f32[T, 8]
        %3 = where(%1, %x, %2) : f32[T, 8]
        %4 = logical_not(%1) : bool[T, 8]
        return y=%3, mask=%4""")
    # the condition (two users) is stored once, as bytes; where reads it and computes exp inline
    cond, pick, negate = p.kernels
    assert (cond.kind, p.buffer(cond.output.buffer).dtype) == ("pointwise", "bool")
    assert ops_of(cond.expr)[-1] == "logical_and" and ops_of(pick.expr)[-1] == "where" and "exp" in ops_of(pick.expr)
    assert p.buffer(dict(p.outputs)["mask"]).dtype == "bool" and ops_of(negate.expr)[-1] == "logical_not"


def test_batched_matmul_reads_transposes_and_broadcast_heads_as_views():
    # a head-per-group attention: k and v of one kv head serve two query heads (stride 0)
    p = compile_and_check("""
        %q = input() {name="q"} : f32[2, 2, 5, 4]
        %k = input() {name="k"} : f32[2, 1, 6, 4]
        %v = input() {name="v"} : f32[2, 1, 6, 3]
        %0 = transpose(%k) : f32[2, 1, 4, 6]
        %1 = matmul(%q, %0) : f32[2, 2, 5, 6]
        %2 = softmax(%1) : f32[2, 2, 5, 6]
        %3 = matmul(%2, %v) : f32[2, 2, 5, 3]
        return y=%3""", t_values=(1,))
    first, *_, last = p.kernels
    assert first.kind == last.kind == "batch_matmul"
    assert first.operands[1].buffer == "k" and first.operands[1].strides == (24, 0, 1, 4)
    assert last.operands[1].strides == (18, 0, 3, 1)


def test_a_reduction_of_a_matmul_epilogue_reads_the_matmul_output():
    # linear -> pointwise -> row sum: the matmul keeps its epilogue, the sum gets its own kernel
    p = compile_and_check("""
        %x = input() {name="x"} : f32[T, 8]
        %w = weight() {name="w"} : f32[6, 8]
        %0 = linear(%x, %w) : f32[T, 6]
        %1 = maximum(%0, %0) : f32[T, 6]
        %2 = sum(%1) : f32[T, 1]
        return y=%2""")
    assert [(k.kind, k.sources) for k in p.kernels] == [("matmul", ("linear", "maximum")), ("reduction", ("sum",))]
