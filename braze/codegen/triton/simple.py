"""Triton emitters for the memory-bound kinds: pointwise (and, below, reduction, gather, rope,
kv_store)."""
from __future__ import annotations

from braze.codegen.triton.exprs import TRITON_DTYPE, ExprEmitter
from braze.codegen.triton.indexing import next_pow2, split_rows, view_offsets
from braze.codegen.triton.module import EmitContext, EmittedKernel
from braze.ir.kernel import Kernel


def _dtype_of(ctx: EmitContext, buffer: str) -> str:
    return ctx.program.buffer(buffer).dtype


def emit_pointwise(k: Kernel, ctx: EmitContext) -> EmittedKernel:
    domain = k.output.shape
    cols_const = domain[-1] if domain and isinstance(domain[-1], int) else None
    block_c = min(next_pow2(cols_const), 1024) if cols_const else 256
    block_r = max(1, 2048 // block_c)
    split, row_names = split_rows(domain, "rows64")
    args = [f"in{i}" for i in range(len(k.operands))] + ["out", "ROWS", "COLS", "BR: tl.constexpr", "BC: tl.constexpr"]
    lines = ["@triton.jit", f"def KERNEL({', '.join(args)}):",
             "    rows = tl.program_id(0) * BR + tl.arange(0, BR)[:, None]",
             "    cols = tl.program_id(1) * BC + tl.arange(0, BC)[None, :]",
             "    mask = (rows < ROWS) & (cols < COLS)",
             "    rows64 = rows.to(tl.int64)"] + split
    emitter = ExprEmitter(lambda i: f"tl.load(in{i} + {view_offsets(k.operands[i], row_names)}, mask=mask, "
                                    f"other=0.0).to(tl.float32)")
    value = emitter.emit(k.expr)
    lines += emitter.lines
    out_dtype = TRITON_DTYPE[_dtype_of(ctx, k.output.buffer)]
    lines.append(f"    value = ({value}) + tl.zeros([BR, BC], tl.float32)")
    lines.append(f"    tl.store(out + {view_offsets(k.output, row_names)}, value.to({out_dtype}), mask=mask)")
    operands = ", ".join(ctx.buf(v.buffer) for v in k.operands)
    launch = (f"    ROWS = {ctx.numel(domain[:-1])}\n    COLS = {ctx.dim(domain[-1]) if domain else '1'}\n"
              f"    if ROWS * COLS == 0:\n        return\n"
              f"    grid = (triton.cdiv(ROWS, {block_r}), triton.cdiv(COLS, {block_c}))\n"
              f"    KERNEL[grid]({operands + ', ' if operands else ''}{ctx.buf(k.output.buffer)}, ROWS, COLS, "
              f"BR={block_r}, BC={block_c})\n")
    return EmittedKernel("\n".join(lines) + "\n", launch)
