"""The per-layer subgraphs of a decoder, as plain PyTorch modules (what the kernel suite compiles).

Each case is written the way the transformers Llama/Qwen2 code writes it (RMSNorm upcast to
float32, rotate-half RoPE from cos/sin tables, scaled_dot_product_attention with GQA), so braze
sees through torch.export the same ATen a user's model gives it. Weights: std 0.02 normal, norm
weights 1 + small noise; activations: standard normal.

    module, inputs = build_case("decoder_block", MODEL_CONFIGS["tinyllama-1.1b"], seq=128,
                                dtype=torch.bfloat16, device="cuda")
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CASES = ("rmsnorm", "qkv_proj", "rope", "attention", "o_proj", "gate_up", "silu_mul", "down_proj",
         "residual_add", "decoder_block")


class Dims:
    """The sizes a layer needs, from an HF config dict."""

    def __init__(self, cfg: dict):
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg.get("num_key_value_heads", self.heads)
        self.head_dim = cfg.get("head_dim") or self.hidden // self.heads
        self.inter = cfg["intermediate_size"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.theta = cfg.get("rope_theta", 10000.0)
        # Qwen2 has q/k/v biases (attention_bias is absent from its config)
        self.qkv_bias = cfg.get("attention_bias", cfg.get("model_type") == "qwen2")
        self.q_size, self.kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_tables(d: Dims, seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (d.theta ** (torch.arange(0, d.head_dim, 2, dtype=torch.float32) / d.head_dim))
    freqs = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class Rotary(nn.Module):
    """q [1, H, S, D], k [1, Hkv, S, D] rotated at positions 0..S-1."""

    def __init__(self, d: Dims, seq: int):
        super().__init__()
        cos, sin = rope_tables(d, seq)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)

    def forward(self, q, k):
        return q * self.cos + rotate_half(q) * self.sin, k * self.cos + rotate_half(k) * self.sin


class CausalAttention(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


class SiluMul(nn.Module):
    def forward(self, gate, up):
        return F.silu(gate) * up


class ResidualAdd(nn.Module):
    def forward(self, x, y):
        return x + y


class DecoderBlock(nn.Module):
    """A Llama/Qwen2 decoder layer over a full prompt (no cache): q|k|v and gate|up as one matmul each,
    as vLLM and gpt-fast store them."""

    def __init__(self, d: Dims, seq: int):
        super().__init__()
        self.d = d
        self.input_layernorm = RMSNorm(d.hidden, d.eps)
        self.qkv_proj = nn.Linear(d.hidden, d.q_size + 2 * d.kv_size, bias=d.qkv_bias)
        self.rotary = Rotary(d, seq)
        self.attn = CausalAttention()
        self.o_proj = nn.Linear(d.q_size, d.hidden, bias=False)
        self.post_attention_layernorm = RMSNorm(d.hidden, d.eps)
        self.gate_up_proj = nn.Linear(d.hidden, 2 * d.inter, bias=False)
        self.act = SiluMul()
        self.down_proj = nn.Linear(d.inter, d.hidden, bias=False)

    def forward(self, x):
        d, (b, s, _) = self.d, x.shape
        q, k, v = self.qkv_proj(self.input_layernorm(x)).split([d.q_size, d.kv_size, d.kv_size], dim=-1)
        q = q.view(b, s, d.heads, d.head_dim).transpose(1, 2)
        k = k.view(b, s, d.kv_heads, d.head_dim).transpose(1, 2)
        v = v.view(b, s, d.kv_heads, d.head_dim).transpose(1, 2)
        q, k = self.rotary(q, k)
        y = self.attn(q, k, v).transpose(1, 2).reshape(b, s, d.q_size)
        h = x + self.o_proj(y)
        gate, up = self.gate_up_proj(self.post_attention_layernorm(h)).chunk(2, dim=-1)
        return h + self.down_proj(self.act(gate, up))


def _randomize(module: nn.Module, gen: torch.Generator) -> None:
    for name, p in module.named_parameters():
        with torch.no_grad():
            if "layernorm" in name or name == "weight" and p.dim() == 1:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))


def build_case(case: str, cfg: dict, seq: int, dtype: torch.dtype, device: str,
               seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """(module in eval mode on device/dtype, example inputs) for one case at batch 1."""
    d = Dims(cfg)
    heads = {"q": (1, d.heads, seq, d.head_dim), "kv": (1, d.kv_heads, seq, d.head_dim)}
    modules = {
        "rmsnorm": (lambda: RMSNorm(d.hidden, d.eps), [(1, seq, d.hidden)]),
        "qkv_proj": (lambda: nn.Linear(d.hidden, d.q_size + 2 * d.kv_size, bias=d.qkv_bias), [(1, seq, d.hidden)]),
        "rope": (lambda: Rotary(d, seq), [heads["q"], heads["kv"]]),
        "attention": (CausalAttention, [heads["q"], heads["kv"], heads["kv"]]),
        "o_proj": (lambda: nn.Linear(d.q_size, d.hidden, bias=False), [(1, seq, d.q_size)]),
        "gate_up": (lambda: nn.Linear(d.hidden, 2 * d.inter, bias=False), [(1, seq, d.hidden)]),
        "silu_mul": (SiluMul, [(1, seq, d.inter), (1, seq, d.inter)]),
        "down_proj": (lambda: nn.Linear(d.inter, d.hidden, bias=False), [(1, seq, d.inter)]),
        "residual_add": (ResidualAdd, [(1, seq, d.hidden), (1, seq, d.hidden)]),
        "decoder_block": (lambda: DecoderBlock(d, seq), [(1, seq, d.hidden)]),
    }
    if case not in modules:
        raise ValueError(f"unknown case {case!r}; choose from: {', '.join(CASES)}")
    make, shapes = modules[case]
    gen = torch.Generator().manual_seed(seed)
    module = make()
    _randomize(module, gen)
    module = module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    inputs = tuple(torch.randn(s, generator=gen).to(device=device, dtype=dtype) for s in shapes)
    return module, inputs
