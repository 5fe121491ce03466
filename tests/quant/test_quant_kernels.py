"""Each quantized matmul kernel against the Kernel IR interpreter (dequantize, then matmul): C++ in
float32, Triton (on the GPU, or in the interpreter without one) in float32 and float16, at small
odd shapes, decode and prefill, with an RMSNorm prologue and a concatenated (Q|K-like) weight.
Rows 1 / 3: the GEMV; 17: the fused tl.dot GEMM; 70: dequantize-then-library (Triton) / one
dequantized tile per block (C++)."""

import pytest
import torch

from braze.ir.builder import GraphBuilder
from braze.passes.pipeline import lower
from braze.quant.methods import parse_method
from braze.runtime.executable import Executable

METHODS = ["int8", "int4-rtn-g32", "int4-rtn-g64-sym", "fp8"]  # g64 at K = 96: a short last group
K = 96


def _program(method: str, dtype: str, widths=(("q", 37), ("k", 19))):
    gen = torch.Generator().manual_seed(0)
    t = getattr(torch, dtype)
    b = GraphBuilder(symbols={"T": 80})
    x = b.input("x", ("T", K), dtype)
    h = b.rms_norm(x, b.weight("norm", (torch.rand(K, generator=gen) + 0.5).to(t)), 1e-5)
    outs = {}
    for name, n in widths:  # odd N by default; merged into one weight by the layout pass
        w = b.weight(f"{name}.weight", torch.randn(n, K, generator=gen).to(t))
        outs[name] = b.matmul(h, b.transpose(w))
    program = lower(b.build(outs), quant=parse_method(method))
    assert any(k.attr("quant") for k in program.kernels)
    return program


def _check(program, backend, dtype, tol, device="cpu"):
    exe = Executable(program, backend=backend, device=device)
    for rows in (1, 3, 17, 70):  # GEMV, GEMV (M <= 16), fused GEMM, library (dequantize + mm)
        x = torch.randn(rows, K, generator=torch.Generator().manual_seed(rows)).to(getattr(torch, dtype))
        ref = {n: v.float().clone() for n, v in Executable(program, backend="reference").run({"x": x}).items()}
        out = exe.run({"x": x.to(device)})
        for name in ref:
            err = (out[name].float().cpu() - ref[name]).abs().max() / ref[name].abs().max()
            assert err < tol, (name, rows, err.item())


@pytest.mark.parametrize("method", METHODS)
def test_cpp_quantized_matmul(method):
    _check(_program(method, "float32"), "cpp", "float32", 1e-5)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float16", 3e-3)])
@pytest.mark.parametrize("method", METHODS)
def test_triton_quantized_matmul(method, dtype, tol, triton_device):
    _check(_program(method, dtype), "triton", dtype, tol, triton_device)


@pytest.mark.parametrize("method", ["int8", "int4-rtn-g32"])
def test_triton_quantized_gemv_loads_no_weights_above_the_wait(method):
    """EARLY_WEIGHTS is for float weights: a packed GEMV loads its bytes and group scales after
    griddepcontrol.wait (early, its decode step measured slower on an H100)."""
    pytest.importorskip("triton")
    from braze.codegen.triton.matmul import emit_matmul
    from braze.codegen.triton.module import EmitContext, _wait_for_previous_kernel
    program = _program(method, "float32")
    kernel = next(k for k in program.kernels if k.attr("quant"))
    jit = emit_matmul(kernel, EmitContext(program, pdl=True, early_weights=True)).jit
    gemv = _wait_for_previous_kernel(jit, {"KERNEL"}).split("def KERNEL_gemm(")[0]
    raw = "qb = tl.load(" if method.startswith("int4") else "qw = tl.load("
    assert "_first" not in gemv
    assert gemv.index("gdc_wait()") < gemv.index(raw) and gemv.index("gdc_wait()") < gemv.index("sg = tl.load(")


@pytest.mark.gpu
@pytest.mark.parametrize("method", METHODS)
def test_triton_quantized_matmul_bf16_gpu(method):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    program = _program(method, "bfloat16")
    for rows in (1, 3, 17, 40, 80):
        x = torch.randn(rows, K, device="cuda").bfloat16()
        ref = {n: v.float().clone() for n, v in Executable(program, backend="reference", device="cuda").run({"x": x}).items()}
        out = Executable(program, backend="triton", device="cuda").run({"x": x})
        # fp8 prefill (80 rows) rounds activations to e4m3 too: 3 mantissa bits
        tol = 5e-2 if method == "fp8" and rows > 64 else 2e-2
        for name in ref:
            assert (out[name].float() - ref[name]).abs().max() / ref[name].abs().max() < tol, (name, rows)


@pytest.mark.gpu
def test_fp8_prefill_through_scaled_mm_gpu():
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("needs a GPU with fp8 (sm_89+)")
    program = _program("fp8", "bfloat16", widths=(("q", 64), ("k", 32)))  # N, K multiples of 16
    exe = Executable(program, backend="triton", device="cuda")
    assert "_prologue_fp8[" in exe.compiled.source and "_braze_fp8_scaled_mm(a8, s_a, w8, w_scales" in exe.compiled.source
    x = torch.randn(80, K, device="cuda").bfloat16()
    ref = {n: v.float().clone() for n, v in Executable(program, backend="reference", device="cuda").run({"x": x}).items()}
    out = exe.run({"x": x})
    for name in ref:
        assert (out[name].float() - ref[name]).abs().max() / ref[name].abs().max() < 5e-2, name


@pytest.mark.gpu
@pytest.mark.parametrize("fused_add", [False, True])
def test_fp8_prefill_with_residual_gpu(fused_add, monkeypatch):
    """The fp8 prefill path with a residual added (the O / down projections' epilogue): per-token
    activation scales from the Triton kernel, then _scaled_mm and the add into the output, or
    (BRAZE_FP8_FUSED_ADD) fp8_gemm's one kernel adding it in its epilogue."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("needs a GPU with fp8 (sm_89+)")
    from braze.codegen.triton import fp8_gemm
    calls, fused = [], fp8_gemm.fp8_mm_add
    monkeypatch.setattr(fp8_gemm, "FUSED_ADD", fused_add)
    monkeypatch.setattr(fp8_gemm, "fp8_mm_add", lambda *a, **kw: (calls.append(1), fused(*a, **kw)))
    b = GraphBuilder(symbols={"T": 80})
    x = b.input("x", ("T", K), "bfloat16")
    r = b.input("r", ("T", 48), "bfloat16")
    w = b.weight("o.weight", torch.randn(48, K, generator=torch.Generator().manual_seed(1)).bfloat16())
    program = lower(b.build({"y": b.add(b.matmul(x, b.transpose(w)), r)}), quant=parse_method("fp8"))
    exe = Executable(program, backend="triton", device="cuda")
    assert "_prologue_fp8[" in exe.compiled.source
    for rows in (70, 80):
        feeds = {"x": torch.randn(rows, K, device="cuda").bfloat16() * 3,
                 "r": torch.randn(rows, 48, device="cuda").bfloat16()}
        ref = Executable(program, backend="reference", device="cuda").run(feeds)["y"].float().clone()
        out = exe.run(feeds)["y"].float()
        assert (out - ref).abs().max() / ref.abs().max() < 5e-2, rows
    assert len(calls) == (2 if fused_add else 0)


@pytest.mark.parametrize("kind", ["Q4_K", "Q6_K"])
@pytest.mark.parametrize("backend", ["cpp", "triton"])
def test_gguf_k_quant_blocks_run_in_the_kernels(kind, backend, request):
    """A GGUF K-quant tensor run from its own blocks (int4 g32 with float32 scales and mins, or
    int8 g16), through the GEMV, the fused GEMM and the library path, against the interpreter."""
    import numpy as np

    from braze.quant.gguf_blocks import blocks_to_quantized
    from braze.quant.methods import QuantScheme
    device = request.getfixturevalue("triton_device") if backend == "triton" else "cpu"
    rng = np.random.default_rng(2)
    n, k = 48, 512
    raw = rng.integers(0, 256, (n, k // 256, {"Q4_K": 144, "Q6_K": 210}[kind]), dtype=np.uint8)
    halves = rng.uniform(1e-3, 2e-2, (n, k // 256, 2)).astype(np.float16).view(np.uint8)
    if kind == "Q4_K":
        raw[..., 0:4] = halves.reshape(n, k // 256, 4)
    else:
        raw[..., 208:210] = halves[..., :2]
    qt = blocks_to_quantized(kind, raw.reshape(n, -1), (n, k))
    b = GraphBuilder(symbols={"T": 80})
    x = b.input("x", ("T", k), "float32")
    w = b.weight("proj.weight", qt.dequantize())
    program = lower(b.build({"y": b.matmul(x, b.transpose(w))}),
                    quant=QuantScheme("gguf", "gguf", prequantized={"proj.weight": qt}))
    assert any(kern.attr("quant") for kern in program.kernels)
    for rows in (1, 3, 17, 70):
        xs = torch.randn(rows, k, generator=torch.Generator().manual_seed(rows))
        ref = Executable(program, backend="reference").run({"x": xs})["y"].clone()
        out = Executable(program, backend=backend, device=device).run({"x": xs.to(device)})["y"].cpu()
        assert (out - ref).abs().max() / ref.abs().max() < 1e-5, rows


@pytest.mark.parametrize("one_pass,k", [(False, 64), (True, 64), (True, 80)])  # 80: a row block of 128, masked
@pytest.mark.parametrize("prologue", ["rms_norm", "silu_mul", "plain"])
def test_triton_fp8_prefill_rounds_each_tokens_prologue_to_e4m3(prologue, one_pass, k, triton_device, monkeypatch):
    """fp8 prefill with N and K multiples of 16: one kernel computes the prologue's rows and writes
    them as e4m3 with a per-token scale (max |a| / 448), and the product runs on those (in float32
    here, torch._scaled_mm on a GPU). The residual is added after."""
    from braze.codegen.triton import matmul_quant
    monkeypatch.setattr(matmul_quant, "FP8_ROW_PROLOGUE", one_pass)
    gen = torch.Generator().manual_seed(2)
    n, rows = 48, 70
    b = GraphBuilder(symbols={"T": 80})
    x = b.input("x", ("T", k), "float32")
    u = b.input("u", ("T", k), "float32")
    r = b.input("r", ("T", n), "float32")
    g = torch.rand(k, generator=gen) + 0.5
    a = {"rms_norm": lambda: b.rms_norm(x, b.weight("norm", g), 1e-5),
         "silu_mul": lambda: b.mul(b.silu(x), u), "plain": lambda: x}[prologue]()
    w = b.weight("w.weight", torch.randn(n, k, generator=gen))
    program = lower(b.build({"y": b.add(b.matmul(a, b.transpose(w)), r)}), quant=parse_method("fp8"))
    exe = Executable(program, backend="triton", device=triton_device)
    assert "_prologue_fp8[" in exe.compiled.source and "_prologue[" not in exe.compiled.source
    kernel = exe.compiled.source.split("_prologue_fp8(")[1].split("@triton.jit")[0]
    assert ("for k0 in range" in kernel) != one_pass  # one pass: the row is one block, no K loop
    feeds = {"x": torch.randn(rows, k, generator=gen) * 3, "u": torch.randn(rows, k, generator=gen),
             "r": torch.randn(rows, n, generator=gen)}
    got = exe.run({name: v.to(triton_device) for name, v in feeds.items()})["y"].float().cpu()

    xf = feeds["x"]
    want_a = {"rms_norm": lambda: xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5) * g,
              "silu_mul": lambda: torch.nn.functional.silu(xf) * feeds["u"], "plain": lambda: xf}[prologue]()
    ws = exe.compiled.module._braze_ws
    a8 = next(v for (dev, dt, slot), v in ws.items() if slot == 3)[: rows * k].view(rows, k).cpu()
    s_a = next(v for (dev, dt, slot), v in ws.items() if slot == 4)[:rows].view(rows, 1).cpu()
    torch.testing.assert_close(s_a, want_a.abs().amax(-1, keepdim=True) / 448, rtol=1e-5, atol=0)
    # e4m3 keeps 3 mantissa bits: each value within half a step (1/16 relative) of the float row
    torch.testing.assert_close(a8.float() * s_a, want_a, rtol=1 / 16, atol=s_a.max().item() * 2 ** -9)
    ref = Executable(program, backend="reference").run(feeds)["y"].float()  # activations not rounded
    err = ((got - ref).abs().max() / ref.abs().max()).item()
    assert 1e-4 < err < 5e-2, err  # the e4m3 rounding shows, and stays that small
