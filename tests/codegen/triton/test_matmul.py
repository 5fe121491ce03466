"""Triton matmul (braze/codegen/triton/matmul.py): GEMV (M <= 16) and tl.dot GEMM (larger M).

CPU runs use Triton's interpreter (float32/float16 only); @pytest.mark.gpu tests run realistic
bfloat16 shapes. Covered: fused RMSNorm prologue (row reductions), SiLU*mul prologue from two
column slices, residual and bias epilogues, strided A/output views, a transposed weight, odd N/K,
in-place output over the prologue input, forced split-K and forced GEMM for small M.

    python tests/codegen/triton/test_matmul.py [--sweep]  # on a GPU: GB/s of the decode GEMV vs
                                                         # F.linear, GEMM TFLOP/s; --sweep: configs
"""
from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

triton = pytest.importorskip("triton")

from braze.codegen.triton import compile_program  # noqa: E402
from braze.codegen.triton import matmul as mm  # noqa: E402
from braze.ir.builder import GraphBuilder  # noqa: E402
from braze.ir.interpret import TORCH_DTYPE, interpret  # noqa: E402
from braze.ir.kernel import Buffer, Expr, Kernel, Program, View  # noqa: E402
from braze.ir.kernel_interpret import run_program  # noqa: E402
from braze.passes.pipeline import lower  # noqa: E402
from braze.runtime.executable import Executable  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
K, N, I, EPS = 72, 120, 88, 1e-5


pytestmark = pytest.mark.usefixtures("fresh_braze_cache")  # tests/conftest.py


# -- helpers ------------------------------------------------------------------------------------
def run_graph_triton(program: Program, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Bind like Executable does, run the Triton program, return the graph outputs (on the CPU)."""
    exe = Executable(program, backend="reference", device=DEVICE)
    flat, sym = exe._bind({k: v.to(DEVICE) for k, v in feeds.items()})
    compile_program(program).run([flat[b.name] for b in program.buffers], sym)
    outs = {}
    for name, buf in program.outputs:
        b = program.buffer(buf)
        shape = tuple(sym[d] if isinstance(d, str) else d for d in b.shape)
        n = 1
        for d in shape:
            n *= d
        outs[name] = flat[buf][:n].view(shape).cpu().clone()
    return outs


def rand(shape, dtype="float32", scale=1.0, seed=None):
    g = torch.Generator().manual_seed(seed if seed is not None else hash(tuple(shape)) % 1000)
    return (torch.randn(shape, generator=g) * scale).to(TORCH_DTYPE[dtype])


def check(graph, feeds, atol=1e-4, rtol=1e-4):
    program = lower(graph)
    assert any(k.kind == "matmul" for k in program.kernels)
    got = run_graph_triton(program, feeds)
    ref = interpret(graph, feeds)
    for name in ref:
        torch.testing.assert_close(got[name].float(), ref[name].float(), atol=atol, rtol=rtol, msg=name)
    return compile_program(program).source


@pytest.fixture
def force(monkeypatch):
    """force("gemm"): every M bucket uses KERNEL_gemm; force("splitk"): GEMV buckets split K in 2."""
    def apply(mode):
        real = mm.matmul_config

        def config(m_bucket, n, k, dtype, num_sms=mm.NUM_SMS):
            c = real(m_bucket, n, k, dtype, num_sms)
            if mode == "gemm":
                return mm.MatmulConfig("gemm", 16, 32, 32, 4, 2)
            if mode == "splitk" and c.variant == "gemv":
                return mm.MatmulConfig("gemv", c.block_m, c.block_n, 16, c.num_warps, c.num_stages, 2)
            return c
        if mode:
            monkeypatch.setattr(mm, "matmul_config", config)
    return apply


# -- graphs -------------------------------------------------------------------------------------
def rms_linear_graph(k=K, n=N, dtype="float32", bias=False, t_bound=64):
    b = GraphBuilder(symbols={"T": t_bound}, name="rms_linear")
    x = b.input("x", ("T", k), dtype)
    h = b.rms_norm(x, b.weight("norm", rand((k,), dtype, seed=1) + 1), EPS)
    y = b.matmul(h, b.transpose(b.weight("w", rand((n, k), dtype, 0.2, seed=2))))
    if bias:
        y = b.add(y, b.weight("bias", rand((n,), dtype, seed=3)))
    return b.build({"y": y})


def mlp_down_graph(dtype="float32"):
    """down(silu(gate) * up) + residual, gate/up two column slices of one [T, 2I] input."""
    b = GraphBuilder(symbols={"T": 64}, name="mlp_down")
    gu = b.input("gu", ("T", 2 * I), dtype)
    res = b.input("res", ("T", K), dtype)
    a = b.mul(b.silu(b.slice(gu, 1, 0, I)), b.slice(gu, 1, I, 2 * I))
    y = b.add(res, b.matmul(a, b.transpose(b.weight("w_down", rand((K, I), dtype, 0.2, seed=4)))))
    return b.build({"y": y})


# -- CPU (interpreter) and GPU correctness ------------------------------------------------------
@pytest.mark.parametrize("T", [1, 3, 16, 37])
def test_rms_norm_linear(T):
    check(rms_linear_graph(), {"x": rand((T, K), seed=T)})


@pytest.mark.parametrize("T", [1, 5, 40])
def test_silu_mul_slices_down_residual(T):
    check(mlp_down_graph(), {"gu": rand((T, 2 * I), seed=T), "res": rand((T, K), seed=T + 1)})


@pytest.mark.parametrize("T", [1, 20])
def test_linear_bias(T):
    b = GraphBuilder(symbols={"T": 32}, name="linear_bias")
    x = b.input("x", ("T", K), "float32")
    y = b.add(b.matmul(x, b.transpose(b.weight("w", rand((N, K), seed=5)))), b.weight("bias", rand((N,), seed=6)))
    check(b.build({"y": y}), {"x": rand((T, K), seed=T)})


@pytest.mark.parametrize("T", [1, 4, 33])
def test_float16(T):
    check(rms_linear_graph(dtype="float16", bias=True), {"x": rand((T, K), "float16", seed=T)}, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("mode", ["gemm", "splitk"])
@pytest.mark.parametrize("T", [1, 3])
def test_forced_variants(force, mode, T):
    """The small-M buckets through the other code paths: tl.dot GEMM tiles, and split-K GEMV."""
    force(mode)
    sources = [check(rms_linear_graph(), {"x": rand((T, K), seed=T)}),
               check(mlp_down_graph(), {"gu": rand((T, 2 * I), seed=T), "res": rand((T, K), seed=T + 1)})]
    for src in sources:
        launch = src[src.index("    if M == 1:"):src.index("    elif M <= 16:")]
        assert ("_gemm[grid]" in launch) if mode == "gemm" else ("_splitk[" in launch)


def test_odd_wide_n():
    """N not a multiple of any block (4099), K = 40 (not a multiple of BLOCK_K), both variants."""
    g = rms_linear_graph(k=40, n=4099, t_bound=32)
    for T in (1, 18):
        check(g, {"x": rand((T, 40), seed=T)})


# -- hand-built Kernel IR: strided views, transposed weight, in place ---------------------------
def _load(i):
    return Expr("load", value=i)


def _op(name, *args):
    return Expr(name, tuple(args))


ACC = Expr("acc")
WIDE = 100


def _rms_prologue(k=K):
    inv = _op("rsqrt", _op("add", _op("mul", Expr("rowred", value=0), Expr("const", value=1.0 / k)),
                           Expr("const", value=EPS)))
    return _op("mul", _op("mul", _load(0), inv), _load(1))


def _strided_program(wdtype="float32"):
    bufs = [Buffer("h", ("T", WIDE), "float32", "input"), Buffer("norm_w", (K,), "float32", "weight"),
            Buffer("w", (N, K), wdtype, "weight"), Buffer("res", ("T", N), "float32", "input"),
            Buffer("bias", (N,), "float32", "weight"), Buffer("out", ("T", 128), "float16", "temp"),
            Buffer("wt", (K, N), wdtype, "weight"), Buffer("out_t", ("T", N), "float32", "temp")]
    operands = (View("h", ("T", K), (WIDE, 1), 5), View("norm_w", ("T", K), (0, 1)), View("w", (N, K), (K, 1)),
                View("res", ("T", N), (N, 1)), View("bias", ("T", N), (0, 1)))
    k1 = Kernel("rms_mm", "matmul", operands, View("out", ("T", N), (128, 1), 3),
                expr=_op("add", _op("add", ACC, _load(3)), _load(4)), prologue=_rms_prologue(),
                reductions=(("sum", _op("square", _load(0))),), attrs=(("weight", 2),))
    # transposed weight B[n, k] = wt[k, n]; plain prologue, gelu epilogue; a max reduction unused
    ops2 = (View("h", ("T", K), (WIDE, 1), 5), View("wt", (N, K), (1, N)))
    k2 = Kernel("mm_t", "matmul", ops2, View("out_t", ("T", N), (N, 1)), expr=_op("gelu", ACC),
                prologue=_op("mul", _load(0), Expr("rowred", value=0)),
                reductions=(("max", _op("abs", _load(0))),), attrs=(("weight", 1),))
    return Program(kernels=(k1, k2), buffers=tuple(bufs), outputs=(), symbols={"T": 64})


def _alloc(program, sym, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for b in program.buffers:
        shape = tuple(sym[d] if isinstance(d, str) else d for d in b.shape)
        out[b.name] = (torch.randn(shape, generator=g) * 0.5).to(TORCH_DTYPE[b.dtype]).view(-1)
    return out


def _run_both(program, sym, seed=0):
    flat = _alloc(program, sym, seed)
    ref = {k: v.clone() for k, v in flat.items()}
    run_program(program, ref, sym)
    dev = {k: v.to(DEVICE) for k, v in flat.items()}
    compile_program(program).run([dev[b.name] for b in program.buffers], sym)
    return {k: v.cpu() for k, v in dev.items()}, ref


@pytest.mark.parametrize("wdtype", ["float32", "float16"])
@pytest.mark.parametrize("T", [1, 7, 21])
def test_strided_views_transposed_weight(wdtype, T):
    got, ref = _run_both(_strided_program(wdtype), {"T": T}, seed=T)
    tol = 1e-4 if wdtype == "float32" else 2e-2
    out_got, out_ref = got["out"].view(T, 128), ref["out"].view(T, 128)
    torch.testing.assert_close(out_got[:, 3:3 + N].float(), out_ref[:, 3:3 + N].float(), atol=max(tol, 1e-2), rtol=tol)
    # columns outside the output view are untouched
    assert torch.equal(out_got[:, :3], out_ref[:, :3]) and torch.equal(out_got[:, 3 + N:], out_ref[:, 3 + N:])
    torch.testing.assert_close(got["out_t"], ref["out_t"], atol=tol, rtol=tol)


@pytest.mark.parametrize("T", [1, 9, 40])
def test_inplace_output_over_prologue_input(T):
    """x = x + W @ rms(x) written over x itself (other programs must still see the old x)."""
    bufs = [Buffer("x", ("T", K), "float32", "input"), Buffer("norm_w", (K,), "float32", "weight"),
            Buffer("w", (K, K), "float32", "weight")]
    ops = (View("x", ("T", K), (K, 1)), View("norm_w", ("T", K), (0, 1)), View("w", (K, K), (K, 1)))
    kern = Kernel("inplace", "matmul", ops, View("x", ("T", K), (K, 1)), expr=_op("add", ACC, _load(0)),
                  prologue=_rms_prologue(), reductions=(("sum", _op("square", _load(0))),), attrs=(("weight", 2),))
    program = Program(kernels=(kern,), buffers=tuple(bufs), outputs=(), symbols={"T": 64})
    assert ".clone()" in compile_program(program).source
    got, ref = _run_both(program, {"T": T}, seed=T)
    torch.testing.assert_close(got["x"], ref["x"], atol=1e-4, rtol=1e-4)


def test_source_structure():
    src = compile_program(lower(rms_linear_graph())).source
    assert "tl.dot(" in src and "input_precision=\"ieee\"" in src  # float32 weights: exact dot
    assert "if M == 1:" in src and "elif M <= 16:" in src
    assert "torch.mm(" in src.split("elif M <= 16:")[1]  # M > 16: cuBLAS (a library kernel)
    assert "ONE_PASS=True" in src  # the RMSNorm scale factored out: one pass over K in the GEMV
    src16 = compile_program(lower(rms_linear_graph(dtype="float16"))).source
    assert "input_precision" not in src16


def test_gemv_loads_its_first_weight_chunk_above_the_wait_and_computes_the_same(monkeypatch):
    """A weight (never written by a kernel) is loaded before griddepcontrol.wait and its first
    chunk is peeled out of the K loop; a matmul of two activations waits first as before."""
    from braze.codegen.triton.module import EmitContext, _wait_for_previous_kernel
    program = _strided_program()
    bufs = tuple(replace(b, kind="temp") if b.name == "w" else b for b in program.buffers)
    activation_b = replace(program, buffers=bufs)
    for prog, early in ((program, True), (activation_b, False)):
        jit = mm.emit_matmul(prog.kernels[0], EmitContext(prog, pdl=True, early_weights=True)).jit
        gemv = _wait_for_previous_kernel(jit, {"KERNEL"}).split("def KERNEL_gemm(")[0]
        if early:
            assert gemv.index("b_first = tl.load(bp + kk)") < gemv.index("gdc_wait()") < gemv.index("rows = ")
            assert gemv.count("b = b_first") == 4  # (ONE_PASS or not) x (EVEN_K or not)
        else:
            assert "b_first" not in gemv and gemv.index("gdc_wait()") < gemv.index("cols = ")
    # the same numbers with and without it (each chunk's products summed in the same order)
    outs = []
    for flag in (True, False):
        monkeypatch.setattr("braze.codegen.triton.module.EARLY_WEIGHTS", flag)
        outs.append(_run_both(program, {"T": 3}, seed=5)[0])
    assert all(torch.equal(outs[0][name], outs[1][name]) for name in ("out", "out_t"))


def test_heuristic_shapes():
    c = mm.matmul_config(1, 128256, 4096, "bfloat16")
    assert c.variant == "gemv" and c.block_m == 1 and c.block_k * 2 >= 512 and c.split_k == 1
    c = mm.matmul_config(1, 256, 8192, "bfloat16")  # few N blocks: split K
    assert c.split_k > 1 and 8192 % (c.split_k * c.block_k) == 0
    c = mm.matmul_config(0, 5632, 2048, "bfloat16")
    assert (c.variant, c.block_m, c.block_n, c.block_k) == ("gemm", 128, 128, 64)


# -- GPU: realistic bfloat16 shapes -------------------------------------------------------------
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _bf16_case(T, k, n, rms=True, bias=False, seed=0):
    b = GraphBuilder(symbols={"T": max(T, 16)}, name="bf16_linear")
    x = b.input("x", ("T", k), "bfloat16")
    torch.manual_seed(seed)
    norm = (torch.rand(k) + 0.5).to(torch.bfloat16)
    w = (torch.randn(n, k) * k ** -0.5).to(torch.bfloat16)
    bias_t = torch.randn(n).to(torch.bfloat16)
    h = b.rms_norm(x, b.weight("norm", norm), EPS) if rms else x
    y = b.matmul(h, b.transpose(b.weight("w", w)))
    if bias:
        y = b.add(y, b.weight("bias", bias_t))
    xs = torch.randn(T, k).to(torch.bfloat16)
    got = run_graph_triton(lower(b.build({"y": y})), {"x": xs})["y"].float()
    xf = xs.float()
    a = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)).to(torch.bfloat16).float() * norm.float() if rms else xf
    ref = F.linear(a.cuda(), w.float().cuda()).cpu() + (bias_t.float() if bias else 0)
    return got, ref


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("T", [1, 4, 16, 17, 512])
def test_gpu_bf16_rms_linear(T):
    got, ref = _bf16_case(T, 2048, 5632)
    torch.testing.assert_close(got, ref, atol=3e-2, rtol=2e-2)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("T", [1, 300])
def test_gpu_bf16_vocab_like(T):
    got, ref = _bf16_case(T, 2048, 49153, rms=True, bias=True)
    torch.testing.assert_close(got, ref, atol=3e-2, rtol=2e-2)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("T", [1, 8])
def test_gpu_bf16_split_k(T):
    assert mm.matmul_config(1, 256, 8192, "bfloat16").split_k > 1
    got, ref = _bf16_case(T, 8192, 256, rms=False)
    torch.testing.assert_close(got, ref, atol=3e-2, rtol=2e-2)


# -- benchmark (GPU) ----------------------------------------------------------------------------
def bench_gemv(K: int, N: int, dtype: str = "bfloat16", M: int = 1, rms: bool = False, quiet: bool = False) -> dict:
    """Time the decode GEMV (y = x @ W^T, optionally RMSNorm fused) against F.linear; prints GB/s
    of weight streaming (the weight dominates the bytes)."""
    from triton.testing import do_bench, do_bench_cudagraph
    tdt = TORCH_DTYPE[dtype]
    b = GraphBuilder(symbols={"T": max(M, 16)}, name="bench")
    x = b.input("x", ("T", K), dtype)
    w = (torch.randn(N, K) * K ** -0.5).to(tdt)
    h = b.rms_norm(x, b.weight("norm", torch.ones(K, dtype=tdt)), EPS) if rms else x
    program = lower(b.build({"y": b.matmul(h, b.transpose(b.weight("w", w)))}))
    exe = Executable(program, backend="reference", device="cuda")
    xs = torch.randn(M, K, device="cuda").to(tdt)
    flat, sym = exe._bind({"x": xs})
    tp = compile_program(program)
    bufs = [flat[bb.name] for bb in program.buffers]
    wc = w.cuda()
    ours, ref = (lambda: tp.run(bufs, sym)), (lambda: F.linear(xs, wc))
    # do_bench flushes L2 between calls (decode streams weights L2 never holds); the CUDA-graph
    # time leaves out Python launch overhead (decode runs under CUDA graphs) but may hit L2
    # for weights under ~50 MB.
    ms, ms_ref = do_bench(ours, warmup=50, rep=300), do_bench(ref, warmup=50, rep=300)
    ms_g, ms_g_ref = do_bench_cudagraph(ours, rep=100), do_bench_cudagraph(ref, rep=100)
    nbytes = N * K * wc.element_size() + M * K * xs.element_size() + M * N * xs.element_size()
    r = {"K": K, "N": N, "M": M, "dtype": dtype, "rms": rms, "us": ms * 1e3, "us_torch": ms_ref * 1e3,
         "GBps": nbytes / ms / 1e6, "GBps_torch": nbytes / ms_ref / 1e6,
         "us_graph": ms_g * 1e3, "us_graph_torch": ms_g_ref * 1e3,
         "config": mm.matmul_config(1 if M == 1 else 16 if M <= 16 else 64 if M <= 64 else 0, N, K, dtype)}
    if not quiet:
        print(f"M={M:4d} K={K:6d} N={N:6d} {dtype:9s} rms={int(rms)}  braze {r['us']:8.2f} us {r['GBps']:7.0f} GB/s"
              f"   F.linear {r['us_torch']:8.2f} us {r['GBps_torch']:7.0f} GB/s   graph: braze {ms_g * 1e3:.2f} us, "
              f"F.linear {ms_g_ref * 1e3:.2f} us   {r['config']}")
    return r


def sweep_gemv(K: int, N: int, dtype: str = "bfloat16", M: int = 1) -> list[tuple[float, object]]:
    """Try GEMV configs for one shape (the heuristic's table is a guess until measured): prints
    them fastest first. Each config recompiles the program (a second or so each)."""
    import itertools
    real = mm.matmul_config
    results = []
    bms = [1] if M == 1 else [16]
    for bm, bn, bk, warps, stages, split in itertools.product(bms, [4, 8, 16, 32] if M == 1 else [16, 32, 64],
                                                           [256, 512, 1024] if M == 1 else [128, 256],
                                                           [4, 8], [1, 3], [1, 2, 4]):
        if bm == 1 and bn * bk > 16384 or K % (bk * split) or K // split < bk:
            continue
        cfg = mm.MatmulConfig("gemv", bm, bn, bk, warps, stages, split)
        mm.matmul_config = lambda *a, cfg=cfg, **kw: cfg if a[0] in (1, 16) else real(*a, **kw)
        try:
            r = bench_gemv(K, N, dtype, M=M, quiet=True)
            results.append((r["us"], cfg))
        except Exception as e:  # noqa: BLE001  (out of resources etc.)
            print("failed", cfg, type(e).__name__)
        finally:
            mm.matmul_config = real
    results.sort(key=lambda x: x[0])
    nbytes = N * K * TORCH_DTYPE[dtype].itemsize
    print(f"sweep M={M} K={K} N={N} {dtype}: heuristic {real(1 if M == 1 else 16, N, K, dtype)}")
    for us, cfg in results[:8]:
        print(f"  {us:8.2f} us {nbytes / us / 1e3:7.0f} GB/s  {cfg}")
    return results


if __name__ == "__main__":
    import sys
    import tempfile
    os.environ.setdefault("BRAZE_CACHE_DIR", tempfile.mkdtemp())
    shapes = [(2048, 2048), (2048, 5632), (5632, 2048), (2048, 32000), (4096, 4096), (4096, 6144),
              (4096, 28672), (14336, 4096), (4096, 128256), (8192, 256), (2048, 49153)]
    for M in (1, 4, 16):
        for k, n in shapes:
            bench_gemv(k, n, "bfloat16", M=M)
    for k, n in [(4096, 4096), (4096, 28672)]:
        bench_gemv(k, n, "bfloat16", M=1, rms=True)
        bench_gemv(k, n, "float16", M=1)
        bench_gemv(k, n, "float32", M=1)
    for M in (1, 128, 512, 2048):  # prefill side: the GEMM (TFLOP/s = 2*M*N*K / time)
        r = bench_gemv(4096, 14336, "bfloat16", M=M, rms=True, quiet=True)
        print(f"GEMM M={M} K=4096 N=14336 rms: braze {r['us']:.1f} us {2 * M * 14336 * 4096 / r['us'] / 1e6:.0f} "
              f"TFLOP/s   F.linear {r['us_torch']:.1f} us {2 * M * 14336 * 4096 / r['us_torch'] / 1e6:.0f} TFLOP/s")
    if "--sweep" in sys.argv:
        for k, n in [(4096, 4096), (2048, 5632), (4096, 14336), (14336, 4096), (4096, 128256)]:
            sweep_gemv(k, n, "bfloat16", M=1)
        for k, n in [(4096, 4096), (4096, 14336)]:
            sweep_gemv(k, n, "bfloat16", M=8)


def test_rmsnorm_prologue_factors_into_a_row_scale():
    """RMSNorm's rsqrt(mean(x^2) + eps) is a per-row factor: it moves to the epilogue (one pass over K)."""
    load, red = (lambda i: Expr("load", (), i)), Expr("rowred", (), 0)
    rs = Expr("rsqrt", (Expr("add", (Expr("mul", (red, Expr("const", (), 1 / 64))), Expr("const", (), 1e-5))),))
    prologue = Expr("mul", (Expr("cast", (Expr("mul", (load(0), rs)),), "bfloat16"), load(1)))
    scale, rest = mm.factor_row_scale(prologue)
    assert scale is rs
    assert (rest.op, rest.args[0].value, rest.args[1].value) == ("mul", 0, 1)
    silu_mul = Expr("mul", (Expr("silu", (load(0),)), load(1)))
    assert mm.factor_row_scale(silu_mul) is None  # no reduction: nothing to factor
    centered = Expr("mul", (Expr("sub", (load(0), red)), rs))  # LayerNorm: x - mean is not a product
    assert mm.factor_row_scale(centered) is None
