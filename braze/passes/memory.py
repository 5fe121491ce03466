"""Liveness-based memory plan: temps share one arena; a temp's bytes are reused once it is dead."""
from __future__ import annotations

from dataclasses import replace

from braze.ir.kernel import MemoryPlan, Program
from braze.ir.ops import numel

ALIGN = 64
ELEMENT_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int32": 4, "int64": 8, "bool": 1, "int8": 1, "uint8": 1,
                 "float8_e4m3fn": 1}


def buffer_bytes(shape, dtype, symbols) -> int:
    return numel(shape, dict(symbols)) * ELEMENT_BYTES[dtype]


def plan_memory(program: Program) -> Program:
    temps = {b.name: b for b in program.buffers if b.kind == "temp"}
    first, last = {}, {}
    for i, k in _steps(program):
        for v in list(k.operands) + [k.output]:
            if v.buffer in temps:
                first.setdefault(v.buffer, i)
                last[v.buffer] = i
    end = len(program.kernels)
    for _, buf in program.outputs:  # outputs stay alive until the caller reads them
        if buf in temps:
            last[buf] = end
    size = {n: -(-buffer_bytes(b.shape, b.dtype, program.symbols) // ALIGN) * ALIGN for n, b in temps.items()}
    placed: list[tuple[int, int, int, int]] = []  # (start, stop, offset, bytes)
    offsets = {}
    for name in sorted(temps, key=lambda n: (-size[n], first.get(n, 0))):
        lo, hi = first.get(name, 0), last.get(name, end)
        clashes = sorted((off, off + nb) for s, e, off, nb in placed if s <= hi and lo <= e)
        offset = 0
        for start, stop in clashes:  # first gap that fits
            if offset + size[name] <= start:
                break
            offset = max(offset, stop)
        offsets[name] = offset
        placed.append((lo, hi, offset, size[name]))
    arena = max((off + nb for _, _, off, nb in placed), default=0)
    return replace(program, plan=MemoryPlan(offsets, arena, sum(size.values())))


def _steps(program: Program):
    """(step, kernel): the kernels of one launch group run at the same time, so they share a step
    (a temp one of them reads must not share bytes with a temp another one writes)."""
    step, group = -1, None
    for k in program.kernels:
        g = k.attr("launch_group")
        if g is None or g != group:
            step += 1
        group = g
        yield step, k
