"""Hugging Face folders: config mapping per family, sharded vs single file, dtype, extra tensors."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from braze.errors import UnsupportedArchitectureError
from braze.frontend import load_hf_folder, load_model
from braze.frontend.hf import config_from_dict
from braze.models.config import expected_weight_shapes

EXPECTED = {
    # family: (arch, hidden, layers, heads, kv_heads, head_dim, intermediate, tied, bias, qk_norm, theta, eos)
    "llama": ("LlamaForCausalLM", 72, 3, 6, 2, 12, 120, False, False, False, 10000.0, (2,)),
    "llama3_rope": ("LlamaForCausalLM", 72, 2, 4, 4, 18, 120, False, False, False, 500000.0, (2,)),
    "mistral": ("MistralForCausalLM", 88, 2, 4, 2, 22, 136, False, False, False, 10000.0, (2,)),
    "qwen2": ("Qwen2ForCausalLM", 72, 2, 6, 2, 12, 120, True, True, False, 1000000.0, (2, 0)),
    "qwen3": ("Qwen3ForCausalLM", 72, 2, 4, 2, 20, 104, False, False, True, 1000000.0, (2,)),
}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_family_config_and_weights(tiny_checkpoints, family):
    m = load_hf_folder(tiny_checkpoints[family])
    arch, hidden, layers, heads, kv, hd, inter, tied, bias, qkn, theta, eos = EXPECTED[family]
    c = m.config
    assert (c.architecture, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim) == (
        arch, hidden, layers, heads, kv, hd)
    assert (c.intermediate_size, c.tie_word_embeddings, c.attention_bias, c.qk_norm) == (inter, tied, bias, qkn)
    assert c.rope_theta == theta and c.eos_token_ids == eos
    assert c.vocab_size == 320 and c.max_position_embeddings == 256 and c.torch_dtype == "float32"
    assert set(m.weights) == set(expected_weight_shapes(c))
    on_disk = load_file(str(tiny_checkpoints[family] / "model.safetensors"))
    for name, tensor in m.weights.items():
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, on_disk[name]), name
    assert m.source == str(tiny_checkpoints[family])


def test_llama3_rope_scaling_kept_as_dict(tiny_checkpoints):
    scaling = load_hf_folder(tiny_checkpoints["llama3_rope"]).config.rope_scaling
    assert isinstance(scaling, dict)
    assert scaling["rope_type"] == "llama3" and scaling["factor"] == 8.0
    assert scaling["original_max_position_embeddings"] == 64 and scaling["low_freq_factor"] == 1.0
    assert load_hf_folder(tiny_checkpoints["llama"]).config.rope_scaling is None


def test_sharded_equals_single_file(tiny_checkpoints, tiny_sharded_checkpoint):
    assert (tiny_sharded_checkpoint / "model.safetensors.index.json").is_file()
    assert len(list(tiny_sharded_checkpoint.glob("model-*.safetensors"))) > 1
    single, sharded = load_hf_folder(tiny_checkpoints["llama"]), load_model(str(tiny_sharded_checkpoint))
    assert single.config == sharded.config
    assert single.weights.keys() == sharded.weights.keys()
    for name in single.weights:
        assert torch.equal(single.weights[name], sharded.weights[name]), name


def test_checkpoint_dtype_is_kept_and_extras_ignored(tiny_checkpoints, tmp_path):
    folder = tmp_path / "bf16"
    shutil.copytree(tiny_checkpoints["qwen2"], folder)
    tensors = {k: v.to(torch.bfloat16) for k, v in load_file(str(folder / "model.safetensors")).items()}
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(6)
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()  # tied, but present anyway
    save_file(tensors, str(folder / "model.safetensors"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["dtype"] = "bfloat16"
    (folder / "config.json").write_text(json.dumps(cfg))
    m = load_hf_folder(folder)
    assert m.config.torch_dtype == "bfloat16"
    assert all(t.dtype == torch.bfloat16 for t in m.weights.values())
    assert "lm_head.weight" not in m.weights and not any("inv_freq" in k for k in m.weights)


BASE = dict(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_hidden_layers=2, vocab_size=100)


def test_config_dict_variants():
    c = config_from_dict(dict(BASE, architectures=["MistralForCausalLM"], head_dim=None, eos_token_id=[5, 6],
                              rope_scaling={"type": "linear", "factor": 2.0}, torch_dtype="bfloat16"),
                         generation={"eos_token_id": [6, 7]})
    assert c.head_dim == 16 and c.num_kv_heads == 4 and c.eos_token_ids == (5, 6, 7)
    assert c.rope_scaling == {"type": "linear", "factor": 2.0, "rope_type": "linear"}
    assert c.torch_dtype == "bfloat16" and c.rope_theta == 10000.0
    c = config_from_dict(dict(BASE, architectures=["LlamaForCausalLM"], attention_bias=True,
                              rope_parameters={"rope_type": "default", "rope_theta": 123.0}))
    assert c.attention_bias and c.rope_theta == 123.0 and c.rope_scaling is None and c.eos_token_ids == ()
    c = config_from_dict(dict(BASE, architectures=["Qwen2ForCausalLM"], eos_token_id=3))
    assert c.attention_bias and not c.qk_norm and c.eos_token_ids == (3,)
    c = config_from_dict(dict(BASE, architectures=["Qwen3ForCausalLM"], head_dim=32, num_key_value_heads=2))
    assert c.qk_norm and not c.attention_bias and c.head_dim == 32 and c.num_kv_heads == 2


def test_non_silu_activation_is_rejected():
    with pytest.raises(UnsupportedArchitectureError, match="gelu"):
        config_from_dict(dict(BASE, architectures=["LlamaForCausalLM"], hidden_act="gelu"))
