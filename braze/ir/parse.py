"""Parse the Graph IR's text form back into a Graph (tests write Before/Expected cases in it)."""
from __future__ import annotations

import ast
import re

from braze.ir.graph import Graph, Node, make
from braze.ir.ops import LONG_DTYPE

_LINE = re.compile(r"^(%[^\s=,()]+)\s*=\s*(\w+)\((.*?)\)\s*(\{.*\})?\s*:\s*(\w+)\[(.*)\]$")


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def _value(text: str):
    text = text.strip()
    if text.startswith("{"):
        return {k: v for k, v in (_pair(p) for p in _split_top(text[1:-1]))}
    if text.startswith("["):
        return [_value(p) for p in _split_top(text[1:-1])]
    if text in ("inf", "-inf", "nan"):  # how repr prints the constants of masks
        return float(text)
    return ast.literal_eval(text)


def _pair(text: str):
    key, _, val = text.partition("=")
    return key.strip(), _value(val)


def _dim(text: str):
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def parse_graph(text: str, weights=None, symbols=None) -> Graph:
    nodes: dict[str, Node] = {}
    outputs = []
    for lineno, raw in enumerate(text.strip().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("return"):
            outputs = [(name.strip(), nodes[ref.strip()]) for name, ref in (p.split("=") for p in _split_top(line[6:]))]
            continue
        m = _LINE.match(line)
        if not m:
            raise ValueError(f"line {lineno}: cannot parse {raw!r}")
        label, op, args, attrs, dtype, shape = m.groups()
        inputs = [nodes[a.strip()] for a in _split_top(args)]
        attr_dict = _value(attrs) if attrs else {}
        shape = tuple(_dim(d) for d in shape.split(",")) if shape.strip() else ()
        dtype = LONG_DTYPE[dtype]
        if op in ("input", "weight", "constant"):
            node = make(op, inputs, shape=shape, dtype=dtype, **attr_dict)
        else:
            node = make(op, inputs, **attr_dict)
            if node.shape != shape or node.dtype != dtype:
                raise ValueError(f"line {lineno}: annotated {dtype}{list(shape)}, inferred {node.dtype}{list(node.shape)}")
        nodes[label] = node
    return Graph(tuple(outputs), weights or {}, symbols or {})
