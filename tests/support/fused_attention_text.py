"""The attention block as the Llama family builds it, in Graph IR text: one rope over q|k|v that
rotates q and k (v passes through), one kv_store of k|v into a cache whose heads [0, Hkv) are K and
[Hkv, 2 Hkv) are V, and attention over slices of that cache. 6 heads, 2 kv heads, head_dim 12."""
import torch

H, HKV, D, S, CTX = 6, 2, 12, 3, 40
FUSED_ATTENTION_TEXT = f"""
    %qkv = input() {{name="qkv"}} : f32[T, {(H + 2 * HKV) * D}]
    %pos = input() {{name="pos"}} : i64[T]
    %slots = input() {{name="slots"}} : i64[T]
    %cache = input() {{name="cache"}} : f32[{S}, {2 * HKV}, {CTX}, {D}]
    %cos = weight() {{name="cos"}} : f32[{CTX}, {D // 2}]
    %sin = weight() {{name="sin"}} : f32[{CTX}, {D // 2}]
    %0 = rope(%qkv, %pos, %cos, %sin) {{head_dim={D}, rotary_heads={H + HKV}}} : f32[T, {(H + 2 * HKV) * D}]
    %1 = slice(%0) {{axis=1, start={H * D}, stop={(H + 2 * HKV) * D}}} : f32[T, {2 * HKV * D}]
    %2 = kv_store(%cache, %1, %slots, %pos) : f32[{S}, {2 * HKV}, {CTX}, {D}]
    %3 = slice(%0) {{axis=1, start=0, stop={H * D}}} : f32[T, {H * D}]
    %4 = slice(%2) {{axis=1, start=0, stop={HKV}}} : f32[{S}, {HKV}, {CTX}, {D}]
    %5 = slice(%2) {{axis=1, start={HKV}, stop={2 * HKV}}} : f32[{S}, {HKV}, {CTX}, {D}]
    %6 = attention(%3, %4, %5, %slots, %pos) {{num_heads={H}, num_kv_heads={HKV}, head_dim={D}, scale=0.25}} : f32[T, {H * D}]
    return out=%6, cache=%2"""


def fused_attention_case(slots: list[int], positions: list[int], seed: int = 0):
    """(weights, feeds): rope tables, a random qkv and a random cache (earlier rows already written)."""
    g = torch.Generator().manual_seed(seed)
    ang = torch.arange(CTX)[:, None] * (10000.0 ** (-torch.arange(D // 2) / (D // 2)))[None]
    weights = {"cos": ang.cos().contiguous(), "sin": ang.sin().contiguous()}
    t = len(slots)
    feeds = {"qkv": torch.randn(t, (H + 2 * HKV) * D, generator=g), "pos": torch.tensor(positions),
             "slots": torch.tensor(slots), "cache": torch.randn(S, 2 * HKV, CTX, D, generator=g)}
    return weights, feeds
