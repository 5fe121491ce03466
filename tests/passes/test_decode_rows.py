"""write_decode_rows_in_attention: a kv_store and the attention reading its cache are tagged as a
pair (the Triton decode attention then writes the new rows itself); anything that could see the
cache between them, a paged cache, or a batch-invariant program leaves them untagged."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from braze.errors import GraphVerificationError
from braze.ir.kernel import Kernel, View
from braze.ir.kernel_verify import verify_program
from braze.ir.parse import parse_graph
from braze.passes.batch_invariant import make_batch_invariant
from braze.passes.decode_rows import write_decode_rows_in_attention
from braze.passes.pipeline import lower
from kv_layer_text import kv_layer_text  # (tests/support)

LAYER = kv_layer_text(2, 1, 8, 3, 8, scale=0.35)  # q|k|v heads 2|1|1 of 8, a [3, 2, 8, 8] cache
TABLES = {"cos": torch.randn(8, 4), "sin": torch.randn(8, 4)}


def _headers(program) -> list[str]:
    return [line for line in str(program).split("\n") if line.startswith("kernel ")]


def test_the_cache_write_and_its_attention_are_tagged_as_a_pair():
    program = lower(parse_graph(LAYER, TABLES, {"T": 4}))
    assert _headers(program) == [
        "kernel k0_kv_store kv_store rope_heads=1 rope_head_dim=8 decode_rows_by=k1_attention "
        "-> cache[3, 2, 8, 8; 128, 64, 8, 1]   # rope kv_store",
        "kernel k1_attention attention head_dim=8 num_heads=2 num_kv_heads=1 scale=0.35 rope_heads=2 "
        "rope_head_dim=8 decode_rows_of=k0_kv_store -> t0[T, 16; 16, 1]   # rope attention"]


def _untagged(program):
    return [k for k in program.kernels if k.attr("decode_rows_by") or k.attr("decode_rows_of")] == []


def test_a_kernel_reading_the_cache_in_between_keeps_both_kernels_as_written():
    program = lower(parse_graph(LAYER, TABLES, {"T": 4}))
    plain = write_decode_rows_in_attention(_strip(program))
    assert not _untagged(plain)  # the fixture pairs without the reader
    store, attention = plain.kernels[0], plain.kernels[1]
    reader = Kernel("k9_peek", "pointwise", (View("cache", (8,), (1,), 64),), View(program.kernels[-1].output.buffer,
                                                                                    (8,), (1,)))
    spliced = replace(_strip(program), kernels=(_strip_kernel(store), reader, _strip_kernel(attention))
                      + _strip(program).kernels[2:])
    assert _untagged(write_decode_rows_in_attention(spliced))


def test_a_paged_cache_is_left_alone():
    paged = LAYER.replace('%cache = input() {name="cache"} : f32[3, 2, 8, 8]',
                          '%cache = input() {name="cache"} : f32[3, 2, 8, 8]\n'
                          '    %bt = input() {name="bt"} : i32[3, 1]')
    paged = paged.replace("kv_store(%cache, %1, %slots, %pos)", "kv_store(%cache, %1, %slots, %pos, %bt)")
    paged = paged.replace("attention(%5, %3, %4, %slots, %pos)", "attention(%5, %3, %4, %slots, %pos, %bt)")
    assert _untagged(lower(parse_graph(paged, TABLES, {"T": 4})))


def test_batch_invariant_programs_drop_the_tags():
    program = lower(parse_graph(LAYER, TABLES, {"T": 4}))
    assert not _untagged(program)
    assert _untagged(make_batch_invariant(program))


def _strip_kernel(k: Kernel) -> Kernel:
    return replace(k, attrs=tuple(kv for kv in k.attrs if kv[0] not in ("decode_rows_by", "decode_rows_of")))


def _strip(program):
    return replace(program, kernels=tuple(_strip_kernel(k) for k in program.kernels))


def test_the_verifier_rejects_a_tag_without_its_partner():
    program = lower(parse_graph(LAYER, TABLES, {"T": 4}))
    store, attention = program.kernels[0], program.kernels[1]
    one_sided = replace(program, kernels=(store, _strip_kernel(attention)) + program.kernels[2:])
    with pytest.raises(GraphVerificationError, match="decode_rows_by=k1_attention does not name the attention after it"):
        verify_program(one_sided)
