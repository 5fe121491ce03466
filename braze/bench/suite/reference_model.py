"""A clean static-KV-cache PyTorch decoder (the gpt-fast recipe) for Llama and Qwen2 checkpoints.

Parameters carry Hugging Face names (model.layers.0.self_attn.q_proj.weight, ...), so a
checkpoint's state dict loads as is. The KV cache is preallocated [B, Hkv, max_seq, D] and written
with index_copy_ at input_pos; attention runs over the whole cache with a causal mask picked by
input_pos, so every decode step has the same shapes (what CUDA graphs need).

    model = Transformer.from_state_dict(config, state_dict)      # config: braze ModelConfig
    model.setup_caches(max_batch=1, max_seq=512)
    logits = model(tokens, input_pos)                            # tokens [B, T], input_pos [T]
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from braze.models.config import ModelConfig


def rope_inv_freq(config: ModelConfig) -> torch.Tensor:
    """Inverse frequencies of RoPE, with llama3 (or linear) scaling applied as transformers does."""
    d = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    scaling = config.rope_scaling
    kind = (scaling or {}).get("rope_type", "default")
    if kind == "default":
        return inv_freq
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind != "llama3":
        raise NotImplementedError(f"reference model: rope_type {kind!r} is not implemented")
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class KVCache(nn.Module):
    def __init__(self, max_batch: int, kv_heads: int, max_seq: int, head_dim: int, dtype, device):
        super().__init__()
        shape = (max_batch, kv_heads, max_seq, head_dim)
        self.register_buffer("k_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Write k, v [B, Hkv, T, D] at positions input_pos [T]; return the whole caches."""
        self.k_cache.index_copy_(2, input_pos, k)
        self.v_cache.index_copy_(2, input_pos, v)
        return self.k_cache, self.v_cache


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = c.num_heads, c.num_kv_heads, c.head_dim
        q_out, kv_out = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, q_out, bias=c.attention_bias)
        self.k_proj = nn.Linear(c.hidden_size, kv_out, bias=c.attention_bias)
        self.v_proj = nn.Linear(c.hidden_size, kv_out, bias=c.attention_bias)
        self.o_proj = nn.Linear(q_out, c.hidden_size, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(self, x, cos, sin, mask, input_pos):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        k, v = self.kv_cache.update(input_pos, k, v)
        rep = self.heads // self.kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, mask, input_pos):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, input_pos)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.num_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.qk_norm:
            raise NotImplementedError("reference model: q/k norm (Qwen3) is not implemented")
        self.config = config
        self.model = Body(config)
        self.lm_head = None if config.tie_word_embeddings else nn.Linear(config.hidden_size, config.vocab_size,
                                                                          bias=False)
        self.max_seq = 0

    @classmethod
    def from_state_dict(cls, config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> "Transformer":
        """Build without allocating, then take the state dict's tensors themselves (no copy)."""
        with torch.device("meta"):
            model = cls(config)
        state = {k: v for k, v in state_dict.items() if not k.endswith("rotary_emb.inv_freq")}
        if config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        model.load_state_dict(state, strict=True, assign=True)
        return model.eval().requires_grad_(False)

    def setup_caches(self, max_batch: int, max_seq: int) -> None:
        """(Re)allocate the KV caches, causal mask and RoPE tables for max_seq positions."""
        c, weight = self.config, self.model.embed_tokens.weight
        dtype, device = weight.dtype, weight.device
        self.max_seq = max_seq
        for layer in self.model.layers:
            layer.self_attn.kv_cache = KVCache(max_batch, c.num_kv_heads, max_seq, c.head_dim, dtype, device)
        freqs = torch.outer(torch.arange(max_seq, dtype=torch.float32), rope_inv_freq(c))
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("rope_cos", emb.cos().to(device=device, dtype=dtype), persistent=False)
        self.register_buffer("rope_sin", emb.sin().to(device=device, dtype=dtype), persistent=False)
        mask = torch.tril(torch.ones(max_seq, max_seq, dtype=torch.bool, device=device))
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, idx: torch.Tensor, input_pos: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Logits [B, T, V] for tokens idx [B, T] at positions input_pos [T] (only the last with last_only)."""
        mask = self.causal_mask[None, None, input_pos]
        cos, sin = self.rope_cos[input_pos], self.rope_sin[input_pos]
        x = self.model.embed_tokens(idx)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask, input_pos)
        if last_only:
            x = x[:, -1:]
        x = self.model.norm(x)
        head = self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, head)


def prefill(model: Transformer, idx: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
    """Run the prompt; the greedy next token [B, 1]."""
    return model(idx, input_pos, last_only=True)[:, -1].argmax(dim=-1, keepdim=True)


def decode_one_token(model: Transformer, cur: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
    """One step: token cur [B, 1] at input_pos [1]; the greedy next token [B, 1]."""
    return model(cur, input_pos)[:, -1].argmax(dim=-1, keepdim=True)


def generate(model: Transformer, prompt: torch.Tensor, new_tokens: int, decode_fn=decode_one_token,
             prefill_fn=prefill) -> torch.Tensor:
    """Greedy: prefill prompt [B, T], then new_tokens - 1 decode steps; all new tokens [B, new_tokens]."""
    t = prompt.shape[1]
    device = prompt.device
    cur = prefill_fn(model, prompt, torch.arange(t, device=device))
    out = [cur]
    input_pos = torch.tensor([t], device=device, dtype=torch.int64)
    for _ in range(new_tokens - 1):
        cur = decode_fn(model, cur, input_pos).clone()
        input_pos += 1
        out.append(cur)
    return torch.cat(out, dim=1)
