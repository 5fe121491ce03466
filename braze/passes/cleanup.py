"""Common subexpression elimination and dead-code elimination."""
from __future__ import annotations

from braze.ir.graph import Graph, Node
from braze.passes.rewrite import rebuild, transform


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    """Structurally equal nodes over the same inputs become one node."""
    seen: dict[tuple, Node] = {}

    def visit(node: Node, inputs: tuple[Node, ...]) -> Node:
        node = rebuild(node, inputs)
        return seen.setdefault(node.key, node)

    return transform(graph, visit)


def eliminate_dead_code(graph: Graph) -> Graph:
    """Nodes unreachable from the outputs are already gone (graphs are built from outputs);
    what is left to drop are weight values no node uses any more."""
    used = {n.attr("name") for n in graph.nodes if n.op == "weight"}
    return graph.with_outputs(graph.outputs, {k: v for k, v in graph.weights.items() if k in used})
