"""Launch configurations of the Triton matmul: the M buckets, MatmulConfig, and the heuristic that
picks one per bucket from the weight's shape and bytes (matmul.py's default_matmul_config adds the
library choice; braze.tune's knobs override both)."""
from __future__ import annotations

from dataclasses import dataclass

from braze.codegen.triton.indexing import next_pow2

GEMV_MAX_M = 16  # M up to this runs the weight-streaming GEMV
M_BUCKETS = (1, 16, 64, 0)  # launcher buckets: M == 1, M <= 16, M <= 64, larger (0)
NUM_SMS = 132  # H100 SXM; only used to size grids (split-K) in the heuristic
ELEM_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class MatmulConfig:
    """Launch parameters of one M bucket. variant: "gemv" (KERNEL) or "gemm" (KERNEL_gemm)."""

    variant: str
    block_m: int
    block_n: int
    block_k: int
    num_warps: int = 4
    num_stages: int = 3
    split_k: int = 1
    group_m: int = 8


def matmul_config(m_bucket: int, n: int, k: int, dtype: str, num_sms: int = NUM_SMS,
                  weight_bytes: float | None = None) -> MatmulConfig:
    """Heuristic tile choice for M bucket (1, 16, 64 or 0 = larger), B [n, k] of `dtype`
    (weight_bytes: bytes per weight when B is packed: 0.5 for int4, 1 for int8 / fp8).

    Decode (M == 1) streams the weight: each program takes 2 rows and 4096 bytes of each per
    iteration (16-byte loads, 4 warps), so N/2 small programs keep many loads in flight on every SM.
    Measured on an H100 with bench/kernels/gemv_graph_sweep.py (bench/results/gemv-graph-sweep-h100.json):
    best or within 10% of the best of 18-31 configs on every TinyLlama and Llama-3-8B layer shape.
    Split-K only when N cannot fill the machine. Prefill: 128x128x64 bf16/f16 tiles (8 warps, 3
    stages), smaller for small M, 64x64x32 float32.
    """
    esize = ELEM_BYTES.get(dtype, 4)
    kp2 = next_pow2(max(k, 16))
    if m_bucket in (1, 16):
        if m_bucket == 1 and weight_bytes is not None and weight_bytes < 2:
            # packed weights: 2048 weights of a row per chunk; int4 4 rows a program, int8 / fp8 rows
            # growing with N while >= ~1280 programs remain (bench/kernels/gemv_graph_sweep.py --quant)
            block_k = min(2048, kp2)
            block_n = 4 if weight_bytes < 1 else min(4, max(1, 1 << max(0, (n // 1280).bit_length() - 1)))
            block_m, warps, stages = 1, 4, 3
        elif m_bucket == 1:
            block_k = min(4096 // esize, kp2)
            block_n = max(1, 4096 // block_k)
            block_m, warps, stages = 1, 4, 3
            if k > block_k and k % block_k:
                # a ragged last chunk (TinyLlama's down projection, K 5632): 4 rows and 8 warps took
                # 10.03 us against 11.03 for 2 rows and 4 warps; every K that is a multiple of the chunk
                # was best at 2 rows (bench/results/gemv-graph-sweep-h100.json)
                block_n, warps = 4, 8
        else:
            block_k = min(256 if esize == 2 else 128, max(kp2, 16))
            block_n = 64 if n >= 16384 else 32 if n >= 8192 else 16
            block_m, warps, stages = 16, 4, 4
        programs = -(-n // block_n)
        split = 1
        # split K only when N cannot fill the machine and every split keeps >= 2 full chunks
        while programs * split < num_sms and k % (block_k * split * 2) == 0 and k // (split * 2) >= 2 * block_k:
            split *= 2
        return MatmulConfig("gemv", block_m, block_n, block_k, warps, stages, split)
    if esize == 4:
        return MatmulConfig("gemm", 32 if m_bucket == 64 else 64, 64, min(32, kp2), 4, 2)
    if m_bucket == 64:
        return MatmulConfig("gemm", 64, 64 if n < 8192 else 128, min(128, kp2), 4, 4)
    return MatmulConfig("gemm", 128, 128, min(64, kp2), 8, 3)
