"""decompose: rms_norm, softmax and mean become pointwise ops and last-axis reductions."""
from __future__ import annotations

import pytest
import torch
from pass_testlib import check_pass

from braze.passes.decompose import decompose

W = {"w": torch.randn(8) + 1, "wb": (torch.randn(8) + 1).bfloat16()}


def test_rms_norm():
    check_pass(decompose, """
        %x = input() {name="x"} : f32[T, 8]
        %w = weight() {name="w"} : f32[8]
        %0 = rms_norm(%x, %w) {eps=1e-05} : f32[T, 8]
        return y=%0""", """
        %x = input() {name="x"} : f32[T, 8]
        %0 = mul(%x, %x) : f32[T, 8]
        %1 = sum(%0) : f32[T, 1]
        %2 = constant() {value=0.125} : f32[]
        %3 = mul(%1, %2) : f32[T, 1]
        %4 = constant() {value=1e-05} : f32[]
        %5 = add(%3, %4) : f32[T, 1]
        %6 = rsqrt(%5) : f32[T, 1]
        %7 = mul(%x, %6) : f32[T, 8]
        %w = weight() {name="w"} : f32[8]
        %8 = mul(%7, %w) : f32[T, 8]
        return y=%8""", weights=W)


def test_rms_norm_bf16_computes_in_f32_and_rounds_before_the_weight():
    check_pass(decompose, """
        %x = input() {name="x"} : bf16[T, 8]
        %wb = weight() {name="wb"} : bf16[8]
        %0 = rms_norm(%x, %wb) {eps=1e-06} : bf16[T, 8]
        return y=%0""", """
        %x = input() {name="x"} : bf16[T, 8]
        %0 = cast(%x) {dtype="float32"} : f32[T, 8]
        %1 = mul(%0, %0) : f32[T, 8]
        %2 = sum(%1) : f32[T, 1]
        %3 = constant() {value=0.125} : f32[]
        %4 = mul(%2, %3) : f32[T, 1]
        %5 = constant() {value=1e-06} : f32[]
        %6 = add(%4, %5) : f32[T, 1]
        %7 = rsqrt(%6) : f32[T, 1]
        %8 = mul(%0, %7) : f32[T, 8]
        %9 = cast(%8) {dtype="bfloat16"} : bf16[T, 8]
        %wb = weight() {name="wb"} : bf16[8]
        %10 = mul(%9, %wb) : bf16[T, 8]
        return y=%10""", weights=W, rtol=0, atol=0)


def test_softmax():
    check_pass(decompose, """
        %x = input() {name="x"} : f32[T, 8]
        %0 = softmax(%x) : f32[T, 8]
        return y=%0""", """
        %x = input() {name="x"} : f32[T, 8]
        %0 = max(%x) : f32[T, 1]
        %1 = sub(%x, %0) : f32[T, 8]
        %2 = exp(%1) : f32[T, 8]
        %3 = sum(%2) : f32[T, 1]
        %4 = div(%2, %3) : f32[T, 8]
        return y=%4""")


@pytest.mark.parametrize("shape, n, inv", [("T, 8", 8, "0.125"), ("T, 3, 5", 5, "0.2")])
def test_mean(shape, n, inv):
    out_shape = shape.rsplit(",", 1)[0] + ", 1"
    check_pass(decompose, f"""
        %x = input() {{name="x"}} : f32[{shape}]
        %0 = mean(%x) : f32[{out_shape}]
        return y=%0""", f"""
        %x = input() {{name="x"}} : f32[{shape}]
        %0 = sum(%x) : f32[{out_shape}]
        %1 = constant() {{value={inv}}} : f32[]
        %2 = mul(%0, %1) : f32[{out_shape}]
        return y=%2""")


def test_other_ops_untouched():
    text = """
        %x = input() {name="x"} : f32[T, 8]
        %0 = sum(%x) : f32[T, 1]
        %1 = silu(%x) : f32[T, 8]
        return a=%0, b=%1"""
    check_pass(decompose, text, text)
