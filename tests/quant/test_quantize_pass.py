"""The quantize pass in the IR's text form, its parse/print round trip, and the whole pipeline
against the interpreter."""
import torch

from braze.ir.interpret import interpret
from braze.ir.parse import parse_graph
from braze.ir.verify import verify_graph
from braze.passes.quantize import quantize_linears
from braze.quant.formats import quantize_int4
from braze.quant.methods import parse_method

BEFORE = """
%x = input() {name="x"} : f32[T, 64]
%q.weight = weight() {name="q.weight"} : f32[8, 64]
%k.weight = weight() {name="k.weight"} : f32[4, 64]
%0 = concat(%q.weight, %k.weight) {axis=0} : f32[12, 64]
%1 = linear(%x, %0) : f32[T, 12]
return y=%1
"""

EXPECTED = """
%x = input() {name="x"} : f32[T, 64]
%q.weight.qweight = weight() {name="q.weight.qweight"} : u8[8, 32]
%k.weight.qweight = weight() {name="k.weight.qweight"} : u8[4, 32]
%0 = concat(%q.weight.qweight, %k.weight.qweight) {axis=0} : u8[12, 32]
%q.weight.scales = weight() {name="q.weight.scales"} : f16[8, 2]
%k.weight.scales = weight() {name="k.weight.scales"} : f16[4, 2]
%1 = concat(%q.weight.scales, %k.weight.scales) {axis=0} : f16[12, 2]
%q.weight.mins = weight() {name="q.weight.mins"} : f16[8, 2]
%k.weight.mins = weight() {name="k.weight.mins"} : f16[4, 2]
%2 = concat(%q.weight.mins, %k.weight.mins) {axis=0} : f16[12, 2]
%3 = quantized_linear(%x, %0, %1, %2) {format="int4", group=32} : f32[T, 12]
return y=%3
"""


def _weights():
    gen = torch.Generator().manual_seed(0)
    return {"q.weight": torch.randn(8, 64, generator=gen), "k.weight": torch.randn(4, 64, generator=gen)}


def test_quantize_pass_before_expected():
    weights = _weights()
    before = parse_graph(BEFORE, weights, {"T": 4})
    after = verify_graph(quantize_linears(before, parse_method("int4-rtn-g32")))
    assert str(after) == str(parse_graph(EXPECTED, after.weights, {"T": 4}))
    assert str(before) == str(parse_graph(BEFORE, weights, {"T": 4}))  # pure: the input is untouched
    x = torch.randn(3, 64)
    w = torch.cat([quantize_int4(weights[n], 32).dequantize() for n in ("q.weight", "k.weight")])
    torch.testing.assert_close(interpret(after, {"x": x})["y"], x @ w.T, rtol=1e-5, atol=1e-5)


def test_quantized_linear_text_round_trip():
    weights = _weights()
    after = quantize_linears(parse_graph(BEFORE, weights, {"T": 4}), parse_method("int8"))
    text = str(after)
    assert 'quantized_linear(%x, %0, %1) {format="int8", group=64} : f32[T, 12]' in text
    assert str(parse_graph(text, after.weights, {"T": 4})) == text


def test_short_last_group_and_odd_k():
    weights = {"q.weight": torch.randn(8, 48), "k.weight": torch.randn(4, 48)}
    graph = parse_graph(BEFORE.replace("64]", "48]"), weights, {"T": 4})
    after = quantize_linears(graph, parse_method("int4-rtn-g32"))  # 48 = 32 + 16: two groups per row
    assert "f16[12, 2]" in str(after)
    x = torch.randn(2, 48)
    want = x @ torch.cat([quantize_int4(weights[n], 32).dequantize() for n in ("q.weight", "k.weight")]).T
    torch.testing.assert_close(interpret(after, {"x": x})["y"], want, rtol=1e-5, atol=1e-5)
    odd = {"q.weight": torch.randn(8, 47), "k.weight": torch.randn(4, 47)}
    graph = parse_graph(BEFORE.replace("64]", "47]"), odd, {"T": 4})
    assert "quantized_linear" not in str(quantize_linears(graph, parse_method("int4-rtn-g32")))  # int4 pairs
