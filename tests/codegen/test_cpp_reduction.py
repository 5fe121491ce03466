"""Reduction kernels: RMSNorm, softmax (a reduction reading an earlier one), one value per row."""
from __future__ import annotations

import pytest
import torch

from braze.codegen.cpp import compile_program
from braze.ir.kernel import Buffer, Kernel, View
from cpp_testlib import alloc, const, cview, load, op, program, rowred, run

C, EPS = 72, 1e-5


@pytest.fixture(scope="module")
def reductions():
    bufs = [Buffer("x", ("T", C), "float32", "input"), Buffer("w", (C,), "float32", "weight"),
            Buffer("rms", ("T", C), "float32", "temp"), Buffer("sm", ("T", C), "float32", "temp"),
            Buffer("mean", ("T", 1), "float32", "temp"), Buffer("wide", ("T", 100), "float32", "input"),
            Buffer("sm_wide", ("T", C), "bfloat16", "temp")]
    x = cview("x", ("T", C))
    w = View("w", ("T", C), (0, 1))
    rms = Kernel("rms_norm", "reduction", (x, w), cview("rms", ("T", C)),
                 expr=op("mul", op("mul", load(0), op("rsqrt", op("add", op("div", rowred(0), const(C)), const(EPS)))), load(1)),
                 reductions=(("sum", op("mul", load(0), load(0))),), sources=("pow", "mean", "rsqrt", "mul"))
    shifted = op("exp", op("sub", load(0), rowred(0)))
    softmax = Kernel("softmax", "reduction", (x,), cview("sm", ("T", C)), expr=op("div", shifted, rowred(1)),
                     reductions=(("max", load(0)), ("sum", shifted)))
    mean = Kernel("mean", "reduction", (x,), cview("mean", ("T", 1)), expr=op("div", rowred(0), const(C)),
                  reductions=(("sum", load(0)),))
    # softmax of a strided slice (columns 10..82 of a [T, 100] buffer) stored as bf16
    xs = View("wide", ("T", C), (100, 1), 10)
    softmax_wide = Kernel("softmax_wide", "reduction", (xs,), cview("sm_wide", ("T", C)), expr=op("div", shifted, rowred(1)),
                          reductions=(("max", load(0)), ("sum", shifted)))
    return compile_program(program([rms, softmax, mean, softmax_wide], bufs, symbols={"T": 64}))


@pytest.mark.parametrize("T", [1, 13, 300])
def test_reductions(reductions, T):
    sym = {"T": T}
    ts = alloc(reductions.program, sym)
    ts["x"] *= 3
    run(reductions, ts, sym)
    x = ts["x"]
    ref = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * ts["w"]
    torch.testing.assert_close(ts["rms"], ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ts["sm"], torch.softmax(x, -1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ts["mean"], x.mean(-1, keepdim=True), rtol=1e-5, atol=1e-5)
    ref_wide = torch.softmax(ts["wide"][:, 10:82], -1).to(torch.bfloat16)
    torch.testing.assert_close(ts["sm_wide"], ref_wide, rtol=1e-2, atol=1e-3)
