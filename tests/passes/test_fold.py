"""fold_constants: ops over weights and constants become new (re-packed) weights at compile time."""
from __future__ import annotations

import torch
from pass_testlib import check_pass

from braze.ir.parse import parse_graph
from braze.passes.fold import fold_constants, folded_name
from braze.passes.pipeline import lower

torch.manual_seed(0)
W = {"w": torch.randn(6, 8), "a.q.weight": torch.randn(8, 8), "a.k.weight": torch.randn(4, 8),
     "b": torch.randn(8), "col": torch.randn(64, 1), "row": torch.randn(1, 64)}


def test_transpose_of_weight_becomes_w_T():
    out = check_pass(fold_constants, """
        %x = input() {name="x"} : f32[T, 6]
        %w = weight() {name="w"} : f32[6, 8]
        %0 = transpose(%w) : f32[8, 6]
        %1 = linear(%x, %0) : f32[T, 8]
        return y=%1""", """
        %x = input() {name="x"} : f32[T, 6]
        %w.T = weight() {name="w.T"} : f32[8, 6]
        %0 = linear(%x, %w.T) : f32[T, 8]
        return y=%0""", weights=W)
    assert set(out.weights) == {"w.T"}  # the original is no longer used
    assert out.weights["w.T"].is_contiguous()
    assert torch.equal(out.weights["w.T"], W["w"].T)


def test_concat_of_weights():
    out = check_pass(fold_constants, """
        %x = input() {name="x"} : f32[T, 8]
        %a.q.weight = weight() {name="a.q.weight"} : f32[8, 8]
        %a.k.weight = weight() {name="a.k.weight"} : f32[4, 8]
        %0 = concat(%a.q.weight, %a.k.weight) {axis=0} : f32[12, 8]
        %1 = linear(%x, %0) : f32[T, 12]
        return y=%1""", """
        %x = input() {name="x"} : f32[T, 8]
        %a.q|k.weight = weight() {name="a.q|k.weight"} : f32[12, 8]
        %0 = linear(%x, %a.q|k.weight) : f32[T, 12]
        return y=%0""", weights=W)
    assert torch.equal(out.weights["a.q|k.weight"], torch.cat([W["a.q.weight"], W["a.k.weight"]]))


def test_scalar_arithmetic_of_constants():
    check_pass(fold_constants, """
        %x = input() {name="x"} : f32[T, 8]
        %0 = constant() {value=2.0} : f32[]
        %1 = constant() {value=3.0} : f32[]
        %2 = mul(%0, %1) : f32[]
        %3 = rsqrt(%2) : f32[]
        %4 = add(%x, %3) : f32[T, 8]
        %5 = neg(%0) : f32[]
        %6 = mul(%4, %5) : f32[T, 8]
        return y=%6""", f"""
        %x = input() {{name="x"}} : f32[T, 8]
        %0 = constant() {{value={float(torch.rsqrt(torch.tensor(6.0)))!r}}} : f32[]
        %1 = add(%x, %0) : f32[T, 8]
        %2 = constant() {{value=-2.0}} : f32[]
        %3 = mul(%1, %2) : f32[T, 8]
        return y=%3""")


def test_weight_times_constant_and_chains_fold():
    out = check_pass(fold_constants, """
        %x = input() {name="x"} : f32[T, 8]
        %b = weight() {name="b"} : f32[8]
        %0 = constant() {value=2.0} : f32[]
        %1 = mul(%b, %0) : f32[8]
        %2 = exp(%1) : f32[8]
        %3 = add(%x, %2) : f32[T, 8]
        return y=%3""", """
        %x = input() {name="x"} : f32[T, 8]
        %b|2.0.mul.exp = weight() {name="b|2.0.mul.exp"} : f32[8]
        %0 = add(%x, %b|2.0.mul.exp) : f32[T, 8]
        return y=%0""", weights=W)
    torch.testing.assert_close(out.weights["b|2.0.mul.exp"], torch.exp(W["b"] * 2))


def test_no_folding_that_blows_up_a_small_constant():
    text = """
        %x = input() {name="x"} : f32[T, 64]
        %col = weight() {name="col"} : f32[64, 1]
        %row = weight() {name="row"} : f32[1, 64]
        %0 = mul(%col, %row) : f32[64, 64]
        %1 = constant() {value=1.5} : f32[]
        %2 = add(%row, %1) : f32[1, 64]
        %3 = linear(%x, %0) : f32[T, 64]
        %4 = add(%3, %2) : f32[T, 64]
        return y=%4"""
    out = check_pass(fold_constants, text, """
        %x = input() {name="x"} : f32[T, 64]
        %col = weight() {name="col"} : f32[64, 1]
        %row = weight() {name="row"} : f32[1, 64]
        %0 = mul(%col, %row) : f32[64, 64]
        %1 = linear(%x, %0) : f32[T, 64]
        %row|1.5.add = weight() {name="row|1.5.add"} : f32[1, 64]
        %2 = add(%1, %row|1.5.add) : f32[T, 64]
        return y=%2""", weights=W)
    assert set(out.weights) == {"col", "row", "row|1.5.add"}


def test_inputs_and_symbolic_shapes_are_not_folded():
    text = """
        %x = input() {name="x"} : f32[T, 8]
        %b = weight() {name="b"} : f32[8]
        %0 = add(%x, %b) : f32[T, 8]
        return y=%0"""
    check_pass(fold_constants, text, text, weights=W)


def test_one_weight_node_per_folded_name():
    """Two transposes of one weight (two matmuls reading it) fold to ONE `w.T` node: the verifier
    rejects two different weight nodes with the same name."""
    g = parse_graph("""
        %x = input() {name="x"} : f32[T, 6]
        %y = input() {name="y"} : f32[T, 6]
        %w = weight() {name="w"} : f32[6, 8]
        %0 = matmul(%x, %w) : f32[T, 8]
        %1 = matmul(%y, %w) : f32[T, 8]
        return a=%0, b=%1""", W, {"T": 4})
    program = lower(g)
    assert [b.name for b in program.buffers if b.kind == "weight"] == ["w.T"]


def test_name_clash_with_a_different_value_gets_a_prime():
    weights = {"w": torch.randn(3, 3), "w.T": torch.randn(3, 3)}
    out = check_pass(fold_constants, """
        %x = input() {name="x"} : f32[T, 3]
        %w = weight() {name="w"} : f32[3, 3]
        %w.T = weight() {name="w.T"} : f32[3, 3]
        %0 = transpose(%w) : f32[3, 3]
        %1 = linear(%x, %0) : f32[T, 3]
        %2 = linear(%1, %w.T) : f32[T, 3]
        return y=%2""", """
        %x = input() {name="x"} : f32[T, 3]
        %w.T' = weight() {name="w.T'"} : f32[3, 3]
        %0 = linear(%x, %w.T') : f32[T, 3]
        %w.T = weight() {name="w.T"} : f32[3, 3]
        %1 = linear(%0, %w.T) : f32[T, 3]
        return y=%1""", weights=weights)
    assert torch.equal(out.weights["w.T"], weights["w.T"])
    assert torch.equal(out.weights["w.T'"], weights["w"].T)


def test_folded_names():
    assert folded_name("transpose", ["w"]) == "w.T"
    assert folded_name("concat", ["m.gate_proj.weight", "m.up_proj.weight"]) == "m.gate|up_proj.weight"
    assert folded_name("concat", ["a.q.bias", "a.k.bias", "a.v.bias"]) == "a.q|k|v.bias"


def test_fold_reuses_an_existing_weight_with_the_same_name_and_value():
    weights = {"w": torch.randn(3, 3)}
    weights["w.T"] = weights["w"].T.contiguous()
    out = check_pass(fold_constants, """
        %x = input() {name="x"} : f32[T, 3]
        %w = weight() {name="w"} : f32[3, 3]
        %w.T = weight() {name="w.T"} : f32[3, 3]
        %0 = transpose(%w) : f32[3, 3]
        %1 = linear(%x, %0) : f32[T, 3]
        %2 = linear(%1, %w.T) : f32[T, 3]
        return y=%2""", """
        %x = input() {name="x"} : f32[T, 3]
        %w.T = weight() {name="w.T"} : f32[3, 3]
        %0 = linear(%x, %w.T) : f32[T, 3]
        %1 = linear(%0, %w.T) : f32[T, 3]
        return y=%1""", weights=weights)
    assert set(out.weights) == {"w.T"}
