"""Flatten leading dims: elementwise ops and last-axis reductions over [B, T, C] run over [B*T, C].

A PyTorch module computes on [batch, tokens, channels] and flattens only for its matmuls, so
its graph has reshapes between a norm and the linear it feeds, and between a linear and the
residual add after it. Those reshapes hide the producer from its consumer and fusion stops there.
Rewriting every such op as reshape(op over [rows, C]) turns the chain into rows end to end; the
simplify pass then cancels reshape pairs, and the norm becomes the linear's prologue and the add
its epilogue, as in braze's own LLM graphs (which are built 2-d).

An op is rewritten when its dims before the last are ints and each input either has all of them
(it is reshaped to [rows, its last dim]) or none of them (size 1 or absent: a broadcast weight),
and only together with every elementwise op it feeds or is fed by: a reshape between two fused
ops would cut the fused kernel in two (RoPE's q * cos over [B, H, T, D] with cos [T, D] stays 4-d,
and so does the rotate-half next to it).
"""
from __future__ import annotations

import math

from braze.ir.graph import Graph, Node, make
from braze.ir.ops import POINTWISE_OPS, REDUCTION_OPS, VIEW_OPS
from braze.passes.rewrite import rebuild, transform

FLATTENED_OPS = POINTWISE_OPS + REDUCTION_OPS + ("cast",)


def _flat_input(x: Node, lead: tuple[int, ...], rows: int) -> Node | None:
    """x as an input over [rows, C]; None when it broadcasts over only some of the leading dims."""
    padded = (1,) * (len(lead) + 1 - len(x.shape)) + x.shape
    if len(padded) != len(lead) + 1:
        return None
    x_lead = padded[:-1]
    if x_lead == lead:
        # a permuted view ([B, T, H, D] read as [B, H, T, D]) seldom merges its leading dims without a copy
        return None if _permuted_view(x) else make("reshape", (x,), shape=(rows, x.shape[-1]))
    if all(d == 1 for d in x_lead):
        return x if len(x.shape) <= 1 else make("reshape", (x,), shape=(x.shape[-1],))
    return None


def _permuted_view(x: Node) -> bool:
    while x.op in VIEW_OPS:
        if x.op == "transpose":
            return True
        x = x.inputs[0]
    return False


def _elementwise(n: Node) -> bool:
    return n.op in FLATTENED_OPS and len(n.shape) >= 3


def _flat_inputs(node: Node, inputs: tuple[Node, ...]) -> list[Node] | None:
    lead = node.shape[:-1]
    if not _elementwise(node) or not all(isinstance(d, int) for d in lead):
        return None
    flat = [_flat_input(x, lead, math.prod(lead)) for x in inputs]
    return None if any(f is None for f in flat) else flat


def _regions_to_flatten(graph: Graph) -> set[int]:
    """Ids of the ops to rewrite: flattenable ones whose elementwise neighbours all are too."""
    chosen = {id(n) for n in graph.nodes if _flat_inputs(n, n.inputs) is not None}
    edges = [(n, i) for n in graph.nodes if _elementwise(n) for i in n.inputs if _elementwise(i)]
    changed = True
    while changed:
        changed = False
        for a, b in edges:
            if (id(a) in chosen) != (id(b) in chosen):
                chosen.discard(id(a))
                chosen.discard(id(b))
                changed = True
    return chosen


def flatten_leading_dims(graph: Graph) -> Graph:
    chosen = _regions_to_flatten(graph)

    def visit(node: Node, inputs: tuple[Node, ...]) -> Node:
        flat = _flat_inputs(node, inputs) if id(node) in chosen else None
        if flat is None:
            return rebuild(node, inputs)
        return make("reshape", (make(node.op, tuple(flat), **node.attr_dict),), shape=node.shape)

    return transform(graph, visit)
