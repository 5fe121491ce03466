"""C++ paged kv_store and attention (float32) against the Graph IR interpreter: a shuffled,
non-contiguous block table, 9 heads over 3 kv heads, head_dim 64, 5-row blocks, lengths that are
not multiples of the block size; decode steps and packed / continued prefill chunks."""
from __future__ import annotations

import pytest
import torch

from braze.ir.interpret import interpret
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable
from paged_graphs import CASES, build, feeds_for, shuffled_table  # tests/support


def run(graph, feeds):
    exe = Executable(lower(graph), "cpp")
    feeds = {k: v.clone() for k, v in feeds.items()}
    out = exe.run(feeds)["out"].clone()
    return out, feeds["cache"]


@pytest.mark.parametrize("case", list(CASES))
def test_paged_attention_matches_interpreter(case):
    slots, positions = CASES[case]
    graph = build(9, 3, 64, 40, 5, 3, 8, "float32")
    feeds = feeds_for(graph, slots, positions, shuffled_table(3, 8, 40), "float32")
    got, _ = run(graph, feeds)
    torch.testing.assert_close(got, interpret(graph, feeds)["out"], rtol=1e-5, atol=1e-5)


def test_paged_kv_store_then_attention():
    # a chunk continuing sequence 1 across a block boundary and a new prompt in sequence 2; the
    # store must touch exactly the rows the interpreter's does (the rest of the pool stays as it was)
    slots, positions = [1] * 6 + [2] * 3, list(range(9, 15)) + [0, 1, 2]
    graph = build(9, 3, 64, 40, 5, 3, 8, "float32", store=True)
    feeds = feeds_for(graph, slots, positions, shuffled_table(3, 8, 40, seed=1), "float32")
    want = interpret(graph, feeds)
    got, cache = run(graph, feeds)
    torch.testing.assert_close(cache, want["cache"], rtol=0, atol=0)
    torch.testing.assert_close(got, want["out"], rtol=1e-5, atol=1e-5)


def test_int64_block_table_and_long_context():
    # an int64 table; a 97-row context (20 blocks, the last one partial) read in chunks of 32 rows
    graph = build(4, 2, 16, 45, 5, 2, 20, "float32", table_dtype="int64")
    feeds = feeds_for(graph, [0, 1, 1], [96, 50, 0], shuffled_table(2, 20, 45, seed=2).long(), "float32")
    got, _ = run(graph, feeds)
    torch.testing.assert_close(got, interpret(graph, feeds)["out"], rtol=1e-5, atol=1e-5)


def test_block_table_dtype_is_checked():
    from braze.ir.ops import ShapeError
    with pytest.raises(ShapeError, match="block table is float32"):
        build(4, 2, 16, 30, 5, 2, 20, "float32", table_dtype="float32")
