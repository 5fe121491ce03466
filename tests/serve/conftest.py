"""One braze server over real HTTP on loopback, shared by the serve tests: SmolLM2-135M (the
embedded GGUF), float32 on the CPU, 8 sequences, a 256-token context, an API key. Helpers live in
serve_testlib.py (this folder is put on sys.path)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import braze

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_testlib import API_KEY, MODEL, RunningServer  # noqa: E402


@pytest.fixture(scope="session")
def smollm2_llm():
    return braze.LLM(MODEL, device="cpu", dtype="float32", max_model_len=256, max_num_seqs=8,
                     max_num_batched_tokens=128)


@pytest.fixture(scope="session")
def server(smollm2_llm):
    from braze.serve import build_app

    running = RunningServer(build_app(smollm2_llm, MODEL, api_key=API_KEY))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def client(server):
    import openai

    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def async_client(server):
    import openai

    return lambda: openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=300)
