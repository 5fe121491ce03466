"""Batch invariance of the whole engine on the Triton kernels (braze/passes/batch_invariant.py, on by default).

- A decode token's logits alone and inside a step that also prefills another prompt's chunk are the
  same bits with the mode on, and differ with it off (GEMV + split-KV decode alone, a GEMM or cuBLAS
  + flash prefill in the mixed step: other summation orders, so the difference is not luck). On the
  CPU through Triton's interpreter (tiny llama, float32) and on the GPU (a TinyLlama-shaped model:
  its hidden size, heads and vocab, 2 layers, random bf16 weights).
- GPU: 14 greedy requests arriving at different steps (chunked prompts, mixed prefill/decode steps,
  CUDA graphs for the decode-only ones), slot and paged KV caches: each request's tokens equal its
  tokens alone.
The C++ backend's counterpart (invariant by construction) is in tests/runtime/test_engine.py.
"""
from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import braze  # noqa: E402
from braze.ir.interpret import TORCH_DTYPE  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_braze_cache")  # tests/conftest.py


@pytest.fixture(scope="module")
def tinyllama_2_layers(tmp_path_factory):
    from braze.bench.suite.checkpoint import make_checkpoint
    from braze.bench.suite.configs import MODEL_CONFIGS
    config = {**MODEL_CONFIGS["tinyllama-1.1b"], "num_hidden_layers": 2}
    return make_checkpoint("tinyllama-2-layers", config, "bfloat16", cache_dir=tmp_path_factory.mktemp("ckpt"),
                           say=lambda s: None)


def decode_logits_alone_and_mixed(llm, vocab: int, prompt_len: int, other_len: int):
    """Prefill a prompt into slot 0, then its next token's logits from a step with that token alone
    and (the cache restored) from a step with it and `other_len` prompt tokens of slot 1."""
    device = llm.device
    caches = {b.name: torch.zeros(b.shape, dtype=TORCH_DTYPE[b.dtype], device=device)
              for b in llm.executable.program.buffers if b.kind == "state"}

    def step(tokens, positions, slots, logits_index):
        ids = torch.tensor([tokens, positions, slots], dtype=torch.int64, device=device)
        feeds = {"tokens": ids[0], "positions": ids[1], "slots": ids[2],
                 "logits_index": torch.tensor(logits_index, dtype=torch.int64, device=device), **caches}
        return llm.executable.run(feeds)["logits"].clone()

    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, vocab, (prompt_len,), generator=g).tolist()
    other = torch.randint(3, vocab, (other_len,), generator=g).tolist()
    step(prompt, list(range(prompt_len)), [0] * prompt_len, [prompt_len - 1])
    saved = {k: v.clone() for k, v in caches.items()}
    alone = step([prompt[-1]], [prompt_len], [0], [0])[0]
    for k, v in saved.items():
        caches[k].copy_(v)
    mixed = step([prompt[-1]] + other, [prompt_len] + list(range(other_len)), [0] + [1] * other_len,
                 [0, other_len])[0]
    return alone, mixed


@pytest.mark.parametrize("invariant", [True, False])
def test_decode_logits_alone_equal_logits_in_a_mixed_step_interpreter(tiny_checkpoints, invariant):
    if torch.cuda.is_available():
        pytest.skip("the GPU test below covers this")
    llm = braze.LLM(str(tiny_checkpoints["llama"]), device="cpu", backend="triton", dtype="float32",
                    max_model_len=64, max_num_seqs=2, max_num_batched_tokens=32, batch_invariant=invariant)
    alone, mixed = decode_logits_alone_and_mixed(llm, 120, 20, 25)
    torch.testing.assert_close(alone, mixed, atol=1e-4, rtol=1e-4)
    assert torch.equal(alone, mixed) == invariant, f"max |diff| {(alone - mixed).abs().max().item()}"


@pytest.mark.parametrize("invariant", [True, False])
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_decode_logits_alone_equal_logits_in_a_mixed_step(tinyllama_2_layers, invariant):
    llm = braze.LLM(str(tinyllama_2_layers), device="cuda", dtype="bfloat16", max_model_len=128, max_num_seqs=4,
                    max_num_batched_tokens=64, enforce_eager=True, batch_invariant=invariant)
    alone, mixed = decode_logits_alone_and_mixed(llm, 32000, 40, 60)
    assert torch.equal(alone, mixed) == invariant, f"max |diff| {(alone - mixed).abs().max().item()}"


def staggered(llm, prompts, params) -> list[list[int]]:
    """Request i is added before step i (so prompts are chunked next to other requests' decodes)."""
    engine = llm.engine
    tokens = {i: [] for i in range(len(prompts))}
    pending = list(enumerate(prompts))
    while pending or engine.has_unfinished():
        if pending:
            i, prompt = pending.pop(0)
            engine.add_request(("staggered", i), prompt, params)
        for out in engine.step():
            tokens[out.request_id[1]] += out.new_token_ids
    return [tokens[i] for i in range(len(prompts))]


@pytest.mark.parametrize("kv_block_size", [None, 16])
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_greedy_alone_equals_staggered_batch_of_14(tinyllama_2_layers, kv_block_size):
    llm = braze.LLM(str(tinyllama_2_layers), device="cuda", dtype="bfloat16", max_model_len=160, max_num_seqs=16,
                    max_num_batched_tokens=64, kv_block_size=kv_block_size)
    assert llm.batch_invariant  # the default
    g = torch.Generator().manual_seed(1)
    lengths = (5, 90, 17, 9, 30, 2, 61, 11, 23, 7, 44, 3, 19, 26)
    prompts = [torch.randint(100, 32000, (n,), generator=g).tolist() for n in lengths]
    params = braze.SamplingParams(max_tokens=24, temperature=0, ignore_eos=True)
    alone = [llm.generate(prompt_token_ids=[p], sampling_params=params)[0].token_ids for p in prompts]
    together = staggered(llm, prompts, params)
    differ = [i for i, (a, b) in enumerate(zip(alone, together)) if a != b]
    assert not differ, f"requests {differ} differ alone vs in a staggered batch of {len(prompts)}"
