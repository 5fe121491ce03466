"""Horizontal fusion: consecutive independent pointwise kernels share one launch.

Rotate-half RoPE over q and k is four small pointwise kernels after `distribute_over_concat` (one
per half of each tensor); each costs a launch and a ramp-up that dwarf its few microseconds of
memory traffic. Kernels that neither read nor write what another one writes can run at the same
time, so they are tagged with one `launch_group` and the Triton emitter runs them as one grid
(each program picks its part by program id), as Inductor's combo kernels do. The tag changes no
semantics: every other backend and the interpreter still run the kernels one after another.

Independence is decided on memory, not names: two concat parts write disjoint column ranges of
the same buffer, which is fine, so views of one buffer are compared element by element.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from braze.ir.kernel import Kernel, Program, View

MAX_PARTS = 8            # more parts make the launcher's part search longer than a launch saves
MAX_CHECKED = 1 << 22    # views larger than this are assumed to overlap (the check is a set test)


def group_independent_kernels(program: Program) -> Program:
    kernels: list[Kernel] = []
    run: list[Kernel] = []
    groups = 0

    def flush() -> None:
        nonlocal groups
        if len(run) > 1:
            kernels.extend(replace(k, attrs=k.attrs + (("launch_group", groups),)) for k in run)
            groups += 1
        else:
            kernels.extend(run)
        run.clear()

    for k in program.kernels:
        if k.kind == "pointwise" and run and len(run) < MAX_PARTS \
                and all(_independent(m, k, program.symbols) for m in run):
            run.append(k)
            continue
        flush()
        if k.kind == "pointwise":
            run.append(k)
        else:
            kernels.append(k)
    flush()
    return replace(program, kernels=tuple(kernels))


def _independent(a: Kernel, b: Kernel, symbols) -> bool:
    """Neither kernel writes memory the other reads or writes."""
    pairs = [(a.output, b.output)] + [(a.output, v) for v in b.operands] + [(b.output, v) for v in a.operands]
    return not any(_overlap(x, y, symbols) for x, y in pairs)


def _overlap(a: View, b: View, symbols) -> bool:
    if a.buffer != b.buffer:
        return False
    addresses = [_addresses(v, symbols) for v in (a, b)]
    if any(x is None for x in addresses):
        return True
    return bool(torch.isin(addresses[0], addresses[1]).any())


def _addresses(v: View, symbols) -> torch.Tensor | None:
    shape = [d if isinstance(d, int) else int(symbols[d]) for d in v.shape]
    if torch.Size(shape).numel() > MAX_CHECKED:
        return None
    flat = torch.full((1,), v.offset, dtype=torch.int64)
    for size, stride in zip(shape, v.strides):
        flat = (flat[:, None] + torch.arange(size, dtype=torch.int64)[None, :] * stride).reshape(-1)
    return flat.unique()
