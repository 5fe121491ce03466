"""Triton attention (braze/codegen/triton/attention.py) against attention_reference.

CPU runs use Triton's interpreter (TRITON_INTERPRET=1, set here when CUDA is absent) in float32
and float16; @pytest.mark.gpu tests run realistic bfloat16 shapes. Both launch paths are checked
on every case: the launcher picks split-KV decode for T <= DECODE_MAX_T and flash prefill above,
so each case runs once as compiled and once with DECODE_MAX_T forced to the other side.
"""
from __future__ import annotations

import math
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

triton = pytest.importorskip("triton")

from braze.codegen.triton import attention as attn_mod  # noqa: E402
from braze.codegen.triton import compile_program  # noqa: E402
from braze.ir.builder import GraphBuilder  # noqa: E402
from braze.ir.interpret import TORCH_DTYPE, attention_reference, interpret  # noqa: E402
from braze.passes.pipeline import lower  # noqa: E402
from braze.runtime.executable import Executable  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


pytestmark = pytest.mark.usefixtures("fresh_braze_cache")  # tests/conftest.py


def build(h, hkv, d, slots_n, ctx, dtype, t_bound=128, sliced=True):
    """attention over input caches; q is a column slice of a wider input when `sliced`."""
    b = GraphBuilder(symbols={"T": t_bound}, name="attn")
    if sliced:
        wide = b.input("qkv", ("T", (h + 2 * hkv) * d), dtype)
        q = b.slice(wide, 1, 0, h * d)
    else:
        q = b.input("q", ("T", h * d), dtype)
    kc = b.input("k_cache", (slots_n, hkv, ctx, d), dtype)
    vc = b.input("v_cache", (slots_n, hkv, ctx, d), dtype)
    slots, pos = b.input("slots", ("T",), "int64"), b.input("positions", ("T",), "int64")
    out = b.attention(q, kc, vc, slots, pos, h, hkv, d, 1.0 / math.sqrt(d))
    return b.build({"out": out})


def feeds_for(graph, h, hkv, d, slots, positions, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    feeds = {}
    for node in graph.inputs:
        name = node.attr("name")
        if name == "slots":
            feeds[name] = torch.tensor(slots, dtype=torch.int64)
        elif name == "positions":
            feeds[name] = torch.tensor(positions, dtype=torch.int64)
        else:
            shape = [len(slots) if s == "T" else s for s in node.shape]
            feeds[name] = torch.randn(shape, generator=g).to(TORCH_DTYPE[dtype])
    return feeds


_COMPILED = {}


def compiled(graph_key, graph, decode_max_t, **knobs):
    """Lower and compile with attention.py's tuning knobs overridden (they are baked in at emit)."""
    knobs["DECODE_MAX_T"] = decode_max_t
    key = (graph_key, tuple(sorted(knobs.items())))
    if key not in _COMPILED:
        old = {name: getattr(attn_mod, name) for name in knobs}
        for name, value in knobs.items():
            setattr(attn_mod, name, value)
        try:
            program = lower(graph)
            _COMPILED[key] = (program, compile_program(program))
        finally:
            for name, value in old.items():
                setattr(attn_mod, name, value)
    return _COMPILED[key]


def run_triton(program, tp, feeds):
    exe = Executable(program, backend="reference")
    dev_feeds = {k: v.to(DEVICE) for k, v in feeds.items()}
    exe.buffers = {k: v.to(DEVICE) for k, v in exe.buffers.items()}
    exe.device = torch.device(DEVICE)
    flat, symbols = exe._bind(dev_feeds)
    tp.run([flat[b.name] for b in program.buffers], symbols)
    (name, buf), = program.outputs
    return flat[buf][: symbols["T"] * program.buffer(buf).shape[1]].view(symbols["T"], -1).cpu()


TOL = {"float32": dict(rtol=1e-4, atol=1e-4), "float16": dict(rtol=1e-2, atol=1e-2),
       "bfloat16": dict(rtol=2e-2, atol=2e-2)}


def check(h, hkv, d, slots, positions, dtype, ctx=24, slots_n=3, sliced=True, paths=("decode", "prefill"), **knobs):
    graph = build(h, hkv, d, slots_n, ctx, dtype, sliced=sliced)
    feeds = feeds_for(graph, h, hkv, d, slots, positions, dtype)
    want = interpret(graph, feeds)["out"].float()
    for path in paths:
        program, tp = compiled((h, hkv, d, slots_n, ctx, dtype, sliced), graph,
                               10 ** 6 if path == "decode" else 0, **knobs)
        got = run_triton(program, tp, feeds).float()
        torch.testing.assert_close(got, want, **TOL[dtype], msg=lambda m: f"{path} path: {m}")


CASES = {
    "decode_3_slots": ([2, 0, 1], [0, 5, 17]),
    "t1_pos0": ([1], [0]),
    # two prompts packed in one batch: 7 tokens of slot 1, then 5 of slot 0
    "prefill_two_prompts": ([1] * 7 + [0] * 5, list(range(7)) + list(range(5))),
    # a chunk continuing slot 2 from position 9, then a new prompt in slot 0
    "prefill_continued": ([2] * 6 + [0] * 3, list(range(9, 15)) + list(range(3))),
}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", list(CASES))
def test_gqa_head_dim_12(case, dtype):
    slots, positions = CASES[case]
    check(6, 2, 12, slots, positions, dtype)


@pytest.mark.parametrize("case", ["decode_3_slots", "prefill_continued"])
def test_gqa_head_dim_64(case):
    slots, positions = CASES[case]
    check(6, 2, 64, slots, positions, "float32", ctx=20)


@pytest.mark.parametrize("mixed", [True, False])
def test_contiguous_q_mha_long_context(mixed):
    # MHA (group 1), q a whole input, contexts spanning several BN chunks and decode splits; the
    # uniform tile (one sequence continuing from 200) takes the unmasked-chunk fast path
    if mixed:
        slots, positions = [0] * 3 + [1] * 70, [150, 299, 7] + list(range(70))
    else:
        slots, positions = [1] * 73, list(range(200, 273))
    check(2, 2, 20, slots, positions, "float16", ctx=300, slots_n=2, sliced=False)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_decode_splits(dtype):
    # small decode blocks so a 300-row context is cut into several splits (and the shortest token
    # leaves some splits empty); the combine kernel must weigh them by their log-sum-exp
    check(4, 1, 20, [1, 0, 1], [299, 150, 20], dtype, ctx=300, slots_n=2, paths=("decode",),
          DECODE_BN=16, DECODE_MIN_ROWS_PER_SPLIT=16, DECODE_PROGRAMS_PER_SM=4)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("heavy_first", [0, 1])
@pytest.mark.parametrize("d", [12, 16])
def test_prefill_small_blocks(d, heavy_first, dtype):
    # several query tiles, each straddling sequences or not, with 16-row blocks (float16; float32
    # takes its own fixed 32-row tiles); heavy_first runs the tiles heads-major and last tile first
    slots = [0] * 20 + [2] * 30 + [1] * 5
    positions = list(range(40, 60)) + list(range(30)) + list(range(100, 105))
    check(6, 2, d, slots, positions, dtype, ctx=110, paths=("prefill",), PREFILL_BM=16, PREFILL_BN=16,
          PREFILL_HEAVY_FIRST=heavy_first)


@pytest.mark.parametrize("heavy_first", [0, 1])
@pytest.mark.parametrize("h,hkv", [(6, 2), (8, 2), (4, 4)])  # group 3 (padded to 4), 4, and 1 (no packing)
@pytest.mark.parametrize("case", ["prefill_two_prompts", "prefill_continued"])
def test_prefill_packs_the_query_heads_of_a_kv_head(case, h, hkv, heavy_first):
    # pack_gqa: a 16-row tile is 16 / GP tokens x the GP heads of one kv head, so tiles straddle
    # prompts and padded heads (group 3) are masked out
    slots, positions = CASES[case]
    check(h, hkv, 16, slots, positions, "float16", paths=("prefill",), PREFILL_BM=16, PREFILL_BN=16,
          PREFILL_PACK_GQA=1, PREFILL_HEAVY_FIRST=heavy_first)


def test_prefill_defaults_pack_power_of_two_groups_and_run_heaviest_tiles_first():
    from braze.codegen.triton.attention import PREFILL_LONG_PACKED, prefill_defaults
    tiles = ("block_m", "block_n", "num_warps", "num_stages")
    tinyllama = prefill_defaults(False, 64, None, group=8)  # a prompt of any length: the long-prompt tiles
    assert tuple(tinyllama[t] for t in tiles) == PREFILL_LONG_PACKED and tinyllama["pack_gqa"] == 1
    assert tinyllama["heavy_first"] == 1
    at_512 = prefill_defaults(False, 64, 512, group=8)
    assert (at_512["block_m"], at_512["pack_gqa"]) == (64, 1)
    qwen = prefill_defaults(False, 128, None, group=7)  # packing 7 heads would pad them to 8
    assert (qwen["block_m"], qwen["block_n"], qwen["pack_gqa"], qwen["heavy_first"]) == (64, 64, 0, 1)
    assert prefill_defaults(False, 64, None, group=1)["pack_gqa"] == 0


@pytest.mark.parametrize("case", ["prefill_two_prompts", "prefill_continued"])
def test_prefill_default_tiles_for_a_power_of_two_group(case):
    # no knobs: group 4 takes the packed long-prompt tiles, heaviest first
    slots, positions = CASES[case]
    check(8, 2, 16, slots, positions, "float16", paths=("prefill",))


# ---------------------------------------------------------------- GPU, realistic sizes

def _gpu_check(t, slots, positions):
    h, hkv, d, ctx = 32, 8, 128, 2048
    graph = build(h, hkv, d, 8, ctx, "bfloat16", t_bound=512, sliced=True)
    feeds = feeds_for(graph, h, hkv, d, slots, positions, "bfloat16")
    program, tp = compiled(("gpu", t), graph, attn_mod.DECODE_MAX_T)
    got = run_triton(program, tp, feeds).float()
    q = feeds["qkv"][:, : h * d].cuda()
    want = attention_reference(q.float(), feeds["k_cache"].cuda().float(), feeds["v_cache"].cuda().float(),
                               feeds["slots"].cuda(), feeds["positions"].cuda(), h, hkv, d, 1 / math.sqrt(d))
    torch.testing.assert_close(got, want.cpu().float(), **TOL["bfloat16"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("batch", [1, 8])
def test_gpu_decode(batch):
    slots = list(range(batch))
    positions = [2047 - 97 * i for i in range(batch)]
    _gpu_check(batch, slots, positions)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_prefill():
    # 512 tokens: a 300-token chunk of slot 3 continuing from 1500, then a 212-token prompt in slot 5
    slots = [3] * 300 + [5] * 212
    positions = list(range(1500, 1800)) + list(range(212))
    _gpu_check(512, slots, positions)
