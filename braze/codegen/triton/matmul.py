"""The matmul kind in Triton: a weight-streaming GEMV for decode and a tl.dot GEMM for prefill.

Kernel IR matmul: dom [M, N] (M = the product of the output's leading dims, usually the symbol T
or N, a runtime value), B = operands[attrs.weight] viewed [N, K]; A[m, k] = prologue(m, k) with
row reductions over k computed first (RMSNorm), output[m, n] = expr(m, n) with acc = A @ B^T.

Two @triton.jit functions per kernel, picked by the launcher from the runtime M (no recompile per
M; each (function, constexpr config) compiles once):

  KERNEL (GEMV, M <= GEMV_MAX_M)  grid (cdiv(N, BLOCK_N), SPLIT_K). Every program holds all M rows
      (BLOCK_M = 1, or M padded to 16) and streams BLOCK_N rows of the weight over its K range in
      BLOCK_K chunks (16-byte vector loads, no masks when K % BLOCK_K == 0; rows past N are
      clamped, not masked). A is tiny: each program recomputes the row reductions (one pass over
      the M x K prologue inputs, L2-resident) and the prologue per chunk. BLOCK_M == 1 accumulates
      a [BLOCK_N, BLOCK_K] float32 tile elementwise and reduces it once at the end; BLOCK_M == 16
      uses tl.dot (tensor cores do the little compute there is). SPLIT_K > 1 writes float32
      partials to a workspace [SPLIT_K, M, N] and KERNEL_splitk sums them and applies the epilogue.
      With module.EARLY_WEIGHTS (on by default) a program loads its first chunk of float weights (a
      weight buffer's: no kernel writes one) before griddepcontrol.wait, peeled out of the K loop.
  KERNEL_gemm (M > GEMV_MAX_M)  1-d grid of BLOCK_M x BLOCK_N tiles in GROUP_M-grouped order; a
      first loop over K computes the row reductions of the tile's rows, the main loop computes the
      A tile by the prologue, casts it to the weight dtype and accumulates tl.dot in float32
      (float32 weights: input_precision="ieee", so results match float32 references).

For int4 weights of 8 M or more (BRAZE_INT4_REVSPLITK=1: every int4 weight; BRAZE_INT8_REVSPLITK=1:
int8 too) a quantized kernel's M = 1 launch is KERNEL_revsplitk instead (K-major split-K with the
same fusions in one launch, matmul_revsplitk.py).

The epilogue runs on the float32 accumulator tile and stores with masks, converting to the output
dtype. Strides and offsets of every view are compile-time constants in the source; N and K are
constexpr when static (they are for weights). Tunables come from the kernel's `knobs` (braze.tune:
tuned, or the cost model's pick), else from `default_matmul_config` (one call per M bucket at emit
time). A config's variant is "gemv", "gemm" or "library" (cuBLAS, matmul_library.py); by default
M == 1 runs the GEMV and larger M the library for float weights (quantized: the GEMV to 16 rows,
the fused GEMM to 64, then dequantize + library). A kernel with attr
`batch_invariant` (braze/passes/batch_invariant.py) has one launch for every M: KERNEL_gemm with
invariant.py's config, so a row's sums never depend on how many rows share the step.

If the output may overlap a non-weight operand (in-place `x = x + W @ rms(x)`), programs of
other N blocks would read rows already overwritten: the launcher then snapshots those operands
(a clone of the flat buffer) before the launch.
"""
from __future__ import annotations

from dataclasses import replace

from braze.codegen.triton.exprs import TRITON_DTYPE, ExprEmitter
from braze.codegen.triton.indexing import split_rows, view_offsets
from braze.codegen.triton.invariant import invariant_matmul_config
from braze.codegen.triton.matmul_config import (  # noqa: F401  (re-exported: tests and benches use mm.*)
    ELEM_BYTES, GEMV_MAX_M, M_BUCKETS, NUM_SMS, MatmulConfig, matmul_config)
from braze.codegen.triton.matmul_library import WORKSPACE_HELPER, library_eligible, library_launch, library_sources
from braze.codegen.triton.matmul_prologue import factor_row_scale
from braze.codegen.triton.matmul_revsplitk import HELPER as REVSPLITK_HELPER
from braze.codegen.triton.matmul_revsplitk import revsplitk_eligible, revsplitk_launch, revsplitk_source
from braze.codegen.triton.module import WAIT_MARKER, EmitContext, EmittedKernel
from braze.codegen.triton.prefetch import HELPER as PREFETCH_HELPER
from braze.codegen.triton.prefetch import PARAMETERS as PREFETCH_PARAMETERS
from braze.codegen.triton.prefetch import prefetch_arguments, prefetch_call
from braze.errors import CompilationError
from braze.ir.kernel import Expr, Kernel

# M > 1 (float weights; quantized: M > 64): cuBLAS for the product, braze's kernels around it. The
# kernel suite on an H100 measured cuBLAS ahead of the tl.dot GEMM at M = 32 (TinyLlama's four
# shapes, bf16) and far ahead in float32, where tl.dot with input_precision="ieee" has no tensor
# cores; the 16-row GEMV lost inside the model (default_matmul_config; bench/NOTES.md). The
# GEMV-16 and GEMM variants stay in the tuning space.
USE_LIBRARY_GEMM = True


def default_matmul_config(g: "_Gen", m_bucket: int, n: int, k: int) -> MatmulConfig:
    """Today's heuristic for one M bucket: matmul_config, with cuBLAS past the GEMV buckets."""
    packed = {"weight_bytes": g.weight_bytes} if g.weight_bytes else {}
    config = matmul_config(m_bucket, n, k, g.wdtype, **packed)
    # Float weights past one row go to cuBLAS: inside the model (RMSNorm / SiLU*mul prologues, split-K
    # with a residual epilogue) the 16-row GEMV made TinyLlama's 2-16-token steps 3.66 ms on the H100
    # against 1.67 ms through cuBLAS (bench/kernels/step_tokens_sweep.py), though alone it matched
    # cuBLAS. Quantized weights: the library only past 64 rows (below, dequantizing the whole weight
    # per call costs more than the fused GEMM's reads).
    if m_bucket != 1 and USE_LIBRARY_GEMM and library_eligible(g) and (m_bucket == 0 or not g.k.attr("quant")):
        config = replace(config, variant="library")
    return config


def chosen_matmul_config(g: "_Gen", m_bucket: int, n: int, k: int) -> MatmulConfig:
    """braze.tune's config for the bucket (the kernel's `knobs`), else the heuristic's."""
    knobs = g.k.attr("knobs")
    chosen = knobs.get(m_bucket) if knobs is not None else None
    return MatmulConfig(**chosen) if chosen else default_matmul_config(g, m_bucket, n, k)


def _full(value: str, shape: str) -> str:
    """value as a full block: a literal (constant expression) becomes tl.full, a block broadcasts."""
    try:
        float(value)
    except ValueError:
        return f"tl.broadcast_to({value}, {shape})"
    return f"tl.full({shape}, {value}, tl.float32)"


def _init(op: str) -> str:
    """The identity of a reduction's fold."""
    return "0.0" if op == "sum" else "float('-inf')"


def _weight_index(kernel: Kernel) -> int:
    w = kernel.attr("weight")
    return len(kernel.operands) - 1 if w is None else int(w)


def _uses_rowred(e: Expr | None) -> bool:
    return e is not None and any(x.op == "rowred" for x in e.walk())


class _Gen:
    """Source generation shared by the GEMV and GEMM functions of one matmul kernel."""

    weight_bytes: float | None = None  # bytes per packed weight (QuantGen); None: the dtype's size

    def __init__(self, k: Kernel, ctx: EmitContext):
        self.k, self.ctx = k, ctx
        self.w = _weight_index(k)
        bview = k.operands[self.w]
        if len(bview.shape) != 2:
            raise CompilationError(f"kernel {k.name}: matmul weight view must be [N, K], got {bview}")
        self.bview = bview
        self.n_dim, self.k_dim = bview.shape
        out = k.output
        if out.shape[-1] != self.n_dim:
            raise CompilationError(f"kernel {k.name}: output {list(out.shape)} does not end in N={self.n_dim}")
        self.rows_shape = tuple(out.shape[:-1])
        self.prologue = k.prologue if k.prologue is not None else \
            Expr("load", value=next(i for i in range(len(k.operands)) if i != self.w))
        self.epilogue = k.expr if k.expr is not None else Expr("acc")
        self.wdtype = ctx.program.buffer(bview.buffer).dtype
        self.odtype = ctx.program.buffer(out.buffer).dtype
        self.args = [f"in{i}" for i in range(len(k.operands))]
        # one pass over K (reductions in the product's loop, the row scale in the epilogue) when the
        # reductions are independent of each other and the prologue factors as scale * rest
        factored = factor_row_scale(self.prologue) if k.reductions else None
        independent = not any(_uses_rowred(body) for _, body in k.reductions)
        self.row_scale, self.rest = factored if factored and independent else (None, None)
        # the GEMV's L2 prefetch before its wait (braze/passes/prefetch.py): launch keyword arguments
        self.prefetch = prefetch_arguments(k, ctx)
        # the GEMV's first weight chunk loaded above its wait (module.EARLY_WEIGHTS): only a weight
        # buffer, which no kernel writes (a matmul of two activations waits as before)
        self.early = ctx.early_weights and ctx.program.buffer(bview.buffer).kind == "weight"
        self.peeled = False  # the chunk being emitted is the first one, loaded early

    # -- pieces -------------------------------------------------------------------------------
    def rows_setup(self, rows_expr: str) -> list[str]:
        """rows [BM, 1] (real) and the per-dim indices of the clamped rows (for loads)."""
        lines = [f"    rows = {rows_expr}",
                 "    rows64 = tl.minimum(rows, M - 1).to(tl.int64)"]
        split, self.row_names = split_rows(self.rows_shape + (self.n_dim,), "rows64")
        if not self.rows_shape:  # a 1-d output: one row
            self.row_names = []
        return lines + split

    def a_pointers(self) -> list[str]:
        """Base pointers [BM, 1] of every prologue/reduction operand (row part of the offset)."""
        used = set()
        for e in [self.prologue] + [body for _, body in self.k.reductions]:
            used |= {x.value for x in e.walk() if x.op == "load"}
        self.a_used = sorted(used)
        return [f"    ap{i} = in{i} + ({view_offsets(self.k.operands[i], self.row_names, cols=None)})"
                for i in self.a_used]

    def _a_load(self, masked: bool):
        def load(i: int) -> str:
            sk = self.k.operands[i].strides[-1]
            col = "kk" if sk == 1 else f"kk * {sk}" if sk else "0"
            mask = ", mask=kmask, other=0.0" if masked else ""
            return f"tl.load(ap{i} + {col}{mask}).to(tl.float32)"
        return load

    def kloop_head(self, indent: str, lo: str, hi: str, masked: bool) -> list[str]:
        return [f"{indent}for k0 in range({lo}, {hi}, BLOCK_K):",
                f"{indent}    kk = tl.max_contiguous(tl.multiple_of(k0 + tl.arange(0, BLOCK_K), BLOCK_K), BLOCK_K)[None, :]"] \
            + ([f"{indent}    kmask = kk < K"] if masked else [])

    def k_loops(self, em: ExprEmitter, indent: str, lo: str, hi: str, body, peel: bool = False) -> list[str]:
        """`if EVEN_K:` an unmasked loop over the K chunks [lo, hi), `else:` a masked one; for each,
        body(masked, indent) returns the loop body's lines (em is set up for that loop's loads).
        With `peel` the first chunk is emitted before the loop, its weights the ones loaded early."""
        lines = [f"{indent}if EVEN_K:"]
        for masked in (False, True):
            if masked:
                lines.append(f"{indent}else:")
            inner = indent + "    "
            if peel:
                lines += self.chunk_head(inner, lo, masked)
                em.indent, em.load = inner, self._a_load(masked)
                em.forget_loads()
                em.lines = []
                self.peeled = True
                lines += body(masked, inner)
                self.peeled = False
            lines += self.kloop_head(inner, f"{lo} + BLOCK_K" if peel else lo, hi, masked)
            em.indent, em.load = indent + "        ", self._a_load(masked)
            em.forget_loads()
            em.lines = []
            lines += body(masked, indent + "        ")
        return lines

    def chunk_head(self, indent: str, k0: str, masked: bool) -> list[str]:
        """k0, kk (and kmask) of the one chunk at k0, as kloop_head sets them for each chunk."""
        head = self.kloop_head(indent, k0, k0, masked)
        return [f"{indent}k0 = {k0}"] + [line[4:] for line in head[1:]]

    raw_names = ("b",)  # what raw_loads assigns

    def raw_loads(self, masked: bool, indent: str, suffix: str = "") -> list[str]:
        """Lines loading the chunk's weights as stored (columns kk of the rows at bp) into b{suffix}."""
        sbk = self.bview.strides[1]
        bcol = "kk" if sbk == 1 else f"kk * {sbk}" if sbk else "0"
        mask = ", mask=kmask, other=0.0" if masked else ""
        return [f"{indent}b{suffix} = tl.load(bp + {bcol}{mask})"]

    def weight_loads(self, masked: bool, indent: str) -> list[str]:
        """The chunk's raw weights: loaded, or (the peeled first chunk) the ones loaded early."""
        if self.peeled:
            return [f"{indent}{name} = {name}_first" for name in self.raw_names]
        return self.raw_loads(masked, indent)

    def early_lines(self) -> list[str]:
        """Above the wait: the first chunk of this program's K range, loaded into {name}_first."""
        lines = []
        for masked in (False, True):
            lines += ["    else:" if masked else "    if EVEN_K:"] + self.chunk_head("        ", "k_lo", masked)
            lines += self.raw_loads(masked, "        ", "_first")
        return lines

    def reductions(self, em: ExprEmitter) -> list[str]:
        """One pass over K per reduction (a later one may read an earlier one); red{j} [BM, 1]."""
        lines, reds = [], []
        for j, (op, body) in enumerate(self.k.reductions):
            def fold(masked, indent, j=j, op=op, body=body):
                v = em.emit(body, rowreds=reds)
                return em.lines + [self._fold(j, op, v, masked, indent)]
            lines.append(f"    red{j} = tl.full([BLOCK_M, 1], {_init(op)}, tl.float32)")
            lines += self.k_loops(em, "    ", "0", "K", fold)
            reds.append(f"red{j}")
        self.reds = reds
        return lines

    @staticmethod
    def _fold(j: int, op: str, v: str, masked: bool, indent: str) -> str:
        """red{j} <- red{j} (+ or max) the fold of chunk value v over the chunk's columns."""
        if masked:
            v = f"tl.where(kmask, {v}, {_init(op)})"
        fold = "tl.sum" if op == "sum" else "tl.max"
        comb = f"red{j} + " if op == "sum" else f"tl.maximum(red{j}, "
        close = "" if op == "sum" else ")"
        return f"{indent}red{j} = {comb}{fold}({_full(v, '(BLOCK_M, BLOCK_K)')}, axis=1)[:, None]{close}"

    def one_pass_loop(self, em: ExprEmitter, update: str) -> list[str]:
        """The K loop of a factored prologue: A = rest(m, k), the reductions folded chunk by chunk."""
        self.reds = [f"red{j}" for j in range(len(self.k.reductions))]

        def body(masked, indent):
            a = em.emit(self.rest)
            values = [em.emit(b) for _, b in self.k.reductions]
            folds = [self._fold(j, op, v, masked, indent) for j, ((op, _), v) in enumerate(zip(self.k.reductions, values))]
            return em.lines + folds + self._chunk_product(a, masked, update, indent)
        inits = [f"        red{j} = tl.full([BLOCK_M, 1], {_init(op)}, tl.float32)"
                 for j, (op, _) in enumerate(self.k.reductions)]
        return inits + self.k_loops(em, "        ", "k_lo", "k_lo + K_CHUNK", body, peel=self.early)

    def _chunk_product(self, a: str, masked: bool, update: str, indent: str) -> list[str]:
        """The A chunk from prologue value `a`, the B chunk [BN, BK], then `update` accumulates."""
        if masked:
            lines = [f"{indent}a = tl.where(kmask, {_full(a, '(BLOCK_M, BLOCK_K)')}, 0.0)"]
        else:
            lines = [f"{indent}a = {_full(a, '(BLOCK_M, BLOCK_K)')}"]
        return lines + self.weight_loads(masked, indent) + [f"{indent}{u}" for u in update.split("\n")]

    def b_pointer(self) -> str:
        sbn = self.bview.strides[0]
        off = f" + {self.bview.offset}" if self.bview.offset else ""
        return f"    bp = in{self.w}{off} + tl.minimum(cols, N - 1).to(tl.int64)[:, None] * {sbn}"

    def main_loop(self, em: ExprEmitter, lo: str, hi: str, update: dict[bool, str], peel: bool = False) -> list[str]:
        """The K loop: A chunk by the prologue, B chunk [BN, BK], `update` accumulates."""
        def body(masked, indent):
            a = em.emit(self.prologue, rowreds=self.reds)
            return em.lines + self._chunk_product(a, masked, update[masked], indent)
        return self.k_loops(em, "    ", lo, hi, body, peel)

    def dot(self) -> str:
        prec = ', input_precision="ieee"' if self.wdtype == "float32" else ""
        return f"tl.dot(a.to(b.dtype), tl.trans(b){prec})"

    def epilogue_store(self, em: ExprEmitter, acc: str, indent: str = "    ") -> list[str]:
        k = self.k
        lines = [f"{indent}omask = (rows < M) & (cols[None, :] < N)",
                 f"{indent}cols_ld = tl.minimum(cols, N - 1)[None, :]"]

        def load(i: int) -> str:
            return f"tl.load(in{i} + {view_offsets(k.operands[i], self.row_names, 'cols_ld')}).to(tl.float32)"
        em.indent, em.load = indent, load
        em.forget_loads()
        em.lines = []
        value = em.emit(self.epilogue, acc=acc, rowreds=getattr(self, "reds", []))
        lines += em.lines
        # the store uses the real (unclamped) rows: rebuild the row indices from them
        split, names = split_rows(self.rows_shape + (self.n_dim,), "rows_st", indent)
        if not self.rows_shape:
            names = []
        lines.append(f"{indent}rows_st = rows.to(tl.int64)")
        lines += split
        lines.append(f"{indent}value = {_full(value, '(BLOCK_M, BLOCK_N)')}")
        out_off = view_offsets(k.output, names, "cols[None, :]")
        lines.append(f"{indent}tl.store(out + {out_off}, value.to({TRITON_DTYPE[self.odtype]}), mask=omask)")
        return lines

    # -- functions ----------------------------------------------------------------------------
    def jit(self) -> str:
        """Runtime sizes are not specialized on (no recompiles when M crosses 1 or multiples of 16)."""
        names = ["M"] + [d for d, v in (("N", self.n_dim), ("K", self.k_dim)) if not isinstance(v, int)]
        return f"@triton.jit(do_not_specialize=[{', '.join(repr(n) for n in names)}])"

    def sizes(self) -> str:
        n_c = ": tl.constexpr" if isinstance(self.n_dim, int) else ""
        k_c = ": tl.constexpr" if isinstance(self.k_dim, int) else ""
        return f"M, N{n_c}, K{k_c}"

    def gemv(self) -> str:
        em = ExprEmitter(lambda i: "", "    ")
        head = [self.jit(),
                f"def KERNEL({', '.join(self.args)}, out, ws, {self.sizes()}, BLOCK_M: tl.constexpr, "
                "BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, K_CHUNK: tl.constexpr, SPLIT_K: tl.constexpr, "
                "EVEN_K: tl.constexpr, ONE_PASS: tl.constexpr"
                + (f", {PREFETCH_PARAMETERS}" if self.prefetch else "") + "):",
                "    pid_n = tl.program_id(0)",
                "    pid_k = tl.program_id(1)"]
        if self.prefetch:  # every program its share, while the kernel before still runs
            head.append(prefetch_call("    ", "pid_n * tl.num_programs(1) + pid_k",
                                      "tl.num_programs(0) * tl.num_programs(1)", marker=not self.early))
        body = ["    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)", self.b_pointer(),
                "    k_lo = pid_k * K_CHUNK"]
        if self.early:
            body += self.early_lines() + [f"    {WAIT_MARKER}"]
        body += self.rows_setup("tl.arange(0, BLOCK_M)[:, None]") + self.a_pointers()
        two_pass = self.reductions(em)
        body += ["    if BLOCK_M == 1:",
                 "        acc2 = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)",
                 "    else:",
                 "        acc2 = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)"]
        update = ("if BLOCK_M == 1:\n    acc2 += a * b.to(tl.float32)\n"
                  f"else:\n    acc2 += {self.dot()}")
        two_pass += self.main_loop(em, "k_lo", "k_lo + K_CHUNK", {False: update, True: update}, peel=self.early)
        if self.row_scale is None:
            body += two_pass
        else:  # ONE_PASS (the launcher's choice: split == 1): reductions inside the product's loop
            body += ["    if ONE_PASS:"] + self.one_pass_loop(em, update) + ["    else:"]
            body += ["    " + line for line in two_pass]
        body += ["    if BLOCK_M == 1:",
                 "        acc = tl.sum(acc2, axis=1)[None, :]",
                 "    else:",
                 "        acc = acc2"]
        if self.row_scale is not None:
            em.indent, em.lines = "        ", []
            scale = em.emit(self.row_scale, rowreds=self.reds)
            body += ["    if ONE_PASS:"] + em.lines + [f"        acc = acc * {scale}"]
        body += ["    if SPLIT_K > 1:",
                 "        wmask = (rows < M) & (cols[None, :] < N)",
                 "        tl.store(ws + pid_k * M * N + rows * N + cols[None, :], acc, mask=wmask)",
                 "    else:"]
        body += self.epilogue_store(em, "acc", "        ")
        return "\n".join(head + body) + "\n"

    def splitk(self) -> str:
        em = ExprEmitter(lambda i: "", "    ")
        head = [self.jit(),
                f"def KERNEL_splitk({', '.join(self.args)}, out, ws, {self.sizes()}, BLOCK_M: tl.constexpr, "
                "BLOCK_N: tl.constexpr, SPLIT_K: tl.constexpr):",
                "    pid_n = tl.program_id(0)"]
        body = self.rows_setup("tl.arange(0, BLOCK_M)[:, None]")
        body += ["    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
                 "    wmask = (rows < M) & (cols[None, :] < N)",
                 "    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)",
                 "    for s in range(SPLIT_K):",
                 "        acc += tl.load(ws + s * M * N + rows * N + cols[None, :], mask=wmask, other=0.0)"]
        body += self.epilogue_store(em, "acc")
        return "\n".join(head + body) + "\n"

    def gemm(self) -> str:
        em = ExprEmitter(lambda i: "", "    ")
        head = [self.jit(),
                f"def KERNEL_gemm({', '.join(self.args)}, out, {self.sizes()}, BLOCK_M: tl.constexpr, "
                "BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, EVEN_K: tl.constexpr):",
                "    pid = tl.program_id(0)",
                "    num_pid_m = tl.cdiv(M, BLOCK_M)",
                "    num_pid_n = tl.cdiv(N, BLOCK_N)",
                "    num_pid_in_group = GROUP_M * num_pid_n",
                "    group_id = pid // num_pid_in_group",
                "    first_pid_m = group_id * GROUP_M",
                "    group_size_m = tl.minimum(num_pid_m - first_pid_m, GROUP_M)",
                "    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)",
                "    pid_n = (pid % num_pid_in_group) // group_size_m"]
        body = self.rows_setup("pid_m * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]") + self.a_pointers()
        body += self.reductions(em)
        body += ["    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)", self.b_pointer(),
                 "    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)"]
        update = f"acc += {self.dot()}"
        body += self.main_loop(em, "0", "K", {False: update, True: update})
        body += self.epilogue_store(em, "acc")
        return "\n".join(head + body) + "\n"


def _may_alias(program, a: str, b: str) -> bool:
    from braze.codegen.cpp.matmul import may_alias
    return may_alias(program, a, b)


def _gemm_launch(c: MatmulConfig, args: str) -> list[str]:
    tune = f"num_warps={c.num_warps}, num_stages={c.num_stages}"
    return [f"        grid = (triton.cdiv(M, {c.block_m}) * triton.cdiv(N, {c.block_n}),)",
            f"        KERNEL_gemm[grid]({args}, M, N, K, BLOCK_M={c.block_m}, BLOCK_N={c.block_n}, "
            f"BLOCK_K={c.block_k}, GROUP_M={c.group_m}, EVEN_K=K % {c.block_k} == 0, {tune})"]


def emit_matmul(k: Kernel, ctx: EmitContext) -> EmittedKernel:
    from braze.codegen.triton.matmul_quant import QuantGen  # packed weights: the B chunk is dequantized
    g = QuantGen(k, ctx) if k.attr("quant") else _Gen(k, ctx)
    n_int = g.n_dim if isinstance(g.n_dim, int) else 4096
    k_int = g.k_dim if isinstance(g.k_dim, int) else 4096
    invariant = bool(k.attr("batch_invariant"))  # one config for every M (invariant.py)
    if invariant:
        configs = dict.fromkeys(M_BUCKETS, invariant_matmul_config(n_int, k_int, g.wdtype))
    else:
        configs = {mb: chosen_matmul_config(g, mb, n_int, k_int) for mb in M_BUCKETS}
    if _uses_rowred(g.epilogue):  # the split-K epilogue kernel has no row reductions
        configs = {mb: (MatmulConfig(c.variant, c.block_m, c.block_n, c.block_k, c.num_warps, c.num_stages, 1,
                                     c.group_m)) for mb, c in configs.items()}
    src = g.gemm() if invariant else g.gemv() + "\n\n" + g.gemm()
    use_library = any(c.variant == "library" for c in configs.values())
    if use_library and not library_eligible(g):
        raise CompilationError(f"kernel {k.name}: a library (cuBLAS) config was chosen, but the kernel is not eligible")
    if use_library:
        src += "\n\n" + library_sources(g)
    if any(c.split_k > 1 for c in configs.values()):
        src += "\n\n" + g.splitk()
    revsplitk = not invariant and revsplitk_eligible(g)  # int4 / int8 at M = 1, behind their flags
    if revsplitk:
        src += "\n\n" + revsplitk_source(g)

    # launcher
    launch = [f"    M = {ctx.numel(g.rows_shape)}", f"    N = {ctx.dim(g.n_dim)}", f"    K = {ctx.dim(g.k_dim)}",
              "    if M == 0 or N == 0:", "        return"]
    operands = [ctx.buf(v.buffer) for v in k.operands]
    for i, v in enumerate(k.operands):
        if i != g.w and _may_alias(ctx.program, k.output.buffer, v.buffer):
            launch.append(f"    a{i} = {ctx.buf(v.buffer)}.clone()  # the output may overlap this operand")
            operands[i] = f"a{i}"
    out = ctx.buf(k.output.buffer)
    args = ", ".join(operands + [out])

    def cond(mb: int, first: bool) -> str:
        kw = "if" if first else "elif"
        if mb == 1:
            return f"    {kw} M == 1:"
        return f"    {kw} M <= {mb}:" if mb else "    else:"

    if invariant:  # no branch on M: every step size runs this one launch
        c = configs[M_BUCKETS[0]]
        launch += [line[4:] for line in _gemm_launch(c, args)]
    prefetch = f"{g.prefetch}, " if g.prefetch else ""
    for idx, mb in enumerate(() if invariant else M_BUCKETS):
        c = configs[mb]
        launch.append(cond(mb, idx == 0))
        tune = f"num_warps={c.num_warps}, num_stages={c.num_stages}"
        if mb == 1 and revsplitk:
            launch += revsplitk_launch(g, operands, out)
        elif c.variant == "gemv":
            if c.block_m != 1 and c.block_m < (mb or GEMV_MAX_M):
                raise CompilationError(f"kernel {k.name}: GEMV BLOCK_M {c.block_m} below bucket {mb}")
            launch += [f"        k_chunk = triton.cdiv(triton.cdiv(K, {c.split_k}), {c.block_k}) * {c.block_k}",
                       f"        even_k = K % {c.block_k} == 0 and K % k_chunk == 0",
                       f"        split = triton.cdiv(K, k_chunk) if K else 1"]
            if c.split_k > 1:
                launch += ["        if split > 1:",
                           f"            ws = _braze_workspace({out}.device, torch.float32, max(split * M * N, 1 << 16), 'split_k')",
                           f"            KERNEL[(triton.cdiv(N, {c.block_n}), split)]({args}, ws, M, N, K, "
                           f"BLOCK_M={c.block_m}, BLOCK_N={c.block_n}, BLOCK_K={c.block_k}, K_CHUNK=k_chunk, "
                           f"SPLIT_K=split, EVEN_K=even_k, ONE_PASS=False, {prefetch}{tune})",
                           f"            KERNEL_splitk[(triton.cdiv(N, 64),)]({args}, ws, M, N, K, "
                           f"BLOCK_M={c.block_m if c.block_m > 1 else 1}, BLOCK_N=64, SPLIT_K=split, num_warps=4)",
                           "            return"]
            launch.append(f"        KERNEL[(triton.cdiv(N, {c.block_n}), 1)]({args}, {out}, M, N, K, "
                          f"BLOCK_M={c.block_m}, BLOCK_N={c.block_n}, BLOCK_K={c.block_k}, K_CHUNK=k_chunk, "
                          f"SPLIT_K=1, EVEN_K=even_k, ONE_PASS={g.row_scale is not None}, {prefetch}{tune})")
        elif c.variant == "library":
            launch += library_launch(g, operands, out)
        else:
            launch += _gemm_launch(c, args)
    helpers = [WORKSPACE_HELPER] if use_library or any(c.split_k > 1 for c in configs.values()) else []
    if g.prefetch and not invariant:
        helpers.append(PREFETCH_HELPER)
    if revsplitk:
        helpers.append(REVSPLITK_HELPER)
    return EmittedKernel(src, "\n".join(launch) + "\n", helpers)
