"""prefetch_weights_during_attention: the matmul right after an attention is tagged with the weights
it and the kernels after it read (up to the next attention; each kernel's largest), in their order,
cut at the byte budget; the verifier keeps the ranges inside weight buffers."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from braze.errors import GraphVerificationError, InvalidArgumentError
from braze.ir.kernel_verify import verify_program
from braze.ir.parse import parse_graph
from braze.passes.pipeline import lower
from braze.ir.kernel import View
from braze.passes.prefetch import prefetch_weights_during_attention, view_extent, without_prefetch
from braze.quant import parse_method
from kv_layer_text import kv_layer_text  # (tests/support)

# one layer's attention, then an O projection [12, 16] and an up projection [20, 12], float32
LAYER = kv_layer_text(2, 1, 8, 3, 8, scale=0.35).replace("return out=%6, cache=%2", """%wo = weight() {name="wo"} : f32[12, 16]
    %wu = weight() {name="wu"} : f32[20, 12]
    %7 = linear(%6, %wo) : f32[T, 12]
    %8 = linear(%7, %wu) : f32[T, 20]
    return out=%8, cache=%2""")
WEIGHTS = {"cos": torch.randn(8, 4), "sin": torch.randn(8, 4), "wo": torch.randn(12, 16), "wu": torch.randn(20, 12)}


def _program():
    return without_prefetch(lower(parse_graph(LAYER, WEIGHTS, {"T": 4})))


def _after_attention(program):
    return program.kernels[[k.kind for k in program.kernels].index("attention") + 1]


def test_the_matmul_after_the_attention_names_the_weights_read_from_it_on_in_order():
    tagged = prefetch_weights_during_attention(_program(), budget=1 << 20)
    header = next(line for line in str(tagged).split("\n") if line.startswith("kernel k2_matmul"))
    assert "weight=1 prefetch=(('wo', 0, 192), ('wu', 0, 240)) -> t1[T, 12; 12, 1]" in header
    assert [k.attr("prefetch") is None for k in tagged.kernels] == [True, True, False, True]


# the up projection reads an RMSNorm of the O projection's output: its matmul has a norm prologue
NORMED_LAYER = LAYER.replace("""%7 = linear(%6, %wo) : f32[T, 12]
    %8 = linear(%7, %wu) : f32[T, 20]""", """%g = weight() {name="g"} : f32[12]
    %7 = linear(%6, %wo) : f32[T, 12]
    %n = rms_norm(%7, %g) {eps=1e-05} : f32[T, 12]
    %8 = linear(%n, %wu) : f32[T, 20]""")


@pytest.mark.parametrize("quant, expected", [
    (None, (("wo", 0, 192), ("wu", 0, 240))),  # not the norm's vector g
    ("int4-rtn-g32", None),                    # packed int4: left out, and not for its float scales either
])
def test_each_kernel_contributes_its_largest_float_weight(quant, expected):
    program = lower(parse_graph(NORMED_LAYER, {**WEIGHTS, "g": torch.ones(12)}, {"T": 4}),
                    quant=parse_method(quant) if quant else None)
    up = program.kernels[-1]
    assert "g" in [v.buffer for v in up.operands] and len(up.operands) == (3 if quant is None else 5)
    assert _after_attention(prefetch_weights_during_attention(without_prefetch(program), budget=1 << 20)).attr("prefetch") == expected


def test_the_budget_cuts_the_last_range():
    # 768 bytes of wo, then 232 of the 1,000 left for wu: 58 float32 elements
    assert _after_attention(prefetch_weights_during_attention(_program(), budget=1000)).attr("prefetch") == (
        ("wo", 0, 192), ("wu", 0, 58))
    assert _after_attention(prefetch_weights_during_attention(_program(), budget=400)).attr("prefetch") == (("wo", 0, 100),)


def test_no_budget_no_tag():
    assert _after_attention(prefetch_weights_during_attention(_program(), budget=0)).attr("prefetch") is None


def test_weights_after_the_next_attention_belong_to_it():
    program = _program()
    kv_store, attention, o_proj, up_proj = program.kernels
    second = replace(attention, name="k9_attention", attrs=tuple(kv for kv in attention.attrs
                                                               if kv[0] != "decode_rows_of"))
    spliced = replace(program, kernels=(kv_store, attention, o_proj, second, up_proj))
    tagged = prefetch_weights_during_attention(spliced, budget=1 << 20)
    assert [k.attr("prefetch") for k in tagged.kernels] == [None, None, (("wo", 0, 192),), None, (("wu", 0, 240),)]


def test_the_default_pipeline_tags_decode_after_attention(monkeypatch):
    monkeypatch.setenv("BRAZE_PREFETCH_MB", "0.001")  # 1,048 bytes: wo whole, 70 elements of wu
    assert _after_attention(lower(parse_graph(LAYER, WEIGHTS, {"T": 4}))).attr("prefetch") == (("wo", 0, 192), ("wu", 0, 70))
    monkeypatch.setenv("BRAZE_PREFETCH_MB", "0")
    assert _after_attention(lower(parse_graph(LAYER, WEIGHTS, {"T": 4}))).attr("prefetch") is None
    monkeypatch.delenv("BRAZE_PREFETCH_MB")  # the default, 16 MB: both weights whole
    assert _after_attention(lower(parse_graph(LAYER, WEIGHTS, {"T": 4}))).attr("prefetch") == (("wo", 0, 192), ("wu", 0, 240))


@pytest.mark.parametrize("value", ["16MB", "-1", "nan"])
def test_a_bad_budget_in_the_environment_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("BRAZE_PREFETCH_MB", value)
    with pytest.raises(InvalidArgumentError, match=f"BRAZE_PREFETCH_MB='{value}' is not a size"):
        lower(parse_graph(LAYER, WEIGHTS, {"T": 4}))


@pytest.mark.parametrize("ranges, message", [
    ((("wo", 100, 93),), r"prefetch of elements \[100, 193\) of wo, which has 192"),
    ((("cache", 0, 8),), "prefetch names cache, which is not a weight buffer"),
])
def test_the_verifier_rejects_ranges_outside_weights(ranges, message):
    program = _program()
    bad = replace(program, kernels=tuple(replace(k, attrs=k.attrs + (("prefetch", ranges),)) if k.kind == "attention"
                                         else k for k in program.kernels))
    with pytest.raises(GraphVerificationError, match=message):
        verify_program(bad)


def test_view_extent_spans_what_a_view_reads():
    assert view_extent(View("w", (12, 16), (16, 1), 32)) == (32, 192)
    assert view_extent(View("w", (12, 16), (1, 12))) == (0, 192)     # transposed
    assert view_extent(View("w", (4, 16), (0, 1), 5)) == (5, 16)     # broadcast rows read one row
    assert view_extent(View("w", ("T", 16), (16, 1))) == (0, 0)      # unsized
