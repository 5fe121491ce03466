"""Addressing Views inside Triton kernels whose domain is flattened to [ROWS, COLS].

A domain [d0, ..., dn-1] is iterated as rows (d0 .. dn-2, flattened) x columns (dn-1). The row
index is split back into per-dim indices with constant divisors (only d0 may be symbolic), and
each operand's address is offset + sum(index_i * stride_i), all strides being compile-time ints.
"""
from __future__ import annotations

from braze.ir.kernel import View
from braze.ir.ops import Shape


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def split_rows(domain: Shape, rows: str = "rows", indent: str = "    ") -> tuple[list[str], list[str]]:
    """Code that splits a flat row index into one index per leading dim; returns (lines, names)."""
    lead = domain[:-1]
    if not lead:
        return [], []
    names = [f"i{k}" for k in range(len(lead))]
    lines, rest = [], rows
    for k in range(len(lead) - 1, 0, -1):
        lines.append(f"{indent}{names[k]} = {rest} % {lead[k]}")
        lines.append(f"{indent}r{k} = {rest} // {lead[k]}")
        rest = f"r{k}"
    lines.append(f"{indent}{names[0]} = {rest}")
    return lines, names


def view_offsets(v: View, row_names: list[str], cols: str | None = "cols") -> str:
    """Offset expression of a view aligned with the domain (same rank; broadcast dims stride 0)."""
    terms = [str(v.offset)] if v.offset else []
    for name, stride in zip(row_names, v.strides[:-1]):
        if stride:
            terms.append(f"{name} * {stride}")
    if cols is not None and v.strides and v.strides[-1]:
        terms.append(cols if v.strides[-1] == 1 else f"{cols} * {v.strides[-1]}")
    return " + ".join(terms) if terms else "0"
