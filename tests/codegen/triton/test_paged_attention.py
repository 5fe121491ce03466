"""Triton paged attention and paged kv_store against the Graph IR interpreter.

The cache is a pool of blocks read through a shuffled, non-contiguous block table; sizes are odd
on purpose (9 heads over 3 kv heads, blocks of 5 rows, lengths that are not multiples of the block
size). CPU runs use Triton's interpreter in float32 and float16; @pytest.mark.gpu runs bfloat16 at
realistic sizes. Every case runs on both launch paths (split-KV decode, chunked prefill).
"""
from __future__ import annotations

import math
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

triton = pytest.importorskip("triton")

from braze.codegen.triton import compile_program  # noqa: E402
from braze.codegen.triton import paged_attention as paged_mod  # noqa: E402
from braze.ir.interpret import attention_reference, interpret  # noqa: E402
from braze.passes.pipeline import lower  # noqa: E402
from braze.runtime.executable import Executable  # noqa: E402

from paged_graphs import CASES, build, feeds_for, shuffled_table  # noqa: E402  (tests/support)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {"float32": dict(rtol=1e-4, atol=1e-4), "float16": dict(rtol=1e-2, atol=1e-2),
       "bfloat16": dict(rtol=2e-2, atol=2e-2)}


pytestmark = pytest.mark.usefixtures("fresh_braze_cache")  # tests/conftest.py


_COMPILED = {}


def compiled(key, graph, **knobs):
    """Lower and compile with paged_attention.py's knobs overridden (they are baked in at emit)."""
    key = (key, tuple(sorted(knobs.items())))
    if key not in _COMPILED:
        old = {name: getattr(paged_mod, name) for name in knobs}
        for name, value in knobs.items():
            setattr(paged_mod, name, value)
        try:
            program = lower(graph)
            _COMPILED[key] = (program, compile_program(program))
        finally:
            for name, value in old.items():
                setattr(paged_mod, name, value)
    return _COMPILED[key]


def run_triton(program, tp, feeds):
    """One step; returns (output rows, the updated cache) on the CPU. Feeds are not modified."""
    exe = Executable(program, backend="reference")
    dev_feeds = {k: v.to(DEVICE, copy=True) for k, v in feeds.items()}
    exe.buffers = {k: v.to(DEVICE) for k, v in exe.buffers.items()}
    exe.device = torch.device(DEVICE)
    flat, symbols = exe._bind(dev_feeds)
    tp.run([flat[b.name] for b in program.buffers], symbols)
    buf = dict(program.outputs)["out"]
    rows = flat[buf][: symbols["T"] * program.buffer(buf).shape[1]].view(symbols["T"], -1).cpu()
    return rows, dev_feeds["cache"].cpu()


PATHS = {"decode": dict(DECODE_MAX_T=10 ** 6), "prefill": dict(DECODE_MAX_T=0)}


def check(h, hkv, d, block, slots, positions, dtype, num_blocks=40, seqs=3, blocks_per_seq=8, store=False,
          paths=("decode", "prefill"), **knobs):
    graph = build(h, hkv, d, num_blocks, block, seqs, blocks_per_seq, dtype, t_bound=max(128, len(slots)), store=store)
    table = shuffled_table(seqs, blocks_per_seq, num_blocks)
    feeds = feeds_for(graph, slots, positions, table, dtype)
    want = interpret(graph, feeds)
    for path in paths:
        program, tp = compiled((h, hkv, d, block, dtype, num_blocks, seqs, blocks_per_seq, store), graph,
                               **PATHS[path], **knobs)
        got, cache = run_triton(program, tp, feeds)
        torch.testing.assert_close(got.float(), want["out"].float(), **TOL[dtype], msg=lambda m: f"{path}: {m}")
        if store:
            torch.testing.assert_close(cache, want["cache"], rtol=0, atol=0)


def test_reference_reads_the_blocks_a_dense_cache_would_hold():
    """The interpreter's paged attention equals dense attention over each sequence's blocks laid end to end."""
    h, hkv, d, block, bps = 4, 2, 8, 3, 5
    graph = build(h, hkv, d, 20, block, 2, bps, "float32")
    table = shuffled_table(2, bps, 20, seed=3)
    slots, positions = [1, 0, 1], [13, 4, 0]
    feeds = feeds_for(graph, slots, positions, table, "float32")
    dense = feeds["cache"][table.long()].permute(0, 2, 1, 3, 4).reshape(2, 2 * hkv, bps * block, d)
    q = feeds["qkv"][:, : h * d]
    want = attention_reference(q, dense[:, :hkv], dense[:, hkv:], torch.tensor(slots), torch.tensor(positions),
                               h, hkv, d, 1 / math.sqrt(d))
    torch.testing.assert_close(interpret(graph, feeds)["out"], want)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", list(CASES))
def test_paged_attention_gqa_odd_sizes(case, dtype):
    slots, positions = CASES[case]
    check(9, 3, 64, 5, slots, positions, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_paged_kv_store_then_attention(dtype):
    # the step's k|v are written through the block table first, then read back by attention
    check(9, 3, 64, 5, [1] * 6 + [2] * 3, list(range(9, 15)) + [0, 1, 2], dtype, store=True)


def test_decode_splits_are_combined():
    # 7-row splits: a 38-row context spans 6 of them (and the short tokens leave splits empty)
    check(9, 3, 64, 5, [2, 0, 1], [0, 7, 38], "float32", paths=("decode",), SPLIT_ROWS=7, DECODE_BN=16)


def test_prefill_tiles_straddle_sequences():
    # 16-row query tiles over three packed sequences, 16-row key chunks over 5-row blocks (16: a
    # compiled tl.dot needs every dim >= 16, so smaller chunks run only in the interpreter)
    slots = [0] * 20 + [2] * 13 + [1] * 4
    positions = list(range(10, 30)) + list(range(13)) + list(range(30, 34))
    check(6, 2, 16, 5, slots, positions, "float32", paths=("prefill",), PREFILL_BM=16, PREFILL_BN=16)


# ---------------------------------------------------------------- GPU, realistic sizes

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("path,block", [("decode", 16), ("prefill", 16), ("decode", 32)])
def test_gpu_bfloat16(path, block):
    h, hkv, d, seqs, context = 32, 8, 128, 8, 2048
    bps = context // block
    if path == "decode":
        slots, positions = list(range(seqs)), [2047 - 211 * i for i in range(seqs)]
    else:  # a 300-token chunk continuing from 1500, then a 212-token prompt
        slots, positions = [3] * 300 + [5] * 212, list(range(1500, 1800)) + list(range(212))
    check(h, hkv, d, block, slots, positions, "bfloat16", num_blocks=seqs * bps + 7, seqs=seqs,
          blocks_per_seq=bps, store=True, paths=(path,))
