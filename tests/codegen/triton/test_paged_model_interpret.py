"""A whole model over a paged KV cache through the Triton backend (interpreted on the CPU, real
kernels on a GPU) gives the C++ backend's greedy tokens: paged kv_store and attention inside a
fused model, prompts prefilled in chunks across blocks, then decoded together."""
from __future__ import annotations

import torch

import braze

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_triton_paged_model_matches_cpp(tiny_checkpoints):
    path = str(tiny_checkpoints["qwen2"])
    kwargs = dict(max_model_len=64, max_num_seqs=2, max_num_batched_tokens=16, kv_block_size=8)
    triton_llm = braze.LLM(path, device=DEVICE, backend="triton", **kwargs)
    cpp_llm = braze.LLM(path, device="cpu", backend="cpp", **kwargs)
    params = braze.SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)
    prompts = ["Hello there", "a longer prompt that takes more tokens than the other one"]
    got = [o.token_ids for o in triton_llm.generate(prompts, params)]
    expected = [o.token_ids for o in cpp_llm.generate(prompts, params)]
    assert got == expected
