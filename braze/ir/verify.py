"""The Graph IR verifier, run between passes: types re-inferred, sources well formed, names unique."""
from __future__ import annotations

from braze.errors import GraphVerificationError
from braze.ir.graph import Graph
from braze.ir.ops import ALL_OPS, DTYPES, ShapeError, infer


def verify_graph(graph: Graph) -> Graph:
    names: dict[str, object] = {}
    for node in graph.nodes:
        where = f"{node.op} node {node!r}"
        if node.op not in ALL_OPS:
            raise GraphVerificationError(f"unknown op {node.op!r}")
        if node.dtype not in DTYPES:
            raise GraphVerificationError(f"{where}: unknown dtype {node.dtype}")
        for d in node.shape:
            if isinstance(d, str) and d not in graph.symbols:
                raise GraphVerificationError(f"{where}: symbol {d!r} has no bound in graph.symbols")
        if node.op in ("input", "weight"):
            name = node.attr("name")
            if names.setdefault((node.op, name), node) is not node:
                raise GraphVerificationError(f"two different {node.op} nodes are named {name!r}")
            if node.op == "weight":
                if name not in graph.weights:
                    raise GraphVerificationError(f"weight {name!r} has no value")
                value = graph.weights[name]
                if tuple(value.shape) != node.shape:
                    raise GraphVerificationError(f"weight {name!r} is {list(value.shape)}, node says {list(node.shape)}")
            continue
        if node.op == "constant":
            if node.shape != () or not isinstance(node.attr("value"), (int, float)):
                raise GraphVerificationError(f"{where}: constants are scalars with a numeric value")
            continue
        try:
            shape, dtype = infer(node.op, [i.shape for i in node.inputs], [i.dtype for i in node.inputs], node.attr_dict)
        except ShapeError as e:
            raise GraphVerificationError(f"{where}: {e}") from e
        if shape != node.shape or dtype != node.dtype:
            raise GraphVerificationError(f"{where}: recorded {node.dtype}{list(node.shape)} but inputs give {dtype}{list(shape)}")
    return graph
