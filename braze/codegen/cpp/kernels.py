"""Loop nests per kernel kind (pointwise, reduction, gather, rope, kv_store, attention, batch_matmul).

matmul lives in matmul.py. Each emitter takes a KernelCtx and returns the body lines of the
kernel's function (pointer declarations and symbols are already in scope).
"""
from __future__ import annotations

from braze.errors import CompilationError
from braze.codegen.cpp.emit import KernelCtx, fmt_float, indent, paren
from braze.ir.kernel import fused_rope
from braze.codegen.cpp.matmul import emit_matmul, matmul_support


def _axis_names(rank: int) -> list[str]:
    return [f"i{a}" for a in range(rank)]


def emit_pointwise(ctx: KernelCtx) -> list[str]:
    k = ctx.kernel
    dom = tuple(k.output.shape)
    if k.expr is None:
        raise CompilationError(f"kernel {k.name}: pointwise kernel without an expression")
    names = _axis_names(len(dom))
    load = lambda i: ctx.load(k.operands[i], names)  # noqa: E731
    lines, val = ctx.expr(k.expr, load)
    body = lines + [ctx.store(k.output, names, val)]
    if not dom:
        return ["{", *indent(body), "}"]
    inner = ["#pragma omp simd", f"for (int64_t {names[-1]} = 0; {names[-1]} < {ctx.dim(dom[-1])}; ++{names[-1]}) {{",
             *indent(body), "}"]
    if len(dom) == 1:
        return inner
    outer = ctx.prod(dom[:-1])
    return [f"#pragma omp parallel for schedule(static) {ctx.par_if(ctx.prod(dom))}",
            f"for (int64_t o = 0; o < {outer}; ++o) {{",
            *indent(ctx.decompose("o", dom[:-1], names[:-1]) + inner), "}"]


def reduce_row(ctx: KernelCtx, reductions, names: list[str], col: str, ncol: str, load) -> tuple[list[str], dict]:
    """Lines computing red_j over the last axis (index `col`); returns (lines, j -> C name)."""
    reds: dict[int, str] = {}
    lines: list[str] = []
    for j, (op, e) in enumerate(reductions):
        r = ctx.fresh("red")
        el, v = ctx.expr(e, load, rowred=lambda i: reds[i])
        if op == "sum":
            init, clause, fold = "0.0f", "+", f"{r} += {v};"
        elif op == "max":
            init, clause, fold = "-INFINITY", "max", f"{r} = {r} > {v} ? {r} : {v};"
        else:
            raise CompilationError(f"kernel {ctx.kernel.name}: unsupported reduction {op!r}")
        lines += [f"float {r} = {init};", f"#pragma omp simd reduction({clause}:{r})",
                  f"for (int64_t {col} = 0; {col} < {ncol}; ++{col}) {{", *indent(el + [fold]), "}"]
        reds[j] = r
    return lines, reds


def emit_reduction(ctx: KernelCtx) -> list[str]:
    k = ctx.kernel
    if not k.operands:
        raise CompilationError(f"kernel {k.name}: reduction without operands")
    dom = tuple(k.operands[0].shape)
    out_shape = tuple(k.output.shape)
    full = out_shape == dom
    if not full and out_shape != dom[:-1] + (1,):
        raise CompilationError(f"kernel {k.name}: output {list(out_shape)} is neither {list(dom)} nor one per row")
    names = _axis_names(len(dom))
    col, ncol = names[-1], ctx.dim(dom[-1])
    load = lambda i: ctx.load(k.operands[i], names)  # noqa: E731
    row = ctx.decompose("r", dom[:-1], names[:-1])
    red_lines, reds = reduce_row(ctx, k.reductions, names, col, ncol, load)
    row += red_lines
    if k.expr is not None:
        el, v = ctx.expr(k.expr, load, rowred=lambda i: reds[i])
        if full:
            row += ["#pragma omp simd", f"for (int64_t {col} = 0; {col} < {ncol}; ++{col}) {{",
                    *indent(el + [ctx.store(k.output, names, v)]), "}"]
        else:
            row += ["{", f"  const int64_t {col} = 0;", *indent(el + [ctx.store(k.output, names, v)]), "}"]
    return [f"#pragma omp parallel for schedule(static) {ctx.par_if(ctx.prod(dom))}",
            f"for (int64_t r = 0; r < {ctx.prod(dom[:-1])}; ++r) {{", *indent(row), "}"]


def emit_gather(ctx: KernelCtx) -> list[str]:
    k = ctx.kernel
    table, idx = k.operands[0], k.operands[1]
    n, cols = k.output.shape
    return [f"#pragma omp parallel for schedule(static) {ctx.par_if(ctx.prod((n, cols)))}",
            f"for (int64_t i0 = 0; i0 < {ctx.dim(n)}; ++i0) {{",
            f"  const int64_t row = {ctx.index_load(idx, ['i0'])};",
            "  #pragma omp simd",
            f"  for (int64_t i1 = 0; i1 < {ctx.dim(cols)}; ++i1) {{",
            f"    {ctx.store(k.output, ['i0', 'i1'], ctx.load(table, ['row', 'i1']))}",
            "  }", "}"]


def emit_rope(ctx: KernelCtx) -> list[str]:
    k = ctx.kernel
    x, pos, cos, sin = k.operands[:4]
    hd = int(k.attr("head_dim"))
    half = hd // 2
    t, f = x.shape
    if isinstance(f, str) or f % hd:
        raise CompilationError(f"kernel {k.name}: rope width {f} is not a multiple of head_dim {hd}")
    heads = f // hd
    rotary = heads if k.attr("rotary_heads") is None else int(k.attr("rotary_heads"))
    lo, hi = "h * %d + j" % hd, "h * %d + j + %d" % (hd, half)
    lines = [f"#pragma omp parallel for schedule(static) {ctx.par_if(ctx.prod((t, f)))}",
             f"for (int64_t t = 0; t < {ctx.dim(t)}; ++t) {{",
             f"  const int64_t p = {ctx.index_load(pos, ['t'])};",
             f"  for (int64_t h = 0; h < {rotary}; ++h) {{",
             "    #pragma omp simd",
             f"    for (int64_t j = 0; j < {half}; ++j) {{",
             f"      const float c = {ctx.load(cos, ['p', 'j'])};",
             f"      const float s = {ctx.load(sin, ['p', 'j'])};",
             f"      const float lo = {ctx.load(x, ['t', lo])};",
             f"      const float hi = {ctx.load(x, ['t', hi])};",
             f"      {ctx.store(k.output, ['t', lo], 'lo * c - hi * s')}",
             f"      {ctx.store(k.output, ['t', hi], 'hi * c + lo * s')}",
             "    }", "  }"]
    if rotary < heads:  # the heads that pass through (v of a fused q|k|v)
        col = f"{rotary * hd} + j"
        lines += ["  #pragma omp simd",
                  f"  for (int64_t j = 0; j < {(heads - rotary) * hd}; ++j) {{",
                  f"    {ctx.store(k.output, ['t', col], ctx.load(x, ['t', col]))}",
                  "  }"]
    return lines + ["}"]


def _rotated_load(ctx: KernelCtx, x, t: str, head: str, d: str, rope, head_dim: int) -> str:
    """x[t, head * head_dim + d] after rotate-half RoPE at position p (a RoPE fused into the
    reader), rounded to x's dtype as the rope kernel's output would be."""
    cos, sin = rope
    half = head_dim // 2
    col = lambda j: [t, f"{head} * {head_dim} + {j}"]  # noqa: E731
    j = f"({d} < {half} ? {d} : {d} - {half})"
    other = f"({d} < {half} ? -{ctx.load(x, col(f'{d} + {half}'))} : {ctx.load(x, col(f'{d} - {half}'))})"
    value = f"({ctx.load(x, col(d))} * {ctx.load(cos, ['p', j])} + {other} * {ctx.load(sin, ['p', j])})"
    rounding = {"bfloat16": "round_bf16({0})", "float16": "round_f16({0})"}.get(ctx.dtype(x), "{0}")
    return rounding.format(value)


def emit_kv_store(ctx: KernelCtx) -> list[str]:
    """cache[s, h, p, :] = x[t, h]; paged (a 4th operand, the block table [S, blocks]): row p of
    sequence s is row p % B of block table[s, p / B]."""
    k = ctx.kernel
    ops, rope = fused_rope(k)
    if len(ops) == 4 and ops[0].buffer == k.output.buffer:  # the form that lists the cache first
        ops = ops[1:]
    x, slots, pos = ops[:3]
    table = ops[3] if len(ops) > 3 else None
    _, hkv, block, d = k.output.shape
    t = x.shape[0]
    where = [f"  const int64_t s = {ctx.index_load(slots, ['t'])};",
             f"  const int64_t p = {ctx.index_load(pos, ['t'])};"]
    row = ["s", "h", "p", "d"]
    if table is not None:
        where += [f"  const int64_t blk = {ctx.index_load(table, ['s', f'p / {block}'])};",
                  f"  const int64_t r = p % {block};"]
        row = ["blk", "h", "r", "d"]
    value = ctx.load(x, ['t', f'h * {d} + d'])
    if rope:  # the first rope_heads heads (k of k|v) rotate as they are read
        rotated = _rotated_load(ctx, x, "t", "h", "d", rope, d)
        value = f"(h < {int(k.attr('rope_heads'))} ? {rotated} : {value})"
    return [f"#pragma omp parallel for schedule(static) {ctx.par_if(ctx.prod((t, hkv, d)))}",
            f"for (int64_t t = 0; t < {ctx.dim(t)}; ++t) {{", *where,
            f"  for (int64_t h = 0; h < {hkv}; ++h) {{",
            "    #pragma omp simd",
            f"    for (int64_t d = 0; d < {d}; ++d) {{",
            f"      {ctx.store(k.output, row, value)}",
            "    }", "  }", "}"]


def emit_attention(ctx: KernelCtx) -> list[str]:
    """Per (token, head): online softmax over cache rows 0..pos in chunks of 32 (bounded stack).
    Paged (a 6th operand, the block table [S, blocks]): row c of the sequence is row c % B of
    block table[s, c / B], looked up once per row."""
    k = ctx.kernel
    operands, rope = fused_rope(k)
    q, kc, vc, slots, pos = operands[:5]
    table = operands[5] if len(operands) > 5 else None
    h, hkv, d = int(k.attr("num_heads")), int(k.attr("num_kv_heads")), int(k.attr("head_dim"))
    scale = fmt_float(k.attr("scale"))
    group = h // hkv
    t = q.shape[0]
    if table is None:
        ctxlen = ctx.dim(kc.shape[2])
        row_of = []  # the row's place in the cache: [s, kvh, c0 + j]
        krow = lambda view, dd: ctx.load(view, ["s", "kvh", "c0 + j", dd])  # noqa: E731
    else:
        block = kc.shape[2]
        ctxlen = ctx.prod((table.shape[1], block))
        row_of = [f"const int64_t blk = {ctx.index_load(table, ['s', f'(c0 + j) / {block}'])};",
                  f"const int64_t r = (c0 + j) % {block};"]
        krow = lambda view, dd: ctx.load(view, ["blk", "kvh", "r", dd])  # noqa: E731
    qd = ["t", f"h * {d} + d"] if len(q.shape) == 2 else ["t", "h", "d"]  # token rows or a [T, H, D] view
    q_value = ctx.load(q, qd)
    if rope:  # q's first rope_heads heads rotate as they are read, at the token's position p
        if len(q.shape) != 2:
            raise CompilationError(f"kernel {k.name}: a fused RoPE needs q as token rows [T, H*D]")
        q_value = f"(h < {int(k.attr('rope_heads'))} ? {_rotated_load(ctx, q, 't', 'h', 'd', rope, d)} : {q_value})"
    od = ["t", f"h * {d} + d"] if len(k.output.shape) == 2 else ["t", "h", "d"]
    return [
        f"#pragma omp parallel for collapse(2) schedule(static, 1) {ctx.par_if(ctx.prod((t, h, d)) + ' * 16')}",
        f"for (int64_t t = 0; t < {ctx.dim(t)}; ++t) {{",
        f"  for (int64_t h = 0; h < {h}; ++h) {{",
        f"    const int64_t s = {ctx.index_load(slots, ['t'])};",
        f"    const int64_t p = {ctx.index_load(pos, ['t'])};",
        f"    const int64_t last = std::min<int64_t>(p, {paren(ctxlen)} - 1);",
        f"    const int64_t kvh = h / {group};",
        f"    float qv[{d}], acc[{d}], sc[32];",
        "    #pragma omp simd",
        f"    for (int64_t d = 0; d < {d}; ++d) {{ qv[d] = {q_value}; acc[d] = 0.0f; }}",
        "    float mx = -INFINITY, l = 0.0f;",
        "    for (int64_t c0 = 0; c0 <= last; c0 += 32) {",
        "      const int64_t cn = std::min<int64_t>(32, last + 1 - c0);",
        "      float cmax = -INFINITY;",
        "      for (int64_t j = 0; j < cn; ++j) {",
        *indent(row_of, 4),
        "        float dot = 0.0f;",
        "        #pragma omp simd reduction(+:dot)",
        f"        for (int64_t d = 0; d < {d}; ++d) dot += qv[d] * {krow(kc, 'd')};",
        f"        sc[j] = dot * {scale};",
        "        cmax = cmax > sc[j] ? cmax : sc[j];",
        "      }",
        "      const float mnew = mx > cmax ? mx : cmax;",
        "      const float corr = expf(mx - mnew);",
        "      l *= corr;",
        "      #pragma omp simd",
        f"      for (int64_t d = 0; d < {d}; ++d) acc[d] *= corr;",
        "      for (int64_t j = 0; j < cn; ++j) {",
        *indent(row_of, 4),
        "        const float pj = expf(sc[j] - mnew);",
        "        l += pj;",
        "        #pragma omp simd",
        f"        for (int64_t d = 0; d < {d}; ++d) acc[d] += pj * {krow(vc, 'd')};",
        "      }",
        "      mx = mnew;",
        "    }",
        "    const float inv = 1.0f / l;",
        "    #pragma omp simd",
        f"    for (int64_t d = 0; d < {d}; ++d) {{ {ctx.store(k.output, od, 'acc[d] * inv')} }}",
        "  }", "}"]


def emit_batch_matmul(ctx: KernelCtx) -> list[str]:
    """Per output row (batch indices and m, in parallel): dot products over K when B is contiguous
    along K (q @ k^T reads k's rows), else rank-1 updates of a row of N accumulators, so the inner
    loop runs along B's contiguous N (probs @ v)."""
    k = ctx.kernel
    a, b = k.operands
    out = k.output
    *batch, m_dim, n_dim = out.shape
    k_dim = a.shape[-1]
    names = _axis_names(len(batch)) + ["m"]
    ncols, kdim = ctx.dim(n_dim), ctx.dim(k_dim)
    row = ctx.decompose("o", tuple(batch) + (m_dim,), names)
    if b.strides[-2] == 1:
        row += [f"for (int64_t n = 0; n < {ncols}; ++n) {{",
                "  float s = 0.0f;", "  #pragma omp simd reduction(+:s)",
                f"  for (int64_t kk = 0; kk < {kdim}; ++kk) "
                f"s += {ctx.load(a, names + ['kk'])} * {ctx.load(b, names[:-1] + ['kk', 'n'])};",
                f"  {ctx.store(out, names + ['n'], 's')}", "}"]
    else:
        row += [f"float* acc = bz_scratch((size_t){paren(ncols)});",
                f"for (int64_t n = 0; n < {ncols}; ++n) acc[n] = 0.0f;",
                f"for (int64_t kk = 0; kk < {kdim}; ++kk) {{",
                f"  const float x = {ctx.load(a, names + ['kk'])};", "  #pragma omp simd",
                f"  for (int64_t n = 0; n < {ncols}; ++n) acc[n] += x * {ctx.load(b, names[:-1] + ['kk', 'n'])};",
                "}",
                f"for (int64_t n = 0; n < {ncols}; ++n) {{ {ctx.store(out, names + ['n'], 'acc[n]')} }}"]
    rows = ctx.prod(tuple(batch) + (m_dim,))
    return [f"#pragma omp parallel for schedule(static) {ctx.par_if(ctx.prod(tuple(out.shape)) + ' * ' + kdim)}",
            f"for (int64_t o = 0; o < {rows}; ++o) {{", *indent(row), "}"]


EMITTERS = {"pointwise": emit_pointwise, "reduction": emit_reduction, "matmul": emit_matmul,
            "gather": emit_gather, "rope": emit_rope, "kv_store": emit_kv_store, "attention": emit_attention,
            "batch_matmul": emit_batch_matmul}


def support_code(program) -> str:
    """Helpers only some programs need (matmul micro-tiles per weight dtype)."""
    return matmul_support(program)
