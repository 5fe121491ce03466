"""Search spaces: every legal config of one kernel's bucket, per kernel kind and target, and the
config today's heuristic picks (always a candidate, so tuning never ends worse than untuned).

Legal means: the emitter accepts it, tiles divide what they must (split-K chunks of whole BLOCK_K
steps), register tiles stay bounded, and pipelined shared-memory buffers fit the device. A
library (cuBLAS) candidate appears where matmul_library.library_eligible allows it; it is reported
as variant "library".
"""
from __future__ import annotations

import itertools
import math

from braze.ir.kernel import Kernel, Program
from braze.tune.device import DeviceInfo

TUNABLE = {"triton": ("matmul", "attention", "pointwise", "reduction"), "cpp": ("matmul",)}
ELEM_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

# bucket -> (smallest rows, largest rows (0: unbounded), representative rows to measure at)
BUCKETS = {
    ("triton", "matmul"): {1: (1, 1, 1), 16: (2, 16, 16), 64: (17, 64, 64), 0: (65, 0, 256)},
    ("triton", "attention"): {1: (1, 16, 1), 0: (17, 0, 256)},
    ("triton", "pointwise"): {0: (1, 0, 256)},
    ("triton", "reduction"): {0: (1, 0, 256)},
    ("cpp", "matmul"): {1: (1, 1, 1), 0: (2, 0, 32)},
}


def tunable(k: Kernel, target: str) -> bool:
    """Kernels with a search space. Quantized matmuls (packed weights, their own tile rules) and
    batch-invariant kernels (one fixed config for every M, so results do not depend on the batch)
    keep their emitters' configs."""
    return k.kind in TUNABLE.get(target, ()) and not k.attr("quant") and not k.attr("batch_invariant")


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def row_dims(k: Kernel) -> tuple:
    """The dims whose product is the kernel's runtime row count (M, tokens, rows)."""
    if k.kind in ("matmul", "pointwise"):
        return tuple(k.output.shape[:-1])
    if k.kind == "reduction":
        return tuple(k.operands[0].shape[:-1])
    return tuple(k.operands[0].shape[:1])


def _rows_range(k: Kernel, program: Program) -> tuple[int, int]:
    lo = hi = 1
    for d in row_dims(k):
        if isinstance(d, int):
            lo, hi = lo * d, hi * d
        else:
            hi *= int(program.symbols[d])
    return lo, hi


def buckets(k: Kernel, program: Program, target: str) -> dict[int, dict[str, int]]:
    """bucket -> the symbol values to measure it at, for the buckets this kernel can reach."""
    table = BUCKETS.get((target, k.kind))
    if table is None:
        return {}
    lo, hi = _rows_range(k, program)
    out = {}
    for bucket, (b_lo, b_hi, rep) in table.items():
        top = hi if b_hi == 0 else min(hi, b_hi)
        if max(lo, b_lo) > top:
            continue
        rows = min(max(rep, lo, b_lo), top)
        out[bucket] = _symbols_for_rows(k, program, rows)
    return out


def _symbols_for_rows(k: Kernel, program: Program, rows: int) -> dict[str, int]:
    """Symbol values that make the kernel's row count `rows` (other symbols at their bounds)."""
    values = {s: int(bound) for s, bound in program.symbols.items()}
    dims = row_dims(k)
    static = math.prod(d for d in dims if isinstance(d, int))
    symbolic = [d for d in dims if not isinstance(d, int)]
    for i, s in enumerate(symbolic):
        values[s] = 1 if i else max(1, min(int(program.symbols[s]), -(-rows // static)))
    return values


def measured_rows(k: Kernel, symbols: dict[str, int]) -> int:
    return math.prod(d if isinstance(d, int) else symbols[d] for d in row_dims(k))


# ---------------------------------------------------------------- Triton matmul


def _matmul_gen(k: Kernel, program: Program):
    from braze.codegen.triton.matmul import _Gen
    from braze.codegen.triton.module import EmitContext
    return _Gen(k, EmitContext(program))


def _nk(g) -> tuple[int, int]:
    n = g.n_dim if isinstance(g.n_dim, int) else 4096
    kk = g.k_dim if isinstance(g.k_dim, int) else 4096
    return n, kk


def _triton_matmul_default(k: Kernel, program: Program, bucket: int, device: DeviceInfo) -> dict:
    from dataclasses import asdict
    from braze.codegen.triton.matmul import _uses_rowred, default_matmul_config
    g = _matmul_gen(k, program)
    n, kk = _nk(g)
    config = asdict(default_matmul_config(g, bucket, n, kk))
    if _uses_rowred(g.epilogue):
        config["split_k"] = 1
    return config


def _triton_matmul_space(k: Kernel, program: Program, bucket: int, device: DeviceInfo) -> list[dict]:
    from braze.codegen.triton.matmul import _uses_rowred
    from braze.codegen.triton.matmul_library import library_eligible
    g = _matmul_gen(k, program)
    n, kk = _nk(g)
    esize = ELEM_BYTES.get(g.wdtype, 4)
    kp2 = _pow2(max(kk, 16))
    splits_ok = not _uses_rowred(g.epilogue)
    out: list[dict] = []

    def split_legal(block_k: int, split: int) -> bool:  # whole BLOCK_K steps, >= 2 per split
        return split == 1 or (splits_ok and kk % (block_k * split) == 0 and kk // split >= 2 * block_k)

    def smem_fits(bm: int, bn: int, bk: int, stages: int) -> bool:
        return stages * (bm * bk + bn * bk) * esize <= device.smem_bytes

    if bucket in (1, 16):
        if bucket == 1:  # weight streaming, [BLOCK_N, BLOCK_K] float32 accumulator tile
            grid = itertools.product([1], [1, 2, 4, 8, 16], [64, 128, 256, 512, 1024, 2048], [2, 4, 8], [3], [1, 2, 4])
        else:  # 16 rows by tl.dot
            grid = itertools.product([16], [16, 32, 64], [64, 128, 256], [4, 8], [2, 4], [1, 2, 4])
        for bm, bn, bk, warps, stages, split in grid:
            if bk > kp2 or bn * bk > 16384 or (bucket == 1 and bn * bk < 512) or not split_legal(bk, split):
                continue
            if bucket == 16 and not smem_fits(bm, bn, bk, stages):
                continue
            out.append({"variant": "gemv", "block_m": bm, "block_n": bn, "block_k": bk, "num_warps": warps,
                        "num_stages": stages, "split_k": split, "group_m": 8})
    if bucket in (16, 64, 0):
        block_ms = [16] if bucket == 16 else [32, 64] if bucket == 64 else [64, 128]
        group_ms = [1, 8] if bucket == 0 else [8]  # grouped tile order (L2 reuse) matters with many M tiles
        for bm, bn, bk, warps, stages, group in itertools.product(block_ms, [64, 128], [32, 64, 128], [4, 8], [3, 4],
                                                                  group_ms):
            if bk > kp2 or (esize == 4 and bk > 64) or not smem_fits(bm, bn, bk, stages) or bm * bn > 16384:
                continue
            out.append({"variant": "gemm", "block_m": bm, "block_n": bn, "block_k": bk, "num_warps": warps,
                        "num_stages": stages, "split_k": 1, "group_m": group})
    if bucket in (16, 64, 0) and library_eligible(g) and (bucket == 0 or not g.k.attr("quant")):
        default = _triton_matmul_default(k, program, bucket, device)
        out.append({**default, "variant": "library"})
    return out


# ---------------------------------------------------------------- Triton attention


def _triton_attention_default(k: Kernel, program: Program, bucket: int, device: DeviceInfo) -> dict:
    from braze.codegen.triton import attention as a
    if bucket == 1:
        return {"block_n": a.DECODE_BN, "num_warps": a.DECODE_WARPS, "num_stages": a.DECODE_STAGES,
                "programs_per_sm": a.DECODE_PROGRAMS_PER_SM}
    return {"block_m": a.PREFILL_BM, "block_n": a.PREFILL_BN, "num_warps": a.PREFILL_WARPS,
            "num_stages": a.PREFILL_STAGES}


def _triton_attention_space(k: Kernel, program: Program, bucket: int, device: DeviceInfo) -> list[dict]:
    d = _pow2(max(16, int(k.attr("head_dim"))))
    esize = ELEM_BYTES.get(program.buffer(k.operands[1].buffer).dtype, 4)
    out = []
    if bucket == 1:
        for bn, warps, stages, per_sm in itertools.product([32, 64, 128], [2, 4, 8], [1, 2, 3], [1, 2, 4]):
            if stages * 2 * bn * d * esize <= device.smem_bytes:
                out.append({"block_n": bn, "num_warps": warps, "num_stages": stages, "programs_per_sm": per_sm})
        return out
    for bm, bn, warps, stages in itertools.product([32, 64, 128], [32, 64, 128], [4, 8], [2, 3]):
        if (bm * d + stages * 2 * bn * d) * esize <= device.smem_bytes and bm * bn <= 8192:
            out.append({"block_m": bm, "block_n": bn, "num_warps": warps, "num_stages": stages})
    return out


# ---------------------------------------------------------------- Triton pointwise / reduction


def _row_block(k: Kernel) -> tuple[int, int]:
    """(columns per block, elements per program the defaults aim at), mirroring simple.py."""
    if k.kind == "pointwise":
        cols = k.output.shape[-1] if k.output.shape and isinstance(k.output.shape[-1], int) else None
        return (min(_pow2(cols), 1024) if cols else 256), 2048
    cols = k.operands[0].shape[-1]
    return (4096 if cols > 16384 else _pow2(cols)), 4096


def _triton_rows_default(k: Kernel, program: Program, bucket: int, device: DeviceInfo) -> dict:
    block_c, per_program = _row_block(k)
    block_r = max(1, per_program // block_c)
    warps = 4 if k.kind == "pointwise" or block_r * block_c <= 4096 else 8
    return {"block_r": block_r, "num_warps": warps}


def _triton_rows_space(k: Kernel, program: Program, bucket: int, device: DeviceInfo) -> list[dict]:
    block_c, _ = _row_block(k)
    out = []
    for block_r, warps in itertools.product([1, 2, 4, 8, 16, 32, 64], [1, 2, 4, 8, 16]):
        elements = block_r * block_c
        if 128 <= elements <= 16384 and elements >= 32 * warps:
            out.append({"block_r": block_r, "num_warps": warps})
    return out


# ---------------------------------------------------------------- C++ matmul


def _cpp_matmul_default(k: Kernel, program: Program, bucket: int, device: DeviceInfo) -> dict:
    from braze.codegen.cpp.matmul import DEFAULT_KNOBS
    return dict(DEFAULT_KNOBS)


def _cpp_matmul_space(k: Kernel, program: Program, bucket: int, device: DeviceInfo) -> list[dict]:
    from braze.codegen.cpp.matmul import MB
    rows = [MB] if bucket == 1 else [8, 16, 32, 64, 128]  # one row: the block size does not matter
    return [{"mb": mb, "nr": nr, "threads": threads}
            for mb, nr, threads in itertools.product(rows, [1, 2, 4, 8], [0, 1])]


SPACES = {
    ("triton", "matmul"): (_triton_matmul_space, _triton_matmul_default),
    ("triton", "attention"): (_triton_attention_space, _triton_attention_default),
    ("triton", "pointwise"): (_triton_rows_space, _triton_rows_default),
    ("triton", "reduction"): (_triton_rows_space, _triton_rows_default),
    ("cpp", "matmul"): (_cpp_matmul_space, _cpp_matmul_default),
}


def default_config(k: Kernel, program: Program, target: str, bucket: int, device: DeviceInfo) -> dict:
    """Today's heuristic's config for the bucket."""
    return SPACES[(target, k.kind)][1](k, program, bucket, device)


def search_space(k: Kernel, program: Program, target: str, bucket: int, device: DeviceInfo) -> list[dict]:
    """Every legal config of the bucket, the heuristic's first (deduplicated, in a fixed order)."""
    space, default = SPACES[(target, k.kind)]
    configs = [default(k, program, bucket, device)] + space(k, program, bucket, device)
    seen, out = set(), []
    for c in configs:
        key = tuple(sorted(c.items()))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out
