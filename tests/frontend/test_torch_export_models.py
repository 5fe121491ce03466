"""Tiny random-weight transformers models through torch.export and braze (C++ backend) equal eager.

Each family's export holds the ops a real checkpoint's does: the mask built from arange/cumsum/
index/comparisons (constant: folded at import into the causal pattern, so attention is braze's
attention op), rotary cos/sin from the inv_freq buffer, RMSNorm in float32, GQA's expand+reshape,
Gemma's tanh-GELU and scaled embedding, Phi-3's fused qkv/gate_up with chunk.
"""
from __future__ import annotations

import pytest
import torch

from braze.module_compiler import compile_module

pytest.importorskip("transformers")
FAMILIES = ["llama", "qwen2", "mistral", "qwen3", "gemma", "phi3"]  # tests/conftest.py builds them
VOCAB = 128


def token_ids(seed: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 8), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
def test_exported_model_logits_equal_eager(family, tiny_causal_lm):
    model = tiny_causal_lm(family)
    fast = compile_module(model, token_ids(0))
    ids = token_ids(1)  # not the traced ones
    with torch.no_grad():
        want = model(ids).logits
    torch.testing.assert_close(fast(ids), want, atol=1e-4, rtol=1e-4)
    # the causal mask the model builds is recognised: attention runs as braze's attention kernel
    assert [k.kind for k in fast.program.kernels].count("attention") == 2


def test_padding_mask_given_as_an_input_runs_on_activations(tiny_causal_lm):
    """With attention_mask an input the mask is computed at run time (index, and, where over
    activations) and attention is decomposed into batched matmuls around a masked softmax."""
    model = tiny_causal_lm("llama")
    ids = token_ids(2)
    fast = compile_module(model, ids, torch.ones(2, 8, dtype=torch.int64))
    padded = torch.ones(2, 8, dtype=torch.int64)
    padded[1, :3] = 0  # left padding of the second prompt
    with torch.no_grad():
        want = model(ids, attention_mask=padded).logits
    # padding queries see no key: zeros from attention, as torch's safe softmax gives, not NaN
    torch.testing.assert_close(fast(ids, padded), want, atol=1e-4, rtol=1e-4)
    assert "batch_matmul" in [k.kind for k in fast.program.kernels]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("family", FAMILIES)
def test_exported_model_on_the_gpu_equals_eager(family, tiny_causal_lm):
    """The same models through the Triton kernels (float32: tl.dot in IEEE precision)."""
    model = tiny_causal_lm(family).cuda()
    fast = compile_module(model, token_ids(0).cuda(), device="cuda")
    ids = token_ids(1).cuda()
    with torch.no_grad():
        want = model(ids).logits
    torch.testing.assert_close(fast(ids), want, atol=1e-4, rtol=1e-4)
