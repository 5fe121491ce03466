"""Text form of Kernel IR: one block per kernel, expressions as numbered lines."""
from __future__ import annotations

from braze.ir.kernel import Expr, Kernel, Program
from braze.ir.ops import SHORT_DTYPE


def _expr_lines(root: Expr, name: str, operands) -> list[str]:
    labels: dict[int, str] = {}
    lines = []
    for e in root.walk():
        if e.op == "load":
            text = f"load {operands[e.value]}"
        elif e.op == "const":
            text = repr(e.value)
        elif e.op in ("acc",):
            text = "acc"
        elif e.op == "rowred":
            text = f"red{e.value}"
        elif e.op == "cast":
            text = f"cast<{e.value}>({labels[id(e.args[0])]})"
        else:
            text = f"{e.op}({', '.join(labels[id(a)] for a in e.args)})"
        if e.op in ("load", "const", "acc", "rowred") and e is not root:
            labels[id(e)] = text if e.op != "load" else f"${e.value}"
            continue
        labels[id(e)] = f"%{len(lines)}"
        lines.append(f"    %{len(lines)} = {text}")
    lines.append(f"    {name} = {labels[id(root)]}")
    return lines


def print_kernel(k: Kernel) -> str:
    attrs = "".join(f" {key}={value}" for key, value in k.attrs)
    lines = [f"kernel {k.name} {k.kind}{attrs} -> {k.output}   # {' '.join(k.sources)}"]
    for i, v in enumerate(k.operands):
        lines.append(f"  ${i} = {v}")
    for j, (op, body) in enumerate(k.reductions):
        lines.append(f"  red{j} = {op} over last axis:")
        lines.extend(_expr_lines(body, "value", k.operands))
    if k.prologue is not None:
        lines.append("  prologue A[m, k]:")
        lines.extend(_expr_lines(k.prologue, "A", k.operands))
    if k.expr is not None:
        lines.append("  out:")
        lines.extend(_expr_lines(k.expr, "out", k.operands))
    return "\n".join(lines)


def print_program(p: Program) -> str:
    lines = [f"program {p.name}  symbols {dict(p.symbols)}"]
    for b in p.buffers:
        off = f" @{p.plan.offsets[b.name]}" if p.plan and b.name in p.plan.offsets else ""
        lines.append(f"  buffer {b.kind:6} {b.name}: {SHORT_DTYPE[b.dtype]}[{', '.join(map(str, b.shape))}]{off}")
    if p.plan:
        lines.append(f"  arena {p.plan.arena_bytes} bytes (one buffer each: {p.plan.naive_bytes})")
    lines.append("  outputs " + ", ".join(f"{n}={b}" for n, b in p.outputs))
    lines.extend(print_kernel(k) for k in p.kernels)
    return "\n".join(lines)
