"""int4 decode GEMV in the K-major "revsplitK" form (gemlite's GEMV_REVSPLITK): the shared chunk
arithmetic (chunk_sums, chunk_sums_int8) that the generated GEMVs call (matmul_revsplitk.py, with
the model's prologue and epilogue in one launch), and a stand-alone GEMV for the benchmark.

braze's int4 weight (braze/quant/formats.py) is N-major: uint8 [N, K/2], byte j = weights 2j (low
nibble) | 2j+1 (high). Its GEMV has each program stream a few whole rows and reduce them across
warps at the end; on H100 that form is bound by load latency (24-43% of the byte roofline,
bench/NOTES.md "int4 is bound by latency"). This form instead:

  layout   words int32 [K/8, N]: word r of column n = weights 8r..8r+7 of row n, weight 8r+i in
           bits 4i..4i+3. That is braze's bytes 4r..4r+3 of the row read as one little-endian int32,
           so the repack is a view + transpose. Consecutive threads read consecutive columns
           (coalesced), and scales / mins are transposed to [G, N] for the same reason.
  grid     (cdiv(N, BLOCK_N), cdiv(K, BLOCK_K * STEPS)): many small programs, each over STEPS
           chunks of BLOCK_K weights (BLOCK_K divides the group, so a chunk has one scale and one
           min per column) and BLOCK_N columns. A chunk's K rows sit in each thread's registers,
           so the sum over K needs no shared memory; one chunk gives s * dot(x, q) + m * sum(x).
  output   tl.atomic_add of each program's column sums into a zeroed float32 vector. The model
           dtype needs a second pass: cast_and_zero writes it and re-zeroes the float32 workspace,
           so a step's GEMVs need no memset of their own.
  fused    matmul_revsplitk.py generates the form a model's GEMVs need, in one launch: the last
           K slice of each column tile to arrive (an atomic ticket) applies what needs whole sums
           (RMSNorm's row scale, the residual) and writes the model dtype.

Why instructions matter here: at H100's 2.75 TB/s copy rate int4 streams ~5.2e12 weights/s, and
132 SMs issue ~3e13 thread-instructions/s, so the kernel has ~5.7 instructions a weight before it
is issue-bound (the N-major GEMV needed ~9 and hid it behind latency). Nibbles become floats one
of two ways (MAGIC): int->float conversions (I2FP, slower than FMA on sm_90), or the exponent trick
0x4B000000 | (q << 4i) = the float 2^23 + q * 16^i exactly, minus 2^23, times x * 16^-i: one LOP3,
one FADD, one FFMA a weight plus one shift per four nibbles (sm_90 SASS: 4.0-5.4 a weight in all,
with the x chunk's conversions and the row sums).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl


@dataclass(frozen=True)
class KMajorInt4:
    """An int4 [N, K] weight in the revsplitK layout: w = q * s + m, or (q - 8) * s without mins."""

    words: torch.Tensor         # int32 [K/8, N]
    scales: torch.Tensor        # [G, N] (fp16 as quantized)
    mins: torch.Tensor | None   # [G, N] or None (symmetric)
    group: int
    n: int
    k: int


def repack_kmajor(packed: torch.Tensor, scales: torch.Tensor, mins: torch.Tensor | None, group: int) -> KMajorInt4:
    """braze's packed int4 (uint8 [N, K/2], scales/mins [N, G]) -> KMajorInt4 (one-time, at load)."""
    n, half = packed.shape
    k = 2 * half
    if k % 8 or group % 16:
        raise ValueError(f"revsplitK needs K % 8 == 0 and group % 16 == 0, got K={k}, group={group}")
    # bytes 4r..4r+3 of a row as one little-endian int32 hold weights 8r..8r+7 in nibble order
    words = packed.contiguous().view(torch.int32).t().contiguous()
    return KMajorInt4(words, scales.t().contiguous(), None if mins is None else mins.t().contiguous(), group, n, k)


@triton.jit
def _split8(v, R: tl.constexpr):
    """[8R] -> eight [R] vectors, the i-th holding elements 8r + i (three levels of tl.split)."""
    t = tl.reshape(v, (R, 2, 2, 2))
    e, o = tl.split(t)                      # bit 0 of i
    e0, e1 = tl.split(e)                    # bit 1
    o0, o1 = tl.split(o)
    x0, x4 = tl.split(e0)                   # bit 2
    x2, x6 = tl.split(e1)
    x1, x5 = tl.split(o0)
    x3, x7 = tl.split(o1)
    return x0, x1, x2, x3, x4, x5, x6, x7


@triton.jit
def _magic(wb, SHIFT: tl.constexpr, MASK: tl.constexpr):
    """The nibble (MASK 15) or byte (MASK 255) at bit SHIFT of words wb that already carry
    0x4B000000, masked in place (not shifted): the float 2^23 + q * 2^SHIFT, minus 2^23. The
    exponent bits are or-ed in once per word, so each value is one LOP3 with a single immediate
    (two immediates would take two: ptxas does not hoist a constant into a register)."""
    return ((wb & (0x4B000000 | (MASK << SHIFT))).to(tl.float32, bitcast=True) - 8388608.0)


@triton.jit
def _column_values(ptr, gp, nmask, EVEN_N: tl.constexpr):
    """The group values (scales or mins) at offsets gp of the chunk's columns, as float32."""
    if EVEN_N:
        v = tl.load(ptr + gp)
    else:
        v = tl.load(ptr + gp, mask=nmask, other=0.0)
    return v.to(tl.float32)


@triton.jit
def chunk_sums(xk, w, s, m, cols, nmask, k0, N, K, GROUP: tl.constexpr, BLOCK_K: tl.constexpr,
               HAS_MINS: tl.constexpr, MAGIC: tl.constexpr, EVEN_N: tl.constexpr, EVEN_K: tl.constexpr):
    """The [BLOCK_N] column sums of one chunk: xk [BLOCK_K] (float32, zero past K) against the
    chunk's K-major words at rows k0 / 8 .. (k0 + BLOCK_K) / 8, scaled (and shifted) by its group."""
    R: tl.constexpr = BLOCK_K // 8
    rows = k0 // 8 + tl.arange(0, R)
    wp = w + rows.to(tl.int64)[:, None] * N + cols[None, :]
    if EVEN_N and EVEN_K:
        wv = tl.load(wp)
    else:
        wv = tl.load(wp, mask=(rows[:, None] < K // 8) & nmask[None, :], other=0)
    x0, x1, x2, x3, x4, x5, x6, x7 = _split8(xk, R)
    if MAGIC:
        # nibbles 0-3 masked in place (q * 16^i, so x is scaled by 16^-i: exact), 4-7 the
        # same after one shift by 16 (the sign bits it drags in are masked off). One running
        # sum, so each weight is LOP3 + FADD + FFMA.
        wb = wv | 0x4B000000
        wh = (wv >> 16) | 0x4B000000
        d = _magic(wb, 0, 15) * x0[:, None]
        d += _magic(wb, 4, 15) * (x1 * 0.0625)[:, None]
        d += _magic(wb, 8, 15) * (x2 * 0.00390625)[:, None]
        d += _magic(wb, 12, 15) * (x3 * 0.000244140625)[:, None]
        d += _magic(wh, 0, 15) * x4[:, None]
        d += _magic(wh, 4, 15) * (x5 * 0.0625)[:, None]
        d += _magic(wh, 8, 15) * (x6 * 0.00390625)[:, None]
        d += _magic(wh, 12, 15) * (x7 * 0.000244140625)[:, None]
    else:
        # logical shifts (uint32), so each nibble is a shift + and, not a sign-extending extract
        wu = wv.to(tl.uint32, bitcast=True)
        d = (wu & 15).to(tl.float32) * x0[:, None]
        d += ((wu >> 4) & 15).to(tl.float32) * x1[:, None]
        d += ((wu >> 8) & 15).to(tl.float32) * x2[:, None]
        d += ((wu >> 12) & 15).to(tl.float32) * x3[:, None]
        d += ((wu >> 16) & 15).to(tl.float32) * x4[:, None]
        d += ((wu >> 20) & 15).to(tl.float32) * x5[:, None]
        d += ((wu >> 24) & 15).to(tl.float32) * x6[:, None]
        d += (wu >> 28).to(tl.float32) * x7[:, None]
    dot = tl.sum(d, axis=0)             # over the chunk's rows: in registers (R is per thread)
    xsum = tl.sum(xk, axis=0)
    # BLOCK_K divides GROUP: the whole chunk has one scale and one min per column
    # a chunk past K (last program of a ragged K) reads the last group: its x and q are 0
    gp = (tl.minimum(k0, K - 1) // GROUP) * N + cols
    sc = _column_values(s, gp, nmask, EVEN_N)
    if HAS_MINS:
        part = sc * dot + _column_values(m, gp, nmask, EVEN_N) * xsum
    else:
        part = sc * (dot - 8.0 * xsum)
    return part


@triton.jit
def chunk_sums_int8(xk, w, s, cols, nmask, k0, N, K, GROUP: tl.constexpr, BLOCK_K: tl.constexpr,
                    EVEN_N: tl.constexpr, EVEN_K: tl.constexpr):
    """chunk_sums for int8 weights in words int32 [K/4, N] (word r of column n = weights 4r..4r+3 of
    row n, braze's [N, K] bytes read four at a time): each byte is biased to u = q + 128 by one xor a
    word and made a float by _magic, int4's exponent trick (no I2F, a quarter-rate instruction on
    sm_90), then sum(x * q) = sum(x * u) - 128 * sum(x), times the chunk's group scale."""
    R: tl.constexpr = BLOCK_K // 4
    rows = k0 // 4 + tl.arange(0, R)
    wp = w + rows.to(tl.int64)[:, None] * N + cols[None, :]
    if EVEN_N and EVEN_K:
        wv = tl.load(wp)
    else:
        wv = tl.load(wp, mask=(rows[:, None] < K // 4) & nmask[None, :], other=0)
    t = tl.reshape(xk, (R, 2, 2))
    e, o = tl.split(t)                  # bit 0 of the byte's index
    x0, x2 = tl.split(e)                # bit 1
    x1, x3 = tl.split(o)
    wu = wv.to(tl.uint32, bitcast=True) ^ 0x80808080
    wb = wu | 0x4B000000
    wh = (wu >> 16) | 0x4B000000
    d = _magic(wb, 0, 255) * x0[:, None]
    d += _magic(wb, 8, 255) * (x1 * 0.00390625)[:, None]
    d += _magic(wh, 0, 255) * x2[:, None]
    d += _magic(wh, 8, 255) * (x3 * 0.00390625)[:, None]
    dot = tl.sum(d, axis=0) - 128.0 * tl.sum(xk, axis=0)
    return _column_values(s, (tl.minimum(k0, K - 1) // GROUP) * N + cols, nmask, EVEN_N) * dot


@triton.jit
def _slice_sums(x, w, s, m, cols, nmask, N, K, GROUP: tl.constexpr, BLOCK_N: tl.constexpr,
                BLOCK_K: tl.constexpr, STEPS: tl.constexpr, HAS_MINS: tl.constexpr, MAGIC: tl.constexpr,
                EVEN_N: tl.constexpr, EVEN_K: tl.constexpr):
    """Column sums [BLOCK_N] of x[k] * w[n, k] over this program's K slice (STEPS chunks)."""
    acc = tl.zeros([BLOCK_N], tl.float32)
    for st in tl.static_range(STEPS):
        k0 = (tl.program_id(1) * STEPS + st) * BLOCK_K
        kk = k0 + tl.arange(0, BLOCK_K)
        if EVEN_K:
            xk = tl.load(x + kk).to(tl.float32)
        else:
            xk = tl.load(x + kk, mask=kk < K, other=0.0).to(tl.float32)
        acc += chunk_sums(xk, w, s, m, cols, nmask, k0, N, K, GROUP, BLOCK_K, HAS_MINS, MAGIC, EVEN_N, EVEN_K)
    return acc


@triton.jit
def int4_gemv_revsplitk(x, w, s, m, out, N, K, GROUP: tl.constexpr, BLOCK_N: tl.constexpr,
                        BLOCK_K: tl.constexpr, STEPS: tl.constexpr, HAS_MINS: tl.constexpr,
                        MAGIC: tl.constexpr, EVEN_N: tl.constexpr, EVEN_K: tl.constexpr):
    """out[n] += sum over this program's K slice of x[k] * w[n, k] (float32 atomics)."""
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = cols < N
    acc = _slice_sums(x, w, s, m, cols, nmask, N, K, GROUP, BLOCK_N, BLOCK_K, STEPS, HAS_MINS, MAGIC,
                      EVEN_N, EVEN_K)
    # relaxed: nothing reads out before the kernel ends, so no fences around each atomic
    if EVEN_N:
        tl.atomic_add(out + cols, acc, sem="relaxed")
    else:
        tl.atomic_add(out + cols, acc, mask=nmask, sem="relaxed")


@triton.jit
def cast_and_zero(ws, out, N, BLOCK: tl.constexpr):
    """out = ws in out's dtype, then ws = 0 (ready for the next GEMV's atomics)."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < N
    v = tl.load(ws + i, mask=mask, other=0.0)
    tl.store(out + i, v.to(out.dtype.element_ty), mask=mask)
    tl.store(ws + i, tl.zeros([BLOCK], tl.float32), mask=mask)


@dataclass(frozen=True)
class RevSplitKConfig:
    block_n: int = 512
    block_k: int = 32       # weights per chunk: a power of two >= 16 dividing the group
    steps: int = 1          # chunks per program
    warps: int = 4
    magic: bool = True

    def fits(self, group: int) -> bool:
        return self.block_k >= 16 and group % self.block_k == 0 and self.block_k & (self.block_k - 1) == 0


def gemv_revsplitk(x: torch.Tensor, wt: KMajorInt4, acc: torch.Tensor, cfg: RevSplitKConfig) -> torch.Tensor:
    """acc (float32 [N], zero on entry) += W @ x; returns acc. x: [K] contiguous."""
    if not cfg.fits(wt.group):
        raise ValueError(f"{cfg} does not fit group {wt.group}")
    per_program = cfg.block_k * cfg.steps
    grid = (triton.cdiv(wt.n, cfg.block_n), triton.cdiv(wt.k, per_program))
    s = wt.scales
    int4_gemv_revsplitk[grid](x, wt.words, s, s if wt.mins is None else wt.mins, acc, wt.n, wt.k, wt.group,
                              cfg.block_n, cfg.block_k, cfg.steps, wt.mins is not None, cfg.magic,
                              wt.n % cfg.block_n == 0, wt.k % per_program == 0, num_warps=cfg.warps)
    return acc


def gemv_revsplitk_cast(x: torch.Tensor, wt: KMajorInt4, ws: torch.Tensor, out: torch.Tensor,
                        cfg: RevSplitKConfig, cast_block: int = 1024) -> torch.Tensor:
    """out (model dtype) = W @ x through the float32 workspace ws, which is zero on entry and on exit."""
    gemv_revsplitk(x, wt, ws, cfg)
    cast_and_zero[(triton.cdiv(wt.n, cast_block),)](ws, out, wt.n, cast_block, num_warps=4)
    return out
