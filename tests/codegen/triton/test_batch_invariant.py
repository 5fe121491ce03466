"""Batch-invariant Triton kernels (braze/passes/batch_invariant.py, braze/codegen/triton/invariant.py).

Structure (CPU): the invariant matmul launcher runs one kernel with one config for every M, with
no branch on M, no split-K and no cuBLAS; attention (slot and paged cache) sends every token
through the decode kernel with splits of a fixed number of rows. Numbers (CPU, Triton's interpreter,
float32/float16): a row's result at M = 1 is the same bits as that row inside M = 37, and a
query's attention alone is the same bits as inside a mixed 37-token step. The interpreter is not
the GPU (tl.dot is numpy's matmul there): the @pytest.mark.gpu tests are the real proof, bf16 and
float32, rows alone vs inside batches of 2..64, and show that with the mode off the bits differ.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import replace

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

triton = pytest.importorskip("triton")

from braze.codegen.triton import compile_program  # noqa: E402
from braze.codegen.triton.invariant import invariant_matmul_config, invariant_split_rows  # noqa: E402
from braze.codegen.triton.module import emit_module  # noqa: E402
from braze.ir.builder import GraphBuilder  # noqa: E402
from braze.ir.interpret import TORCH_DTYPE, interpret  # noqa: E402
from braze.passes.batch_invariant import is_batch_invariant, make_batch_invariant  # noqa: E402
from braze.passes.pipeline import lower  # noqa: E402
from braze.runtime.executable import Executable  # noqa: E402

from paged_graphs import build as paged_graph, feeds_for, shuffled_table  # noqa: E402  (tests/support)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
K, N, EPS = 200, 120, 1e-5  # K not a multiple of any BLOCK_K: the masked k-loop runs too


pytestmark = pytest.mark.usefixtures("fresh_braze_cache")  # tests/conftest.py


def rand(shape, dtype, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale).to(TORCH_DTYPE[dtype])


def rms_linear_residual(dtype, k=K, n=N, t_bound=64):
    """y = x[:, :n] + rms_norm(x) @ W^T: a fused RMSNorm prologue and a residual epilogue."""
    b = GraphBuilder(symbols={"T": t_bound}, name="rms_linear_res")
    x = b.input("x", ("T", k), dtype)
    h = b.rms_norm(x, b.weight("norm", rand((k,), dtype, seed=1) + 1), EPS)
    y = b.matmul(h, b.transpose(b.weight("w", rand((n, k), dtype, 0.2, seed=2))))
    res = b.input("res", ("T", n), dtype)
    return b.build({"y": b.add(res, y)})


_PROGRAMS: dict = {}


def program_for(key, graph, invariant: bool):
    if (key, invariant) not in _PROGRAMS:
        program = lower(graph)
        _PROGRAMS[key, invariant] = make_batch_invariant(program) if invariant else program
    return _PROGRAMS[key, invariant]


def run(program, feeds) -> torch.Tensor:
    exe = Executable(program, backend="triton", device=DEVICE)
    (out,) = exe.run({k: v.to(DEVICE, copy=True) for k, v in feeds.items()}).values()
    return out.cpu().clone()


def launcher(source: str, kind: str) -> str:
    """The body of the (first) launch_ function whose kernel launches contain `kind`."""
    bodies = re.split(r"\ndef launch_", source)[1:]
    return next(b for b in bodies if kind in b)


# -- structure --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_matmul_launcher_has_one_config_for_every_m(dtype):
    graph = rms_linear_residual(dtype, k=2048, n=2560)
    default = launcher(emit_module(lower(graph)), "matmul_")
    assert "if M == 1" in default  # what the mode removes: a config per M bucket
    source = emit_module(make_batch_invariant(lower(graph)))
    body = launcher(source, "matmul_")
    launches = re.findall(r"(\w+)\[grid\]\((.*)\)", body)
    assert len(launches) == 1 and launches[0][0].endswith("_gemm"), body
    assert not re.search(r"if M (==|<=) [1-9]|elif|else:|torch\.mm|addmm|splitk|_workspace", body), body
    c = invariant_matmul_config(2560, 2048, dtype)
    assert f"BLOCK_M={c.block_m}, BLOCK_N={c.block_n}, BLOCK_K={c.block_k}" in body
    assert f"num_warps={c.num_warps}, num_stages={c.num_stages}" in body
    assert c.variant == "gemm" and c.split_k == 1
    assert "def matmul_" in source and "SPLIT_K" not in source  # no GEMV function emitted at all


def test_pass_tags_matmul_and_attention_and_drops_matmul_knobs():
    from braze.tune.knobs import Knobs
    graph = rms_linear_residual("float32")
    program = lower(graph)
    (mm,) = [k for k in program.kernels if k.kind == "matmul"]
    knobs = Knobs.of({1: ({"variant": "gemv", "block_m": 1, "block_n": 4, "block_k": 64, "num_warps": 4,
                           "num_stages": 3, "split_k": 2, "group_m": 8}, "db")})
    tuned = replace(program, kernels=tuple(k if k is not mm else replace(k, attrs=k.attrs + (("knobs", knobs),))
                                           for k in program.kernels))
    out = make_batch_invariant(tuned)
    assert not is_batch_invariant(tuned) and is_batch_invariant(out)
    (mm2,) = [k for k in out.kernels if k.kind == "matmul"]
    assert mm2.attr("batch_invariant") and mm2.attr("knobs") is None
    assert [k.attr("knobs") for k in tuned.kernels if k.kind == "matmul"] == [knobs]  # input untouched
    assert make_batch_invariant(out) == out


def slot_attention_graph(dtype, h=6, hkv=2, d=16, slots_n=4, ctx=700, t_bound=64):
    b = GraphBuilder(symbols={"T": t_bound}, name="attn")
    qkv = b.input("qkv", ("T", (h + 2 * hkv) * d), dtype)
    kc = b.input("k_cache", (slots_n, hkv, ctx, d), dtype)
    vc = b.input("v_cache", (slots_n, hkv, ctx, d), dtype)
    slots, pos = b.input("slots", ("T",), "int64"), b.input("positions", ("T",), "int64")
    out = b.attention(b.slice(qkv, 1, 0, h * d), kc, vc, slots, pos, h, hkv, d, 1.0 / math.sqrt(d))
    return b.build({"out": out})


def test_attention_launchers_use_fixed_splits_for_every_t():
    slot = emit_module(make_batch_invariant(lower(slot_attention_graph("float16"))))
    body = launcher(slot, "_braze_attn_")
    assert "_braze_attn_prefill[" not in body and "if T <=" not in body, body
    split = invariant_split_rows(700, 64)
    assert split % 64 == 0 and split >= 256
    assert f"SPLIT={split})" in body and f"[(T, 2, {-(-700 // split)})]" in body, body
    assert "_braze_sm_count" not in body  # the split count no longer depends on the device
    paged = emit_module(make_batch_invariant(lower(paged_graph(9, 3, 16, 30, 5, 3, 8, "float32"))))
    body = launcher(paged, "_braze_paged_")
    assert "_braze_paged_prefill[" not in body and "if T <=" not in body, body
    assert "_braze_paged_decode[(T, 3, 1)]" in body and "SPLIT=256" in body


# -- numbers under the interpreter --------------------------------------------------------------
def alone_equals_batch(program, feeds, rows, per_row) -> dict[int, bool]:
    """Run the whole step, then each of `rows` alone (the feeds in per_row cut to that row): the
    step's output and, per row, whether its result alone is the same bits."""
    batch = run(program, feeds)
    return batch, {r: torch.equal(run(program, {**feeds, **{k: feeds[k][r:r + 1] for k in per_row}})[0], batch[r])
                   for r in rows}


def check_modes(graph, key, feeds, rows, per_row, dtype, invariant, output="out"):
    program = program_for((key, dtype), graph, invariant)
    batch, equal = alone_equals_batch(program, feeds, rows, per_row)
    tol = 1e-4 if dtype == "float32" else 1e-2
    torch.testing.assert_close(batch.float(), interpret(graph, feeds)[output].float(), atol=tol, rtol=tol)
    if invariant:
        assert all(equal.values()), f"rows differing alone vs in the step: {[r for r, e in equal.items() if not e]}"
    else:  # the default kernels pick another reduction order for one row than for 37 (the interpreter
        assert not all(equal.values())  # is deterministic, so this is not luck)


MODES = [("float32", True), ("float16", True), ("float32", False)]


@pytest.mark.parametrize("dtype,invariant", MODES)
def test_matmul_row_alone_equals_row_in_a_batch_of_37(dtype, invariant):
    graph = rms_linear_residual(dtype)
    feeds = {"x": rand((37, K), dtype, seed=5), "res": rand((37, N), dtype, seed=6)}
    check_modes(graph, "mm", feeds, (0, 17, 36), ("x", "res"), dtype, invariant, output="y")


# a mixed 37-token step: a prompt chunk (slot 1, positions 300..319: the second split of 256 rows),
# two decode tokens (slot 0 at 530, slot 2 at 4), a new prompt (slot 3, positions 0..14)
MIXED_SLOTS = [1] * 20 + [0, 2] + [3] * 15
MIXED_POSITIONS = list(range(300, 320)) + [530, 4] + list(range(15))
TOKENS = (0, 19, 20, 21, 36)
PER_TOKEN = ("qkv", "slots", "positions")


@pytest.mark.parametrize("dtype,invariant", MODES)
def test_slot_attention_query_alone_equals_query_in_a_mixed_step(dtype, invariant):
    graph = slot_attention_graph(dtype)
    feeds = feeds_for(graph, MIXED_SLOTS, MIXED_POSITIONS, None, dtype)
    check_modes(graph, "attn", feeds, TOKENS, PER_TOKEN, dtype, invariant)


@pytest.mark.parametrize("dtype,invariant", MODES)
def test_paged_attention_query_alone_equals_query_in_a_mixed_step(dtype, invariant, monkeypatch):
    from braze.codegen.triton import paged_attention
    # by default a step of up to 128 tokens decodes; 16 here puts the 37-token step on the prefill
    # kernel with the mode off (a serving step past 128 tokens does the same on the GPU)
    monkeypatch.setattr(paged_attention, "DECODE_MAX_T", 16)
    # 9 heads over 3 kv heads, blocks of 5 rows, 4 sequences of up to 120 blocks (600 rows: 3 splits)
    graph = paged_graph(9, 3, 16, 480, 5, 4, 120, dtype, t_bound=64)
    feeds = feeds_for(graph, MIXED_SLOTS, MIXED_POSITIONS, None, dtype)
    feeds["block_table"] = shuffled_table(4, 120, 480)
    check_modes(graph, "paged", feeds, TOKENS, PER_TOKEN, dtype, invariant)


# -- GPU: the real proof (bf16 and float32 tensor-core kernels) ----------------------------------
BATCH_SIZES = (2, 3, 8, 16, 17, 33, 64)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("invariant", [True, False])
def test_gpu_matmul_row_alone_equals_row_in_batches_of_2_to_64(dtype, invariant):
    """TinyLlama's down projection shape (K 5632, N 2048) with a fused RMSNorm and a residual: one
    row alone, then at several places inside batches of 2..64 rows. With the mode off the M == 1
    GEMV, the M <= 16 tl.dot GEMV and cuBLAS past 16 rows sum in different orders."""
    k, n = 5632, 2048
    graph = rms_linear_residual(dtype, k=k, n=n, t_bound=64)
    program = program_for(("gpu-mm", dtype, k, n), graph, invariant)
    x, res = rand((1, k), dtype, seed=7), rand((1, n), dtype, seed=8)
    alone = run(program, {"x": x, "res": res})[0]
    differ = []
    for m in BATCH_SIZES:
        for place in sorted({0, m // 2, m - 1}):
            xs, rs = rand((m, k), dtype, seed=m), rand((m, n), dtype, seed=m + 100)
            xs[place], rs[place] = x[0], res[0]
            got = run(program, {"x": xs, "res": rs})[place]
            if not torch.equal(got, alone):
                differ.append((m, place))
    if invariant:
        assert not differ, f"(batch size, row) where the row differs from itself alone: {differ}"
    else:
        assert differ, "with the mode off some batch size should sum the row in another order"


GPU_H, GPU_HKV, GPU_D = 32, 4, 64  # TinyLlama's attention


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("paged", [False, True])
@pytest.mark.parametrize("invariant", [True, False])
def test_gpu_attention_query_alone_equals_query_in_a_mixed_step(dtype, paged, invariant):
    """A 200-token mixed step (past the paged kernel's 128-token decode limit): a prompt chunk at
    positions 300..459 (crossing a 256-row split), three decode tokens, a new 37-token prompt; five
    of its queries are run alone. Off, only the float32 outputs are asserted to differ (a bf16
    output may round both orders to the same value)."""
    slots = [1] * 160 + [0, 2, 3] + [3] * 37
    positions = list(range(300, 460)) + [900, 4, 700] + list(range(37))
    if paged:
        graph = paged_graph(GPU_H, GPU_HKV, GPU_D, 4 * 64, 16, 4, 64, dtype, t_bound=256)
    else:
        graph = slot_attention_graph(dtype, GPU_H, GPU_HKV, GPU_D, slots_n=4, ctx=1024, t_bound=256)
    feeds = feeds_for(graph, slots, positions, None, dtype)
    if paged:
        feeds["block_table"] = shuffled_table(4, 64, 4 * 64)
    program = program_for(("gpu-attn", dtype, paged), graph, invariant)
    batch, equal = alone_equals_batch(program, feeds, (0, 159, 160, 161, 199), PER_TOKEN)
    tol = 1e-4 if dtype == "float32" else 2e-2
    torch.testing.assert_close(batch.float(), interpret(graph, feeds)["out"].float(), atol=tol, rtol=tol)
    if invariant:
        assert all(equal.values()), f"tokens differing alone vs in the step: {[t for t, e in equal.items() if not e]}"
    elif dtype == "float32":
        assert not all(equal.values())
