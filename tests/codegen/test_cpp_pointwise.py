"""Pointwise kernels: broadcasting views, every expression op, runtime symbols, low-precision dtypes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from braze.codegen.cpp import compile_program, emit_program
from braze.ir.kernel import Buffer, Kernel, View
from cpp_testlib import alloc, cast, const, cview, load, op, program, run

C = 37


def _all_ops_program():
    # out[T, C] = f(x[T, C], row[C] broadcast over T, col[T] broadcast over C)
    bufs = [Buffer("x", ("T", C), "float32", "input"), Buffer("row", (C,), "float32", "weight"),
            Buffer("col", ("T",), "float32", "input"), Buffer("out", ("T", C), "float32", "temp"),
            Buffer("out2", ("T", C), "float32", "temp")]
    x, r, c = load(0), load(1), load(2)
    a = op("add", op("gelu", x), op("mul", op("silu", r), op("sigmoid", c)))
    b = op("sub", op("tanh", a), op("div", op("exp", op("neg", op("abs", x))), op("add", op("square", c), const(1.5))))
    d = op("add", op("mul", op("rsqrt", op("add", op("square", x), const(0.25))), op("sqrt", op("abs", r))),
           op("log", op("add", op("abs", c), const(1.0))))
    e = op("add", op("maximum", op("cos", x), op("sin", r)), op("minimum", op("relu", x), op("reciprocal", op("add", op("abs", r), const(2.0)))))
    f = op("pow", op("add", op("abs", x), const(0.5)), const(1.7))
    expr = op("add", op("add", op("add", b, d), op("add", e, f)), cast(op("mul", x, const(3.0)), "bfloat16"))
    views = (cview("x", ("T", C)), View("row", ("T", C), (0, 1)), View("col", ("T", C), (1, 0)))
    k1 = Kernel("all_ops", "pointwise", views, cview("out", ("T", C)), expr=expr, sources=("gelu", "silu", "add"))
    return bufs, k1


def reference_all_ops(x, r, c):
    c = c[:, None]
    a = F.gelu(x) + F.silu(r) * torch.sigmoid(c)
    b = torch.tanh(a) - torch.exp(-x.abs()) / (c * c + 1.5)
    d = torch.rsqrt(x * x + 0.25) * torch.sqrt(r.abs()) + torch.log(c.abs() + 1.0)
    e = torch.maximum(torch.cos(x), torch.sin(r)) + torch.minimum(torch.relu(x), 1.0 / (r.abs() + 2.0))
    f = torch.pow(x.abs() + 0.5, 1.7)
    return (b + d) + (e + f) + (x * 3.0).to(torch.bfloat16).float()


@pytest.fixture(scope="module")
def all_ops():
    bufs, k1 = _all_ops_program()
    return compile_program(program([k1], bufs, symbols={"T": 64}))


@pytest.mark.parametrize("T", [1, 13])
def test_all_ops_broadcast_runtime_symbol(all_ops, T):
    sym = {"T": T}
    ts = alloc(all_ops.program, sym)
    run(all_ops, ts, sym)
    ref = reference_all_ops(ts["x"], ts["row"], ts["col"])
    torch.testing.assert_close(ts["out"], ref, rtol=1e-5, atol=1e-5)


def test_source_is_readable(all_ops):
    src = all_ops.source
    assert 'extern "C" void braze_run(void** buffers, const int64_t* symbols)' in src
    assert "const int64_t T = symbols[0];" in src
    assert "static void k0_all_ops(" in src and "fuses: gelu, silu, add" in src
    assert "#pragma omp simd" in src and "#pragma omp parallel for" in src
    # stride-0 broadcast: the row operand is indexed by the column only, the col operand by the row only
    assert "p2[i1]" in src and "p3[i0]" in src
    # common subexpressions are emitted once: |x| appears in several places but is computed once
    assert src.count("fabsf(v") == 3  # |x|, |r|, |c|


def test_rank3_transposed_and_sliced_views():
    # out[a, b, c] = x[a, c, b] (a transposed view) + y[b, c] (broadcast over a) ; x is read from an offset slice
    A, B, Cc = 3, 5, 7
    bufs = [Buffer("x", (1 + A * B * Cc,), "float32", "input"), Buffer("y", (B, Cc), "float32", "input"),
            Buffer("out", (A, B, Cc), "float32", "temp")]
    xv = View("x", (A, B, Cc), (B * Cc, 1, B), offset=1)  # x storage is [A, C, B]
    yv = View("y", (A, B, Cc), (0, Cc, 1))
    k = Kernel("t3", "pointwise", (xv, yv), cview("out", (A, B, Cc)), expr=op("add", load(0), load(1)))
    cp = compile_program(program([k], bufs))
    ts = alloc(cp.program, {})
    run(cp, ts)
    x = ts["x"][1:].view(A, Cc, B).transpose(1, 2)
    torch.testing.assert_close(ts["out"], x + ts["y"], rtol=0, atol=0)


@pytest.mark.parametrize("dt,tol", [("bfloat16", 1e-2), ("float16", 1e-3)])
def test_low_precision_pointwise(dt, tol):
    tdt = getattr(torch, dt)
    bufs = [Buffer("x", ("T", C), dt, "input"), Buffer("w", (C,), dt, "weight"), Buffer("out", ("T", C), dt, "temp"),
            Buffer("out32", ("T", C), "float32", "temp")]
    expr = op("add", op("silu", load(0)), op("mul", load(1), const(0.5)))
    views = (cview("x", ("T", C)), View("w", ("T", C), (0, 1)))
    k1 = Kernel("lp", "pointwise", views, cview("out", ("T", C)), expr=expr)
    k2 = Kernel("lp32", "pointwise", views, cview("out32", ("T", C)), expr=expr)
    cp = compile_program(program([k1, k2], bufs, symbols={"T": 16}))
    sym = {"T": 5}
    ts = alloc(cp.program, sym)
    run(cp, ts, sym)
    ref32 = F.silu(ts["x"].float()) + ts["w"].float() * 0.5
    torch.testing.assert_close(ts["out32"], ref32, rtol=1e-5, atol=1e-5)
    # stores round to nearest even: exactly what torch's .to(dtype) does
    torch.testing.assert_close(ts["out"], ref32.to(tdt), rtol=tol, atol=tol)
    assert (ts["out"] == ref32.to(tdt)).float().mean() > 0.95


def test_emit_without_compiling():
    bufs, k1 = _all_ops_program()
    # the same kernel on other buffers (as in every layer of a model) shares one implementation
    k2 = Kernel("all_ops_again", "pointwise", k1.operands, View("out2", ("T", C), (C, 1)), expr=k1.expr)
    src = emit_program(program([k1, k2], bufs, symbols={"T": 8}))
    assert src.count("static void impl_") == 1 and "static void k1_all_ops_again(" in src
    assert "impl_k0_all_ops((float*)buffers[4], (const float*)buffers[0]" in src
