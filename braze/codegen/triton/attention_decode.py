"""The split-KV decode attention kernel (attention.py's decode path; its docstring gives the
algorithm), a library of Triton functions shared by every attention kernel of a program.

With EARLY_KV (module.EARLY_KV, a decode step: every token is its sequence's only new one) a
program loads its slot, position, q (written two launches before) and the first BN of its split's
old cache rows (written by earlier steps) before its griddepcontrol.wait, so with PDL those loads overlap the kernel before (the
kv_store), and merges the token's own row, which that kernel writes, after the wait.
"""
from __future__ import annotations

from braze.codegen.triton.module import EmitContext
from braze.ir.kernel import Kernel

DECODE_HELPERS = '''
@triton.jit
def _braze_attn_tile(acc, l_i, m_i, q, kt, v, cmask, qk_scale, FP32: tl.constexpr):
    """Online-softmax update by one [DP, BN] K^T tile and its [BN, DP] V tile, loaded by the caller
    (columns where cmask is false are out of range)."""
    if FP32:
        qk = tl.dot(q, kt, input_precision="ieee")
    else:
        qk = tl.dot(q, kt)
    qk = tl.where(cmask[None, :], qk * qk_scale, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(qk, 1))
    alpha = tl.math.exp2(m_i - m_new)
    p = tl.math.exp2(qk - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    if FP32:
        acc += tl.dot(p, v, input_precision="ieee")
    else:
        acc += tl.dot(p.to(v.dtype), v)
    return acc, l_i, m_new


@triton.jit
def _braze_decode_token(SLOTS, POS, t, sp, NS, C, SL_OFF: tl.constexpr, SL_ST: tl.constexpr,
                        PO_OFF: tl.constexpr, PO_ST: tl.constexpr, KV_NEW: tl.constexpr, SPLIT: tl.constexpr,
                        BN: tl.constexpr):
    """Token t's slot and context rows n, and its split sp: (slot, n, cache rows the splits read,
    splits holding rows, the split's first row, its end)."""
    slot = tl.load(SLOTS + SL_OFF + t * SL_ST).to(tl.int64)
    n = tl.minimum(tl.load(POS + PO_OFF + t * PO_ST).to(tl.int32) + 1, C)
    rows = n  # the cache rows the NS splits read
    if KV_NEW:  # the token's own row is not in the cache yet: one more program (sp == NS) takes it
        rows = n - 1
    if SPLIT > 0:  # batch invariant: splits of a fixed number of rows, whatever T and NS are
        per = SPLIT
    else:
        per = tl.maximum(tl.cdiv(tl.cdiv(rows, NS), BN) * BN, BN)
    lo = sp * per
    return slot, n, rows, tl.cdiv(rows, per), lo, tl.minimum(lo + per, rows)


@triton.jit
def _braze_attn_rows(acc, l_i, m_i, q, kbase, vbase, lo, hi, K_S2: tl.constexpr, K_S3: tl.constexpr,
                     V_S2: tl.constexpr, V_S3: tl.constexpr, qk_scale, D: tl.constexpr, DP: tl.constexpr,
                     BN: tl.constexpr, FP32: tl.constexpr):
    """One decode split: cache rows [lo, hi), every one visible to the token; whole BN chunks run
    unmasked, the tail masked."""
    rpos = tl.zeros([acc.shape[0]], tl.int32) + (hi - 1)
    full = lo + tl.maximum(hi - lo, 0) // BN * BN
    acc, l_i, m_i = _braze_attn_block(acc, l_i, m_i, q, kbase, vbase, rpos, lo, full, hi,
                                      K_S2, K_S3, V_S2, V_S3, qk_scale, D, DP, BN, False, FP32, True)
    return _braze_attn_block(acc, l_i, m_i, q, kbase, vbase, rpos, full, hi, hi,
                             K_S2, K_S3, V_S2, V_S3, qk_scale, D, DP, BN, True, FP32, True)


@triton.jit
def _braze_attn_new_row(q, xrow, kvh, krow, vrow, pos, COS, SIN, qk_scale, X_SC: tl.constexpr,
                        K_S3: tl.constexpr, V_S3: tl.constexpr, HKV: tl.constexpr, ROPE_K: tl.constexpr,
                        C_OFF: tl.constexpr, S_OFF: tl.constexpr, CS_ST: tl.constexpr, CS_SC: tl.constexpr,
                        D: tl.constexpr, DP: tl.constexpr):
    """A decode step's own k|v row (braze/passes/decode_rows.py), as one more split: kv head kvh's
    k (rotated when kvh < ROPE_K, as the kv_store would) and v, read from the kv_store's input row
    xrow (k heads, then v heads), written to the cache rows krow / vrow; returns the split's
    (acc, l, m) over that one row (the caller normalises it like any split's)."""
    d = tl.arange(0, DP)
    mask = d < D
    k = tl.load(xrow + (kvh * D + d) * X_SC, mask=mask, other=0.0)
    if ROPE_K > 0:
        k = tl.where(kvh < ROPE_K, _braze_rope_q(k, xrow + kvh * D * X_SC, d, X_SC, mask, pos, COS, SIN,
                                                 C_OFF, S_OFF, CS_ST, CS_SC, D), k)
    v = tl.load(xrow + ((HKV + kvh) * D + d) * X_SC, mask=mask, other=0.0)
    k = k.to(krow.dtype.element_ty)
    v = v.to(vrow.dtype.element_ty)
    tl.store(krow + d * K_S3, k, mask=mask)
    tl.store(vrow + d * V_S3, v, mask=mask)
    score = tl.sum(q.to(tl.float32) * k.to(tl.float32)[None, :], 1) * qk_scale
    acc = tl.zeros([q.shape[0], DP], tl.float32) + v.to(tl.float32)[None, :]
    return acc, tl.full([q.shape[0]], 1.0, tl.float32), score


@triton.jit
def _braze_attn_decode(Q, K, V, SLOTS, POS, PO, PL, CNT, O, COS, SIN, X, C, NS, qk_scale,
                       Q_OFF: tl.constexpr, Q_ST: tl.constexpr, Q_SH: tl.constexpr, Q_SC: tl.constexpr,
                       K_OFF: tl.constexpr, K_S0: tl.constexpr, K_S1: tl.constexpr,
                       K_S2: tl.constexpr, K_S3: tl.constexpr,
                       V_OFF: tl.constexpr, V_S0: tl.constexpr, V_S1: tl.constexpr,
                       V_S2: tl.constexpr, V_S3: tl.constexpr,
                       SL_OFF: tl.constexpr, SL_ST: tl.constexpr, PO_OFF: tl.constexpr, PO_ST: tl.constexpr,
                       O_OFF: tl.constexpr, O_ST: tl.constexpr, O_SH: tl.constexpr, O_SC: tl.constexpr,
                       H: tl.constexpr, HKV: tl.constexpr, GROUP: tl.constexpr, GP: tl.constexpr,
                       D: tl.constexpr, DP: tl.constexpr, NSP: tl.constexpr, BN: tl.constexpr,
                       FP32: tl.constexpr, SPLIT: tl.constexpr,
                       ROPE: tl.constexpr, C_OFF: tl.constexpr, S_OFF: tl.constexpr,
                       CS_ST: tl.constexpr, CS_SC: tl.constexpr, KV_NEW: tl.constexpr, ROPE_K: tl.constexpr,
                       X_OFF: tl.constexpr, X_ST: tl.constexpr, X_SC: tl.constexpr,
                       EARLY_KV: tl.constexpr = False):
    t = tl.program_id(0)
    kvh = tl.program_id(1)
    sp = tl.program_id(2)
    d = tl.arange(0, DP)
    dmask = d < D
    g = tl.arange(0, GP)
    gmask = g < GROUP
    heads = kvh * GROUP + g
    qrow = Q + Q_OFF + t.to(tl.int64) * Q_ST + heads[:, None] * Q_SH
    qmask = gmask[:, None] & dmask[None, :]
    if EARLY_KV:  # a decode step after a kernel that writes neither q, slots, positions nor old rows
        # before the wait: q, and the first chunk of the split's rows below the token's own
        slot, n, rows, used, lo, hi = _braze_decode_token(SLOTS, POS, t, sp, NS, C, SL_OFF, SL_ST, PO_OFF, PO_ST,
                                                          KV_NEW, SPLIT, BN)
        q = _braze_load_q(qrow, d[None, :], Q_SC, qmask & (d[None, :] * 0 + lo < rows), heads[:, None] < ROPE, n - 1,
                          COS, SIN, ROPE, C_OFF, S_OFF, CS_ST, CS_SC, D).to(K.dtype.element_ty)
        cols0 = lo + tl.arange(0, BN)
        old = cols0 < tl.minimum(hi, n - 1)
        kt0 = tl.load(K + K_OFF + slot * K_S0 + kvh * K_S1 + cols0[None, :] * K_S2 + d[:, None] * K_S3,
                      mask=old[None, :] & dmask[:, None], other=0.0)
        v0 = tl.load(V + V_OFF + slot * V_S0 + kvh * V_S1 + cols0[:, None] * V_S2 + d[None, :] * V_S3,
                     mask=old[:, None] & dmask[None, :], other=0.0)
    # griddepcontrol.wait
    if not EARLY_KV:
        slot, n, rows, used, lo, hi = _braze_decode_token(SLOTS, POS, t, sp, NS, C, SL_OFF, SL_ST, PO_OFF, PO_ST,
                                                          KV_NEW, SPLIT, BN)
    # a split past the context (the grid is sized for the longest one) has no partials: it only
    # arrives at the counter, and the combine reads live splits only
    busy = lo < rows
    if KV_NEW:
        busy = busy | (sp == NS)
    if busy:
        if not EARLY_KV:
            q = _braze_load_q(qrow, d[None, :], Q_SC, qmask, heads[:, None] < ROPE, n - 1,
                              COS, SIN, ROPE, C_OFF, S_OFF, CS_ST, CS_SC, D).to(K.dtype.element_ty)
        m_i = tl.full([GP], -1.0e30, tl.float32)
        l_i = tl.zeros([GP], tl.float32)
        acc = tl.zeros([GP, DP], tl.float32)
        kbase = K + K_OFF + slot * K_S0 + kvh * K_S1
        vbase = V + V_OFF + slot * V_S0 + kvh * V_S1
        if KV_NEW:
            if sp == NS:
                acc, l_i, m_i = _braze_attn_new_row(q, X + X_OFF + t.to(tl.int64) * X_ST, kvh,
                                                    kbase + (n - 1) * K_S2, vbase + (n - 1) * V_S2, n - 1,
                                                    COS, SIN, qk_scale, X_SC, K_S3, V_S3, HKV, ROPE_K,
                                                    C_OFF, S_OFF, CS_ST, CS_SC, D, DP)
            else:
                acc, l_i, m_i = _braze_attn_rows(acc, l_i, m_i, q, kbase, vbase, lo, hi, K_S2, K_S3, V_S2, V_S3,
                                                 qk_scale, D, DP, BN, FP32)
        elif EARLY_KV:  # the token's own row, if in the first chunk, was written by the kernel before
            new_d = dmask & (d * 0 + n - 1 >= lo) & (d * 0 + n - 1 < tl.minimum(lo + BN, hi))
            k_new = tl.load(kbase + (n - 1) * K_S2 + d * K_S3, mask=new_d, other=0.0)
            v_new = tl.load(vbase + (n - 1) * V_S2 + d * V_S3, mask=new_d, other=0.0)
            kt0 = tl.where((cols0 == n - 1)[None, :], k_new[:, None], kt0)
            v0 = tl.where((cols0 == n - 1)[:, None], v_new[None, :], v0)
            acc, l_i, m_i = _braze_attn_tile(acc, l_i, m_i, q, kt0, v0, cols0 < hi, qk_scale, FP32)
            acc, l_i, m_i = _braze_attn_rows(acc, l_i, m_i, q, kbase, vbase, lo + BN, hi, K_S2, K_S3, V_S2, V_S3,
                                             qk_scale, D, DP, BN, FP32)
        else:
            acc, l_i, m_i = _braze_attn_rows(acc, l_i, m_i, q, kbase, vbase, lo, hi, K_S2, K_S3, V_S2, V_S3,
                                             qk_scale, D, DP, BN, FP32)
        nonempty = l_i > 0.0
        lse = tl.where(nonempty, m_i + tl.math.log2(tl.where(nonempty, l_i, 1.0)), float("-inf"))
        out = acc / tl.where(nonempty, l_i, 1.0)[:, None]
        row = (t * H + heads) * NSP + tl.where(sp == NS, used, sp)  # the new row's partial follows the splits'
        tl.store(PL + row, lse, mask=gmask)
        tl.store(PO + row[:, None] * DP + d[None, :], out, mask=gmask[:, None])
    # every thread's partials are written before the release; the last arrival combines
    tl.debug_barrier()
    counter = CNT + t * HKV + kvh
    arrived = tl.atomic_add(counter, 1, sem="acq_rel")
    if arrived == NS - 1 + KV_NEW:
        tl.atomic_xchg(counter, 0)
        # splits past the context are empty: only the first `used` hold partials (and the new row's
        # program one after them). All their loads are issued at once (static unroll, masked), so
        # the combine costs about one load latency.
        used = used + KV_NEW
        s_idx = tl.arange(0, NSP)
        srows = (t * H + heads[:, None]) * NSP + s_idx[None, :]
        lse_all = tl.load(PL + srows, mask=gmask[:, None] & (s_idx[None, :] < used), other=-1.0e30,
                          cache_modifier=".cg")
        w_all = tl.math.exp2(lse_all - tl.max(lse_all, 1)[:, None])
        w_all = tl.where(gmask[:, None] & (s_idx[None, :] < used), w_all, 0.0)
        total = tl.zeros([GP, DP], tl.float32)
        for s in tl.static_range(NSP):
            w_s = tl.sum(tl.where(s_idx[None, :] == s, w_all, 0.0), 1)
            live = gmask[:, None] & (tl.full([GP, DP], s, tl.int32) < used)
            o_s = tl.load(PO + ((t * H + heads) * NSP + s)[:, None] * DP + d[None, :], mask=live, other=0.0,
                          cache_modifier=".cg")
            total += o_s * w_s[:, None]
        result = total / tl.where(gmask, tl.sum(w_all, 1), 1.0)[:, None]
        tl.store(O + O_OFF + t.to(tl.int64) * O_ST + heads[:, None] * O_SH + d[None, :] * O_SC,
                 result.to(O.dtype.element_ty), mask=gmask[:, None] & dmask[None, :])
'''


def early_kv_safe(k: Kernel, ctx: EmitContext, kv_buffers: set[str], index_buffers: set[str]) -> bool:
    """Whether a decode step's attention may read q, its slots, positions and old cache rows before
    its griddepcontrol.wait. Those loads may overlap the launch before it (earlier ones are done:
    that launch waited for them before letting this one start): it must write neither q, the
    slots nor the positions, and the cache only as a kv_store does (a decode step's new rows).
    The first kernel of a program follows launches it cannot see."""
    kernels = list(ctx.program.kernels)
    i = next((j for j, x in enumerate(kernels) if x.name == k.name), 0)
    if i == 0:
        return False
    group = kernels[i - 1].attr("launch_group")
    before = [x for x in kernels[:i] if group is not None and x.attr("launch_group") == group] or [kernels[i - 1]]
    return all(x.output.buffer not in index_buffers and (x.output.buffer not in kv_buffers or x.kind == "kv_store")
               for x in before)
