"""The GPU over real HTTP: 12 greedy requests sent at once to a bf16 server on the GPU each get the
answer they get alone (batch invariance in the GPU's dtype, through the openai client)."""
from __future__ import annotations

import asyncio

import pytest
import torch

import braze
from serve_testlib import API_KEY, RunningServer

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time", "The largest planet is",
           "1, 2, 3, 4,", "Water boils at", "My favourite colour is", "import numpy as np\n",
           "The quick brown fox", "In 1492, Columbus", "Photosynthesis is", "Hello! How are"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_bf16_concurrent_requests_over_http_equal_each_alone(tiny_checkpoints):
    openai = pytest.importorskip("openai")  # the test extra; a bare GPU image may lack it

    from braze.serve import build_app

    llm = braze.LLM(str(tiny_checkpoints["llama"]), device="cuda", dtype="bfloat16", max_model_len=128,
                    max_num_seqs=16, max_num_batched_tokens=64)
    assert llm.batch_invariant
    server = RunningServer(build_app(llm, "tiny", api_key=API_KEY))
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
        alone = [client.completions.create(model="tiny", prompt=p, max_tokens=24, temperature=0).choices[0].text
                 for p in PROMPTS]

        async def together():
            async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0,
                                          timeout=300) as aclient:
                return await asyncio.gather(*(aclient.completions.create(
                    model="tiny", prompt=p, max_tokens=24, temperature=0) for p in PROMPTS))

        assert [r.choices[0].text for r in asyncio.run(together())] == alone
    finally:
        server.stop()
