"""Batch-invariant launch choices for the Triton matmul and attention kernels.

A kernel is batch invariant when the bits of one row's result do not depend on how many other
rows share the step. The default launchers break that on purpose for speed: the matmul picks a
GEMV (M == 1), a split-K tl.dot GEMV (M <= 16) or cuBLAS (larger M, whose algorithm depends on M),
and attention picks split-KV decode with a split count from T and the SM count, or flash prefill
tiles, by the step's token count. Each sums a row's products in a different order.

In batch-invariant mode (a kernel with attr `batch_invariant`, set by
braze.passes.batch_invariant.make_batch_invariant) the emitters use instead:

  matmul     KERNEL_gemm with ONE config for every M: fixed BLOCK_M/BLOCK_N/BLOCK_K, warps and
             stages (depending only on N, K and the dtype, all compile-time constants), no split-K,
             no library. A row's products then run through the same compiled kernel, the same MMA
             instruction shape and the same k-loop order whether the row is alone or one of 4096;
             the row reductions of a fused RMSNorm prologue fold over the same BLOCK_K chunks.
  attention  the split-KV decode kernel for every token, prefill included, with splits of a fixed
             number of cache rows (never derived from T or the SM count): a token's result depends
             only on its own context (its splits, each an online softmax over BN-row chunks from
             the split's start, merged in split order by a fixed-size combine).

Pointwise kernels and row reductions (simple.py) use one config for every T already.
"""
from __future__ import annotations

from braze.codegen.triton.indexing import next_pow2

NUM_SMS = 132  # H100 SXM: BLOCK_N is chosen so a one-row step still has about this many programs
# (BLOCK_M, BLOCK_K, num_warps, num_stages) of 16-bit weights and of float32 ones; module constants
# so that a sweep can set them before LLM(...) compiles (they are baked into the program's source)
TILES_16BIT = (64, 64, 4, 4)
TILES_FLOAT32 = (32, 32, 4, 2)

# attention: context rows per split. A compile-time constant of the program (it may grow with the
# cache's context bound so that at most INVARIANT_MAX_SPLITS partials are kept per token).
INVARIANT_SPLIT_ROWS = 256
INVARIANT_MAX_SPLITS = 16


def invariant_matmul_config(n: int, k: int, dtype: str):
    """The one MatmulConfig of a batch-invariant matmul with weight [n, k] of `dtype`.

    BLOCK_M 64 with 4 warps is one Hopper warpgroup MMA (m64); a one-row decode step wastes the
    tile's other rows' math, but is bound by the weight's bytes, so what matters there is the
    number of programs streaming the weight: BLOCK_N shrinks for small N so that cdiv(N, BLOCK_N)
    stays near the SM count. float32 uses input_precision="ieee" (no tensor cores): 32x32x32 tiles.
    """
    from braze.codegen.triton.matmul import MatmulConfig
    kp2 = next_pow2(max(k, 16))
    if dtype == "float32":
        block_m, block_k, warps, stages = TILES_FLOAT32
        return MatmulConfig("gemm", block_m, 32, min(block_k, kp2), warps, stages, 1, 8)
    block_m, block_k, warps, stages = TILES_16BIT
    block_n = 64 if n >= 64 * NUM_SMS else 32 if n >= 32 * NUM_SMS // 2 else 16
    return MatmulConfig("gemm", block_m, block_n, min(block_k, kp2), warps, stages, 1, 8)


def invariant_split_rows(context_bound: int, block_n: int) -> int:
    """Rows per attention split for a cache of `context_bound` rows a sequence: a multiple of the
    decode kernel's chunk (BN), at least INVARIANT_SPLIT_ROWS, at most INVARIANT_MAX_SPLITS splits."""
    rows = max(INVARIANT_SPLIT_ROWS, next_pow2(-(-context_bound // INVARIANT_MAX_SPLITS)))
    return -(-rows // block_n) * block_n
