"""Sampling parameters (vLLM's shape) and the per-row token sampler.

`sample(logits, params, generators)` picks one token per row of a [N, V] logits batch, each row
with its own temperature, top-k, top-p and random generator, so a request's tokens do not depend
on what else is in the batch: the same seed gives the same tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from braze.errors import InvalidArgumentError
from braze.runtime.stop import StopStringMatcher, find_stop, holdback

__all__ = [
    "SamplingParams",
    "sample",
    "make_generator",
    "find_stop",
    "holdback",
    "StopStringMatcher",
]


def _bad(name: str, value, valid: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid sampling parameter {name}={value!r}: must be {valid}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


GREEDY_BELOW = 1e-5  # temperatures under this sample the argmax


@dataclass
class SamplingParams:
    """How to pick tokens for one request.

    temperature 0 means greedy (argmax). top_k -1 or 0 means no top-k cut; top_p 1.0 means no
    nucleus cut. seed makes the request's samples reproducible. Generation stops after
    max_tokens tokens, at an EOS token (unless ignore_eos), at any of stop_token_ids, or where
    one of the stop strings appears (the output is cut before it, the stop string excluded).
    """

    max_tokens: int = 16
    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | str | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    stop_strings: list[str] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        if not _is_int(self.max_tokens) or self.max_tokens < 1:
            raise _bad("max_tokens", self.max_tokens, "an integer >= 1")
        if not _is_real(self.temperature) or math.isnan(self.temperature) or self.temperature < 0:
            raise _bad("temperature", self.temperature, "a number >= 0 (0 means greedy)")
        if math.isinf(self.temperature):
            raise _bad("temperature", self.temperature, "a finite number >= 0 (0 means greedy)")
        if not _is_int(self.top_k) or self.top_k < -1:
            raise _bad("top_k", self.top_k, "an integer >= 1, or -1 or 0 to turn top-k off")
        if not _is_real(self.top_p) or math.isnan(self.top_p) or not 0 < self.top_p <= 1:
            raise _bad("top_p", self.top_p, "a number in (0, 1] (1 turns top-p off)")
        if self.seed is not None and not _is_int(self.seed):
            raise _bad("seed", self.seed, "an integer or None")
        self.temperature = float(self.temperature)
        self.top_p = float(self.top_p)
        if self.stop is None:
            stops: list[str] = []
        elif isinstance(self.stop, str):
            stops = [self.stop]
        else:
            stops = list(self.stop)
        for s in stops:
            if not isinstance(s, str) or not s:
                raise _bad("stop", self.stop, "a non-empty string or a list of non-empty strings")
        self.stop_strings = stops
        if self.stop_token_ids is not None:
            ids = list(self.stop_token_ids)
            if not all(_is_int(t) and t >= 0 for t in ids):
                raise _bad("stop_token_ids", self.stop_token_ids, "a list of token ids >= 0")
            self.stop_token_ids = ids

    @property
    def greedy(self) -> bool:
        """True when the sample is always the argmax (temperature 0, or top_k 1). A temperature
        below GREEDY_BELOW is greedy too, as in vLLM: logits divided by it overflow float32 (a
        schemathesis request with temperature 9e-116 made a NaN distribution), and the softmax
        of logits scaled that far is one-hot anyway."""
        return self.temperature < GREEDY_BELOW or self.top_k == 1

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator | None:
        """A generator seeded with `seed` (None without a seed: the global RNG is used)."""
        return make_generator(self.seed, device)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A torch.Generator on `device` seeded with `seed`; None when seed is None."""
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def sample(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    generators: Sequence[torch.Generator | None] | None = None,
) -> torch.Tensor:
    """One token id per row of `logits` [N, V]: returns int64 [N] on logits' device.

    Row i uses params[i]: greedy rows take the argmax; the others divide by the temperature,
    keep the top_k largest logits, keep the smallest set of tokens whose probability adds up to
    at least top_p (the most likely token is always kept) and draw from what is left with
    generators[i] (None: the global RNG). The math is done in float32.
    """
    if logits.dim() != 2:
        raise InvalidArgumentError(f"sample() expects logits of shape [N, V], got {tuple(logits.shape)}")
    n, vocab = logits.shape
    if len(params) != n:
        raise InvalidArgumentError(f"sample() got {n} rows of logits but {len(params)} SamplingParams")
    if generators is None:
        generators = [None] * n
    elif len(generators) != n:
        raise InvalidArgumentError(f"sample() got {n} rows of logits but {len(generators)} generators")

    logits = logits.float()
    out = torch.argmax(logits, dim=-1)
    rows = [i for i, p in enumerate(params) if not p.greedy]
    if not rows:
        return out

    device = logits.device
    sub = logits[rows] if len(rows) < n else logits
    temp = torch.tensor([params[i].temperature for i in rows], dtype=torch.float32, device=device)
    sub = sub / temp.unsqueeze(1)

    ks = [params[i].top_k if params[i].top_k > 0 else vocab for i in rows]
    ks = [min(k, vocab) for k in ks]
    top_ps = [params[i].top_p for i in rows]
    kmax = max(ks)
    cut_k = any(k < kmax for k in ks)
    cut_p = any(p < 1.0 for p in top_ps)

    if kmax == vocab and not cut_k and not cut_p:
        # No truncation anywhere: sample the full distribution.
        cand_logits, cand_idx = sub, None
    else:
        # Candidates sorted by descending logit: the top kmax (all of V when some row has no
        # top-k cut), then per-row top-k and top-p masks on that sorted set.
        if kmax == vocab:
            cand_logits, cand_idx = torch.sort(sub, dim=-1, descending=True)
        else:
            cand_logits, cand_idx = torch.topk(sub, kmax, dim=-1, sorted=True)
        if cut_k:
            k_t = torch.tensor(ks, device=device).unsqueeze(1)
            pos = torch.arange(kmax, device=device).unsqueeze(0)
            cand_logits = cand_logits.masked_fill(pos >= k_t, float("-inf"))
        if cut_p:
            probs = torch.softmax(cand_logits, dim=-1)
            before = torch.cumsum(probs, dim=-1) - probs  # probability of the tokens ranked above
            # Rows without a top-p cut get a threshold no cumulative sum reaches.
            p_t = torch.tensor([p if p < 1.0 else 2.0 for p in top_ps], device=device).unsqueeze(1)
            drop = before >= p_t
            drop[:, 0] = False  # the most likely token always stays
            cand_logits = cand_logits.masked_fill(drop, float("-inf"))

    probs = torch.softmax(cand_logits, dim=-1)
    picks = torch.empty(len(rows), dtype=torch.int64, device=device)
    for j, i in enumerate(rows):
        picks[j] = torch.multinomial(probs[j], 1, generator=generators[i])[0]
    if cand_idx is not None:
        picks = cand_idx.gather(1, picks.unsqueeze(1)).squeeze(1)
    out[rows] = picks
    return out
