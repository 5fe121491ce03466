"""AWQ (Lin et al., 2023), as llm-awq / AutoAWQ run it: activation-aware per-input-channel scales
folded into the model, then a per-group weight clipping search.

1. Scales. For a group of linears reading one input X (Q/K/V after the input norm, O after the
   attention, gate/up after the post-attention norm, down after SiLU*mul), the weights' columns
   are multiplied by s and the input divided by s, with AutoAWQ's duo scaling

       s = mean|X|^alpha / mean|W|^(1 - alpha),   then  s / sqrt(s.max() * s.min())

   (mean|W| per input channel over the weights normalized by their row-group's max |w|), alpha
   picked from 0, 0.05, ..., 0.95 by the error of the block the group feeds on every calibration
   row: the attention block's output (O included) for Q/K/V, the MLP's output for gate/up, the
   linear's own output for O and down:

       min over alpha of  || f(X, W) - f(X / s, Q(W * s)) ||^2

   1/s goes into the preceding RMSNorm's weight (Q/K/V, gate/up), V's rows (O) or up's rows
   (down), so the float model is unchanged. Salient input channels (large |X|) get larger weights,
   so less relative rounding error where it matters most. AutoAWQ scales O only when every head
   has its own V; with grouped-query heads braze ties the scales of the O channels that read one
   V row (one scale per V row), which is as exact.

2. Clipping (AutoAWQ's auto_clip). For every linear but Q/K (their errors meet in the softmax,
   which a per-linear error does not see), per output row and group of `group` input channels,
   the group's weights are clamped to +-r * max|w| with r in 1, 0.95, ..., 0.55 chosen to minimize
   that group's share of the output on the calibration rows,

       min over r of  || X_g w_g^T - X_g Q(clamp(w_g, -r max|w_g|, r max|w_g|))^T ||^2

   An outlier weight widens the rounding step of all the group's weights; clamping it costs less
   than that when the inputs say so. This is the one place the float model changes (the clamped
   weights replace the originals); they are still plain floats that the quantize pass rounds to
   nearest (RTN), so the quantized format, and a `braze quantize` folder, is the same as RTN's.
   Each layer's calibration input comes from the unclipped float model, as in AutoAWQ.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from braze.debug import log
from braze.ir.interpret import rope_reference
from braze.models.config import ModelConfig
from braze.models.rope import rope_tables
from braze.quant.formats import _int4_grid, _padded_groups, fake_quantize_int4

ALPHAS = tuple(i / 20 for i in range(20))  # 0 .. 0.95, AutoAWQ's grid
CLIP_RATIOS = tuple(1 - i / 20 for i in range(10))  # 1 (no clip) .. 0.55, AutoAWQ's (n_grid 20, max_shrink 0.5)

# f(x, weights) -> the output the scale search compares (the block the weights feed)
Block = Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _linears(x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([x @ w.T for w in weights], dim=-1)


def weight_mean(weights: list[torch.Tensor], group: int) -> torch.Tensor:
    """Mean over rows of |w| / max|w| of its row-group, per input channel [K] (AutoAWQ's w_mean)."""
    w = torch.cat(weights, dim=0)
    g = _padded_groups(w, group).abs()
    g = g / (g.amax(-1, keepdim=True) + 1e-6)
    return g.reshape(w.shape[0], -1)[:, : w.shape[1]].mean(0)


def candidate_scales(x_mean: torch.Tensor, w_mean: torch.Tensor, alpha: float) -> torch.Tensor:
    """AutoAWQ's duo scaling, normalized so that the largest and smallest scale are reciprocal
    (the weights' overall magnitude, hence their fp16 scales' range, stays put)."""
    s = (x_mean.pow(alpha) / (w_mean.pow(1 - alpha) + 1e-4)).clamp(min=1e-4)
    return s / (s.max() * s.min()).sqrt()


def _tied_mean(v: torch.Tensor, owner: torch.Tensor | None) -> torch.Tensor:
    """Per-channel means [K] -> per shared scale (the mean over the channels `owner` maps to it)."""
    if owner is None:
        return v
    n = int(owner.max()) + 1
    return torch.zeros(n).index_add_(0, owner, v) / torch.bincount(owner, minlength=n)


def search_scales(x: torch.Tensor, weights: list[torch.Tensor], group: int, zero_point: bool,
                  block: Block = _linears, owner: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """(s, alpha) minimizing the error of block(x, weights) with the weights quantized, x [T, K].
    s is [K], or with `owner` ([K] indices: channels that must share one scale) one per shared
    scale, the weights' columns scaled by s[owner]."""
    x_mean = _tied_mean(x.abs().mean(0), owner)
    w_mean = _tied_mean(weight_mean(weights, group), owner)
    ref = block(x, weights)
    best = (None, math.inf, 0.0)
    for alpha in ALPHAS:
        s_own = candidate_scales(x_mean, w_mean, alpha)
        s = s_own if owner is None else s_own[owner]
        wq = [fake_quantize_int4(w * s, group, zero_point) / s for w in weights]
        err = (block(x, wq) - ref).pow(2).sum().item()
        if err < best[1]:
            best = (s_own, err, alpha)
    return best[0], best[2]


def search_clip(x: torch.Tensor, w: torch.Tensor, group: int, zero_point: bool,
                ratios: tuple[float, ...] = CLIP_RATIOS) -> tuple[torch.Tensor, torch.Tensor]:
    """(w clamped per row and group to its best shrunk range, the ratios [N, G]) for input x [T, K]."""
    n, k = w.shape
    wg = _padded_groups(w, group)  # [N, G, g]; padding is zero in x too, so it adds no error
    xg = _padded_groups(x, group).transpose(0, 1)  # [G, T, g]
    ref = torch.bmm(xg, wg.permute(1, 2, 0))  # [G, T, N]: each group's share of the output
    # clamp to +-ratio * max|w| (AutoAWQ's): the longer side of the range shrinks first, and with
    # zero points the grid then spans whatever is left of [min, max]
    limit = wg.abs().amax(-1, keepdim=True)
    best_err = torch.full(wg.shape[:2], math.inf)
    best, best_ratio = wg, torch.ones(wg.shape[:2])
    for ratio in ratios:  # 1 first: a tie keeps the unclipped weights
        clipped = torch.minimum(torch.maximum(wg, -limit * ratio), limit * ratio)
        q, scale, offset = _int4_grid(clipped, zero_point)
        wq = q * scale[..., None] + offset[..., None]
        err = (torch.bmm(xg, wq.permute(1, 2, 0)) - ref).pow(2).sum(1).T  # [N, G]
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better[..., None], clipped, best)
        best_ratio = torch.where(better, torch.tensor(ratio), best_ratio)
    return best.reshape(n, -1)[:, :k].contiguous(), best_ratio


def awq_scale_weights(config: ModelConfig, weights: dict[str, torch.Tensor], calibration_ids: list[int],
                      group: int, zero_point: bool = True, clip: bool = True) -> dict[str, torch.Tensor]:
    """A copy of `weights` (HF names, float) with AWQ scales folded in (the same float model) and,
    with `clip`, the clipping search's clamps applied (the one change to the float model)."""
    c = config
    w = {k: v.float() for k, v in weights.items()}  # entries are replaced, never written in place
    tokens = torch.tensor(calibration_ids, dtype=torch.int64)
    t = len(calibration_ids)
    cos, sin = rope_tables(c, t)
    positions = torch.arange(t)
    H, Hkv, D = c.num_heads, c.num_kv_heads, c.head_dim
    # O's input channel (head h, dim d) reads V's row (h's KV head, d): with grouped-query heads
    # the heads sharing a V row share its scale
    v_row = (torch.arange(H)[:, None] // (H // Hkv) * D + torch.arange(D)).flatten()
    x = w["model.embed_tokens.weight"][tokens]
    alphas, ratios = [], []
    clip_inputs: dict[str, torch.Tensor] = {}  # weight name -> its (scaled) calibration input

    def attention(h: torch.Tensor, qkv: list[torch.Tensor], p: str) -> torch.Tensor:
        q, k, v = (F.linear(h, wn, w.get(f"{p}self_attn.{n}_proj.bias")) for wn, n in zip(qkv, "qkv"))
        q, k = rope_reference(q, positions, cos, sin, D), rope_reference(k, positions, cos, sin, D)
        heads = lambda z, n: z.view(t, n, D).transpose(0, 1)  # noqa: E731
        a = F.scaled_dot_product_attention(heads(q, H), heads(k, Hkv).repeat_interleave(H // Hkv, 0),
                                           heads(v, Hkv).repeat_interleave(H // Hkv, 0), is_causal=True)
        return a.transpose(0, 1).reshape(t, H * D)

    def scale_group(inp: torch.Tensor, names: list[str], block: Block = _linears,
                    owner: torch.Tensor | None = None) -> torch.Tensor:
        s, alpha = search_scales(inp, [w[n] for n in names], group, zero_point, block, owner)
        s_full = s if owner is None else s[owner]
        for n in names:
            w[n] = w[n] * s_full
            clip_inputs[n] = inp / s_full
        alphas.append(alpha)
        return s

    with torch.no_grad():
        for i in range(c.num_layers):
            p = f"model.layers.{i}."
            qkv = [f"{p}self_attn.{n}_proj.weight" for n in "qkv"]
            h = _rms(x, w[p + "input_layernorm.weight"], c.rms_norm_eps)
            scaled_attn = not (c.qk_norm or any(f"{p}self_attn.{n}_proj.bias" in w for n in "qkv"))
            if scaled_attn:  # judged by the attention block's output, O (still float) included
                o = w[p + "self_attn.o_proj.weight"]
                s = scale_group(h, qkv, lambda z, ws: attention(z, ws, p) @ o.T)
                w[p + "input_layernorm.weight"] = w[p + "input_layernorm.weight"] / s
                h = h / s
            else:
                log(1, f"awq: layer {i} has q/k/v biases or q/k norms: its attention keeps plain RTN")
            attn = attention(h, [w[n] for n in qkv], p)
            if scaled_attn:  # O's input channels are V's rows: 1/s goes there
                s = scale_group(attn, [p + "self_attn.o_proj.weight"], owner=v_row)
                w[p + "self_attn.v_proj.weight"] = w[p + "self_attn.v_proj.weight"] / s[:, None]
                attn = attn / s[v_row]
            x = x + F.linear(attn, w[p + "self_attn.o_proj.weight"])
            h = _rms(x, w[p + "post_attention_layernorm.weight"], c.rms_norm_eps)
            down = w[p + "mlp.down_proj.weight"]  # gate/up judged by the MLP's output, down still float
            s = scale_group(h, [p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"],
                            lambda z, ws: (F.silu(z @ ws[0].T) * (z @ ws[1].T)) @ down.T)
            w[p + "post_attention_layernorm.weight"] = w[p + "post_attention_layernorm.weight"] / s
            h = h / s
            act = F.silu(F.linear(h, w[p + "mlp.gate_proj.weight"])) * F.linear(h, w[p + "mlp.up_proj.weight"])
            s = scale_group(act, [p + "mlp.down_proj.weight"])
            w[p + "mlp.up_proj.weight"] = w[p + "mlp.up_proj.weight"] / s[:, None]
            x = x + F.linear(act / s, w[p + "mlp.down_proj.weight"])  # the next layer's input: unclipped
            for name, inp in clip_inputs.items():  # after all of this layer's scales (V's and up's rows
                if clip and not name.endswith(("q_proj.weight", "k_proj.weight")):  # took O's and down's)
                    w[name], r = search_clip(inp, w[name], group, zero_point)
                    ratios.append(r.flatten())
            clip_inputs.clear()
    clipped = f", {100 * (torch.cat(ratios) < 1).float().mean():.1f}% of row-groups clipped" if ratios else ""
    log(1, f"awq: {len(alphas)} groups, mean alpha {sum(alphas) / max(1, len(alphas)):.2f}{clipped}")
    return w
