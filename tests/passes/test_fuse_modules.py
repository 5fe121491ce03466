"""Fusion of graphs as torch.export gives them ([B, T, C] activations, reshapes around matmuls):
after the whole pipeline a norm is its linear's prologue, a residual add its epilogue, and an
output that is a reshape is written by the kernel computing it, with no copy kernel."""
from __future__ import annotations

import torch
from pass_testlib import random_feeds

from braze.ir.interpret import interpret
from braze.ir.parse import parse_graph
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable

W = {"n": torch.randn(8) + 1, "w": torch.randn(4, 8), "b": torch.randn(4)}

NORM_LINEAR_RESIDUAL = """
    %x = input() {name="x"} : f32[2, 3, 8]
    %r = input() {name="r"} : f32[2, 3, 4]
    %n = weight() {name="n"} : f32[8]
    %w = weight() {name="w"} : f32[4, 8]
    %0 = rms_norm(%x, %n) {eps=1e-5} : f32[2, 3, 8]
    %1 = reshape(%0) {shape=[6, 8]} : f32[6, 8]
    %2 = transpose(%w) : f32[8, 4]
    %3 = matmul(%1, %2) : f32[6, 4]
    %4 = reshape(%3) {shape=[2, 3, 4]} : f32[2, 3, 4]
    %5 = add(%4, %r) : f32[2, 3, 4]
    return y=%5"""

LINEAR_BIAS_OUTPUT = """
    %x = input() {name="x"} : f32[2, 3, 8]
    %w = weight() {name="w"} : f32[4, 8]
    %b = weight() {name="b"} : f32[4]
    %0 = reshape(%x) {shape=[6, 8]} : f32[6, 8]
    %1 = transpose(%w) : f32[8, 4]
    %2 = matmul(%0, %1) : f32[6, 4]
    %3 = add(%2, %b) : f32[6, 4]
    %4 = reshape(%3) {shape=[2, 3, 4]} : f32[2, 3, 4]
    return y=%4"""


def _lower_and_check(text: str):
    g = parse_graph(text, W, {})
    program = lower(g)
    feeds = random_feeds(g)
    want = interpret(g, feeds)
    got = Executable(program, backend="reference").run(feeds)
    torch.testing.assert_close(got["y"], want["y"], rtol=1e-5, atol=1e-5)
    return program


def test_norm_and_residual_fuse_around_a_linear_over_rows():
    program = _lower_and_check(NORM_LINEAR_RESIDUAL)
    (k,) = program.kernels
    assert k.kind == "matmul" and k.sources[0] == "mul" and "rsqrt" in k.sources and k.sources[-1] == "add"


def test_an_output_reshape_is_written_by_its_producer():
    program = _lower_and_check(LINEAR_BIAS_OUTPUT)
    (k,) = program.kernels
    assert k.kind == "matmul" and k.output.buffer == dict(program.outputs)["y"]


# scaled_dot_product_attention as the torch.export frontend writes it: q [B, H, T, D] turned into
# token rows for the attention op, the output turned back into [B, H, T, D]
SDPA_HEADS_LAYOUT = """
    %q = input() {name="q"} : f32[1, 4, 5, 8]
    %k = input() {name="k"} : f32[1, 2, 5, 8]
    %v = input() {name="v"} : f32[1, 2, 5, 8]
    %slots = weight() {name="slots"} : i64[5]
    %pos = weight() {name="pos"} : i64[5]
    %0 = transpose(%q) {perm=[0, 2, 1, 3]} : f32[1, 5, 4, 8]
    %1 = reshape(%0) {shape=[5, 32]} : f32[5, 32]
    %2 = attention(%1, %k, %v, %slots, %pos) {head_dim=8, num_heads=4, num_kv_heads=2, scale=0.35} : f32[5, 32]
    %3 = reshape(%2) {shape=[1, 5, 4, 8]} : f32[1, 5, 4, 8]
    %4 = transpose(%3) {perm=[0, 2, 1, 3]} : f32[1, 4, 5, 8]
    return y=%4"""


def test_attention_reads_and_writes_head_major_tensors_through_views():
    W.update(slots=torch.zeros(5, dtype=torch.int64), pos=torch.arange(5))
    program = _lower_and_check(SDPA_HEADS_LAYOUT)
    (k,) = program.kernels  # no transpose copies before or after
    assert k.kind == "attention" and k.output.buffer == dict(program.outputs)["y"]
    assert k.operands[0].shape == (5, 4, 8) and k.operands[0].strides == (8, 40, 1)
    assert k.output.strides == (8, 40, 1)
