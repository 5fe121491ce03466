"""Graph IR: one immutable node type, a graph of named outputs, and a readable text form.

    %x = input() {name="x"} : f32[T, 64]
    %1 = mul(%x, %x) : f32[T, 64]
    return out=%1
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from braze.ir.ops import SHORT_DTYPE, Shape, infer


@dataclass(frozen=True, eq=False)
class Node:
    """One value in the graph. Identity is the node object; `key` is its structure (for CSE)."""

    op: str
    inputs: tuple["Node", ...]
    shape: Shape
    dtype: str
    attrs: tuple[tuple[str, Any], ...] = ()

    def attr(self, name: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == name:
                return v
        return default

    @property
    def attr_dict(self) -> dict[str, Any]:
        return dict(self.attrs)

    @property
    def key(self) -> tuple:
        return (self.op, tuple(id(i) for i in self.inputs), self.shape, self.dtype, self.attrs)

    def __repr__(self) -> str:
        return f"Node({self.op}, {self.dtype}{list(self.shape)})"


def make(op: str, inputs: Iterable[Node] = (), **attrs: Any) -> Node:
    """Build a node, inferring its shape and dtype (sources pass `shape`/`dtype` attrs)."""
    inputs = tuple(inputs)
    if op in ("input", "weight", "constant"):
        shape, dtype = tuple(attrs.pop("shape")), attrs.pop("dtype")
    else:
        shape, dtype = infer(op, [i.shape for i in inputs], [i.dtype for i in inputs], attrs)
    frozen = tuple(sorted((k, _freeze(v)) for k, v in attrs.items()))
    return Node(op, inputs, shape, dtype, frozen)


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def toposort(outputs: Iterable[Node]) -> list[Node]:
    order, seen = [], set()
    for root in outputs:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in seen:
                continue
            if expanded:
                seen.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            for i in reversed(node.inputs):
                if id(i) not in seen:
                    stack.append((i, False))
    return order


@dataclass(frozen=True)
class Graph:
    """A pure function from named inputs to named outputs. Weights hold the values of `weight` nodes."""

    outputs: tuple[tuple[str, Node], ...]
    weights: Mapping[str, Any] = field(default_factory=dict)
    symbols: Mapping[str, int] = field(default_factory=dict)  # upper bound of each symbolic dim
    name: str = "graph"

    def __post_init__(self):
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        object.__setattr__(self, "symbols", MappingProxyType(dict(self.symbols)))

    @property
    def nodes(self) -> list[Node]:
        return toposort(node for _, node in self.outputs)

    @property
    def inputs(self) -> list[Node]:
        return sorted((n for n in self.nodes if n.op == "input"), key=lambda n: n.attr("name"))

    def with_outputs(self, outputs, weights=None) -> "Graph":
        return Graph(tuple(outputs), self.weights if weights is None else weights, self.symbols, self.name)

    def users(self) -> dict[int, list[Node]]:
        users: dict[int, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                users.setdefault(id(i), []).append(n)
        return users

    def __str__(self) -> str:
        return print_graph(self)


def format_type(shape: Shape, dtype: str) -> str:
    return f"{SHORT_DTYPE[dtype]}[{', '.join(str(d) for d in shape)}]"


def format_attr(v: Any) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple) and v and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in v):
        return "{" + ", ".join(f"{k}={format_attr(x)}" for k, x in v) + "}"
    if isinstance(v, tuple):
        return "[" + ", ".join(format_attr(x) for x in v) + "]"
    return repr(v)


def node_labels(nodes: list[Node]) -> dict[int, str]:
    labels, counter = {}, 0
    for n in nodes:
        if n.op in ("input", "weight"):
            labels[id(n)] = "%" + n.attr("name")
        else:
            labels[id(n)] = f"%{counter}"
            counter += 1
    return labels


def print_graph(graph: Graph) -> str:
    nodes = graph.nodes
    labels = node_labels(nodes)
    lines = []
    for n in nodes:
        args = ", ".join(labels[id(i)] for i in n.inputs)
        attrs = " {" + ", ".join(f"{k}={format_attr(v)}" for k, v in n.attrs) + "}" if n.attrs else ""
        lines.append(f"{labels[id(n)]} = {n.op}({args}){attrs} : {format_type(n.shape, n.dtype)}")
    lines.append("return " + ", ".join(f"{name}={labels[id(n)]}" for name, n in graph.outputs))
    return "\n".join(lines)
