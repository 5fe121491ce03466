"""simplify: local algebraic rewrites, as Before/Expected text."""
from __future__ import annotations

import pytest
import torch
from pass_testlib import check_pass

from braze.ir.parse import parse_graph
from braze.passes.simplify import simplify

X = '%x = input() {name="x"} : f32[T, 8]\n'

CASES = {
    "mul_by_one": (X + """
        %0 = constant() {value=1.0} : f32[]
        %1 = mul(%x, %0) : f32[T, 8]
        %2 = mul(%0, %1) : f32[T, 8]
        %3 = exp(%2) : f32[T, 8]
        return y=%3""", X + """
        %0 = exp(%x) : f32[T, 8]
        return y=%0"""),
    "add_zero_sub_zero_div_one": (X + """
        %0 = constant() {value=0.0} : f32[]
        %1 = add(%x, %0) : f32[T, 8]
        %2 = add(%0, %1) : f32[T, 8]
        %3 = sub(%2, %0) : f32[T, 8]
        %4 = constant() {value=1.0} : f32[]
        %5 = div(%3, %4) : f32[T, 8]
        %6 = relu(%5) : f32[T, 8]
        return y=%6""", X + """
        %0 = relu(%x) : f32[T, 8]
        return y=%0"""),
    "neg_neg": (X + """
        %0 = neg(%x) : f32[T, 8]
        %1 = neg(%0) : f32[T, 8]
        %2 = neg(%1) : f32[T, 8]
        %3 = neg(%2) : f32[T, 8]
        %4 = neg(%3) : f32[T, 8]
        return a=%1, b=%4""", X + """
        %0 = neg(%x) : f32[T, 8]
        return a=%x, b=%0"""),
    "reshape_of_reshape": (X + """
        %0 = reshape(%x) {shape=["T", 2, 4]} : f32[T, 2, 4]
        %1 = reshape(%0) {shape=["T", 2, 2, 2]} : f32[T, 2, 2, 2]
        %2 = reshape(%1) {shape=["T", 8]} : f32[T, 8]
        %3 = exp(%x) : f32[T, 8]
        %4 = reshape(%3) {shape=["T", 4, 2]} : f32[T, 4, 2]
        %5 = reshape(%4) {shape=["T", 2, 4]} : f32[T, 2, 4]
        return a=%2, b=%5""", X + """
        %0 = exp(%x) : f32[T, 8]
        %1 = reshape(%0) {shape=["T", 2, 4]} : f32[T, 2, 4]
        return a=%x, b=%1"""),
    "div_by_constant": (X + """
        %0 = constant() {value=4.0} : f32[]
        %1 = div(%x, %0) : f32[T, 8]
        return y=%1""", X + """
        %0 = constant() {value=0.25} : f32[]
        %1 = mul(%x, %0) : f32[T, 8]
        return y=%1"""),
    "div_by_zero_is_kept": (X + """
        %0 = constant() {value=0.0} : f32[]
        %1 = div(%x, %0) : f32[T, 8]
        return y=%1""", X + """
        %0 = constant() {value=0.0} : f32[]
        %1 = div(%x, %0) : f32[T, 8]
        return y=%1"""),
    "transpose_of_transpose": ("""
        %x = input() {name="x"} : f32[T, 4, 8]
        %0 = transpose(%x) : f32[T, 8, 4]
        %1 = transpose(%0) : f32[T, 4, 8]
        %2 = exp(%1) : f32[T, 4, 8]
        return y=%2""", """
        %x = input() {name="x"} : f32[T, 4, 8]
        %0 = exp(%x) : f32[T, 4, 8]
        return y=%0"""),
    "transposes_with_perm_are_kept": ("""
        %x = input() {name="x"} : f32[T, 4, 8]
        %0 = transpose(%x) {perm=[1, 0, 2]} : f32[4, T, 8]
        %1 = transpose(%0) {perm=[1, 0, 2]} : f32[T, 4, 8]
        return y=%1""", """
        %x = input() {name="x"} : f32[T, 4, 8]
        %0 = transpose(%x) {perm=[1, 0, 2]} : f32[4, T, 8]
        %1 = transpose(%0) {perm=[1, 0, 2]} : f32[T, 4, 8]
        return y=%1"""),
    "full_slice_and_same_dtype_cast": (X + """
        %0 = slice(%x) {axis=1, start=0, stop=8} : f32[T, 8]
        %1 = cast(%0) {dtype="float32"} : f32[T, 8]
        %2 = slice(%1) {axis=1, start=0, stop=4} : f32[T, 4]
        return y=%2""", X + """
        %0 = slice(%x) {axis=1, start=0, stop=4} : f32[T, 4]
        return y=%0"""),
    "mul_by_one_feeding_a_broadcast": ("""
        %x = input() {name="x"} : f32[T, 1]
        %ones = weight() {name="ones"} : f32[8]
        %0 = constant() {value=1.0} : f32[]
        %1 = mul(%x, %0) : f32[T, 1]
        %2 = add(%1, %ones) : f32[T, 8]
        return y=%2""", """
        %x = input() {name="x"} : f32[T, 1]
        %ones = weight() {name="ones"} : f32[8]
        %0 = add(%x, %ones) : f32[T, 8]
        return y=%0"""),
    "concat_of_adjacent_slices": (X + """
        %0 = slice(%x) {axis=-1, start=0, stop=2} : f32[T, 2]
        %1 = slice(%x) {axis=-1, start=2, stop=5} : f32[T, 3]
        %2 = slice(%x) {axis=1, start=5, stop=8} : f32[T, 3]
        %3 = concat(%0, %1, %2) {axis=1} : f32[T, 8]
        %4 = concat(%1, %2) {axis=1} : f32[T, 6]
        return a=%3, b=%4""", X + """
        %0 = slice(%x) {axis=1, start=2, stop=8} : f32[T, 6]
        return a=%x, b=%0"""),
    "concat_of_gapped_or_reordered_slices_is_kept": (X + """
        %0 = slice(%x) {axis=1, start=0, stop=2} : f32[T, 2]
        %1 = slice(%x) {axis=1, start=3, stop=5} : f32[T, 2]
        %2 = concat(%0, %1) {axis=1} : f32[T, 4]
        %3 = concat(%1, %0) {axis=1} : f32[T, 4]
        return a=%2, b=%3""", X + """
        %0 = slice(%x) {axis=1, start=0, stop=2} : f32[T, 2]
        %1 = slice(%x) {axis=1, start=3, stop=5} : f32[T, 2]
        %2 = concat(%0, %1) {axis=1} : f32[T, 4]
        %3 = concat(%1, %0) {axis=1} : f32[T, 4]
        return a=%2, b=%3"""),
    "pow_by_constants": (X + """
        %0 = constant() {value=2.0} : f32[]
        %1 = pow(%x, %0) : f32[T, 8]
        %2 = relu(%x) : f32[T, 8]
        %3 = constant() {value=0.5} : f32[]
        %4 = pow(%2, %3) : f32[T, 8]
        %5 = constant() {value=-1.0} : f32[]
        %6 = pow(%1, %5) : f32[T, 8]
        %7 = constant() {value=3.0} : f32[]
        %8 = pow(%x, %7) : f32[T, 8]
        return a=%1, b=%4, c=%6, d=%8""", X + """
        %0 = mul(%x, %x) : f32[T, 8]
        %1 = relu(%x) : f32[T, 8]
        %2 = sqrt(%1) : f32[T, 8]
        %3 = reciprocal(%0) : f32[T, 8]
        %4 = constant() {value=3.0} : f32[]
        %5 = pow(%x, %4) : f32[T, 8]
        return a=%0, b=%2, c=%3, d=%5"""),
}


@pytest.mark.parametrize("case", CASES)
def test_simplify(case):
    before, expected = CASES[case]
    check_pass(simplify, before, expected, weights={"ones": torch.ones(8)})


def test_simplify_reaches_a_fixpoint_and_is_idempotent():
    before, _ = CASES["add_zero_sub_zero_div_one"]
    once = simplify(parse_graph(before))
    assert str(simplify(once)) == str(once)
