"""Quantize: linear(x, W) -> quantized_linear(x, packed, scales[, mins]) for constant weights.

Runs right after choose_layouts, where a linear's weight is a named weight or a concat of named
weights along N (Q/K/V, gate/up): each part is quantized on its own (or taken pre-quantized by its
name: GGUF blocks, a `braze quantize` folder), and the parts' packed weights, scales and mins are
concatenated, which fold_constants turns into one pre-packed weight of each. Rows are quantized
independently in every format, so the concatenation is exact.

Pure: the input graph is untouched; the new graph's weights add `<name>.qweight`, `.scales` and
`.mins` next to the float ones (which dead-code elimination then leaves unused).
"""
from __future__ import annotations

from braze.debug import log
from braze.ir.graph import Graph, Node, make
from braze.quant.formats import QuantizedTensor
from braze.quant.methods import QuantScheme
from braze.passes.rewrite import rebuild, transform


def _parts(w: Node) -> list[Node] | None:
    """The named weights a linear's weight operand is made of, or None if it is anything else."""
    if w.op == "weight":
        return [w]
    if w.op == "concat" and w.attr("axis") in (0, -2) and all(p.op == "weight" for p in w.inputs):
        return list(w.inputs)
    return None


def quantize_linears(graph: Graph, scheme: QuantScheme) -> Graph:
    weights = dict(graph.weights)
    quantized: dict[str, QuantizedTensor | None] = {}
    nodes: dict[str, Node] = {}

    def quantized_weight(name: str) -> QuantizedTensor | None:
        if name not in quantized:
            if name in scheme.prequantized:
                quantized[name] = scheme.prequantized[name]
            elif scheme.format == "gguf":
                quantized[name] = None  # only the file's own quantized tensors
            else:
                quantized[name] = scheme.quantize(graph.weights[name], name)
            if quantized[name] is None:
                log(1, f"quantize: {name} stays {graph.weights[name].dtype} ({scheme.method} does not fit it)")
        return quantized[name]

    def weight_node(name: str, tensor) -> Node:
        if name not in nodes:
            weights[name] = tensor
            nodes[name] = make("weight", name=name, shape=tuple(tensor.shape), dtype=_dtype_name(tensor))
        return nodes[name]

    def visit(node: Node, inputs: tuple[Node, ...]) -> Node:
        node = rebuild(node, inputs)
        if node.op != "linear" or node.dtype not in ("float32", "bfloat16", "float16"):
            return node
        parts = _parts(node.inputs[1])
        if parts is None:
            return node
        qs = [quantized_weight(p.attr("name")) for p in parts]
        if any(q is None for q in qs) or len({(q.format, q.group, q.mins is None) for q in qs}) != 1:
            return node
        names = [p.attr("name") for p in parts]
        operands = [[weight_node(f"{n}.qweight", q.packed) for n, q in zip(names, qs)],
                    [weight_node(f"{n}.scales", q.scales) for n, q in zip(names, qs)]]
        if qs[0].mins is not None:
            operands.append([weight_node(f"{n}.mins", q.mins) for n, q in zip(names, qs)])
        joined = [ops[0] if len(ops) == 1 else make("concat", ops, axis=0) for ops in operands]
        return make("quantized_linear", (node.inputs[0], *joined), format=qs[0].format, group=qs[0].group)

    out = transform(graph, visit)
    return Graph(out.outputs, weights, graph.symbols, graph.name)


def _dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")
