"""Quantized weights in the Triton matmul: the B chunk is dequantized in registers, inside the loop.

A matmul kernel with attrs `quant` (int8 | int4 | fp8, braze/quant/formats.py) is emitted by the
same GEMV / GEMM generator as a float one (matmul.py's _Gen: prologue, row reductions, split-K,
epilogue); only the B chunk differs. Where a float kernel loads b = B[cols, kk], this one loads

  int4  BLOCK_K/2 contiguous bytes per row (16-byte vector loads: the same coalesced stream as a
        float weight, a quarter of bf16's bytes), splits the nibbles and interleaves them back
        with tl.join(low, high).reshape -> [BLOCK_N, BLOCK_K] (byte j = weights 2j and 2j+1);
  int8 / fp8  the chunk's bytes, converted;

then the per-group scales (and mins) for those columns (one value per `group` columns: the loads
of a chunk hit the same few addresses, served from L1), and b = q * s (+ m, or (q - 8) * s). The
GEMV multiplies in float32; the GEMM casts b to the activations' dtype for tl.dot.

Prefill (M > 16) on the GPU may instead dequantize the whole weight once into a workspace and
use cuBLAS (the library variant of matmul.py) — a tuner candidate like any other.
"""
from __future__ import annotations

from braze.codegen.triton.exprs import TRITON_DTYPE
from braze.codegen.triton.matmul import _Gen, _full
from braze.errors import CompilationError

_FLOATS = ("float32", "bfloat16", "float16")


class QuantGen(_Gen):
    """_Gen for a kernel whose weight operand is packed (attrs quant, group, k, scales, mins)."""

    def __init__(self, k, ctx):
        super().__init__(k, ctx)
        self.format, self.group = k.attr("quant"), int(k.attr("group"))
        self.k_dim = int(k.attr("k"))
        self.scales, self.mins = int(k.attr("scales")), int(k.attr("mins", -1))
        for i in (self.w, self.scales, self.mins):
            if i >= 0 and (len(k.operands[i].shape) != 2 or k.operands[i].strides[1] != 1):
                raise CompilationError(f"kernel {k.name}: quantized operands must be row-major [N, *], "
                                       f"got {k.operands[i]}")
        if self.format == "int4" and self.group % 2:
            raise CompilationError(f"kernel {k.name}: int4 group {self.group} is odd")
        # the dtype the products run in: the activations' (the GEMM's tl.dot operands)
        act = [ctx.program.buffer(v.buffer).dtype for i, v in enumerate(k.operands)
               if i not in (self.w, self.scales, self.mins)]
        self.wdtype = next((d for d in act if d in _FLOATS), self.odtype if self.odtype in _FLOATS else "float32")

    def b_pointer(self) -> str:
        lines = [super().b_pointer()]
        for name, i in (("sp", self.scales), ("mp", self.mins)):
            if i >= 0:
                v = self.k.operands[i]
                off = f" + {v.offset}" if v.offset else ""
                lines.append(f"    {name} = in{i}{off} + tl.minimum(cols, N - 1).to(tl.int64)[:, None] * {v.strides[0]}")
        return "\n".join(lines)

    def _chunk_product(self, a: str, masked: bool, update: str, indent: str) -> list[str]:
        g = self.group
        if masked:
            lines = [f"{indent}a = tl.where(kmask, {_full(a, '(BLOCK_M, BLOCK_K)')}, 0.0)"]
        else:
            lines = [f"{indent}a = {_full(a, '(BLOCK_M, BLOCK_K)')}"]
        kmask = ", mask=kmask, other=0.0" if masked else ""
        if self.format == "int4":
            half = "(k0 // 2 + tl.arange(0, BLOCK_K // 2))[None, :]"
            hmask = f", mask={half} < K // 2, other=0" if masked else ""
            lines += [f"{indent}qb = tl.load(bp + {half}{hmask})",
                      f"{indent}q = tl.reshape(tl.join((qb & 15).to(tl.float32), (qb >> 4).to(tl.float32)), "
                      "(BLOCK_N, BLOCK_K))"]
        else:
            lines += [f"{indent}q = tl.load(bp + kk{kmask}).to(tl.float32)"]
        lines.append(f"{indent}s = tl.load(sp + kk // {g}{', mask=kmask, other=0.0' if masked else ''}).to(tl.float32)")
        if self.format == "int4" and self.mins >= 0:
            lines += [f"{indent}m = tl.load(mp + kk // {g}{kmask}).to(tl.float32)", f"{indent}b = q * s + m"]
        elif self.format == "int4":
            lines.append(f"{indent}b = (q - 8.0) * s")
        else:
            lines.append(f"{indent}b = q * s")
        return lines + [f"{indent}{u}" for u in update.split("\n")]

    def dot(self) -> str:
        if self.wdtype == "float32":
            return 'tl.dot(a, tl.trans(b), input_precision="ieee")'
        t = TRITON_DTYPE[self.wdtype]
        return f"tl.dot(a.to({t}), tl.trans(b.to({t})))"

