"""Decode-GEMV configs timed the way decode runs them (not a test): R matmuls of one layer shape, each
with its own weights (R x weight bytes well past L2), launched back to back inside one CUDA graph;
time per GEMV = replay time / R. F.linear (cuBLAS) is timed the same way as the peer.

    PYTHONPATH=. python3 bench/kernels/gemv_graph_sweep.py [--model tinyllama,llama3-8b] [--budget-s 240] [--out F]
        [--quant int8,int4-rtn-g128,fp8]

--quant sweeps the quantized GEMVs instead (each method's packed weights; cuBLAS on the bf16 weight
is still the peer): the candidates are sized by weight bytes a program reads per chunk.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import braze.codegen.triton.matmul as mm  # noqa: E402
from braze.bench.suite.kernels import gpu_us, graphed  # noqa: E402
from braze.ir.builder import GraphBuilder  # noqa: E402
from braze.passes.pipeline import lower  # noqa: E402
from braze.runtime.executable import Executable  # noqa: E402

SHAPES = {  # (K, N, RMSNorm prologue): QKV, O, gate/up, down, LM head
    "tinyllama": [(2048, 2560, True), (2048, 2048, False), (2048, 11264, True), (5632, 2048, False),
                  (2048, 32000, True)],
    "llama3-8b": [(4096, 6144, True), (4096, 4096, False), (4096, 28672, True), (14336, 4096, False)],
}
L2_DEFEAT_BYTES = 400 << 20


def candidates(K: int, N: int, wbytes: float = 2.0):
    """GEMV configs whose chunk (bn rows x bk weights) is 4-32 KiB of bf16, 2-16 KiB of int8/fp8 or
    1-8 KiB of int4 (packed weights: the same bk x bn tiles, fewer bytes)."""
    lo, hi = (4096, 32768) if wbytes >= 2 else (2048, 16384) if wbytes >= 1 else (1024, 8192)
    for bk, bn in itertools.product((256, 512, 1024, 2048, 4096), (1, 2, 4, 8, 16, 32)):
        chunk = bk * bn * wbytes
        if not lo <= chunk <= hi or bk > K:
            continue
        for warps in ((4,) if chunk <= lo else (8,) if chunk >= hi else (4, 8)):
            for split in (1, 2, 4):
                programs = -(-N // bn)
                if split > 1 and (programs >= 2 * 132 or K % (bk * split) or K // split < 2 * bk):
                    continue
                yield mm.MatmulConfig("gemv", 1, bn, bk, warps, 3, split)


def graph_time_us(fn, copies: int, replays: int = 20) -> float:
    """Median time of one call of fn (which launches `copies` kernels) replayed from a CUDA graph
    (a warm L2: the copies' distinct weights are what keep the reads in memory)."""
    return gpu_us(graphed(fn), replays, flush=None) / copies


def build(K: int, N: int, rms: bool, copies: int, quant: str | None = None):
    """`copies` independent y_i = [rms_norm](x_i) @ W_i^T: distinct inputs and weights, so neither
    CSE nor the horizontal (Q/K/V-style) concatenation merges them."""
    b = GraphBuilder(symbols={"T": 16}, name=f"gemv_{K}x{N}")
    gen = torch.Generator(device="cuda").manual_seed(0)
    outputs, feeds, weights = {}, {}, []
    for i in range(copies):
        x = b.input(f"x{i}", ("T", K), "bfloat16")
        w = (torch.randn(N, K, device="cuda", generator=gen) * K ** -0.5).to(torch.bfloat16)
        weights.append(w)
        h = b.rms_norm(x, b.weight(f"norm{i}", torch.ones(K, device="cuda", dtype=torch.bfloat16)), 1e-5) if rms else x
        outputs[f"y{i}"] = b.matmul(h, b.transpose(b.weight(f"w{i}", w)))
        feeds[f"x{i}"] = torch.randn(1, K, device="cuda").to(torch.bfloat16)
    graph = b.build(outputs)
    if quant:
        from braze.quant.methods import parse_method
        return lower(graph, quant=parse_method(quant)), feeds, weights
    return lower(graph), feeds, weights


def weight_bytes_read(program) -> int:
    """Bytes of the weights (packed, scales, mins) the program's matmuls read."""
    used = {v.buffer for k in program.kernels if k.kind == "matmul" for v in k.operands}
    return sum(t.numel() * t.element_size() for name, t in program.weights.items() if name in used)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tinyllama")
    ap.add_argument("--budget-s", type=float, default=240)
    ap.add_argument("--out", default=None)
    ap.add_argument("--quant", default="", help="comma-separated methods (int8, int4-rtn-g128, fp8): sweep those GEMVs")
    args = ap.parse_args(argv)
    from braze.bench.ceilings import measure_copy_bandwidth
    bandwidth = measure_copy_bandwidth("cuda")
    methods = [m for m in args.quant.split(",") if m] or [None]
    shapes = [(model, shape, method) for method in methods for model in args.model.split(",")
              for shape in SHAPES[model]]
    per_shape_s = args.budget_s / len(shapes)  # every shape gets its share, the heuristic always
    real = mm.matmul_config
    report = {"device": torch.cuda.get_device_name(), "copy_TBps": bandwidth / 1e12, "torch": torch.__version__,
              "shapes": []}
    for model, (K, N, rms), method in shapes:
        deadline = time.time() + per_shape_s
        wb = {None: 2.0, "int8": 1.0, "fp8": 1.0}.get(method, 0.5)
        copies = max(4, -(-L2_DEFEAT_BYTES // int(N * K * wb)))
        program, feeds, weights = build(K, N, rms, copies, method)
        wbytes = weight_bytes_read(program) / copies
        floor_us = wbytes / bandwidth * 1e6
        xs = [feeds[f"x{i}"] for i in range(copies)]
        torch_us = graph_time_us(lambda: [F.linear(x, w) for x, w in zip(xs, weights)], copies)
        heuristic = real(1, N, K, "bfloat16", weight_bytes=None if method is None else wb)
        rows = []
        for cfg in [heuristic] + [c for c in candidates(K, N, wb) if c != heuristic]:
            if rows and time.time() > deadline:
                break
            mm.matmul_config = lambda *a, cfg=cfg, **kw: cfg if a[0] == 1 else real(*a, **kw)
            try:
                exe = Executable(program, backend="triton", device="cuda")
                rows.append((graph_time_us(lambda: exe.run(feeds), copies), cfg))
            except Exception as e:  # noqa: BLE001  (out of resources etc.: one candidate, not the sweep)
                print("  failed", cfg, type(e).__name__, str(e)[:120])
            finally:
                mm.matmul_config = real
                torch.cuda.empty_cache()
        heur_us = rows[0][0] if rows else float("nan")
        rows.sort(key=lambda r: r[0])
        print(f"{method or 'bf16'} K={K} N={N} rms={rms} ({wbytes / 2**20:.1f} MiB, floor {floor_us:.2f} us): "
              f"heuristic {heur_us:.2f} us ({100 * floor_us / heur_us:.0f}%), F.linear bf16 {torch_us:.2f} us, "
              f"{len(rows)} configs", flush=True)
        for us, c in rows[:4]:
            print(f"   {us:7.2f} us {100 * floor_us / us:4.0f}%  bn={c.block_n} bk={c.block_k} w={c.num_warps} "
                  f"split={c.split_k}", flush=True)
        report["shapes"].append({"model": model, "method": method or "bf16", "K": K, "N": N, "rms": rms,
                                 "weight_bytes": wbytes, "floor_us": floor_us, "heuristic_us": heur_us,
                                 "torch_bf16_us": torch_us, "heuristic": heuristic.__dict__,
                                 "all": [{"us": us, **c.__dict__} for us, c in rows]})
        del program, feeds, weights
        torch.cuda.empty_cache()
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
