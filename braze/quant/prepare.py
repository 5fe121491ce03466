"""From a loaded model and a method name to (weights, QuantScheme) for the graph builder and the
quantize pass; and the folder `braze quantize` writes and loads back.

A quantized folder holds:
  model.safetensors          float tensors (norms, embeddings, anything left unquantized) under
                             their HF names, and per quantized weight `<name>.qweight`,
                             `<name>.scales` and (int4 with zero points) `<name>.mins`
  quantization_config.json   {"format_version": 1, "method", "format", "group", "zero_point",
                              "source": the model it was made from (config and tokenizer are read
                              from there), "tensors": {name: {"format", "group", "shape"}}}
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from braze.errors import InvalidArgumentError, WeightFileError
from braze.frontend.loaded import LoadedModel
from braze.quant.formats import QuantizedTensor
from braze.quant.methods import QuantScheme, parse_method

CONFIG_NAME = "quantization_config.json"
CALIBRATION_TOKENS = 512


def is_quantized_folder(path) -> bool:
    return Path(str(path)).is_dir() and (Path(str(path)) / CONFIG_NAME).is_file()


def quantize_weights(loaded: LoadedModel, quant: str | QuantScheme | None,
                     calibration_text: str | None = None) -> tuple[dict[str, torch.Tensor], QuantScheme | None]:
    """The weights to build the graph from (AWQ-scaled for awq methods) and the scheme for the
    quantize pass (GGUF blocks attached for "gguf")."""
    if quant is None:
        return loaded.weights, None
    scheme = parse_method(quant) if isinstance(quant, str) else quant
    c = loaded.config
    if scheme.format == "gguf":
        if not str(loaded.source).lower().endswith(".gguf"):
            raise InvalidArgumentError(f"--quant gguf runs a GGUF file's own blocks, but {loaded.source} is not a "
                                       ".gguf file; pick int8, int4-awq-g128, ... for other models")
        from braze.quant.gguf_blocks import load_gguf_blocks
        blocks = load_gguf_blocks(loaded.source, c.num_heads, c.num_kv_heads)
        return loaded.weights, replace(scheme, prequantized=blocks)
    if scheme.awq:
        from braze.quant.awq import awq_scale_weights
        from braze.quant.calibration_text import CALIBRATION_TEXT
        ids = loaded.tokenizer.encode(calibration_text or CALIBRATION_TEXT)[:CALIBRATION_TOKENS]
        if len(ids) < 32:
            raise InvalidArgumentError(f"the calibration text has {len(ids)} tokens; AWQ needs at least 32")
        return awq_scale_weights(c, loaded.weights, ids, scheme.group, scheme.zero_point), scheme
    return loaded.weights, scheme


def save_quantized(loaded: LoadedModel, method: str, out: str | Path, calibration_text: str | None = None,
                   force: bool = False) -> dict:
    """Quantize every linear weight of `loaded` by `method` and write the folder; returns its config."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise InvalidArgumentError(f"{out} exists and is not empty; pass --force to overwrite it")
    weights, scheme = quantize_weights(loaded, method, calibration_text)
    if scheme.format == "gguf":
        quantized = dict(scheme.prequantized)
    else:
        quantized = {name: scheme.quantize(w.float(), name) for name, w in weights.items()
                     if _is_linear_weight(name, w, loaded.config.tie_word_embeddings)}
        quantized = {k: v for k, v in quantized.items() if v is not None}
    tensors: dict[str, torch.Tensor] = {}
    for name, w in weights.items():
        if name not in quantized or name == "model.embed_tokens.weight":  # the embedding gather reads floats
            tensors[name] = w.contiguous()
    for name, q in quantized.items():
        tensors[f"{name}.qweight"], tensors[f"{name}.scales"] = q.packed, q.scales
        if q.mins is not None:
            tensors[f"{name}.mins"] = q.mins
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"))
    config = {"format_version": 1, "method": scheme.method, "format": scheme.format, "group": scheme.group,
              "zero_point": scheme.zero_point, "source": str(Path(loaded.source).resolve()),
              "tensors": {n: {"format": q.format, "group": q.group, "shape": list(q.shape)} for n, q in quantized.items()}}
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n")
    return config


def _is_linear_weight(name: str, w: torch.Tensor, tied: bool) -> bool:
    """Weights the model reads through a linear (a tied embedding is also the output head)."""
    head = name == "lm_head.weight" or (tied and name == "model.embed_tokens.weight")
    return (name.endswith("_proj.weight") or head) and w.dim() == 2


def load_quantized(path: str | Path) -> tuple[LoadedModel, QuantScheme]:
    """A folder written by save_quantized: the source's config and tokenizer, the folder's weights."""
    from safetensors.torch import load_file

    from braze.frontend import load_model

    path = Path(path)
    try:
        config = json.loads((path / CONFIG_NAME).read_text())
        tensors = load_file(str(path / "model.safetensors"))
    except (OSError, ValueError) as e:
        raise WeightFileError(f"{path} is not a readable braze quantized folder ({e}); write it again with "
                              "`braze quantize`") from e
    source = load_model(config["source"])
    prequantized = {}
    for name, meta in config["tensors"].items():
        prequantized[name] = QuantizedTensor(meta["format"], meta["group"], tensors.pop(f"{name}.qweight"),
                                             tensors.pop(f"{name}.scales"), tensors.pop(f"{name}.mins", None))
    weights = dict(source.weights)
    weights.update(tensors)
    scheme = QuantScheme(config["method"], config["format"], config["group"], config["zero_point"],
                         prequantized=prequantized)
    return replace(source, weights=weights, source=str(path)), scheme
