"""Prefill matmuls (M > 64, float16/bfloat16) go through torch.mm with braze's prologue/epilogue
kernels around it; the result must equal the interpreter as the fused GEMM's does."""
from __future__ import annotations

import pytest
import torch

import braze.codegen.triton.matmul as mm
from braze.ir.builder import GraphBuilder
from braze.ir.interpret import interpret
from braze.passes.pipeline import lower

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _graph(K: int, N: int, rms: bool, residual: bool, bias: bool = False):
    b = GraphBuilder(symbols={"T": 128}, name="prefill")
    x = b.input("x", ("T", K), "float16")
    h = b.rms_norm(x, b.weight("norm", (1 + 0.1 * torch.randn(K)).half()), 1e-5) if rms else x
    y = b.matmul(h, b.transpose(b.weight("w", (torch.randn(N, K) * K ** -0.5).half())))
    if residual:
        y = b.add(y, b.input("r", ("T", N), "float16"))
    if bias:
        y = b.add(y, b.weight("bias", torch.randn(N).half()))
    return b.build({"y": y})


@pytest.mark.parametrize("rms,residual", [(True, True), (False, False), (True, False), (False, True)])
def test_library_prefill_matches_interpreter(rms, residual, run_program_triton):
    torch.manual_seed(0)
    graph = _graph(72, 120, rms, residual)
    program = lower(graph)
    source = __import__("braze.codegen.triton", fromlist=["emit_module"]).emit_module(program)
    assert ("torch.addmm(" if residual else "torch.mm(") in source
    assert "_epilogue" not in source  # a residual is cuBLAS's beta * C, not a kernel of its own
    assert ("KERNEL_prologue" in source or "prologue" in source) or not rms
    feeds = {"x": torch.randn(97, 72).half(), "r": torch.randn(97, 120).half()}
    feeds = {k: v for k, v in feeds.items() if k != "r" or residual}
    got = run_program_triton(program, feeds)["y"].float()
    want = interpret(graph, feeds)["y"].float()
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)


def test_library_adds_a_bias_row_in_cublas(run_program_triton):
    torch.manual_seed(0)
    graph = _graph(72, 120, False, False, bias=True)
    program = lower(graph)
    source = __import__("braze.codegen.triton", fromlist=["emit_module"]).emit_module(program)
    assert "torch.addmm(" in source and "_epilogue" not in source
    feeds = {"x": torch.randn(97, 72).half()}
    got = run_program_triton(program, feeds)["y"].float()
    torch.testing.assert_close(got, interpret(graph, feeds)["y"].float(), rtol=2e-2, atol=2e-2)


def test_library_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(mm, "USE_LIBRARY_GEMM", False)
    from braze.codegen.triton import emit_module
    assert "torch.mm(" not in emit_module(lower(_graph(72, 120, True, True)))


def test_library_matmuls_read_and_write_arena_temps_at_their_offsets(run_program_triton):
    # a chain of linears: each A is the previous product, a temp that lives at its own offset in
    # the executable's arena (not at the arena's start)
    torch.manual_seed(0)
    b = GraphBuilder(symbols={"T": 128}, name="chain")
    x = b.input("x", ("T", 64), "float16")
    h = x
    for i in range(3):
        h = b.matmul(h, b.transpose(b.weight(f"w{i}", (torch.randn(64, 64) / 8).half())))
    graph = b.build({"y": b.add(h, b.input("r", ("T", 64), "float16"))})
    program = lower(graph)
    assert len([o for o in program.plan.offsets.values() if o]) >= 1
    feeds = {"x": torch.randn(100, 64).half(), "r": torch.randn(100, 64).half()}
    got = run_program_triton(program, feeds)["y"].float()
    want = interpret(graph, feeds)["y"].float()
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)


def test_library_prologue_without_reductions_splits_k_over_programs(run_program_triton):
    # SiLU*mul into the down projection: each prologue program converts one [rows, 512] tile of A
    # (K = 1100: two full tiles and a masked one)
    torch.manual_seed(0)
    b = GraphBuilder(symbols={"T": 128}, name="down")
    gate, up = b.input("g", ("T", 1100), "float16"), b.input("u", ("T", 1100), "float16")
    y = b.matmul(b.mul(b.silu(gate), up), b.transpose(b.weight("w", (torch.randn(64, 1100) * 0.03).half())))
    graph = b.build({"y": y})
    program = lower(graph)
    source = __import__("braze.codegen.triton", fromlist=["emit_module"]).emit_module(program)
    assert "triton.cdiv(K, 512))" in source
    feeds = {"g": torch.randn(97, 1100).half(), "u": torch.randn(97, 1100).half()}
    got = run_program_triton(program, feeds)["y"].float()
    torch.testing.assert_close(got, interpret(graph, feeds)["y"].float(), rtol=2e-2, atol=2e-2)
