"""Engine limits: a prompt may fill the context exactly; one token more is a clear error."""
from __future__ import annotations

import pytest

import braze
from braze.errors import PromptTooLongError


@pytest.fixture(scope="module")
def small_context_llm(tiny_checkpoints):
    return braze.LLM(str(tiny_checkpoints["llama"]), device="cpu", max_model_len=24, max_num_seqs=2,
                     max_num_batched_tokens=16)


def test_prompt_filling_the_context_yields_one_token(small_context_llm):
    params = braze.SamplingParams(max_tokens=8, temperature=0, ignore_eos=True)
    full, short = small_context_llm.generate(prompt_token_ids=[list(range(3, 27)), list(range(3, 20))],
                                             sampling_params=params)
    assert len(full.token_ids) == 1 and full.finish_reason == "length"
    # the short prompt runs until the context is full: 17 prompt tokens + 7 new = 24
    assert len(short.token_ids) == 7 and short.finish_reason == "length"


def test_prompt_longer_than_the_context_names_both_lengths(small_context_llm):
    with pytest.raises(PromptTooLongError, match="25 tokens.*holds 24"):
        small_context_llm.generate(prompt_token_ids=[list(range(3, 28))])
