"""Prefill matmuls through cuBLAS (torch.mm), with braze's fused prologue and epilogue around it.

For large M the tensor-core GEMM is where the time goes, and cuBLAS's Hopper kernels beat a
generated tl.dot GEMM whose A tile passes through registers for the prologue; inside a model it
also beat the 16-row GEMV. So past one row (float weights) the launcher runs: KERNEL_prologue (RMSNorm / SiLU*mul -> A in the weight dtype, skipped when A is
a plain contiguous-row view), torch.mm(A, W^T) (a library kernel, reported as such), and
KERNEL_epilogue (residual/bias/activation, skipped when the output is the product itself).
fp8 weights (matmul_quant.py) take KERNEL_prologue_fp8 instead: the prologue's rows as e4m3 with
per-token scales, for torch._scaled_mm.
Batch-1 decode (M = 1) keeps the fully fused GEMV.
"""
from __future__ import annotations

from braze.codegen.triton.exprs import TRITON_DTYPE, ExprEmitter

LIBRARY_DTYPES = ("bfloat16", "float16", "float32")
PROLOGUE_BLOCK_M, PROLOGUE_BLOCK_K = 4, 512
EPILOGUE_BLOCK_M, EPILOGUE_BLOCK_N = 16, 128

WORKSPACE_HELPER = '''_braze_ws = {}
_braze_ws_retired = []


def _braze_workspace(device, dtype, numel, slot):
    """Scratch of a generated module (split-K partials, library A/C staging, dequantized
    weights, fp8 activations): one growing buffer per (device, dtype, slot). A buffer outgrown
    stays allocated: a CUDA graph captured with it replays into it (the engine grows every
    workspace before its first capture, so this keeps at most what a later, larger program
    outgrew)."""
    key = (device, dtype, slot)
    ws = _braze_ws.get(key)
    if ws is None or ws.numel() < numel:
        if ws is not None:
            _braze_ws_retired.append(ws)
        ws = _braze_ws[key] = torch.empty(numel, dtype=dtype, device=device)
    return ws
'''


def library_eligible(g) -> bool:
    """cuBLAS takes [M, K] x [K, N] with unit inner strides; the epilogue must not need reductions."""
    b = g.bview
    uses_rowred = any(x.op == "rowred" for x in g.epilogue.walk())
    if g.k.attr("quant"):  # packed weights: dequantized into a workspace, or fp8 _scaled_mm (matmul_quant.py)
        return g.wdtype in LIBRARY_DTYPES and len(g.rows_shape) == 1 and not uses_rowred
    return g.wdtype in LIBRARY_DTYPES and b.strides[1] == 1 and len(g.rows_shape) == 1 and not uses_rowred


def _plain_a(g) -> int | None:
    """The operand A is when the prologue is a bare load of a row-major view in the weight dtype."""
    p = g.prologue
    if p.op != "load":
        return None
    v = g.k.operands[p.value]
    dtype = g.ctx.program.buffer(v.buffer).dtype
    return p.value if v.strides[-1] == 1 and dtype == g.wdtype and len(v.shape) == 2 else None


def _direct_out(g) -> bool:
    out = g.k.output
    return g.epilogue.op == "acc" and g.odtype == g.wdtype and out.strides[-1] == 1 and len(out.shape) == 2


def _addmm_term(g) -> int | None:
    """The operand added to the product when the epilogue is exactly acc + bias (a [N] row broadcast
    over M) or acc + a row-major [M, N] matrix (a residual), in the output's dtype: cuBLAS adds it
    itself (torch.addmm, beta = 1), so no epilogue kernel runs."""
    e, out = g.epilogue, g.k.output
    if e.op != "add" or g.odtype != g.wdtype or out.strides[-1] != 1 or len(out.shape) != 2:
        return None
    loads = [a for a in e.args if a.op == "load"]
    if len(loads) != 1 or not any(a.op == "acc" for a in e.args):
        return None
    v = g.k.operands[loads[0].value]
    if g.ctx.program.buffer(v.buffer).dtype != g.wdtype or len(v.shape) != 2 or v.strides[1] != 1:
        return None
    if v.buffer == out.buffer and v != out:
        return None  # a partly overlapping in-place update: keep the separate epilogue
    return loads[0].value


def _prologue_grid(g) -> tuple[int, bool]:
    """(rows a program, whether programs also split K). A prologue with row reductions (RMSNorm)
    needs whole rows: one a program, so a 32-token prompt still has 32 programs. Without (SiLU*mul)
    each program converts one [rows, BLOCK_K] tile: 4 rows of 5632 columns were one program's
    serial loop of 11 chunks, 8 programs in all at 32 tokens."""
    return (1, False) if g.k.reductions else (PROLOGUE_BLOCK_M, True)


def prologue_head(g, em: ExprEmitter, name: str, outputs: str) -> list[str]:
    """A prologue kernel's signature, its rows (BLOCK_M a program, rmask), operand pointers and row
    reductions (red0, ...)."""
    return ([g.jit(),
             f"def {name}({', '.join(g.args)}, {outputs}, {g.sizes()}, BLOCK_M: tl.constexpr, "
             "BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr):"]
            + g.rows_setup("tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]") + g.a_pointers()
            + g.reductions(em) + ["    rmask = rows < M"])


def prologue_source(g) -> str:
    em = ExprEmitter(lambda i: "", "    ")
    head, body = prologue_head(g, em, "KERNEL_prologue", "a_out"), []
    split_k = _prologue_grid(g)[1]
    lo, hi = ("tl.program_id(1) * BLOCK_K", "tl.program_id(1) * BLOCK_K + BLOCK_K") if split_k else ("0", "K")
    body += prologue_loops(g, em, lo, hi, lambda masked, ind: [
        f"{ind}tl.store(a_out + rows.to(tl.int64) * K + kk, a.to({TRITON_DTYPE[g.wdtype]}), "
        f"mask={'rmask & kmask' if masked else 'rmask'})"])
    return "\n".join(head + body) + "\n"


def prologue_loops(g, em: ExprEmitter, lo: str, hi: str, use) -> list[str]:
    """`if EVEN_K:` / `else:` loops over the K chunks [lo, hi), each computing the prologue's chunk
    as a [BLOCK_M, BLOCK_K] block `a` (0 past K when masked); use(masked, indent) gives the lines
    that consume it."""
    from braze.codegen.triton.matmul import _full
    lines = []
    for masked, guard in ((False, "    if EVEN_K:"), (True, "    else:")):
        ind = "            "
        lines += [guard] + g.kloop_head("        ", lo, hi, masked)
        em.indent, em.load = ind, g._a_load(masked)
        em.forget_loads()
        em.lines = []
        a = _full(em.emit(g.prologue, rowreds=g.reds), "(BLOCK_M, BLOCK_K)")
        lines += em.lines + [f"{ind}a = {f'tl.where(kmask, {a}, 0.0)' if masked else a}"] + use(masked, ind)
    return lines


def epilogue_source(g) -> str:
    em = ExprEmitter(lambda i: "", "    ")
    head = [g.jit(),
            f"def KERNEL_epilogue({', '.join(g.args)}, c, out, {g.sizes()}, BLOCK_M: tl.constexpr, "
            "BLOCK_N: tl.constexpr):"]
    body = g.rows_setup("tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]")
    body += ["    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)",
             "    acc = tl.load(c + rows64 * N + tl.minimum(cols, N - 1)[None, :]).to(tl.float32)"]
    g.reds = []
    body += g.epilogue_store(em, "acc")
    return "\n".join(head + body) + "\n"


def _fp8_rows(g) -> bool:
    """Whether A reaches the library call as e4m3 rows from KERNEL_prologue_fp8 (matmul_quant.fp8_fused)."""
    from braze.codegen.triton.matmul_quant import fp8_fused
    return bool(g.k.attr("quant")) and fp8_fused(g)


def library_sources(g) -> str:
    parts = []
    if g.k.attr("quant"):
        from braze.codegen.triton.matmul_quant import FP8_HELPER, dequant_source, prologue_fp8_source
        parts.append(FP8_HELPER if g.format == "fp8" else dequant_source(g))
        if _fp8_rows(g):
            parts.append(prologue_fp8_source(g))
    if _plain_a(g) is None and not _fp8_rows(g):
        parts.append(prologue_source(g))
    if not _direct_out(g) and _addmm_term(g) is None:
        parts.append(epilogue_source(g))
    return "\n\n".join(parts)


def _window(tensor: str, shape: str, view) -> str:
    """A 2-d row-major window onto a flat buffer tensor. The offset is relative to the tensor: a temp
    is a slice of the executable's arena, and as_strided counts from the start of the storage."""
    return f"{tensor}.as_strided({shape}, ({view.strides[0]}, 1), {tensor}.storage_offset() + {view.offset})"


def library_launch(g, operands: list[str], out: str, indent: str = "        ") -> list[str]:
    ctx, k = g.ctx, g.k
    wv = g.bview
    dt = f"torch.{g.wdtype}"
    lines = [f"{indent}# prefill: cuBLAS through torch.mm (a library kernel), braze's prologue/epilogue around it",
             f"{indent}w = {_window(ctx.buf(wv.buffer), '(N, K)', wv)}"]
    plain = _plain_a(g)
    block_m, split_k = _prologue_grid(g)
    k_programs = f"triton.cdiv(K, {PROLOGUE_BLOCK_K})" if split_k else "1"
    if _fp8_rows(g):  # A as e4m3 rows with their scales (a8, s_a), whatever the prologue
        from braze.codegen.triton.matmul_quant import fp8_prologue_launch
        lines += fp8_prologue_launch(g, operands, out, indent)
    elif plain is not None:
        av = k.operands[plain]
        lines.append(f"{indent}a = {_window(operands[plain], '(M, K)', av)}")
    else:
        lines += [f"{indent}a = _braze_workspace({out}.device, {dt}, M * K, 0)[: M * K].view(M, K)",
                  f"{indent}KERNEL_prologue[(triton.cdiv(M, {block_m}), {k_programs})]({', '.join(operands)}, a, M, N, K, "
                  f"BLOCK_M={block_m}, BLOCK_K={PROLOGUE_BLOCK_K}, EVEN_K=K % {PROLOGUE_BLOCK_K} == 0, "
                  "num_warps=4)"]
    term = _addmm_term(g)
    if _direct_out(g):
        ov = k.output
        lines.append(f"{indent}torch.mm(a, w.t(), out={_window(out, '(M, N)', ov)})")
    elif term is not None:
        tv, t = k.operands[term], operands[term]
        added = (f"{t}.as_strided((N,), (1,), {t}.storage_offset() + {tv.offset})" if tv.strides[0] == 0
                 else _window(t, "(M, N)", tv))
        lines.append(f"{indent}torch.addmm({added}, a, w.t(), out={_window(out, '(M, N)', k.output)})")
    else:
        lines += [f"{indent}c = _braze_workspace({out}.device, {dt}, M * N, 1)[: M * N].view(M, N)",
                  f"{indent}torch.mm(a, w.t(), out=c)",
                  f"{indent}KERNEL_epilogue[(triton.cdiv(M, {EPILOGUE_BLOCK_M}), triton.cdiv(N, {EPILOGUE_BLOCK_N}))]"
                  f"({', '.join(operands)}, c, {out}, M, N, K, BLOCK_M={EPILOGUE_BLOCK_M}, "
                  f"BLOCK_N={EPILOGUE_BLOCK_N}, num_warps=4)"]
    if k.attr("quant"):  # the weight is packed: matmul_quant.py replaces `w`
        from braze.codegen.triton.matmul_quant import quant_library_launch
        return quant_library_launch(g, lines, operands, out, indent)
    return lines
