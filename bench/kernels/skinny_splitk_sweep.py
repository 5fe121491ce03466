"""Short-prompt projections (M = 16-512 rows) by a split-K tensor-core GEMM, against cuBLAS (not a test).

At these M a projection should be bound by reading its weight, yet cuBLAS reads TinyLlama's QKV
weight at 0.9 TB/s at 32 tokens (kernel suite, H100): its tile grid is 20-80 programs on 132 SMs.
This kernel fills the machine by splitting K: grid (N tiles, K splits, M tiles). The splits'
float32 partials are summed either by a second kernel ("ws") or by the last program of each
output tile to arrive, counted by an atomic ticket ("sem": no second launch). "swap" computes
W x A^T so the weight rows, not the few tokens, fill the MMA's M side. Every config is checked
against torch.mm in float32 and timed like the kernel suite (one CUDA graph replay, cold L2,
median of 50).

    PYTHONPATH=. python3 bench/kernels/skinny_splitk_sweep.py [--seqs 32,128] [--out F]
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from braze.bench.suite.kernels import _flush_buffer, gpu_us, graphed  # noqa: E402

# (model, case) -> (N, K): the kernel suite's four projections
SHAPES = {
    ("tinyllama-1.1b", "qkv_proj"): (2560, 2048), ("tinyllama-1.1b", "o_proj"): (2048, 2048),
    ("tinyllama-1.1b", "gate_up"): (11264, 2048), ("tinyllama-1.1b", "down_proj"): (2048, 5632),
    ("qwen2.5-7b", "qkv_proj"): (4608, 3584), ("qwen2.5-7b", "o_proj"): (3584, 3584),
    ("qwen2.5-7b", "gate_up"): (37888, 3584), ("qwen2.5-7b", "down_proj"): (3584, 18944),
}


@triton.jit
def skinny_mm(a_ptr, w_ptr, c_ptr, ws_ptr, ticket_ptr, M, N, K, SPLIT_K,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
              SWAP: tl.constexpr, REDUCE: tl.constexpr):
    """c[M, N] = a[M, K] @ w[N, K]^T. REDUCE 0: no split (store c); 1: store this split's float32
    partial to ws[split, M, N]; 2: also take a ticket and, as the tile's last split, sum the
    partials into c and reset the ticket (so a CUDA graph replays it)."""
    pid_n, pid_k, pid_m = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    # rows past M or N are clamped, not masked: the loads stay unmasked; the stores mask them
    rm_c = tl.minimum(rm, M - 1).to(tl.int64)
    rn_c = tl.minimum(rn, N - 1).to(tl.int64)
    chunks = K // BLOCK_K
    per = tl.cdiv(chunks, SPLIT_K)
    lo = pid_k * per
    hi = tl.minimum(lo + per, chunks)
    if SWAP:
        acc = tl.zeros((BLOCK_N, BLOCK_M), tl.float32)
        w_ptrs = w_ptr + rn_c[:, None] * K + (lo * BLOCK_K + rk)[None, :]
        a_ptrs = a_ptr + rm_c[None, :] * K + (lo * BLOCK_K + rk)[:, None]
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
        a_ptrs = a_ptr + rm_c[:, None] * K + (lo * BLOCK_K + rk)[None, :]
        w_ptrs = w_ptr + rn_c[None, :] * K + (lo * BLOCK_K + rk)[:, None]
    for _ in range(lo, hi):
        a = tl.load(a_ptrs)
        w = tl.load(w_ptrs)
        if SWAP:
            acc = tl.dot(w, a, acc)
        else:
            acc = tl.dot(a, w, acc)
        a_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    if SWAP:
        acc = tl.trans(acc)
    mask = (rm < M)[:, None] & (rn < N)[None, :]
    offs = rm[:, None].to(tl.int64) * N + rn[None, :]
    if REDUCE == 0:
        tl.store(c_ptr + offs, acc.to(c_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(ws_ptr + pid_k * M * N + offs, acc, mask=mask)
        if REDUCE == 2:
            tile = pid_m * tl.num_programs(0) + pid_n
            tl.debug_barrier()  # every thread's partial is written before the ticket releases it
            ticket = tl.atomic_add(ticket_ptr + tile, 1, sem="acq_rel")
            if ticket == SPLIT_K - 1:
                total = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
                for s in range(0, SPLIT_K):
                    total += tl.load(ws_ptr + s * M * N + offs, mask=mask, other=0.0, cache_modifier=".cg")
                tl.store(c_ptr + offs, total.to(c_ptr.dtype.element_ty), mask=mask)
                tl.store(ticket_ptr + tile, 0)


@triton.jit
def sum_splits(ws_ptr, c_ptr, MN, SPLIT_K, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < MN
    total = tl.zeros((BLOCK,), tl.float32)
    for s in range(0, SPLIT_K):
        total += tl.load(ws_ptr + s * MN + offs, mask=mask, other=0.0)
    tl.store(c_ptr + offs, total.to(c_ptr.dtype.element_ty), mask=mask)


class _ReadFlush:
    """A cold but clean L2: reading 256 MB evicts everything and leaves only clean lines."""

    def __init__(self):
        self.buf = torch.ones(64 << 20, dtype=torch.float32, device="cuda")
        self.out = torch.empty((), dtype=torch.float32, device="cuda")

    def zero_(self):  # the name gpu_us calls
        torch.sum(self.buf, dim=0, out=self.out)


def launcher(a, w, c, cfg: dict):
    """A closure running one config: (block_m, block_n, block_k, warps, stages, swap, split, reduce)."""
    M, K = a.shape
    N = w.shape[0]
    bm, bn, bk, warps, stages, swap, split, reduce = (cfg[k] for k in
                                                      ("block_m", "block_n", "block_k", "num_warps", "num_stages",
                                                       "swap", "split_k", "reduce"))
    grid = (triton.cdiv(N, bn), split, triton.cdiv(M, bm))
    mode = 0 if split == 1 else (1 if reduce == "ws" else 2)
    ws = torch.empty(split * M * N, dtype=torch.float32, device=a.device)
    tickets = torch.zeros(grid[0] * grid[2], dtype=torch.int32, device=a.device)

    def run():
        skinny_mm[grid](a, w, c, ws, tickets, M, N, K, split, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk,
                        SWAP=swap, REDUCE=mode, num_warps=warps, num_stages=stages)
        if mode == 1:
            sum_splits[(triton.cdiv(M * N, 1024),)](ws, c, M * N, split, BLOCK=1024, num_warps=4)
    return run


def candidates(M: int, N: int, K: int, sms: int) -> list[dict]:
    out = []
    # pruned by what a weight stream needs: 16-byte rows of 128-256 weights in flight, one M tile
    # (M <= 32) or two; swap needs 64+ weight rows for the MMA's M side
    bms = [16] if M <= 16 else [32] if M <= 32 else [64, 128]
    for bm, bn, bk, swap in itertools.product(bms, (32, 64, 128), (128, 256), (False, True)):
        if K % bk or (swap and bn < 64):
            continue
        warps = 8 if bn * bm >= 128 * 64 else 4
        stages = 4 if bk == 128 else 3
        tiles = triton.cdiv(N, bn) * triton.cdiv(M, bm)
        fill = max(1, math.ceil(sms / tiles))  # splits for one full wave
        for rule, split in (("1", 1), ("fill", fill), ("2fill", 2 * fill)):
            if split > K // bk or (rule != "1" and split == 1) or (rule == "2fill" and fill == 1):
                continue
            for reduce in (("none",) if split == 1 else ("ws", "sem")):
                out.append(dict(block_m=bm, block_n=bn, block_k=bk, num_warps=warps, num_stages=stages, swap=swap,
                                split_k=split, split_rule=rule, reduce=reduce))
    return out


def name(cfg: dict) -> str:
    """The config's family: its split is named by rule (1, one wave, two waves), not count, so one
    name means the same choice on every shape."""
    split = "" if cfg["split_k"] == 1 else f"-{cfg['reduce']}"
    return (f"{'swap' if cfg['swap'] else 'dot'}_{cfg['block_m']}x{cfg['block_n']}x{cfg['block_k']}"
            f"_w{cfg['num_warps']}s{cfg['num_stages']}_k{cfg['split_rule']}{split}")


@triton.jit
def _nothing(x_ptr):
    pass


def _empty_graph():
    x = torch.empty(1, device="cuda")
    return graphed(lambda: _nothing[(1,)](x))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/skinny-splitk-sweep.json")
    ap.add_argument("--seqs", default="32,128")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--flush", choices=("dirty", "clean"), default="dirty",
                    help="dirty: zero a 256 MB buffer before each replay, as the kernel suite does (L2 left "
                         "full of dirty lines the kernel's misses must write back); clean: read one instead")
    args = ap.parse_args()
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    flush = _flush_buffer("cuda") if args.flush == "dirty" else _ReadFlush()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows = []
    for seq in map(int, args.seqs.split(",")):
        for (model, case), (N, K) in SHAPES.items():
            a = torch.randn(seq, K, device="cuda", dtype=dtype)
            w = torch.randn(N, K, device="cuda", dtype=dtype) / K ** 0.5
            want = (a.float() @ w.float().t())
            c = torch.empty(seq, N, device="cuda", dtype=dtype)
            lib = gpu_us(graphed(lambda: torch.mm(a, w.t(), out=c)), args.repeats, flush)
            lib_err = ((c.float() - want).abs().max() / want.abs().max()).item()
            results = {"library": {"us": lib, "rel_err": lib_err}}
            for cfg in candidates(seq, N, K, sms):
                try:
                    run = launcher(a, w, c, cfg)
                    c.zero_()
                    run()
                    torch.cuda.synchronize()
                    err = ((c.float() - want).abs().max() / want.abs().max()).item()
                    us = gpu_us(graphed(run), args.repeats, flush)
                    results[name(cfg)] = {"us": us, "rel_err": err, **cfg}
                except Exception as e:  # noqa: BLE001  (a config that does not compile: the sweep goes on)
                    results[name(cfg)] = {"us": float("inf"), "error": f"{type(e).__name__}: {str(e)[:160]}"}
            ok = {k: v for k, v in results.items() if k != "library" and v.get("rel_err", 1) < 2e-2}
            best = min(ok, key=lambda k: ok[k]["us"]) if ok else None
            mb = N * K * a.element_size() / 1e6
            row = {"model": model, "case": case, "seq": seq, "N": N, "K": K, "weight_MB": mb, "library_us": lib,
                   "best": best, "best_us": ok[best]["us"] if best else None, "configs": results}
            rows.append(row)
            if best:
                print(f"{model:15s} {case:10s} seq {seq:4d}: cuBLAS {lib:7.1f} us ({mb / lib:5.2f} TB/s)  best {best} "
                      f"{ok[best]['us']:7.1f} us ({mb / ok[best]['us']:5.2f} TB/s) = {lib / ok[best]['us']:.2f}x", flush=True)
            bad = [k for k, v in results.items() if v.get("rel_err", 0) >= 2e-2]
            if bad:
                print(f"   {len(bad)} configs failed the check, e.g. {bad[:3]}", flush=True)
    empty = gpu_us(_empty_graph(), args.repeats, flush)
    print(f"an empty kernel's graph replay: {empty:.1f} us (flush {args.flush})")
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "triton": triton.__version__,
              "dtype": args.dtype, "flush": args.flush, "empty_kernel_us": empty, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    # which config is best most often, and its geomean vs cuBLAS over all shapes
    for seq in sorted({r["seq"] for r in rows}):
        these = [r for r in rows if r["seq"] == seq]
        names = set.intersection(*[{k for k, v in r["configs"].items() if v.get("rel_err", 1) < 2e-2} for r in these])
        scored = sorted(((math.exp(sum(math.log(r["library_us"] / r["configs"][n]["us"]) for r in these) / len(these)),
                          n) for n in names if n != "library"), reverse=True)
        best = math.exp(sum(math.log(r["library_us"] / r["best_us"]) for r in these if r["best_us"]) / len(these))
        print(f"seq {seq}: per-shape best {best:.3f}x cuBLAS (geomean)")
        for g, n in scored[:6]:
            print(f"seq {seq}: one config for all shapes: {n} geomean {g:.3f}x cuBLAS")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
