"""End to end: a tiny Llama / Qwen lowered by the real pipeline, C++ backend == Kernel IR reference."""
from __future__ import annotations

import pytest
import torch

from braze.models.config import ModelConfig, expected_weight_shapes
from braze.models.llama import build_llama
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable

CONFIGS = {
    "llama": ModelConfig("LlamaForCausalLM", vocab_size=96, hidden_size=72, intermediate_size=120, num_layers=2,
                         num_heads=6, num_kv_heads=2, head_dim=12, rms_norm_eps=1e-5),
    "qwen3": ModelConfig("Qwen3ForCausalLM", vocab_size=96, hidden_size=72, intermediate_size=104, num_layers=2,
                         num_heads=4, num_kv_heads=2, head_dim=20, qk_norm=True, attention_bias=True),
}


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_tiny_model_matches_reference(family):
    cfg = CONFIGS[family]
    gen = torch.Generator().manual_seed(0)
    shapes = expected_weight_shapes(cfg)
    weights = {k: torch.randn(s, generator=gen) * (0.2 if len(s) > 1 else 1.0) for k, s in shapes.items()}
    program = lower(build_llama(cfg, weights, "float32", max_seqs=4, context=64, max_tokens=32))
    cpp, ref = Executable(program, "cpp"), Executable(program, "reference")
    caches = {b.name: torch.zeros(tuple(b.shape)) for b in program.buffers if b.kind == "state"}
    caches_ref = {k: v.clone() for k, v in caches.items()}

    def step(tokens, positions, slots, logits_index):
        feeds = dict(tokens=torch.tensor(tokens), positions=torch.tensor(positions), slots=torch.tensor(slots),
                     logits_index=torch.tensor(logits_index))
        out = cpp.run({**feeds, **caches})["logits"].clone()
        expect = ref.run({**feeds, **caches_ref})["logits"].clone()
        torch.testing.assert_close(out, expect, rtol=1e-4, atol=1e-4)
        for name in caches:
            torch.testing.assert_close(caches[name], caches_ref[name], rtol=1e-5, atol=1e-5)

    # prefill two prompts (slot 0: 5 tokens, slot 2: 3 tokens) in one batch, then two decode steps
    step([5, 17, 3, 88, 41, 7, 9, 60], [0, 1, 2, 3, 4, 0, 1, 2], [0, 0, 0, 0, 0, 2, 2, 2], [4, 7])
    step([12, 33], [5, 3], [0, 2], [0, 1])
    step([70], [6], [0], [0])
