"""braze/codegen/triton/fp8_gemm.py: the e4m3 GEMM with the residual added in its epilogue, against
the float32 product of the same e4m3 values (Triton's interpreter without a GPU)."""
from __future__ import annotations

import pytest
import torch

from tests.codegen.triton.conftest import DEVICE


def _fp8_ready():
    if DEVICE == "cuda" and torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("needs a GPU with fp8 (sm_89+)")


def _e4m3_rows(x: torch.Tensor):
    scale = (x.abs().amax(dim=1, keepdim=True) / 448.0).clamp(min=1e-12)
    return (x / scale).to(torch.float8_e4m3fn), scale


@pytest.mark.parametrize("k,config", [(256, (32, 32, 64, 4, 2)), (200, (32, 64, 64, 4, 2))])
@pytest.mark.parametrize("in_place", [False, True])
def test_fp8_mm_add_matches_the_float_product_plus_residual(k, config, in_place):
    """Odd M and N (clamped operand rows, masked stores), K a multiple of BLOCK_K or not (masked K
    tail), and the residual read from the buffer the sum is written to (a residual stream updated in
    place)."""
    _fp8_ready()
    from braze.codegen.triton.fp8_gemm import fp8_mm_add
    gen = torch.Generator().manual_seed(0)
    m, n = 70, 90
    a8, s_a = _e4m3_rows(torch.randn(m, k, generator=gen) * 3)
    w8, s_w = _e4m3_rows(torch.randn(n, k, generator=gen))
    res = torch.randn(m, n, generator=gen).half()
    want = (a8.float() * s_a) @ (w8.float() * s_w).t() + res.float()
    a8, s_a, w8, s_w, res = (t.to(DEVICE) for t in (a8, s_a, w8, s_w.view(-1), res))
    out = res if in_place else torch.full_like(res, float("nan"))
    fp8_mm_add(a8, s_a, w8, s_w, res, out, config)
    err = ((out.float().cpu() - want).abs().max() / want.abs().max()).item()
    assert err < 2e-3, err  # float16 output rounding


def test_fp8_mm_add_names_a_wrong_layout():
    from braze.codegen.triton.fp8_gemm import fp8_mm_add
    a8 = torch.zeros(4, 32).to(torch.float8_e4m3fn)
    w8 = torch.zeros(32, 8).to(torch.float8_e4m3fn).t()  # [8, 32] column-major
    with pytest.raises(ValueError, match="w8 must be row-major"):
        fp8_mm_add(a8, torch.ones(4, 1), w8, torch.ones(8), torch.zeros(4, 8), torch.zeros(4, 8))
