"""The paged KV cache's block manager: fixed-size blocks, reference counts, per-sequence block
tables, and automatic prefix caching.

The cache is a pool of `num_blocks` blocks of `block_size` token rows (braze/models/llama.py,
PagedLayout). A sequence owns a list of blocks, its block table: token row p lives in block
table[p // block_size] at row p % block_size. Blocks are handed out from a free list; a block's
reference count is the number of live sequences whose table holds it.

Prefix caching: once a block is full, its content is named by a hash of (the previous block's hash,
its token ids), which thus names the whole prefix up to it. A new sequence whose prompt starts with
blocks of known hashes takes those blocks (reference count + 1) instead of computing them again,
so its prefill starts after the shared prefix. When the last sequence holding a hashed block lets
it go, the block keeps its content and its hash and waits, least recently used first, to be
either reused by a later prompt or evicted (hash dropped) when the free list is empty.

Copy-free sharing: only full blocks are ever shared, and a sequence only writes rows at or past its
own length, which lie in its last, partial block or in new blocks. So no two live sequences ever
write the same block, and no block is copied.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import torch

from braze.errors import InvalidArgumentError

ROOT_HASH = b""  # the parent hash of a sequence's first block


def block_hash(parent: bytes, tokens: Sequence[int]) -> bytes:
    """The name of a full block's content: its tokens after the prefix named by `parent`."""
    h = hashlib.blake2b(parent, digest_size=16)
    h.update(b"".join(int(t).to_bytes(8, "little", signed=True) for t in tokens))
    return h.digest()


@dataclass
class _SequenceBlocks:
    blocks: list[int] = field(default_factory=list)
    tokens: int = 0  # rows reserved (the table covers at least this many)
    hashes: list[bytes] = field(default_factory=list)  # hashes of blocks[: len(hashes)], all full


@dataclass(frozen=True)
class BlockUsage:
    total: int
    used: int  # held by at least one live sequence
    cached: int  # unreferenced but holding a reusable prefix (evictable)
    free: int  # neither

    @property
    def available(self) -> int:
        return self.cached + self.free


class BlockManager:
    """Blocks for sequences, each named by any hashable key (the scheduler's Sequence objects)."""

    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool = True):
        if num_blocks < 1 or block_size < 1:
            raise InvalidArgumentError(f"a paged cache needs at least one block of at least one row, got "
                                       f"{num_blocks} blocks of {block_size}")
        self.num_blocks, self.block_size, self.prefix_caching = num_blocks, block_size, prefix_caching
        self.ref_counts = [0] * num_blocks
        self.free_list = list(range(num_blocks - 1, -1, -1))  # popped from the end: block 0 first
        self.evictable: OrderedDict[int, None] = OrderedDict()  # unreferenced hashed blocks, LRU first
        self.hash_of: dict[int, bytes] = {}  # block -> hash, for registered full blocks
        self.block_of: dict[bytes, int] = {}  # hash -> block
        self.sequences: dict[Hashable, _SequenceBlocks] = {}
        self.hits = 0  # prompt tokens found in the prefix cache (taken instead of computed)

    # ------------------------------------------------------------------ accounting
    def usage(self) -> BlockUsage:
        used = sum(1 for r in self.ref_counts if r > 0)
        return BlockUsage(self.num_blocks, used, len(self.evictable), len(self.free_list))

    @property
    def num_available(self) -> int:
        return len(self.free_list) + len(self.evictable)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def block_table(self, seq: Hashable) -> list[int]:
        return list(self.sequences[seq].blocks) if seq in self.sequences else []

    def reserved_tokens(self, seq: Hashable) -> int:
        return self.sequences[seq].tokens if seq in self.sequences else 0

    # ------------------------------------------------------------------ prefix cache
    def cached_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading tokens a new sequence with these tokens would find cached (whole
        blocks, and never all of them: the last token is always computed, its logits are needed)."""
        return len(self._cached_blocks(tokens)) * self.block_size

    def _cached_blocks(self, tokens: Sequence[int]) -> list[int]:
        if not self.prefix_caching:
            return []
        found, parent = [], ROOT_HASH
        for i in range((len(tokens) - 1) // self.block_size):
            parent = block_hash(parent, tokens[i * self.block_size:(i + 1) * self.block_size])
            block = self.block_of.get(parent)
            if block is None:
                break
            found.append(block)
        return found

    def admit(self, seq: Hashable, tokens: Sequence[int]) -> int | None:
        """Start a sequence if the cache can hold all of `tokens` (its cached prefix taken, blocks
        for the rest available, counting the cached blocks taken as no longer evictable). Returns
        the cached tokens, or None with nothing changed."""
        hit = self._cached_blocks(tokens)
        revived = sum(1 for b in hit if self.ref_counts[b] == 0)  # leave the evictable pool when taken
        if self.blocks_for(len(tokens)) - len(hit) > self.num_available - revived:
            return None
        return self.start(seq, tokens)

    def start(self, seq: Hashable, tokens: Sequence[int]) -> int:
        """Begin a sequence: take the cached blocks its tokens start with. Returns the number of
        tokens they hold (the sequence's prefill starts there)."""
        if seq in self.sequences:
            raise InvalidArgumentError(f"sequence {seq!r} already holds blocks; free it first")
        blocks = self._cached_blocks(tokens)
        state = _SequenceBlocks()
        parent = ROOT_HASH
        for block in blocks:
            self._take(block)
            parent = self.hash_of[block]
            state.blocks.append(block)
            state.hashes.append(parent)
        state.tokens = len(blocks) * self.block_size
        self.sequences[seq] = state
        self.hits += state.tokens
        return state.tokens

    def _take(self, block: int) -> None:
        if self.ref_counts[block] == 0:
            self.evictable.pop(block, None)
        self.ref_counts[block] += 1

    # ------------------------------------------------------------------ allocation
    def can_allocate(self, seq: Hashable, new_tokens: int) -> bool:
        """Whether `new_tokens` more rows fit for `seq` (a sequence not started counts from 0)."""
        have = self.sequences[seq] if seq in self.sequences else _SequenceBlocks()
        return self.blocks_for(have.tokens + new_tokens) - len(have.blocks) <= self.num_available

    def allocate(self, seq: Hashable, new_tokens: int) -> bool:
        """Reserve rows for `new_tokens` more tokens of `seq` (starting it if needed), taking blocks
        from the free list, then evicting least recently used cached blocks. False, with nothing
        changed, when there are not enough blocks."""
        if not self.can_allocate(seq, new_tokens):
            return False
        state = self.sequences.setdefault(seq, _SequenceBlocks())
        state.tokens += new_tokens
        while len(state.blocks) < self.blocks_for(state.tokens):
            state.blocks.append(self._new_block())
        return True

    def _new_block(self) -> int:
        if self.free_list:
            block = self.free_list.pop()
        else:
            block, _ = self.evictable.popitem(last=False)  # least recently used
            del self.block_of[self.hash_of.pop(block)]
        self.ref_counts[block] = 1
        return block

    def computed(self, seq: Hashable, tokens: Sequence[int]) -> None:
        """The cache now holds the keys and values of `tokens` (the sequence's tokens so far, at
        least): name its newly full blocks so later prompts can share them."""
        if not self.prefix_caching:
            return
        state = self.sequences[seq]
        full = min(len(tokens), state.tokens) // self.block_size
        parent = state.hashes[-1] if state.hashes else ROOT_HASH
        for i in range(len(state.hashes), full):
            parent = block_hash(parent, tokens[i * self.block_size:(i + 1) * self.block_size])
            state.hashes.append(parent)
            block = state.blocks[i]
            if parent not in self.block_of and block not in self.hash_of:
                self.block_of[parent] = block  # an identical block already cached keeps the name
                self.hash_of[block] = parent

    def free(self, seq: Hashable) -> None:
        """The sequence ends (or is preempted): its blocks lose a reference; blocks nobody holds
        go back to the free list, or, named ones, to the end of the cache of reusable prefixes
        (evicted from the front: older ones first and, of one sequence, its last blocks first,
        since a prefix block serves more prompts than the blocks after it)."""
        state = self.sequences.pop(seq, None)
        if state is None:
            return
        for block in reversed(state.blocks):
            self.ref_counts[block] -= 1
            if self.ref_counts[block] == 0:
                if block in self.hash_of:
                    self.evictable[block] = None
                else:
                    self.free_list.append(block)


class PagedCacheManager:
    """The scheduler's CacheManager (braze/runtime/scheduler.py) over a BlockManager, with prefix
    caching, and the block table the paged graph reads (`table`: [rows, blocks per sequence]
    int32, row seq.slot per running sequence; `version` changes whenever it does).

    `spare_row`: a table row whose every entry is a block of its own, never handed out: CUDA-graph
    padding rows (slot = spare_row) write there. `used`/`total` count blocks.

    A waiting sequence is admitted with its cached prefix already in place (seq.cached set to its
    length), so its prefill starts after it. Blocks become shareable once the step that wrote them
    has run: the manager names them the next time it admits a sequence or releases one."""

    def __init__(self, num_blocks: int, block_size: int, num_rows: int, context: int,
                 prefix_caching: bool = True, spare_row: int | None = None):
        spare_blocks = 1 if spare_row is not None else 0
        self.blocks = BlockManager(num_blocks - spare_blocks, block_size, prefix_caching)
        self.context, self.block_size = context, block_size
        rows = num_rows + (1 if spare_row is not None and spare_row >= num_rows else 0)
        self.table = torch.zeros((rows, self.blocks.blocks_for(context)), dtype=torch.int32)
        if spare_row is not None:
            self.table[spare_row] = num_blocks - 1  # the block past the manager's pool
        self.free_rows = [r for r in range(num_rows) if r != spare_row]
        self.version = 0
        self.live: set = set()  # sequences holding blocks

    @property
    def used(self) -> int:
        return self.blocks.usage().used

    @property
    def total(self) -> int:
        return self.blocks.num_blocks

    @property
    def token_capacity(self) -> int:
        return self.blocks.num_blocks * self.block_size

    def _name_computed_blocks(self, seqs) -> None:
        for seq in seqs:
            state = self.blocks.sequences.get(seq)
            if state is not None and min(seq.cached, state.tokens) // self.block_size > len(state.hashes):
                self.blocks.computed(seq, seq.tokens[: seq.cached])

    def can_admit(self, seq) -> bool:
        """Room for all the sequence's tokens, after its cached prefix; when there is, the
        sequence is started with that prefix (seq.cached = its length)."""
        if seq.slot >= 0:
            return True
        if not self.free_rows:
            return False
        self._name_computed_blocks(self.live)
        tokens = seq.tokens
        hit = self.blocks.admit(seq, tokens)
        if hit is None:
            return False
        seq.cached = hit
        self._take_row(seq)
        return True

    def _take_row(self, seq) -> None:
        seq.slot = self.free_rows.pop(0)
        self.live.add(seq)
        self._write_row(seq)

    def _write_row(self, seq) -> None:
        ids = self.blocks.block_table(seq)
        if ids:
            self.table[seq.slot, : len(ids)] = torch.tensor(ids, dtype=torch.int32)
        self.version += 1

    def reserve(self, seq, new_tokens: int) -> bool:
        want = seq.cached + new_tokens
        if want > self.context:
            raise InvalidArgumentError(f"a sequence asked for {want} cache rows, more than the context {self.context}")
        if seq.slot < 0 and not self.free_rows:
            return False
        grow = max(0, want - self.blocks.reserved_tokens(seq))
        if not self.blocks.allocate(seq, grow):
            return False
        if seq.slot < 0:
            self._take_row(seq)
        elif grow:
            self._write_row(seq)
        return True

    def release(self, seq) -> None:
        if seq.slot < 0:
            return
        self._name_computed_blocks([seq])
        self.blocks.free(seq)
        self.live.discard(seq)
        self.free_rows.append(seq.slot)
        self.free_rows.sort()
        seq.slot = -1
