"""Sweep decode-GEMV configs on real layer shapes (not a test): for each shape (optionally with the
RMSNorm prologue), time every candidate config with L2 flushed between calls, print the best.

    PYTHONPATH=. python3 bench/kernels/gemv_sweep.py [--model tinyllama|llama3-8b] [--budget-s 200]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "codegen" / "triton"))
import braze.codegen.triton.matmul as mm  # noqa: E402
from test_matmul import bench_gemv  # noqa: E402

SHAPES = {  # (K, N, rms prologue)
    "tinyllama": [(2048, 2560, True), (2048, 2048, False), (2048, 11264, True), (5632, 2048, False),
                  (2048, 32000, True)],
    "llama3-8b": [(4096, 6144, True), (4096, 4096, False), (4096, 28672, True), (14336, 4096, False)],
}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tinyllama")
    ap.add_argument("--budget-s", type=float, default=200)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    real = mm.matmul_config
    deadline = time.time() + args.budget_s
    report = []
    for K, N, rms in SHAPES[args.model]:
        base = bench_gemv(K, N, "bfloat16", M=1, rms=rms, quiet=True)
        rows = []
        for bn, bk, warps, split in itertools.product([8, 16, 32, 64], [256, 512, 1024], [4, 8], [1, 2, 4]):
            if bn * bk > 32768 or K % (bk * split) or K // split < bk or time.time() > deadline:
                continue
            cfg = mm.MatmulConfig("gemv", 1, bn, bk, warps, 3, split)
            mm.matmul_config = lambda *a, cfg=cfg, **kw: cfg if a[0] == 1 else real(*a, **kw)
            try:
                r = bench_gemv(K, N, "bfloat16", M=1, rms=rms, quiet=True)
                rows.append((r["us"], r["GBps"], cfg))
            except Exception as e:  # noqa: BLE001
                print("failed", cfg, type(e).__name__)
            finally:
                mm.matmul_config = real
        rows.sort(key=lambda x: x[0])
        print(f"K={K} N={N} rms={rms}: heuristic {base['us']:.2f} us {base['GBps']:.0f} GB/s "
              f"(torch {base['us_torch']:.2f} us {base['GBps_torch']:.0f} GB/s)")
        for us, gbps, cfg in rows[:5]:
            print(f"   {us:8.2f} us {gbps:6.0f} GB/s  bn={cfg.block_n} bk={cfg.block_k} w={cfg.num_warps} split={cfg.split_k}")
        report.append({"K": K, "N": N, "rms": rms, "heuristic_us": base["us"], "torch_us": base["us_torch"],
                       "best": [{"us": us, "GBps": g, "block_n": c.block_n, "block_k": c.block_k,
                                 "warps": c.num_warps, "split_k": c.split_k} for us, g, c in rows[:5]]})
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
