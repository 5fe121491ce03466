"""distribute_over_concat: elementwise ops over a concat become one op per part (Before/Expected
text, after simplify, CSE and dead-code elimination)."""
from __future__ import annotations

import pytest
from pass_testlib import check_pass

from braze.passes.cleanup import eliminate_common_subexpressions, eliminate_dead_code
from braze.passes.concat import distribute_over_concat
from braze.passes.simplify import simplify

CASES = {
    # rotate-half RoPE: q * cos + cat(-q2, q1) * sin -> one expression per half, no concat read
    "rope_rotate_half": ("""
        %q = input() {name="q"} : f32[1, 2, 3, 8]
        %c = input() {name="c"} : f32[3, 8]
        %s = input() {name="s"} : f32[3, 8]
        %0 = mul(%q, %c) : f32[1, 2, 3, 8]
        %1 = slice(%q) {axis=3, start=0, stop=4} : f32[1, 2, 3, 4]
        %2 = slice(%q) {axis=3, start=4, stop=8} : f32[1, 2, 3, 4]
        %3 = neg(%2) : f32[1, 2, 3, 4]
        %4 = concat(%3, %1) {axis=3} : f32[1, 2, 3, 8]
        %5 = mul(%4, %s) : f32[1, 2, 3, 8]
        %6 = add(%0, %5) : f32[1, 2, 3, 8]
        return y=%6""", """
        %q = input() {name="q"} : f32[1, 2, 3, 8]
        %0 = slice(%q) {axis=3, start=0, stop=4} : f32[1, 2, 3, 4]
        %c = input() {name="c"} : f32[3, 8]
        %1 = slice(%c) {axis=1, start=0, stop=4} : f32[3, 4]
        %2 = mul(%0, %1) : f32[1, 2, 3, 4]
        %3 = slice(%q) {axis=3, start=4, stop=8} : f32[1, 2, 3, 4]
        %4 = neg(%3) : f32[1, 2, 3, 4]
        %s = input() {name="s"} : f32[3, 8]
        %5 = slice(%s) {axis=1, start=0, stop=4} : f32[3, 4]
        %6 = mul(%4, %5) : f32[1, 2, 3, 4]
        %7 = add(%2, %6) : f32[1, 2, 3, 4]
        %8 = slice(%c) {axis=1, start=4, stop=8} : f32[3, 4]
        %9 = mul(%3, %8) : f32[1, 2, 3, 4]
        %10 = slice(%s) {axis=1, start=4, stop=8} : f32[3, 4]
        %11 = mul(%0, %10) : f32[1, 2, 3, 4]
        %12 = add(%9, %11) : f32[1, 2, 3, 4]
        %13 = concat(%7, %12) {axis=3} : f32[1, 2, 3, 8]
        return y=%13"""),
    # a concat that something other than an elementwise op reads stays as it is
    "concat_read_by_a_matmul_stays": ("""
        %a = input() {name="a"} : f32[T, 2]
        %b = input() {name="b"} : f32[T, 2]
        %w = input() {name="w"} : f32[4, 3]
        %0 = concat(%a, %b) {axis=1} : f32[T, 4]
        %1 = exp(%0) : f32[T, 4]
        %2 = matmul(%0, %w) : f32[T, 3]
        return y=%1, z=%2""", """
        %a = input() {name="a"} : f32[T, 2]
        %b = input() {name="b"} : f32[T, 2]
        %0 = concat(%a, %b) {axis=1} : f32[T, 4]
        %1 = exp(%0) : f32[T, 4]
        %w = input() {name="w"} : f32[4, 3]
        %2 = matmul(%0, %w) : f32[T, 3]
        return y=%1, z=%2"""),
    # a bias added to a matmul's output stays the matmul's epilogue; the slices read the sum
    "bias_of_a_matmul_is_not_sliced": ("""
        %x = input() {name="x"} : f32[4, 8]
        %w = input() {name="w"} : f32[8, 6]
        %b = input() {name="b"} : f32[6]
        %0 = matmul(%x, %w) : f32[4, 6]
        %1 = add(%0, %b) : f32[4, 6]
        %2 = slice(%1) {axis=1, start=0, stop=2} : f32[4, 2]
        %3 = slice(%1) {axis=1, start=2, stop=6} : f32[4, 4]
        return q=%2, k=%3""", """
        %x = input() {name="x"} : f32[4, 8]
        %w = input() {name="w"} : f32[8, 6]
        %0 = matmul(%x, %w) : f32[4, 6]
        %b = input() {name="b"} : f32[6]
        %1 = add(%0, %b) : f32[4, 6]
        %2 = slice(%1) {axis=1, start=0, stop=2} : f32[4, 2]
        %3 = slice(%1) {axis=1, start=2, stop=6} : f32[4, 4]
        return q=%2, k=%3"""),
}


def _distribute_then_cleanup(graph):
    return eliminate_dead_code(eliminate_common_subexpressions(simplify(distribute_over_concat(graph))))


@pytest.mark.parametrize("name", list(CASES))
def test_distribute_over_concat(name):
    before, expected = CASES[name]
    check_pass(_distribute_then_cleanup, before, expected)
