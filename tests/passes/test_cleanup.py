"""CSE and DCE, as Before/Expected text."""
from __future__ import annotations

import torch
from pass_testlib import check_pass

from braze.ir.parse import parse_graph
from braze.passes.cleanup import eliminate_common_subexpressions as cse
from braze.passes.cleanup import eliminate_dead_code as dce


def test_cse_merges_duplicate_subexpressions():
    before = """
        %x = input() {name="x"} : f32[T, 8]
        %0 = exp(%x) : f32[T, 8]
        %1 = constant() {value=2.0} : f32[]
        %2 = mul(%0, %1) : f32[T, 8]
        %3 = exp(%x) : f32[T, 8]
        %4 = constant() {value=2.0} : f32[]
        %5 = mul(%3, %4) : f32[T, 8]
        %6 = add(%2, %5) : f32[T, 8]
        %7 = sum(%0) : f32[T, 1]
        %8 = sum(%3) : f32[T, 1]
        return y=%6, s1=%7, s2=%8"""
    expected = """
        %x = input() {name="x"} : f32[T, 8]
        %0 = exp(%x) : f32[T, 8]
        %1 = constant() {value=2.0} : f32[]
        %2 = mul(%0, %1) : f32[T, 8]
        %3 = add(%2, %2) : f32[T, 8]
        %4 = sum(%0) : f32[T, 1]
        return y=%3, s1=%4, s2=%4"""
    check_pass(cse, before, expected)


def test_cse_keeps_different_attrs_apart():
    before = """
        %x = input() {name="x"} : f32[T, 8]
        %0 = slice(%x) {axis=1, start=0, stop=4} : f32[T, 4]
        %1 = slice(%x) {axis=1, start=4, stop=8} : f32[T, 4]
        %2 = slice(%x) {axis=1, start=0, stop=4} : f32[T, 4]
        %3 = add(%0, %1) : f32[T, 4]
        %4 = add(%3, %2) : f32[T, 4]
        %5 = constant() {value=2.0} : f32[]
        %6 = constant() {value=3.0} : f32[]
        %7 = mul(%4, %5) : f32[T, 4]
        %8 = mul(%4, %6) : f32[T, 4]
        %9 = cast(%x) {dtype="bfloat16"} : bf16[T, 8]
        %10 = cast(%x) {dtype="float16"} : f16[T, 8]
        return a=%7, b=%8, c=%9, d=%10"""
    expected = """
        %x = input() {name="x"} : f32[T, 8]
        %0 = slice(%x) {axis=1, start=0, stop=4} : f32[T, 4]
        %1 = slice(%x) {axis=1, start=4, stop=8} : f32[T, 4]
        %2 = add(%0, %1) : f32[T, 4]
        %3 = add(%2, %0) : f32[T, 4]
        %4 = constant() {value=2.0} : f32[]
        %5 = mul(%3, %4) : f32[T, 4]
        %6 = constant() {value=3.0} : f32[]
        %7 = mul(%3, %6) : f32[T, 4]
        %8 = cast(%x) {dtype="bfloat16"} : bf16[T, 8]
        %9 = cast(%x) {dtype="float16"} : f16[T, 8]
        return a=%5, b=%7, c=%8, d=%9"""
    check_pass(cse, before, expected)


def test_cse_keeps_operand_order():
    """sub(a, b) and sub(b, a) are different; so are two inputs of the same shape."""
    text = """
        %x = input() {name="x"} : f32[T, 8]
        %y = input() {name="y"} : f32[T, 8]
        %0 = sub(%x, %y) : f32[T, 8]
        %1 = sub(%y, %x) : f32[T, 8]
        %2 = exp(%y) : f32[T, 8]
        %3 = exp(%x) : f32[T, 8]
        return a=%0, b=%1, c=%2, d=%3"""
    check_pass(cse, text, text)


def test_dce_drops_unused_weights():
    weights = {"w": torch.randn(8), "unused": torch.randn(8, 8), "also_unused": torch.randn(3)}
    text = """
        %x = input() {name="x"} : f32[T, 8]
        %w = weight() {name="w"} : f32[8]
        %0 = mul(%x, %w) : f32[T, 8]
        return y=%0"""
    out = check_pass(dce, text, text, weights=weights)
    assert set(out.weights) == {"w"}
    assert out.weights["w"] is weights["w"]


def test_dce_after_rewrites_drops_dead_nodes_and_their_weights():
    weights = {"w": torch.randn(8), "v": torch.randn(8)}
    g = parse_graph("""
        %x = input() {name="x"} : f32[T, 8]
        %w = weight() {name="w"} : f32[8]
        %v = weight() {name="v"} : f32[8]
        %0 = mul(%x, %w) : f32[T, 8]
        %1 = mul(%x, %v) : f32[T, 8]
        return a=%0, b=%1""", weights, {"T": 4})
    g = g.with_outputs(g.outputs[:1])  # b is dead now; its weight is still listed
    assert set(g.weights) == {"w", "v"}
    assert set(dce(g).weights) == {"w"}
