"""An e4m3 GEMM that adds the residual in its epilogue, for fp8 prefill matmuls that have one (the
O and down projections).

`torch._scaled_mm` (cuBLASLt) has no matrix to add, so with it such a matmul writes its product
and a second kernel reads that and the residual to write the sum; bf16 prefill has cuBLAS add it
(`torch.addmm`). This kernel computes (a8 * s_a) @ (w8 * s_w)^T + res in one pass.

Measured against the pair (`bash bench/gpu_sweep.sh fp8res`, H100, 2048 tokens, 128x128x128 tiles,
4 warps, 3 stages): TinyLlama O (2048 x 2048) 26.4 -> 19.3 us, down (2048 x 5632) 42.7 -> 40.3 us;
Qwen2.5-7B O (3584 x 3584) 55.6 -> 54.6 us, but down (3584 x 18944) 210.0 -> 233.3 us. So by default
(BRAZE_FP8_FUSED_ADD=auto) it takes weights of up to AUTO_MAX_WEIGHTS (N x K); =1 every one, =0 none.
BRAZE_FP8_ADD_CONFIG="BM,BN,BK,warps,stages" sets its tiles.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from braze.codegen.triton.settings import auto_setting, setting_allows, tile_setting

FUSED_ADD = auto_setting("BRAZE_FP8_FUSED_ADD", "auto")  # tests set True / False too
AUTO_MAX_WEIGHTS = 16 << 20  # Qwen2.5-7B's O (12.8 M) won, its down (67.9 M) lost
CONFIG = tile_setting("BRAZE_FP8_ADD_CONFIG", (128, 128, 128, 4, 3), "BM,BN,BK,warps,stages")


def use_fused_add(n: int, k: int) -> bool:
    """Whether an [n, k] e4m3 weight's product takes its residual in this kernel's epilogue."""
    return setting_allows(FUSED_ADD, n * k <= AUTO_MAX_WEIGHTS)


@triton.jit
def fp8_mm_add_kernel(a_ptr, sa_ptr, w_ptr, sw_ptr, res_ptr, out_ptr, M, N, K, RES_ST, OUT_ST,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
                      EVEN_K: tl.constexpr):
    """out[M, N] = (a8[M, K] * s_a[M]) @ (w8[N, K] * s_w[N])^T + res[M, N], accumulated in float32;
    tiles ordered in groups of GROUP_M rows so neighbouring programs share weight tiles in L2."""
    pid = tl.program_id(0)
    tiles_m, tiles_n = tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N)
    in_group = GROUP_M * tiles_n
    first_m = (pid // in_group) * GROUP_M
    rows_in_group = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % in_group) % rows_in_group
    pid_n = (pid % in_group) // rows_in_group
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    rm_c = tl.minimum(rm, M - 1).to(tl.int64)  # clamped, not masked: the operand loads stay unmasked
    rn_c = tl.minimum(rn, N - 1).to(tl.int64)
    a_ptrs = a_ptr + rm_c[:, None] * K + rk[None, :]
    w_ptrs = w_ptr + rn_c[None, :] * K + rk[:, None]
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if EVEN_K:
            a, w = tl.load(a_ptrs), tl.load(w_ptrs)
        else:
            a = tl.load(a_ptrs, mask=(k0 + rk)[None, :] < K, other=0.0)
            w = tl.load(w_ptrs, mask=(k0 + rk)[:, None] < K, other=0.0)
        acc = tl.dot(a, w, acc)
        a_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    acc *= tl.load(sa_ptr + rm_c)[:, None] * tl.load(sw_ptr + rn_c)[None, :]
    mask = (rm < M)[:, None] & (rn < N)[None, :]
    rm64 = rm[:, None].to(tl.int64)
    acc += tl.load(res_ptr + rm64 * RES_ST + rn[None, :], mask=mask).to(tl.float32)
    tl.store(out_ptr + rm64 * OUT_ST + rn[None, :], acc.to(out_ptr.dtype.element_ty), mask=mask)


def fp8_mm_add(a8: torch.Tensor, s_a: torch.Tensor, w8: torch.Tensor, s_w: torch.Tensor, res: torch.Tensor,
               out: torch.Tensor, config: tuple[int, ...] = CONFIG) -> None:
    """out = (a8 * s_a) @ (w8 * s_w)^T + res. a8 [M, K] and w8 [N, K] e4m3 with unit inner strides
    (w8 may be a window of a larger buffer: its row stride must be K), s_a [M, 1], s_w [N] float32;
    res and out [M, N] with unit column strides."""
    M, K = a8.shape
    N = w8.shape[0]
    for name, t in (("a8", a8), ("w8", w8)):
        if t.stride() != (K, 1):
            raise ValueError(f"fp8_mm_add: {name} must be row-major [*, K] (strides {t.stride()})")
    if res.shape != (M, N) or out.shape != (M, N) or res.stride(1) != 1 or out.stride(1) != 1:
        raise ValueError(f"fp8_mm_add: res {tuple(res.shape)} and out {tuple(out.shape)} must be [{M}, {N}] "
                         "with unit column strides")
    bm, bn, bk, warps, stages = config
    grid = (triton.cdiv(M, bm) * triton.cdiv(N, bn),)
    fp8_mm_add_kernel[grid](a8, s_a, w8, s_w.contiguous(), res, out, M, N, K, res.stride(0), out.stride(0),
                            BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=8, EVEN_K=K % bk == 0,
                            num_warps=warps, num_stages=stages)
