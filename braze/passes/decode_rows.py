"""Decode's new cache rows written by the attention that reads them: one kernel less per layer.

A decode step feeds one token per sequence. Its layer writes the token's k|v row into the cache
(kv_store) and the attention then reads the cache rows 0..position, that new row included. When
every token of the step is the only new one of its sequence, the attention can take the new row
from the kv_store's input instead of from the cache, and write it into the cache itself: the
kv_store launch (2.1 us of TinyLlama's 48 us layer on an H100, a dependent link of the chain the
GPU runs one kernel after another) is not made.

The pass only tags: the kv_store gets attr `decode_rows_by` = the attention's name, and the
attention gets `decode_rows_of` = the kv_store's name. The tags change no semantics: the
interpreter, the C++ backend and every step that is not a decode step run both kernels as written.
The Triton launchers read the step's `decode_step` flag (braze.codegen.triton.module.DECODE_STEP,
set by the engine's decode steps and CUDA graphs): with it the kv_store launches nothing and the
decode attention runs one more program per (token, kv head) for the new row; without it both run
as before. Only where kernels launch without PDL (programmatic dependent launch: pre-Hopper GPUs,
BRAZE_PDL=0): on an H100 with PDL the kv_store cost little and the extra program more
(EmitContext.decode_rows has the numbers).

A pair is tagged when
  - the attention reads the kv_store's cache (k heads [0, Hkv), v heads [Hkv, 2 Hkv) of it, the
    layout `kv_store` writes from x's heads), from a cache without a block table;
  - x is a [T, 2 Hkv D] view of the buffer the attention reads q from (so x stays live until the
    attention: the memory plan sees q), at the same slots and positions;
  - a RoPE fused into the kv_store rotates k heads only, with the attention's own tables;
  - no kernel between them touches the cache or writes x, slots or positions.
Batch-invariant programs drop the tags (braze/passes/batch_invariant.py): the new row's score is
summed in another order than the cache rows' tl.dot, so a token decoded alone and the same token
in a mixed step could differ in the last bits.
"""
from __future__ import annotations

from dataclasses import replace

from braze.ir.kernel import Kernel, Program, View, fused_rope, without_attrs

TAGS = ("decode_rows_by", "decode_rows_of")


def _cache_heads(cache: View, first: int, count: int) -> View:
    """Heads [first, first + count) of a [S, 2 Hkv, C, D] cache view, as a slice would view them."""
    shape = (cache.shape[0], count) + tuple(cache.shape[2:])
    return View(cache.buffer, shape, cache.strides, cache.offset + first * cache.strides[1])


def _pairs(store: Kernel, attention: Kernel) -> bool:
    store_ops, store_rope = fused_rope(store)
    att_ops, att_rope = fused_rope(attention)
    if len(store_ops) != 3 or len(att_ops) != 5:  # a block table (paged cache): not handled here
        return False
    x, slots, positions = store_ops
    q, k_cache, v_cache, att_slots, att_positions = att_ops
    hkv, d = int(attention.attr("num_kv_heads")), int(attention.attr("head_dim"))
    cache = store.output
    if len(cache.shape) != 4 or cache.shape[1] != 2 * hkv or cache.shape[3] != d:
        return False
    if k_cache != _cache_heads(cache, 0, hkv) or v_cache != _cache_heads(cache, hkv, hkv):
        return False
    if (slots, positions) != (att_slots, att_positions) or x.buffer != q.buffer:
        return False
    if len(x.shape) != 2 or x.shape[1] != 2 * hkv * d:
        return False
    if store_rope is not None and (store_rope != att_rope or int(store.attr("rope_heads")) > hkv
                                   or int(store.attr("rope_head_dim")) != d):
        return False
    return True


def _untouched_between(kernels: tuple[Kernel, ...], store: Kernel) -> bool:
    cache = store.output.buffer
    written = {v.buffer for v in fused_rope(store)[0]} | {cache}  # none may be written in between
    for k in kernels:
        if k.output.buffer in written or any(v.buffer == cache for v in k.operands):
            return False
    return True


def write_decode_rows_in_attention(program: Program) -> Program:
    kernels = list(program.kernels)
    for i, store in enumerate(kernels):
        if store.kind != "kv_store" or store.attr("decode_rows_by") is not None:
            continue
        for j in range(i + 1, len(kernels)):
            reader = kernels[j]
            if reader.kind == "attention" and any(v.buffer == store.output.buffer for v in reader.operands):
                if _pairs(store, reader) and reader.attr("decode_rows_of") is None \
                        and _untouched_between(tuple(kernels[i + 1: j]), store):
                    kernels[i] = replace(store, attrs=store.attrs + (("decode_rows_by", reader.name),))
                    kernels[j] = replace(reader, attrs=reader.attrs + (("decode_rows_of", store.name),))
                break
    return replace(program, kernels=tuple(kernels))


def without_decode_rows(program: Program) -> Program:
    """The program with every kv_store and attention running as written, on every step."""
    return without_attrs(program, TAGS)
