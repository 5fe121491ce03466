"""Frontend-only fixtures: the SmolLM2 GGUF loaded once, and transformers' reading of it."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smollm2_path():
    from braze.frontend import embedded_model_path

    return embedded_model_path("smollm2")


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    """load_model("smollm2"): the name dispatch plus the full GGUF load (about 4 s)."""
    from braze.frontend import load_model

    model = load_model("smollm2")
    assert model.source == str(smollm2_path)
    return model


@pytest.fixture(scope="session")
def smollm2_reference_tokenizer(smollm2_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_path.parent), gguf_file=smollm2_path.name)
