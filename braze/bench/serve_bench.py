"""`braze bench serve`: time to first token, time per output token and output throughput of a
running OpenAI-compatible server at several concurrencies (the shape of vLLM's benchmark_serving).

Each request streams /v1/completions with a random prompt of `prompt_len` token ids and asks for
exactly `max_tokens` tokens (ignore_eos). Per concurrency C: `num_prompts` requests, at most C in
flight. TTFT: send to first streamed text; TPOT: (last - first token) / (tokens - 1); output
throughput: all output tokens / wall time of the run.
"""
from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass

PERCENTILES = (50, 90, 99)


@dataclass
class RequestResult:
    ok: bool
    ttft_s: float = 0.0
    latency_s: float = 0.0
    output_tokens: int = 0
    error: str = ""

    @property
    def tpot_s(self) -> float | None:
        return (self.latency_s - self.ttft_s) / (self.output_tokens - 1) if self.output_tokens > 1 else None


def percentiles(values: list[float], scale: float = 1000.0) -> dict:
    """p50/p90/p99 and the mean, in ms by default (linear interpolation, as numpy's default)."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        pos = (len(ordered) - 1) * q / 100
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    out = {f"p{q}": at(q) * scale for q in PERCENTILES}
    out["mean"] = statistics.fmean(ordered) * scale
    return out


async def _one_request(client, url: str, headers: dict, body: dict) -> RequestResult:
    start = time.perf_counter()
    first = None
    tokens = 0
    try:
        async with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                return RequestResult(False, error=f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    return RequestResult(False, error=str(chunk["error"]))
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                if first is None and any(c.get("text") for c in chunk.get("choices", [])):
                    first = time.perf_counter()
    except Exception as error:  # noqa: BLE001 (a failed request is counted, not fatal)
        return RequestResult(False, error=repr(error))
    end = time.perf_counter()
    return RequestResult(True, (first or end) - start, end - start, tokens)


async def run_level(base_url: str, model: str, prompts: list[list[int]], max_tokens: int, concurrency: int,
                    api_key: str | None = None) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:
        async def guarded(prompt):
            async with gate:
                body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                        "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
                return await _one_request(client, f"{base_url}/v1/completions", headers, body)

        start = time.perf_counter()
        results = await asyncio.gather(*(guarded(p) for p in prompts))
        duration = time.perf_counter() - start
    done = [r for r in results if r.ok]
    output_tokens = sum(r.output_tokens for r in done)
    return {"concurrency": concurrency, "num_prompts": len(prompts), "completed": len(done),
            "failed": len(results) - len(done), "errors": sorted({r.error for r in results if not r.ok})[:5],
            "duration_s": duration, "output_tokens": output_tokens, "output_tok_s": output_tokens / duration,
            "request_s": len(done) / duration,
            "ttft_ms": percentiles([r.ttft_s for r in done]),
            "tpot_ms": percentiles([r.tpot_s for r in done if r.tpot_s is not None]),
            "e2e_ms": percentiles([r.latency_s for r in done])}


async def server_model(base_url: str, api_key: str | None) -> tuple[str, int]:
    """The served model's name and vocabulary size (from /v1/models)."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.get(f"{base_url}/v1/models", headers=headers)
        response.raise_for_status()
        model = response.json()["data"][0]
    return model["id"], int(model.get("vocab_size", 1000))


def random_prompts(n: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    low = min(100, vocab // 2)  # skip the low ids, where tokenizers keep their special tokens
    return [[rng.randrange(low, vocab) for _ in range(length)] for _ in range(n)]


def run_serve_bench(base_url: str, concurrencies: list[int], num_prompts: int, prompt_len: int, max_tokens: int,
                    api_key: str | None = None, say=print) -> dict:
    base_url = base_url.rstrip("/").removesuffix("/v1")
    model, vocab = asyncio.run(server_model(base_url, api_key))
    prompts = random_prompts(num_prompts, prompt_len, vocab)
    say(f"warming up {model} at {base_url}")
    asyncio.run(run_level(base_url, model, prompts[:1], 2, 1, api_key))
    levels = []
    for c in concurrencies:
        say(f"concurrency {c}: {num_prompts} requests")
        levels.append(asyncio.run(run_level(base_url, model, prompts, max_tokens, c, api_key)))
    return {"url": base_url, "model": model, "prompt_len": prompt_len, "max_tokens": max_tokens,
            "num_prompts": num_prompts, "levels": levels}
