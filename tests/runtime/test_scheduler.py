"""The scheduler alone (no model): FCFS admission, the token budget, chunked prefill, preemption.

A fake step 'computes' what was scheduled (cached += count) and appends a token to sequences
that reached their last token, as the engine does."""
from __future__ import annotations

import pytest

from braze.errors import InvalidArgumentError
from braze.runtime.sampling import SamplingParams
from braze.runtime.scheduler import Scheduler, Sequence, SlotCacheManager

_arrival = iter(range(10**6))


def seq(prompt_len: int, name: str = "") -> Sequence:
    return Sequence(name or f"r{prompt_len}", next(_arrival), list(range(prompt_len)), SamplingParams(), None)


def run_step(scheduler: Scheduler) -> dict[str, int]:
    step = scheduler.schedule()
    for s, start, count in step.chunks:
        assert start == s.cached and s.slot >= 0
        s.cached = start + count
        if s.cached == len(s.tokens):
            s.output.append(7)
    return {s.request_id: count for s, _, count in step.chunks}


def test_budget_chunks_prompts_and_decodes_come_first():
    cache = SlotCacheManager(num_slots=4, context=64)
    scheduler = Scheduler(cache, max_num_seqs=4, max_num_batched_tokens=8)
    a, b = seq(3, "a"), seq(20, "b")
    scheduler.add(a)
    scheduler.add(b)
    assert run_step(scheduler) == {"a": 3, "b": 5}  # b's prompt is chunked
    assert run_step(scheduler) == {"a": 1, "b": 7}  # a decodes, b goes on
    assert run_step(scheduler) == {"a": 1, "b": 7}
    assert run_step(scheduler) == {"a": 1, "b": 1}  # b's last prompt token: b samples
    assert len(b.output) == 1 and b.cached == 20 and cache.used == a.cached + b.cached


def test_fcfs_and_max_num_seqs():
    cache = SlotCacheManager(num_slots=4, context=64)
    scheduler = Scheduler(cache, max_num_seqs=2, max_num_batched_tokens=64)
    seqs = [seq(4, f"r{i}") for i in range(4)]
    for s in seqs:
        scheduler.add(s)
    assert set(run_step(scheduler)) == {"r0", "r1"}
    scheduler.remove(seqs[0])  # finished: its slot frees at once
    assert set(run_step(scheduler)) == {"r1", "r2"}
    assert [s.request_id for s in scheduler.waiting] == ["r3"]


def test_oldest_waiting_request_is_not_overtaken():
    cache = SlotCacheManager(num_slots=4, context=64, capacity=30)
    scheduler = Scheduler(cache, max_num_seqs=4, max_num_batched_tokens=64)
    big, small = seq(40, "big"), seq(2, "small")
    scheduler.add(seq(20, "first"))
    run_step(scheduler)
    scheduler.add(big)
    scheduler.add(small)
    assert set(run_step(scheduler)) == {"first"}  # small waits behind big, which does not fit yet


def test_preemption_pushes_back_the_newest_and_recomputes_it():
    cache = SlotCacheManager(num_slots=3, context=64, capacity=14)
    scheduler = Scheduler(cache, max_num_seqs=3, max_num_batched_tokens=32)
    a, b, c = seq(5, "a"), seq(4, "b"), seq(4, "c")
    for s in (a, b, c):
        scheduler.add(s)
    assert run_step(scheduler) == {"a": 5, "b": 4, "c": 4}  # 13 of 14 tokens
    # the next decode needs 3 more rows; only 1 is free: c (the newest) is preempted
    assert run_step(scheduler) == {"a": 1, "b": 1}
    assert scheduler.num_preemptions == 1 and c.cached == 0 and c.slot == -1 and c.preemptions == 1
    assert scheduler.waiting == [c] and cache.used == 6 + 5
    scheduler.remove(a)  # a finishes: c comes back with its prompt and its token to recompute
    assert run_step(scheduler) == {"b": 1, "c": 5}
    assert len(c.output) == 2


def test_a_sequence_the_cache_cannot_hold_alone_ends():
    cache = SlotCacheManager(num_slots=2, context=64, capacity=6)
    scheduler = Scheduler(cache, max_num_seqs=2, max_num_batched_tokens=32)
    a = seq(5, "a")
    scheduler.add(a)
    run_step(scheduler)
    run_step(scheduler)  # 6 rows
    step = scheduler.schedule()
    assert step.out_of_cache == [a] and not step.chunks and cache.used == 0 and not scheduler.running


def test_release_frees_at_once_and_budget_must_cover_the_batch():
    cache = SlotCacheManager(num_slots=2, context=16)
    scheduler = Scheduler(cache, max_num_seqs=2, max_num_batched_tokens=16)
    a = seq(9, "a")
    scheduler.add(a)
    run_step(scheduler)
    assert cache.used == 9
    scheduler.remove(a)
    assert cache.used == 0 and cache.free_slots == [0, 1]
    with pytest.raises(InvalidArgumentError, match="max_num_batched_tokens"):
        Scheduler(cache, max_num_seqs=8, max_num_batched_tokens=4)


# -- the engine's continuous API on a tiny random Llama (CPU, float32) ------------------------

import torch  # noqa: E402

import braze  # noqa: E402
from braze.runtime import engine as engine_module  # noqa: E402
from braze.runtime.engine import Engine  # noqa: E402

PROMPTS = [list(range(3, 3 + n)) for n in (5, 17, 9, 30, 2, 11)]


@pytest.fixture(scope="module")
def llm(tiny_checkpoints):
    return braze.LLM(str(tiny_checkpoints["llama"]), device="cpu", max_model_len=64, max_num_seqs=4,
                     max_num_batched_tokens=32)


def new_engine(llm, *, capacity=None, budget=32, max_num_seqs=4) -> Engine:
    """A second engine (its own cache) over the same compiled program."""
    cache = SlotCacheManager(4, llm.max_model_len, capacity)
    return Engine(llm.executable, 4, llm.max_model_len, budget, llm.tokenizer.eos_token_ids, llm.tokenizer.decode,
                  max_num_seqs=max_num_seqs, cache_manager=cache)


def greedy(n=12):
    return SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)


def drain(engine: Engine, arrivals: dict[int, list] | None = None) -> dict:
    """Step until done; arrivals[step] = [(id, prompt, params)] join at that step. Returns
    id -> (tokens, finish_reason), checking that a finish comes once and last."""
    arrivals = dict(arrivals or {})
    got: dict = {}
    step = 0
    while engine.has_unfinished() or arrivals:
        for rid, prompt, params in arrivals.pop(step, []):
            engine.add_request(rid, prompt, params)
        for out in engine.step():
            tokens, reason = got.get(out.request_id, ([], None))
            assert reason is None, f"{out.request_id} got tokens after it finished"
            got[out.request_id] = (tokens + out.new_token_ids, out.finish_reason)
        step += 1
    return got


def alone(llm, prompt, params):
    return llm.generate(prompt_token_ids=[prompt], sampling_params=params)[0].token_ids


def record_logits(monkeypatch) -> dict:
    """params object -> the logits rows its tokens were sampled from."""
    rows: dict = {}
    real = engine_module.sample

    def spy(logits, params, generators):
        for row, p in zip(logits, params):
            rows.setdefault(id(p), []).append(row.clone())
        return real(logits, params, generators)

    monkeypatch.setattr(engine_module, "sample", spy)
    return rows


def test_requests_joining_mid_flight_get_bit_identical_logits(llm, monkeypatch):
    """Batch invariance on the CPU: each request's logits alone equal its logits among others that
    arrive at different steps (chunked prompts and decodes mixed in one step)."""
    rows = record_logits(monkeypatch)
    params = [greedy() for _ in PROMPTS]
    for prompt, p in zip(PROMPTS, params):
        drain(new_engine(llm, budget=32), {0: [("x", prompt, p)]})
    single = {k: list(v) for k, v in rows.items()}
    rows.clear()
    engine = new_engine(llm, budget=12)  # 30-token prompt: 3 chunks beside the decodes
    got = drain(engine, {0: [(0, PROMPTS[0], params[0]), (1, PROMPTS[1], params[1])],
                         3: [(2, PROMPTS[2], params[2]), (3, PROMPTS[3], params[3])],
                         7: [(4, PROMPTS[4], params[4]), (5, PROMPTS[5], params[5])]})
    for p in params:
        assert len(rows[id(p)]) == len(single[id(p)]) == 12
        assert all(torch.equal(a, b) for a, b in zip(single[id(p)], rows[id(p)]))
    assert all(len(tokens) == 12 and reason == "length" for tokens, reason in got.values())
    assert engine.stats()["kv_used"] == 0 and engine.stats()["preemptions"] == 0


def test_generate_is_a_loop_over_the_step_api(llm):
    params = greedy(10)
    batch = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params)
    assert [o.token_ids for o in batch] == [alone(llm, p, params) for p in PROMPTS]
    assert llm.engine.stats() == {**llm.engine.stats(), "waiting": 0, "running": 0, "kv_used": 0}


def test_seeded_sampling_is_the_same_alone_and_in_a_batch(llm):
    params = [SamplingParams(max_tokens=10, temperature=0.9, top_p=0.9, seed=s, ignore_eos=True) for s in range(6)]
    batch = llm.generate(prompt_token_ids=PROMPTS, sampling_params=params)
    assert [o.token_ids for o in batch] == [alone(llm, pr, p) for pr, p in zip(PROMPTS, params)]


def test_out_of_cache_preempts_and_every_request_completes(llm):
    """A cache of 60 tokens for requests that grow to 19..54: preemption by recomputation keeps
    the greedy output of each equal to its output alone."""
    engine = new_engine(llm, capacity=60)
    params = greedy(24)
    got = drain(engine, {0: [(i, p, params) for i, p in enumerate(PROMPTS)]})
    assert engine.stats()["preemptions"] > 0
    for i, prompt in enumerate(PROMPTS):
        assert got[i] == (alone(llm, prompt, params), "length")
    assert engine.stats()["kv_used"] == 0


def test_abort_frees_the_cache_at_once(llm):
    engine = new_engine(llm)
    engine.add_request("a", PROMPTS[3], greedy(40))
    engine.add_request("b", PROMPTS[0], greedy(40))
    engine.add_request("c", PROMPTS[1], greedy(40))
    for _ in range(3):
        engine.step()
    before = engine.stats()
    assert before["running"] == 3 and before["kv_used"] > 0
    assert engine.abort("a") and not engine.abort("a") and engine.abort("c")
    after = engine.stats()
    # a: 30 prompt + 2 decodes, c: 17 + 1, b: 5 + 1 (b's prompt was chunked behind a's)
    assert after["running"] == 1 and before["kv_used"] == 32 + 18 + 6 and after["kv_used"] == 6
    assert engine.has_unfinished()
    engine.abort("b")
    assert not engine.has_unfinished() and engine.stats()["kv_used"] == 0 and engine.step() == []


def test_a_request_the_cache_cannot_hold_ends_with_length(llm):
    engine = new_engine(llm, capacity=20)
    got = drain(engine, {0: [("long", PROMPTS[1], greedy(30))]})
    tokens, reason = got["long"]
    assert reason == "length" and len(tokens) == 20 - 17 + 1  # rows 17..19 filled, one token past them
    with pytest.raises(braze.errors.PromptTooLongError, match="whole KV cache holds 20"):
        engine.add_request("too long", PROMPTS[3], greedy())
    with pytest.raises(InvalidArgumentError, match="already running"):
        engine.add_request("x", PROMPTS[0], greedy())
        engine.add_request("x", PROMPTS[0], greedy())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_gpu_greedy_output_alone_equals_output_in_a_batch(tiny_checkpoints, dtype):
    """Batch invariance on the GPU (Triton kernels, CUDA graphs for decode): 12 requests at once,
    each equal to itself alone. Kernels that pick their reduction order by the step's token count
    (GEMV/split-K at small M, cuBLAS above 16 rows, split-KV decode attention up to 16 tokens) can
    break this; the assertion message names the requests that differ."""
    llm = braze.LLM(str(tiny_checkpoints["llama"]), device="cuda", dtype=dtype, max_model_len=96, max_num_seqs=16,
                    max_num_batched_tokens=64)
    prompts = [list(range(3 + i, 3 + i + n)) for i, n in enumerate((5, 17, 9, 30, 2, 11, 23, 7, 14, 3, 19, 26))]
    params = greedy(24)
    alone_out = [alone(llm, p, params) for p in prompts]
    batch = [o.token_ids for o in llm.generate(prompt_token_ids=prompts, sampling_params=params)]
    differ = [i for i, (a, b) in enumerate(zip(alone_out, batch)) if a != b]
    assert not differ, f"requests {differ} differ alone vs in a batch of 12 ({dtype})"
