"""plan_memory: liveness-based arena offsets for temps."""
from __future__ import annotations

import pytest
import torch

from braze.ir.kernel import Buffer, Expr, Kernel, Program, View
from braze.ir.parse import parse_graph
from braze.models.config import ModelConfig, expected_weight_shapes
from braze.models.llama import build_llama
from braze.passes.memory import ALIGN, buffer_bytes, plan_memory
from braze.passes.pipeline import lower


def live_ranges(p: Program) -> dict[str, tuple[int, int]]:
    temps = {b.name for b in p.buffers if b.kind == "temp"}
    ranges: dict[str, list[int]] = {}
    for i, k in enumerate(p.kernels):
        for v in (*k.operands, k.output):
            if v.buffer in temps:
                ranges.setdefault(v.buffer, [i, i])[1] = i
    for _, buf in p.outputs:
        if buf in temps:
            ranges[buf][1] = len(p.kernels)  # outputs are read after the last kernel
    return {k: (lo, hi) for k, (lo, hi) in ranges.items()}


def extent(p: Program, name: str) -> tuple[int, int]:
    b = p.buffer(name)
    off = p.plan.offsets[name]
    return off, off + buffer_bytes(b.shape, b.dtype, p.symbols)


def assert_valid_plan(p: Program) -> None:
    temps = [b.name for b in p.buffers if b.kind == "temp"]
    assert set(p.plan.offsets) == set(temps)
    ranges = live_ranges(p)
    for name in temps:
        assert p.plan.offsets[name] % ALIGN == 0
        assert extent(p, name)[1] <= p.plan.arena_bytes
    # at every kernel index, every pair of live temps is disjoint in the arena
    for i in range(len(p.kernels) + 1):
        live = [n for n in temps if ranges[n][0] <= i <= ranges[n][1]]
        for a in live:
            for b in live:
                if a < b:
                    (a0, a1), (b0, b1) = extent(p, a), extent(p, b)
                    assert a1 <= b0 or b1 <= a0, f"{a} and {b} overlap while both live at kernel {i}"


CHAIN = """
    %x = input() {name="x"} : f32[T, 64]
    %0 = exp(%x) : f32[T, 64]
    %1 = sum(%0) : f32[T, 1]
    %2 = div(%0, %1) : f32[T, 64]
    %3 = max(%2) : f32[T, 1]
    %4 = sub(%2, %3) : f32[T, 64]
    %5 = sum(%4) : f32[T, 1]
    %6 = mul(%4, %5) : f32[T, 64]
    %7 = max(%6) : f32[T, 1]
    %8 = sub(%6, %7) : f32[T, 64]
    return y=%8"""


def test_arena_smaller_than_naive_when_temps_die():
    p = lower(parse_graph(CHAIN, {}, {"T": 16}))
    assert len([b for b in p.buffers if b.kind == "temp"]) >= 4
    assert p.plan.arena_bytes < p.plan.naive_bytes
    assert p.plan.naive_bytes == sum(-(-buffer_bytes(b.shape, b.dtype, p.symbols) // ALIGN) * ALIGN
                                     for b in p.buffers if b.kind == "temp")
    assert_valid_plan(p)
    # a chain only ever needs two big temps at once (plus small row results)
    big = 16 * 64 * 4
    assert p.plan.arena_bytes <= 2 * big + 4 * ALIGN


def test_outputs_live_to_the_end():
    text = CHAIN.replace("return y=%8", "return y=%8, first=%0")
    p = lower(parse_graph(text, {}, {"T": 16}))
    first = dict(p.outputs)["first"]
    assert live_ranges(p)[first][1] == len(p.kernels)
    assert_valid_plan(p)  # so nothing later may reuse first's bytes
    a0, a1 = extent(p, first)
    for b in p.buffers:
        if b.kind == "temp" and b.name != first:
            b0, b1 = extent(p, b.name)
            assert a1 <= b0 or b1 <= a0


def test_kernel_reading_and_writing_never_alias():
    """A temp read by kernel i and another written by kernel i are live together at i."""
    def view(name, shape):
        return View(name, shape, (shape[1], 1))
    shape = (8, 16)
    bufs = [Buffer("x", shape, "float32", "input")] + [Buffer(f"t{i}", shape, "float32", "temp") for i in range(4)]
    ks = [Kernel(f"k{i}", "pointwise", (view("x" if i == 0 else f"t{i - 1}", shape),), view(f"t{i}", shape),
                 expr=Expr("exp", (Expr("load", (), 0),))) for i in range(4)]
    p = plan_memory(Program(tuple(ks), tuple(bufs), (("y", "t3"),)))
    assert_valid_plan(p)
    assert p.plan.arena_bytes == 2 * 8 * 16 * 4  # ping-pong between two slots
    for i in range(1, 4):
        assert p.plan.offsets[f"t{i}"] != p.plan.offsets[f"t{i - 1}"]


@pytest.mark.parametrize("layers", [1, 3])
def test_plan_of_a_tiny_llama(layers):
    c = ModelConfig("LlamaForCausalLM", vocab_size=40, hidden_size=24, intermediate_size=20, num_layers=layers,
                    num_heads=4, num_kv_heads=2, head_dim=6)
    weights = {k: torch.randn(s) for k, s in expected_weight_shapes(c).items()}
    p = lower(build_llama(c, weights, max_seqs=2, context=8, max_tokens=8))
    assert_valid_plan(p)
    assert p.plan.arena_bytes < p.plan.naive_bytes
    # state buffers (the caches) are updated in place, never planned into the arena
    assert not any(b.kind == "state" and b.name in p.plan.offsets for b in p.buffers)
