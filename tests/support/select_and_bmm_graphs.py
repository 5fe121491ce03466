"""Graphs with the comparison, logical, where and batched-matmul ops, shared by the C++ and the
Triton backend tests (each backend must match the Graph IR interpreter on them).

Imported as `select_and_bmm_graphs` (tests/codegen/conftest.py puts tests/support on sys.path)."""
from __future__ import annotations

import torch

from braze.ir.interpret import TORCH_DTYPE
from braze.ir.parse import parse_graph

# every comparison, logical and/or/not, where with a broadcast condition, bool outputs
SELECT = """
    %x = input() {name="x"} : f32[T, 12]
    %y = input() {name="y"} : f32[12]
    %m = input() {name="m"} : bool[T, 1]
    %half = constant() {value=0.5} : f32[]
    %ninf = constant() {value=-inf} : f32[]
    %0 = eq(%x, %y) : bool[T, 12]
    %1 = ne(%x, %half) : bool[T, 12]
    %2 = lt(%x, %y) : bool[T, 12]
    %3 = le(%x, %half) : bool[T, 12]
    %4 = gt(%x, %y) : bool[T, 12]
    %5 = ge(%x, %half) : bool[T, 12]
    %6 = logical_or(%0, %1) : bool[T, 12]
    %7 = logical_and(%2, %5) : bool[T, 12]
    %8 = logical_not(%4) : bool[T, 12]
    %9 = logical_and(%3, %m) : bool[T, 12]
    %10 = where(%6, %x, %ninf) : f32[T, 12]
    %11 = softmax(%10) : f32[T, 12]
    %12 = where(%m, %y, %x) : f32[T, 12]
    %13 = cast(%8) {dtype="float32"} : f32[T, 12]
    %14 = cast(%x) {dtype="bool"} : bool[T, 12]
    return any=%6, both=%9, soft=%11, pick=%12, not_gt=%13, nonzero=%14, masked=%7
"""

# attention by hand: scores of 4 query heads against 2 kv heads (broadcast), causal mask, probs @ v
ATTENTION = """
    %q = input() {name="q"} : f32[2, 2, 2, 7, 16]
    %k = input() {name="k"} : f32[2, 2, 1, 7, 16]
    %v = input() {name="v"} : f32[2, 2, 1, 7, 20]
    %mask = input() {name="mask"} : bool[7, 7]
    %scale = constant() {value=0.25} : f32[]
    %ninf = constant() {value=-inf} : f32[]
    %0 = transpose(%k) : f32[2, 2, 1, 16, 7]
    %1 = matmul(%q, %0) : f32[2, 2, 2, 7, 7]
    %2 = mul(%1, %scale) : f32[2, 2, 2, 7, 7]
    %3 = where(%mask, %2, %ninf) : f32[2, 2, 2, 7, 7]
    %4 = softmax(%3) : f32[2, 2, 2, 7, 7]
    %5 = matmul(%4, %v) : f32[2, 2, 2, 7, 20]
    return out=%5
"""

# a 2-d left operand against a runtime number of right operands, K not a multiple of any block
BROADCAST_LEFT = """
    %a = input() {name="a"} : f32[5, 37]
    %b = input() {name="b"} : f32[T, 37, 18]
    %0 = matmul(%a, %b) : f32[T, 5, 18]
    return out=%0
"""


def graph(text: str, symbols: dict | None = None):
    return parse_graph(text, {}, symbols or {"T": 9})


def feeds(g, sizes: dict[str, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs; x gets exact 0.5s and copies of y so eq/ne/le/ge see ties; masks are causal."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for n in g.inputs:
        shape = tuple(sizes.get(d, d) if isinstance(d, str) else d for d in n.shape)
        if n.dtype == "bool":
            out[n.attr("name")] = torch.ones(shape, dtype=torch.bool).tril() if n.attr("name") == "mask" \
                else torch.rand(shape, generator=gen) < 0.5
        else:
            out[n.attr("name")] = torch.randn(shape, generator=gen).to(TORCH_DTYPE[n.dtype])
    if "x" in out and "y" in out:
        out["x"][:, ::3] = 0.5
        out["x"][:, 1::4] = out["y"][1::4]
    return out
