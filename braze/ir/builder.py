"""GraphBuilder: how model definitions write Graph IR (a small tensor API that records nodes)."""
from __future__ import annotations

from typing import Any

import torch

from braze.ir.graph import Graph, Node, make
from braze.ir.ops import Shape

_TORCH_TO_NAME = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16",
                  torch.int32: "int32", torch.int64: "int64", torch.bool: "bool"}


class GraphBuilder:
    def __init__(self, symbols: dict[str, int] | None = None, name: str = "graph"):
        self.symbols = dict(symbols or {})
        self.weights: dict[str, torch.Tensor] = {}
        self._weight_nodes: dict[str, Node] = {}
        self.name = name

    # sources
    def input(self, name: str, shape: Shape, dtype: str) -> Node:
        return make("input", shape=shape, dtype=dtype, name=name)

    def weight(self, name: str, value: torch.Tensor) -> Node:
        if name not in self._weight_nodes:
            self.weights[name] = value
            self._weight_nodes[name] = make("weight", shape=tuple(value.shape), dtype=_TORCH_TO_NAME[value.dtype], name=name)
        return self._weight_nodes[name]

    def constant(self, value: float, dtype: str = "float32") -> Node:
        return make("constant", shape=(), dtype=dtype, value=value)

    def op(self, op: str, *inputs: Node, **attrs: Any) -> Node:
        return make(op, inputs, **attrs)

    # pointwise
    def add(self, a: Node, b: Node) -> Node: return make("add", (a, b))
    def sub(self, a: Node, b: Node) -> Node: return make("sub", (a, b))
    def mul(self, a: Node, b: Node) -> Node: return make("mul", (a, b))
    def div(self, a: Node, b: Node) -> Node: return make("div", (a, b))
    def silu(self, x: Node) -> Node: return make("silu", (x,))
    def cast(self, x: Node, dtype: str) -> Node: return x if x.dtype == dtype else make("cast", (x,), dtype=dtype)

    # structure
    def reshape(self, x: Node, shape: Shape) -> Node: return make("reshape", (x,), shape=tuple(shape))
    def transpose(self, x: Node) -> Node: return make("transpose", (x,))
    def slice(self, x: Node, axis: int, start: int, stop: int) -> Node:
        return make("slice", (x,), axis=axis, start=start, stop=stop)

    # composites and LLM ops
    def rms_norm(self, x: Node, w: Node, eps: float) -> Node: return make("rms_norm", (x, w), eps=float(eps))
    def matmul(self, a: Node, b: Node) -> Node: return make("matmul", (a, b))
    def gather(self, table: Node, idx: Node) -> Node: return make("gather", (table, idx))

    def concat(self, xs: list[Node], axis: int) -> Node: return make("concat", tuple(xs), axis=axis)

    def rope(self, x: Node, positions: Node, cos: Node, sin: Node, head_dim: int,
             rotary_heads: int | None = None) -> Node:
        if rotary_heads is None:
            return make("rope", (x, positions, cos, sin), head_dim=head_dim)
        return make("rope", (x, positions, cos, sin), head_dim=head_dim, rotary_heads=rotary_heads)

    def kv_store(self, cache: Node, x: Node, slots: Node, positions: Node, block_table: Node | None = None) -> Node:
        paged = (block_table,) if block_table is not None else ()
        return make("kv_store", (cache, x, slots, positions) + paged)

    def attention(self, q, k_cache, v_cache, slots, positions, num_heads, num_kv_heads, head_dim, scale,
                  block_table: Node | None = None) -> Node:
        paged = (block_table,) if block_table is not None else ()
        return make("attention", (q, k_cache, v_cache, slots, positions) + paged, num_heads=num_heads,
                    num_kv_heads=num_kv_heads, head_dim=head_dim, scale=float(scale))

    def build(self, outputs: dict[str, Node]) -> Graph:
        used = {n.attr("name") for n in Graph(tuple(outputs.items()), self.weights, self.symbols).nodes if n.op == "weight"}
        return Graph(tuple(outputs.items()), {k: v for k, v in self.weights.items() if k in used}, self.symbols, self.name)
