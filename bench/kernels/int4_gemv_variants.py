"""How should an int4 decode GEMV be written in Triton? Hand-written variants of y = x @ dequant(W)^T
at M = 1 (int4, group 128, zero points: braze's packed format, byte j = weights 2j | 2j+1 << 4),
each checked against torch and timed the way decode runs them: R launches with distinct weights
(R x bytes well past L2) replayed from one CUDA graph; time per GEMV = replay / R. int8 (one scale
a row) and bf16 kernels of the same structure, and cuBLAS on bf16, are the peers. Not a test.

  joined    the generator's old form: nibbles interleaved back with tl.join + reshape to [BN, BK]
  split2d   [BN, BK/2] bytes against the activations split into even / odd (tl.split), scales
            broadcast to [BN, BK/2]
  group3d   [BN, BK/g, g/2] bytes: products summed within each group first, then one scale and
            one min per group (no broadcast of the scales), activations split by tl.split
  strided3d group3d with the even and odd activations loaded directly (stride-2 loads, no split)
  *_magic   nibbles (and int8 values) made floats by bit tricks instead of int->float conversions
            (first H100 run: every int4 variant was no faster than int8 at half the bytes)
  words     int32 words of 8 nibbles, each made a float by one logic op in place (no shifts or
            byte extraction), one scale and min per word: ~3 instructions a weight instead of ~9,
            and no faster: the int4 GEMV is bound by each program's load latency, not by issue
  revsplitk gemlite's GEMV_REVSPLITK: weights repacked K-major (int32 [K/8, N]), many programs
            of BLOCK_K weights x BLOCK_N columns, float32 atomics into a zeroed output
            (braze/codegen/triton/gemv_revsplitk.py). Timed three ways: _f32 = memset + GEMV
            (float32 out), _bf16 = GEMV + a cast kernel that also re-zeroes the workspace (the
            model dtype, no memset) and _gemv_only = the GEMV alone (wrong sums, a lower bound). The
            one-launch form with the model's fusions is generated (matmul_revsplitk.py) and timed
            in the decode step: `bash bench/gpu_sweep.sh rsstep`

    python3 bench/kernels/int4_gemv_variants.py --out F [--kernels revsplitk,int4,int8,bf16]
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from braze.codegen.triton.gemv_revsplitk import (RevSplitKConfig, gemv_revsplitk,  # noqa: E402
                                                 gemv_revsplitk_cast, repack_kmajor)

GROUP = 128


@triton.jit
def int4_joined(x, w, s, m, out, N, K: tl.constexpr, G: tl.constexpr, GROUP: tl.constexpr,
                BN: tl.constexpr, BK: tl.constexpr):
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    bp = w + cols.to(tl.int64)[:, None] * (K // 2)
    acc = tl.zeros([BN, BK], tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(x + k0 + tl.arange(0, BK)).to(tl.float32)[None, :]
        qb = tl.load(bp + tl.max_contiguous(tl.multiple_of(k0 // 2 + tl.arange(0, BK // 2), BK // 2), BK // 2)[None, :])
        q = tl.reshape(tl.join((qb & 15).to(tl.float32), (qb >> 4).to(tl.float32)), (BN, BK))
        gi = (k0 // GROUP + tl.arange(0, BK // GROUP))[None, :]
        sg = tl.load(s + cols[:, None] * G + gi).to(tl.float32)
        mg = tl.load(m + cols[:, None] * G + gi).to(tl.float32)
        sc = tl.reshape(tl.broadcast_to(sg[:, :, None], (BN, BK // GROUP, GROUP)), (BN, BK))
        mc = tl.reshape(tl.broadcast_to(mg[:, :, None], (BN, BK // GROUP, GROUP)), (BN, BK))
        acc += a * (q * sc + mc)
    tl.store(out + cols, tl.sum(acc, axis=1).to(tl.bfloat16))


@triton.jit
def int4_split2d(x, w, s, m, out, N, K: tl.constexpr, G: tl.constexpr, GROUP: tl.constexpr,
                 BN: tl.constexpr, BK: tl.constexpr):
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    bp = w + cols.to(tl.int64)[:, None] * (K // 2)
    acc = tl.zeros([BN, BK // 2], tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(x + k0 + tl.arange(0, BK)).to(tl.float32)
        ae, ao = tl.split(tl.reshape(a, (BK // 2, 2)))
        ae, ao = ae[None, :], ao[None, :]
        qb = tl.load(bp + tl.max_contiguous(tl.multiple_of(k0 // 2 + tl.arange(0, BK // 2), BK // 2), BK // 2)[None, :])
        dq = ae * (qb & 15).to(tl.float32) + ao * (qb >> 4).to(tl.float32)
        gi = (k0 // GROUP + tl.arange(0, BK // GROUP))[None, :]
        sg = tl.load(s + cols[:, None] * G + gi).to(tl.float32)
        mg = tl.load(m + cols[:, None] * G + gi).to(tl.float32)
        sc = tl.reshape(tl.broadcast_to(sg[:, :, None], (BN, BK // GROUP, GROUP // 2)), (BN, BK // 2))
        mc = tl.reshape(tl.broadcast_to(mg[:, :, None], (BN, BK // GROUP, GROUP // 2)), (BN, BK // 2))
        acc += dq * sc + (ae + ao) * mc
    tl.store(out + cols, tl.sum(acc, axis=1).to(tl.bfloat16))


@triton.jit
def int4_group3d(x, w, s, m, out, N, K: tl.constexpr, G: tl.constexpr, GROUP: tl.constexpr,
                 BN: tl.constexpr, BK: tl.constexpr):
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    bp = w + cols.to(tl.int64)[:, None, None] * (K // 2)
    jj = tl.arange(0, BK // GROUP)[:, None] * (GROUP // 2) + tl.arange(0, GROUP // 2)[None, :]
    acc = tl.zeros([BN, BK // GROUP], tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(x + k0 + tl.arange(0, BK)).to(tl.float32)
        ae, ao = tl.split(tl.reshape(a, (BK // GROUP, GROUP // 2, 2)))
        qb = tl.load(bp + k0 // 2 + jj[None, :, :])
        dq = tl.sum(ae[None] * (qb & 15).to(tl.float32) + ao[None] * (qb >> 4).to(tl.float32), axis=2)
        asum = tl.sum(ae + ao, axis=1)[None, :]
        gi = (k0 // GROUP + tl.arange(0, BK // GROUP))[None, :]
        sg = tl.load(s + cols[:, None] * G + gi).to(tl.float32)
        mg = tl.load(m + cols[:, None] * G + gi).to(tl.float32)
        acc += dq * sg + asum * mg
    tl.store(out + cols, tl.sum(acc, axis=1).to(tl.bfloat16))


@triton.jit
def int4_strided3d(x, w, s, m, out, N, K: tl.constexpr, G: tl.constexpr, GROUP: tl.constexpr,
                   BN: tl.constexpr, BK: tl.constexpr):
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    bp = w + cols.to(tl.int64)[:, None, None] * (K // 2)
    jj = tl.arange(0, BK // GROUP)[:, None] * (GROUP // 2) + tl.arange(0, GROUP // 2)[None, :]
    acc = tl.zeros([BN, BK // GROUP], tl.float32)
    for k0 in range(0, K, BK):
        ae = tl.load(x + k0 + 2 * jj).to(tl.float32)
        ao = tl.load(x + k0 + 2 * jj + 1).to(tl.float32)
        qb = tl.load(bp + k0 // 2 + jj[None, :, :])
        dq = tl.sum(ae[None] * (qb & 15).to(tl.float32) + ao[None] * (qb >> 4).to(tl.float32), axis=2)
        asum = tl.sum(ae + ao, axis=1)[None, :]
        gi = (k0 // GROUP + tl.arange(0, BK // GROUP))[None, :]
        sg = tl.load(s + cols[:, None] * G + gi).to(tl.float32)
        mg = tl.load(m + cols[:, None] * G + gi).to(tl.float32)
        acc += dq * sg + asum * mg
    tl.store(out + cols, tl.sum(acc, axis=1).to(tl.bfloat16))


@triton.jit
def _nibbles_f32(qb):
    """(low, high) nibbles of uint8 bytes as float32 without int->float conversions (a quarter of
    the FMA rate on sm_90): 0x4B000000 | q is the float 2^23 + q, exactly, so one logic op and one
    subtraction per weight."""
    qi = qb.to(tl.int32)
    lo = ((qi & 15) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
    hi = ((qi >> 4) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
    return lo, hi


@triton.jit
def int4_joined_magic(x, w, s, m, out, N, K: tl.constexpr, G: tl.constexpr, GROUP: tl.constexpr,
                      BN: tl.constexpr, BK: tl.constexpr):
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    bp = w + cols.to(tl.int64)[:, None] * (K // 2)
    acc = tl.zeros([BN, BK], tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(x + k0 + tl.arange(0, BK)).to(tl.float32)[None, :]
        qb = tl.load(bp + tl.max_contiguous(tl.multiple_of(k0 // 2 + tl.arange(0, BK // 2), BK // 2), BK // 2)[None, :])
        lo, hi = _nibbles_f32(qb)
        q = tl.reshape(tl.join(lo, hi), (BN, BK))
        gi = (k0 // GROUP + tl.arange(0, BK // GROUP))[None, :]
        sg = tl.load(s + cols[:, None] * G + gi).to(tl.float32)
        mg = tl.load(m + cols[:, None] * G + gi).to(tl.float32)
        sc = tl.reshape(tl.broadcast_to(sg[:, :, None], (BN, BK // GROUP, GROUP)), (BN, BK))
        mc = tl.reshape(tl.broadcast_to(mg[:, :, None], (BN, BK // GROUP, GROUP)), (BN, BK))
        acc += a * (q * sc + mc)
    tl.store(out + cols, tl.sum(acc, axis=1).to(tl.bfloat16))


@triton.jit
def int4_split2d_magic(x, w, s, m, out, N, K: tl.constexpr, G: tl.constexpr, GROUP: tl.constexpr,
                       BN: tl.constexpr, BK: tl.constexpr):
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    bp = w + cols.to(tl.int64)[:, None] * (K // 2)
    acc = tl.zeros([BN, BK // 2], tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(x + k0 + tl.arange(0, BK)).to(tl.float32)
        ae, ao = tl.split(tl.reshape(a, (BK // 2, 2)))
        ae, ao = ae[None, :], ao[None, :]
        qb = tl.load(bp + tl.max_contiguous(tl.multiple_of(k0 // 2 + tl.arange(0, BK // 2), BK // 2), BK // 2)[None, :])
        lo, hi = _nibbles_f32(qb)
        dq = ae * lo + ao * hi
        gi = (k0 // GROUP + tl.arange(0, BK // GROUP))[None, :]
        sg = tl.load(s + cols[:, None] * G + gi).to(tl.float32)
        mg = tl.load(m + cols[:, None] * G + gi).to(tl.float32)
        sc = tl.reshape(tl.broadcast_to(sg[:, :, None], (BN, BK // GROUP, GROUP // 2)), (BN, BK // 2))
        mc = tl.reshape(tl.broadcast_to(mg[:, :, None], (BN, BK // GROUP, GROUP // 2)), (BN, BK // 2))
        acc += dq * sc + (ae + ao) * mc
    tl.store(out + cols, tl.sum(acc, axis=1).to(tl.bfloat16))


@triton.jit
def int4_words(x, w, s, m, out, N, K: tl.constexpr, G: tl.constexpr, GROUP: tl.constexpr,
               BN: tl.constexpr, BK: tl.constexpr):
    """int32 words, bit-trick floats, one scale and min per word (tried in the generator: H100 runs
    measured it slower than the join, bench/results/int4-gemv-variants-h100.json)."""
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    wp = w.to(tl.pointer_type(tl.int32), bitcast=True) + cols.to(tl.int64)[:, None] * (K // 8)
    acc = tl.zeros([BN, BK // 8], tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(x + k0 + tl.arange(0, BK)).to(tl.float32)
        a_e, a_o = tl.split(tl.reshape(a, (BK // 8, 4, 2)))
        a_e0, a_e1 = tl.split(tl.reshape(a_e, (BK // 8, 2, 2)))
        a_o0, a_o1 = tl.split(tl.reshape(a_o, (BK // 8, 2, 2)))
        a0, a4 = tl.split(a_e0)
        a2, a6 = tl.split(a_e1)
        a1, a5 = tl.split(a_o0)
        a3, a7 = tl.split(a_o1)
        a_sum = (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7)[None, :]
        words = tl.max_contiguous(tl.multiple_of(k0 // 8 + tl.arange(0, BK // 8), BK // 8), BK // 8)[None, :]
        qw = tl.load(wp + words)
        qh = qw >> 16
        dq = a0[None, :] * (((qw & 15) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0)
        dq += (a1 * 0.0625)[None, :] * (((qw & 240) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0)
        dq += (a2 * 0.00390625)[None, :] * (((qw & 3840) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0)
        dq += (a3 * 0.000244140625)[None, :] * (((qw & 61440) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0)
        dq += a4[None, :] * (((qh & 15) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0)
        dq += (a5 * 0.0625)[None, :] * (((qh & 240) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0)
        dq += (a6 * 0.00390625)[None, :] * (((qh & 3840) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0)
        dq += (a7 * 0.000244140625)[None, :] * (((qh & 61440) | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0)
        sc = tl.load(s + cols[:, None] * G + words * 8 // GROUP).to(tl.float32)
        mc = tl.load(m + cols[:, None] * G + words * 8 // GROUP).to(tl.float32)
        acc += dq * sc + a_sum * mc
    tl.store(out + cols, tl.sum(acc, axis=1).to(tl.bfloat16))


@triton.jit
def int8_magic(x, w, s, out, N, K: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """int8_rows with q + 128 as the float 2^23 + q + 128 (xor 0x80 then or the exponent bits)."""
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    bp = w + cols.to(tl.int64)[:, None] * K
    acc = tl.zeros([BN, BK], tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(x + k0 + tl.arange(0, BK)).to(tl.float32)[None, :]
        q = tl.load(bp + k0 + tl.arange(0, BK)[None, :]).to(tl.uint8, bitcast=True).to(tl.int32)
        acc += a * (((q ^ 0x80) | 0x4B000000).to(tl.float32, bitcast=True) - 8388736.0)
    tl.store(out + cols, (tl.sum(acc, axis=1) * tl.load(s + cols)).to(tl.bfloat16))


@triton.jit
def int8_rows(x, w, s, out, N, K: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    bp = w + cols.to(tl.int64)[:, None] * K
    acc = tl.zeros([BN, BK], tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(x + k0 + tl.arange(0, BK)).to(tl.float32)[None, :]
        acc += a * tl.load(bp + k0 + tl.arange(0, BK)[None, :]).to(tl.float32)
    tl.store(out + cols, (tl.sum(acc, axis=1) * tl.load(s + cols)).to(tl.bfloat16))


@triton.jit
def bf16_rows(x, w, out, N, K: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    cols = tl.program_id(0) * BN + tl.arange(0, BN)
    bp = w + cols.to(tl.int64)[:, None] * K
    acc = tl.zeros([BN, BK], tl.float32)
    for k0 in range(0, K, BK):
        a = tl.load(x + k0 + tl.arange(0, BK)).to(tl.float32)[None, :]
        acc += a * tl.load(bp + k0 + tl.arange(0, BK)[None, :]).to(tl.float32)
    tl.store(out + cols, tl.sum(acc, axis=1).to(tl.bfloat16))


INT4 = {"joined": int4_joined, "split2d": int4_split2d, "words": int4_words}
SHAPES = [(2048, 2560), (2048, 11264), (5632, 2048)]  # TinyLlama QKV, gate/up, down
# what the model fuses around each GEMV: the input norm before QKV and gate/up, SiLU*mul and the residual around down
L2_DEFEAT_BYTES = 400 << 20


def graph_us(launch, copies: int, replays: int = 30) -> float:
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for _ in range(2):
            launch()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        launch()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        g.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / copies)
    return statistics.median(times)


def weights(n: int, k: int, copies: int, gen):
    from braze.quant.formats import quantize_int4, quantize_int8
    out = []
    for _ in range(copies):
        w = torch.randn(n, k, device="cuda", generator=gen) * k ** -0.5
        q4, q8 = quantize_int4(w, GROUP, zero_point=True), quantize_int8(w)
        out.append({"bf16": w.bfloat16(), "q4": q4, "q8": q8})
    return out


# revsplitK: (BLOCK_N, warps) with BLOCK_N / (32 x warps) = 2, 4 or 8 columns a thread. Triton keeps
# 16-byte loads (4 columns), so 2 puts warps along K (their row sums meet in shared memory) and 8
# gives a thread two 4-column groups; 4 is the form with no shared memory at all. Times (BLOCK_K,
# STEPS) from gemlite's small K slices (16 weights = 2 int32 rows) up to 128 weights a program.
RS_TILES = [(256, 2), (256, 4), (512, 2), (512, 4), (512, 8), (1024, 4), (1024, 8)]
RS_KS = [(16, 1), (32, 1), (64, 1), (32, 2), (32, 4)]
RS_CONFIGS = [RevSplitKConfig(bn, bk, steps, warps, magic) for (bn, warps), (bk, steps), magic
              in itertools.product(RS_TILES, RS_KS, (True, False))]
RS_FINALISTS = 3  # per nibble conversion, the fastest float32 configs also timed with a bf16 output


def rel_err(got, refs) -> float:
    return max(((o.float() - r).abs().max() / r.abs().max()).item() for o, r in zip(got, refs))


def revsplitk_runs(xs, ws, refs, n: int, copies: int) -> list[dict]:
    """Time every RS_CONFIGS entry as memset + GEMV (float32 out), then the fastest few also as
    GEMV + cast (bf16 out, the workspace re-zeroed by the cast) and as the GEMV alone."""
    kms = [repack_kmajor(w["q4"].packed, w["q4"].scales, w["q4"].mins, GROUP) for w in ws]
    accs = [torch.zeros(n, device="cuda") for _ in range(copies)]
    outs = [torch.empty(n, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
    ws32 = torch.zeros(n, device="cuda")  # one workspace, as a model's GEMVs would share it
    runs = []

    def record(kernel, cfg, launch, got):
        try:
            launch()
            err = rel_err(got, refs)
            us = graph_us(launch, copies) if err < 2e-2 else None
        except Exception as e:  # noqa: BLE001 - one config failing must not stop the others
            err, us = None, None
            print(f"  {kernel} {cfg} failed: {type(e).__name__}: {str(e)[:100]}")
        runs.append({"kernel": kernel, "bn": cfg.block_n, "bk": cfg.block_k * cfg.steps, "chunk_k": cfg.block_k,
                     "steps": cfg.steps, "warps": cfg.warps, "magic": cfg.magic, "us": us, "rel_err": err})

    for cfg in RS_CONFIGS:
        if not cfg.fits(GROUP):
            continue

        def f32(cfg=cfg):
            for x, km, acc in zip(xs, kms, accs):
                acc.zero_()
                gemv_revsplitk(x, km, acc, cfg)
        record("revsplitk_f32", cfg, f32, accs)
    for magic in (True, False):
        timed = [r for r in runs if r["us"] is not None and r["magic"] == magic]
        for r in sorted(timed, key=lambda r: r["us"])[:RS_FINALISTS]:
            cfg = RevSplitKConfig(r["bn"], r["chunk_k"], r["steps"], r["warps"], magic)

            def bf16(cfg=cfg):
                for x, km, o in zip(xs, kms, outs):
                    gemv_revsplitk_cast(x, km, ws32, o, cfg)

            def gemv_only(cfg=cfg):
                for x, km, acc in zip(xs, kms, accs):
                    gemv_revsplitk(x, km, acc, cfg)
            record("revsplitk_bf16", cfg, bf16, outs)
            # the GEMV alone keeps adding into accs: its sums are not checked (rel_err None)
            runs.append({"kernel": "revsplitk_gemv_only", "bn": cfg.block_n, "bk": cfg.block_k * cfg.steps,
                         "chunk_k": cfg.block_k, "steps": cfg.steps, "warps": cfg.warps, "magic": magic,
                         "us": graph_us(gemv_only, copies), "rel_err": None})
    return runs


KERNEL_SETS = ("revsplitk", "int4", "int8", "bf16")


def main(argv=None):
    ap = argparse.ArgumentParser(description="int4 decode GEMV variants at TinyLlama's shapes (CUDA only)")
    ap.add_argument("--out", default=None, help="JSON report, rewritten after each shape")
    ap.add_argument("--kernels", default=",".join(KERNEL_SETS),
                    help=f"comma list of {', '.join(KERNEL_SETS)} (cuBLAS bf16 is always timed)")
    args = ap.parse_args(argv)
    kernels = set(args.kernels.split(","))
    if kernels - set(KERNEL_SETS):
        ap.error(f"unknown --kernels {sorted(kernels - set(KERNEL_SETS))}")
    if not torch.cuda.is_available():
        sys.exit("int4_gemv_variants.py times CUDA kernels from CUDA graphs: it needs a CUDA GPU")
    from braze.bench.ceilings import measure_copy_bandwidth
    bw = measure_copy_bandwidth("cuda")
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
              "copy_TBps": bw / 1e12, "shapes": []}
    gen = torch.Generator(device="cuda").manual_seed(0)
    for k, n in SHAPES:
        q4_bytes = n * k // 2 + 2 * 2 * n * (k // GROUP)
        copies = max(4, -(-L2_DEFEAT_BYTES // q4_bytes))
        ws = weights(n, k, copies, gen)
        xs = [torch.randn(k, device="cuda", generator=gen).bfloat16() for _ in range(copies)]
        outs = [torch.empty(n, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        refs = [(x.float() @ w["q4"].dequantize().T) for x, w in zip(xs[:2], ws[:2])]
        entry = {"K": k, "N": n, "int4_bytes": q4_bytes, "int4_floor_us": 1e6 * q4_bytes / bw,
                 "int8_floor_us": 1e6 * (n * k + 4 * n) / bw, "bf16_floor_us": 1e6 * 2 * n * k / bw, "runs": []}
        entry["cublas_bf16_us"] = graph_us(lambda: [torch.nn.functional.linear(x, w["bf16"]) for x, w in zip(xs, ws)],
                                           copies)
        g = k // GROUP
        bks = [bk for bk in (512, 1024, 2048) if k % bk == 0]
        if "revsplitk" in kernels:
            entry["runs"] += revsplitk_runs(xs, ws, refs, n, copies)
        for name, fn in (INT4.items() if "int4" in kernels else ()):
            for bn, bk, warps in itertools.product((2, 4, 8, 16), bks, (4, 8)):
                if not 512 <= bn * bk // 2 <= 16384:
                    continue

                def launch(fn=fn, bn=bn, bk=bk, warps=warps):
                    for x, w, o in zip(xs, ws, outs):
                        q = w["q4"]
                        fn[(triton.cdiv(n, bn),)](x, q.packed, q.scales, q.mins, o, n, k, g, GROUP, bn, bk,
                                                  num_warps=warps)
                try:
                    launch()
                    err = max(((o.float() - r).abs().max() / r.abs().max()).item() for o, r in zip(outs, refs))
                    us = graph_us(launch, copies) if err < 2e-2 else None
                except Exception as e:  # noqa: BLE001 - one variant failing must not stop the others
                    err, us = None, None
                    print(f"  {name} bn={bn} bk={bk} w={warps} failed: {type(e).__name__}: {str(e)[:100]}")
                entry["runs"].append({"kernel": f"int4_{name}", "bn": bn, "bk": bk, "warps": warps, "us": us,
                                      "rel_err": err})
        for bn, bk, warps in itertools.product((1, 2, 4, 8), [b for b in (512, 1024, 2048) if k % b == 0], (4, 8)):
            def launch8(bn=bn, bk=bk, warps=warps):
                for x, w, o in zip(xs, ws, outs):
                    int8_rows[(triton.cdiv(n, bn),)](x, w["q8"].packed, w["q8"].scales, o, n, k, bn, bk, num_warps=warps)

            def launch8m(bn=bn, bk=bk, warps=warps):
                for x, w, o in zip(xs, ws, outs):
                    int8_magic[(triton.cdiv(n, bn),)](x, w["q8"].packed, w["q8"].scales, o, n, k, bn, bk, num_warps=warps)

            def launch16(bn=bn, bk=bk, warps=warps):
                for x, w, o in zip(xs, ws, outs):
                    bf16_rows[(triton.cdiv(n, bn),)](x, w["bf16"], o, n, k, bn, bk, num_warps=warps)
            if "int8" in kernels:
                entry["runs"].append({"kernel": "int8_rows", "bn": bn, "bk": bk, "warps": warps,
                                      "us": graph_us(launch8, copies)})
                launch8m()
                r8 = xs[0].float() @ ws[0]["q8"].dequantize().T
                err8 = ((outs[0].float() - r8).abs().max() / r8.abs().max()).item()
                entry["runs"].append({"kernel": "int8_magic", "bn": bn, "bk": bk, "warps": warps, "rel_err": err8,
                                      "us": graph_us(launch8m, copies) if err8 < 2e-2 else None})
            if "bf16" in kernels:
                entry["runs"].append({"kernel": "bf16_rows", "bn": bn, "bk": bk, "warps": warps,
                                      "us": graph_us(launch16, copies)})
        best = {}
        for r in entry["runs"]:
            # the revsplitK kernels' best per nibble conversion (magic / i2f), the others' best per kernel
            name = r["kernel"] + ("" if "magic" not in r else "_magic" if r["magic"] else "_i2f")
            if r["us"] is not None and (name not in best or r["us"] < best[name]["us"]):
                best[name] = r
        entry["best"] = best
        floors = {"int4": entry["int4_floor_us"], "revsplitk": entry["int4_floor_us"], "int8": entry["int8_floor_us"],
                  "bf16": entry["bf16_floor_us"]}
        print(f"K={k} N={n}: cuBLAS bf16 {entry['cublas_bf16_us']:.2f} us", flush=True)
        for kern, r in sorted(best.items(), key=lambda kv: kv[1]["us"]):
            floor = floors[kern.split("_")[0]]
            print(f"  {kern:26} {r['us']:7.2f} us ({100 * floor / r['us']:3.0f}% of floor {floor:.2f}) "
                  f"bn={r['bn']} bk={r['bk']} w={r['warps']}" + (f" chunk={r['chunk_k']}" if "chunk_k" in r else ""),
                  flush=True)
        report["shapes"].append(entry)
        del ws, xs, outs
        torch.cuda.empty_cache()
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
