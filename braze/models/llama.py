"""The Llama family as Graph IR: Llama, Mistral, Qwen2 (q/k/v bias), Qwen3 (q/k norm).

One decode or prefill step over a flat batch of T tokens from up to S sequences:
  tokens, positions, slots: [T]   (slot = the sequence's row in the KV cache)
  logits_index: [N]               (which tokens' logits to return: each sequence's last)
  kv_cache.i: [S, 2 * Hkv, C, D], returned updated (the engine donates it): heads [0, Hkv) hold
              K, heads [Hkv, 2 Hkv) hold V, so one kv_store writes both.
With paged=PagedLayout(num_blocks, block_size) the cache is a pool of fixed-size blocks instead:
  kv_cache.i: [num_blocks, 2 * Hkv, block_size, D]
  block_table: [S, ceil(C / block_size)] int32: sequence s's row p lives in block
              block_table[s, p // block_size] at row p % block_size (braze/runtime/kv_blocks.py
              hands the blocks out).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from braze.ir.builder import GraphBuilder
from braze.ir.graph import Graph, Node
from braze.models.config import ModelConfig
from braze.models.rope import rope_tables

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class PagedLayout:
    """A paged KV cache: num_blocks blocks of block_size rows, shared by all sequences."""

    num_blocks: int
    block_size: int

    def blocks_per_sequence(self, context: int) -> int:
        return -(-context // self.block_size)


def cache_shape(config: ModelConfig, max_seqs: int, context: int,
                paged: PagedLayout | None = None) -> tuple[int, int, int, int]:
    if paged is not None:
        return (paged.num_blocks, 2 * config.num_kv_heads, paged.block_size, config.head_dim)
    return (max_seqs, 2 * config.num_kv_heads, context, config.head_dim)


def build_llama(config: ModelConfig, weights: dict[str, torch.Tensor], dtype: str = "float32",
                max_seqs: int = 8, context: int = 512, max_tokens: int = 512, device: str = "cpu",
                paged: PagedLayout | None = None) -> Graph:
    """max_seqs: KV cache slots (block table rows when paged); context: cache rows per sequence;
    max_tokens: tokens per step (bound of T); paged: a block pool instead of one slot per sequence.
    Weights are cast (and moved to `device`, where constant folding then runs) once."""
    c = config
    b = GraphBuilder(symbols={"T": max_tokens, "N": max_seqs}, name=c.architecture)
    cast = lambda t: t.to(device=device, dtype=TORCH_DTYPES[dtype])  # noqa: E731
    W = lambda name: b.weight(name, cast(weights[name]))  # noqa: E731
    D, H, Hkv = c.head_dim, c.num_heads, c.num_kv_heads

    tokens = b.input("tokens", ("T",), "int64")
    positions = b.input("positions", ("T",), "int64")
    slots = b.input("slots", ("T",), "int64")
    block_table = None if paged is None else \
        b.input("block_table", (max_seqs, paged.blocks_per_sequence(context)), "int32")
    logits_index = b.input("logits_index", ("N",), "int64")
    cos_table, sin_table = rope_tables(c, context)
    cos, sin = b.weight("rope.cos", cast(cos_table)), b.weight("rope.sin", cast(sin_table))

    def linear(x: Node, name: str, bias: bool = False) -> Node:
        y = b.matmul(x, b.transpose(W(name + ".weight")))
        return b.add(y, W(name + ".bias")) if bias else y

    def head_norm(x: Node, heads: int, name: str) -> Node:  # Qwen3: RMSNorm over each head's D
        per_head = b.rms_norm(b.reshape(x, ("T", heads, D)), W(name), c.rms_norm_eps)
        return b.reshape(per_head, ("T", heads * D))

    x = b.gather(W("model.embed_tokens.weight"), tokens)  # x: [T, hidden]
    new_caches: dict[str, Node] = {}
    for i in range(c.num_layers):
        p = f"model.layers.{i}."
        h = b.rms_norm(x, W(p + "input_layernorm.weight"), c.rms_norm_eps)
        q = linear(h, p + "self_attn.q_proj", c.attention_bias)  # q: [T, H*D]
        k = linear(h, p + "self_attn.k_proj", c.attention_bias)  # k, v: [T, Hkv*D]
        v = linear(h, p + "self_attn.v_proj", c.attention_bias)
        if c.qk_norm:
            q = head_norm(q, H, p + "self_attn.q_norm.weight")
            k = head_norm(k, Hkv, p + "self_attn.k_norm.weight")
        # one rope over q|k|v (q and k rotate, v passes through), then one cache write of k|v: after
        # the layout pass merges the projections, the concat is the QKV linear's output itself
        qkv = b.rope(b.concat([q, k, v], axis=1), positions, cos, sin, D, rotary_heads=H + Hkv)
        kv = b.slice(qkv, 1, H * D, (H + 2 * Hkv) * D)  # [T, 2*Hkv*D]
        kv_cache = b.kv_store(b.input(f"kv_cache.{i}", cache_shape(c, max_seqs, context, paged), dtype), kv,
                              slots, positions, block_table)
        new_caches[f"kv_cache.{i}"] = kv_cache
        k_cache, v_cache = b.slice(kv_cache, 1, 0, Hkv), b.slice(kv_cache, 1, Hkv, 2 * Hkv)
        attn = b.attention(b.slice(qkv, 1, 0, H * D), k_cache, v_cache, slots, positions, H, Hkv, D,
                           1.0 / math.sqrt(D), block_table)
        x = b.add(x, linear(attn, p + "self_attn.o_proj"))

        h = b.rms_norm(x, W(p + "post_attention_layernorm.weight"), c.rms_norm_eps)
        gate, up = linear(h, p + "mlp.gate_proj"), linear(h, p + "mlp.up_proj")  # [T, intermediate]
        x = b.add(x, linear(b.mul(b.silu(gate), up), p + "mlp.down_proj"))

    last = b.gather(x, logits_index)  # only the tokens whose next token we sample: [N, hidden]
    last = b.rms_norm(last, W("model.norm.weight"), c.rms_norm_eps)
    head = "model.embed_tokens" if c.tie_word_embeddings else "lm_head"
    logits = b.cast(linear(last, head), "float32")  # logits: [N, vocab]
    return b.build({"logits": logits, **new_caches})


MODEL_BUILDERS = {
    "LlamaForCausalLM": build_llama,
    "MistralForCausalLM": build_llama,
    "Qwen2ForCausalLM": build_llama,
    "Qwen3ForCausalLM": build_llama,
}
