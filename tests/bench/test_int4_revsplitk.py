"""The K-major revsplitK int4 GEMV (braze/codegen/triton/gemv_revsplitk.py, timed by
bench/kernels/int4_gemv_variants.py) against dequantize-then-matmul.

Without a GPU it runs in Triton's interpreter, in float16 / float32 (the interpreter's bfloat16
math is unreliable). Odd N (200) exercises the column masks, K = 384 with 256 weights a program
a ragged last program, group 64 a group smaller than the other case's.
"""
from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest.importorskip("triton")

from braze.codegen.triton.gemv_revsplitk import (RevSplitKConfig, gemv_revsplitk,  # noqa: E402
                                                 gemv_revsplitk_cast, repack_kmajor)
from braze.quant.formats import quantize_int4, unpack_int4  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CONFIGS = [RevSplitKConfig(64, 16, 2, magic=True),    # 2 word rows a chunk, 4 column programs
           RevSplitKConfig(128, 64, 4, magic=False),  # int->float conversions; K=384: ragged
           RevSplitKConfig(256, 32, 1, magic=True)]   # one column program, masked past N


def case(k, group, n, zero_point, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = quantize_int4(torch.randn(n, k, generator=gen), group, zero_point=zero_point)
    x = torch.randn(k, generator=gen).to(dtype)
    ref = x.float() @ q.dequantize().T
    return q, x.to(DEVICE), ref


def rel(got, ref):
    return ((got.float().cpu() - ref).abs().max() / ref.abs().max()).item()


def kmajor(q):
    wt = repack_kmajor(q.packed, q.scales, q.mins, q.group)
    return type(wt)(wt.words.to(DEVICE), wt.scales.to(DEVICE), None if wt.mins is None else wt.mins.to(DEVICE),
                    wt.group, wt.n, wt.k)


def test_repack_puts_weight_8r_plus_i_in_nibble_i_of_word_r():
    q, _, _ = case(64, 32, 5, True, torch.float32)
    wt = repack_kmajor(q.packed, q.scales, q.mins, q.group)
    assert wt.words.shape == (8, 5) and wt.words.dtype == torch.int32 and wt.scales.shape == (2, 5)
    nibbles = torch.stack([(wt.words >> (4 * i)) & 15 for i in range(8)], dim=1).reshape(64, 5)
    assert torch.equal(nibbles.t().to(torch.uint8), unpack_int4(q.packed))
    assert torch.equal(wt.mins, q.mins.t())


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("zero_point", [True, False], ids=["mins", "symmetric"])
@pytest.mark.parametrize("k,group,n", [(256, 128, 200), (384, 64, 200)])
def test_gemv_matches_dequantized_matmul(k, group, n, zero_point, dtype):
    q, x, ref = case(k, group, n, zero_point, dtype)
    wt = kmajor(q)
    for cfg in CONFIGS:
        acc = torch.zeros(n, device=DEVICE)
        gemv_revsplitk(x, wt, acc, cfg)
        assert rel(acc, ref) < 1e-5, cfg


@pytest.mark.parametrize("magic", [True, False])
def test_unmasked_path_when_tiles_divide_the_shape(magic):
    q, x, ref = case(256, 128, 256, True, torch.float32, seed=1)
    acc = torch.zeros(256, device=DEVICE)
    gemv_revsplitk(x, kmajor(q), acc, RevSplitKConfig(128, 32, 2, magic=magic))  # EVEN_N and EVEN_K
    assert rel(acc, ref) < 1e-5


def test_cast_writes_the_model_dtype_and_leaves_the_workspace_zero():
    q, x, ref = case(384, 64, 200, True, torch.float16, seed=2)
    wt, ws = kmajor(q), torch.zeros(200, device=DEVICE)
    for _ in range(2):  # the second call relies on the first having re-zeroed ws
        out = torch.full((200,), float("nan"), device=DEVICE, dtype=torch.float16)
        gemv_revsplitk_cast(x, wt, ws, out, RevSplitKConfig(64, 32, 2), cast_block=64)
        assert out.dtype == torch.float16 and rel(out, ref) < 2e-3
        assert not ws.any()


def test_rejects_what_the_layout_cannot_hold():
    q, _, _ = case(256, 128, 8, True, torch.float32)
    with pytest.raises(ValueError, match="K % 8"):
        repack_kmajor(q.packed[:, :2].contiguous(), q.scales[:, :1], q.mins[:, :1], 4)
    with pytest.raises(ValueError, match="does not fit group"):
        gemv_revsplitk(torch.zeros(256), repack_kmajor(q.packed, q.scales, q.mins, 128), torch.zeros(8),
                       RevSplitKConfig(block_k=256))
