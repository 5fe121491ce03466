"""Triton emitters for the memory-bound kinds: pointwise, reduction, gather, rope, kv_store.

Every size but the symbolic ones (T, N: runtime arguments, never specialized on) is a constant in
the source, so one compiled kernel serves every step; a launcher skips a step with nothing to do.
"""
from __future__ import annotations

from dataclasses import dataclass

from braze.codegen.triton.attention import ROPE_HELPER
from braze.codegen.triton.exprs import TRITON_DTYPE, ExprEmitter
from braze.codegen.triton.indexing import next_pow2, split_rows, view_offsets
from braze.codegen.triton.module import DECODE_STEP, EmitContext, EmittedKernel, knob_config
from braze.errors import CompilationError
from braze.ir.kernel import Kernel, View, fused_rope


def _dtype_of(ctx: EmitContext, buffer: str) -> str:
    return ctx.program.buffer(buffer).dtype


@dataclass
class _PointwisePlan:
    """One pointwise kernel's parts: its body below the program ids (PID_R, PID_C), its params and
    what the launcher passes for them, and its block shape."""
    params: list[str]      # in0.., out, ROWS (, COLS)
    runtime: list[str]     # the size params (the tail of params), not specialized on
    body: list[str]
    buffers: list[str]     # launcher expressions of the buffer params (in0.., out)
    rows: str
    cols: str
    cols_const: int | None
    block_r: int
    block_c: int
    num_warps: int | None


def _pointwise_plan(k: Kernel, ctx: EmitContext) -> _PointwisePlan:
    domain = k.output.shape
    cols_const = domain[-1] if domain and isinstance(domain[-1], int) else None
    block_c = min(next_pow2(cols_const), 1024) if cols_const else 256
    # braze.tune's knobs; num_warps None: Triton's default (and no PDL flag on this launch, as before)
    tuned = knob_config(k, 0, {"block_r": max(1, 2048 // block_c), "num_warps": None})
    split, row_names = split_rows(domain, "rows64")
    # a known width goes into the source: the mask is then uniform over aligned column groups and
    # loads and stores can vectorize (with a runtime COLS the compiler cannot prove that)
    cols_arg = [] if cols_const else ["COLS"]
    body = ["    rows = PID_R * BR + tl.arange(0, BR)[:, None]",
            "    cols = PID_C * BC + tl.arange(0, BC)[None, :]",
            f"    mask = (rows < ROWS) & (cols < {cols_const or 'COLS'})",
            "    rows64 = rows.to(tl.int64)"] + split
    emitter = ExprEmitter(lambda i: _load(i, k.operands[i], view_offsets(k.operands[i], row_names), "mask"))
    value = emitter.emit(k.expr)
    body += emitter.lines
    out_dtype = TRITON_DTYPE[_dtype_of(ctx, k.output.buffer)]
    body.append(f"    value = ({value}) + tl.zeros([BR, BC], tl.float32)")
    body.append(f"    tl.store(out + {view_offsets(k.output, row_names)}, value.to({out_dtype}), mask=mask)")
    params = [f"in{i}" for i in range(len(k.operands))] + ["out", "ROWS"] + cols_arg
    buffers = [ctx.buf(v.buffer) for v in k.operands] + [ctx.buf(k.output.buffer)]
    return _PointwisePlan(params, ["ROWS"] + cols_arg, body, buffers, ctx.numel(domain[:-1]),
                          ctx.dim(domain[-1]) if domain else "1", cols_const, tuned["block_r"], block_c,
                          tuned["num_warps"])


def emit_pointwise(k: Kernel, ctx: EmitContext) -> EmittedKernel:
    p = _pointwise_plan(k, ctx)
    lines = [f"@triton.jit(do_not_specialize={p.runtime!r})",
             f"def KERNEL({', '.join(p.params + ['BR: tl.constexpr', 'BC: tl.constexpr'])}):",
             "    PID_R = tl.program_id(0)", "    PID_C = tl.program_id(1)"] + p.body
    warps = "" if p.num_warps is None else f", num_warps={p.num_warps}"
    launch = (f"    ROWS = {p.rows}\n    COLS = {p.cols}\n"
              f"    if ROWS * COLS == 0:\n        return\n"
              f"    grid = (triton.cdiv(ROWS, {p.block_r}), triton.cdiv(COLS, {p.block_c}))\n"
              f"    KERNEL[grid]({', '.join(p.buffers + p.runtime)}, BR={p.block_r}, BC={p.block_c}{warps})\n")
    return EmittedKernel("\n".join(lines) + "\n", launch)


def emit_pointwise_group(kernels: list[Kernel], ctx: EmitContext) -> EmittedKernel:
    """Independent pointwise kernels (one launch group, braze/passes/horizontal.py) as one grid:
    part i owns the program ids [P_i, P_i+1) and runs its own body as a device function."""
    plans = [_pointwise_plan(k, ctx) for k in kernels]
    jit, params, branches, launch, launch_args = [], [], [], [], []
    for i, p in enumerate(plans):
        jit += ["@triton.jit",
                f"def KERNEL_part{i}({', '.join(p.params + ['PID_R', 'PID_C', 'BR: tl.constexpr', 'BC: tl.constexpr'])}):"]
        jit += p.body + [""]
        mine = [f"{name}_{i}" for name in p.params]
        params += mine
        col_blocks = f"{-(-p.cols_const // p.block_c)}" if p.cols_const else f"tl.cdiv(COLS_{i}, {p.block_c})"
        local = f"pid - P{i}" if i else "pid"
        branches += [f"    {'if' if i == 0 else 'elif'} pid < P{i + 1}:",
                     f"        KERNEL_part{i}({', '.join(mine)}, ({local}) // {col_blocks}, ({local}) % {col_blocks}, "
                     f"{p.block_r}, {p.block_c})"]
        launch += [f"    ROWS_{i} = {p.rows}", f"    COLS_{i} = {p.cols}",
                   f"    P{i + 1} = P{i} + triton.cdiv(ROWS_{i}, {p.block_r}) * triton.cdiv(COLS_{i}, {p.block_c})"]
        launch_args.append(", ".join(p.buffers + [f"{name}_{i}" for name in p.runtime]))
    bounds = [f"P{i + 1}" for i in range(len(plans))]
    runtime = [f"{name}_{i}" for i, p in enumerate(plans) for name in p.runtime] + bounds
    jit += [f"@triton.jit(do_not_specialize={runtime!r})",
            f"def KERNEL({', '.join(params + bounds)}):", "    pid = tl.program_id(0)"] + branches
    warps = max((p.num_warps or 4) for p in plans)
    launch = ["    P0 = 0"] + launch + [f"    if {bounds[-1]} == 0:", "        return",
                                      f"    KERNEL[({bounds[-1]},)]({', '.join(launch_args + bounds)}, num_warps={warps})"]
    return EmittedKernel("\n".join(jit) + "\n", "\n".join(launch) + "\n")


# ---------------------------------------------------------------- shared helpers


def _load(i: int, v: View, offsets: str, mask: str) -> str:
    """Operand i at `offsets`, masked; a value broadcast along every dim (a 0-d input, a scalar
    weight) is one scalar load (a block mask on a scalar pointer does not compile)."""
    if not any(v.strides):
        return f"tl.load(in{i} + {offsets}).to(tl.float32)"
    return f"tl.load(in{i} + {offsets}, mask={mask}, other=0.0).to(tl.float32)"


MAX_ROW_BLOCK = 16384  # a reduction row wider than this is folded in column chunks of CHUNK
CHUNK = 4096


def _jit_header(args: list[str], runtime: str) -> list[str]:
    # the runtime size (ROWS, T, N) must not be specialized on (== 1, multiple of 16): one binary per kernel
    return [f"@triton.jit(do_not_specialize=[{runtime!r}])", f"def KERNEL({', '.join(args)}):"]


def _const_dim(k: Kernel, d, what: str) -> int:
    if not isinstance(d, int):
        raise CompilationError(f"kernel {k.name}: {what} must be a compile-time size, got {d!r}")
    return d


def _index_load(ptr: str, v: View, index: str, mask: str) -> str:
    """Load one int64 index per element of `index` from a 1-d view (e.g. positions[t])."""
    return f"tl.load({ptr} + {_addr(v, index)}, mask={mask}, other=0).to(tl.int64)"


def _addr(v: View, *indices: str) -> str:
    """offset + sum(index * stride) of a view, one index expression per dim (None: index 0)."""
    terms = [str(v.offset)] if v.offset else []
    for index, stride in zip(indices, v.strides):
        if index is not None and stride:
            index = f"({index})" if " " in index and stride != 1 else index
            terms.append(index if stride == 1 else f"{index} * {stride}")
    return " + ".join(terms) if terms else "0"


def _warps(elements: int) -> int:
    return 4 if elements <= 4096 else 8


def _launch(count: str, grid: str, args: list[str], consts: dict[str, int], warps: int) -> str:
    """Launcher body: skip an empty step, else one launch (count is the runtime size checked)."""
    kw = "".join(f", {n}={v}" for n, v in consts.items())
    return (f"    if {count} == 0:\n        return\n"
            f"    KERNEL[{grid}]({', '.join(args)}{kw}, num_warps={warps})\n")


# ---------------------------------------------------------------- reduction


def emit_reduction(k: Kernel, ctx: EmitContext) -> EmittedKernel:
    """One program per BR rows; each red_j is a [BR, 1] block folded over the row's columns."""
    if not k.operands:
        raise CompilationError(f"kernel {k.name}: reduction without operands")
    domain = tuple(k.operands[0].shape)
    cols = _const_dim(k, domain[-1], "the reduced axis")
    full = tuple(k.output.shape) == domain
    if not full and tuple(k.output.shape) != domain[:-1] + (1,):
        raise CompilationError(f"kernel {k.name}: output {list(k.output.shape)} is neither {list(domain)} "
                               f"nor one value per row")
    chunked = cols > MAX_ROW_BLOCK
    block_c = CHUNK if chunked else next_pow2(cols)
    # rows of 1024+ columns: one row a program, so a short prompt's few rows still spread over the
    # SMs, and 8-16 warps a row (bench/kernels/reduction_config_sweep.py, H100 RMSNorm: 4096 columns
    # 1 row x 16 warps 5.5-8.3 us, x 4 warps 6.5-9.0, 2 rows x 4 warps 7.1-9.6; torch.compile 5.6-8.7)
    block_r = 1 if block_c >= 1024 else max(1, 4096 // block_c)
    warps = 16 if block_c >= 4096 else 8 if block_c >= 1024 else _warps(block_r * block_c)
    tuned = knob_config(k, 0, {"block_r": block_r, "num_warps": warps})  # braze.tune's knobs
    block_r = tuned["block_r"]
    split, row_names = split_rows(domain, "rows64")
    args = [f"in{i}" for i in range(len(k.operands))] + ["out", "ROWS", "BR: tl.constexpr", "BC: tl.constexpr"]
    lines = _jit_header(args, "ROWS") + [
        "    rows = tl.program_id(0) * BR + tl.arange(0, BR)[:, None]",
        "    row_mask = rows < ROWS",
        "    rows64 = rows.to(tl.int64)"] + split
    if not chunked:
        lines += ["    cols = tl.arange(0, BC)[None, :]", f"    mask = row_mask & (cols < {cols})"]

    def load_row(i: int) -> str:  # operand i over the block's columns
        return _load(i, k.operands[i], view_offsets(k.operands[i], row_names), "mask")

    body_indent = "        " if chunked else "    "
    emitter = ExprEmitter(load_row, indent=body_indent)

    def chunk_loop() -> None:  # open a loop over column chunks (loads from a previous loop are stale)
        lines.append(f"    for c0 in range(0, {cols}, BC):")
        lines.append("        cols = c0 + tl.arange(0, BC)[None, :]")
        lines.append(f"        mask = row_mask & (cols < {cols})")
        emitter.forget_loads()

    def emit(root, rowreds) -> str:
        start = len(emitter.lines)
        value = emitter.emit(root, rowreds=rowreds)
        lines.extend(emitter.lines[start:])
        return value

    reds: list[str] = []
    for j, (op, body) in enumerate(k.reductions):
        if op not in ("sum", "max"):
            raise CompilationError(f"kernel {k.name}: unsupported reduction {op!r}")
        name, neutral = f"red{j}", ("0.0" if op == "sum" else "float('-inf')")
        fold = "tl.sum" if op == "sum" else "tl.max"
        if chunked:
            lines.append(f"    {name} = tl.full([BR, 1], {neutral}, tl.float32)")
            chunk_loop()
        lines.append(f"{body_indent}# {name} = {op} over the row")
        value = emit(body, reds)
        folded = f"{fold}(tl.where(mask, {value}, {neutral}), axis=1)[:, None]"
        if not chunked:
            lines.append(f"    {name} = {folded}")
        elif op == "sum":
            lines.append(f"        {name} += {folded}")
        else:
            lines.append(f"        {name} = tl.maximum({name}, {folded})")
        reds.append(name)
    out_dtype = TRITON_DTYPE[_dtype_of(ctx, k.output.buffer)]
    if k.expr is not None and full:
        if chunked:
            chunk_loop()
        lines.append(f"{body_indent}# output over the row")
        value = emit(k.expr, reds)
        lines.append(f"{body_indent}value = ({value}) + tl.zeros([BR, BC], tl.float32)")
        lines.append(f"{body_indent}tl.store(out + {view_offsets(k.output, row_names)}, value.to({out_dtype}), "
                     f"mask=mask)")
    elif k.expr is not None:  # one value per row: the expression at column 0
        emitter.forget_loads()
        emitter.indent = "    "
        emitter.load = lambda i: _load(i, k.operands[i], view_offsets(k.operands[i], row_names, None), "row_mask")
        lines.append("    # output, one value per row")
        value = emit(k.expr, reds)
        lines.append(f"    value = ({value}) + tl.zeros([BR, 1], tl.float32)")
        lines.append(f"    tl.store(out + {view_offsets(k.output, row_names, None)}, value.to({out_dtype}), "
                     f"mask=row_mask)")
    operands = [ctx.buf(v.buffer) for v in k.operands] + [ctx.buf(k.output.buffer), "ROWS"]
    launch = f"    ROWS = {ctx.numel(domain[:-1])}\n" + _launch(
        "ROWS", f"(triton.cdiv(ROWS, {block_r}),)", operands, {"BR": block_r, "BC": block_c},
        tuned["num_warps"])
    return EmittedKernel("\n".join(lines) + "\n", launch)


# ---------------------------------------------------------------- gather


def emit_gather(k: Kernel, ctx: EmitContext) -> EmittedKernel:
    """output[i, :] = table[idx[i], :]: one program per (block of rows, block of columns)."""
    table, idx = k.operands[0], k.operands[1]
    n, cols = k.output.shape
    cols = _const_dim(k, cols, "the gathered row width")
    block_c = min(next_pow2(cols), 1024)
    block_r = max(1, 2048 // block_c)
    out_dtype = TRITON_DTYPE[_dtype_of(ctx, k.output.buffer)]
    lines = _jit_header(["table", "idx", "out", "N", "BR: tl.constexpr", "BC: tl.constexpr"], "N") + [
        "    rows = (tl.program_id(0) * BR + tl.arange(0, BR)[:, None]).to(tl.int64)",
        "    cols = tl.program_id(1) * BC + tl.arange(0, BC)[None, :]",
        "    row_mask = rows < N",
        f"    mask = row_mask & (cols < {cols})",
        f"    src = {_index_load('idx', idx, 'rows', 'row_mask')}",
        f"    value = tl.load(table + {_addr(table, 'src', 'cols')}, mask=mask, other=0.0)",
        f"    tl.store(out + {_addr(k.output, 'rows', 'cols')}, value.to({out_dtype}), mask=mask)"]
    args = [ctx.buf(table.buffer), ctx.buf(idx.buffer), ctx.buf(k.output.buffer), "N"]
    grid = f"(triton.cdiv(N, {block_r}), {-(-cols // block_c)})"
    launch = f"    N = {ctx.dim(n)}\n" + _launch("N", grid, args, {"BR": block_r, "BC": block_c},
                                               _warps(block_r * block_c))
    return EmittedKernel("\n".join(lines) + "\n", launch)


# ---------------------------------------------------------------- rope


def emit_rope(k: Kernel, ctx: EmitContext) -> EmittedKernel:
    """Rotate-half RoPE: one program per (block of tokens, head), the head's two halves as blocks."""
    x, pos, cos, sin = k.operands[:4]
    head_dim = int(k.attr("head_dim"))
    half = head_dim // 2
    t, width = x.shape
    width = _const_dim(k, width, "the rope width")
    if width % head_dim or head_dim % 2:
        raise CompilationError(f"kernel {k.name}: rope width {width} is not a multiple of head_dim {head_dim}")
    block_d = next_pow2(half)
    block_t = max(1, min(16, 1024 // block_d))
    out_dtype = TRITON_DTYPE[_dtype_of(ctx, k.output.buffer)]
    heads = width // head_dim
    rotary = heads if k.attr("rotary_heads") is None else int(k.attr("rotary_heads"))
    lo, hi = f"head * {head_dim} + j", f"head * {head_dim} + {half} + j"
    # heads >= rotary pass through unchanged (v of a fused q|k|v)
    new_lo, new_hi = "lo * c - hi * s", "hi * c + lo * s"
    if rotary < heads:
        new_lo, new_hi = f"tl.where(head < {rotary}, {new_lo}, lo)", f"tl.where(head < {rotary}, {new_hi}, hi)"
    lines = _jit_header(["x", "positions", "cos", "sin", "out", "T", "BT: tl.constexpr", "BD: tl.constexpr"], "T") + [
        "    tok = (tl.program_id(0) * BT + tl.arange(0, BT)[:, None]).to(tl.int64)",
        "    head = tl.program_id(1)",
        "    j = tl.arange(0, BD)[None, :]",
        "    tok_mask = tok < T",
        f"    mask = tok_mask & (j < {half})",
        f"    p = {_index_load('positions', pos, 'tok', 'tok_mask')}",
        f"    c = tl.load(cos + {_addr(cos, 'p', 'j')}, mask=mask, other=0.0).to(tl.float32)",
        f"    s = tl.load(sin + {_addr(sin, 'p', 'j')}, mask=mask, other=0.0).to(tl.float32)",
        f"    lo = tl.load(x + {_addr(x, 'tok', lo)}, mask=mask, other=0.0).to(tl.float32)",
        f"    hi = tl.load(x + {_addr(x, 'tok', hi)}, mask=mask, other=0.0).to(tl.float32)",
        f"    tl.store(out + {_addr(k.output, 'tok', lo)}, ({new_lo}).to({out_dtype}), mask=mask)",
        f"    tl.store(out + {_addr(k.output, 'tok', hi)}, ({new_hi}).to({out_dtype}), mask=mask)"]
    args = [ctx.buf(v.buffer) for v in (x, pos, cos, sin, k.output)] + ["T"]
    launch = f"    T = {ctx.dim(t)}\n" + _launch("T", f"(triton.cdiv(T, {block_t}), {heads})", args,
                                               {"BT": block_t, "BD": block_d}, _warps(block_t * block_d))
    return EmittedKernel("\n".join(lines) + "\n", launch)


# ---------------------------------------------------------------- kv_store


def emit_kv_store(k: Kernel, ctx: EmitContext) -> EmittedKernel:
    """cache[slots[t], h, positions[t], :] = x[t, h*D:(h+1)*D]: one program per (block of tokens, kv head).
    Paged (a 4th operand, the block table [S, blocks]): the row is p % B of block table[slot, p // B]."""
    ops, rope = fused_rope(k)
    if len(ops) == 4 and ops[0].buffer == k.output.buffer:  # the form that lists the cache first
        ops = ops[1:]
    x, slots, pos = ops[:3]
    table = ops[3:]
    cache = k.output
    _, kv_heads, block, head_dim = (_const_dim(k, d, "a cache dim") for d in cache.shape)
    t = x.shape[0]
    block_d = next_pow2(head_dim)
    block_t = max(1, min(16, 2048 // block_d))
    out_dtype = TRITON_DTYPE[_dtype_of(ctx, cache.buffer)]
    col = f"head * {head_dim} + d"
    where = ["slot", "head", "p", "d"]
    paged = []
    if table:
        where = ["blk", "head", f"p % {block}", "d"]
        paged = [f"    blk = tl.load(table + {_addr(table[0], 'slot', f'p // {block}')}, mask=tok_mask, other=0)"
                 ".to(tl.int64)"]
    rotate = []
    if rope:  # the first rope_heads heads (k of k|v) rotate as they are read: no rope kernel before
        cos, sin = rope
        if cos.strides != sin.strides:
            raise CompilationError(f"kernel {k.name}: a fused RoPE's cos and sin tables must share a layout")
        rotate = [f"    if head < {int(k.attr('rope_heads'))}:",
                  f"        value = _braze_rope_q(value, x + {_addr(x, 'tok', f'head * {head_dim}')}, d, "
                  f"{x.strides[1]}, mask, p, cos, sin, {cos.offset}, {sin.offset}, {cos.strides[0]}, "
                  f"{cos.strides[1]}, {head_dim})"]
    lines = _jit_header(["x", "slots", "positions"] + ["table"] * bool(table) +
                        ["cache"] + ["cos", "sin"] * bool(rope) + ["T", "BT: tl.constexpr", "BD: tl.constexpr"], "T") + [
        "    tok = (tl.program_id(0) * BT + tl.arange(0, BT)[:, None]).to(tl.int64)",
        "    head = tl.program_id(1)",
        "    d = tl.arange(0, BD)[None, :]",
        "    tok_mask = tok < T",
        f"    mask = tok_mask & (d < {head_dim})",
        f"    slot = {_index_load('slots', slots, 'tok', 'tok_mask')}",
        f"    p = {_index_load('positions', pos, 'tok', 'tok_mask')}", *paged,
        f"    value = tl.load(x + {_addr(x, 'tok', col)}, mask=mask, other=0.0)", *rotate,
        f"    tl.store(cache + {_addr(cache, *where)}, value.to({out_dtype}), mask=mask)"]
    args = [ctx.buf(v.buffer) for v in (x, slots, pos, *table, cache, *(rope or ()))] + ["T"]
    launch = f"    T = {ctx.dim(t)}\n" + _launch("T", f"(triton.cdiv(T, {block_t}), {kv_heads})", args,
                                               {"BT": block_t, "BD": block_d}, _warps(block_t * block_d))
    if ctx.decode_rows(k):  # braze/passes/decode_rows.py
        launch = (f"    if s.get({DECODE_STEP!r}):\n        return  # {k.attr('decode_rows_by')} writes the rows\n"
                  + launch)
    return EmittedKernel("\n".join(lines) + "\n", launch, [ROPE_HELPER] if rope else [])
