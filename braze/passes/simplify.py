"""Algebraic simplification: local rewrites as (pattern, rewrite) data, run to a fixpoint."""
from __future__ import annotations

from braze.ir.graph import Graph, Node, make
from braze.passes.rewrite import Pat, X, apply_rules


def _const(value: float):
    return lambda n: n.op == "constant" and n.attr("value") == value


def _same_shape_as_node(x: Node, node: Node) -> Node | None:
    return x if x.shape == node.shape and x.dtype == node.dtype else None


def _merge_reshapes(node, x):
    return make("reshape", (x,), shape=node.shape) if x.shape != node.shape else x


def _concat_of_adjacent_slices(node) -> Node | None:
    """concat(x[a:b], x[b:c], ...) along the sliced axis is x[a:end]: after the layout pass merges
    Q/K/V into one linear, the model's concat of q, k and v is the linear's output itself."""
    parts, rank = node.inputs, len(node.shape)
    axis = node.attr("axis") % rank
    first = parts[0]
    if not all(p.op == "slice" and p.inputs[0] is first.inputs[0] and p.attr("axis") % rank == axis
               for p in parts):
        return None
    if any(a.attr("stop") != b.attr("start") for a, b in zip(parts, parts[1:])):
        return None
    return make("slice", (first.inputs[0],), axis=axis, start=first.attr("start"), stop=parts[-1].attr("stop"))


def _div_by_constant(node, x, c):
    if c.attr("value") == 0:
        return None
    return make("mul", (x, make("constant", shape=(), dtype=c.dtype, value=1.0 / c.attr("value"))))


def _power_of_constant(node, x, c):
    """x ** 2 -> x * x (RMSNorm's x.pow(2)), x ** 0.5 -> sqrt, x ** -1 -> reciprocal, x ** 1 -> x: no
    general pow call in the kernel."""
    e = c.attr("value")
    if x.shape != node.shape or x.dtype != node.dtype:
        return None
    if e == 2.0:
        return make("mul", (x, x))
    return {0.5: lambda: make("sqrt", (x,)), -1.0: lambda: make("reciprocal", (x,)),
            1.0: lambda: x}.get(e, lambda: None)()


SIMPLIFY_RULES = [
    (Pat("pow", (X(), X("c", lambda n: n.op == "constant"))), _power_of_constant),
    (Pat("mul", (X(), X("c", _const(1.0)))), lambda node, x, c: _same_shape_as_node(x, node)),
    (Pat("mul", (X("c", _const(1.0)), X())), lambda node, x, c: _same_shape_as_node(x, node)),
    (Pat("add", (X(), X("c", _const(0.0)))), lambda node, x, c: _same_shape_as_node(x, node)),
    (Pat("add", (X("c", _const(0.0)), X())), lambda node, x, c: _same_shape_as_node(x, node)),
    (Pat("sub", (X(), X("c", _const(0.0)))), lambda node, x, c: _same_shape_as_node(x, node)),
    (Pat("div", (X(), X("c", _const(1.0)))), lambda node, x, c: _same_shape_as_node(x, node)),
    (Pat("div", (X(), X("c", lambda n: n.op == "constant"))), _div_by_constant),
    (Pat("neg", (Pat("neg", (X(),)),)), lambda node, x: x),
    (Pat("reshape", (Pat("reshape", (X(),)),)), _merge_reshapes),
    (Pat("reshape", (X(),)), lambda node, x: _same_shape_as_node(x, node)),
    (Pat("transpose", (Pat("transpose", (X(),), where=lambda n: not n.attr("perm")),),
         where=lambda n: not n.attr("perm")), lambda node, x: x),
    (Pat("slice", (X(),)), lambda node, x: _same_shape_as_node(x, node)),
    (Pat("cast", (X(),)), lambda node, x: _same_shape_as_node(x, node)),
    (Pat("concat"), _concat_of_adjacent_slices),
]


def simplify(graph: Graph) -> Graph:
    return apply_rules(graph, SIMPLIFY_RULES)
