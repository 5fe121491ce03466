"""Engine: a preallocated KV cache, prefill and decode steps, batches of prompts, sampling, stops.

Every step is one call of the compiled program over a flat batch of tokens: prefill packs prompt
chunks of several sequences together (each sequence owns one cache slot), decode feeds each live
sequence's last token. Sequences beyond the cache's slots wait for a free slot.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from braze.errors import InvalidArgumentError, PromptTooLongError
from braze.ir.interpret import TORCH_DTYPE
from braze.runtime.executable import Executable
from braze.runtime.sampling import SamplingParams, sample
from braze.runtime.stop import find_stop


GREEDY_CHUNK = 8  # greedy decode steps replayed back to back between host checks


@dataclass
class Sequence:
    index: int
    prompt: list[int]
    params: SamplingParams
    generator: torch.Generator | None
    output: list[int] = field(default_factory=list)
    slot: int = -1
    cached: int = 0  # tokens already in the KV cache
    finish_reason: str | None = None
    text: str | None = None  # set early when a stop string cut the output

    @property
    def tokens(self) -> list[int]:
        return self.prompt + self.output


class Engine:
    def __init__(self, executable: Executable, num_slots: int, context: int, max_step_tokens: int,
                 eos_token_ids: tuple[int, ...], decode: Callable[[list[int]], str], cuda_graphs: bool = False):
        self.executable = executable
        self.device = executable.device
        self.num_slots, self.context, self.max_step_tokens = num_slots, context, max_step_tokens
        self.eos_token_ids = set(eos_token_ids)
        self.decode = decode
        self.caches = {b.name: torch.zeros(b.shape, dtype=TORCH_DTYPE[b.dtype], device=self.device)
                       for b in executable.program.buffers if b.kind == "state"}
        self.graphs = None
        if cuda_graphs:  # the cache's last slot takes the padding rows of partial batches
            from braze.runtime.cuda_graphs import DecodeGraphs
            self.graphs = DecodeGraphs(executable, self.caches, num_slots, pad_slot=num_slots)

    def check_prompt(self, prompt: list[int]) -> None:
        if not prompt:
            raise InvalidArgumentError("the prompt is empty: give at least one token")
        # A prompt may fill the whole context: its first token comes from the prefill's logits and
        # needs no cache entry, then the sequence ends with finish_reason "length".
        if len(prompt) > self.context:
            raise PromptTooLongError(
                f"the prompt has {len(prompt)} tokens but the context window holds {self.context}; "
                f"shorten the prompt or raise max_model_len")

    def _step(self, tokens, positions, slots, logits_index) -> torch.Tensor:
        step = torch.tensor([tokens, positions, slots], dtype=torch.int64).to(self.device)
        feeds = {"tokens": step[0], "positions": step[1], "slots": step[2],
                 "logits_index": torch.tensor(logits_index, dtype=torch.int64).to(self.device), **self.caches}
        return self.executable.run(feeds)["logits"]

    def _prefill(self, seqs: list[Sequence]) -> list[tuple[Sequence, torch.Tensor]]:
        """Run prompts through the model in chunks of at most max_step_tokens; returns each
        sequence's last-position logits."""
        pending = [(s, s.cached) for s in seqs]
        done = []
        while pending:
            tokens, positions, slots, index, owners, budget = [], [], [], [], [], self.max_step_tokens
            while pending and budget > 0:
                seq, start = pending.pop(0)
                end = min(len(seq.prompt), start + budget)
                tokens += seq.prompt[start:end]
                positions += range(start, end)
                slots += [seq.slot] * (end - start)
                budget -= end - start
                if end < len(seq.prompt):
                    pending.insert(0, (seq, end))
                else:
                    index.append(len(tokens) - 1)
                    owners.append(seq)
                seq.cached = end
            logits = self._step(tokens, positions, slots, index)
            done += [(seq, logits[i].clone()) for i, seq in enumerate(owners)]
        return done

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

    def generate(self, prompts: list[list[int]], params: list[SamplingParams],
                 on_token: Callable[[int, int], None] | None = None) -> list[Sequence]:
        """Generate for every prompt; on_token(request_index, token_id) streams tokens."""
        for prompt in prompts:
            self.check_prompt(prompt)
        waiting = [Sequence(i, list(p), sp, sp.generator()) for i, (p, sp) in enumerate(zip(prompts, params))]
        running: list[Sequence] = []
        finished: list[Sequence] = []
        free_slots = list(range(self.num_slots))
        while waiting or running:
            admitted = []
            while waiting and free_slots:
                seq = waiting.pop(0)
                seq.slot = free_slots.pop(0)
                admitted.append(seq)
            if admitted:
                firsts = self._prefill(admitted)
                self._sample_and_accept([s for s, _ in firsts], torch.stack([lg for _, lg in firsts]), on_token)
                running += admitted
            else:
                tokens = [s.tokens[-1] for s in running]
                positions = [len(s.tokens) - 1 for s in running]
                slots = [s.slot for s in running]
                steps = self._greedy_chunk(running, waiting)
                if steps > 1:
                    self._accept_chunk(running, self.graphs.run_greedy(tokens, positions, slots, steps), on_token)
                else:
                    logits = self.graphs.run(tokens, positions, slots) if self.graphs else \
                        self._step(tokens, positions, slots, list(range(len(running))))
                    self._sample_and_accept(running, logits, on_token)
            for seq in [s for s in running if s.finish_reason]:
                running.remove(seq)
                free_slots.append(seq.slot)
                finished.append(seq)
        for seq in finished:
            if seq.text is None:
                seq.text = self.decode(seq.output)
        return sorted(finished, key=lambda s: s.index)

    def _greedy_chunk(self, running: list[Sequence], waiting: list[Sequence]) -> int:
        """How many greedy steps to run before looking at the tokens (1 = step by step). Tokens a
        sequence makes after its stop are dropped, so the results equal step-by-step decoding."""
        if not self.graphs or waiting or not all(s.params.greedy for s in running):
            return 1
        left = min(min(s.params.max_tokens - len(s.output), self.context - len(s.tokens)) for s in running)
        return max(1, min(GREEDY_CHUNK, left))

    def _accept_chunk(self, seqs: list[Sequence], chunks: list[list[int]], on_token) -> None:
        for seq, chunk in zip(seqs, chunks):
            for token in chunk:
                if seq.finish_reason:
                    break
                if self._accept(seq, token) and on_token is not None:
                    on_token(seq.index, token)

    def _sample_and_accept(self, seqs: list[Sequence], logits: torch.Tensor, on_token) -> None:
        chosen = sample(logits, [s.params for s in seqs], [s.generator for s in seqs]).tolist()
        for seq, token in zip(seqs, chosen):
            if self._accept(seq, token) and on_token is not None:
                on_token(seq.index, token)
