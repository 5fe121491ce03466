"""SmolLM2 (the embedded model) through the paged graph gives the slot graph's greedy tokens (C++,
float32): two prompts prefilled together in chunks, then decoded together, the paged run reading
and writing its cache through shuffled block tables that the block manager hands out."""
from __future__ import annotations

import random

import pytest
import torch

from braze.frontend import load_model
from braze.models.llama import PagedLayout, build_llama
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable
from braze.runtime.kv_blocks import BlockManager

CONTEXT, SEQS, STEP_TOKENS, NEW_TOKENS = 96, 2, 16, 12
LAYOUT = PagedLayout(num_blocks=24, block_size=8)


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2")


def greedy(loaded, paged: PagedLayout | None, prompts: list[list[int]]) -> list[list[int]]:
    """Chunked prefill of every prompt (STEP_TOKENS per step, several sequences per step), then
    batched greedy decode; the block table of a paged run comes from a BlockManager whose free
    list was shuffled, so no sequence's blocks are contiguous or in order."""
    graph = build_llama(loaded.config, loaded.weights, "float32", max_seqs=SEQS, context=CONTEXT,
                        max_tokens=STEP_TOKENS, paged=paged)
    exe = Executable(lower(graph), "cpp")
    caches = {b.name: torch.zeros(b.shape) for b in exe.program.buffers if b.kind == "state"}
    blocks = None
    if paged is not None:
        blocks = BlockManager(paged.num_blocks, paged.block_size, prefix_caching=False)
        random.Random(0).shuffle(blocks.free_list)
        table = torch.zeros((SEQS, paged.blocks_per_sequence(CONTEXT)), dtype=torch.int32)
    seqs = [list(p) for p in prompts]
    done = [0] * SEQS  # tokens of each sequence in the cache

    def step(rows: list[tuple[int, int, int]]) -> torch.Tensor:  # (sequence, start, count)
        tokens, positions, slots, last = [], [], [], []
        for s, start, count in rows:
            tokens += seqs[s][start:start + count]
            positions += range(start, start + count)
            slots += [s] * count
            last.append(len(tokens) - 1)
            if blocks is not None:
                assert blocks.allocate(s, count)
                ids = blocks.block_table(s)
                table[s, : len(ids)] = torch.tensor(ids, dtype=torch.int32)
            done[s] = start + count
        feeds = {"tokens": torch.tensor(tokens), "positions": torch.tensor(positions),
                 "slots": torch.tensor(slots), "logits_index": torch.tensor(last), **caches}
        if blocks is not None:
            feeds["block_table"] = table
        return exe.run(feeds)["logits"]

    while any(done[s] < len(prompts[s]) for s in range(SEQS)):  # chunked prefill, prompts packed
        rows, budget = [], STEP_TOKENS
        for s in range(SEQS):
            count = min(len(prompts[s]) - done[s], budget)
            if count > 0:
                rows.append((s, done[s], count))
                budget -= count
        logits = step(rows)
        for (s, start, count), row in zip(rows, logits):
            if start + count == len(prompts[s]):
                seqs[s].append(int(row.argmax()))
    for _ in range(NEW_TOKENS - 1):  # decode both together
        logits = step([(s, len(seqs[s]) - 1, 1) for s in range(SEQS)])
        for s in range(SEQS):
            seqs[s].append(int(logits[s].argmax()))
    return [seq[len(p):] for seq, p in zip(seqs, prompts)]


def test_smollm2_paged_graph_equals_slot_graph(smollm2):
    prompts = [smollm2.tokenizer.encode(text) for text in
               ["The capital of France is", "def fibonacci(n):\n    if n < 2:\n        return n\n    return"]]
    slot = greedy(smollm2, None, prompts)
    paged = greedy(smollm2, LAYOUT, prompts)
    assert paged == slot
    assert all(len(out) == NEW_TOKENS for out in paged)
