"""The matmul kind: prologue rows into a scratch block, micro-tiled dots against B [N, K], epilogue.

Loop structure (one OpenMP parallel region, every thread walks the same M blocks):

    for each block of up to MB rows of A:
        omp for over rows:      row reductions over K (RMSNorm's sum of squares), then the
                                prologue A[m, :] into the scratch block (once per row, not per n)
        omp for over N tiles:   tiles of 4 columns; for every 4 rows of the block one micro-tile
                                call reads each B row once for all those rows; then the epilogue
                                per output element (residual add, bias, activation), stored.

Decode (M = 1..8) is one block: B is streamed exactly once, split over threads by columns.
"""
from __future__ import annotations

from braze.errors import CompilationError
from braze.ir.kernel import Expr
from braze.passes.memory import ELEMENT_BYTES
from braze.codegen.cpp.emit import KernelCtx, PAR_MIN_WORK, indent
from braze.codegen.cpp.matmul_quant import dequant_tile, quant_support
from braze.codegen.cpp.prelude import TAG, tile_function

MB = 64  # rows of A per block (prefill); the scratch block is MB x K floats
NR = 4   # columns per tile
# braze.tune knobs per M bucket (1: M == 1, 0: larger): mb (rows per block), nr (columns per tile,
# a tile function each), threads (0: all OpenMP threads, 1: one). Defaults: today's constants.
DEFAULT_KNOBS = {"mb": MB, "nr": NR, "threads": 0}
BUCKETS = (1, 0)


def matmul_knobs(kernel, bucket: int) -> dict:
    knobs = kernel.attr("knobs")
    chosen = knobs.get(bucket) if knobs is not None else None
    return {**DEFAULT_KNOBS, **(chosen or {})}


def _weight_index(kernel) -> int:
    w = kernel.attr("weight")
    if w is None:
        w = len(kernel.operands) - 1
    return int(w)


def matmul_support(program) -> str:
    tiles = set()  # (weight dtype, columns per tile) of every matmul; 1 column for the ragged edge
    for k in program.kernels:
        if k.kind == "matmul":
            b = k.operands[_weight_index(k)]
            if b.strides[-1] == 1:
                dtype = "float32" if k.attr("quant") else program.buffer(b.buffer).dtype  # quant: dequantized rows
                tiles |= {(dtype, 1)} | {(dtype, matmul_knobs(k, bucket)["nr"]) for bucket in BUCKETS}
    return "\n\n".join([tile_function(mr, nr, dt) for dt, nr in sorted(tiles) for mr in range(1, 5)]
                       + [quant_support(program)])


def emit_matmul(ctx: KernelCtx) -> list[str]:
    k = ctx.kernel
    w = _weight_index(k)
    bview = k.operands[w]
    if len(bview.shape) != 2:
        raise CompilationError(f"kernel {k.name}: matmul weight view must be [N, K], got {bview}")
    n_dim, k_dim = bview.shape
    if k.attr("quant"):  # packed rows: K is the kernel's own; the tiles read dequantized float rows
        k_dim = k.attr("k")
    out = k.output
    rows = tuple(out.shape[:-1])
    if out.shape[-1] != n_dim:
        raise CompilationError(f"kernel {k.name}: output {list(out.shape)} does not end in N={n_dim}")
    prologue = k.prologue
    if prologue is None:
        prologue = Expr("load", value=next(i for i in range(len(k.operands)) if i != w))
    epilogue = k.expr if k.expr is not None else Expr("acc")
    names = [f"i{a}" for a in range(len(rows))]
    sbn, sbk = bview.strides
    btag = TAG[ctx.dtype(bview)]
    if k.attr("quant"):
        btag, sbn, sbk = TAG["float32"], "kdim", 1

    # prologue: per row, reductions then A[m, :] into the scratch block
    from braze.codegen.cpp.kernels import reduce_row
    pload = lambda i: ctx.load(k.operands[i], names + ["kk"])  # noqa: E731
    red_lines, reds = reduce_row(ctx, k.reductions, names, "kk", "kdim", pload)
    a_lines, a_val = ctx.expr(prologue, pload, rowred=lambda i: reds[i])
    row_body = ["const int64_t m = m0 + r;", *ctx.decompose("m", rows, names), *red_lines,
                *[f"red_s[{j}][r] = {reds[j]};" for j in range(len(k.reductions))],
                "float* arow = As + r * kdim;", "#pragma omp simd", "for (int64_t kk = 0; kk < kdim; ++kk) {",
                *indent(a_lines + [f"arow[kk] = {a_val};"]), "}"]

    nred = max(1, len(k.reductions))
    boff = f" + {bview.offset}" if bview.offset else ""
    # Every thread computes the block's prologue rows into its own scratch (cost threads/N of the
    # matmul) so no barrier separates prologue and dots. If the output may overlap the prologue's
    # inputs, all threads must finish reading before anyone writes: then barriers are needed.
    alias = any(may_alias(ctx.program, out.buffer, v.buffer) for i, v in enumerate(k.operands) if i != w)
    sync = ["#pragma omp barrier"] if alias else []

    def blocked(knobs: dict) -> list[str]:
        """The parallel region for one bucket's knobs (rows per block, columns per tile, threads)."""
        mb_rows, nr_cols = int(knobs["mb"]), int(knobs["nr"])
        # micro-tiles
        if sbk == 1:
            def call(mr, nr_, bptr, cptr):
                return f"mm_tile_{mr}x{nr_}_{btag}(ap, kdim, {bptr}, {sbn}, {cptr}, {nr_cols});"
            full = ["switch (mr) {", *[f"  case {mr}: {call(mr, nr_cols, 'bp', '&c[0][0]')} break;"
                                       for mr in range(1, 5)], "}"]
            part = ["for (int64_t j = 0; j < nr; ++j) {", "  switch (mr) {",
                    *[f"    case {mr}: {call(mr, 1, f'bp + j * {sbn}', '&c[0][j]')} break;" for mr in range(1, 5)],
                    "  }", "}"]
            tile = [f"if (nr == {nr_cols}) {{", *indent(full), "} else {", *indent(part), "}"]
        else:  # weight not contiguous along K (a transposed view): plain strided dots
            tile = ["for (int64_t mi = 0; mi < mr; ++mi)", "  for (int64_t j = 0; j < nr; ++j) {",
                    "    float s = 0.0f;", "    #pragma omp simd reduction(+:s)",
                    f"    for (int64_t kk = 0; kk < kdim; ++kk) s += ap[mi * kdim + kk] * to_f(bp[j * {sbn} + kk * {sbk}]);",
                    "    c[mi][j] = s;", "  }"]
        threads = " num_threads(1)" if int(knobs["threads"]) == 1 else ""
        return [
            f"const int64_t MBLK = std::min<int64_t>(mrows, {mb_rows});",
            f"#pragma omp parallel if(mrows * ncols * kdim >= {PAR_MIN_WORK * 8}){threads}",
            "{",
            "  float* As = bz_scratch((size_t)(MBLK * kdim));",
            f"  float red_s[{nred}][{mb_rows}]; (void)red_s;",
            "  for (int64_t m0 = 0; m0 < mrows; m0 += MBLK) {",
            "    const int64_t mb = std::min<int64_t>(MBLK, mrows - m0);",
            "    for (int64_t r = 0; r < mb; ++r) {", *indent(row_body, 3), "    }",
            *indent(sync, 2),
            f"    #pragma omp for schedule(static){'' if alias else ' nowait'}",
            f"    for (int64_t nt = 0; nt < (ncols + {nr_cols - 1}) / {nr_cols}; ++nt) {{",
            f"      const int64_t n0 = nt * {nr_cols};",
            f"      const int64_t nr = std::min<int64_t>({nr_cols}, ncols - n0);",
            *indent(dequant_tile(ctx, nr_cols) if k.attr("quant") else [], 3),
            f"      const auto* bp = {'bq' if k.attr('quant') else f'{ctx.ptr(bview)}{boff} + n0 * {sbn}'};",
            "      for (int64_t mi0 = 0; mi0 < mb; mi0 += 4) {",
            "        const int64_t mr = std::min<int64_t>(4, mb - mi0);",
            "        const float* ap = As + mi0 * kdim;",
            f"        float c[4][{nr_cols}];",
            *indent(tile, 4), *indent(epi, 4),
            "      }", "    }", "  }", "}"]

    eload = lambda i: ctx.load(k.operands[i], names + ["n"])  # noqa: E731
    e_lines, e_val = ctx.expr(epilogue, eload, acc="c[mi][j]", rowred=lambda i: f"red_s[{i}][r]")
    epi = ["for (int64_t mi = 0; mi < mr; ++mi) {",
           "  const int64_t r = mi0 + mi;", "  const int64_t m = m0 + r;", "  (void)r;",
           *indent(ctx.decompose("m", rows, names)),
           "  for (int64_t j = 0; j < nr; ++j) {", "    const int64_t n = n0 + j;",
           *indent(e_lines + [ctx.store(out, names + ["n"], e_val)], 2), "  }", "}"]

    head = [f"const int64_t mrows = {ctx.prod(rows) if rows else '1'};",
            f"const int64_t ncols = {ctx.dim(n_dim)};",
            f"const int64_t kdim = {ctx.dim(k_dim)};",
            "if (mrows <= 0 || ncols <= 0) return;"]
    decode, other = matmul_knobs(k, 1), matmul_knobs(k, 0)
    if decode == other:
        return head + blocked(other)
    return head + ["if (mrows == 1) {", *indent(blocked(decode)), "} else {", *indent(blocked(other)), "}"]


def may_alias(program, a: str, b: str) -> bool:
    """Can buffers a and b share memory? Same buffer, or arena temps whose planned ranges overlap."""
    if a == b:
        return True
    ba, bb = program.buffer(a), program.buffer(b)
    if ba.kind != "temp" or bb.kind != "temp":
        return False
    plan = program.plan
    if plan is None or a not in plan.offsets or b not in plan.offsets:
        return True  # temps without a plan: assume the worst

    def extent(buf):
        n = 1
        for d in buf.shape:
            n *= program.symbols.get(d, 1 << 40) if isinstance(d, str) else d
        return plan.offsets[buf.name], plan.offsets[buf.name] + n * ELEMENT_BYTES[buf.dtype]
    (a0, a1), (b0, b1) = extent(ba), extent(bb)
    return a0 < b1 and b0 < a1


