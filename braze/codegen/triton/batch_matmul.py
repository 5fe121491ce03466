"""The batch_matmul kind in Triton: one program per (batch index, M block, N block), tl.dot over K.

output[*b, m, n] = sum_k A[*b, m, k] * B[*b, k, n]. Both operands are read through their Views, so
a transposed k or a kv head broadcast over its query heads (stride 0) costs nothing. Products
accumulate in float32; float32 operands use input_precision="ieee" so results match float32
references, half-precision ones run in their own dtype on the tensor cores. The flat batch index
is split into per-dim indices with constant divisors (only the first batch dim may be a symbol).
"""
from __future__ import annotations

from braze.codegen.triton.exprs import TRITON_DTYPE
from braze.codegen.triton.indexing import next_pow2, split_rows, view_offsets
from braze.codegen.triton.module import EmitContext, EmittedKernel
from braze.errors import CompilationError
from braze.ir.kernel import Kernel

MAX_BLOCK_MN, MAX_BLOCK_K = 64, 32
HALF_DTYPES = ("bfloat16", "float16")


def _block(size: int, cap: int) -> int:
    return min(cap, max(16, next_pow2(size)))  # tl.dot takes blocks of at least 16


def _term(index: str, stride: int) -> str:
    return "" if stride == 0 else f" + {index}" if stride == 1 else f" + {index} * {stride}"


def emit_batch_matmul(k: Kernel, ctx: EmitContext) -> EmittedKernel:
    a, b = k.operands
    out = k.output
    *batch, m, n = out.shape
    kdim = a.shape[-1]
    if not all(isinstance(d, int) for d in (m, n, kdim)):
        raise CompilationError(f"kernel {k.name}: batch_matmul needs static M, N and K, got {m}, {n}, {kdim}")
    dtypes = {ctx.program.buffer(v.buffer).dtype for v in (a, b, out)}
    compute = next(iter(dtypes)) if len(dtypes) == 1 and dtypes <= set(HALF_DTYPES) else "float32"
    precision = ', input_precision="ieee"' if compute == "float32" else ""
    block_m, block_n, block_k = _block(m, MAX_BLOCK_MN), _block(n, MAX_BLOCK_MN), _block(kdim, MAX_BLOCK_K)
    split, names = split_rows(tuple(batch) + (1,), "pid_b")
    (sam, sak), (sbk, sbn), (som, son) = a.strides[-2:], b.strides[-2:], out.strides[-2:]
    lines = ['@triton.jit(do_not_specialize=["BATCH"])',
             "def KERNEL(a, b, out, BATCH, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):",
             "    pid_b = tl.program_id(0).to(tl.int64)",
             "    rm = tl.program_id(1) * BM + tl.arange(0, BM)[:, None]",
             "    rn = tl.program_id(2) * BN + tl.arange(0, BN)[None, :]"] + split + [
             f"    a_rows = a + {view_offsets(a, names, None)}{_term('rm', sam)}",
             f"    b_cols = b + {view_offsets(b, names, None)}{_term('rn', sbn)}",
             "    acc = tl.zeros([BM, BN], tl.float32)",
             f"    for k0 in range(0, {kdim}, BK):",
             "        ka = k0 + tl.arange(0, BK)[None, :]",
             "        kb = k0 + tl.arange(0, BK)[:, None]",
             f"        x = tl.load(a_rows{_term('ka', sak)}, mask=(rm < {m}) & (ka < {kdim}), other=0.0)",
             f"        y = tl.load(b_cols{_term('kb', sbk)}, mask=(kb < {kdim}) & (rn < {n}), other=0.0)",
             f"        acc += tl.dot(x.to({TRITON_DTYPE[compute]}), y.to({TRITON_DTYPE[compute]}){precision})",
             f"    target = out + {view_offsets(out, names, None)}{_term('rm', som)}{_term('rn', son)}",
             f"    tl.store(target, acc.to({TRITON_DTYPE[ctx.program.buffer(out.buffer).dtype]}), "
             f"mask=(rm < {m}) & (rn < {n}))"]
    grid = f"(BATCH, {-(-m // block_m)}, {-(-n // block_n)})"
    args = ", ".join(ctx.buf(v.buffer) for v in (a, b, out))
    launch = (f"    BATCH = {ctx.numel(batch)}\n    if BATCH == 0:\n        return\n"
              f"    KERNEL[{grid}]({args}, BATCH, BM={block_m}, BN={block_n}, BK={block_k}, num_warps=4)\n")
    return EmittedKernel("\n".join(lines) + "\n", launch)
