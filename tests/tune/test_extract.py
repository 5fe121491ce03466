"""A kernel as a unit of tuning (braze/tune/extract.py): a matmul's L2 prefetch tag, which names
weights of the step's next kernels, is no part of its structure key or its stand-alone program; a decode-rows
tag, which names the kernel's partner, is part of the key but not of the stand-alone program."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

from braze.codegen.triton.attention import emit_attention
from braze.codegen.triton.matmul import emit_matmul
from braze.codegen.triton.module import EmitContext
from braze.ir.parse import parse_graph
from braze.passes.pipeline import lower
from braze.passes.prefetch import prefetch_weights_during_attention, without_prefetch
from braze.tune.extract import make_task, structure_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from kv_layer_text import kv_layer_text  # noqa: E402

LAYER = kv_layer_text(2, 1, 8, 3, 8).replace("return out=%6, cache=%2", """%wo = weight() {name="wo"} : f32[12, 16]
    %7 = linear(%6, %wo) : f32[T, 12]
    return out=%7, cache=%2""")
WEIGHTS = {"cos": torch.randn(8, 4), "sin": torch.randn(8, 4), "wo": torch.randn(12, 16)}


def test_a_prefetching_matmul_tunes_as_the_same_kernel_on_its_own():
    plain = without_prefetch(lower(parse_graph(LAYER, WEIGHTS, {"T": 4})))
    tagged = prefetch_weights_during_attention(plain, budget=1 << 20)
    before, after = (p.kernels[-1] for p in (plain, tagged))
    assert after.kind == "matmul" and after.attr("prefetch") == (("wo", 0, 192),)
    assert structure_key(after, tagged) == structure_key(before, plain)
    task = make_task(after, tagged, 1, {"T": 1}, "triton", "cpu")
    assert task.kernel.attr("prefetch") is None
    # the stand-alone program emits, prefetching GPU or not, without the prefetch
    assert "PF0" not in emit_matmul(task.kernel, EmitContext(task.program(), pdl=True, l2_prefetch=True)).launch


def test_a_decode_rows_pair_tunes_on_its_own_without_its_partner():
    program = without_prefetch(lower(parse_graph(LAYER, WEIGHTS, {"T": 4})))
    store, attention = program.kernels[:2]
    assert attention.attr("decode_rows_of") == store.name
    untagged = replace(attention, attrs=tuple(kv for kv in attention.attrs if kv[0] != "decode_rows_of"))
    assert structure_key(attention, program) != structure_key(untagged, program)
    for k in (store, attention):
        task = make_task(k, program, 1, {"T": 1}, "triton", "cpu")
        assert task.kernel.attr("decode_rows_of") is None and task.kernel.attr("decode_rows_by") is None
        assert task.key == structure_key(k, program)
    # without PDL the emitter honours the tags; the stand-alone attention has no kv_store to look up
    task = make_task(attention, program, 1, {"T": 1}, "triton", "cpu")
    assert "KV_NEW=0" in emit_attention(task.kernel, EmitContext(task.program(), pdl=False)).launch
