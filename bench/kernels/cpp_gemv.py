"""GEMV/GEMM micro-benchmark of the C++ matmul kernel vs torch.nn.functional.linear (not a test).

    .venv/bin/python bench/kernels/cpp_gemv.py [N K dtype]...
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]
from cpp_testlib import ACC, cview, load, program  # noqa: E402
from braze.codegen.cpp import compile_program  # noqa: E402
from braze.ir.kernel import Buffer, Kernel  # noqa: E402


def bench(fn, min_time=0.3):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def main(cases):
    for n, k, dt in cases:
        tdt = getattr(torch, dt)
        bufs = [Buffer("a", ("T", k), "float32", "input"), Buffer("w", (n, k), dt, "weight"), Buffer("o", ("T", n), "float32", "temp")]
        kern = Kernel("mm", "matmul", (cview("a", ("T", k)), cview("w", (n, k))), cview("o", ("T", n)), expr=ACC,
                      prologue=load(0), attrs=(("weight", 1),))
        cp = compile_program(program([kern], bufs, symbols={"T": 512}))
        w = torch.randn(n, k).to(tdt)
        for m in (1, 4, 128):
            a, o = torch.randn(m, k), torch.empty(m, n)
            ptrs = [a.data_ptr(), w.data_ptr(), o.data_ptr()]
            t_b = bench(lambda: cp.run(ptrs, [m]))
            wt = w if dt == "float32" else w
            at = a if dt == "float32" else a.to(tdt)
            t_t = bench(lambda: F.linear(at, wt))
            torch.testing.assert_close(o, F.linear(a, w.float()), rtol=2e-3, atol=2e-3)
            gb = w.numel() * w.element_size() / 1e9
            print(f"{dt:9s} W[{n}x{k}] M={m:4d}: braze {t_b * 1e6:8.1f} us ({2 * m * n * k / t_b / 1e9:6.1f} GFLOP/s, "
                  f"{gb / t_b:6.1f} GB/s)  torch {t_t * 1e6:8.1f} us  speedup {t_t / t_b:5.2f}x")


if __name__ == "__main__":
    args = sys.argv[1:]
    cases = [(int(args[i]), int(args[i + 1]), args[i + 2]) for i in range(0, len(args), 3)] or \
        [(576, 1536, "float32"), (1536, 576, "float32"), (4096, 4096, "float32"), (576, 1536, "bfloat16")]
    main(cases)
