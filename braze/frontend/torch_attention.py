"""scaled_dot_product_attention in Graph IR: braze's attention op when the mask is known to be a
prefix per query (causal, full, or any constant mask of that shape), else the math written out.

The attention op (one flash kernel) takes, per query row, the keys 0..position of its sequence.
A constant mask (transformers builds its causal mask from arange/cumsum/comparisons, which the
importer folds) is checked row by row: when every head sees the same prefix of keys, the prefix
lengths become the op's positions. Other masks (a padding mask given as an input, a sliding
window, an additive bias) take the decomposition: q @ k^T (batched matmul, GQA by broadcasting a
kv head over its query heads) * scale, the mask (bool: where(mask, s, -inf); float: added),
softmax, @ v.
"""
from __future__ import annotations

import math

import torch

from braze.frontend.torch_ops import Lowering, UnsupportedOpError, refuse
from braze.ir.graph import Node, make
from braze.ir.interpret import TORCH_DTYPE


def scaled_dot_product_attention(lo: Lowering, q: Node, k: Node, v: Node, attn_mask: Node | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Node:
    """q [..., H, T, D], k [..., Hkv, S, D], v [..., Hkv, S, Dv] with H a multiple of Hkv."""
    if dropout_p:
        refuse("scaled_dot_product_attention with dropout_p > 0")
    rank = len(q.shape)
    if rank < 3 or len(k.shape) != rank or len(v.shape) != rank or k.shape[:-1] != v.shape[:-1] \
            or q.shape[:-3] != k.shape[:-3] or q.shape[-1] != k.shape[-1] or q.shape[-3] % k.shape[-3]:
        raise UnsupportedOpError(f"scaled_dot_product_attention of q {list(q.shape)}, k {list(k.shape)}, "
                                 f"v {list(v.shape)}: braze takes [..., H, T, D] with H a multiple of k's heads")
    scale = float(scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    last = _last_visible_key(lo, q, k, attn_mask, is_causal)
    if last is not None and rank == 4 and v.shape[-1] == q.shape[-1]:
        return _attention_op(lo, q, k, v, last, scale)
    return _decomposed(lo, q, k, v, attn_mask, is_causal, scale)


def _visible(lo: Lowering, q: Node, k: Node, mask: Node | None, is_causal: bool) -> torch.Tensor | None:
    """Which keys each query sees, as a bool tensor broadcastable to [..., H, T, S], when known now."""
    t, s = q.shape[-2], k.shape[-2]
    if is_causal:  # torch's causal mask is aligned top-left: query t sees keys 0..t
        return torch.ones(t, s, dtype=torch.bool).tril()
    if mask is None:
        return torch.ones(t, s, dtype=torch.bool)
    value = lo.constant_of(mask)
    if value is None:
        return None
    if value.dtype == torch.bool:
        return value
    if torch.isin(value, torch.tensor([0.0, float("-inf")], dtype=value.dtype)).all():
        return value == 0  # an additive mask of 0 and -inf only: a bool mask in disguise
    return None


def _last_visible_key(lo: Lowering, q: Node, k: Node, mask: Node | None, is_causal: bool) -> torch.Tensor | None:
    """[B, T] index of the last key each query sees, when every query of every head sees exactly
    the keys 0..that index (at least one); None otherwise."""
    visible = _visible(lo, q, k, mask, is_causal)
    if visible is None or len(q.shape) != 4:
        return None
    batch, heads, t, d = q.shape
    s = k.shape[-2]
    try:
        visible = visible.expand(batch, heads, t, s)
    except RuntimeError:
        return None
    if not (visible == visible[:, :1]).all():
        return None  # heads see different keys
    rows = visible[:, 0]
    count = rows.sum(-1)  # [B, T]
    if (count == 0).any() or not (rows == (torch.arange(s) < count[..., None])).all():
        return None
    return count - 1


def _attention_op(lo: Lowering, q: Node, k: Node, v: Node, last: torch.Tensor, scale: float) -> Node:
    """Batch b is cache slot b and k, v are the cache: query t of batch b attends to its keys
    0..last[b, t]. q [B, H, T, D] -> rows [B*T, H*D] -> the op -> back to [B, H, T, D]."""
    batch, heads, t, d = q.shape
    slots = lo.new_weight("sdpa.slots", torch.arange(batch).repeat_interleave(t))
    positions = lo.new_weight("sdpa.positions", last.reshape(-1).to(torch.int64))
    rows = make("reshape", (lo.permute(q, (0, 2, 1, 3)),), shape=(batch * t, heads * d))
    out = make("attention", (rows, lo.cast(k, q.dtype), lo.cast(v, q.dtype), slots, positions), num_heads=heads,
               num_kv_heads=k.shape[1], head_dim=d, scale=scale)
    return lo.permute(make("reshape", (out,), shape=(batch, t, heads, d)), (0, 2, 1, 3))


def _decomposed(lo: Lowering, q: Node, k: Node, v: Node, mask: Node | None, is_causal: bool, scale: float) -> Node:
    *lead, heads, t, d = q.shape
    kv_heads, s = k.shape[-3], k.shape[-2]
    group = heads // kv_heads
    lead = tuple(lead)
    # query heads of one kv head as one batch entry: [..., Hkv, G, T, D] against [..., Hkv, 1, S, D]
    q_grouped = lo.reshape(q, lead + (kv_heads, group, t, d))
    k_grouped = lo.reshape(lo.cast(k, q.dtype), lead + (kv_heads, 1, s, d))
    v_grouped = lo.reshape(lo.cast(v, q.dtype), lead + (kv_heads, 1, s, v.shape[-1]))
    scores = make("matmul", (q_grouped, lo.swap(k_grouped, -1, -2)))
    scores = lo.reshape(lo.binary("mul", scores, scale), lead + (heads, t, s))
    if is_causal:  # (T > S leaves the last queries no key: NaN, as torch gives)
        mask = lo.new_weight("sdpa.causal", torch.ones(t, s, dtype=torch.bool).tril())
    probs = make("softmax", (_apply_mask(lo, scores, mask),)) if mask is not None else make("softmax", (scores,))
    if mask is not None and _may_hide_every_key(lo, mask):
        # torch's safe softmax: a query that sees no key gets zeros, not NaN (padding rows)
        hidden = make("eq", (make("max", (probs.inputs[0],)), lo.operand(float("-inf"), scores.dtype)))
        probs = make("where", (hidden, lo.operand(0.0, scores.dtype), probs))
    probs = lo.reshape(probs, lead + (kv_heads, group, t, s))
    out = make("matmul", (probs, v_grouped))
    return lo.reshape(out, lead + (heads, t, v.shape[-1]))


def _may_hide_every_key(lo: Lowering, mask: Node) -> bool:
    value = lo.constant_of(mask)
    if value is None:
        return True
    visible = value if value.dtype == torch.bool else value != float("-inf")
    return bool((~visible).all(-1).any())


def _apply_mask(lo: Lowering, scores: Node, mask: Node) -> Node:
    value = lo.constant_of(mask)
    if mask.dtype == "bool" and value is not None:  # a constant: an additive 0/-inf weight, made once
        additive = torch.zeros(value.shape, dtype=torch.float32).masked_fill(~value, float("-inf"))
        return make("add", (scores, lo.new_weight("sdpa.mask", additive.to(TORCH_DTYPE[scores.dtype]))))
    if mask.dtype == "bool":
        return make("where", (mask, scores, lo.operand(float("-inf"), scores.dtype)))
    return make("add", (scores, lo.cast(mask, scores.dtype)))


def flash_attention_rules(lo: Lowering) -> dict:
    """The fused forms aot_autograd (torch.compile) leaves; their extra results (log-sum-exp, seeds)
    are not computed: a use of one is an UnsupportedOpError."""
    aten = torch.ops.aten

    def sdpa(q, k, v, mask, dropout_p, is_causal, scale):
        return scaled_dot_product_attention(lo, q, k, v, mask, dropout_p, is_causal, scale)

    return {
        aten._scaled_dot_product_flash_attention_for_cpu.default:
            lambda q, k, v, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None:
            (sdpa(q, k, v, attn_mask, dropout_p, is_causal, scale), None),
        aten._scaled_dot_product_flash_attention.default:
            lambda q, k, v, dropout_p=0.0, is_causal=False, return_debug_mask=False, *, scale=None:
            (sdpa(q, k, v, None, dropout_p, is_causal, scale),) + (None,) * 8,
        aten._scaled_dot_product_efficient_attention.default:
            lambda q, k, v, attn_bias, compute_log_sumexp, dropout_p=0.0, is_causal=False, *, scale=None:
            (sdpa(q, k, v, attn_bias, dropout_p, is_causal, scale), None, None, None),
    }
