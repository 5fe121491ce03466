"""Triton attention over the paged-by-slot KV cache: flash attention (prefill) and split-KV
flash-decoding (decode), chosen at launch time by the number of tokens this step.

Semantics (braze/ir/interpret.py attention_reference): output[t] = softmax(q[t] K^T * scale) V
over cache rows 0..positions[t] (inclusive) of slot slots[t]; head h reads kv head h // (H/Hkv).
The cache was written by kv_store before, so these kernels only read it, except on a decode step
of an attention tagged `decode_rows_of` (braze/passes/decode_rows.py): there the kv_store launches
nothing, and one more program per (token, kv head) takes the token's own row from the kv_store's
input (rotating k), writes it into the cache and adds its partial to the splits' (_braze_attn_new_row).

The kernels are fixed library functions (module-level helpers shared by every attention kernel of
the program; the decode kernel's are in attention_decode.py); the layout of each operand (offsets
and element strides of its View) reaches them as constexpr arguments, so a strided q (a column
slice of a fused qkv) costs nothing.

Prefill (T > DECODE_MAX_T): grid (cdiv(T, BM), H), or with heavy_first (H, cdiv(T, BM)) and the
query tiles in reverse, so every head's last tiles (the longest causal spans) are placed on the SMs
first and the short ones fill in behind them. With pack_gqa a tile's BM rows are BM / GP tokens x
the GP = next_pow2(H / Hkv) query heads of one kv head (grid over Hkv): each K/V chunk is loaded
once for the whole group, and the causal diagonal spans BM / GP positions instead of BM.
A tile of consecutive tokens loops over the distinct slots among its rows (one pass in the common
case of a run of one sequence's tokens; a tile straddling two packed prompts takes one pass per
slot, rows of other slots masked out). Each pass streams K/V rows 0..max position of the pass's rows in BN chunks: chunks wholly
below every row's position run without masks, the rest with the causal mask col <= pos[row].
Online softmax in float32 with exp2 (scores pre-scaled by scale * log2 e); QK^T and PV are tl.dot
in the cache dtype (float32 with input_precision="ieee").

Decode (T <= DECODE_MAX_T): grid (T, Hkv, splits). A program takes the G = H/Hkv query heads of
one kv head as one [GP, DP] tile (K/V read once per group) and one split of the token's context:
the token's n = pos + 1 rows are cut into `splits` runtime-sized chunks (multiples of BN), so a
short context does little work. Partials (normalised output and log2-sum-exp) go to a scratch
buffer allocated once per shape (CUDA-graph safe). The last split of a (token, kv head) to finish,
as counted by an atomic counter that it then resets, combines the partials and writes the output:
one launch, no second kernel (the CUDA samples' threadFenceReduction pattern).

Batch invariant (attr batch_invariant, braze/codegen/triton/invariant.py): every T takes the decode
kernel, with splits of SPLIT rows (a compile-time constant) instead of a count from T and the SMs.
"""
from __future__ import annotations

from braze.codegen.triton.attention_decode import DECODE_HELPERS, early_kv_safe
from braze.codegen.triton.exprs import TRITON_DTYPE
from braze.codegen.triton.indexing import next_pow2
from braze.codegen.triton.invariant import invariant_split_rows
from braze.codegen.triton.module import DECODE_STEP, EmitContext, EmittedKernel, knob_config
from braze.errors import CompilationError
from braze.ir.kernel import Kernel, fused_rope

LOG2E = 1.4426950408889634

# Tuning knobs (read when the program is emitted; they are baked into its source).
DECODE_MAX_T = 128         # T at or below this takes the split-KV decode path (a decode step of
                           # 64 sequences through the prefill kernel: 290 us, one pass per slot)
PROMPT_DECODE_MAX_T = 16   # the same bound where the slots are constants (a module's SDPA: each batch
                           # row is one prompt, never many sequences' single tokens): the prefill
                           # tiles by prompt length beat the decode splits past 16 rows (kernel suite,
                           # H100: 32 tokens 7.0 vs 8.7 us at D 64, 6.5 vs 9.3 at D 128; 128 tokens
                           # 9.1 vs 11.4 and 10.1 vs 14.0)
DECODE_BN = 64             # cache rows per inner step of a decode program
DECODE_WARPS, DECODE_STAGES = 4, 2
DECODE_MIN_ROWS_PER_SPLIT = 128   # bounds the number of splits by the cache length
DECODE_PROGRAMS_PER_SM = 2        # splits are chosen so T * Hkv * splits ~ this * SM count
DECODE_MAX_SPLITS = 64
PREFILL_BM, PREFILL_BN = 64, 64
PREFILL_WARPS, PREFILL_STAGES = 4, 3  # 128x64 with 8 warps spills ~260 B (ptxas, sm_90a)
PREFILL_HEAVY_FIRST = 1    # the longest causal tiles launch first (the module docstring); 0: off
PREFILL_PACK_GQA = "auto"  # 1: a tile holds every query head of one kv head (the module docstring);
                           # auto: when that group is a power of two (a padded group wastes rows)
PREFILL_LONG_PACKED = (128, 64, 4, 3)  # auto-packed tiles for prompts past 1024 tokens or of unknown length


def prefill_defaults(fp32: bool, head_dim: int, tokens: int | None, group: int = 1) -> dict:
    """Prefill tiles by dtype, head_dim, GQA group and, when the token count is fixed at compile
    time, by prompt length (bench/kernels/attention_config_sweep.py, H100. TinyLlama's attention case, D 64:
    float32 at 64x64 was 59.6 / 62.7 / 172 us at 32 / 128 / 512 tokens, 32x64 21.5 / 160 us at 128
    / 512 and 16x32 9.2 us at 32; bfloat16 16x32 7.0 us at 32 and 32x64 9.1 us at 128, 64x64 stays
    best at 512. Qwen2.5-7B's, D 128, float32 at 32 tokens: 64x64 485 us, 32x64 156, 32x32 14.4,
    16x32 12.5: a 64-wide K/V tile of 128 float32 columns spills).
    bfloat16 past 256 tokens (`ATTN_SEQS=512,2048 bash bench/gpu_sweep.sh attnsweep`): 64x64 with
    heavy_first at 512 / 2048 tokens, TinyLlama (group 8) 15.0 -> 14.8 / 80.6 -> 69.7 us, Qwen2.5-7B
    (group 7) 20.0 -> 19.1 / 110.5 -> 93.2; TinyLlama packed as well 14.6 at 512 and, with 128x64
    tiles, 60.2 at 2048 (eager's SDPA: 13.2 / 60.6); Qwen packed (to 8 of 7 heads): 106.0 at 2048."""
    pack = PREFILL_PACK_GQA in (1, "1") or (PREFILL_PACK_GQA == "auto" and group > 1 and group & (group - 1) == 0)
    if tokens is not None and tokens <= 64:  # few rows: small tiles give the SMs more programs
        tiles = (16, 32, 4, 2)
    elif fp32 and head_dim > 64:
        tiles = (32, 32, 4, 2)
    elif fp32 or (tokens is not None and tokens <= 256):  # float32 tiles at 64x64 spill registers
        tiles = (32, 64, 4, 2)
    elif pack and PREFILL_PACK_GQA == "auto" and (tokens is None or tokens > 1024):
        tiles = PREFILL_LONG_PACKED
    else:
        tiles = (PREFILL_BM, PREFILL_BN, PREFILL_WARPS, PREFILL_STAGES)
    return {**dict(zip(("block_m", "block_n", "num_warps", "num_stages"), tiles)), "heavy_first": PREFILL_HEAVY_FIRST,
            "pack_gqa": int(pack)}

ROPE_HELPER = '''
@triton.jit
def _braze_rope_q(q, qrow, d, Q_SC, mask, pos, COS, SIN, C_OFF: tl.constexpr, S_OFF: tl.constexpr,
                  CS_ST: tl.constexpr, CS_SC: tl.constexpr, D: tl.constexpr):
    """q, a tile loaded from qrow + d * Q_SC, after rotate-half RoPE at positions pos (a RoPE fused
    into the attention: no rope kernel and no rotated copy of q|k|v before it), in q's dtype."""
    HALF: tl.constexpr = D // 2
    first = d < HALF
    other = tl.load(qrow + tl.where(first, d + HALF, d - HALF) * Q_SC, mask=mask, other=0.0).to(tl.float32)
    j = tl.where(first, d, d - HALF)
    c = tl.load(COS + C_OFF + pos * CS_ST + j * CS_SC, mask=mask, other=0.0).to(tl.float32)
    s = tl.load(SIN + S_OFF + pos * CS_ST + j * CS_SC, mask=mask, other=0.0).to(tl.float32)
    return (q.to(tl.float32) * c + tl.where(first, -other, other) * s).to(q.dtype)


@triton.jit
def _braze_load_q(qrow, d, Q_SC, mask, rotate, pos, COS, SIN, ROPE: tl.constexpr, C_OFF: tl.constexpr,
                  S_OFF: tl.constexpr, CS_ST: tl.constexpr, CS_SC: tl.constexpr, D: tl.constexpr):
    """Every attention kernel's q tile, loaded from qrow + d * Q_SC: with a RoPE fused in (ROPE > 0)
    rotated at positions pos where `rotate` (its heads below ROPE), the rest as loaded."""
    q = tl.load(qrow + d * Q_SC, mask=mask, other=0.0)
    if ROPE > 0:
        q = tl.where(rotate, _braze_rope_q(q, qrow, d, Q_SC, mask, pos, COS, SIN, C_OFF, S_OFF, CS_ST, CS_SC, D), q)
    return q
'''

HELPERS = '''
_BRAZE_ATTN_SCRATCH = {}
_BRAZE_SM_COUNT = {}


def _braze_attn_scratch(device, rows, heads, kv_heads, nsp, dp):
    """Split-KV partials and the zeroed arrival counters, allocated once per shape and reused (so
    CUDA-graph capture is safe; every launch leaves the counters at zero again)."""
    key = (str(device), rows, heads, kv_heads, nsp, dp)
    buf = _BRAZE_ATTN_SCRATCH.get(key)
    if buf is None:
        buf = (torch.empty((rows, heads, nsp, dp), dtype=torch.float32, device=device),
               torch.empty((rows, heads, nsp), dtype=torch.float32, device=device),
               torch.zeros((rows, kv_heads), dtype=torch.int32, device=device))
        _BRAZE_ATTN_SCRATCH[key] = buf
    return buf


def _braze_sm_count(device):
    key = str(device)
    n = _BRAZE_SM_COUNT.get(key)
    if n is None:
        n = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 8
        _BRAZE_SM_COUNT[key] = n
    return n


@triton.jit
def _braze_attn_v(vbase, cols, d, dmask, hi, V_S2: tl.constexpr, V_S3: tl.constexpr, D: tl.constexpr,
                  DP: tl.constexpr, MASKED: tl.constexpr):
    """The [BN, DP] V tile of cache rows `cols` (rows >= hi read as 0 when MASKED)."""
    vptr = vbase + cols[:, None] * V_S2 + d[None, :] * V_S3
    if MASKED:
        if D == DP:
            v = tl.load(vptr, mask=(cols < hi)[:, None], other=0.0)
        else:
            v = tl.load(vptr, mask=(cols < hi)[:, None] & dmask[None, :], other=0.0)
    else:
        if D == DP:
            v = tl.load(vptr)
        else:
            v = tl.load(vptr, mask=dmask[None, :], other=0.0)
    return v


@triton.jit
def _braze_attn_block(acc, l_i, m_i, q, kbase, vbase, rpos, start, stop, hi,
                      K_S2: tl.constexpr, K_S3: tl.constexpr, V_S2: tl.constexpr, V_S3: tl.constexpr,
                      qk_scale, D: tl.constexpr, DP: tl.constexpr, BN: tl.constexpr,
                      MASKED: tl.constexpr, FP32: tl.constexpr, EARLY_V: tl.constexpr = False):
    """Online-softmax over cache rows [start, stop) (rows >= hi are out of range); with MASKED,
    row r of the tile sees columns <= rpos[r] only. EARLY_V issues a chunk's V load together with
    its K load: decode's programs run one or two chunks, so nothing else would hide V's latency."""
    d = tl.arange(0, DP)
    dmask = d < D
    for s0 in range(start, stop, BN):
        cols = s0 + tl.arange(0, BN)
        kptr = kbase + cols[None, :] * K_S2 + d[:, None] * K_S3
        if MASKED:
            cmask = cols < hi
            if D == DP:
                kt = tl.load(kptr, mask=cmask[None, :], other=0.0)
            else:
                kt = tl.load(kptr, mask=dmask[:, None] & cmask[None, :], other=0.0)
        else:
            if D == DP:  # no mask at all: keeps the loads vectorised
                kt = tl.load(kptr)
            else:
                kt = tl.load(kptr, mask=dmask[:, None], other=0.0)
        if EARLY_V:
            v = _braze_attn_v(vbase, cols, d, dmask, hi, V_S2, V_S3, D, DP, MASKED)
        if FP32:
            qk = tl.dot(q, kt, input_precision="ieee")
        else:
            qk = tl.dot(q, kt)
        qk = qk * qk_scale
        if MASKED:
            qk = tl.where(cols[None, :] <= rpos[:, None], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        alpha = tl.math.exp2(m_i - m_new)
        p = tl.math.exp2(qk - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        if not EARLY_V:
            v = _braze_attn_v(vbase, cols, d, dmask, hi, V_S2, V_S3, D, DP, MASKED)
        if FP32:
            acc += tl.dot(p, v, input_precision="ieee")
        else:
            acc += tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _braze_attn_prefill(Q, K, V, SLOTS, POS, O, COS, SIN, T, C, qk_scale,
                        Q_OFF: tl.constexpr, Q_ST: tl.constexpr, Q_SH: tl.constexpr, Q_SC: tl.constexpr,
                        K_OFF: tl.constexpr, K_S0: tl.constexpr, K_S1: tl.constexpr,
                        K_S2: tl.constexpr, K_S3: tl.constexpr,
                        V_OFF: tl.constexpr, V_S0: tl.constexpr, V_S1: tl.constexpr,
                        V_S2: tl.constexpr, V_S3: tl.constexpr,
                        O_OFF: tl.constexpr, O_ST: tl.constexpr, O_SH: tl.constexpr, O_SC: tl.constexpr,
                        SL_OFF: tl.constexpr, SL_ST: tl.constexpr, PO_OFF: tl.constexpr, PO_ST: tl.constexpr,
                        GROUP: tl.constexpr, D: tl.constexpr, DP: tl.constexpr,
                        BM: tl.constexpr, BN: tl.constexpr, FP32: tl.constexpr,
                        ROPE: tl.constexpr, C_OFF: tl.constexpr, S_OFF: tl.constexpr,
                        CS_ST: tl.constexpr, CS_SC: tl.constexpr, HEAVY_FIRST: tl.constexpr, GP: tl.constexpr):
    if HEAVY_FIRST:
        hx = tl.program_id(0)
        tile = tl.num_programs(1) - 1 - tl.program_id(1)
    else:
        hx = tl.program_id(1)
        tile = tl.program_id(0)
    r = tl.arange(0, BM)
    g = r % GP  # GP == 1: one head a program; else row r is token r // GP of head g of the group
    rows = tile * (BM // GP) + r // GP
    if GP == 1:
        kvh = hx // GROUP
        h = hx + g
    else:
        kvh = hx
        h = hx * GROUP + g
    rmask = (rows < T) & (g < GROUP)
    d = tl.arange(0, DP)
    dmask = d < D
    slot = tl.load(SLOTS + SL_OFF + rows * SL_ST, mask=rmask, other=0).to(tl.int64)
    pos = tl.load(POS + PO_OFF + rows * PO_ST, mask=rmask, other=0).to(tl.int64)
    pos = tl.minimum(pos, C - 1)
    qrow = Q + Q_OFF + rows[:, None].to(tl.int64) * Q_ST + h[:, None] * Q_SH
    q = _braze_load_q(qrow, d[None, :], Q_SC, rmask[:, None] & dmask[None, :], (h < ROPE)[:, None], pos[:, None],
                      COS, SIN, ROPE, C_OFF, S_OFF, CS_ST, CS_SC, D).to(K.dtype.element_ty)
    m_i = tl.full([BM], -1.0e30, tl.float32)
    l_i = tl.zeros([BM], tl.float32)
    acc = tl.zeros([BM, DP], tl.float32)
    big = 0x3FFFFFFFFFFFFFFF
    cur = tl.min(tl.where(rmask, slot, big), 0)
    last = tl.max(tl.where(rmask, slot, -1), 0)
    while cur <= last:  # one pass per distinct slot among the tile's rows (usually one)
        sel = rmask & (slot == cur)
        rpos = tl.where(sel, pos, -1)
        hi = (tl.max(rpos, 0) + 1).to(tl.int32)
        uniform = tl.min(tl.where(rmask, sel.to(tl.int32), 1), 0) == 1
        pmin = tl.min(tl.where(sel, pos, big), 0).to(tl.int32)
        full = tl.where(uniform, ((pmin + 1) // BN) * BN, 0)  # chunks below every row's position
        kbase = K + K_OFF + cur * K_S0 + kvh * K_S1
        vbase = V + V_OFF + cur * V_S0 + kvh * V_S1
        acc, l_i, m_i = _braze_attn_block(acc, l_i, m_i, q, kbase, vbase, rpos, 0, full, hi,
                                          K_S2, K_S3, V_S2, V_S3, qk_scale, D, DP, BN, False, FP32)
        acc, l_i, m_i = _braze_attn_block(acc, l_i, m_i, q, kbase, vbase, rpos, full, hi, hi,
                                          K_S2, K_S3, V_S2, V_S3, qk_scale, D, DP, BN, True, FP32)
        cur = tl.min(tl.where(rmask & (slot > cur), slot, big), 0)
    out = acc / tl.where(l_i > 0.0, l_i, 1.0)[:, None]
    tl.store(O + O_OFF + rows[:, None].to(tl.int64) * O_ST + h[:, None] * O_SH + d[None, :] * O_SC,
             out.to(O.dtype.element_ty), mask=rmask[:, None] & dmask[None, :])
'''


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def rope_arguments(k: Kernel, rope, head_dim: int, ctx: EmitContext, stand_in) -> tuple[str, str]:
    """(the COS, SIN launch arguments, the constexprs) telling an attention kernel about a RoPE fused
    into it (ROPE: how many leading query heads rotate, 0 for none, with `stand_in`'s buffer passed
    for the unused tables) and how its cos / sin tables are laid out."""
    if rope is None:
        stand_in = ctx.buf(stand_in.buffer)
        return f"{stand_in}, {stand_in}", "ROPE=0, C_OFF=0, S_OFF=0, CS_ST=0, CS_SC=0"
    cos, sin = rope
    if cos.strides != sin.strides or int(k.attr("rope_head_dim")) != head_dim:
        raise CompilationError(f"kernel {k.name}: a fused RoPE's cos and sin tables must share a layout "
                               f"and its head_dim must be the attention's ({head_dim})")
    return (f"{ctx.buf(cos.buffer)}, {ctx.buf(sin.buffer)}",
            f"ROPE={int(k.attr('rope_heads'))}, C_OFF={cos.offset}, S_OFF={sin.offset}, "
            f"CS_ST={cos.strides[0]}, CS_SC={cos.strides[1]}")


def decode_rows_arguments(k: Kernel, ctx: EmitContext, hkv: int, head_dim: int, stand_in) -> tuple[str, str]:
    """(the X launch argument, the constexprs) of the decode kernel: for an attention that writes a
    decode step's new cache rows (attr decode_rows_of, braze/passes/decode_rows.py), its kv_store's
    input x and layout, with KV_NEW = the launcher's kv_new (1 on decode steps: one more program per
    token and kv head); else a stand-in and KV_NEW=0."""
    if not ctx.decode_rows(k):
        return ctx.buf(stand_in.buffer), "KV_NEW=0, ROPE_K=0, X_OFF=0, X_ST=0, X_SC=0"
    # the Kernel IR verifier checked that the tag names the kv_store paired with this attention
    store = next(s for s in ctx.program.kernels if s.name == k.attr("decode_rows_of"))
    x = fused_rope(store)[0][0]
    if len(x.strides) != 2 or x.shape[1] != 2 * hkv * head_dim:
        raise CompilationError(f"kernel {k.name}: the kv_store input {x} is not [T, {2 * hkv * head_dim}]")
    rope_k = int(store.attr("rope_heads") or 0)
    return (ctx.buf(x.buffer),
            f"KV_NEW=kv_new, ROPE_K={rope_k}, X_OFF={x.offset}, X_ST={x.strides[0]}, "
            f"X_SC={x.strides[1]}")


def emit_attention(k: Kernel, ctx: EmitContext) -> EmittedKernel:
    operands, rope = fused_rope(k)
    q, kc, vc, slots, pos = operands[:5]
    out = k.output
    h, hkv, d = int(k.attr("num_heads")), int(k.attr("num_kv_heads")), int(k.attr("head_dim"))
    if h % hkv:
        raise CompilationError(f"kernel {k.name}: {h} heads are not a multiple of {hkv} kv heads")
    group = h // hkv
    cache_dtype = ctx.program.buffer(kc.buffer).dtype
    if cache_dtype not in ("float32", "float16", "bfloat16"):
        raise CompilationError(f"kernel {k.name}: attention over a {cache_dtype} cache")
    if ctx.program.buffer(vc.buffer).dtype != cache_dtype:
        raise CompilationError(f"kernel {k.name}: k and v caches differ in dtype")
    fp32 = cache_dtype == "float32"
    dp = max(16, next_pow2(d))
    gp = max(16, next_pow2(group))
    tdim, cdim = q.shape[0], kc.shape[2]
    t_bound = tdim if isinstance(tdim, int) else int(ctx.program.symbols[tdim])
    c_bound = cdim if isinstance(cdim, int) else int(ctx.program.symbols[cdim])
    ns_max = max(1, min(DECODE_MAX_SPLITS, _cdiv(c_bound, DECODE_MIN_ROWS_PER_SPLIT)))
    const_slots = ctx.program.buffer(slots.buffer).kind == "weight"
    decode_max_t = PROMPT_DECODE_MAX_T if const_slots else DECODE_MAX_T
    decode_rows = max(1, min(t_bound, decode_max_t))
    qk_scale = float(k.attr("scale")) * LOG2E

    def strides(v, n):
        if len(v.strides) != n:
            raise CompilationError(f"kernel {k.name}: operand {v} should have rank {n}")
        return v.strides

    def head_strides(v):  # (token, head, element) strides of a [T, H*D] or [T, H, D] view
        if len(v.strides) == 2:
            return v.strides[0], d * v.strides[1], v.strides[1]
        return strides(v, 3)

    qs, os_, ks, vs = head_strides(q), head_strides(out), strides(kc, 4), strides(vc, 4)
    sls, pos_s = strides(slots, 1), strides(pos, 1)
    tables, rope_constants = rope_arguments(k, rope, d, ctx, stand_in=q)
    # the combine unrolls over NSP partials: a decode step's new row (decode_rows.py) takes one of
    # the ns_max, so the cache splits stop one short of it
    writes_rows = ctx.decode_rows(k)
    kv_new = f"1 if s.get({DECODE_STEP!r}) else 0" if writes_rows else "0"
    nsp = next_pow2(max(ns_max, 1 + writes_rows))
    common = (f"K_OFF={kc.offset}, K_S0={ks[0]}, K_S1={ks[1]}, K_S2={ks[2]}, K_S3={ks[3]}, "
              f"V_OFF={vc.offset}, V_S0={vs[0]}, V_S1={vs[1]}, V_S2={vs[2]}, V_S3={vs[3]}, "
              f"SL_OFF={slots.offset}, SL_ST={sls[0]}, PO_OFF={pos.offset}, PO_ST={pos_s[0]}, "
              f"Q_OFF={q.offset}, Q_ST={qs[0]}, Q_SH={qs[1]}, Q_SC={qs[2]}, D={d}, DP={dp}, FP32={fp32}, "
              f"{rope_constants}")
    args = ", ".join(ctx.buf(v.buffer) for v in (q, kc, vc, slots, pos))
    o = ctx.buf(out.buffer)
    new_rows, new_rows_constants = decode_rows_arguments(k, ctx, hkv, d, stand_in=q)
    early_kv = ctx.early_kv and not writes_rows and early_kv_safe(k, ctx, {kc.buffer, vc.buffer},
                                                                    {q.buffer, slots.buffer, pos.buffer})
    early = f"EARLY_KV=bool(s.get({DECODE_STEP!r})), " if early_kv else ""
    # launch parameters: braze.tune's knobs (bucket 1: decode, 0: prefill) over the defaults above
    dec = knob_config(k, 1, {"block_n": DECODE_BN, "num_warps": DECODE_WARPS, "num_stages": DECODE_STAGES,
                             "programs_per_sm": DECODE_PROGRAMS_PER_SM})
    pre = knob_config(k, 0, prefill_defaults(fp32, d, tdim if isinstance(tdim, int) else None, group))
    pack = next_pow2(group) if pre["pack_gqa"] and group > 1 else 1
    pre["block_m"] = max(pre["block_m"], pack)  # a packed tile holds at least one token
    tiles, head_programs = f"triton.cdiv(T, {pre['block_m'] // pack})", hkv if pack > 1 else h
    prefill_grid = f"({head_programs}, {tiles})" if pre["heavy_first"] else f"({tiles}, {head_programs})"
    launch = (
        f"    T = {ctx.dim(tdim)}\n"
        f"    C = {ctx.dim(cdim)}\n"
        f"    if T == 0:\n        return\n"
        f"    if T <= {decode_max_t}:\n"
        f"        device = {o}.device\n"
        f"        ns = max(1, min({max(1, ns_max - writes_rows)}, "
        f"triton.cdiv({dec['programs_per_sm']} * _braze_sm_count(device), T * {hkv})))\n"
        f"        kv_new = {kv_new}\n"
        f"        po, pl, cnt = _braze_attn_scratch(device, {decode_rows}, {h}, {hkv}, {nsp}, {dp})\n"
        f"        _braze_attn_decode[(T, {hkv}, ns + kv_new)]({args}, po, pl, cnt, {o}, {tables}, {new_rows}, "
        f"C, ns, "
        f"{qk_scale!r}, {common}, {new_rows_constants}, "
        f"O_OFF={out.offset}, O_ST={os_[0]}, O_SH={os_[1]}, O_SC={os_[2]}, H={h}, HKV={hkv}, GROUP={group}, GP={gp}, "
        f"NSP={nsp}, BN={dec['block_n']}, {early}num_warps={dec['num_warps']}, num_stages={dec['num_stages']}, "
        f"SPLIT=0)\n"
        f"    else:\n"
        f"        _braze_attn_prefill[{prefill_grid}]({args}, {o}, {tables}, T, C, {qk_scale!r}, "
        f"{common}, O_OFF={out.offset}, O_ST={os_[0]}, O_SH={os_[1]}, O_SC={os_[2]}, GROUP={group}, "
        f"BM={pre['block_m']}, BN={pre['block_n']}, HEAVY_FIRST={bool(pre['heavy_first'])}, GP={pack}, "
        f"num_warps={pre['num_warps']}, num_stages={pre['num_stages']})\n")
    if k.attr("batch_invariant"):  # every token, prefill included, through decode's fixed-size splits
        split = invariant_split_rows(c_bound, dec["block_n"])
        ns = _cdiv(c_bound, split)
        launch = (
            f"    T = {ctx.dim(tdim)}\n"
            f"    C = {ctx.dim(cdim)}\n"
            f"    if T == 0:\n        return\n"
            f"    kv_new = 0  # batch-invariant programs have no decode rows (batch_invariant.py)\n"
            f"    po, pl, cnt = _braze_attn_scratch({o}.device, {max(1, t_bound)}, {h}, {hkv}, {next_pow2(ns)}, {dp})\n"
            f"    _braze_attn_decode[(T, {hkv}, {ns})]({args}, po, pl, cnt, {o}, {tables}, {new_rows}, C, {ns}, "
            f"{qk_scale!r}, {common}, {new_rows_constants}, "
            f"O_OFF={out.offset}, O_ST={os_[0]}, O_SH={os_[1]}, O_SC={os_[2]}, H={h}, HKV={hkv}, GROUP={group}, "
            f"GP={gp}, NSP={next_pow2(ns)}, BN={dec['block_n']}, num_warps={dec['num_warps']}, "
            f"num_stages={dec['num_stages']}, SPLIT={split})\n")
    jit = f"# attention {TRITON_DTYPE[cache_dtype]}: library kernels _braze_attn_* (module helpers)\n"
    return EmittedKernel(jit, launch, [ROPE_HELPER, HELPERS, DECODE_HELPERS])
