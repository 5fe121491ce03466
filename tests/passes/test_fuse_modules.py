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
