"""What every frontend returns: a config, HF-named weights and a tokenizer."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from braze.models.config import ModelConfig

if TYPE_CHECKING:  # avoid importing tokenizers just to annotate
    from braze.frontend.tokenizer import Tokenizer


@dataclass(frozen=True)
class LoadedModel:
    """A checkpoint ready for the model builder.

    `weights` uses Hugging Face tensor names (`model.layers.0.self_attn.q_proj.weight`) and the
    checkpoint's own dtype (float32 for dequantized GGUF); the caller casts. Frozen so a loaded
    model can be shared; the dict itself is not copied, to avoid doubling memory.
    """

    config: ModelConfig
    weights: dict[str, torch.Tensor] = field(repr=False)
    tokenizer: "Tokenizer" = field(repr=False)
    source: str  # the path the model was read from, for messages and caching
