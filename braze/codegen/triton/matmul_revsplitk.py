"""The int4 and int8 decode GEMVs (M = 1) in the K-major revsplitK form, generated around the
kernel's own prologue and epilogue. int4: on for weights of at least AUTO_MIN_WEIGHTS (N x K), where
the H100 measured it faster (below); BRAZE_INT4_REVSPLITK=1 takes it for every int4 GEMV, =0 for
none. int8 (words [K/4, N], chunk_sums_int8): off, measured slower as first built; BRAZE_INT8_REVSPLITK=1
turns it on.

Measured (H100, TinyLlama-1.1B int4-rtn-g128 decode step, `RS_QUANTS="int4-rtn-g128 int8" bash
bench/gpu_sweep.sh rsstep`, both flags on, 22 layers): gate/up (11264 x 2048) 264 -> 230 us, down
(2048 x 5632) 255 -> 196 us, but QKV (2560 x 2048) 103 -> 127 us: at 5 column tiles x 32 K slices
it fills barely more than one wave of the 132 SMs. int8: gate/up 348 -> 815 us, every shape slower.
That int8 form read bytes [K, N] and made each a float by I2F, a quarter-rate instruction on sm_90:
compiled for sm_90a, its gate/up chunk took 256 I2F and 52 barriers a thread (1,392 SASS instructions;
`bench/kernels/offline_ptxas.py`). int8 now packs 4 K-rows a word and uses int4's exponent trick.

The N-major int4 GEMV has each program stream a few whole weight rows, re-reading the activation
row and its prologue inputs per program; on the H100 it reached 24-43% of the int4 byte floor
(bench/NOTES.md). Here each program takes a [K slice x BLOCK_N columns] tile of a K-major copy of
the weight (gemv_revsplitk.py: int32 words [K/8, N], scales and mins [G, N], made once per weight
by _braze_kmajor outside any CUDA-graph capture: the capture's warm-up runs make it):

  slice    the prologue's reduction-free part chunk by chunk (RMSNorm: x * g, its row scale
           factored out by factor_row_scale; SiLU*mul whole), then chunk_sums adds the chunk's
           column sums; the tile's sums go to a float32 workspace by atomics, and so does the
           slice's part of each row reduction (RMSNorm's sum of squares over the slice's x, loaded
           anyway), into the column tile's own slots after the N column sums.
  last     the last K slice of each column tile to take an atomic ticket reads the row
           reductions' totals, applies the row scale and the epilogue (residual, bias) through the
           generator's epilogue_store, then re-zeroes its workspace columns, slots and ticket. One
           launch: no memset, no cast kernel, no second pass over the row.

Eligible: int4 weights with K % 8 == 0, or int8 weights with K % 4 == 0 (each as its setting says), a group
divisible by the chunk, no L2-prefetch tag, an epilogue without row reductions, and a prologue whose
reductions (if any) are sums that factor out as a row scale. The K-major copy is kept beside the
stored weight (prefill and the GEMVs of 2-16 rows read that one), so an eligible weight takes
twice its memory.
"""
from __future__ import annotations

from braze.codegen.triton.exprs import ExprEmitter
from braze.codegen.triton.settings import auto_setting, setting_allows, tile_setting

INT4_REVSPLITK = auto_setting("BRAZE_INT4_REVSPLITK", "auto")  # tests set True / False too
INT8_REVSPLITK = auto_setting("BRAZE_INT8_REVSPLITK", "0")
AUTO_MIN_WEIGHTS = 8 << 20  # "auto": N x K from here up (down 11.5 M and gate/up 23 M won, QKV 5.2 M lost)
# one program: BLOCK_N columns x STEPS chunks of BLOCK_K weights (bench/results/int4-gemv-revsplitk-h100.json:
# 256-512 columns and 32-64 weights a program were the fastest stand-alone configs);
# BRAZE_REVSPLITK_TILE="BLOCK_N,BLOCK_K,STEPS,WARPS" sets them (`RS_TILES=... bash bench/gpu_sweep.sh rsstep`)
BLOCK_N, BLOCK_K, STEPS, WARPS = tile_setting("BRAZE_REVSPLITK_TILE", (512, 32, 2, 4), "BLOCK_N,BLOCK_K,STEPS,WARPS")

HELPER = '''from braze.codegen.triton.gemv_revsplitk import chunk_sums, chunk_sums_int8  # noqa: E402,F401  (revsplitK)

_braze_kmajor_copies = {}
_braze_rs_scratch = {}
_braze_rs_retired = []


def _braze_kmajor(packed, scales, mins):
    """The K-major copy of a weight for the revsplitK GEMV: (words int32 [K/8, N] of int4 or [K/4, N]
    of int8, each a row's consecutive bytes read as one word; scales [G, N], mins [G, N] or None),
    made on first use and kept (the capture's warm-up runs make it).
    An entry holds the original tensors' storage: their addresses, the key, cannot be reused by
    another weight while the copy lives."""
    key = (packed.data_ptr(), tuple(packed.shape), scales.data_ptr())
    got = _braze_kmajor_copies.get(key)
    if got is None:
        words = packed.contiguous().view(torch.int32).t().contiguous()
        got = (words, scales.t().contiguous(), None if mins is None else mins.t().contiguous())
        _braze_kmajor_copies[key] = (got, packed.untyped_storage(), scales.untyped_storage())
        return got
    return got[0]


def _braze_rs_workspace(device, n, tiles):
    """Float32 column sums and int32 tickets, zero between revsplitK GEMVs (each leaves them so).
    Outgrown ones stay allocated, as _braze_workspace's do: a captured graph may replay into them."""
    ws, tickets = _braze_rs_scratch.get(device, (None, None))
    if ws is None or ws.numel() < n or tickets.numel() < tiles:
        if ws is not None:
            _braze_rs_retired.append((ws, tickets))
        ws = torch.zeros(max(n, 1 << 16), dtype=torch.float32, device=device)
        tickets = torch.zeros(max(tiles, 1024), dtype=torch.int32, device=device)
        _braze_rs_scratch[device] = (ws, tickets)
    return ws, tickets
'''


def _on(setting, g) -> bool:
    # auto: weights of unknown size (a symbolic N or K) stay on the N-major GEMV
    return setting_allows(setting, isinstance(g.n_dim, int) and isinstance(g.k_dim, int)
                          and g.n_dim * g.k_dim >= AUTO_MIN_WEIGHTS)


def revsplitk_eligible(g) -> bool:
    from braze.codegen.triton.matmul import _uses_rowred
    k = g.k
    fmt = getattr(g, "format", None)
    return (((fmt == "int4" and _on(INT4_REVSPLITK, g) and g.k_dim % 8 == 0)
             or (fmt == "int8" and _on(INT8_REVSPLITK, g) and g.k_dim % 4 == 0))
            and g.group % BLOCK_K == 0 and not g.prefetch and not _uses_rowred(g.epilogue)
            and (not k.reductions or g.row_scale is not None) and all(op == "sum" for op, _ in k.reductions))


def revsplitk_source(g) -> str:
    """KERNEL_revsplitk: grid (cdiv(N, BLOCK_N), K slices), one row (M = 1)."""
    from braze.codegen.triton.matmul import _full
    k = g.k
    em = ExprEmitter(lambda i: "", "    ")
    head = [g.jit(),
            f"def KERNEL_revsplitk({', '.join(g.args)}, out, ws, tickets, kw, ks, km, {g.sizes()}, "
            "BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, STEPS: tl.constexpr, "
            "EVEN_N: tl.constexpr, EVEN_K: tl.constexpr, HAS_MINS: tl.constexpr):",
            "    pid_n = tl.program_id(0)",
            "    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
            "    nmask = cols < N"]
    body = g.rows_setup("tl.arange(0, BLOCK_M)[:, None]") + g.a_pointers()
    nred = len(k.reductions)
    body += ["    part = tl.zeros([BLOCK_N], tl.float32)"]
    body += [f"    rp{j} = tl.zeros([BLOCK_M, BLOCK_K], tl.float32)" for j in range(nred)]
    body += ["    for st in tl.static_range(STEPS):",
             "        k0 = (tl.program_id(1) * STEPS + st) * BLOCK_K",
             "        kk = (k0 + tl.arange(0, BLOCK_K))[None, :]"]
    a_expr = g.rest if k.reductions else g.prologue
    for masked in (False, True):
        body.append("        else:" if masked else "        if EVEN_K:")
        ind = "            "
        if masked:
            body.append(f"{ind}kmask = kk < K")
        em.indent, em.load = ind, g._a_load(masked)
        em.forget_loads()
        em.lines = []
        a = em.emit(a_expr)
        # the slice's part of each row reduction (RMSNorm's sum of squares), from the loads just made
        parts = [_full(em.emit(red), "(BLOCK_M, BLOCK_K)") for _, red in k.reductions]
        body += em.lines
        a = _full(a, "(BLOCK_M, BLOCK_K)")
        body.append(f"{ind}xk = tl.reshape({f'tl.where(kmask, {a}, 0.0)' if masked else a}, (BLOCK_K,))")
        body += [f"{ind}rp{j} += {f'tl.where(kmask, {v}, 0.0)' if masked else v}" for j, v in enumerate(parts)]
    body += [f"        part += chunk_sums_int8(xk, kw, ks, cols, nmask, k0, N, K, {g.group}, BLOCK_K, EVEN_N, EVEN_K)"
             if g.format == "int8" else
             f"        part += chunk_sums(xk, kw, ks, km, cols, nmask, k0, N, K, {g.group}, BLOCK_K, HAS_MINS, True, "
             "EVEN_N, EVEN_K)",
             "    tl.atomic_add(ws + cols, part, mask=nmask, sem='relaxed')"]
    # each column tile sums the row reductions' slices in its own slots after the N column sums
    body += [f"    tl.atomic_add(ws + N + pid_n * {nred} + {j}, tl.sum(rp{j}), sem='relaxed')" for j in range(nred)]
    body += ["    # every thread's sums are added before the release; the last arrival reads them all",
             "    tl.debug_barrier()",
             "    ticket = tl.atomic_add(tickets + pid_n, 1, sem='acq_rel')",
             "    if ticket == tl.num_programs(1) - 1:",
             "        acc = tl.load(ws + cols, mask=nmask, other=0.0, cache_modifier='.cg')[None, :]"]
    reds = [f"red{j}" for j in range(nred)]
    body += [f"        red{j} = tl.load(ws + N + pid_n * {nred} + {j}, cache_modifier='.cg')" for j in range(nred)]
    g.reds = reds
    if g.row_scale is not None and k.reductions:
        em.indent, em.lines = "        ", []
        scale = em.emit(g.row_scale, rowreds=reds)
        body += em.lines + [f"        acc = acc * {scale}"]
    body += g.epilogue_store(em, "acc", "        ")
    body += ["        tl.store(ws + cols, tl.zeros([BLOCK_N], tl.float32), mask=nmask)"]
    body += [f"        tl.store(ws + N + pid_n * {nred} + {j}, 0.0)" for j in range(nred)]
    body += ["        tl.atomic_xchg(tickets + pid_n, 0)"]
    return "\n".join(head + body) + "\n"


def revsplitk_launch(g, operands: list[str], out: str, indent: str = "        ") -> list[str]:
    """The M == 1 launch: the K-major copy (made once), the shared zeroed scratch, one kernel."""
    from braze.codegen.triton.matmul_library import _window
    k = g.k
    w, s = k.operands[g.w], k.operands[g.scales]
    mins = f"{_window(operands[g.mins], '(N, G)', k.operands[g.mins])}" if g.mins >= 0 else "None"
    per_program = BLOCK_K * STEPS
    args = ", ".join(operands + [out])
    return [f"{indent}G = triton.cdiv(K, {g.group})",
            f"{indent}kw, ks, km = _braze_kmajor({_window(operands[g.w], '(N, K // 2)' if g.format == 'int4' else '(N, K)', w)}, "
            f"{_window(operands[g.scales], '(N, G)', s)}, {mins})",
            f"{indent}tiles = triton.cdiv(N, {BLOCK_N})",
            f"{indent}ws, tickets = _braze_rs_workspace({out}.device, N + tiles * {len(k.reductions)}, tiles)",
            f"{indent}KERNEL_revsplitk[(tiles, triton.cdiv(K, {per_program}))]({args}, ws, tickets, kw, ks, "
            f"ks if km is None else km, M, N, K, BLOCK_M=1, BLOCK_N={BLOCK_N}, BLOCK_K={BLOCK_K}, STEPS={STEPS}, "
            f"EVEN_N=N % {BLOCK_N} == 0, EVEN_K=K % {per_program} == 0, HAS_MINS=km is not None, "
            f"num_warps={WARPS})"]
