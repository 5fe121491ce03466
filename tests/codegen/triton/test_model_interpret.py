"""A whole model through the Triton backend (interpreted on the CPU, real kernels on a GPU) gives
the same greedy tokens as the C++ backend, for a batch of prompts of different lengths."""
from __future__ import annotations

import pytest
import torch

import braze

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_triton_backend_matches_cpp(family, tiny_checkpoints):
    path = str(tiny_checkpoints[family])
    kwargs = dict(max_model_len=64, max_num_seqs=2, max_num_batched_tokens=32)
    triton_llm = braze.LLM(path, device=DEVICE, backend="triton", **kwargs)
    cpp_llm = braze.LLM(path, device="cpu", backend="cpp", **kwargs)
    params = braze.SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)
    prompts = ["Hello there", "a longer prompt that takes more tokens than the other one"]
    got = [o.token_ids for o in triton_llm.generate(prompts, params)]
    expected = [o.token_ids for o in cpp_llm.generate(prompts, params)]
    assert got == expected
