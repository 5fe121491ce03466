"""Layout: every matmul by a 2-d right operand becomes `linear` (weights [out, in], the layout a GEMV
reads contiguously; batched matmuls of two activations stay matmuls),
and linears that share an input and read constant weights become one wider linear over the
concatenated weights (Q/K/V as one, gate/up as one), followed by free column slices. The transposes
and concats created here are constants: fold_constants turns them into re-packed weights."""
from __future__ import annotations

from braze.ir.graph import Graph, Node, make
from braze.passes.rewrite import rebuild, transform


def _to_linear(graph: Graph) -> Graph:
    def visit(node: Node, inputs: tuple[Node, ...]) -> Node:
        node = rebuild(node, inputs)
        if node.op != "matmul" or len(inputs[1].shape) != 2:
            return node
        a, b = inputs
        if b.op == "transpose" and not b.attr("perm"):
            return make("linear", (a, b.inputs[0]))
        return make("linear", (a, make("transpose", (b,))))

    return transform(graph, visit)


def _is_constant(n: Node) -> bool:
    return n.op == "weight" or (n.op == "transpose" and n.inputs[0].op == "weight")


def _bias_of(lin: Node, users: dict) -> Node | None:
    """The constant [out] bias added to `lin`, if that add is its only use."""
    us = users.get(id(lin), [])
    if len(us) == 1 and us[0].op == "add" and us[0].shape == lin.shape:
        other = us[0].inputs[1] if us[0].inputs[0] is lin else us[0].inputs[0]
        if other.op == "weight" and other.shape == lin.shape[-1:]:
            return other
    return None


def _horizontal(graph: Graph) -> Graph:
    users = graph.users()
    groups: dict[int, list[Node]] = {}
    for n in graph.nodes:
        if n.op == "linear" and _is_constant(n.inputs[1]):
            groups.setdefault(id(n.inputs[0]), []).append(n)
    member: dict[int, tuple[int, int]] = {}  # old node -> (group, index): the node a slice replaces
    plans = []
    for lins in groups.values():
        lins = [n for n in lins if n.dtype == lins[0].dtype and n.inputs[1].dtype == lins[0].inputs[1].dtype]
        if len(lins) < 2:
            continue
        biases = [_bias_of(n, users) for n in lins]
        with_bias = all(b is not None for b in biases)
        for i, n in enumerate(lins):
            member[id(users[id(n)][0] if with_bias else n)] = (len(plans), i)
        plans.append((lins, biases if with_bias else None))

    new: dict[int, Node] = {}
    built: dict[int, list[Node]] = {}

    def slices(g: int) -> list[Node]:
        if g not in built:  # the wide linear is made from the rewritten input, once
            lins, biases = plans[g]
            x = new[id(lins[0].inputs[0])]
            wide = make("linear", (x, make("concat", [new.get(id(n.inputs[1]), n.inputs[1]) for n in lins], axis=0)))
            if biases:
                wide = make("add", (wide, make("concat", [new.get(id(b), b) for b in biases], axis=0)))
            parts, start = [], 0
            for n in lins:
                parts.append(make("slice", (wide,), axis=-1, start=start, stop=start + n.shape[-1]))
                start += n.shape[-1]
            built[g] = parts
        return built[g]

    for node in graph.nodes:
        if id(node) in member:
            g, i = member[id(node)]
            new[id(node)] = slices(g)[i]
        else:
            new[id(node)] = rebuild(node, tuple(new[id(i)] for i in node.inputs))
    return graph.with_outputs([(name, new[id(n)]) for name, n in graph.outputs])


def choose_layouts(graph: Graph) -> Graph:
    return _horizontal(_to_linear(graph))
