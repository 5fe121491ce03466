"""Hugging Face checkpoint folders: config.json + safetensors (single file or sharded) + tokenizer."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors import safe_open

from braze.errors import ModelNotFoundError, UnsupportedArchitectureError, WeightFileError
from braze.frontend.loaded import LoadedModel
from braze.frontend.validate import validate_weights
from braze.models.config import SUPPORTED_ARCHITECTURES, ModelConfig, expected_weight_shapes

NOT_FOUND_HINT = "pass a Hugging Face checkpoint folder, a .gguf file, or one of: smollm2"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def load_hf_folder(path: str | Path) -> LoadedModel:
    """Load a checkpoint folder saved by transformers' `save_pretrained`."""
    from braze.frontend.tokenizer import Tokenizer  # local: keeps `tokenizers` off the import path

    folder = Path(path)
    if not folder.exists():
        raise ModelNotFoundError(f"no such file or directory: {folder}; {NOT_FOUND_HINT}")
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"{folder} has no config.json; a checkpoint folder needs config.json, "
            f"{SINGLE_FILE} (or {INDEX_FILE} and its shards) and tokenizer.json"
        )
    config = read_hf_config(folder)
    files = weight_files(folder)
    weights = validate_weights(config, read_safetensors(files, expected_weight_shapes(config)), files)
    tokenizer = Tokenizer.from_hf_folder(folder, model_eos_ids=config.eos_token_ids)
    return LoadedModel(config=config, weights=weights, tokenizer=tokenizer, source=str(folder))


def _read_json(file: Path) -> dict:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WeightFileError(f"cannot read {file}: {e}; re-download it") from e


def _as_ids(value) -> tuple[int, ...]:
    """eos_token_id is an int, a list of ints or null depending on the model."""
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def _rope_settings(cfg: dict) -> tuple[float, dict | None]:
    """rope_theta and rope_scaling, from the old keys or from newer transformers' `rope_parameters`."""
    params = cfg.get("rope_parameters") or {}
    theta = cfg.get("rope_theta") or params.get("rope_theta") or 10000.0
    scaling = cfg.get("rope_scaling") or None
    if scaling is None and params.get("rope_type", "default") != "default":
        scaling = params
    if scaling is not None:
        scaling = dict(scaling)
        # Older configs spell it "type"; give consumers one key to read.
        scaling.setdefault("rope_type", scaling.get("type", "default"))
        if scaling["rope_type"] == "default":
            scaling = None
    return float(theta), scaling


def config_from_dict(cfg: dict, generation: dict | None = None) -> ModelConfig:
    """Map a config.json dict (plus generation_config.json) onto ModelConfig."""
    archs = cfg.get("architectures") or []
    arch = archs[0] if archs else None
    if arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"architecture {arch!r} is not supported; braze supports: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    act = cfg.get("hidden_act", "silu")
    if act not in ("silu", "swish"):  # every supported family uses SwiGLU; anything else is a variant
        raise UnsupportedArchitectureError(f"{arch} with hidden_act={act!r} is not supported; braze supports silu")
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    head_dim = cfg.get("head_dim")
    theta, scaling = _rope_settings(cfg)
    eos = list(_as_ids(cfg.get("eos_token_id")))
    for extra in _as_ids((generation or {}).get("eos_token_id")):
        if extra not in eos:
            eos.append(extra)
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "float32").removeprefix("torch.")
    return ModelConfig(
        architecture=arch,
        vocab_size=int(cfg["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(cfg["intermediate_size"]),
        num_layers=int(cfg["num_hidden_layers"]),
        num_heads=heads,
        num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(head_dim) if head_dim is not None else hidden // heads,
        rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
        rope_theta=theta,
        rope_scaling=scaling,
        max_position_embeddings=int(cfg.get("max_position_embeddings", 2048)),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        # Qwen2 always has q/k/v bias and its config has no key for it.
        attention_bias=True if arch == "Qwen2ForCausalLM" else bool(cfg.get("attention_bias", False)),
        qk_norm=arch == "Qwen3ForCausalLM",
        bos_token_id=cfg.get("bos_token_id"),
        eos_token_ids=tuple(eos),
        torch_dtype=dtype,
    )


def read_hf_config(folder: Path) -> ModelConfig:
    generation_file = folder / "generation_config.json"
    generation = _read_json(generation_file) if generation_file.is_file() else None
    return config_from_dict(_read_json(folder / "config.json"), generation)


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a checkpoint, in index order; each must exist."""
    index = folder / INDEX_FILE
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise WeightFileError(f"{index} has no weight_map; re-download it")
        files = [folder / name for name in dict.fromkeys(weight_map.values())]
    else:
        files = [folder / SINGLE_FILE]
    for file in files:
        if not file.is_file():
            extra = ""
            if file.name == SINGLE_FILE and (folder / "pytorch_model.bin").exists():
                extra = " (braze reads safetensors only; pytorch_model.bin is not supported)"
            raise WeightFileError(f"weight file {file} is missing{extra}; re-download the checkpoint")
    return files


def _check_safetensors_size(file: Path) -> None:
    """Catch a file shorter than its header claims before safetensors gives a vaguer error."""
    size = file.stat().st_size
    corrupt = f"weight file {file} is truncated or corrupt"
    with file.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightFileError(f"{corrupt} ({size} bytes); re-download it")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise WeightFileError(f"{corrupt} (header claims {header_len} bytes, file has {size}); re-download it")
        try:
            header = json.loads(f.read(header_len))
        except ValueError as e:
            raise WeightFileError(f"{corrupt} (bad header: {e}); re-download it") from e
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    needed = 8 + header_len + max(ends, default=0)
    if needed > size:
        raise WeightFileError(f"{corrupt} (needs {needed} bytes, has {size}); re-download it")


def read_safetensors(files: list[Path], wanted: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Read the wanted tensors from every file; others (inv_freq, ...) are skipped unread."""
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        _check_safetensors_size(file)
        try:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():
                    if name in wanted:
                        weights[name] = f.get_tensor(name)
        except WeightFileError:
            raise
        except Exception as e:  # safetensors raises its own SafetensorError and OSError variants
            raise WeightFileError(f"weight file {file} is truncated or corrupt ({e}); re-download it") from e
    return weights
