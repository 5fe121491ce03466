"""kv_store and attention with a block table (a paged cache): text form round trip, verifier,
shape and dtype errors, and the interpreter's kv_store against a row-by-row loop."""
from __future__ import annotations

import pytest
import torch

from braze.ir.graph import make
from braze.ir.interpret import interpret
from braze.ir.ops import ShapeError
from braze.ir.parse import parse_graph
from braze.ir.verify import verify_graph

PAGED = """
%cache = input() {name="cache"} : f32[6, 4, 3, 2]
%x = input() {name="x"} : f32[T, 8]
%q = input() {name="q"} : f32[T, 4]
%slots = input() {name="slots"} : i64[T]
%pos = input() {name="pos"} : i64[T]
%table = input() {name="table"} : i32[2, 3]
%0 = kv_store(%cache, %x, %slots, %pos, %table) : f32[6, 4, 3, 2]
%1 = slice(%0) {axis=1, start=0, stop=2} : f32[6, 2, 3, 2]
%2 = slice(%0) {axis=1, start=2, stop=4} : f32[6, 2, 3, 2]
%3 = attention(%q, %1, %2, %slots, %pos, %table) {head_dim=2, num_heads=2, num_kv_heads=2, scale=0.5} : f32[T, 4]
return cache=%0, out=%3
"""


def test_text_form_round_trips_and_verifies():
    graph = parse_graph(PAGED, symbols={"T": 8})
    verify_graph(graph)
    assert str(parse_graph(str(graph), symbols={"T": 8})) == str(graph)


def test_block_table_shape_and_dtype_errors():
    inp = lambda shape, dtype="int64": make("input", shape=shape, dtype=dtype, name="n")  # noqa: E731
    cache, x, idx = inp((6, 4, 3, 2), "float32"), inp(("T", 8), "float32"), inp(("T",))
    with pytest.raises(ShapeError, match=r"block table \[6\] should be \[sequences, blocks per sequence\]"):
        make("kv_store", (cache, x, idx, idx, inp((6,))))
    with pytest.raises(ShapeError, match="block table is float32"):
        make("kv_store", (cache, x, idx, idx, inp((2, 3), "float32")))
    with pytest.raises(ShapeError, match="kv_store takes 4 inputs, or 5 with a block table, got 6"):
        make("kv_store", (cache, x, idx, idx, inp((2, 3)), inp((2, 3))))


def test_paged_kv_store_writes_each_row_where_the_table_says():
    graph = parse_graph(PAGED, symbols={"T": 8})
    table = torch.tensor([[4, 0, 2], [1, 5, 3]], dtype=torch.int32)
    slots, pos = torch.tensor([1, 1, 1, 1, 0]), torch.tensor([0, 2, 3, 7, 5])
    x = torch.randn(5, 8)
    cache = torch.randn(6, 4, 3, 2)
    out = interpret(graph, {"cache": cache, "x": x, "q": torch.randn(5, 4), "slots": slots, "pos": pos,
                            "table": table})
    want = cache.clone()
    for t in range(5):
        want[table[slots[t], pos[t] // 3], :, pos[t] % 3, :] = x[t].view(4, 2)
    torch.testing.assert_close(out["cache"], want, rtol=0, atol=0)
