"""Kernel IR expressions as Triton code over a block (shared by every Triton kernel kind).

An expression DAG becomes a list of `vN = ...` lines evaluated on float32 blocks; the caller says
how each operand is loaded (`load(index) -> code`) and what `acc` and `rowred` j are.
"""
from __future__ import annotations

from typing import Callable

from braze.ir.kernel import Expr

TRITON_DTYPE = {"float32": "tl.float32", "bfloat16": "tl.bfloat16", "float16": "tl.float16",
                "int32": "tl.int32", "int64": "tl.int64", "bool": "tl.int1"}

_UNARY = {
    "neg": "-({0})",
    "exp": "tl.exp({0})",
    "log": "tl.log({0})",
    "sqrt": "tl.sqrt({0})",
    "rsqrt": "tl.rsqrt({0})",
    "reciprocal": "1.0 / ({0})",
    "tanh": "(2.0 * tl.sigmoid(2.0 * ({0})) - 1.0)",
    "sigmoid": "tl.sigmoid({0})",
    "silu": "(({0}) * tl.sigmoid({0}))",
    "relu": "tl.maximum({0}, 0.0)",
    "gelu": "(0.5 * ({0}) * (1.0 + tl.erf(({0}) * 0.7071067811865476)))",
    "cos": "tl.cos({0})",
    "sin": "tl.sin({0})",
    "abs": "tl.abs({0})",
    "square": "(({0}) * ({0}))",
    "logical_not": "tl.where(({0}) == 0.0, 1.0, 0.0)",
}
_BINARY = {
    "add": "({0} + {1})",
    "sub": "({0} - {1})",
    "mul": "({0} * {1})",
    "div": "({0} / {1})",
    "maximum": "tl.maximum({0}, {1})",
    "minimum": "tl.minimum({0}, {1})",
    "pow": "libdevice.pow({0}, {1})",
    # comparisons and logical ops: 1.0 or 0.0, like every value a kernel computes
    "eq": "tl.where({0} == {1}, 1.0, 0.0)",
    "ne": "tl.where({0} != {1}, 1.0, 0.0)",
    "lt": "tl.where({0} < {1}, 1.0, 0.0)",
    "le": "tl.where({0} <= {1}, 1.0, 0.0)",
    "gt": "tl.where({0} > {1}, 1.0, 0.0)",
    "ge": "tl.where({0} >= {1}, 1.0, 0.0)",
    "logical_and": "tl.where(({0} != 0.0) & ({1} != 0.0), 1.0, 0.0)",
    "logical_or": "tl.where(({0} != 0.0) | ({1} != 0.0), 1.0, 0.0)",
    "where": "tl.where({0} != 0.0, {1}, {2})",
}


def literal(value) -> str:
    """A float constant as Triton source (inf and nan have no literal: float('-inf'))."""
    text = repr(float(value))
    return text if text.lstrip("-")[0].isdigit() else f"float('{text}')"


class ExprEmitter:
    """Emits expression DAGs into one kernel body; names are unique across calls on one emitter."""

    def __init__(self, load: Callable[[int], str], indent: str = "    "):
        self.load = load
        self.indent = indent
        self.lines: list[str] = []
        self.counter = 0
        self.loaded: dict[int, str] = {}

    def _new(self, code: str) -> str:
        name = f"v{self.counter}"
        self.counter += 1
        self.lines.append(f"{self.indent}{name} = {code}")
        return name

    def emit(self, root: Expr, acc: str | None = None, rowreds: list[str] | None = None) -> str:
        """Append the lines computing root; returns the name (or literal) holding its value."""
        names: dict[int, str] = {}
        for e in root.walk():
            if e.op == "load":
                if e.value not in self.loaded:
                    self.loaded[e.value] = self._new(self.load(e.value))
                names[id(e)] = self.loaded[e.value]
            elif e.op == "const":
                names[id(e)] = literal(e.value)
            elif e.op == "acc":
                if acc is None:
                    raise ValueError("acc used outside a matmul epilogue")
                names[id(e)] = acc
            elif e.op == "rowred":
                names[id(e)] = rowreds[e.value]
            elif e.op == "cast":
                arg = names[id(e.args[0])]
                names[id(e)] = arg if e.value == "float32" else \
                    self._new(f"({arg}).to({TRITON_DTYPE[e.value]}).to(tl.float32)")
            elif e.op in _UNARY:
                names[id(e)] = self._new(_UNARY[e.op].format(names[id(e.args[0])]))
            else:
                names[id(e)] = self._new(_BINARY[e.op].format(*(names[id(a)] for a in e.args)))
        return names[id(root)]

    def forget_loads(self) -> None:
        """Loads made before this point are not valid any more (e.g. a new K block)."""
        self.loaded = {}
