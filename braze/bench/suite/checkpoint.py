"""A random-weight Hugging Face checkpoint folder for a config dict, made once and cached on disk.

config.json + model.safetensors (or shards + index) + a tiny byte-level BPE tokenizer.json.
Weights: std 0.02 normal (generated on the GPU when there is one), RMSNorm weights 1, biases
std 0.02. Every consumer (braze, the reference model, transformers) reads these same files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from braze.frontend.hf import config_from_dict
from braze.models.config import expected_weight_shapes

SHARD_BYTES = 2 << 30
DONE_MARKER = ".complete"
_CORPUS = [
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))",
    "Compilers turn programs into machine code; interpreters run them directly.",
]


def default_cache_dir() -> Path:
    env = os.environ.get("BRAZE_BENCH_MODELS_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "braze-bench-models"


def _key(name: str, config: dict, dtype: str, seed: int) -> str:
    blob = json.dumps({"config": config, "dtype": dtype, "seed": seed}, sort_keys=True)
    return f"{name}-{dtype}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def write_tokenizer(folder: Path, vocab_size: int = 300) -> None:
    """A tiny byte-level BPE; the bench feeds token ids, so braze only needs the file to exist."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<s>", "</s>"],
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<|endoftext|>", "add_bos_token": False,
         "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))


def random_state_dict(config: dict, dtype: torch.dtype, device: str, seed: int = 0):
    """Yield (HF name, CPU tensor) for every weight of the config, generated on `device`."""
    shapes = expected_weight_shapes(config_from_dict(config))
    gen = torch.Generator(device=device).manual_seed(seed)
    for name, shape in shapes.items():
        if name.endswith("norm.weight"):
            t = torch.ones(shape, dtype=dtype)
        else:
            t = torch.randn(shape, generator=gen, device=device, dtype=torch.float32).mul_(0.02)
            t = t.to(dtype).cpu()
        yield name, t


def _save_shards(tensors, folder: Path) -> None:
    from safetensors.torch import save_file

    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0

    def flush():
        # written as soon as it is full so a big model never sits twice in CPU memory
        index = len(written) + 1
        fname = f"model-{index:05d}.safetensors"
        save_file(shards[-1], str(folder / fname), metadata={"format": "pt"})
        written.append((fname, list(shards[-1])))
        shards[-1] = {}

    written: list[tuple[str, list[str]]] = []
    for name, t in tensors:
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > SHARD_BYTES:
            flush()
            size = 0
        shards[-1][name] = t
        size += nbytes
    if shards[-1]:
        flush()
    if len(written) == 1:
        (folder / written[0][0]).rename(folder / "model.safetensors")
        return
    total = len(written)
    weight_map = {}
    for i, (fname, names) in enumerate(written, 1):
        final = f"model-{i:05d}-of-{total:05d}.safetensors"
        (folder / fname).rename(folder / final)
        weight_map.update({n: final for n in names})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map},
                                                                    indent=2))


def make_checkpoint(name: str, config: dict, dtype: str = "bfloat16", cache_dir: str | Path | None = None,
                    device: str | None = None, seed: int = 0, say=print) -> Path:
    """The cached folder for (name, config, dtype, seed); made on first use."""
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = root / _key(name, config, dtype, seed)
    if (folder / DONE_MARKER).is_file():
        return folder
    if folder.exists():
        shutil.rmtree(folder)  # a partial folder from an interrupted run
    folder.mkdir(parents=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    say(f"  writing random {dtype} weights for {name} to {folder}")
    cfg = dict(config, torch_dtype=dtype)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    _save_shards(random_state_dict(config, getattr(torch, dtype), device, seed), folder)
    write_tokenizer(folder)
    (folder / DONE_MARKER).write_text("")
    return folder


def load_state_dict(folder: Path, device: str) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint, loaded straight onto `device`."""
    from safetensors.torch import load_file

    from braze.frontend.hf import weight_files

    state: dict[str, torch.Tensor] = {}
    for file in weight_files(folder):
        state.update(load_file(str(file), device=device))
    return state
