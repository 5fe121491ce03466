"""The server through the official openai client over loopback HTTP: completions, chat, streaming,
stop strings, seeds, and concurrent requests each equal to the same request alone."""
from __future__ import annotations

import asyncio
import json

import httpx

from serve_testlib import API_KEY, MODEL

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time", "The largest planet is",
           "1, 2, 3, 4,", "Water boils at", "My favourite colour is", "import numpy as np\n",
           "The quick brown fox", "In 1492, Columbus", "Photosynthesis is", "Hello! How are"]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def complete(client, prompt, **kw):
    return client.completions.create(model=MODEL, prompt=prompt, **{"max_tokens": 12, "temperature": 0, **kw})


def test_models_lists_the_served_model(client):
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL] and models[0].max_model_len == 256


def test_completion_reports_text_usage_and_finish(client, smollm2_llm):
    r = complete(client, "The capital of France is", max_tokens=8, extra_body={"ignore_eos": True})
    choice = r.choices[0]
    assert r.object == "text_completion" and r.model == MODEL and choice.finish_reason == "length"
    assert "Paris" in choice.text
    prompt_tokens = len(smollm2_llm.tokenizer.encode("The capital of France is"))
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == \
        (prompt_tokens, 8, prompt_tokens + 8)
    ids = client.completions.create(model=MODEL, prompt=smollm2_llm.tokenizer.encode("The capital of France is"),
                                    max_tokens=8, temperature=0, extra_body={"ignore_eos": True})
    assert ids.choices[0].text == choice.text  # token ids in, same answer


def test_chat_uses_the_chat_template(client):
    r = client.chat.completions.create(model=MODEL, temperature=0, max_tokens=24,
                                       messages=[{"role": "system", "content": "You are a helpful assistant."},
                                                 {"role": "user", "content": "What is the capital of France?"}])
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert "Paris" in r.choices[0].message.content and r.choices[0].finish_reason == "stop"


def test_streamed_chunks_join_to_the_whole_text(client):
    whole = complete(client, "Once upon a time", max_tokens=24)
    chunks = list(complete(client, "Once upon a time", max_tokens=24, stream=True,
                           stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens

    messages = [{"role": "user", "content": "Name three colours."}]
    chat = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=20)
    deltas = list(client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=20,
                                                 stream=True))
    assert deltas[0].choices[0].delta.role == "assistant"
    assert "".join(d.choices[0].delta.content or "" for d in deltas) == chat.choices[0].message.content


def test_the_raw_stream_is_sse_ending_with_done(server):
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 4, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, headers=AUTH, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] in ("stop", "length")


def test_stop_strings_cut_alike_streamed_or_not(client):
    whole = complete(client, "1, 2, 3, 4,", max_tokens=30, stop=[", 9"])
    text = whole.choices[0].text
    assert whole.choices[0].finish_reason == "stop" and ", 9" not in text and text.rstrip().endswith("8")
    streamed = "".join(c.choices[0].text for c in complete(client, "1, 2, 3, 4,", max_tokens=30, stop=[", 9"],
                                                          stream=True))
    assert streamed == text


def test_seeded_sampling_repeats(client):
    a, b = (complete(client, "Once upon a time", max_tokens=16, temperature=1.0, seed=7).choices[0].text
            for _ in range(2))
    c = complete(client, "Once upon a time", max_tokens=16, temperature=1.0, seed=8).choices[0].text
    assert a == b and a != c


def test_concurrent_requests_each_equal_the_same_request_alone(server, client, async_client):
    """12 greedy and 4 seeded requests at once: each answer equals its answer alone (batch invariance)."""
    requests = [dict(prompt=p, max_tokens=20) for p in PROMPTS] + \
               [dict(prompt=p, max_tokens=20, temperature=0.8, seed=i) for i, p in enumerate(PROMPTS[:4])]
    alone = [complete(client, **kw).choices[0].text for kw in requests]

    async def together():
        async with async_client() as aclient:
            return await asyncio.gather(*(aclient.completions.create(
                model=MODEL, **{"temperature": 0, **kw}) for kw in requests))

    batch = [r.choices[0].text for r in asyncio.run(together())]
    assert batch == alone
    assert server.wait_idle()["kv_used"] == 0
