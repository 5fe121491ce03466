"""The engine over a paged KV cache (C++, float32, a tiny random Llama): greedy outputs equal the
slot cache's; with very few blocks requests are preempted and still all complete; a shared system
prompt hits the prefix cache, so fewer prompt tokens are computed and the outputs stay the same."""
from __future__ import annotations

import pytest
import torch

import braze
from braze.errors import InvalidArgumentError

GREEDY = braze.SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)
SETTINGS = dict(device="cpu", max_model_len=64, max_num_seqs=3, max_num_batched_tokens=24)
PROMPTS = [list(range(3, 3 + n)) for n in (5, 17, 1, 30, 9)] + [[7, 7, 8, 9] * 5]


def tokens_fed(llm) -> list[int]:
    """Wrap the executable: the returned list grows by each model step's token count."""
    fed, run = [], llm.executable.run

    def counting(feeds, **flags):
        fed.append(int(feeds["tokens"].numel()))
        return run(feeds, **flags)
    llm.executable.run = counting
    return fed


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoints):
    return str(tiny_checkpoints["llama"])


@pytest.fixture(scope="module")
def slot_outputs(checkpoint):
    llm = braze.LLM(checkpoint, **SETTINGS)
    return [o.token_ids for o in llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)]


def test_paged_engine_equals_slot_engine(checkpoint, slot_outputs):
    llm = braze.LLM(checkpoint, **SETTINGS, kv_block_size=8)
    out = llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)  # 6 requests over 3 rows
    assert [o.token_ids for o in out] == slot_outputs
    assert llm.engine.cache.used == 0  # every block released (cached prefixes are not "used")
    assert llm.engine.scheduler.num_preemptions == 0


def test_few_blocks_preempt_and_every_request_completes(checkpoint, slot_outputs):
    # 11 blocks of 4 tokens = 44 rows: each request (up to 40 tokens) fits alone, three together
    # do not, so running ones are preempted and recomputed later
    llm = braze.LLM(checkpoint, **SETTINGS, kv_block_size=4, num_kv_blocks=11)
    out = llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)
    assert llm.engine.scheduler.num_preemptions > 0
    assert [o.token_ids for o in out] == slot_outputs
    assert all(o.finish_reason == "length" for o in out)
    assert llm.engine.cache.used == 0


def test_prompt_larger_than_the_whole_pool_is_refused(checkpoint):
    llm = braze.LLM(checkpoint, **SETTINGS, kv_block_size=4, num_kv_blocks=8)
    with pytest.raises(braze.errors.PromptTooLongError, match="33 tokens.*holds 32"):
        llm.generate(prompt_token_ids=[list(range(3, 36))])


def test_shared_system_prompt_hits_the_prefix_cache(checkpoint):
    system = [(5 * i) % 90 + 3 for i in range(21)]  # 21 tokens: two full blocks of 8 and 5 more
    questions = [[40, 41, 42], [50], [60, 61, 62, 63, 64, 65, 66, 67, 68, 69]]
    prompts = [system + q for q in questions]
    outputs, fed = {}, {}
    for caching in (False, True):
        llm = braze.LLM(checkpoint, **SETTINGS, kv_block_size=8, prefix_caching=caching)
        counter = tokens_fed(llm)
        first = llm.generate(prompt_token_ids=prompts[:1], sampling_params=GREEDY)  # fills the cache
        rest = llm.generate(prompt_token_ids=prompts[1:], sampling_params=GREEDY)
        outputs[caching] = [o.token_ids for o in first + rest]
        fed[caching] = sum(counter)
        hits = llm.engine.cache.blocks.hits
    assert outputs[True] == outputs[False]
    # the two later prompts each skip the system prompt's two full blocks
    assert hits == 2 * 16
    assert fed[False] - fed[True] == 2 * 16


def test_bad_block_size_is_a_clear_error(checkpoint):
    with pytest.raises(InvalidArgumentError, match="at least one block of at least one row"):
        braze.LLM(checkpoint, **SETTINGS, kv_block_size=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_paged_engine_with_cuda_graphs(checkpoint):
    """Triton paged kernels, decode replayed from CUDA graphs (padding rows write the spare block):
    the same greedy tokens as launching each step eagerly, and as the slot cache."""
    settings = dict(SETTINGS, device="cuda")
    graphed = braze.LLM(checkpoint, **settings, kv_block_size=16)
    eager = braze.LLM(checkpoint, **settings, kv_block_size=16, enforce_eager=True)
    slot = braze.LLM(checkpoint, **settings)
    outputs = [[o.token_ids for o in llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY)]
               for llm in (graphed, eager, slot)]
    assert outputs[0] == outputs[1] == outputs[2]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_greedy_chunks_launched_ahead_equal_eager_steps(checkpoint):
    """Greedy decode with CUDA graphs enqueues the next 8-token chunk before reading the last one.
    Long runs equal eager stepping; a stop token in the middle of a chunk drops the chunk launched
    ahead (its rows were reserved), and the next requests on the same cache are unaffected."""
    settings = dict(SETTINGS, device="cuda")
    long = braze.SamplingParams(max_tokens=40, temperature=0, ignore_eos=True)
    graphed = braze.LLM(checkpoint, **settings, kv_block_size=8)
    eager = braze.LLM(checkpoint, **settings, kv_block_size=8, enforce_eager=True)
    for prompts in (PROMPTS[:1], PROMPTS[1:4]):
        want = [o.token_ids for o in eager.generate(prompt_token_ids=prompts, sampling_params=long)]
        steps = graphed.engine.num_steps
        got = [o.token_ids for o in graphed.generate(prompt_token_ids=prompts, sampling_params=long)]
        assert got == want
        if len(prompts) == 1:  # one prompt step, then 39 tokens in chunks of 8 (the last one 7)
            assert graphed.engine.num_steps - steps == 1 + 5
    # a stop token 11 tokens in: inside the second chunk, while the third is already launched
    want = eager.generate(prompt_token_ids=PROMPTS[:1], sampling_params=long)[0].token_ids
    stop = braze.SamplingParams(max_tokens=40, temperature=0, ignore_eos=True, stop_token_ids=[want[10]])
    got = graphed.generate(prompt_token_ids=PROMPTS[:1], sampling_params=stop)[0].token_ids
    assert got == want[: want.index(want[10]) + 1]
    after = [o.token_ids for o in graphed.generate(prompt_token_ids=PROMPTS[3:], sampling_params=long)]
    assert after == [o.token_ids for o in eager.generate(prompt_token_ids=PROMPTS[3:], sampling_params=long)]
