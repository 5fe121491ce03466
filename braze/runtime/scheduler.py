"""The scheduler: which tokens of which requests go into the next model step.

Policy (vLLM's, first-come-first-served):
- in-flight batching: requests join while others decode; every step carries one token per decoding
  request, then prompt chunks, under `max_num_batched_tokens` tokens and `max_num_seqs` requests;
- chunked prefill: a prompt longer than what is left of the step's budget is fed over several steps;
- admission and growth go through a CacheManager; when it refuses room for a running request, the
  newest running request is preempted by recomputation: its cache is released, it goes back to the
  front of the queue, and later its prompt and the tokens it already made are prefilled again.

The CacheManager protocol is what a block-based (paged) cache plugs into; SlotCacheManager is the
first implementation: one cache slot holds one sequence of up to `context` tokens.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Protocol

import torch

from braze.errors import InvalidArgumentError
from braze.runtime.sampling import SamplingParams


@dataclass(eq=False)  # identity: a request is itself, whatever its state
class Sequence:
    """One request's state. `arrival` orders requests (FCFS); `cached` counts the tokens whose keys
    and values are in the cache (the rest of `tokens` must be fed before sampling)."""
    request_id: object
    arrival: int
    prompt: list[int]
    params: SamplingParams
    generator: torch.Generator | None
    output: list[int] = field(default_factory=list)
    slot: int = -1
    cached: int = 0
    finish_reason: str | None = None
    text: str | None = None  # set early when a stop string cut the output
    preemptions: int = 0
    index: int = -1  # position in a generate() call's prompts

    @property
    def tokens(self) -> list[int]:
        return self.prompt + self.output

    @property
    def uncached(self) -> int:
        return len(self.prompt) + len(self.output) - self.cached

    def __lt__(self, other: "Sequence") -> bool:  # waiting queue order
        return self.arrival < other.arrival


class CacheManager(Protocol):
    """Where sequences' keys and values live. Units of `used`/`total` are the manager's own
    (tokens for the slot cache, blocks for a paged one)."""

    @property
    def used(self) -> int: ...

    @property
    def total(self) -> int: ...

    def can_admit(self, seq: Sequence) -> bool:
        """Whether a waiting sequence may start now (room for all its uncached tokens)."""

    def reserve(self, seq: Sequence, new_tokens: int) -> bool:
        """Make room for seq.cached + new_tokens tokens; False (nothing changed) when there is none."""

    def release(self, seq: Sequence) -> None:
        """Free everything the sequence holds (finished, aborted or preempted)."""


class SlotCacheManager:
    """The preallocated slot cache: a sequence takes one slot, of `context` tokens, for its life.

    `capacity` caps the tokens held over all slots (default: every slot full). Below that it
    behaves like a pool of one-token blocks, which is how preemption is exercised on the slot
    cache (and the policy a block-based manager runs with)."""

    def __init__(self, num_slots: int, context: int, capacity: int | None = None):
        self.num_slots, self.context = num_slots, context
        self.capacity = num_slots * context if capacity is None else capacity
        if self.capacity < 1:
            raise InvalidArgumentError(f"cache capacity must be >= 1 token, got {capacity}")
        self.free_slots = list(range(num_slots))
        self.reserved: dict[int, int] = {}  # slot -> tokens reserved in it
        self._used = 0

    @property
    def used(self) -> int:
        return self._used

    @property
    def total(self) -> int:
        return self.capacity

    def can_admit(self, seq: Sequence) -> bool:
        return bool(self.free_slots) and self._used + seq.uncached <= self.capacity

    def reserve(self, seq: Sequence, new_tokens: int) -> bool:
        want = seq.cached + new_tokens
        if want > self.context:
            raise InvalidArgumentError(f"a sequence asked for {want} cache rows, more than the context {self.context}")
        have = self.reserved.get(seq.slot, 0) if seq.slot >= 0 else 0
        grow = max(0, want - have)
        if (seq.slot < 0 and not self.free_slots) or self._used + grow > self.capacity:
            return False
        if seq.slot < 0:
            seq.slot = self.free_slots.pop(0)
        self.reserved[seq.slot] = have + grow
        self._used += grow
        return True

    def release(self, seq: Sequence) -> None:
        if seq.slot < 0:
            return
        self._used -= self.reserved.pop(seq.slot, 0)
        bisect.insort(self.free_slots, seq.slot)
        seq.slot = -1


@dataclass
class ScheduledStep:
    """What the next model step computes: for each sequence, tokens [start, start + count)."""
    chunks: list[tuple[Sequence, int, int]]  # (seq, start, count)
    preempted: list[Sequence]
    out_of_cache: list[Sequence]  # sequences the cache cannot hold even alone: they end ("length")

    @property
    def num_tokens(self) -> int:
        return sum(count for _, _, count in self.chunks)


class Scheduler:
    def __init__(self, cache: CacheManager, max_num_seqs: int, max_num_batched_tokens: int):
        if max_num_batched_tokens < max_num_seqs:
            raise InvalidArgumentError(f"max_num_batched_tokens ({max_num_batched_tokens}) must be at least "
                                       f"max_num_seqs ({max_num_seqs}): every running request decodes each step")
        self.cache = cache
        self.max_num_seqs, self.max_num_batched_tokens = max_num_seqs, max_num_batched_tokens
        self.waiting: list[Sequence] = []  # sorted by arrival
        self.running: list[Sequence] = []  # sorted by arrival
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        bisect.insort(self.waiting, seq)

    def remove(self, seq: Sequence) -> None:
        """Take a sequence out (finished or aborted) and free its cache at once."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.cache.release(seq)

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.cache.release(seq)
        seq.cached = 0  # recomputed from prompt + output when it runs again
        seq.preemptions += 1
        self.num_preemptions += 1
        bisect.insort(self.waiting, seq)

    def schedule(self) -> ScheduledStep:
        budget = self.max_num_batched_tokens
        counts: dict[int, int] = {}  # id(seq) -> tokens this step
        preempted: list[Sequence] = []
        out_of_cache: list[Sequence] = []
        # decodes (one token) before prompt chunks, so a long prefill never starves them
        order = sorted(self.running, key=lambda s: (s.uncached > 1, s.arrival))
        for seq in order:
            if seq not in self.running or budget == 0:
                continue  # preempted by an older request earlier in this loop
            count = min(seq.uncached, budget)
            while not self.cache.reserve(seq, count):
                victim = self.running[-1]
                if victim is seq and len(self.running) == 1:
                    out_of_cache.append(seq)  # not even alone: nothing left to free
                    break
                self._preempt(victim)
                preempted.append(victim)
                budget += counts.pop(id(victim), 0)
                if victim is seq:
                    break
            else:
                counts[id(seq)] = count
                budget -= count
        for seq in out_of_cache:
            self.remove(seq)
        # then waiting requests, oldest first, while the step, the batch and the cache have room
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            alone = not self.running  # then it may start even if all of it will not fit
            # can_admit first, even alone: a paged cache takes the sequence's cached prefix there
            if seq in preempted or not (self.cache.can_admit(seq) or alone):
                break  # FCFS: nobody overtakes the oldest waiting request
            count = min(seq.uncached, budget)
            if not self.cache.reserve(seq, count):
                if not alone:
                    break
                self.waiting.pop(0)
                out_of_cache.append(seq)
                continue
            self.waiting.pop(0)
            bisect.insort(self.running, seq)
            counts[id(seq)] = count
            budget -= count
        chunks = [(s, s.cached, counts[id(s)]) for s in self.running if id(s) in counts]
        return ScheduledStep(chunks, preempted, out_of_cache)
