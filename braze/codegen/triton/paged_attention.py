"""Triton attention over a paged KV cache: split-KV flash-decoding and chunked-prefill flash attention.

Semantics (braze/ir/interpret.py attention_reference with a block table): output[t] =
softmax(q[t] K^T * scale) V over the rows 0..positions[t] of sequence slots[t], where the
sequence's row c is row c % B of cache block block_table[slots[t], c // B] (B = block size, the
cache's dim 2). Head h reads kv head h // (H / Hkv). kv_store wrote the rows before.

Every BN-row chunk of a sequence's context is read through the block table, one table entry per
row (any B, no alignment of BN to B needed): the K tile is gathered as [D, BN] from the rows'
blocks. The rest is the dense kernels' online softmax (float32, exp2 with pre-scaled scores).

Decode (T <= DECODE_MAX_T): grid (T, Hkv, NS). A program takes the G = H/Hkv query heads of one kv
head as one [GP, DP] tile (K/V read once per group) and one split of SPLIT_ROWS context rows.
Splits have a fixed size (NS = ceil(context / SPLIT_ROWS) is a compile-time constant, splits past
a token's length exit at once), so how a token's attention is summed depends only on its own
length, never on the batch. With NS == 1 the program writes the output; otherwise a combine
kernel (grid (T, H)) merges the NS partials in a fixed order by their log-sum-exp.

Prefill (T > DECODE_MAX_T, chunked prefill): grid (cdiv(T, BM), H): a tile of BM consecutive
tokens makes one pass per distinct sequence among its rows (one in the common case), streaming that
sequence's rows 0..max position of the pass in BN chunks; chunks below every row's position run
without the causal mask. A row's result depends only on its own position (chunks start at row 0
and a chunk wholly masked for a row leaves its accumulators exactly unchanged), so how a prompt is
cut into chunks does not change it.

Batch invariant (attr batch_invariant, braze/codegen/triton/invariant.py): every T takes the decode
kernel, so a decode token gives the same bits in a 129-token mixed step as alone (the prefill
kernel's tiles of tokens sum a row's scores in another order than decode's tiles of heads).
"""
from __future__ import annotations

from braze.codegen.triton.attention import ROPE_HELPER, rope_arguments
from braze.codegen.triton.exprs import TRITON_DTYPE
from braze.codegen.triton.indexing import next_pow2
from braze.codegen.triton.module import EmitContext, EmittedKernel
from braze.errors import CompilationError
from braze.ir.kernel import Kernel, fused_rope

LOG2E = 1.4426950408889634

# Tuning knobs (read when the program is emitted; they are baked into its source).
DECODE_MAX_T = 128     # T at or below this takes the decode path (a serving decode step is one token per sequence)
SPLIT_ROWS = 256       # context rows per decode split (fixed: the summation order never depends on the batch)
DECODE_BN = 32
DECODE_WARPS, DECODE_STAGES = 4, 2
PREFILL_BM, PREFILL_BN = 64, 32
PREFILL_WARPS, PREFILL_STAGES = 4, 2

HELPERS = '''
_BRAZE_PAGED_SCRATCH = {}


def _braze_paged_scratch(device, rows, heads, nsp, dp):
    """Split-KV partials, allocated once per shape and reused (CUDA-graph capture safe)."""
    key = (str(device), rows, heads, nsp, dp)
    buf = _BRAZE_PAGED_SCRATCH.get(key)
    if buf is None:
        buf = (torch.empty((rows, heads, nsp, dp), dtype=torch.float32, device=device),
               torch.empty((rows, heads, nsp), dtype=torch.float32, device=device))
        _BRAZE_PAGED_SCRATCH[key] = buf
    return buf


@triton.jit
def _braze_paged_chunks(acc, l_i, m_i, q, kbase, vbase, trow, rpos, start, stop, hi,
                        K_S0: tl.constexpr, K_S2: tl.constexpr, K_S3: tl.constexpr,
                        V_S0: tl.constexpr, V_S2: tl.constexpr, V_S3: tl.constexpr,
                        TB_S1: tl.constexpr, BS: tl.constexpr, qk_scale,
                        D: tl.constexpr, DP: tl.constexpr, BN: tl.constexpr,
                        MASKED: tl.constexpr, FP32: tl.constexpr):
    """Online softmax over the sequence rows [start, stop) (rows >= hi do not exist); trow points
    at the sequence's block-table row. With MASKED, tile row r sees columns <= rpos[r] only."""
    d = tl.arange(0, DP)
    dmask = d < D
    for s0 in range(start, stop, BN):
        cols = s0 + tl.arange(0, BN)
        cmask = cols < hi
        blk = tl.load(trow + (cols // BS) * TB_S1, mask=cmask, other=0).to(tl.int64)
        row = (cols % BS).to(tl.int64)
        kt = tl.load(kbase + (blk * K_S0 + row * K_S2)[None, :] + d[:, None] * K_S3,
                     mask=dmask[:, None] & cmask[None, :], other=0.0)
        if FP32:
            qk = tl.dot(q, kt, input_precision="ieee")
        else:
            qk = tl.dot(q, kt)
        qk = qk * qk_scale
        if MASKED:
            qk = tl.where((cols[None, :] <= rpos[:, None]) & cmask[None, :], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        alpha = tl.math.exp2(m_i - m_new)
        p = tl.math.exp2(qk - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        v = tl.load(vbase + (blk * V_S0 + row * V_S2)[:, None] + d[None, :] * V_S3,
                    mask=cmask[:, None] & dmask[None, :], other=0.0)
        if FP32:
            acc += tl.dot(p, v, input_precision="ieee")
        else:
            acc += tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _braze_paged_decode(Q, K, V, SLOTS, POS, TABLE, PO, PL, O, COS, SIN, NROWS, qk_scale,
                        Q_OFF: tl.constexpr, Q_ST: tl.constexpr, Q_SC: tl.constexpr,
                        K_OFF: tl.constexpr, K_S0: tl.constexpr, K_S1: tl.constexpr,
                        K_S2: tl.constexpr, K_S3: tl.constexpr,
                        V_OFF: tl.constexpr, V_S0: tl.constexpr, V_S1: tl.constexpr,
                        V_S2: tl.constexpr, V_S3: tl.constexpr,
                        SL_OFF: tl.constexpr, SL_ST: tl.constexpr, PO_OFF: tl.constexpr, PO_ST: tl.constexpr,
                        TB_OFF: tl.constexpr, TB_S0: tl.constexpr, TB_S1: tl.constexpr, BS: tl.constexpr,
                        O_OFF: tl.constexpr, O_ST: tl.constexpr, O_SC: tl.constexpr,
                        H: tl.constexpr, GROUP: tl.constexpr, GP: tl.constexpr,
                        D: tl.constexpr, DP: tl.constexpr, NSP: tl.constexpr, SPLIT: tl.constexpr,
                        BN: tl.constexpr, DIRECT: tl.constexpr, FP32: tl.constexpr,
                        ROPE: tl.constexpr, C_OFF: tl.constexpr, S_OFF: tl.constexpr,
                        CS_ST: tl.constexpr, CS_SC: tl.constexpr):
    t = tl.program_id(0)
    kvh = tl.program_id(1)
    sp = tl.program_id(2)
    slot = tl.load(SLOTS + SL_OFF + t * SL_ST).to(tl.int64)
    n = tl.minimum(tl.load(POS + PO_OFF + t * PO_ST).to(tl.int32) + 1, NROWS)
    lo = sp * SPLIT
    hi = tl.minimum(lo + SPLIT, n)
    g = tl.arange(0, GP)
    gmask = g < GROUP
    heads = kvh * GROUP + g
    d = tl.arange(0, DP)
    dmask = d < D
    qrow = Q + Q_OFF + t.to(tl.int64) * Q_ST + heads[:, None] * D * Q_SC
    q = _braze_load_q(qrow, d[None, :], Q_SC, gmask[:, None] & dmask[None, :], heads[:, None] < ROPE, n - 1,
                      COS, SIN, ROPE, C_OFF, S_OFF, CS_ST, CS_SC, D).to(K.dtype.element_ty)
    m_i = tl.full([GP], -1.0e30, tl.float32)
    l_i = tl.zeros([GP], tl.float32)
    acc = tl.zeros([GP, DP], tl.float32)
    trow = TABLE + TB_OFF + slot * TB_S0
    kbase = K + K_OFF + kvh * K_S1
    vbase = V + V_OFF + kvh * V_S1
    rpos = tl.zeros([GP], tl.int32) + (hi - 1)  # every row in [lo, hi) is visible to the token
    acc, l_i, m_i = _braze_paged_chunks(acc, l_i, m_i, q, kbase, vbase, trow, rpos, lo, hi, hi,
                                        K_S0, K_S2, K_S3, V_S0, V_S2, V_S3, TB_S1, BS, qk_scale,
                                        D, DP, BN, True, FP32)
    nonempty = l_i > 0.0
    out = acc / tl.where(nonempty, l_i, 1.0)[:, None]
    if DIRECT:
        tl.store(O + O_OFF + t.to(tl.int64) * O_ST + (heads[:, None] * D + d[None, :]) * O_SC,
                 out.to(O.dtype.element_ty), mask=gmask[:, None] & dmask[None, :])
    else:
        lse = tl.where(nonempty, m_i + tl.math.log2(tl.where(nonempty, l_i, 1.0)), float("-inf"))
        prow = (t * H + heads) * NSP + sp
        tl.store(PL + prow, lse, mask=gmask)
        tl.store(PO + prow[:, None] * DP + d[None, :], out, mask=gmask[:, None])


@triton.jit
def _braze_paged_combine(PO, PL, O, NS,
                         O_OFF: tl.constexpr, O_ST: tl.constexpr, O_SC: tl.constexpr,
                         H: tl.constexpr, D: tl.constexpr, DP: tl.constexpr, NSP: tl.constexpr):
    """output[t, h] = the partials of its NS splits weighted by exp2(lse), summed in split order."""
    t = tl.program_id(0)
    h = tl.program_id(1)
    s = tl.arange(0, NSP)
    d = tl.arange(0, DP)
    live = s < NS
    prow = (t * H + h) * NSP + s
    lse = tl.load(PL + prow, mask=live, other=float("-inf"))
    top = tl.max(lse, 0)
    w = tl.where(live & (lse > float("-inf")), tl.math.exp2(lse - top), 0.0)
    part = tl.load(PO + prow[:, None] * DP + d[None, :], mask=live[:, None], other=0.0)
    out = tl.sum(part * w[:, None], 0) / tl.sum(w, 0)
    tl.store(O + O_OFF + t.to(tl.int64) * O_ST + (h * D + d) * O_SC, out.to(O.dtype.element_ty), mask=d < D)


@triton.jit
def _braze_paged_prefill(Q, K, V, SLOTS, POS, TABLE, O, COS, SIN, T, NROWS, qk_scale,
                         Q_OFF: tl.constexpr, Q_ST: tl.constexpr, Q_SC: tl.constexpr,
                         K_OFF: tl.constexpr, K_S0: tl.constexpr, K_S1: tl.constexpr,
                         K_S2: tl.constexpr, K_S3: tl.constexpr,
                         V_OFF: tl.constexpr, V_S0: tl.constexpr, V_S1: tl.constexpr,
                         V_S2: tl.constexpr, V_S3: tl.constexpr,
                         SL_OFF: tl.constexpr, SL_ST: tl.constexpr, PO_OFF: tl.constexpr, PO_ST: tl.constexpr,
                         TB_OFF: tl.constexpr, TB_S0: tl.constexpr, TB_S1: tl.constexpr, BS: tl.constexpr,
                         O_OFF: tl.constexpr, O_ST: tl.constexpr, O_SC: tl.constexpr,
                         GROUP: tl.constexpr, D: tl.constexpr, DP: tl.constexpr,
                         BM: tl.constexpr, BN: tl.constexpr, FP32: tl.constexpr,
                         ROPE: tl.constexpr, C_OFF: tl.constexpr, S_OFF: tl.constexpr,
                         CS_ST: tl.constexpr, CS_SC: tl.constexpr):
    h = tl.program_id(1)
    kvh = h // GROUP
    rows = tl.program_id(0) * BM + tl.arange(0, BM)
    rmask = rows < T
    d = tl.arange(0, DP)
    dmask = d < D
    slot = tl.load(SLOTS + SL_OFF + rows * SL_ST, mask=rmask, other=0).to(tl.int64)
    pos = tl.load(POS + PO_OFF + rows * PO_ST, mask=rmask, other=0).to(tl.int64)
    pos = tl.minimum(pos, NROWS - 1)
    qrow = Q + Q_OFF + rows[:, None].to(tl.int64) * Q_ST + h * D * Q_SC
    q = _braze_load_q(qrow, d[None, :], Q_SC, rmask[:, None] & dmask[None, :], h < ROPE, pos[:, None],
                      COS, SIN, ROPE, C_OFF, S_OFF, CS_ST, CS_SC, D).to(K.dtype.element_ty)
    m_i = tl.full([BM], -1.0e30, tl.float32)
    l_i = tl.zeros([BM], tl.float32)
    acc = tl.zeros([BM, DP], tl.float32)
    kbase = K + K_OFF + kvh * K_S1
    vbase = V + V_OFF + kvh * V_S1
    big = 0x3FFFFFFFFFFFFFFF
    cur = tl.min(tl.where(rmask, slot, big), 0)
    last = tl.max(tl.where(rmask, slot, -1), 0)
    while cur <= last:  # one pass per distinct sequence among the tile's rows (usually one)
        sel = rmask & (slot == cur)
        rpos = tl.where(sel, pos, -1)
        hi = (tl.max(rpos, 0) + 1).to(tl.int32)
        uniform = tl.min(tl.where(rmask, sel.to(tl.int32), 1), 0) == 1
        pmin = tl.min(tl.where(sel, pos, big), 0).to(tl.int32)
        full = tl.where(uniform, ((pmin + 1) // BN) * BN, 0)  # chunks below every row's position
        trow = TABLE + TB_OFF + cur * TB_S0
        acc, l_i, m_i = _braze_paged_chunks(acc, l_i, m_i, q, kbase, vbase, trow, rpos, 0, full, hi,
                                            K_S0, K_S2, K_S3, V_S0, V_S2, V_S3, TB_S1, BS, qk_scale,
                                            D, DP, BN, False, FP32)
        acc, l_i, m_i = _braze_paged_chunks(acc, l_i, m_i, q, kbase, vbase, trow, rpos, full, hi, hi,
                                            K_S0, K_S2, K_S3, V_S0, V_S2, V_S3, TB_S1, BS, qk_scale,
                                            D, DP, BN, True, FP32)
        cur = tl.min(tl.where(rmask & (slot > cur), slot, big), 0)
    out = acc / tl.where(l_i > 0.0, l_i, 1.0)[:, None]
    tl.store(O + O_OFF + rows[:, None].to(tl.int64) * O_ST + (h * D + d)[None, :] * O_SC,
             out.to(O.dtype.element_ty), mask=rmask[:, None] & dmask[None, :])
'''


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _const(k: Kernel, d, what: str) -> int:
    if not isinstance(d, int):
        raise CompilationError(f"kernel {k.name}: the paged cache's {what} must be a compile-time size, got {d!r}")
    return d


def emit_paged_attention(k: Kernel, ctx: EmitContext) -> EmittedKernel:
    operands, rope = fused_rope(k)
    q, kc, vc, slots, pos, table = operands
    out = k.output
    h, hkv, d = int(k.attr("num_heads")), int(k.attr("num_kv_heads")), int(k.attr("head_dim"))
    if h % hkv:
        raise CompilationError(f"kernel {k.name}: {h} heads are not a multiple of {hkv} kv heads")
    group = h // hkv
    cache_dtype = ctx.program.buffer(kc.buffer).dtype
    if cache_dtype not in ("float32", "float16", "bfloat16") or ctx.program.buffer(vc.buffer).dtype != cache_dtype:
        raise CompilationError(f"kernel {k.name}: paged attention needs float k and v caches of one dtype")
    fp32 = cache_dtype == "float32"
    dp = max(16, next_pow2(d))
    gp = max(16, next_pow2(group))
    block = _const(k, kc.shape[2], "block size")
    nrows = block * _const(k, table.shape[1], "blocks per sequence")  # a sequence's longest context
    tdim = q.shape[0]
    t_bound = tdim if isinstance(tdim, int) else int(ctx.program.symbols[tdim])
    ns = _cdiv(nrows, SPLIT_ROWS)
    nsp = next_pow2(ns)
    decode_rows = max(1, min(t_bound, DECODE_MAX_T))
    qk_scale = float(k.attr("scale")) * LOG2E
    for v, rank in ((q, 2), (out, 2), (kc, 4), (vc, 4), (slots, 1), (pos, 1), (table, 2)):
        if len(v.strides) != rank:
            raise CompilationError(f"kernel {k.name}: operand {v} should have rank {rank}")
    qs, os_, ks, vs, ts = q.strides, out.strides, kc.strides, vc.strides, table.strides
    tables, rope_constants = rope_arguments(k, rope, d, ctx, stand_in=q)
    common = (f"Q_OFF={q.offset}, Q_ST={qs[0]}, Q_SC={qs[1]}, "
              f"K_OFF={kc.offset}, K_S0={ks[0]}, K_S1={ks[1]}, K_S2={ks[2]}, K_S3={ks[3]}, "
              f"V_OFF={vc.offset}, V_S0={vs[0]}, V_S1={vs[1]}, V_S2={vs[2]}, V_S3={vs[3]}, "
              f"SL_OFF={slots.offset}, SL_ST={slots.strides[0]}, PO_OFF={pos.offset}, PO_ST={pos.strides[0]}, "
              f"TB_OFF={table.offset}, TB_S0={ts[0]}, TB_S1={ts[1]}, BS={block}, "
              f"O_OFF={out.offset}, O_ST={os_[0]}, O_SC={os_[1]}, D={d}, DP={dp}, FP32={fp32}, "
              f"{rope_constants}")
    args = ", ".join(ctx.buf(v.buffer) for v in (q, kc, vc, slots, pos, table))
    o = ctx.buf(out.buffer)
    combine = "" if ns == 1 else (
        f"        _braze_paged_combine[(T, {h})](po, pl, {o}, {ns}, O_OFF={out.offset}, O_ST={os_[0]}, "
        f"O_SC={os_[1]}, H={h}, D={d}, DP={dp}, NSP={nsp}, num_warps=1)\n")
    launch = (
        f"    T = {ctx.dim(tdim)}\n"
        f"    if T == 0:\n        return\n"
        f"    if T <= {DECODE_MAX_T}:\n"
        f"        po, pl = _braze_paged_scratch({o}.device, {decode_rows}, {h}, {nsp}, {dp})\n"
        f"        _braze_paged_decode[(T, {hkv}, {ns})]({args}, po, pl, {o}, {tables}, {nrows}, {qk_scale!r}, {common}, "
        f"H={h}, GROUP={group}, GP={gp}, NSP={nsp}, SPLIT={SPLIT_ROWS}, BN={DECODE_BN}, DIRECT={ns == 1}, "
        f"num_warps={DECODE_WARPS}, num_stages={DECODE_STAGES})\n"
        f"{combine}"
        f"    else:\n"
        f"        _braze_paged_prefill[(triton.cdiv(T, {PREFILL_BM}), {h})]({args}, {o}, {tables}, T, {nrows}, {qk_scale!r}, "
        f"{common}, GROUP={group}, BM={PREFILL_BM}, BN={PREFILL_BN}, "
        f"num_warps={PREFILL_WARPS}, num_stages={PREFILL_STAGES})\n")
    if k.attr("batch_invariant"):  # every token, chunked prefill included, through the decode kernel
        po_rows = max(1, t_bound)
        combine = combine.replace("        ", "    ", 1)
        launch = (
            f"    T = {ctx.dim(tdim)}\n"
            f"    if T == 0:\n        return\n"
            f"    po, pl = _braze_paged_scratch({o}.device, {po_rows}, {h}, {nsp}, {dp})\n"
            f"    _braze_paged_decode[(T, {hkv}, {ns})]({args}, po, pl, {o}, {tables}, {nrows}, {qk_scale!r}, {common}, "
            f"H={h}, GROUP={group}, GP={gp}, NSP={nsp}, SPLIT={SPLIT_ROWS}, BN={DECODE_BN}, DIRECT={ns == 1}, "
            f"num_warps={DECODE_WARPS}, num_stages={DECODE_STAGES})\n"
            f"{combine}")
    jit = f"# paged attention {TRITON_DTYPE[cache_dtype]}: library kernels _braze_paged_* (module helpers)\n"
    return EmittedKernel(jit, launch, [ROPE_HELPER, HELPERS])
