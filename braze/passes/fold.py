"""Constant folding: ops whose inputs are all weights or constants are computed once, at compile
time, into new weights (this is what turns the layout pass's transposes and concats into re-packed
weights instead of runtime copies)."""
from __future__ import annotations

import os

from braze.ir.graph import Graph, Node, make
from braze.ir.interpret import evaluate
from braze.passes.rewrite import rebuild, transform

_NOT_FOLDED = ("input", "weight", "constant", "kv_store", "attention")


def folded_name(op: str, names: list[str]) -> str:
    """A readable name: transpose(w) -> w.T; concat(a.q_proj.weight, a.k_proj.weight) -> a.q|k_proj.weight."""
    if op == "transpose" and len(names) == 1:
        return names[0] + ".T"
    prefix = os.path.commonprefix(names)
    suffix = os.path.commonprefix([n[len(prefix):][::-1] for n in names])[::-1]
    middles = [n[len(prefix): len(n) - len(suffix)] for n in names]
    return f"{prefix}{'|'.join(middles)}{suffix}" + ("" if op == "concat" else f".{op}")


def _size(node: Node) -> int:
    n = 1
    for d in node.shape:
        n *= d
    return n


def fold_constants(graph: Graph) -> Graph:
    weights = dict(graph.weights)
    weight_nodes = {n.attr("name"): n for n in graph.nodes if n.op == "weight"}  # one node per name

    def visit(node: Node, inputs: tuple[Node, ...]) -> Node:
        node = rebuild(node, inputs)
        if node.op in _NOT_FOLDED or not all(i.op in ("weight", "constant") for i in inputs):
            return node
        if any(isinstance(d, str) for d in node.shape):
            return node
        # never trade a small constant for a big one (a broadcast would bake a huge tensor)
        if node.shape and _size(node) > sum(_size(i) for i in inputs):
            return node
        value = evaluate(node, [weights[i.attr("name")] if i.op == "weight" else evaluate(i, [], graph, {}, {})
                                for i in inputs], graph, {}, {})
        if node.shape == ():
            return make("constant", shape=(), dtype=node.dtype, value=float(value))
        name = folded_name(node.op, [i.attr("name") if i.op == "weight" else repr(i.attr("value")) for i in inputs])
        while name in weights and not (weights[name].shape == value.shape and weights[name].equal(value)):
            name += "'"
        weights[name] = value.contiguous()
        if name not in weight_nodes:
            weight_nodes[name] = make("weight", shape=node.shape, dtype=node.dtype, name=name)
        return weight_nodes[name]

    folded = transform(graph, visit, weights)
    used = {n.attr("name") for n in folded.nodes if n.op == "weight"}
    return folded.with_outputs(folded.outputs, {k: v for k, v in weights.items() if k in used})
