"""Paged vs slot (dense) Triton attention on the same K/V (not a test): what reading the cache
through a block table costs, and whether the paged decode result of a sequence changes with the
batch around it.

    PYTHONPATH=. .venv/bin/python bench/kernels/paged_attention_bench.py --out bench/results/paged-attention-cuda.json

Shapes: TinyLlama-1.1B attention (32 heads, 4 kv heads, head_dim 64, bfloat16), k|v in one cache
as build_llama lays it out ([S, 2*Hkv, C, D] dense; [blocks, 2*Hkv, 16, D] paged, each sequence's
blocks shuffled over the pool). Times are CUDA-graph replays (launch overhead excluded).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from braze.codegen.triton import compile_program  # noqa: E402
from braze.ir.builder import GraphBuilder  # noqa: E402
from braze.ir.interpret import attention_reference  # noqa: E402
from braze.passes.pipeline import lower  # noqa: E402

H, HKV, D, BLOCK = 32, 4, 64, 16
DEVICE, DTYPE = "cuda", "bfloat16"
TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def build(seqs, ctx, t_bound, paged: bool):
    b = GraphBuilder(symbols={"T": t_bound}, name="paged_bench" if paged else "slot_bench")
    qkv = b.input("qkv", ("T", (H + 2 * HKV) * D), DTYPE)
    shape = (seqs * ctx // BLOCK, 2 * HKV, BLOCK, D) if paged else (seqs, 2 * HKV, ctx, D)
    cache = b.input("cache", shape, DTYPE)
    table = b.input("block_table", (seqs, ctx // BLOCK), "int32") if paged else None
    out = b.attention(b.slice(qkv, 1, 0, H * D), b.slice(cache, 1, 0, HKV), b.slice(cache, 1, HKV, 2 * HKV),
                      b.input("slots", ("T",), "int64"), b.input("positions", ("T",), "int64"),
                      H, HKV, D, 1.0 / math.sqrt(D), table)
    return b.build({"out": out})


def runner(graph, feeds):
    program = lower(graph)
    tp = compile_program(program)
    (_, out_name), = program.outputs
    t = feeds["slots"].shape[0]
    out = torch.empty(t * H * D, dtype=TORCH_DTYPES[DTYPE], device=DEVICE)
    flat = {name: v.reshape(-1) for name, v in feeds.items()}
    flat[out_name] = out
    bufs = [flat[b.name] for b in program.buffers]
    return (lambda: tp.run(bufs, {"T": t})), out.view(t, H * D)


def timed(fn) -> float:
    import triton.testing
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench_cudagraph(fn, rep=100) * 1e3  # microseconds


def data(seqs, ctx, slots, positions, seed=0):
    """Dense feeds and the same K/V scattered into shuffled blocks (paged feeds)."""
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    t = len(slots)
    dense = torch.randn(seqs, 2 * HKV, ctx, D, device=DEVICE, generator=g).to(TORCH_DTYPES[DTYPE])
    per = ctx // BLOCK
    table = torch.randperm(seqs * per, device=DEVICE, generator=g).view(seqs, per).to(torch.int32)
    pool = torch.empty(seqs * per, 2 * HKV, BLOCK, D, device=DEVICE, dtype=TORCH_DTYPES[DTYPE])
    pool[table.long().view(-1)] = dense.view(seqs, 2 * HKV, per, BLOCK, D).permute(0, 2, 1, 3, 4).reshape(-1, 2 * HKV, BLOCK, D)
    common = {"qkv": torch.randn(t, (H + 2 * HKV) * D, device=DEVICE, generator=g).to(TORCH_DTYPES[DTYPE]),
              "slots": torch.tensor(slots, device=DEVICE), "positions": torch.tensor(positions, device=DEVICE)}
    return {**common, "cache": dense}, {**common, "cache": pool, "block_table": table}


def case(kind, seqs, ctx, slots, positions, t_bound):
    dense_feeds, paged_feeds = data(seqs, ctx, slots, positions)
    run_dense, out_dense = runner(build(seqs, ctx, t_bound, False), dense_feeds)
    run_paged, out_paged = runner(build(seqs, ctx, t_bound, True), paged_feeds)
    dense_us, paged_us = timed(run_dense), timed(run_paged)
    run_dense(), run_paged()
    q, cache = dense_feeds["qkv"][:, : H * D].float(), dense_feeds["cache"].float()
    want = attention_reference(q, cache[:, :HKV], cache[:, HKV:], dense_feeds["slots"], dense_feeds["positions"],
                               H, HKV, D, 1 / math.sqrt(D))
    row = {"kind": kind, "tokens": len(slots), "sequences": len(set(slots)), "context": ctx,
           "kv_rows_read": sum(p + 1 for p in positions) if kind == "decode" else None,
           "slot_us": round(dense_us, 2), "paged_us": round(paged_us, 2), "paged_over_slot": round(paged_us / dense_us, 3),
           "paged_max_err": (out_paged.float() - want).abs().max().item(),
           "slot_max_err": (out_dense.float() - want).abs().max().item()}
    print(json.dumps(row), flush=True)
    return row


def batch_invariance(ctx=2048, batch=64):
    """Sequence 0's decode output alone and in a batch of `batch` (same q row, same cache rows)."""
    both = data(batch, ctx, list(range(batch)), [ctx - 1 - 17 * i for i in range(batch)])
    result = {}
    for paged in (False, True):
        feeds, outs = both[1] if paged else both[0], []
        for n in (1, batch):
            step = {k: (v[:n] if k in ("qkv", "slots", "positions") else v) for k, v in feeds.items()}
            run, out = runner(build(batch, ctx, batch, paged), step)
            run()
            outs.append(out[0].clone())
        result["paged" if paged else "slot"] = bool(torch.equal(outs[0], outs[1]))
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    os.environ.setdefault("BRAZE_CACHE_DIR", "/tmp/braze_paged_attention_bench")
    rows = []
    for ctx in (512, 2048):
        for batch in (1, 8, 64):
            rows.append(case("decode", batch, ctx, list(range(batch)), [ctx - 1 - 7 * i for i in range(batch)],
                             max(batch, 16)))
    rows.append(case("prefill", 1, 2048, [0] * 512, list(range(512)), 512))
    rows.append(case("prefill", 1, 2048, [0] * 512, list(range(1536, 2048)), 512))
    rows.append(case("prefill", 4, 512, [s for s in range(4) for _ in range(128)], list(range(128)) * 4, 512))
    invariant = batch_invariance()
    print("decode output of a sequence alone == in a batch of 64:", invariant)
    result = {"device": torch.cuda.get_device_name(), "shapes": {"heads": H, "kv_heads": HKV, "head_dim": D,
                                                               "block_size": BLOCK, "dtype": DTYPE},
              "cases": rows, "batch_invariant_decode": invariant}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
