"""RoPE frequency tables, including the config's rope scaling; computed once, stored as weights."""
from __future__ import annotations

import math

import torch

from braze.errors import UnsupportedArchitectureError
from braze.models.config import ModelConfig

SUPPORTED_ROPE_SCALING = ("default", "linear", "llama3")


def inverse_frequencies(config: ModelConfig) -> torch.Tensor:
    d = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).double() / d))
    scaling = config.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return inv_freq
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        # Llama 3.1: keep high frequencies, divide low ones by `factor`, blend in between.
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_context = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_context / low, inv_freq / factor, inv_freq)
        smooth = (old_context / wavelen - low) / (high - low)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_context / high) & (wavelen <= old_context / low)
        return torch.where(medium, blended, scaled)
    raise UnsupportedArchitectureError(
        f"rope scaling {kind!r} is not supported; supported: {', '.join(SUPPORTED_ROPE_SCALING)}")


def rope_tables(config: ModelConfig, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * frequency: [context, head_dim / 2] float32 each."""
    freqs = torch.outer(torch.arange(context, dtype=torch.float32), inverse_frequencies(config).float())
    return freqs.cos(), freqs.sin()
