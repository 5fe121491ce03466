"""choose_layouts: matmul -> linear [out, in]; linears sharing an input -> one wide linear + slices."""
from __future__ import annotations

import torch
from pass_testlib import check_pass

from braze.passes.fold import fold_constants
from braze.passes.layout import choose_layouts

torch.manual_seed(0)
W = {n: torch.randn(*s) for n, s in [
    ("w", (6, 8)), ("m", (8, 6)), ("q.weight", (8, 8)), ("k.weight", (4, 8)), ("v.weight", (4, 8)),
    ("q.bias", (8,)), ("k.bias", (4,)), ("v.bias", (4,))]}


def test_matmul_of_transposed_weight_becomes_linear():
    check_pass(choose_layouts, """
        %x = input() {name="x"} : f32[T, 8]
        %w = weight() {name="w"} : f32[6, 8]
        %0 = transpose(%w) : f32[8, 6]
        %1 = matmul(%x, %0) : f32[T, 6]
        return y=%1""", """
        %x = input() {name="x"} : f32[T, 8]
        %w = weight() {name="w"} : f32[6, 8]
        %0 = linear(%x, %w) : f32[T, 6]
        return y=%0""", weights=W)


def test_plain_matmul_becomes_linear_of_a_transpose():
    check_pass(choose_layouts, """
        %x = input() {name="x"} : f32[T, 8]
        %m = weight() {name="m"} : f32[8, 6]
        %0 = matmul(%x, %m) : f32[T, 6]
        return y=%0""", """
        %x = input() {name="x"} : f32[T, 8]
        %m = weight() {name="m"} : f32[8, 6]
        %0 = transpose(%m) : f32[6, 8]
        %1 = linear(%x, %0) : f32[T, 6]
        return y=%1""", weights=W)


QKV = """
        %x = input() {name="x"} : f32[T, 8]
        %q.weight = weight() {name="q.weight"} : f32[8, 8]
        %0 = linear(%x, %q.weight) : f32[T, 8]
        %k.weight = weight() {name="k.weight"} : f32[4, 8]
        %1 = linear(%x, %k.weight) : f32[T, 4]
        %v.weight = weight() {name="v.weight"} : f32[4, 8]
        %2 = linear(%x, %v.weight) : f32[T, 4]
        %3 = exp(%0) : f32[T, 8]
        return q=%3, k=%1, v=%2"""

QKV_EXPECTED = """
        %x = input() {name="x"} : f32[T, 8]
        %q.weight = weight() {name="q.weight"} : f32[8, 8]
        %k.weight = weight() {name="k.weight"} : f32[4, 8]
        %v.weight = weight() {name="v.weight"} : f32[4, 8]
        %0 = concat(%q.weight, %k.weight, %v.weight) {axis=0} : f32[16, 8]
        %1 = linear(%x, %0) : f32[T, 16]
        %2 = slice(%1) {axis=-1, start=0, stop=8} : f32[T, 8]
        %3 = exp(%2) : f32[T, 8]
        %4 = slice(%1) {axis=-1, start=8, stop=12} : f32[T, 4]
        %5 = slice(%1) {axis=-1, start=12, stop=16} : f32[T, 4]
        return q=%3, k=%4, v=%5"""


def test_three_linears_sharing_x_become_one():
    check_pass(choose_layouts, QKV, QKV_EXPECTED, weights=W)


def test_three_matmuls_sharing_x_after_fold():
    """The whole point: after fold_constants the concat is one re-packed weight."""
    before = """
        %x = input() {name="x"} : f32[T, 8]
        %q.weight = weight() {name="q.weight"} : f32[8, 8]
        %0 = transpose(%q.weight) : f32[8, 8]
        %1 = matmul(%x, %0) : f32[T, 8]
        %k.weight = weight() {name="k.weight"} : f32[4, 8]
        %2 = transpose(%k.weight) : f32[8, 4]
        %3 = matmul(%x, %2) : f32[T, 4]
        %v.weight = weight() {name="v.weight"} : f32[4, 8]
        %4 = transpose(%v.weight) : f32[8, 4]
        %5 = matmul(%x, %4) : f32[T, 4]
        return q=%1, k=%3, v=%5"""
    out = check_pass(lambda g: fold_constants(choose_layouts(g)), before, """
        %x = input() {name="x"} : f32[T, 8]
        %q|k|v.weight = weight() {name="q|k|v.weight"} : f32[16, 8]
        %0 = linear(%x, %q|k|v.weight) : f32[T, 16]
        %1 = slice(%0) {axis=-1, start=0, stop=8} : f32[T, 8]
        %2 = slice(%0) {axis=-1, start=8, stop=12} : f32[T, 4]
        %3 = slice(%0) {axis=-1, start=12, stop=16} : f32[T, 4]
        return q=%1, k=%2, v=%3""", weights=W)
    assert set(out.weights) == {"q|k|v.weight"}


def test_qkv_with_bias_adds():
    check_pass(choose_layouts, """
        %x = input() {name="x"} : f32[T, 8]
        %q.weight = weight() {name="q.weight"} : f32[8, 8]
        %0 = linear(%x, %q.weight) : f32[T, 8]
        %q.bias = weight() {name="q.bias"} : f32[8]
        %1 = add(%0, %q.bias) : f32[T, 8]
        %k.weight = weight() {name="k.weight"} : f32[4, 8]
        %2 = linear(%x, %k.weight) : f32[T, 4]
        %k.bias = weight() {name="k.bias"} : f32[4]
        %3 = add(%k.bias, %2) : f32[T, 4]
        %v.weight = weight() {name="v.weight"} : f32[4, 8]
        %4 = linear(%x, %v.weight) : f32[T, 4]
        %v.bias = weight() {name="v.bias"} : f32[4]
        %5 = add(%4, %v.bias) : f32[T, 4]
        return q=%1, k=%3, v=%5""", """
        %x = input() {name="x"} : f32[T, 8]
        %q.weight = weight() {name="q.weight"} : f32[8, 8]
        %k.weight = weight() {name="k.weight"} : f32[4, 8]
        %v.weight = weight() {name="v.weight"} : f32[4, 8]
        %0 = concat(%q.weight, %k.weight, %v.weight) {axis=0} : f32[16, 8]
        %1 = linear(%x, %0) : f32[T, 16]
        %q.bias = weight() {name="q.bias"} : f32[8]
        %k.bias = weight() {name="k.bias"} : f32[4]
        %v.bias = weight() {name="v.bias"} : f32[4]
        %2 = concat(%q.bias, %k.bias, %v.bias) {axis=0} : f32[16]
        %3 = add(%1, %2) : f32[T, 16]
        %4 = slice(%3) {axis=-1, start=0, stop=8} : f32[T, 8]
        %5 = slice(%3) {axis=-1, start=8, stop=12} : f32[T, 4]
        %6 = slice(%3) {axis=-1, start=12, stop=16} : f32[T, 4]
        return q=%4, k=%5, v=%6""", weights=W)


def test_bias_on_only_some_linears_stays_a_separate_add():
    check_pass(choose_layouts, """
        %x = input() {name="x"} : f32[T, 8]
        %k.weight = weight() {name="k.weight"} : f32[4, 8]
        %0 = linear(%x, %k.weight) : f32[T, 4]
        %k.bias = weight() {name="k.bias"} : f32[4]
        %1 = add(%0, %k.bias) : f32[T, 4]
        %v.weight = weight() {name="v.weight"} : f32[4, 8]
        %2 = linear(%x, %v.weight) : f32[T, 4]
        return k=%1, v=%2""", """
        %x = input() {name="x"} : f32[T, 8]
        %k.weight = weight() {name="k.weight"} : f32[4, 8]
        %v.weight = weight() {name="v.weight"} : f32[4, 8]
        %0 = concat(%k.weight, %v.weight) {axis=0} : f32[8, 8]
        %1 = linear(%x, %0) : f32[T, 8]
        %2 = slice(%1) {axis=-1, start=0, stop=4} : f32[T, 4]
        %k.bias = weight() {name="k.bias"} : f32[4]
        %3 = add(%2, %k.bias) : f32[T, 4]
        %4 = slice(%1) {axis=-1, start=4, stop=8} : f32[T, 4]
        return k=%3, v=%4""", weights=W)


def test_linears_of_different_inputs_or_runtime_weights_are_kept_apart():
    text = """
        %x = input() {name="x"} : f32[T, 8]
        %k.weight = weight() {name="k.weight"} : f32[4, 8]
        %0 = linear(%x, %k.weight) : f32[T, 4]
        %y = input() {name="y"} : f32[T, 8]
        %v.weight = weight() {name="v.weight"} : f32[4, 8]
        %1 = linear(%y, %v.weight) : f32[T, 4]
        %r = input() {name="r"} : f32[4, 8]
        %2 = linear(%x, %r) : f32[T, 4]
        return a=%0, b=%1, c=%2"""
    check_pass(choose_layouts, text, text, weights=W)

