"""Whole models against Hugging Face transformers: greedy tokens equal, logits close (float32, CPU)."""
from __future__ import annotations

import pytest
import torch
import transformers

import braze
from braze.frontend import embedded_model_path

PROMPTS = ["Hello, my name is", "The capital of France is", "def add(a, b):\n    return", "12345 + 678 ="]
NEW_TOKENS = 24


def hf_greedy(model, ids: list[int], n: int) -> list[int]:
    out = list(ids)
    with torch.inference_mode():
        for _ in range(n):
            out.append(int(model(torch.tensor([out])).logits[0, -1].argmax()))
    return out[len(ids):]


def greedy(n: int = NEW_TOKENS) -> braze.SamplingParams:
    return braze.SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)


@pytest.fixture(scope="module")
def tiny_llms(tiny_checkpoints):
    return {family: braze.LLM(str(path), max_model_len=128, max_num_seqs=4, max_num_batched_tokens=64)
            for family, path in tiny_checkpoints.items()}


@pytest.mark.parametrize("family", ["llama", "llama3_rope", "mistral", "qwen2", "qwen3"])
def test_greedy_tokens_equal_transformers(family, tiny_checkpoints, tiny_llms):
    llm = tiny_llms[family]
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_checkpoints[family]), dtype=torch.float32).eval()
    for prompt in PROMPTS:
        ids = llm.tokenizer.encode(prompt)
        got = llm.generate(prompt_token_ids=[ids], sampling_params=greedy())[0].token_ids
        assert got == hf_greedy(ref, ids, NEW_TOKENS), f"{family}: {prompt!r}"


def test_batch_of_different_lengths_equals_one_at_a_time(tiny_llms):
    llm = tiny_llms["qwen2"]
    prompts = PROMPTS + ["a", "a much longer prompt that needs several prefill chunks " * 2]
    batched = llm.generate(prompts, greedy(12))  # 6 prompts over 4 cache slots: some wait for a slot
    for prompt, out in zip(prompts, batched):
        alone = llm.generate(prompt, greedy(12))[0]
        assert out.token_ids == alone.token_ids
        assert out.prompt == prompt


def test_logits_close_to_transformers(tiny_checkpoints):
    path = tiny_checkpoints["qwen3"]
    llm = braze.LLM(str(path), max_model_len=64, max_num_seqs=1)
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    ids = llm.tokenizer.encode(PROMPTS[0])
    logits = llm.engine._step(ids, list(range(len(ids))), [0] * len(ids), [len(ids) - 1])
    with torch.inference_mode():
        expected = ref(torch.tensor([ids])).logits[0, -1]
    torch.testing.assert_close(logits[0], expected, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def smollm2():
    return braze.LLM("smollm2", max_model_len=256, max_num_seqs=2)


def test_smollm2_gguf_greedy_equals_transformers(smollm2):
    path = embedded_model_path("smollm2")
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                            dtype=torch.float32).eval()
    for prompt in PROMPTS[:3]:
        ids = smollm2.tokenizer.encode(prompt)
        got = smollm2.generate(prompt_token_ids=[ids], sampling_params=greedy())[0].token_ids
        assert got == hf_greedy(ref, ids, NEW_TOKENS), prompt


def test_smollm2_answers_paris(smollm2):
    out = smollm2.chat([{"role": "user", "content": "What is the capital of France?"}],
                       braze.SamplingParams(max_tokens=24, temperature=0))
    assert "Paris" in out[0].text
    assert out[0].finish_reason in ("stop", "length")


def test_sampling_is_seeded_and_stop_strings_cut(smollm2):
    params = braze.SamplingParams(max_tokens=16, temperature=0.8, top_p=0.9, seed=1234, ignore_eos=True)
    a = smollm2.generate("Once upon a time", params)[0]
    b = smollm2.generate("Once upon a time", params)[0]
    assert a.token_ids == b.token_ids
    full = smollm2.generate("The capital of France is", greedy(16))[0].text
    stop = full.strip().split()[1]  # a word the greedy continuation is known to contain
    cut = smollm2.generate("The capital of France is", braze.SamplingParams(max_tokens=16, temperature=0, stop=[stop]))[0]
    assert stop not in cut.text and full.startswith(cut.text) and cut.finish_reason == "stop"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_teacher_forced_top1_agreement(dtype, tiny_checkpoints):
    path = tiny_checkpoints["qwen2"]
    llm = braze.LLM(str(path), dtype=dtype, max_model_len=128, max_num_seqs=1)
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype)).eval()
    ids = llm.tokenizer.encode("Hello there, this is a test of the emergency broadcast system " * 2)
    with torch.inference_mode():
        expected = ref(torch.tensor([ids])).logits[0].float().argmax(-1)
    logits = llm.engine._step(ids, list(range(len(ids))), [0] * len(ids), [len(ids) - 1])
    assert logits.dtype == torch.float32
    agree = sum(int(llm.engine._step(ids[:t], list(range(t)), [0] * t, [t - 1])[0].argmax() == expected[t - 1])
                for t in range(1, len(ids) + 1))
    assert agree / len(ids) >= 0.95
