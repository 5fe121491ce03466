"""One attention layer in Graph IR text: a rope over q|k|v, one k|v cache write, attention over the
cache, for the decode-rows tests of the pass (tests/passes) and of the Triton kernels
(tests/codegen/triton).

Imported as `kv_layer_text` (the conftests of tests/codegen and tests/passes put tests/support on
sys.path)."""
from __future__ import annotations


def kv_layer_text(h: int, hkv: int, d: int, slots: int, context: int, scale: float = 0.3) -> str:
    width, kv = (h + 2 * hkv) * d, 2 * hkv * d
    attrs = f"{{head_dim={d}, num_heads={h}, num_kv_heads={hkv}, scale={scale}}}"
    return f"""
    %qkv = input() {{name="qkv"}} : f32[T, {width}]
    %pos = input() {{name="pos"}} : i64[T]
    %slots = input() {{name="slots"}} : i64[T]
    %cache = input() {{name="cache"}} : f32[{slots}, {2 * hkv}, {context}, {d}]
    %cos = weight() {{name="cos"}} : f32[{context}, {d // 2}]
    %sin = weight() {{name="sin"}} : f32[{context}, {d // 2}]
    %0 = rope(%qkv, %pos, %cos, %sin) {{head_dim={d}, rotary_heads={h + hkv}}} : f32[T, {width}]
    %1 = slice(%0) {{axis=1, start={h * d}, stop={width}}} : f32[T, {kv}]
    %2 = kv_store(%cache, %1, %slots, %pos) : f32[{slots}, {2 * hkv}, {context}, {d}]
    %3 = slice(%2) {{axis=1, start=0, stop={hkv}}} : f32[{slots}, {hkv}, {context}, {d}]
    %4 = slice(%2) {{axis=1, start={hkv}, stop={2 * hkv}}} : f32[{slots}, {hkv}, {context}, {d}]
    %5 = slice(%0) {{axis=1, start=0, stop={h * d}}} : f32[T, {h * d}]
    %6 = attention(%5, %3, %4, %slots, %pos) {attrs} : f32[T, {h * d}]
    return out=%6, cache=%2"""
