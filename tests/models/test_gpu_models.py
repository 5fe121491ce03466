"""Whole models on the GPU against transformers on the GPU (marked gpu: run on a CUDA machine).

float32: greedy tokens equal for 32 tokens. bfloat16: teacher-forced top-1 agreement >= 99% over
512 positions. Sizes are SmolLM2's odd ones (hidden 576, 9 heads, 3 KV heads, vocab 49152).
"""
from __future__ import annotations

import pytest
import torch

import braze

pytestmark = pytest.mark.gpu
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def smol_shaped_checkpoint(tmp_path_factory):
    import transformers

    from tests.conftest import _spread_init, build_tiny_tokenizer

    config = transformers.LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=4,
                                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=1024,
                                      rms_norm_eps=1e-5, tie_word_embeddings=True, rope_theta=100000.0)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).float().eval()
    _spread_init(model)
    folder = tmp_path_factory.mktemp("smol_shaped")
    model.save_pretrained(folder)
    build_tiny_tokenizer().save_pretrained(folder)
    return folder


def _reference(folder, dtype):
    import transformers
    return transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).cuda().eval()


@cuda
@pytest.mark.parametrize("enforce_eager", [False, True])
def test_float32_greedy_equals_transformers(smol_shaped_checkpoint, enforce_eager):
    llm = braze.LLM(str(smol_shaped_checkpoint), device="cuda", dtype="float32", max_model_len=256,
                    max_num_seqs=2, enforce_eager=enforce_eager)
    ref = _reference(smol_shaped_checkpoint, torch.float32)
    gen = torch.Generator().manual_seed(1)
    for length in (7, 37):
        prompt = torch.randint(3, 300, (length,), generator=gen).tolist()
        got = llm.generate(prompt_token_ids=[prompt],
                           sampling_params=braze.SamplingParams(max_tokens=32, temperature=0, ignore_eos=True))
        ids = list(prompt)
        with torch.inference_mode():
            for _ in range(32):
                ids.append(int(ref(torch.tensor([ids], device="cuda")).logits[0, -1].argmax()))
        assert got[0].token_ids == ids[length:]


@cuda
def test_bfloat16_teacher_forced_top1_agreement(smol_shaped_checkpoint):
    llm = braze.LLM(str(smol_shaped_checkpoint), device="cuda", dtype="bfloat16", max_model_len=600,
                    max_num_seqs=1, max_num_batched_tokens=512)
    ref = _reference(smol_shaped_checkpoint, torch.bfloat16)
    tokens = torch.randint(3, 49152, (513,), generator=torch.Generator().manual_seed(2)).tolist()
    with torch.inference_mode():
        expected = ref(torch.tensor([tokens[:512]], device="cuda")).logits[0].float().argmax(-1)
    # feed the reference's input one position at a time: every position's logits, through the decode path
    predicted = [int(llm.engine._step([tokens[pos]], [pos], [0], [0])[0].argmax()) for pos in range(512)]
    agree = sum(int(a == b) for a, b in zip(predicted, expected.tolist()))
    assert agree / 512 >= 0.99, agree


@cuda
def test_prefill_and_mixed_steps_from_cuda_graphs_equal_eager(smol_shaped_checkpoint):
    """Prefill and mixed prefill/decode steps replayed from token-bucket CUDA graphs (padding rows
    write the spare slot): the same float32 greedy tokens as launching every step eagerly, for
    prompts in the power-of-two buckets and past 512 tokens (multiples of 256), several at once."""
    settings = dict(device="cuda", dtype="float32", max_model_len=1024, max_num_seqs=4, max_num_batched_tokens=1024)
    graphed = braze.LLM(str(smol_shaped_checkpoint), **settings)
    eager = braze.LLM(str(smol_shaped_checkpoint), **settings, enforce_eager=True)
    gen = torch.Generator().manual_seed(2)
    prompts = [torch.randint(3, 300, (n,), generator=gen).tolist() for n in (5, 70, 600, 33)]
    params = braze.SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
    outs = [[o.token_ids for o in llm.generate(prompt_token_ids=prompts, sampling_params=params)]
            for llm in (graphed, eager)]
    assert outs[0] == outs[1]
    assert graphed.engine.step_graphs.graphs  # the prefill steps did run from graphs


@cuda
def test_step_graph_captured_before_a_larger_step_still_replays_right(smol_shaped_checkpoint):
    """A short prompt's step graph, then a long prompt (library matmuls stage through workspaces
    sized by the largest step), then the short prompt again: the same tokens every time as eager
    (a graph replaying into an outgrown workspace read freed memory)."""
    settings = dict(device="cuda", dtype="float32", max_model_len=1024, max_num_seqs=1, max_num_batched_tokens=1024)
    graphed = braze.LLM(str(smol_shaped_checkpoint), **settings)
    eager = braze.LLM(str(smol_shaped_checkpoint), **settings, enforce_eager=True)
    gen = torch.Generator().manual_seed(3)
    short, long = (torch.randint(3, 300, (n,), generator=gen).tolist() for n in (20, 700))
    params = braze.SamplingParams(max_tokens=8, temperature=0, ignore_eos=True)

    def tokens(llm, prompt):
        return llm.generate(prompt_token_ids=[prompt], sampling_params=params)[0].token_ids
    want_short, want_long = tokens(eager, short), tokens(eager, long)
    assert [tokens(graphed, p) for p in (short, long, short)] == [want_short, want_long, want_short]
