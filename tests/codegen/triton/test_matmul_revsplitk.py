"""The int4 and int8 decode GEMVs in the generated revsplitK form (braze/codegen/triton/matmul_revsplitk.py,
BRAZE_INT4_REVSPLITK=1, BRAZE_INT8_REVSPLITK=1) against the Kernel IR interpreter, on the GPU or, on a
machine without one, in Triton's interpreter: an MLP block's three fusions (RMSNorm before gate|up, SiLU*mul before down with the
residual after it) and a plain prologue, at an odd N (masked column tiles) and a K that the
program's K slice does not divide (a ragged last slice). Prompt rows (3, 17) take the other paths."""
import os

import pytest
import torch

from braze.ir.builder import GraphBuilder
from braze.passes.pipeline import lower
from braze.quant.methods import parse_method
from braze.runtime.executable import Executable

pytest.importorskip("triton")
HIDDEN, FFN = 96, 80  # FFN: K of the down projection, not a multiple of the 64 weights a program takes


def _mlp(method: str, dtype: str):
    gen = torch.Generator().manual_seed(0)
    t = getattr(torch, dtype)
    b = GraphBuilder(symbols={"T": 32})
    x = b.input("x", ("T", HIDDEN), dtype)
    h = b.rms_norm(x, b.weight("norm", (torch.rand(HIDDEN, generator=gen) + 0.5).to(t)), 1e-5)
    gate = b.matmul(h, b.transpose(b.weight("gate.weight", torch.randn(FFN, HIDDEN, generator=gen).to(t))))
    up = b.matmul(h, b.transpose(b.weight("up.weight", torch.randn(FFN, HIDDEN, generator=gen).to(t))))
    act = b.mul(b.silu(gate), up)
    down = b.matmul(act, b.transpose(b.weight("down.weight", (torch.randn(HIDDEN - 3, FFN, generator=gen) / 8).to(t))))
    plain = b.matmul(x, b.transpose(b.weight("plain.weight", torch.randn(37, HIDDEN, generator=gen).to(t))))
    y = b.add(b.slice(x, 1, 0, HIDDEN - 3), down)
    return lower(b.build({"y": y, "plain": plain}), quant=parse_method(method))


@pytest.fixture
def revsplitk(monkeypatch, triton_device):
    from braze.codegen.triton import matmul_revsplitk
    monkeypatch.setattr(matmul_revsplitk, "INT4_REVSPLITK", True)
    monkeypatch.setattr(matmul_revsplitk, "INT8_REVSPLITK", True)
    monkeypatch.setattr(matmul_revsplitk, "BLOCK_K", 16)  # group 32 and 64 both hold whole chunks
    monkeypatch.setattr(matmul_revsplitk, "STEPS", 4)
    monkeypatch.setattr(matmul_revsplitk, "BLOCK_N", 32)
    return triton_device


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float16", 3e-3)])
@pytest.mark.parametrize("method", ["int4-rtn-g32", "int4-rtn-g64-sym", "int8"])
def test_revsplitk_gemvs_match_the_interpreter(revsplitk, method, dtype, tol):
    from braze.codegen.triton import emit_module
    program = _mlp(method, dtype)
    source = emit_module(program)
    assert source.count("_revsplitk[(tiles") == sum(1 for k in program.kernels if k.attr("quant")) >= 3
    for rows in (1, 3, 17):  # revsplitK, then the M <= 16 GEMV and the fused GEMM
        x = torch.randn(rows, HIDDEN, generator=torch.Generator().manual_seed(rows)).to(getattr(torch, dtype))
        ref = Executable(program, backend="reference").run({"x": x})
        exe = Executable(program, backend="triton", device=revsplitk)
        for _ in range(2):  # the second run relies on the first leaving the workspace and tickets zero
            out = exe.run({"x": x.to(revsplitk)})
            for name in ref:
                err = (out[name].float().cpu() - ref[name].float()).abs().max() / ref[name].float().abs().max()
                assert err < tol, (name, rows, err.item())


def test_revsplitk_settings_per_format_and_by_weight_size(monkeypatch):
    from braze.codegen.triton import emit_module, matmul_revsplitk
    from braze.codegen.triton.settings import auto_setting
    from braze.errors import InvalidArgumentError
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # only emits source
    assert matmul_revsplitk.INT4_REVSPLITK == os.environ.get("BRAZE_INT4_REVSPLITK", "auto")
    assert matmul_revsplitk.INT8_REVSPLITK == os.environ.get("BRAZE_INT8_REVSPLITK", "0")
    for int4, int8 in ((False, False), (True, False), (False, True)):
        monkeypatch.setattr(matmul_revsplitk, "INT4_REVSPLITK", int4)
        monkeypatch.setattr(matmul_revsplitk, "INT8_REVSPLITK", int8)
        assert ("_revsplitk" in emit_module(_mlp("int4-rtn-g32", "float32"))) == int4
        assert ("_revsplitk" in emit_module(_mlp("int8", "float32"))) == int8
        assert "_revsplitk" not in emit_module(_mlp("fp8", "float32"))
    # auto: only weights of AUTO_MIN_WEIGHTS or more (here gate|up, 160 x 96; not down, 93 x 80, nor plain, 37 x 96)
    monkeypatch.setattr(matmul_revsplitk, "INT4_REVSPLITK", "auto")
    monkeypatch.setattr(matmul_revsplitk, "AUTO_MIN_WEIGHTS", 160 * 96)
    assert emit_module(_mlp("int4-rtn-g32", "float32")).count("_revsplitk[(tiles") == 1
    monkeypatch.setattr(matmul_revsplitk, "AUTO_MIN_WEIGHTS", 160 * 96 + 1)
    assert "_revsplitk" not in emit_module(_mlp("int4-rtn-g32", "float32"))
    monkeypatch.setenv("BRAZE_INT4_REVSPLITK", "yes")
    with pytest.raises(InvalidArgumentError, match="BRAZE_INT4_REVSPLITK='yes': use 1"):
        auto_setting("BRAZE_INT4_REVSPLITK", "auto")


def test_tile_settings_parse_or_name_the_form(monkeypatch):
    from braze.codegen.triton.settings import tile_setting
    from braze.errors import InvalidArgumentError
    monkeypatch.delenv("BRAZE_REVSPLITK_TILE", raising=False)
    assert tile_setting("BRAZE_REVSPLITK_TILE", (512, 32, 2, 4), "BLOCK_N,BLOCK_K,STEPS,WARPS") == (512, 32, 2, 4)
    monkeypatch.setenv("BRAZE_REVSPLITK_TILE", "256,32,1,8")
    assert tile_setting("BRAZE_REVSPLITK_TILE", (512, 32, 2, 4), "BLOCK_N,BLOCK_K,STEPS,WARPS") == (256, 32, 1, 8)
    for bad in ("1,2", "256,32,x,8", "256,0,1,8"):
        monkeypatch.setenv("BRAZE_REVSPLITK_TILE", bad)
        with pytest.raises(InvalidArgumentError, match="give 4 positive integers, BLOCK_N,BLOCK_K,STEPS,WARPS"):
            tile_setting("BRAZE_REVSPLITK_TILE", (512, 32, 2, 4), "BLOCK_N,BLOCK_K,STEPS,WARPS")
