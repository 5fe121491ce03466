"""Host (CPU) time to enqueue the pieces of braze's fp8 prefill matmul (not a test): a prefill
step is eager, so what each call costs the CPU adds up over ~90 matmuls. Per call, median of 200
calls (the GPU is kept busy so enqueueing never waits on it):

    PYTHONPATH=. python3 bench/kernels/fp8_host_overhead.py
"""
from __future__ import annotations

import statistics
import time

import torch
import triton

from braze.codegen.triton.matmul_library import WORKSPACE_HELPER
from braze.codegen.triton.matmul_quant import FP8_HELPER


def host_us(fn, calls: int = 200) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    torch.cuda.synchronize()
    return statistics.median(times) * 1e6


def main():
    import importlib.util
    import tempfile
    src = "import torch\nimport triton\nimport triton.language as tl\n\n" + WORKSPACE_HELPER + "\n\n" + FP8_HELPER
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("fp8_helper", f.name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m, k, n = 2048, 2048, 2560
    a = torch.randn(m, k, device="cuda").bfloat16()
    w8 = (torch.randn(n, k, device="cuda") * 8).to(torch.float8_e4m3fn)
    sw = torch.rand(n, 1, device="cuda") / 100
    out = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    add = torch.randn(m, n, device="cuda").bfloat16()
    a8 = torch.empty(m, k, device="cuda", dtype=torch.float8_e4m3fn)
    s_a = torch.empty(m, 1, device="cuda")
    scale_b = sw.float().reshape(1, -1)
    busy = torch.randn(8192, 8192, device="cuda").bfloat16()
    a8.copy_(a.clamp(-448, 448).to(torch.float8_e4m3fn))
    s_a.fill_(1.0)
    for _ in range(3):
        mod._braze_fp8_scaled_mm(a8, s_a, w8, sw, out)
    rows = {  # the per-token e4m3 rounding is generated per matmul (KERNEL_prologue_fp8), not timed here
        "_scaled_mm out=": lambda: torch._scaled_mm(a8, w8.t(), scale_a=s_a, scale_b=scale_b, out_dtype=torch.bfloat16,
                                                    use_fast_accum=True, out=out),
        "_scaled_mm": lambda: torch._scaled_mm(a8, w8.t(), scale_a=s_a, scale_b=scale_b, out_dtype=torch.bfloat16,
                                               use_fast_accum=True),
        "_braze_fp8_scaled_mm": lambda: mod._braze_fp8_scaled_mm(a8, s_a, w8, sw, out),
        "_braze_fp8_scaled_mm + add": lambda: mod._braze_fp8_scaled_mm(a8, s_a, w8, sw, out, add=add),
        "torch.mm bf16 (peer)": lambda: torch.mm(a, busy[:n, :k].t(), out=out),
        "torch.add": lambda: torch.add(out, add, out=out),
    }
    for name, fn in rows.items():
        for _ in range(20):
            busy @ busy  # keep the GPU queue non-empty so launches do not wait
        print(f"{name:28} {host_us(fn):8.1f} us host per call", flush=True)
    print(f"triton {triton.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
