"""flatten_leading_dims: elementwise regions over [B, T, C] run over [B*T, C] (Before/Expected text,
after simplify and CSE, which cancel the reshape pairs the pass leaves)."""
from __future__ import annotations

import pytest
from pass_testlib import check_pass

from braze.passes.cleanup import eliminate_common_subexpressions
from braze.passes.flatten import flatten_leading_dims
from braze.passes.simplify import simplify

CASES = {
    # a norm before a linear and a residual add after it: rows end to end, so fusion sees through
    "norm_linear_residual": ("""
        %x = input() {name="x"} : f32[2, 3, 8]
        %w = input() {name="w"} : f32[8]
        %0 = mul(%x, %x) : f32[2, 3, 8]
        %1 = sum(%0) : f32[2, 3, 1]
        %2 = rsqrt(%1) : f32[2, 3, 1]
        %3 = mul(%x, %2) : f32[2, 3, 8]
        %4 = mul(%3, %w) : f32[2, 3, 8]
        %5 = reshape(%4) {shape=[6, 8]} : f32[6, 8]
        %lw = input() {name="lw"} : f32[8, 4]
        %6 = matmul(%5, %lw) : f32[6, 4]
        %7 = reshape(%6) {shape=[2, 3, 4]} : f32[2, 3, 4]
        %r = input() {name="r"} : f32[2, 3, 4]
        %8 = add(%7, %r) : f32[2, 3, 4]
        return y=%8""", """
        %x = input() {name="x"} : f32[2, 3, 8]
        %0 = reshape(%x) {shape=[6, 8]} : f32[6, 8]
        %1 = mul(%0, %0) : f32[6, 8]
        %2 = sum(%1) : f32[6, 1]
        %3 = rsqrt(%2) : f32[6, 1]
        %4 = mul(%0, %3) : f32[6, 8]
        %w = input() {name="w"} : f32[8]
        %5 = mul(%4, %w) : f32[6, 8]
        %lw = input() {name="lw"} : f32[8, 4]
        %6 = matmul(%5, %lw) : f32[6, 4]
        %r = input() {name="r"} : f32[2, 3, 4]
        %7 = reshape(%r) {shape=[6, 4]} : f32[6, 4]
        %8 = add(%6, %7) : f32[6, 4]
        %9 = reshape(%8) {shape=[2, 3, 4]} : f32[2, 3, 4]
        return y=%9"""),
    # a permuted view does not merge its leading dims, and a [T, D] table broadcast over heads keeps
    # its whole region (add, exp, mul) 4-d: a reshape inside it would split the fused kernel
    "permuted_and_partly_broadcast_stay": ("""
        %q = input() {name="q"} : f32[1, 3, 2, 4]
        %c = input() {name="c"} : f32[3, 4]
        %r = input() {name="r"} : f32[1, 2, 3, 4]
        %0 = transpose(%q) {perm=[0, 2, 1, 3]} : f32[1, 2, 3, 4]
        %1 = neg(%0) : f32[1, 2, 3, 4]
        %2 = add(%r, %r) : f32[1, 2, 3, 4]
        %3 = exp(%2) : f32[1, 2, 3, 4]
        %4 = mul(%3, %c) : f32[1, 2, 3, 4]
        return y=%1, z=%4""", """
        %q = input() {name="q"} : f32[1, 3, 2, 4]
        %0 = transpose(%q) {perm=[0, 2, 1, 3]} : f32[1, 2, 3, 4]
        %1 = neg(%0) : f32[1, 2, 3, 4]
        %r = input() {name="r"} : f32[1, 2, 3, 4]
        %2 = add(%r, %r) : f32[1, 2, 3, 4]
        %3 = exp(%2) : f32[1, 2, 3, 4]
        %c = input() {name="c"} : f32[3, 4]
        %4 = mul(%3, %c) : f32[1, 2, 3, 4]
        return y=%1, z=%4"""),
}


def _flatten_then_cleanup(graph):
    return eliminate_common_subexpressions(simplify(flatten_leading_dims(graph)))


@pytest.mark.parametrize("name", list(CASES))
def test_flatten_leading_dims(name):
    before, expected = CASES[name]
    check_pass(_flatten_then_cleanup, before, expected)
