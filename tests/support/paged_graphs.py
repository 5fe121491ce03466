"""Paged-attention test graphs shared by the C++ and Triton tests: attention of q (a column slice of
a fused qkv) over a paged k|v cache, as build_llama writes it, read through a shuffled block table."""
from __future__ import annotations

import math

import torch

from braze.ir.builder import GraphBuilder
from braze.ir.interpret import TORCH_DTYPE


def build(h, hkv, d, num_blocks, block, seqs, blocks_per_seq, dtype, t_bound=128, store=False,
          table_dtype="int32"):
    """With `store`, the step's k|v are first written into the cache by a paged kv_store (output `cache`)."""
    b = GraphBuilder(symbols={"T": t_bound}, name="paged_attn")
    qkv = b.input("qkv", ("T", (h + 2 * hkv) * d), dtype)
    cache = b.input("cache", (num_blocks, 2 * hkv, block, d), dtype)
    slots, pos = b.input("slots", ("T",), "int64"), b.input("positions", ("T",), "int64")
    table = b.input("block_table", (seqs, blocks_per_seq), table_dtype)
    outputs = {}
    if store:
        cache = b.kv_store(cache, b.slice(qkv, 1, h * d, (h + 2 * hkv) * d), slots, pos, table)
        outputs["cache"] = cache
    k, v = b.slice(cache, 1, 0, hkv), b.slice(cache, 1, hkv, 2 * hkv)
    outputs["out"] = b.attention(b.slice(qkv, 1, 0, h * d), k, v, slots, pos, h, hkv, d, 1.0 / math.sqrt(d), table)
    return b.build(outputs)


def shuffled_table(seqs, blocks_per_seq, num_blocks, seed=0):
    """Each sequence gets distinct blocks in random order, drawn from the whole pool."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(num_blocks, generator=g)[: seqs * blocks_per_seq].view(seqs, blocks_per_seq).to(torch.int32)


def feeds_for(graph, slots, positions, table, dtype, seed=0):
    """The step's slots and positions (and block table, unless None), every other input random."""
    g = torch.Generator().manual_seed(seed)
    feeds = {"slots": torch.tensor(slots), "positions": torch.tensor(positions)}
    if table is not None:
        feeds["block_table"] = table
    for node in graph.inputs:
        name = node.attr("name")
        if name not in feeds:
            shape = [len(slots) if s == "T" else s for s in node.shape]
            feeds[name] = torch.randn(shape, generator=g).to(TORCH_DTYPE[dtype])
    return feeds


# (slots, positions) per step kind
CASES = {
    "decode_3_seqs": ([2, 0, 1], [0, 7, 38]),
    # two prompts packed in one step: 7 tokens of sequence 1, then 5 of sequence 0
    "prefill_two_prompts": ([1] * 7 + [0] * 5, list(range(7)) + list(range(5))),
    # a chunk continuing sequence 2 from position 11 (a block boundary inside), then a new prompt
    "prefill_continued": ([2] * 6 + [0] * 3, list(range(11, 17)) + list(range(3))),
}
