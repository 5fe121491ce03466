"""GGUF files (llama.cpp): metadata -> ModelConfig, dequantized tensors renamed to HF names."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from braze.errors import ModelNotFoundError, UnsupportedArchitectureError, WeightFileError
from braze.frontend.loaded import LoadedModel
from braze.frontend.validate import validate_weights
from braze.models.config import ModelConfig

SUPPORTED_GGUF_ARCHITECTURES = ("llama",)

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_LAYER_RE = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)$")


def hf_name(gguf_name: str) -> str | None:
    """HF name for a GGUF tensor name, or None for tensors braze does not use (rope_freqs, ...)."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    m = _LAYER_RE.match(gguf_name)
    if m and m.group(2) in _LAYER_NAMES:
        return f"model.layers.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}.{m.group(3)}"
    return None


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's convert-time q/k row permutation (its RoPE pairs adjacent dims, HF's pairs halves).

    Same as transformers' `_reverse_permute_weights`; n_head is num_heads for q, num_kv_heads for k.
    """
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _value(field):
    """A metadata field as a Python value (scalar, string or list)."""
    return field.contents()


def _f32(value) -> float:
    """GGUF stores floats as float32; print-round them so 1e-5 reads back as 1e-5, not 9.99e-06."""
    return float(str(np.float32(value)))


def read_metadata(reader) -> dict:
    return {name: _value(field) for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def config_from_metadata(meta: dict, has_output: bool) -> ModelConfig:
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED_GGUF_ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"GGUF architecture {arch!r} is not supported; braze reads GGUF files of: "
            f"{', '.join(SUPPORTED_GGUF_ARCHITECTURES)}"
        )

    def key(name, default=None):
        return meta.get(f"{arch}.{name}", default)

    hidden, heads = int(key("embedding_length")), int(key("attention.head_count"))
    vocab = key("vocab_size") or len(meta.get("tokenizer.ggml.tokens") or [])
    head_dim = key("attention.key_length") or key("rope.dimension_count") or hidden // heads
    scaling = None
    if key("rope.scaling.type") not in (None, "none"):
        scaling = {"rope_type": key("rope.scaling.type"), "factor": float(key("rope.scaling.factor", 1.0))}
        if key("rope.scaling.original_context_length"):
            scaling["original_max_position_embeddings"] = int(key("rope.scaling.original_context_length"))
    eos = [meta[k] for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id") if k in meta]
    return ModelConfig(
        architecture="LlamaForCausalLM",
        vocab_size=int(vocab),
        hidden_size=hidden,
        intermediate_size=int(key("feed_forward_length")),
        num_layers=int(key("block_count")),
        num_heads=heads,
        num_kv_heads=int(key("attention.head_count_kv") or heads),
        head_dim=int(head_dim),
        rms_norm_eps=_f32(key("attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=_f32(key("rope.freq_base", 10000.0)),
        rope_scaling=scaling,
        max_position_embeddings=int(key("context_length", 2048)),
        tie_word_embeddings=not has_output,  # llama.cpp drops output.weight when tied
        bos_token_id=meta.get("tokenizer.ggml.bos_token_id"),
        eos_token_ids=tuple(dict.fromkeys(int(e) for e in eos)),
        torch_dtype="float32",  # tensors are dequantized to float32
    )


def load_gguf(path: str | Path) -> LoadedModel:
    """Load a llama-architecture GGUF file, dequantizing every tensor to float32."""
    import gguf

    from braze.frontend.gguf_tokenizer import tokenizer_from_gguf

    file = Path(path)
    if not file.is_file():
        raise ModelNotFoundError(
            f"no such file or directory: {file}; pass a Hugging Face checkpoint folder, a .gguf file, "
            "or one of: smollm2"
        )
    corrupt = f"GGUF file {file} is truncated or corrupt"
    try:
        reader = gguf.GGUFReader(str(file))
        meta = read_metadata(reader)
    except Exception as e:  # the reader fails with ValueError/IndexError/struct errors on bad bytes
        raise WeightFileError(f"{corrupt} ({type(e).__name__}: {e}); re-download it") from e

    names = {t.name for t in reader.tensors}
    config = config_from_metadata(meta, has_output="output.weight" in names)
    weights: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        name = hf_name(tensor.name)
        if name is None:
            continue
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))  # GGUF lists dims innermost first
        try:
            array = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False)
            array = array.reshape(shape)
        except Exception as e:
            raise WeightFileError(f"{corrupt} (tensor {tensor.name}: {e}); re-download it") from e
        if tensor.name.endswith("attn_q.weight"):
            array = unpermute_qk(array, config.num_heads)
        elif tensor.name.endswith("attn_k.weight"):
            array = unpermute_qk(array, config.num_kv_heads)
        if not (array.flags.writeable and array.flags.c_contiguous):  # F32/F16 come back as mmap views
            array = np.array(array, dtype=np.float32, order="C")
        weights[name] = torch.from_numpy(array)
    weights = validate_weights(config, weights, [file])
    tokenizer = tokenizer_from_gguf(meta, str(file))
    return LoadedModel(config=config, weights=weights, tokenizer=tokenizer, source=str(file))
