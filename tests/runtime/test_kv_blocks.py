"""The paged cache's block manager: allocation and free accounting, prefix caching (shared prefix
reuse, eviction, never sharing a partial block), against a brute-force model of what the cache holds."""
from __future__ import annotations

import random

import pytest

from braze.errors import InvalidArgumentError
from braze.runtime.kv_blocks import BlockManager


def check_invariants(m: BlockManager) -> None:
    counts = [0] * m.num_blocks
    for state in m.sequences.values():
        assert len(state.blocks) == m.blocks_for(state.tokens)
        assert len(set(state.blocks)) == len(state.blocks)
        for b in state.blocks:
            counts[b] += 1
    assert counts == m.ref_counts
    free, evictable = set(m.free_list), set(m.evictable)
    held = {b for b, c in enumerate(counts) if c}
    assert len(free) == len(m.free_list) and not (free & evictable) and not (free & held) and not (evictable & held)
    assert free | evictable | held == set(range(m.num_blocks))
    assert evictable <= set(m.hash_of) and not (free & set(m.hash_of))
    assert {b: h for h, b in m.block_of.items()} == m.hash_of
    usage = m.usage()
    assert (usage.used, usage.cached, usage.free) == (len(held), len(evictable), len(free))


def test_allocate_and_free_accounting():
    m = BlockManager(num_blocks=10, block_size=4, prefix_caching=False)
    assert m.allocate("a", 5) and m.block_table("a") == [0, 1]
    assert m.allocate("a", 3) and len(m.block_table("a")) == 2  # 8 tokens: still two blocks
    assert m.allocate("a", 1) and len(m.block_table("a")) == 3
    assert m.allocate("b", 16) and len(m.block_table("b")) == 4
    assert m.usage().used == 7 and m.num_available == 3
    assert not m.can_allocate("c", 13) and not m.allocate("c", 13)  # 4 blocks > 3 left: nothing taken
    assert "c" not in m.sequences and m.num_available == 3
    assert m.can_allocate("a", 3 + 12)  # a's third block has 3 rows left, then 3 more blocks
    m.free("a")
    assert m.usage().used == 4 and m.num_available == 6
    check_invariants(m)
    m.free("a")  # freeing twice is harmless
    m.free("b")
    assert m.usage().free == 10
    check_invariants(m)


def test_bad_sizes_are_refused():
    with pytest.raises(InvalidArgumentError, match="at least one block"):
        BlockManager(0, 16)


def test_shared_prefix_is_reused_and_its_prefill_skipped():
    m = BlockManager(num_blocks=16, block_size=4)
    system = list(range(100, 110))  # 10 tokens: 2 full blocks + 2 tokens
    a = system + [1, 2, 3]
    assert m.start("a", a) == 0 and m.allocate("a", len(a))
    m.computed("a", a)
    b = system + [7, 8, 9, 10, 11]
    assert m.cached_prefix(b) == 8
    assert m.start("b", b) == 8  # the two full system-prompt blocks, not the partial third
    assert m.block_table("b") == m.block_table("a")[:2]
    assert [m.ref_counts[x] for x in m.block_table("a")] == [2, 2, 1, 1][: len(m.block_table("a"))]
    assert m.allocate("b", len(b) - 8)
    assert set(m.block_table("b")[2:]).isdisjoint(m.block_table("a"))  # its own blocks from row 8 on
    assert m.hits == 8
    check_invariants(m)


def test_whole_prompt_cached_still_computes_its_last_token():
    m = BlockManager(num_blocks=8, block_size=4)
    p = list(range(8))
    m.start("a", p)
    m.allocate("a", 8)
    m.computed("a", p)
    assert m.cached_prefix(p) == 4  # not 8: the logits of the last token are needed
    assert m.cached_prefix(p + [9]) == 8


def test_different_prefix_same_block_tokens_do_not_match():
    # a block's name covers everything before it: equal tokens after a different prefix are a miss
    m = BlockManager(num_blocks=8, block_size=2)
    m.start("a", [1, 2, 3, 4, 5])
    m.allocate("a", 5)
    m.computed("a", [1, 2, 3, 4, 5])
    assert m.cached_prefix([9, 9, 3, 4, 5]) == 0
    assert m.cached_prefix([1, 2, 9, 4, 5]) == 2


def test_freed_prefix_blocks_wait_in_the_cache_then_get_evicted_lru():
    m = BlockManager(num_blocks=6, block_size=2)
    old, new = [1, 2, 3, 4, 5], [6, 7, 8, 9, 10]
    for name, p in (("old", old), ("new", new)):
        m.start(name, p)
        m.allocate(name, len(p))
        m.computed(name, p)
    old_blocks, new_blocks = m.block_table("old"), m.block_table("new")
    m.free("old")
    m.free("new")
    u = m.usage()
    assert (u.used, u.cached, u.free) == (0, 4, 2)  # two full blocks each stay cached, the partials free
    # a prompt sharing `new`'s first block takes it back from the cache, no recompute
    assert m.start("again", new[:3] + [0]) == 2 and m.block_table("again") == new_blocks[:1]
    # 5 blocks wanted, 5 available (2 free + 3 cached): the free ones go first, then the least
    # recently used cached: old's blocks (freed first), its tail block before its head
    assert m.allocate("again", 2 + 8)
    taken = m.block_table("again")[1:]
    assert taken[2:] == [old_blocks[1], old_blocks[0], new_blocks[1]]
    assert m.cached_prefix(old) == 0 and m.cached_prefix(new) == 2  # new's first block: still held
    check_invariants(m)


def test_no_live_block_is_written_by_two_sequences():
    """Random workload: sequences start (with prefix hits), grow token by token, finish. A shared
    block is always full, and the row a sequence writes next is in a block only it holds."""
    rng = random.Random(0)
    m = BlockManager(num_blocks=40, block_size=4)
    prefixes = [[rng.randrange(5) for _ in range(rng.randrange(3, 14))] for _ in range(3)]
    live: dict[int, list[int]] = {}
    for step in range(400):
        if live and (rng.random() < 0.15 or len(live) > 6):
            name = rng.choice(list(live))
            del live[name]
            m.free(name)
        elif rng.random() < 0.3:
            tokens = rng.choice(prefixes) + [rng.randrange(5) for _ in range(rng.randrange(1, 6))]
            hit = m.start(step, tokens)
            assert hit % 4 == 0 and hit < len(tokens)
            if not m.allocate(step, len(tokens) - hit):
                m.free(step)
                continue
            m.computed(step, tokens)
            live[step] = tokens
        elif live:
            name = rng.choice(list(live))
            if m.allocate(name, 1):
                live[name].append(rng.randrange(5))
                m.computed(name, live[name])
        for name, tokens in live.items():
            table = m.block_table(name)
            assert m.reserved_tokens(name) == len(tokens)
            for i, b in enumerate(table):
                if m.ref_counts[b] > 1:  # shared: must be full and behind every writer's position
                    assert (i + 1) * 4 <= len(tokens)
            next_row_block = table[len(tokens) // 4] if len(tokens) // 4 < len(table) else None
            if next_row_block is not None:
                assert m.ref_counts[next_row_block] == 1
        check_invariants(m)
    assert m.hits > 0


class FakeSequence:  # what PagedCacheManager reads of the scheduler's Sequence
    def __init__(self, tokens):
        self.tokens, self.slot, self.cached = list(tokens), -1, 0

    @property
    def uncached(self):
        return len(self.tokens) - self.cached


def test_paged_cache_manager_table_rows_and_spare_block():
    from braze.runtime.kv_blocks import PagedCacheManager
    cache = PagedCacheManager(num_blocks=9, block_size=4, num_rows=2, context=16, spare_row=2)
    assert cache.table.shape == (3, 4) and cache.table[2].tolist() == [8] * 4  # the spare block
    assert cache.total == 8 and cache.token_capacity == 32
    a, b, c = FakeSequence(range(10)), FakeSequence(range(10)), FakeSequence([1])
    assert cache.can_admit(a) and a.slot == 0 and a.cached == 0
    assert cache.reserve(a, 10) and cache.table[0, :3].tolist() == cache.blocks.block_table(a)
    a.cached = 10  # the step ran
    assert cache.can_admit(b) and b.slot == 1 and b.cached == 8  # a's two full blocks, named on admission
    assert cache.reserve(b, 2) and cache.table[1, :2].tolist() == cache.table[0, :2].tolist()
    assert not cache.can_admit(c)  # both rows taken
    version = cache.version
    cache.release(a)
    assert a.slot == -1 and cache.version == version and cache.can_admit(c) and c.slot == 0
    assert 8 not in {blk for s in (b, c) for blk in cache.blocks.block_table(s)}
    with pytest.raises(InvalidArgumentError, match="17 cache rows, more than the context 16"):
        cache.reserve(b, 9)
