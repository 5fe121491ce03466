"""Distribute elementwise ops over concats: each part of a concat is computed by its own fused
kernel straight into its slice of the result, instead of a concat copied first and read again.

RoPE as PyTorch writes it, q * cos + cat(-q2, q1) * sin, is five ATen ops and a materialized
concat; after these rewrites it is cat(q1 * cos1 - q2 * sin1, q2 * cos2 + q1 * sin2): two
pointwise kernels, each writing one half of the output, nothing in between.

Rewrites, to a fixpoint:
  - op(cat(a, b), y) -> cat(op(a, y[..a..]), op(b, y[..b..])) when every user of the concat is
    elementwise (y is sliced along the concat axis unless it broadcasts there);
  - slice(op(x, y)) -> op(slice(x), slice(y)) when every user of op is a slice (the slices of the
    rewrite above, taken from a value computed once before it);
  - slice(cat(a, b)) that falls within one part -> a slice of that part.
"""
from __future__ import annotations

from braze.ir.graph import Graph, Node, make
from braze.ir.ops import POINTWISE_OPS
from braze.passes.rewrite import rebuild, transform

ELEMENTWISE = POINTWISE_OPS + ("cast",)
MAX_ROUNDS = 10


def _sliced(y: Node, shape: tuple, axis: int, start: int, stop: int) -> Node | None:
    """y (broadcast to shape) restricted to [start, stop) of shape's axis; None if it cannot be."""
    own = axis - (len(shape) - len(y.shape))
    if own < 0 or y.shape[own] == 1:
        return y  # broadcast along the axis: every part reads it whole
    if y.shape[own] != shape[axis]:
        return None
    if (start, stop) == (0, y.shape[own]):
        return y
    return make("slice", (y,), axis=own, start=start, stop=stop)


def _bounds(concat: Node) -> list[tuple[int, int]]:
    axis, start, out = concat.attr("axis") % len(concat.shape), 0, []
    for part in concat.inputs:
        out.append((start, start + part.shape[axis]))
        start += part.shape[axis]
    return out


def _distribute(node: Node, inputs: tuple[Node, ...], users) -> Node | None:
    """op(..., cat(parts), ...) as cat(op over each part)."""
    for k, old in enumerate(node.inputs):
        if old.op != "concat" or old.shape != node.shape or any(isinstance(d, str) for d in old.shape):
            continue
        if not all(u.op in ELEMENTWISE for u in users.get(id(old), [])):
            continue
        cat = inputs[k]
        axis = cat.attr("axis") % len(cat.shape)
        parts = []
        for part, (start, stop) in zip(cat.inputs, _bounds(cat)):
            args = [part if j == k else _sliced(x, node.shape, axis, start, stop) for j, x in enumerate(inputs)]
            if any(a is None for a in args):
                return None
            parts.append(make(node.op, tuple(args), **node.attr_dict))
        return make("concat", tuple(parts), axis=axis)
    return None


def _slice_through(node: Node, inputs: tuple[Node, ...], users) -> Node | None:
    """slice(op(x, y)) as op(slice(x), slice(y)), or a slice of a concat as a slice of one part."""
    src_old, src = node.inputs[0], inputs[0]
    axis, start, stop = node.attr("axis") % len(node.shape), node.attr("start"), node.attr("stop")
    if src.op == "concat" and src.attr("axis") % len(src.shape) == axis:
        for part, (lo, hi) in zip(src.inputs, _bounds(src)):
            if lo <= start and stop <= hi:
                return _sliced(part, part.shape, axis, start - lo, stop - lo)
        return None
    if src.op not in ELEMENTWISE or any(isinstance(d, str) for d in src.shape):
        return None
    if not all(u.op == "slice" for u in users.get(id(src_old), [])):
        return None
    if any(_product(x) for x in src.inputs):
        return None  # a matmul's bias or residual stays its epilogue; the slices read its output
    args = [_sliced(x, src.shape, axis, start, stop) for x in src.inputs]
    return None if any(a is None for a in args) else make(src.op, tuple(args), **src.attr_dict)


def _product(x: Node) -> bool:
    while x.op == "reshape":
        x = x.inputs[0]
    return x.op in ("linear", "matmul")


def distribute_over_concat(graph: Graph) -> Graph:
    for _ in range(MAX_ROUNDS):
        users = graph.users()
        changed = False

        def visit(node: Node, inputs: tuple[Node, ...]) -> Node:
            nonlocal changed
            new = None
            if node.op in ELEMENTWISE:
                new = _distribute(node, inputs, users)
            elif node.op == "slice":
                new = _slice_through(node, inputs, users)
            if new is None:
                return rebuild(node, inputs)
            changed = True
            return new

        graph = transform(graph, visit)
        if not changed:
            return graph
    return graph
