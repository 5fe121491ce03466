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

import os

from braze.codegen.triton.exprs import TRITON_DTYPE, ExprEmitter
from braze.codegen.triton.matmul import _full, _Gen, _init
from braze.errors import CompilationError

_FLOATS = ("float32", "bfloat16", "float16")
# the chunk's int4 bytes (k0 is a multiple of BLOCK_K: the hints let Triton issue 16-byte loads)
HALF_COLUMNS = "tl.max_contiguous(tl.multiple_of(k0 // 2 + tl.arange(0, BLOCK_K // 2), BLOCK_K // 2), BLOCK_K // 2)[None, :]"


class QuantGen(_Gen):
    """_Gen for a kernel whose weight operand is packed (attrs quant, group, k, scales, mins)."""

    def __init__(self, k, ctx):
        super().__init__(k, ctx)
        self.format, self.group = k.attr("quant"), int(k.attr("group"))
        self.weight_bytes = 0.5 if self.format == "int4" else 1.0
        # no first chunk above the wait (module.EARLY_WEIGHTS): on an H100 it made TinyLlama's int4
        # decode step slower, 0.863 -> 0.930 ms, and a chain of int8 GEMVs 0.535 -> 0.637 ms
        self.early = False
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

    def raw_loads(self, masked: bool, indent: str, suffix: str = "") -> list[str]:
        """The chunk's weights as stored: int4 its BLOCK_K/2 bytes per row (qb), int8 / fp8 its
        BLOCK_K values (qw). Group scales and mins load with their conversion (group_values)."""
        if self.format == "int4":
            hmask = f", mask={HALF_COLUMNS} < K // 2, other=0" if masked else ""
            return [f"{indent}qb{suffix} = tl.load(bp + {HALF_COLUMNS}{hmask})"]
        return [f"{indent}qw{suffix} = tl.load(bp + kk{', mask=kmask, other=0.0' if masked else ''})"]

    def dequant_lines(self, masked: bool, indent: str) -> list[str]:
        """Lines computing b [BLOCK_N, BLOCK_K] (float32) for the columns kk of the rows at bp/sp/mp."""
        lines = self.weight_loads(masked, indent)
        if self.format == "int4":
            lines.append(f"{indent}q = tl.reshape(tl.join((qb & 15).to(tl.float32), (qb >> 4).to(tl.float32)), "
                         "(BLOCK_N, BLOCK_K))")
        else:
            lines.append(f"{indent}q = qw.to(tl.float32)")
        lines += self.group_values("s", "sp", masked, indent)
        if self.format == "int4" and self.mins >= 0:
            lines += self.group_values("m", "mp", masked, indent) + [f"{indent}b = q * s + m"]
        elif self.format == "int4":
            lines.append(f"{indent}b = (q - 8.0) * s")
        else:
            lines.append(f"{indent}b = q * s")
        return lines

    def group_values(self, name: str, ptr: str, masked: bool, indent: str) -> list[str]:
        """`name` [BLOCK_N, BLOCK_K]: each column's group value (scale or min) from ptr's rows. A chunk
        holding whole groups loads BLOCK_K/group values and broadcasts them; a chunk inside one group
        (group a multiple of BLOCK_K, or one group per row) loads one per row; else one per column."""
        g, k = self.group, self.k_dim
        ngroups = -(-k // g)
        mask = f", mask=(k0 // {g} + tl.arange(0, BLOCK_K // {g}))[None, :] < {ngroups}, other=0.0" if masked else ""
        kmask = ", mask=kmask, other=0.0" if masked else ""
        return [f"{indent}if BLOCK_K % {g} == 0:",
                f"{indent}    {name}g = tl.load({ptr} + (k0 // {g} + tl.arange(0, BLOCK_K // {g}))[None, :]{mask})",
                f"{indent}    {name} = tl.reshape(tl.broadcast_to({name}g.to(tl.float32)[:, :, None], "
                f"(BLOCK_N, BLOCK_K // {g}, {g})), (BLOCK_N, BLOCK_K))",
                f"{indent}elif {g} % BLOCK_K == 0 or {g} >= {k}:",
                f"{indent}    {name} = tl.load({ptr} + k0 // {g}).to(tl.float32)",
                f"{indent}else:",
                f"{indent}    {name} = tl.load({ptr} + kk // {g}{kmask}).to(tl.float32)"]

    def _chunk_product(self, a: str, masked: bool, update: str, indent: str) -> list[str]:
        if masked:
            lines = [f"{indent}a = tl.where(kmask, {_full(a, '(BLOCK_M, BLOCK_K)')}, 0.0)"]
        else:
            lines = [f"{indent}a = {_full(a, '(BLOCK_M, BLOCK_K)')}"]
        return lines + self.dequant_lines(masked, indent) + [f"{indent}{u}" for u in update.split("\n")]

    def dot(self) -> str:
        if self.wdtype == "float32":
            return 'tl.dot(a, tl.trans(b), input_precision="ieee")'
        t = TRITON_DTYPE[self.wdtype]
        return f"tl.dot(a.to({t}), tl.trans(b.to({t})))"



# -- prefill through a library matmul (matmul_library.py's variant "library") ---------------------

DEQUANT_BLOCK_N, DEQUANT_BLOCK_K = 64, 64

FP8_HELPER = '''def _braze_fp8_scaled_mm(a8, s_a, w8, scale_w, out, add=None):
    """out = (a8 * s_a) @ (w8 * scale_w)^T (+ add): activations already e4m3 with per-token scales
    (the matmul's fp8 prologue kernel), torch._scaled_mm with row-wise scales and fast accumulation (as float8
    inference in torchao does), written straight into `out` when nothing is added. Off the GPU
    (Triton's interpreter) the same products in float32."""
    if a8.device.type != "cuda":
        _braze_fp8_mm(a8.float() * s_a, w8, scale_w, out, add)
        return
    scale_b = scale_w.float().reshape(1, -1)
    if add is not None and add.shape == out.shape and add.stride(-1) == 1 and out.stride(-1) == 1:
        from braze.codegen.triton import fp8_gemm
        if fp8_gemm.use_fused_add(*w8.shape):  # the residual added in the GEMM's epilogue (fp8_gemm.py)
            fp8_gemm.fp8_mm_add(a8, s_a, w8, scale_b.view(-1), add, out)
            return
    out_dtype = torch.bfloat16 if out.dtype == torch.float32 else out.dtype
    if add is None and out.dtype == out_dtype and out.is_contiguous():
        torch._scaled_mm(a8, w8.t(), scale_a=s_a, scale_b=scale_b, out_dtype=out_dtype, use_fast_accum=True, out=out)
        return
    y = torch._scaled_mm(a8, w8.t(), scale_a=s_a, scale_b=scale_b, out_dtype=out_dtype, use_fast_accum=True)
    if add is not None:
        torch.add(y, add, out=out)
    else:
        out.copy_(y)


def _braze_fp8_mm(a, w8, scale_w, out, add=None):
    """N or K not a multiple of 16, which _scaled_mm needs: the weight dequantized, a float32
    product (the activations are not rounded to e4m3)."""
    y = a.float() @ (w8.float() * scale_w.float().view(-1, 1)).t()
    out.copy_(y if add is None else y + add.float())
'''
FP8_BLOCK_K = 512  # one row a program: TinyLlama's K (2048, 5632) in 4 and 11 unmasked chunks
# BRAZE_FP8_ROW_PROLOGUE=1: a row of K <= FP8_ROW_MAX_K is one register block, so its prologue
# operands are read once instead of once per pass (RMSNorm: sum of squares, max |a|, write = three).
# The H100 profile (bench/NOTES.md) spent 36.5 us a layer in TinyLlama's SiLU*mul prologue, two passes
# over 46 MB. Off until a GPU measures it (register pressure at 8192 columns is the risk).
FP8_ROW_PROLOGUE = os.environ.get("BRAZE_FP8_ROW_PROLOGUE", "0") == "1"
FP8_ROW_MAX_K = 8192


def fp8_fused(g: QuantGen) -> bool:
    """fp8 prefill with the prologue and the per-token e4m3 rounding in one kernel, then
    _scaled_mm; N and K must be multiples of 16 (its requirement)."""
    return g.format == "fp8" and g.n_dim % 16 == 0 and g.k_dim % 16 == 0


def fp8_row_block(g: QuantGen) -> int | None:
    """BLOCK_K of the one-pass KERNEL_prologue_fp8 (the whole row), or None for the chunked one."""
    k = g.k_dim
    if not FP8_ROW_PROLOGUE or not isinstance(k, int) or k > FP8_ROW_MAX_K:
        return None
    return 1 << (k - 1).bit_length()


def _e4m3_store(masked: bool, ind: str) -> list[str]:
    # e4m3 keeps 3 of float32's 23 mantissa bits: the other 20 are rounded to nearest even here, so
    # the cast is exact (Triton's interpreter loses the carry when it rounds: 7.9 -> 4.0)
    return [f"{ind}qi = tl.clamp(a / scale, -448.0, 448.0).to(tl.int32, bitcast=True)",
            f"{ind}qi = (qi + 0x7FFFF + ((qi >> 20) & 1)) & -0x100000",
            f"{ind}tl.store(a8 + rows.to(tl.int64) * K + kk, qi.to(tl.float32, bitcast=True).to(tl.float8e4nv), "
            f"mask={'rmask & kmask' if masked else 'rmask'})"]


def prologue_fp8_source(g: QuantGen) -> str:
    """KERNEL_prologue_fp8: one row a program computes the prologue (RMSNorm, SiLU*mul, or a plain
    load) chunk by chunk, its row's max |a| (scale = max / 448), then again to write a / scale as
    e4m3. The prologue's values never go to memory in the activations' dtype: no separate prologue
    kernel writing A for a quantize kernel to read twice. With fp8_row_block the row is one block:
    its operands are loaded once, for the row reductions, the max and the e4m3 rows alike."""
    from braze.codegen.triton.matmul_library import prologue_head, prologue_loops
    em = ExprEmitter(lambda i: "", "    ")
    scale = ["    scale = tl.maximum(tl.max(amax, axis=1)[:, None] / 448.0, 1e-12)",
             "    tl.store(s_a + rows, scale, mask=rmask)"]
    row = fp8_row_block(g)
    if row is None:
        head = prologue_head(g, em, "KERNEL_prologue_fp8", "a8, s_a")
        body = ["    amax = tl.zeros([BLOCK_M, BLOCK_K], tl.float32)"]
        body += prologue_loops(g, em, "0", "K", lambda masked, ind: [f"{ind}amax = tl.maximum(amax, tl.abs(a))"])
        body += scale + prologue_loops(g, em, "0", "K", _e4m3_store)
        return "\n".join(head + body) + "\n"
    head = [g.jit(),
            f"def KERNEL_prologue_fp8({', '.join(g.args)}, a8, s_a, {g.sizes()}, BLOCK_M: tl.constexpr, "
            "BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr):"]
    head += g.rows_setup("tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]") + g.a_pointers()
    masked = g.k_dim != row  # BLOCK_K is K rounded up to a power of two
    body = ["    rmask = rows < M", "    kk = tl.arange(0, BLOCK_K)[None, :]"] + (["    kmask = kk < K"] if masked else [])
    em.indent, em.load = "    ", g._a_load(masked)
    em.forget_loads()
    em.lines, reds = [], []
    for j, (op, red) in enumerate(g.k.reductions):  # a later reduction may read an earlier one
        v = em.emit(red, rowreds=reds)
        body += em.lines + [f"    red{j} = tl.full([BLOCK_M, 1], {_init(op)}, tl.float32)", g._fold(j, op, v, masked, "    ")]
        em.lines = []
        reds.append(f"red{j}")
    g.reds = reds
    a = _full(em.emit(g.prologue, rowreds=reds), "(BLOCK_M, BLOCK_K)")
    body += em.lines + [f"    a = {f'tl.where(kmask, {a}, 0.0)' if masked else a}", "    amax = tl.abs(a)"]
    body += scale + _e4m3_store(masked, "    ")
    return "\n".join(head + body) + "\n"


def dequant_source(g: QuantGen) -> str:
    """KERNEL_dequant: the whole [N, K] weight into a row-major workspace in the activations' dtype
    (int8 / int4 prefill: dequantize once per call, then cuBLAS)."""
    head = ["@triton.jit(do_not_specialize=['M'])",
            f"def KERNEL_dequant({', '.join(g.args)}, wout, {g.sizes()}, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):",
            "    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)",
            g.b_pointer(),
            "    k0 = tl.program_id(1) * BLOCK_K",
            "    kk = k0 + tl.arange(0, BLOCK_K)[None, :]",
            "    kmask = kk < K"]
    body = g.dequant_lines(True, "    ")
    body.append(f"    tl.store(wout + cols.to(tl.int64)[:, None] * K + kk, b.to({TRITON_DTYPE[g.wdtype]}), "
                "mask=(cols[:, None] < N) & kmask)")
    return "\n".join(head + body) + "\n"


def fp8_prologue_launch(g: QuantGen, operands: list[str], out: str, indent: str) -> list[str]:
    """matmul_library's A for an fp8_fused matmul: KERNEL_prologue_fp8 into the e4m3 rows a8 and
    their scales s_a (workspaces), in place of the prologue kernel or the plain A window."""
    row = fp8_row_block(g)
    return [f"{indent}a8 = _braze_workspace({out}.device, torch.float8_e4m3fn, M * K, 3)[: M * K].view(M, K)",
            f"{indent}s_a = _braze_workspace({out}.device, torch.float32, M, 4)[:M].view(M, 1)",
            f"{indent}KERNEL_prologue_fp8[(M,)]({', '.join(operands)}, a8, s_a, M, N, K, BLOCK_M=1, "
            + (f"BLOCK_K={FP8_BLOCK_K}, EVEN_K=K % {FP8_BLOCK_K} == 0, num_warps=4)" if row is None else
               f"BLOCK_K={row}, EVEN_K=K == {row}, num_warps={min(16, max(4, row // 512))})")]


def quant_library_launch(g: QuantGen, lines: list[str], operands: list[str], out: str, indent: str) -> list[str]:
    """matmul_library's launch lines with the float weight `w` replaced: int8/int4 dequantized into a
    workspace by KERNEL_dequant; fp8 through _braze_fp8_scaled_mm on the e4m3 rows
    (fp8_prologue_launch), or _braze_fp8_mm where N or K is not a multiple of 16."""
    import re

    ctx, k = g.ctx, g.k
    w_line = next((i for i, line in enumerate(lines) if line.strip().startswith("w = ")), None)
    if w_line is None:
        raise CompilationError(f"kernel {k.name}: the library launch has no weight line to replace")
    if g.format != "fp8":
        lines[w_line: w_line + 1] = [
            f"{indent}w = _braze_workspace({out}.device, torch.{g.wdtype}, N * K, 2)[: N * K].view(N, K)",
            f"{indent}KERNEL_dequant[(triton.cdiv(N, {DEQUANT_BLOCK_N}), triton.cdiv(K, {DEQUANT_BLOCK_K}))]"
            f"({', '.join(operands)}, w, M, N, K, BLOCK_N={DEQUANT_BLOCK_N}, BLOCK_K={DEQUANT_BLOCK_K}, num_warps=4)"]
        return lines
    wv, sv = k.operands[g.w], k.operands[g.scales]
    w8, sc = ctx.buf(wv.buffer), ctx.buf(sv.buffer)
    lines[w_line: w_line + 1] = [
        f"{indent}w8 = {w8}.as_strided((N, K), ({wv.strides[0]}, 1), {w8}.storage_offset() + {wv.offset})",
        f"{indent}w_scales = {sc}.as_strided((N,), ({sv.strides[0]},), {sc}.storage_offset() + {sv.offset})"]
    call = "_braze_fp8_scaled_mm(a8, s_a, w8, w_scales" if fp8_fused(g) else "_braze_fp8_mm(a, w8, w_scales"
    out_lines = []
    for line in lines:
        mm = re.match(r"^(\s*)torch\.mm\(a, w\.t\(\), out=(.*)\)$", line)
        addmm = re.match(r"^(\s*)torch\.addmm\((.*), a, w\.t\(\), out=(.*)\)$", line)
        if mm:
            line = f"{mm.group(1)}{call}, {mm.group(2)})"
        elif addmm:
            line = f"{addmm.group(1)}{call}, {addmm.group(3)}, add={addmm.group(2)})"
        elif "w.t()" in line:
            raise CompilationError(f"kernel {k.name}: cannot route this library call through fp8: {line.strip()}")
        out_lines.append(line)
    return out_lines
