"""AWQ (Lin et al., 2023): activation-aware per-input-channel scales, folded into the model.

For a group of linears reading the same input X (Q/K/V after the input norm, gate/up after the
post-attention norm, down after SiLU*mul, O after attention when every head has its own V), the
weights' columns are multiplied by s = mean|X|^alpha (normalized), the input divided by s, and
alpha picked from a grid by the error of the quantized group's output on calibration activations:

    min over alpha of  sum_W || X W^T - (X / s) Q(W * s)^T ||^2

The 1/s goes into the preceding RMSNorm's weight (or V's rows, or up's rows), so the float model
is unchanged and the quantize pass then rounds the scaled weights to nearest (RTN). Salient input
channels (large |X|) get larger weights, so less relative rounding error where it matters most.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from braze.debug import log
from braze.ir.interpret import rope_reference
from braze.models.config import ModelConfig
from braze.models.rope import rope_tables
from braze.quant.formats import fake_quantize_int4

ALPHAS = tuple(i / 10 for i in range(10))  # 0 (plain RTN) .. 0.9
ERROR_TOKENS = 256  # calibration rows the error is measured on (all rows give the channel means)


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def search_scales(x: torch.Tensor, weights: list[torch.Tensor], group: int, zero_point: bool) -> tuple[torch.Tensor, float]:
    """(s [K], alpha) minimizing the quantized outputs' error for input x [T, K]."""
    mean = x.abs().mean(0)
    xs = x[:: max(1, x.shape[0] // ERROR_TOKENS)]
    ref = [xs @ w.T for w in weights]
    best = (None, math.inf, 0.0)
    for alpha in ALPHAS:
        s = mean.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        err = 0.0
        for w, y in zip(weights, ref):
            wq = fake_quantize_int4(w * s, group, zero_point) / s
            err += (xs @ wq.T - y).pow(2).sum().item()
        if err < best[1]:
            best = (s, err, alpha)
    return best[0], best[2]


def awq_scale_weights(config: ModelConfig, weights: dict[str, torch.Tensor], calibration_ids: list[int],
                      group: int, zero_point: bool = True) -> dict[str, torch.Tensor]:
    """A copy of `weights` (HF names, float) with AWQ scales folded in (the same float model)."""
    c = config
    w = {k: v.float() for k, v in weights.items()}  # entries are replaced, never written in place
    tokens = torch.tensor(calibration_ids, dtype=torch.int64)
    t = len(calibration_ids)
    cos, sin = rope_tables(c, t)
    positions = torch.arange(t)
    H, Hkv, D = c.num_heads, c.num_kv_heads, c.head_dim
    x = w["model.embed_tokens.weight"][tokens]
    alphas = []

    def scale_group(inp: torch.Tensor, names: list[str]) -> torch.Tensor:
        s, alpha = search_scales(inp, [w[n] for n in names], group, zero_point)
        for n in names:
            w[n] = w[n] * s
        alphas.append(alpha)
        return s

    with torch.no_grad():
        for i in range(c.num_layers):
            p = f"model.layers.{i}."
            if any(f"{p}{n}.bias" in w for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")) \
                    or c.qk_norm:
                log(1, f"awq: layer {i} has q/k/v biases or q/k norms: its attention keeps plain RTN")
                attn_names = []
            else:
                attn_names = [p + f"self_attn.{n}_proj.weight" for n in "qkv"]
            h = _rms(x, w[p + "input_layernorm.weight"], c.rms_norm_eps)
            if attn_names:
                s = scale_group(h, attn_names)
                w[p + "input_layernorm.weight"] = w[p + "input_layernorm.weight"] / s
                h = h / s
            q, k, v = (F.linear(h, w[p + f"self_attn.{n}_proj.weight"], w.get(p + f"self_attn.{n}_proj.bias"))
                       for n in "qkv")
            q, k = rope_reference(q, positions, cos, sin, D), rope_reference(k, positions, cos, sin, D)
            heads = lambda z, n: z.view(t, n, D).transpose(0, 1)  # noqa: E731
            attn = F.scaled_dot_product_attention(heads(q, H), heads(k, Hkv).repeat_interleave(H // Hkv, 0),
                                                  heads(v, Hkv).repeat_interleave(H // Hkv, 0), is_causal=True)
            attn = attn.transpose(0, 1).reshape(t, H * D)
            if H == Hkv and attn_names:  # O's input channels are V's rows: fold 1/s there
                s = scale_group(attn, [p + "self_attn.o_proj.weight"])
                w[p + "self_attn.v_proj.weight"] = w[p + "self_attn.v_proj.weight"] / s[:, None]
                attn = attn / s
            x = x + F.linear(attn, w[p + "self_attn.o_proj.weight"])
            h = _rms(x, w[p + "post_attention_layernorm.weight"], c.rms_norm_eps)
            s = scale_group(h, [p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"])
            w[p + "post_attention_layernorm.weight"] = w[p + "post_attention_layernorm.weight"] / s
            h = h / s
            act = F.silu(F.linear(h, w[p + "mlp.gate_proj.weight"])) * F.linear(h, w[p + "mlp.up_proj.weight"])
            s = scale_group(act, [p + "mlp.down_proj.weight"])
            w[p + "mlp.up_proj.weight"] = w[p + "mlp.up_proj.weight"] / s[:, None]
            x = x + F.linear(act / s, w[p + "mlp.down_proj.weight"])
    log(1, f"awq: {len(alphas)} groups, mean alpha {sum(alphas) / max(1, len(alphas)):.2f}")
    return w
