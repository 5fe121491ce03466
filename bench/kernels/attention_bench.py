"""Micro-benchmark of braze's Triton attention (not a test): decode GB/s of KV read and prefill
TFLOP/s, against torch scaled_dot_product_attention on the same (pre-gathered) data.

    PYTHONPATH=. .venv/bin/python bench/kernels/attention_bench.py            # defaults
    PYTHONPATH=. .venv/bin/python bench/kernels/attention_bench.py --sweep    # tuning knobs too

Shapes: Llama-3-8B-like attention (32 heads, 8 kv heads, head_dim 128, bfloat16), cache of
--ctx rows per slot. Decode: batch B tokens, one per slot, every token at position ctx-1 (and a
mixed-length batch). Prefill: T tokens of one sequence from position 0 (causal) and a chunk
continuing a sequence up to ctx. Times are CUDA-graph replays (launch overhead excluded).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from braze.codegen.triton import attention as attn_mod  # noqa: E402
from braze.codegen.triton import compile_program  # noqa: E402
from braze.ir.builder import GraphBuilder  # noqa: E402
from braze.ir.interpret import attention_reference  # noqa: E402
from braze.passes.pipeline import lower  # noqa: E402

H, HKV, D = 32, 8, 128


def build(slots_n, ctx, t_bound, dtype="bfloat16"):
    b = GraphBuilder(symbols={"T": t_bound}, name="attn_bench")
    qkv = b.input("qkv", ("T", (H + 2 * HKV) * D), dtype)  # q as a strided column slice, as in a model
    q = b.slice(qkv, 1, 0, H * D)
    kc = b.input("k_cache", (slots_n, HKV, ctx, D), dtype)
    vc = b.input("v_cache", (slots_n, HKV, ctx, D), dtype)
    out = b.attention(q, kc, vc, b.input("slots", ("T",), "int64"), b.input("positions", ("T",), "int64"),
                      H, HKV, D, 1.0 / math.sqrt(D))
    return b.build({"out": out})


def make_runner(graph, feeds, knobs):
    old = {k: getattr(attn_mod, k) for k in knobs}
    for k, v in knobs.items():
        setattr(attn_mod, k, v)
    try:
        program = lower(graph)
        tp = compile_program(program)
    finally:
        for k, v in old.items():
            setattr(attn_mod, k, v)
    assert [k.kind for k in program.kernels] == ["attention"], [k.kind for k in program.kernels]
    (_, out_name), = program.outputs
    t = feeds["slots"].shape[0]
    out = torch.empty(program.buffer(out_name).shape[1] * t, dtype=feeds["qkv"].dtype, device="cuda")
    flat = {name: v.view(-1) for name, v in feeds.items()}
    flat[out_name] = out
    bufs = [flat[b.name] for b in program.buffers]
    symbols = {"T": t}
    return (lambda: tp.run(bufs, symbols)), out.view(t, -1)


def timed(fn):
    import triton.testing
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench_cudagraph(fn, rep=100) * 1e-3  # seconds


def feeds_for(slots_n, ctx, slots, positions):
    g = torch.Generator(device="cuda").manual_seed(0)
    t = len(slots)
    return {"qkv": torch.randn(t, (H + 2 * HKV) * D, device="cuda", generator=g).bfloat16(),
            "k_cache": torch.randn(slots_n, HKV, ctx, D, device="cuda", generator=g).bfloat16(),
            "v_cache": torch.randn(slots_n, HKV, ctx, D, device="cuda", generator=g).bfloat16(),
            "slots": torch.tensor(slots, device="cuda"), "positions": torch.tensor(positions, device="cuda")}


def check(out, feeds):
    q = feeds["qkv"][:, : H * D]
    want = attention_reference(q.float(), feeds["k_cache"].float(), feeds["v_cache"].float(), feeds["slots"],
                               feeds["positions"], H, HKV, D, 1 / math.sqrt(D))
    return (out.float() - want.float()).abs().max().item()


def bench_decode(batch, ctx, knobs, lengths=None):
    lengths = lengths or [ctx] * batch
    slots, positions = list(range(batch)), [n - 1 for n in lengths]
    feeds = feeds_for(batch, ctx, slots, positions)
    run, out = make_runner(build(batch, ctx, max(batch, 16)), feeds, knobs)
    secs = timed(run)
    err = check(out, feeds)
    kv_bytes = sum(lengths) * HKV * D * 2 * 2  # K and V, bfloat16
    # sdpa on the same data (full-length batches only: sdpa has no per-sequence length here)
    sdpa = ""
    if len(set(lengths)) == 1:
        n = lengths[0]
        q = feeds["qkv"][:, : H * D].view(batch, H, 1, D)
        k, v = feeds["k_cache"][:, :, :n], feeds["v_cache"][:, :, :n]
        try:
            s_secs = timed(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
            sdpa = f"  sdpa {s_secs * 1e6:7.1f} us {kv_bytes / s_secs / 1e9:7.0f} GB/s"
        except Exception as e:  # noqa: BLE001
            sdpa = f"  sdpa failed: {type(e).__name__}"
    print(f"decode B={batch:3d} ctx={sum(lengths) // batch:5d}: {secs * 1e6:7.1f} us "
          f"{kv_bytes / secs / 1e9:7.0f} GB/s KV read  max|err| {err:.3g}{sdpa}  {knobs or ''}")


def bench_prefill(t, start, ctx, knobs):
    slots, positions = [0] * t, list(range(start, start + t))
    feeds = feeds_for(1, ctx, slots, positions)
    run, out = make_runner(build(1, ctx, t), feeds, knobs)
    secs = timed(run)
    err = check(out, feeds)
    flops = sum(4 * H * D * (p + 1) for p in positions)  # QK^T and PV over visible rows
    sdpa = ""
    if start == 0:
        q = feeds["qkv"][:, : H * D].view(t, H, D).transpose(0, 1)[None]
        k, v = feeds["k_cache"][:, :, :t], feeds["v_cache"][:, :, :t]
        s_secs = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
        sdpa = f"  sdpa(causal) {s_secs * 1e6:7.1f} us {flops / s_secs / 1e12:6.1f} TFLOP/s"
    print(f"prefill T={t:5d} from {start:5d}: {secs * 1e6:8.1f} us {flops / secs / 1e12:6.1f} TFLOP/s  "
          f"max|err| {err:.3g}{sdpa}  {knobs or ''}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--sweep", action="store_true", help="also try other block sizes / warps / splits")
    args = ap.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    os.environ.setdefault("BRAZE_CACHE_DIR", "/tmp/braze_attention_bench")
    ctx = args.ctx
    print(torch.cuda.get_device_name(), "ctx", ctx, "H/Hkv/D", H, HKV, D)
    for batch in (1, 4, 8, 16):
        bench_decode(batch, ctx, {})
    bench_decode(8, ctx, {}, lengths=[ctx, ctx // 2, 100, 1, ctx, 700, 33, ctx - 5])
    bench_decode(1, 8 * ctx, {})
    for t, start in ((512, 0), (2048, 0), (512, ctx - 512), (4096, 0)):
        bench_prefill(t, start, max(ctx, start + t), {})
    if args.sweep:
        for bn, w, st in ((32, 4, 2), (64, 4, 3), (64, 8, 2), (128, 8, 2), (128, 4, 3)):
            for batch in (1, 8):
                bench_decode(batch, ctx, dict(DECODE_BN=bn, DECODE_WARPS=w, DECODE_STAGES=st))
        for rows, per_sm in ((64, 2), (64, 4), (256, 2), (128, 1), (128, 4)):
            for batch in (1, 8):
                bench_decode(batch, ctx, dict(DECODE_MIN_ROWS_PER_SPLIT=rows, DECODE_PROGRAMS_PER_SM=per_sm))
        for bm, bn, w, st in ((64, 64, 4, 2), (64, 128, 4, 2), (128, 64, 8, 2), (128, 64, 8, 3),
                              (128, 128, 8, 2), (128, 32, 4, 3)):
            for t in (512, 2048):
                bench_prefill(t, 0, max(ctx, t),
                              dict(PREFILL_BM=bm, PREFILL_BN=bn, PREFILL_WARPS=w, PREFILL_STAGES=st))


if __name__ == "__main__":
    main()
