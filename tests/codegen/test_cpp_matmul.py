"""matmul kernels: fused RMSNorm prologue, SiLU*mul prologue, residual/bias epilogues, strided views,
decode (M=1, 3) and prefill (M=37, 130: several row blocks), bf16/f16 weights, a transposed weight."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from braze.codegen.cpp import compile_program
from braze.ir.kernel import Buffer, Kernel, View
from cpp_testlib import ACC, alloc, const, cview, load, op, program, rowred, run

K, N, I, EPS = 72, 120, 88, 1e-5
WIDE = 100  # A is read from columns 5..77 of a [T, 100] buffer


def _rms_prologue():
    return op("mul", op("mul", load(0), op("rsqrt", op("add", op("div", rowred(0), const(K)), const(EPS)))), load(1))


@pytest.fixture(scope="module")
def rms_matmul():
    bufs = [Buffer("h", ("T", WIDE), "float32", "input"), Buffer("norm_w", (K,), "float32", "weight"),
            Buffer("w", (N, K), "float32", "weight"), Buffer("res", ("T", N), "float32", "input"),
            Buffer("bias", (N,), "float32", "weight"), Buffer("out", ("T", 128), "float32", "temp"),
            Buffer("wt", (K, N), "float32", "weight"), Buffer("out_t", ("T", N), "float32", "temp")]
    operands = (View("h", ("T", K), (WIDE, 1), 5), View("norm_w", ("T", K), (0, 1)), cview("w", (N, K)),
                cview("res", ("T", N)), View("bias", ("T", N), (0, 1)))
    epilogue = op("add", op("add", ACC, load(3)), load(4))
    k1 = Kernel("qkv_rms", "matmul", operands, View("out", ("T", N), (128, 1), 3), expr=epilogue,
                prologue=_rms_prologue(), reductions=(("sum", op("square", load(0))),), attrs=(("weight", 2),),
                sources=("rms_norm", "linear", "add"))
    # transposed weight: B[n, k] = wt[k, n]; plain prologue (no reductions), gelu epilogue
    ops2 = (View("h", ("T", K), (WIDE, 1), 5), View("wt", (N, K), (1, N)))
    k2 = Kernel("mm_t", "matmul", ops2, cview("out_t", ("T", N)), expr=op("gelu", ACC), prologue=load(0), attrs=(("weight", 1),))
    return compile_program(program([k1, k2], bufs, symbols={"T": 256}))


@pytest.mark.parametrize("T", [1, 3, 37, 130])
def test_rms_prologue_residual_epilogue(rms_matmul, T):
    sym = {"T": T}
    ts = alloc(rms_matmul.program, sym)
    run(rms_matmul, ts, sym)
    x = ts["h"][:, 5:5 + K]
    a = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * ts["norm_w"]
    ref = F.linear(a, ts["w"]) + ts["res"] + ts["bias"]
    torch.testing.assert_close(ts["out"][:, 3:3 + N], ref, rtol=1e-4, atol=1e-4)
    ref_t = F.gelu(x @ ts["wt"])
    torch.testing.assert_close(ts["out_t"], ref_t, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def mlp_down():
    """down(silu(gate) * up) + residual for f32, bf16 and f16 weights (one program, three kernels)."""
    bufs = [Buffer("gu", ("T", 2 * I), "float32", "temp"), Buffer("res", ("T", K), "float32", "input"),
            Buffer("w32", (K, I), "float32", "weight"), Buffer("wbf", (K, I), "bfloat16", "weight"),
            Buffer("wf16", (K, I), "float16", "weight"),
            Buffer("o32", ("T", K), "float32", "temp"), Buffer("obf", ("T", K), "bfloat16", "temp"),
            Buffer("of16", ("T", K), "float32", "temp")]
    gate, up = View("gu", ("T", I), (2 * I, 1), 0), View("gu", ("T", I), (2 * I, 1), I)
    prologue = op("mul", op("silu", load(0)), load(1))
    ks = []
    for w, o in (("w32", "o32"), ("wbf", "obf"), ("wf16", "of16")):
        ks.append(Kernel(f"down_{w}", "matmul", (gate, up, cview(w, (K, I)), cview("res", ("T", K))), cview(o, ("T", K)),
                         expr=op("add", ACC, load(3)), prologue=prologue, attrs=(("weight", 2),), sources=("silu", "mul", "linear", "add")))
    return compile_program(program(ks, bufs, symbols={"T": 64}))


@pytest.mark.parametrize("T", [1, 3, 37])
def test_silu_mul_prologue_and_weight_dtypes(mlp_down, T):
    sym = {"T": T}
    ts = alloc(mlp_down.program, sym)
    run(mlp_down, ts, sym)
    gu = ts["gu"]
    a = F.silu(gu[:, :I]) * gu[:, I:]
    torch.testing.assert_close(ts["o32"], F.linear(a, ts["w32"]) + ts["res"], rtol=1e-4, atol=1e-4)
    ref_bf = F.linear(a, ts["wbf"].float()) + ts["res"]
    torch.testing.assert_close(ts["obf"], ref_bf.to(torch.bfloat16), rtol=1.6e-2, atol=1e-2)
    torch.testing.assert_close(ts["of16"], F.linear(a, ts["wf16"].float()) + ts["res"], rtol=1e-4, atol=1e-4)


def test_matmul_source_structure(rms_matmul):
    src = rms_matmul.source
    body = src[src.index("static void impl_k0_qkv_rms"):src.index("static void k0_qkv_rms(")]
    # the prologue (rsqrt) is computed in the per-row loop, once per row, never per output column
    assert body.count("sqrtf(") == 1
    assert body.index("sqrtf(") < body.index("mm_tile_")
    assert "mm_tile_4x4_f32" in src and "#pragma omp simd reduction(+:" in src


def test_inplace_output_over_prologue_input():
    """out = x + W @ rms(x) written over x itself: every thread must read x before anyone writes."""
    bufs = [Buffer("x", ("T", K), "float32", "input"), Buffer("norm_w", (K,), "float32", "weight"),
            Buffer("w", (K, K), "float32", "weight")]
    ops = (cview("x", ("T", K)), View("norm_w", ("T", K), (0, 1)), cview("w", (K, K)))
    kern = Kernel("inplace", "matmul", ops, cview("x", ("T", K)), expr=op("add", ACC, load(0)), prologue=_rms_prologue(),
                  reductions=(("sum", op("square", load(0))),), attrs=(("weight", 2),))
    cp = compile_program(program([kern], bufs, symbols={"T": 512}))
    assert "#pragma omp barrier" in cp.source
    for T in (1, 70, 300):
        ts = alloc(cp.program, {"T": T})
        x = ts["x"].clone()
        a = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * ts["norm_w"]
        expect = x + F.linear(a, ts["w"])
        run(cp, ts, {"T": T})
        torch.testing.assert_close(ts["x"], expect, rtol=1e-4, atol=1e-4)
