"""Quantization methods by name, as the CLI and the API take them.

    int8                 symmetric int8, one scale per output channel
    int4-rtn-g128        int4 round-to-nearest, groups of 128 (32, 64, 128), with zero points
    int4-rtn-g128-sym    the same, symmetric (no zero points)
    int4-awq-g128        AWQ: activation-aware channel scales from a calibration text, then RTN
    fp8                  float8 e4m3 weights, one scale per channel (GPU prefill: fp8 activations too)
    gguf                 a GGUF file's own Q4_0 / Q4_1 / Q8_0 / Q4_K / Q6_K blocks, run as they are
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from braze.errors import InvalidArgumentError
from braze.quant.formats import QuantizedTensor, quantize_fp8, quantize_int4, quantize_int8

METHOD_EXAMPLES = ("int8", "int4-rtn-g128", "int4-awq-g128", "int4-rtn-g128-sym", "fp8", "gguf")
OUTPUT_HEADS = ("lm_head.weight", "model.embed_tokens.weight")  # the tied head reads the embedding
_INT4 = re.compile(r"^int4-(rtn|awq)-g(32|64|128)(-sym)?$")


@dataclass(frozen=True)
class QuantScheme:
    """What the quantize pass does to each linear weight. `prequantized` (weight name ->
    QuantizedTensor) takes precedence: GGUF blocks, or a folder written by `braze quantize`."""

    method: str
    format: str
    group: int | None = None      # None: one group per row (per channel)
    zero_point: bool = False
    awq: bool = False
    prequantized: dict = field(default_factory=dict, compare=False, repr=False)

    def quantize(self, weight: torch.Tensor, name: str = "") -> QuantizedTensor | None:
        """Quantize one float [N, K] weight, or None when it does not fit the format (int4: odd K).
        int4 methods keep the output head in int8: the head's error reaches every logit directly
        (llama.cpp's 4-bit files keep it at 6-8 bits; AWQ leaves it unquantized)."""
        k = weight.shape[1]
        if self.format == "int8" or (self.format == "int4" and name in OUTPUT_HEADS):
            return quantize_int8(weight)
        if self.format == "fp8":
            return quantize_fp8(weight)
        if self.format == "int4" and k % 2 == 0:
            return quantize_int4(weight, self.group, self.zero_point)
        return None


def parse_method(method: str) -> QuantScheme:
    """QuantScheme for a method name; a clear error naming the accepted ones otherwise."""
    name = method.strip().lower()
    if name == "int8":
        return QuantScheme(name, "int8")
    if name == "fp8":
        return QuantScheme(name, "fp8")
    if name == "gguf":
        return QuantScheme(name, "gguf")
    m = _INT4.match(name)
    if m:
        return QuantScheme(name, "int4", int(m.group(2)), zero_point=not m.group(3), awq=m.group(1) == "awq")
    raise InvalidArgumentError(f"unknown quantization method {method!r}; use one of {', '.join(METHOD_EXAMPLES)} "
                               "(int4 groups: g32, g64, g128)")
