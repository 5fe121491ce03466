"""group_independent_kernels: consecutive pointwise kernels that touch disjoint memory share one
launch group; a kernel reading or overwriting another's memory starts a new one; the memory plan
treats a group as one step."""
from __future__ import annotations

import torch
from pass_testlib import random_feeds

from braze.ir.interpret import interpret
from braze.ir.parse import parse_graph
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable

ROPE = """
    %q = input() {name="q"} : f32[1, 3, 5, 8]
    %k = input() {name="k"} : f32[1, 1, 5, 8]
    %c = input() {name="c"} : f32[5, 8]
    %s = input() {name="s"} : f32[5, 8]
    %0 = mul(%q, %c) : f32[1, 3, 5, 8]
    %1 = slice(%q) {axis=3, start=0, stop=4} : f32[1, 3, 5, 4]
    %2 = slice(%q) {axis=3, start=4, stop=8} : f32[1, 3, 5, 4]
    %3 = neg(%2) : f32[1, 3, 5, 4]
    %4 = concat(%3, %1) {axis=3} : f32[1, 3, 5, 8]
    %5 = mul(%4, %s) : f32[1, 3, 5, 8]
    %6 = add(%0, %5) : f32[1, 3, 5, 8]
    %7 = mul(%k, %c) : f32[1, 1, 5, 8]
    %8 = slice(%k) {axis=3, start=0, stop=4} : f32[1, 1, 5, 4]
    %9 = slice(%k) {axis=3, start=4, stop=8} : f32[1, 1, 5, 4]
    %10 = neg(%9) : f32[1, 1, 5, 4]
    %11 = concat(%10, %8) {axis=3} : f32[1, 1, 5, 8]
    %12 = mul(%11, %s) : f32[1, 1, 5, 8]
    %13 = add(%7, %12) : f32[1, 1, 5, 8]
    return q_rot=%6, k_rot=%13"""

# y reads x's buffer after x is written: two steps
CHAIN = """
    %a = input() {name="a"} : f32[4, 8]
    %b = input() {name="b"} : f32[4, 8]
    %0 = exp(%a) : f32[4, 8]
    %1 = add(%0, %b) : f32[4, 8]
    %2 = mul(%1, %0) : f32[4, 8]
    return x=%1, y=%2"""


def _check(text: str, backends=("reference", "cpp")):
    g = parse_graph(text)
    program = lower(g)
    feeds = random_feeds(g)
    want = interpret(g, feeds)
    for backend in backends:
        device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
        got = Executable(program, backend=backend, device=device).run({n: t.to(device) for n, t in feeds.items()})
        got = {n: t.cpu() for n, t in got.items()}
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-5)
    return program


def test_rope_halves_of_q_and_k_are_one_launch_group():
    program = _check(ROPE)
    assert [k.kind for k in program.kernels] == ["pointwise"] * 4
    assert {k.attr("launch_group") for k in program.kernels} == {0}


def test_a_kernel_reading_another_ones_output_is_not_grouped_with_it():
    program = _check(CHAIN)
    assert len(program.kernels) == 3 and all(k.attr("launch_group") is None for k in program.kernels)


def test_a_launch_group_runs_as_one_triton_grid():  # (tests/conftest.py: the interpreter without a GPU)
    from braze.codegen.triton.module import emit_module
    program = _check(ROPE, backends=("triton",))
    source = emit_module(program)
    assert source.count("def launch_") == 1 and "_part3(" in source


def test_temps_of_one_group_never_share_bytes():
    program = lower(parse_graph(ROPE))
    plan, sizes = program.plan, {b.name: b for b in program.buffers if b.kind == "temp"}
    spans = [(plan.offsets[n], plan.offsets[n] + 4 * torch.Size(b.shape).numel()) for n, b in sizes.items()]
    for i, (lo, hi) in enumerate(spans):
        for lo2, hi2 in spans[i + 1:]:
            assert hi <= lo2 or hi2 <= lo
