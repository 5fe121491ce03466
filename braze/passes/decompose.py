"""Decomposition: composite ops become the primitives the fuser knows (pointwise + reductions)."""
from __future__ import annotations

from braze.ir.graph import Graph, Node, make
from braze.passes.rewrite import rebuild, transform


def _const(value: float, dtype: str) -> Node:
    return make("constant", shape=(), dtype=dtype, value=float(value))


def _cast(x: Node, dtype: str) -> Node:
    return x if x.dtype == dtype else make("cast", (x,), dtype=dtype)


def _mean(x: Node) -> Node:
    return make("mul", (make("sum", (x,)), _const(1.0 / x.shape[-1], x.dtype)))


def _rms_norm(x: Node, w: Node, eps: float) -> Node:
    # the HF recipe: normalize in float32, round to the input dtype, then scale by the weight
    xf = _cast(x, "float32")
    inv_rms = make("rsqrt", (make("add", (_mean(make("mul", (xf, xf))), _const(eps, "float32"))),))
    return make("mul", (_cast(make("mul", (xf, inv_rms)), x.dtype), w))


def _softmax(x: Node) -> Node:
    xf = _cast(x, "float32")
    e = make("exp", (make("sub", (xf, make("max", (xf,)))),))
    return _cast(make("div", (e, make("sum", (e,)))), x.dtype)


def decompose(graph: Graph) -> Graph:
    def visit(node: Node, inputs: tuple[Node, ...]) -> Node:
        node = rebuild(node, inputs)
        if node.op == "rms_norm":
            return _rms_norm(inputs[0], inputs[1], node.attr("eps"))
        if node.op == "mean":
            return _mean(inputs[0])
        if node.op == "softmax":
            return _softmax(inputs[0])
        return node

    return transform(graph, visit)
