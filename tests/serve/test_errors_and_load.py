"""Bad requests get 4xx with OpenAI's error body; a client that goes away mid-stream frees its
cache; 200 requests at 32 concurrent all complete; a tiny cache preempts and still completes all."""
from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from serve_testlib import API_KEY, MODEL, RunningServer

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def post(server, path, body, headers=AUTH):
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=60)


def error_of(response, status):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["message"]
    return error


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
COMPLETION = {"model": MODEL, "prompt": "hi", "max_tokens": 4}


@pytest.mark.parametrize("path,change,status,says", [
    ("/v1/completions", {"model": "gpt-4"}, 404, "does not exist"),
    ("/v1/chat/completions", {"model": "gpt-4"}, 404, "does not exist"),
    ("/v1/completions", {"max_tokens": 0}, 400, "max_tokens"),
    ("/v1/completions", {"max_tokens": -3}, 400, "max_tokens"),
    ("/v1/completions", {"temperature": -0.5}, 400, "temperature"),
    ("/v1/completions", {"top_p": 0}, 400, "top_p"),
    ("/v1/completions", {"prompt": "word " * 300}, 400, "context"),
    ("/v1/completions", {"max_tokens": 1000}, 400, "context"),
    ("/v1/completions", {"prompt": ""}, 400, "empty"),
    ("/v1/completions", {"prompt": [5, 10**9]}, 400, "vocabulary"),
    ("/v1/completions", {"prompt": ["a", "b"]}, 400, "one prompt"),
    ("/v1/completions", {"n": 2}, 400, "n=2 is not supported"),
    ("/v1/completions", {"logprobs": 2}, 400, "logprobs"),
    ("/v1/completions", {"stop": [""]}, 400, "stop"),
    ("/v1/completions", {"prompt": None}, 400, "prompt"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages is empty"),
    ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
    ("/v1/chat/completions", {"logprobs": True}, 400, "logprobs"),
    ("/v1/chat/completions", {"temperature": "hot"}, 400, "temperature"),
])
def test_bad_requests_get_4xx_with_a_clear_message(server, path, change, status, says):
    body = {**(CHAT if "chat" in path else COMPLETION), **change}
    error = error_of(post(server, path, body), status)
    assert says in error["message"]


def test_api_key_and_unknown_routes(server):
    assert error_of(post(server, "/v1/completions", COMPLETION, headers={}), 401)["code"] == "invalid_api_key"
    error_of(post(server, "/v1/completions", COMPLETION, headers={"Authorization": "Bearer nope"}), 401)
    error_of(httpx.get(f"{server.url}/v1/models", timeout=10), 401)
    error_of(httpx.get(f"{server.url}/v1/nothing", headers=AUTH, timeout=10), 404)
    broken = httpx.post(f"{server.url}/v1/completions", content=b"{not json", timeout=10,
                        headers={**AUTH, "content-type": "application/json"})
    error_of(broken, 400)
    assert httpx.get(f"{server.url}/health", timeout=10).json() == {"status": "ok"}  # open without a key


def metric(server, name: str, labels: str = "") -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def test_metrics_are_prometheus_text_prefixed_braze(server, client):
    client.completions.create(model=MODEL, prompt="Hi", max_tokens=3, temperature=0)
    for name in ("braze_requests_waiting", "braze_requests_running", "braze_kv_cache_used_blocks",
                 "braze_kv_cache_total_blocks", "braze_generation_tokens_total", "braze_prompt_tokens_total",
                 "braze_time_to_first_token_seconds_count", "braze_time_per_output_token_seconds_count",
                 "braze_preemptions_total"):
        metric(server, name)
    assert metric(server, "braze_kv_cache_total_blocks") == 8 * 256
    assert metric(server, "braze_time_to_first_token_seconds_count") >= 1


def test_a_client_leaving_mid_stream_frees_its_cache(server):
    server.wait_idle()
    aborted = metric(server, "braze_requests_finished_total", '{finish_reason="abort"}') \
        if "abort" in httpx.get(f"{server.url}/metrics").text else 0.0
    body = {"model": MODEL, "prompt": "Tell me a long story.", "max_tokens": 200, "temperature": 0,
            "ignore_eos": True, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, headers=AUTH, timeout=60) as r:
        lines = r.iter_lines()
        while next(lines) == "" or server.engine_stats["kv_used"] < 10:
            pass  # a few tokens in: the request holds cache rows now
        assert server.engine_stats["running"] == 1
    deadline = time.monotonic() + 10
    while server.engine_stats["kv_used"] and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = server.engine_stats
    assert stats["kv_used"] == 0 and stats["running"] == 0
    assert metric(server, "braze_kv_cache_used_blocks") == 0
    assert metric(server, "braze_requests_finished_total", '{finish_reason="abort"}') == aborted + 1


def test_200_requests_at_32_concurrent_lose_none(server, async_client):
    async def load():
        gate = asyncio.Semaphore(32)
        async with async_client() as aclient:
            async def one(i):
                async with gate:
                    return await aclient.completions.create(model=MODEL, prompt=f"Request {i}:", max_tokens=4,
                                                            temperature=0, stream=i % 2 == 1)
            results = await asyncio.gather(*(one(i) for i in range(200)), return_exceptions=True)
            finishes = []
            for r in results:
                if isinstance(r, Exception):
                    finishes.append(repr(r))
                elif hasattr(r, "choices"):
                    finishes.append(r.choices[0].finish_reason)
                else:  # a stream: its last chunk says why it ended
                    finishes.append([c async for c in r][-1].choices[0].finish_reason)
            return finishes

    finishes = asyncio.run(load())
    assert len(finishes) == 200 and all(f in ("stop", "length") for f in finishes), finishes
    assert server.wait_idle()["kv_used"] == 0


def test_a_tiny_cache_preempts_and_completes_every_request(smollm2_llm, server, client):
    """A second server whose engine (same compiled model, its own cache) holds 200 tokens: 10
    requests growing to ~45 tokens each get preempted and recomputed, and answer as they do alone."""
    from braze.runtime.engine import Engine
    from braze.runtime.scheduler import SlotCacheManager
    from braze.serve import build_app

    prompts = [f"Question {i}: what is {i} plus {i}? Answer:" for i in range(10)]
    alone = [client.completions.create(model=MODEL, prompt=p, max_tokens=24, temperature=0,
                                       extra_body={"ignore_eos": True}).choices[0].text for p in prompts]
    server.wait_idle()  # the two engines share the compiled program's buffers: one at a time
    llm = smollm2_llm
    engine = Engine(llm.executable, 8, llm.max_model_len, 128, llm.tokenizer.eos_token_ids, llm.tokenizer.decode,
                    cache_manager=SlotCacheManager(8, llm.max_model_len, capacity=200))
    tight = RunningServer(build_app(llm, MODEL, api_key=API_KEY, engine=engine))
    try:
        async def together():
            import openai
            async with openai.AsyncOpenAI(base_url=f"{tight.url}/v1", api_key=API_KEY, max_retries=0,
                                          timeout=300) as aclient:
                return await asyncio.gather(*(aclient.completions.create(
                    model=MODEL, prompt=p, max_tokens=24, temperature=0, extra_body={"ignore_eos": True})
                    for p in prompts))

        results = asyncio.run(together())
        assert [r.choices[0].text for r in results] == alone
        assert all(r.usage.completion_tokens == 24 for r in results)
        assert metric(tight, "braze_preemptions_total") > 0 and tight.wait_idle()["kv_used"] == 0
    finally:
        tight.stop()
