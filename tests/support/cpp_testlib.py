"""Helpers for the C++ backend tests: build small Kernel IR programs by hand and run them on torch tensors.

Imported as `cpp_testlib` (tests/codegen/conftest.py puts tests/support on sys.path)."""
from __future__ import annotations

import torch

from braze.ir.interpret import TORCH_DTYPE
from braze.ir.kernel import Buffer, Expr, Kernel, Program, View


def contiguous_strides(shape, symbols=None):
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc = acc * d if isinstance(d, int) else None  # only a leading dim may be symbolic here
    return tuple(reversed(strides))


def cview(buffer: str, shape, offset: int = 0) -> View:
    return View(buffer, tuple(shape), contiguous_strides(shape), offset)


def load(i: int) -> Expr:
    return Expr("load", value=i)


def const(v: float) -> Expr:
    return Expr("const", value=v)


def op(name: str, *args: Expr) -> Expr:
    return Expr(name, tuple(args))


def cast(e: Expr, dtype: str) -> Expr:
    return Expr("cast", (e,), dtype)


ACC = Expr("acc")


def rowred(j: int) -> Expr:
    return Expr("rowred", value=j)


def program(kernels, buffers, symbols=None, name="test") -> Program:
    return Program(kernels=tuple(kernels), buffers=tuple(buffers), outputs=(), symbols=symbols or {}, name=name)


def alloc(prog: Program, sym: dict, init: dict | None = None) -> dict[str, torch.Tensor]:
    """A tensor per buffer (random floats, zero ints) unless given in `init`."""
    out = {}
    for b in prog.buffers:
        if init and b.name in init:
            out[b.name] = init[b.name].contiguous()
            continue
        shape = tuple(sym[d] if isinstance(d, str) else d for d in b.shape)
        dt = TORCH_DTYPE[b.dtype]
        out[b.name] = torch.randn(shape).to(dt) if dt.is_floating_point else torch.zeros(shape, dtype=dt)
    return out


def run(cp, tensors: dict[str, torch.Tensor], sym: dict | None = None) -> None:
    sym = sym or {}
    for b in cp.program.buffers:
        t = tensors[b.name]
        assert t.is_contiguous() and t.dtype == TORCH_DTYPE[b.dtype], b.name
        shape = tuple(sym[d] if isinstance(d, str) else d for d in b.shape)
        assert tuple(t.shape) == shape, (b.name, t.shape, shape)
    cp.run([tensors[b.name].data_ptr() for b in cp.program.buffers], [sym[s] for s in sorted(cp.program.symbols)])

