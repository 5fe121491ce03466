"""Graph IR: printer/parser round trip, shape inference (`make`), and the verifier."""
from __future__ import annotations

import pytest
import torch

from braze.errors import GraphVerificationError
from braze.ir.graph import Graph, make
from braze.ir.ops import ShapeError
from braze.ir.parse import parse_graph
from braze.ir.verify import verify_graph

ROUND_TRIP = """\
%x = input() {name="x"} : f32[T, 64]
%w = weight() {name="w"} : f32[64]
%0 = rms_norm(%x, %w) {eps=1e-06} : f32[T, 64]
%1 = reshape(%0) {shape=["T", 4, 16]} : f32[T, 4, 16]
%2 = transpose(%1) {perm=[1, 0, 2]} : f32[4, T, 16]
%3 = slice(%0) {axis=-1, start=8, stop=40} : f32[T, 32]
%4 = constant() {value=0.5} : f32[]
%5 = mul(%3, %4) : f32[T, 32]
%6 = cast(%5) {dtype="bfloat16"} : bf16[T, 32]
%7 = sum(%0) : f32[T, 1]
%idx = input() {name="idx"} : i64[N]
%8 = gather(%x, %idx) : f32[N, 64]
%model.layers.0.w|x.T' = weight() {name="model.layers.0.w|x.T'"} : f32[64, 64]
%9 = linear(%8, %model.layers.0.w|x.T') : f32[N, 64]
%10 = constant() {value=-3} : i32[]
return out=%2, half=%6, red=%7, logits=%9, c=%10"""


def _w(*shape):
    return torch.randn(*shape)


def test_print_parse_round_trip():
    g = parse_graph(ROUND_TRIP, symbols={"T": 8, "N": 2})
    assert str(g) == ROUND_TRIP
    assert [name for name, _ in g.outputs] == ["out", "half", "red", "logits", "c"]
    # attrs come back with their Python types (lists frozen into tuples)
    nodes = {n.op: n for n in g.nodes}
    assert nodes["reshape"].attr("shape") == ("T", 4, 16)
    assert nodes["transpose"].attr("perm") == (1, 0, 2)
    assert nodes["rms_norm"].attr("eps") == 1e-06
    assert nodes["cast"].attr("dtype") == "bfloat16"
    assert str(parse_graph(str(g))) == ROUND_TRIP


def test_round_trip_nested_and_empty_attrs():
    # attrs of every kind the printer writes: int, negative, float, string, list, empty list, dict
    x = make("input", shape=("T", 4), dtype="float32", name="x")
    y = make("relu", (x,), note="hi there", k=-2, f=2.5, xs=[1, 2, 3], empty=[], d={"a": 1, "b": [2.0, "z"]})
    g = Graph((("y", y),), symbols={"T": 3})
    text = str(g)
    assert 'd={a=1, b=[2.0, "z"]}' in text and "empty=[]" in text
    g2 = parse_graph(text)
    assert str(g2) == text
    assert g2.outputs[0][1].attrs == y.attrs


def test_parser_accepts_comments_and_blank_lines():
    text = """
    # a comment
    %x = input() {name="x"} : f32[T, 4]   # trailing comment

    %0 = exp(%x) : f32[T, 4]
    return y=%0
    """
    assert str(parse_graph(text)) == '%x = input() {name="x"} : f32[T, 4]\n%0 = exp(%x) : f32[T, 4]\nreturn y=%0'


@pytest.mark.parametrize("bad_type", ["f32[T, 5]", "f16[T, 4]", "f32[T, 1]", "f32[4, T]"])
def test_parser_rejects_annotation_that_disagrees_with_inference(bad_type):
    text = f'%x = input() {{name="x"}} : f32[T, 4]\n%0 = exp(%x) : {bad_type}\nreturn y=%0'
    with pytest.raises(ValueError, match="line 2: annotated"):
        parse_graph(text)


def test_parser_rejects_garbage_line():
    with pytest.raises(ValueError, match="line 1: cannot parse"):
        parse_graph("%x = input( : f32[T]")


# ---------------------------------------------------------------- shape inference

def inp(shape, dtype="float32", name="x"):
    return make("input", shape=tuple(shape), dtype=dtype, name=name)


@pytest.mark.parametrize("a, b, out", [
    (("T", 8), (8,), ("T", 8)),
    (("T", 8), ("T", 1), ("T", 8)),
    (("T", 1), (1, 8), ("T", 8)),
    ((3, 1, 8), (5, 1), (3, 5, 8)),
    ((), ("T", 8), ("T", 8)),
    (("T", 1), ("T", 1), ("T", 1)),
])
def test_broadcasting(a, b, out):
    assert make("add", (inp(a), inp(b, name="y"))).shape == out
    assert make("mul", (inp(b), inp(a, name="y"))).shape == out


@pytest.mark.parametrize("a, b", [(("T", 8), (7,)), (("T", 8), ("N", 8)), (("T", 8), (8, 8))])
def test_broadcasting_errors(a, b):
    with pytest.raises(ShapeError, match=r"cannot broadcast \["):
        make("add", (inp(a), inp(b, name="y")))


def test_mixed_dtypes_need_a_cast():
    with pytest.raises(ShapeError, match="mixes float32 and bfloat16; insert a cast"):
        make("add", (inp((4,)), inp((4,), "bfloat16", "y")))
    assert make("cast", (inp((4,)),), dtype="bfloat16").dtype == "bfloat16"


def test_reductions_keep_last_axis():
    x = inp(("T", 4, 9))
    for op in ("sum", "max", "mean"):
        assert make(op, (x,)).shape == ("T", 4, 1)
        assert make(op, (x,), axis=2).shape == ("T", 4, 1)
    with pytest.raises(ShapeError, match="reductions run over the last axis only"):
        make("sum", (x,), axis=0)
    assert make("softmax", (x,)).shape == ("T", 4, 9)


def test_reshape_with_symbols():
    x = inp(("T", 64))
    assert make("reshape", (x,), shape=("T", 4, 16)).shape == ("T", 4, 16)
    assert make("reshape", (inp(("T", 4, 16)),), shape=("T", 64)).shape == ("T", 64)
    assert make("reshape", (x,), shape=(2, "T", 32)).shape == (2, "T", 32)
    with pytest.raises(ShapeError, match=r"cannot reshape \['T', 64\] to \['T', 4, 15\]"):
        make("reshape", (x,), shape=("T", 4, 15))
    with pytest.raises(ShapeError, match="cannot reshape"):
        make("reshape", (x,), shape=("N", 64))
    with pytest.raises(ShapeError, match="cannot reshape"):
        make("reshape", (x,), shape=(64,))


def test_transpose():
    assert make("transpose", (inp((3, 5)),)).shape == (5, 3)
    assert make("transpose", (inp(("T", 3, 5)),)).shape == ("T", 5, 3)
    assert make("transpose", (inp(("T", 3, 5)),), perm=[2, 0, 1]).shape == (5, "T", 3)
    with pytest.raises(ShapeError, match="bad permutation"):
        make("transpose", (inp((3, 5)),), perm=[0, 0])


def test_slice():
    x = inp(("T", 12))
    assert make("slice", (x,), axis=-1, start=4, stop=12).shape == ("T", 8)
    assert make("slice", (x,), axis=1, start=0, stop=1).shape == ("T", 1)
    with pytest.raises(ShapeError, match=r"bad slice \[4:13\] of axis 1"):
        make("slice", (x,), axis=-1, start=4, stop=13)
    with pytest.raises(ShapeError, match="bad slice"):
        make("slice", (x,), axis=-1, start=5, stop=5)
    with pytest.raises(ShapeError, match="bad slice"):  # symbolic axes cannot be sliced
        make("slice", (x,), axis=0, start=0, stop=1)
    with pytest.raises(ShapeError, match="axis 2 out of range"):
        make("slice", (x,), axis=2, start=0, stop=1)


def test_concat():
    a, b, c = inp(("T", 8)), inp(("T", 4), name="b"), inp(("T", 4), name="c")
    assert make("concat", (a, b, c), axis=-1).shape == ("T", 16)
    assert make("concat", (inp((8, 3)), inp((4, 3), name="y")), axis=0).shape == (12, 3)
    with pytest.raises(ShapeError, match="cannot concat"):
        make("concat", (a, inp(("N", 4), name="n")), axis=-1)
    with pytest.raises(ShapeError, match="concat along a symbolic axis"):
        make("concat", (a, inp(("T", 8), name="y")), axis=0)


def test_linear_and_matmul():
    x = inp(("T", 8))
    assert make("linear", (x, inp((5, 8), name="w"))).shape == ("T", 5)
    assert make("matmul", (x, inp((8, 5), name="w"))).shape == ("T", 5)
    assert make("linear", (x, inp((5, 8), "bfloat16", "w"))).dtype == "float32"
    with pytest.raises(ShapeError, match=r"linear input \['T', 8\] does not match weight \[8, 5\] \(\[out, in\]\)"):
        make("linear", (x, inp((8, 5), name="w")))
    with pytest.raises(ShapeError, match=r"matmul shapes \['T', 8\] @ \[5, 8\] do not agree"):
        make("matmul", (x, inp((5, 8), name="w")))
    with pytest.raises(ShapeError, match="linear takes 2 inputs, got 1"):
        make("linear", (x,))


def test_gather():
    table, idx = inp((100, 16)), inp(("T",), "int64", "idx")
    out = make("gather", (table, idx))
    assert (out.shape, out.dtype) == (("T", 16), "float32")
    with pytest.raises(ShapeError, match=r"gather needs a \[rows, cols\] table and \[n\] indices"):
        make("gather", (table, inp(("T", 2), "int64", "idx")))


def test_rope():
    x, pos = inp(("T", 24)), inp(("T",), "int64", "pos")
    cos, sin = inp((32, 3), name="cos"), inp((32, 3), name="sin")
    assert make("rope", (x, pos, cos, sin), head_dim=6).shape == ("T", 24)
    with pytest.raises(ShapeError, match="rope shapes x="):
        make("rope", (x, pos, cos, sin), head_dim=8)  # 24 % 8 == 0 but cos is [*, 3], not 4
    with pytest.raises(ShapeError, match="rope shapes"):
        make("rope", (x, inp(("N",), "int64", "pos"), cos, sin), head_dim=6)


def test_kv_store_and_attention():
    cache = inp((2, 2, 16, 4), name="k_cache")
    x, slots, pos = inp(("T", 8)), inp(("T",), "int64", "slots"), inp(("T",), "int64", "pos")
    assert make("kv_store", (cache, x, slots, pos)).shape == (2, 2, 16, 4)
    with pytest.raises(ShapeError, match=r"kv_store shapes cache=\[2, 2, 16, 4\] x=\['T', 12\]"):
        make("kv_store", (cache, inp(("T", 12)), slots, pos))
    q = inp(("T", 16), name="q")
    out = make("attention", (q, cache, cache, slots, pos), num_heads=4, num_kv_heads=2, head_dim=4, scale=0.5)
    assert out.shape == ("T", 16)
    with pytest.raises(ShapeError, match="do not agree with 3/2 heads of 4"):
        make("attention", (inp(("T", 12), name="q"), cache, cache, slots, pos),
             num_heads=3, num_kv_heads=2, head_dim=4, scale=0.5)
    with pytest.raises(ShapeError, match="attention shapes"):
        make("attention", (inp(("T", 16), name="q"), cache, cache, slots, pos),
             num_heads=4, num_kv_heads=2, head_dim=8, scale=0.5)


def test_unknown_op_and_arity():
    with pytest.raises(ShapeError, match="unknown op 'frobnicate'"):
        make("frobnicate", (inp((3,)),))
    with pytest.raises(ShapeError, match="add takes 2 inputs, got 1"):
        make("add", (inp((3,)),))


# ---------------------------------------------------------------- verifier

def test_verifier_accepts_a_good_graph():
    g = parse_graph(ROUND_TRIP, weights={"w": _w(64), "model.layers.0.w|x.T'": _w(64, 64)}, symbols={"T": 8, "N": 2})
    assert verify_graph(g) is g


def test_verifier_weight_value_shape_mismatch():
    w = make("weight", shape=(4, 8), dtype="float32", name="w")
    g = Graph((("y", make("exp", (w,))),), weights={"w": _w(8, 4)})
    with pytest.raises(GraphVerificationError, match=r"weight 'w' is \[8, 4\], node says \[4, 8\]"):
        verify_graph(g)


def test_verifier_weight_without_value():
    w = make("weight", shape=(4,), dtype="float32", name="w")
    with pytest.raises(GraphVerificationError, match="weight 'w' has no value"):
        verify_graph(Graph((("y", make("exp", (w,))),), weights={"v": _w(4)}))


def test_verifier_unknown_symbol():
    x = inp(("T", 4))
    with pytest.raises(GraphVerificationError, match="symbol 'T' has no bound in graph.symbols"):
        verify_graph(Graph((("y", make("exp", (x,))),), symbols={"N": 4}))


def test_verifier_duplicate_input_names():
    a, b = inp(("T", 4)), inp(("T", 4))  # two nodes, one name
    assert a is not b
    g = Graph((("y", make("add", (a, b))),), symbols={"T": 4})
    with pytest.raises(GraphVerificationError, match="two different input nodes are named 'x'"):
        verify_graph(g)
    # the same node used twice is fine
    verify_graph(Graph((("y", make("add", (a, a))),), symbols={"T": 4}))


def test_verifier_stale_recorded_type():
    x = inp((4,))
    bad = make("exp", (x,))
    object.__setattr__(bad, "shape", (5,))
    with pytest.raises(GraphVerificationError, match=r"recorded float32\[5\] but inputs give float32\[4\]"):
        verify_graph(Graph((("y", bad),)))


def test_verifier_constant_must_be_scalar():
    c = make("constant", shape=(3,), dtype="float32", value=1.0)
    with pytest.raises(GraphVerificationError, match="constants are scalars"):
        verify_graph(Graph((("y", make("exp", (c,))),)))


def test_comparisons_give_bool_and_where_selects_by_a_bool():
    x, y = inp(("T", 8)), inp((8,), name="y")
    for op in ("eq", "ne", "lt", "le", "gt", "ge"):
        assert (make(op, (x, y)).shape, make(op, (x, y)).dtype) == (("T", 8), "bool")
    both = make("logical_and", (make("gt", (x, y)), make("lt", (x, y))))
    assert both.dtype == "bool" and make("logical_not", (both,)).dtype == "bool"
    picked = make("where", (both, x, inp(("T", 1), name="z")))
    assert (picked.shape, picked.dtype) == (("T", 8), "float32")
    with pytest.raises(ShapeError, match="where takes a bool condition"):
        make("where", (x, x, x))
    with pytest.raises(ShapeError, match="logical_and takes bool operands"):
        make("logical_and", (x, both))
    with pytest.raises(ShapeError, match="mixes float32 and int64"):
        make("lt", (x, inp((8,), "int64", "i")))


def test_batched_matmul_broadcasts_batch_dims():
    q, k = inp((2, 4, 5, 8)), inp((2, 1, 8, 7), name="k")
    assert make("matmul", (q, k)).shape == (2, 4, 5, 7)
    assert make("matmul", (inp((5, 8)), inp((3, 8, 7), name="b"))).shape == (3, 5, 7)
    with pytest.raises(ShapeError, match=r"matmul shapes \[2, 4, 5, 8\] @ \[2, 1, 7, 8\] do not agree"):
        make("matmul", (q, inp((2, 1, 7, 8), name="b")))
    with pytest.raises(ShapeError, match="cannot broadcast"):
        make("matmul", (q, inp((3, 1, 8, 7), name="b")))
