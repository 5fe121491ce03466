"""Engine: a preallocated KV cache, a scheduler, one model step at a time, sampling, stops.

Continuous API (what the server drives):
    engine.add_request(request_id, prompt_ids, params)
    while engine.has_unfinished():
        for out in engine.step(): ...     # new tokens per request, finish_reason when done
    engine.abort(request_id)              # frees its cache at once

Every step is one call of the compiled program over a flat batch of tokens: each running request's
next token (decode) and chunks of prompts (prefill) side by side, each token with its sequence's
cache slot and position. `generate` is a loop over add_request/step.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import torch

from braze.errors import InvalidArgumentError, PromptTooLongError
from braze.ir.interpret import TORCH_DTYPE
from braze.runtime.executable import Executable
from braze.runtime.sampling import SamplingParams, sample
from braze.runtime.scheduler import CacheManager, ScheduledStep, Scheduler, Sequence, SlotCacheManager
from braze.runtime.stop import find_stop

GREEDY_CHUNK = 8  # greedy decode steps replayed back to back between host checks

__all__ = ["Engine", "Sequence", "StepOutput"]


@dataclass
class StepOutput:
    """What one step did for one request: the tokens it added, and why it ended (None: running).
    `text` is set when a stop string cut the output (the text up to the stop)."""
    request_id: object
    new_token_ids: list[int]
    finish_reason: str | None = None
    text: str | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


class Engine:
    """num_slots: KV cache slots (and the most requests decoded together unless max_num_seqs says
    fewer); context: tokens per slot; max_step_tokens: tokens per model step (the compiled bound).
    cache_manager: where sequences' KV lives (default: the slot cache)."""

    def __init__(self, executable: Executable, num_slots: int, context: int, max_step_tokens: int,
                 eos_token_ids: tuple[int, ...], decode: Callable[[list[int]], str], cuda_graphs: bool = False,
                 max_num_seqs: int | None = None, cache_manager: CacheManager | None = None):
        self.executable = executable
        self.device = executable.device
        self.num_slots, self.context, self.max_step_tokens = num_slots, context, max_step_tokens
        self.eos_token_ids = set(eos_token_ids)
        self.decode = decode
        self.caches = {b.name: torch.zeros(b.shape, dtype=TORCH_DTYPE[b.dtype], device=self.device)
                       for b in executable.program.buffers if b.kind == "state"}
        # a paged program reads each sequence's blocks through the cache manager's block table, kept
        # on the device as a persistent input (CUDA graphs capture it) and refreshed when it changes
        self.block_table, self._table_version = None, -1
        if any(b.name == "block_table" for b in executable.program.buffers):
            if cache_manager is None or not hasattr(cache_manager, "table"):
                raise InvalidArgumentError("this program reads a paged KV cache: give the Engine a "
                                           "braze.runtime.kv_blocks.PagedCacheManager")
            self.block_table = cache_manager.table.to(self.device)
            self.caches["block_table"] = self.block_table
        self.graphs = self.step_graphs = None
        if cuda_graphs:  # the cache's last slot takes the padding rows of partial batches
            from braze.runtime.cuda_graphs import model_graphs
            self.graphs, self.step_graphs = model_graphs(executable, self.caches, num_slots, max_step_tokens)
        self.cache = cache_manager or SlotCacheManager(num_slots, context)
        self.scheduler = Scheduler(self.cache, min(max_num_seqs or num_slots, num_slots), max_step_tokens)
        self.requests: dict[object, Sequence] = {}  # unfinished, by request id
        self._arrivals = itertools.count()
        self.num_steps = 0
        self._ahead: tuple | None = None  # (sequences, device tokens [steps, batch], steps) launched ahead

    def check_prompt(self, prompt: list[int]) -> None:
        if not prompt:
            raise InvalidArgumentError("the prompt is empty: give at least one token")
        # A prompt may fill the whole context: its first token comes from the prefill's logits and
        # needs no cache entry, then the sequence ends with finish_reason "length".
        if len(prompt) > self.context:
            raise PromptTooLongError(
                f"the prompt has {len(prompt)} tokens but the context window holds {self.context}; "
                f"shorten the prompt or raise max_model_len")
        capacity = getattr(self.cache, "token_capacity", self.cache.total)  # a paged cache counts blocks
        if len(prompt) > capacity:
            raise PromptTooLongError(f"the prompt has {len(prompt)} tokens but the whole KV cache holds "
                                     f"{capacity}; shorten the prompt or give the cache more room")

    # -- the continuous API -------------------------------------------------------------------

    def add_request(self, request_id, prompt_ids: list[int], params: SamplingParams) -> Sequence:
        """Queue a request; it joins the running batch at a later step (first come, first served)."""
        if request_id in self.requests:
            raise InvalidArgumentError(f"request id {request_id!r} is already running; ids must be unique")
        prompt = [int(t) for t in prompt_ids]
        self.check_prompt(prompt)
        seq = Sequence(request_id, next(self._arrivals), prompt, params, params.generator())
        self.requests[request_id] = seq
        self.scheduler.add(seq)
        return seq

    def abort(self, request_id) -> bool:
        """Drop a request and free its cache now; False if it is unknown or already finished."""
        seq = self.requests.pop(request_id, None)
        if seq is None:
            return False
        seq.finish_reason = seq.finish_reason or "abort"
        self.scheduler.remove(seq)
        return True

    def has_unfinished(self) -> bool:
        return bool(self.requests)

    def stats(self) -> dict:
        return {"waiting": len(self.scheduler.waiting), "running": len(self.scheduler.running),
                "kv_used": self.cache.used, "kv_total": self.cache.total,
                "preemptions": self.scheduler.num_preemptions, "steps": self.num_steps}

    def step(self) -> list[StepOutput]:
        """Run one model step over what the scheduler picked; returns what changed per request.
        A greedy chunk the last step launched ahead is read first, with nothing scheduled around it."""
        outputs: dict[object, StepOutput] = {}
        if self._ahead is not None:
            return self._outputs(self._collect_ahead(), outputs)
        plan = self.scheduler.schedule()
        for seq in plan.out_of_cache:  # the cache cannot hold it even alone: it ends here
            seq.finish_reason = "length"
            outputs[seq.request_id] = StepOutput(seq.request_id, [])
        results = []
        if plan.chunks:
            self.num_steps += 1
            results = self._run(plan)
        return self._outputs(results, outputs)

    def _outputs(self, results: list[tuple[Sequence, list[int]]], outputs: dict) -> list[StepOutput]:
        """Accept each sequence's new tokens (those after a stop are dropped); finished requests leave."""
        for seq, chunk in results:
            out = outputs.setdefault(seq.request_id, StepOutput(seq.request_id, []))
            for token in chunk:
                if seq.finish_reason:
                    break  # tokens a chunk made after a stop are dropped
                if self._accept(seq, token):
                    out.new_token_ids.append(token)
        for request_id, out in outputs.items():
            seq = self.requests[request_id]
            if seq.finish_reason:
                out.finish_reason, out.text = seq.finish_reason, seq.text
                self.scheduler.remove(seq)
                del self.requests[request_id]
        return list(outputs.values())

    def _run(self, plan: ScheduledStep) -> list[tuple[Sequence, list[int]]]:
        """Feed the planned tokens; returns each sampled sequence's new token(s)."""
        # a sequence whose chunk reaches its last token samples; a partial prompt chunk does not
        sampled = [seq for seq, start, count in plan.chunks if start + count == len(seq.prompt) + len(seq.output)]
        sampling = {id(seq) for seq in sampled}
        decode_only = all(count == 1 for _, _, count in plan.chunks) and len(sampled) == len(plan.chunks)
        tokens, positions, slots, index = [], [], [], []
        for seq, start, count in plan.chunks:
            tokens += seq.tokens[start: start + count]
            positions += range(start, start + count)
            slots += [seq.slot] * count
            seq.cached = start + count
            if id(seq) in sampling:
                index.append(len(tokens) - 1)
        if self.graphs is not None and decode_only:
            steps = self._greedy_chunk(sampled)
            self._sync_block_table()  # after the chunk's reservations
            if steps > 1:
                made = self.graphs.launch_greedy(tokens, positions, slots, steps)
                for seq in sampled:
                    seq.cached += steps - 1
                self._launch_ahead(sampled, steps)  # before reading `made`: the GPU stays busy
                return list(zip(sampled, made[:, : len(sampled)].T.tolist()))
            logits = self.graphs.run(tokens, positions, slots)
        elif self.step_graphs is not None and self.step_graphs.fits(len(tokens)):
            self._sync_block_table()
            logits = self.step_graphs.run(tokens, positions, slots, index)
        else:
            logits = self._step(tokens, positions, slots, index, decode_step=decode_only)
        chosen = sample(logits, [s.params for s in sampled], [s.generator for s in sampled]).tolist()
        return [(seq, [token]) for seq, token in zip(sampled, chosen)]

    def _greedy_chunk(self, running: list[Sequence]) -> int:
        """How many greedy steps to replay before looking at the tokens (1 = step by step). Tokens
        a sequence makes after its stop are dropped, so the results equal step-by-step decoding.
        Only when nobody waits (a new request must not wait for the chunk) and the cache has room."""
        steps = max(1, min(GREEDY_CHUNK, self._greedy_room(running)))
        if steps > 1 and not all(self.cache.reserve(s, steps - 1) for s in running):  # rows cached + steps - 1
            return 1  # (what was reserved stays reserved: the sequences grow into it)
        return steps

    def _greedy_room(self, running: list[Sequence], pending: int = 0) -> int:
        """Greedy steps every sequence of `running` may still take after `pending` unread ones
        (max_tokens and the context); 0 when a request waits or a sequence samples."""
        if self.scheduler.waiting or not all(s.params.greedy for s in running):
            return 0
        return min(min(s.params.max_tokens - len(s.output), self.context - len(s.tokens)) for s in running) - pending

    def _launch_ahead(self, running: list[Sequence], steps: int) -> None:
        """Enqueue the next greedy chunk of `running` while the one just launched (`steps` tokens,
        not read yet) is still on the GPU, when nobody waits, every sequence can take a whole chunk
        more and the cache has room for it. If a sequence stops in the chunk before, the chunk's
        tokens for it are dropped: its cache rows were reserved, and whatever reuses them later is
        queued on the stream after this chunk."""
        if self._greedy_room(running, pending=steps) < steps or not all(self.cache.reserve(s, steps) for s in running):
            return
        self._sync_block_table()
        self._ahead = (list(running), self.graphs.continue_greedy(steps), steps)

    def _collect_ahead(self) -> list[tuple[Sequence, list[int]]]:
        """The tokens of the chunk launched ahead, after launching the one after it if every sequence
        is still running (a stop or an abort in the chunk before ends the run of chunks)."""
        running, made, steps = self._ahead
        self._ahead = None
        self.num_steps += 1
        for seq in running:
            seq.cached += steps
        if all(seq.request_id in self.requests for seq in running):
            self._launch_ahead(running, steps)
        chunks = made[:, : len(running)].T.tolist()
        return [(seq, chunk) for seq, chunk in zip(running, chunks) if seq.request_id in self.requests]

    def _sync_block_table(self) -> None:
        if self.block_table is not None and self._table_version != self.cache.version:
            self.block_table.copy_(self.cache.table)
            self._table_version = self.cache.version

    def _step(self, tokens, positions, slots, logits_index, decode_step: bool = False) -> torch.Tensor:
        """One eager step; decode_step: every token is its sequence's only new one (Executable.run)."""
        self._sync_block_table()
        step = torch.tensor([tokens, positions, slots], dtype=torch.int64).to(self.device)
        feeds = {"tokens": step[0], "positions": step[1], "slots": step[2],
                 "logits_index": torch.tensor(logits_index, dtype=torch.int64).to(self.device), **self.caches}
        return self.executable.run(feeds, decode_step=decode_step)["logits"]

    def _accept(self, seq: Sequence, token: int) -> bool:
        """Record a sampled token and decide whether the sequence is done; False if the token
        ends the sequence without being part of it (EOS)."""
        p = seq.params
        if not p.ignore_eos and token in self.eos_token_ids:
            seq.finish_reason = "stop"
            return False
        seq.output.append(token)
        if p.stop_token_ids and token in p.stop_token_ids:
            seq.finish_reason = "stop"
        elif len(seq.output) >= p.max_tokens or len(seq.tokens) >= self.context:
            seq.finish_reason = "length"
        if p.stop_strings:
            text = self.decode(seq.output)
            cut = find_stop(text, p.stop_strings)
            if cut is not None:
                seq.finish_reason = "stop"
                seq.text = text[:cut]
        return True

    # -- a closed batch -----------------------------------------------------------------------

    def generate(self, prompts: list[list[int]], params: list[SamplingParams],
                 on_token: Callable[[int, int], None] | None = None) -> list[Sequence]:
        """Generate for every prompt; on_token(request_index, token_id) streams tokens. Requests of
        an earlier generate still unfinished (the server's) share the steps; ids here are private."""
        for prompt in prompts:
            self.check_prompt(prompt)
        ids = [("generate", id(prompts), i) for i in range(len(prompts))]
        seqs = [self.add_request(rid, p, sp) for rid, p, sp in zip(ids, prompts, params)]
        index = {rid: i for i, rid in enumerate(ids)}
        pending = set(ids)
        while pending:
            for out in self.step():
                if out.request_id in index and on_token is not None:
                    for token in out.new_token_ids:
                        on_token(index[out.request_id], token)
                if out.finished:
                    pending.discard(out.request_id)
        for i, seq in enumerate(seqs):
            seq.index = i
            if seq.text is None:
                seq.text = self.decode(seq.output)
        return seqs
