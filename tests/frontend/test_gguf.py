"""GGUF: SmolLM2 config and tensors against transformers' GGUF reader; a self-written GGUF round trip."""
from __future__ import annotations

import gguf
import numpy as np
import torch

from braze.frontend import load_gguf, load_hf_folder, load_model
from braze.frontend.gguf_file import hf_name, unpermute_qk
from braze.models.config import expected_weight_shapes


def test_smollm2_config(smollm2):
    c = smollm2.config
    assert c.architecture == "LlamaForCausalLM"
    assert (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim) == (30, 576, 9, 3, 64)
    assert (c.vocab_size, c.intermediate_size, c.max_position_embeddings) == (49152, 1536, 8192)
    assert c.tie_word_embeddings and c.rope_theta == 100000.0 and c.rms_norm_eps == 1e-5
    assert c.bos_token_id == 1 and c.eos_token_ids == (2,) and c.torch_dtype == "float32"
    assert set(smollm2.weights) == set(expected_weight_shapes(c))
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in smollm2.weights.values())


def test_smollm2_tensors_match_transformers(smollm2, smollm2_path):
    """transformers dequantizes with the same gguf function and un-permutes q/k in its
    LlamaTensorProcessor; compare a few tensors against that (the full 272-tensor load is 15 s)."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    processor = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    wanted = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight",
              "blk.7.attn_k.weight", "blk.0.ffn_down.weight", "output_norm.weight"}
    reader = gguf.GGUFReader(str(smollm2_path))
    seen = 0
    for t in reader.tensors:
        if t.name in wanted:
            ref = processor.process(gguf.quants.dequantize(t.data, t.tensor_type), t.name).weights
            ours = smollm2.weights[hf_name(t.name)]
            assert ours.shape == ref.shape, t.name
            assert torch.equal(ours, torch.from_numpy(np.array(ref))), t.name
            seen += 1
    assert seen == len(wanted)
    assert smollm2.weights["model.layers.0.self_attn.q_proj.weight"].shape == (576, 576)
    assert smollm2.weights["model.layers.0.self_attn.k_proj.weight"].shape == (192, 576)


def test_unpermute_inverts_llama_cpp_permute():
    w = np.arange(24 * 5, dtype=np.float32).reshape(24, 5)
    for n_head in (1, 2, 3, 6):
        permuted = w.reshape(n_head, 2, 24 // n_head // 2, 5).swapaxes(1, 2).reshape(w.shape)
        assert np.array_equal(unpermute_qk(permuted, n_head), w)


def test_tensor_names():
    assert hf_name("token_embd.weight") == "model.embed_tokens.weight"
    assert hf_name("output.weight") == "lm_head.weight"
    assert hf_name("output_norm.weight") == "model.norm.weight"
    assert hf_name("blk.12.attn_output.weight") == "model.layers.12.self_attn.o_proj.weight"
    assert hf_name("blk.3.ffn_norm.weight") == "model.layers.3.post_attention_layernorm.weight"
    assert hf_name("blk.3.attn_q.bias") == "model.layers.3.self_attn.q_proj.bias"
    assert hf_name("rope_freqs.weight") is None


def test_tiny_gguf_round_trip_equals_hf(tiny_checkpoints, tiny_gguf):
    """A GGUF written the way llama.cpp converts (permuted q/k) reads back as the HF weights."""
    hf, g = load_hf_folder(tiny_checkpoints["llama"]), load_model(str(tiny_gguf))
    for field in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                  "head_dim", "rms_norm_eps", "rope_theta", "max_position_embeddings", "tie_word_embeddings",
                  "bos_token_id", "eos_token_ids"):
        assert getattr(g.config, field) == getattr(hf.config, field), field
    assert g.weights.keys() == hf.weights.keys()
    for name in hf.weights:
        assert torch.equal(g.weights[name], hf.weights[name]), name
    text = "Hello, world! 0123 def add(a, b): 😀"
    assert g.tokenizer.encode(text) == hf.tokenizer.encode(text)
    msgs = [{"role": "user", "content": "hi"}]
    assert g.tokenizer.apply_chat_template(msgs) == hf.tokenizer.apply_chat_template(msgs)
    assert load_gguf(tiny_gguf).source == str(tiny_gguf)
