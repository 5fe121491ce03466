"""The one driver every graph pass uses: rebuild a graph bottom-up, and (pattern, rewrite) rules
applied to a fixpoint."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from braze.ir.graph import Graph, Node, make

MAX_ROUNDS = 20


def rebuild(node: Node, inputs: tuple[Node, ...]) -> Node:
    """The same op over new inputs (returns `node` itself when nothing changed)."""
    if all(a is b for a, b in zip(inputs, node.inputs)):
        return node
    return make(node.op, inputs, **node.attr_dict)


def transform(graph: Graph, visit: Callable[[Node, tuple[Node, ...]], Node], weights=None) -> Graph:
    """Map every node, inputs first: visit(old_node, new_inputs) returns its replacement."""
    new: dict[int, Node] = {}
    for node in graph.nodes:
        new[id(node)] = visit(node, tuple(new[id(i)] for i in node.inputs))
    return graph.with_outputs([(name, new[id(n)]) for name, n in graph.outputs], weights)


@dataclass(frozen=True)
class Pat:
    """A pattern: op (a name, a tuple of names, or None for any), argument patterns, a binding name."""

    op: str | tuple[str, ...] | None = None
    args: tuple["Pat", ...] | None = None
    bind: str | None = None
    where: Callable[[Node], bool] | None = None


def X(name: str = "x", where=None) -> Pat:
    return Pat(bind=name, where=where)


def match(pat: Pat, node: Node, bound: dict[str, Node]) -> bool:
    if pat.op is not None and node.op not in ((pat.op,) if isinstance(pat.op, str) else pat.op):
        return False
    if pat.where is not None and not pat.where(node):
        return False
    if pat.args is not None:
        if len(pat.args) != len(node.inputs):
            return False
        if not all(match(p, n, bound) for p, n in zip(pat.args, node.inputs)):
            return False
    if pat.bind is not None:
        if pat.bind in bound and bound[pat.bind] is not node:
            return False
        bound[pat.bind] = node
    return True


Rule = tuple[Pat, Callable[..., Node | None]]


def apply_rules(graph: Graph, rules: list[Rule]) -> Graph:
    """Rewrite bottom-up until no rule fires. A rewrite gets the bindings as keyword arguments
    plus `node`, and returns a replacement of the same type, or None to decline."""
    for _ in range(MAX_ROUNDS):
        changed = False

        def visit(node: Node, inputs: tuple[Node, ...]) -> Node:
            nonlocal changed
            node = rebuild(node, inputs)
            for pat, fn in rules:
                bound: dict[str, Node] = {}
                if match(pat, node, bound):
                    out = fn(node=node, **bound)
                    if out is not None and out is not node:
                        assert out.shape == node.shape and out.dtype == node.dtype, (node, out)
                        changed = True
                        return out
            return node

        graph = transform(graph, visit)
        if not changed:
            return graph
    return graph
