"""Quantized weight formats: how a [N, K] weight is stored, packed, and what it means.

A quantized weight is three tensors, rows = output channels, every row quantized on its own (so
weights concatenated along N, like Q/K/V, stay valid blocks). Weight k of a row belongs to group
k // group; when group does not divide K the last group is shorter (SmolLM2's K = 576 with groups
of 128: four of 128 and one of 64), so G = ceil(K / group) groups per row:

  format  packed                         scales [N, G]         mins [N, G] (optional)
  int8    int8 [N, K]                    w = q * s
  int4    uint8 [N, K/2], two per byte:  w = (q - 8) * s       w = q * s + m    (q in 0..15)
          byte j = element 2j (low nibble) | element 2j+1 (high nibble)
  fp8     float8_e4m3fn [N, K]           w = q * s

GGUF blocks map onto these exactly: Q8_0 is int8 with group 32, Q4_0 is symmetric int4 with group
32, Q4_1 is int4 with mins and group 32 (their scales/mins are the blocks' own fp16 d and m; only
the nibble order within a block differs, see gguf_blocks.py). Zero-point int4 (AWQ's form,
w = (q - z) * s with an integer z) is stored as m = -z * s.

Unpacked pairs are adjacent so a kernel can read K/2 contiguous bytes and expand them in registers
(Triton: tl.join(low, high).reshape), and the C++ loop reads each byte once for two weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

FORMATS = ("int8", "int4", "fp8")
FP8_MAX = 448.0  # largest finite float8_e4m3fn


def check_quantized_shapes(fmt: str, group: int, k, packed, scales, mins) -> None:
    """Raise ValueError unless packed/scales/mins shapes fit a [N, K] weight of `fmt` and `group`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown quantized format {fmt!r}; one of {', '.join(FORMATS)}")
    if not isinstance(k, int) or len(packed) != 2:
        raise ValueError(f"quantized weights need a static K and a 2-d packed weight, got K={k}, packed {list(packed)}")
    if not isinstance(group, int) or group <= 0:
        raise ValueError(f"group {group} is not a positive number of weights")
    n = packed[0]
    want_k = k // 2 if fmt == "int4" else k
    if fmt == "int4" and (group % 2 or k % 2):
        raise ValueError(f"int4 packs two weights per byte: group {group} and K={k} must be even")
    if packed[1] != want_k:
        raise ValueError(f"{fmt} packed weight {list(packed)} does not hold K={k} (expected [{n}, {want_k}])")
    if tuple(scales) != (n, groups(k, group)):
        raise ValueError(f"scales {list(scales)} do not match [{n}, {groups(k, group)}] (N, ceil(K/group))")
    if mins is not None and (fmt != "int4" or tuple(mins) != tuple(scales)):
        raise ValueError(f"mins {list(mins)} need format int4 and the scales' shape {list(scales)}")


def groups(k: int, group: int) -> int:
    return -(-k // group)


def _padded_groups(w: torch.Tensor, group: int) -> torch.Tensor:
    """[N, K] -> [N, G, group] float32, the last group padded with zeros (which no quantizer below
    needs to represent exactly: their ranges always include 0)."""
    n, k = w.shape
    pad = groups(k, group) * group - k
    return (torch.nn.functional.pad(w.float(), (0, pad)) if pad else w.float()).reshape(n, -1, group)


@dataclass(frozen=True)
class QuantizedTensor:
    """One quantized [N, K] weight (see the module docstring for the formats)."""

    format: str
    group: int
    packed: torch.Tensor
    scales: torch.Tensor
    mins: torch.Tensor | None = None

    def __post_init__(self):
        k = self.packed.shape[1] * (2 if self.format == "int4" else 1)
        check_quantized_shapes(self.format, self.group, k, tuple(self.packed.shape), tuple(self.scales.shape),
                               None if self.mins is None else tuple(self.mins.shape))

    @property
    def shape(self) -> tuple[int, int]:
        return self.packed.shape[0], self.packed.shape[1] * (2 if self.format == "int4" else 1)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.packed, self.scales, self.mins) if t is not None)

    @property
    def bits_per_weight(self) -> float:
        n, k = self.shape
        return 8.0 * self.nbytes / (n * k)

    def dequantize(self) -> torch.Tensor:
        return dequantize(self.format, self.group, self.packed, self.scales, self.mins)

    def select_rows(self, rows: torch.Tensor) -> "QuantizedTensor":
        """The same weight with its rows permuted (llama.cpp's q/k row order undone)."""
        return QuantizedTensor(self.format, self.group, self.packed[rows].contiguous(), self.scales[rows].contiguous(),
                               None if self.mins is None else self.mins[rows].contiguous())


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """[N, K] values 0..15 -> [N, K/2] uint8, element 2j in the low nibble of byte j."""
    q = q.to(torch.uint8)
    return (q[:, 0::2] | (q[:, 1::2] << 4)).contiguous()


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """[N, K/2] uint8 -> [N, K] uint8 values 0..15."""
    return torch.stack((packed & 15, packed >> 4), dim=-1).reshape(packed.shape[0], -1)


def _per_group(x: torch.Tensor, group: int, k: int) -> torch.Tensor:
    """[N, G] group values -> [N, K] (each repeated over its group)."""
    return x.float().repeat_interleave(group, dim=1)[:, :k]


def dequantize(fmt: str, group: int, packed: torch.Tensor, scales: torch.Tensor,
               mins: torch.Tensor | None = None) -> torch.Tensor:
    """The float32 [N, K] weight a quantized one stands for (the formats' definition)."""
    k = packed.shape[1] * (2 if fmt == "int4" else 1)
    s = _per_group(scales, group, k)
    if fmt == "int8":
        return packed.float() * s
    if fmt == "fp8":
        return packed.float() * s
    if fmt == "int4":
        q = unpack_int4(packed).float()
        return q * s + _per_group(mins, group, k) if mins is not None else (q - 8.0) * s
    raise ValueError(f"unknown quantized format {fmt!r}")


def quantized_linear_reference(x: torch.Tensor, packed, scales, mins=None, *, format: str, group: int) -> torch.Tensor:
    """The Graph IR's quantized_linear: x @ dequantize(weight)^T in float32, cast to x's dtype."""
    w = dequantize(format, group, packed.to(x.device), scales.to(x.device), None if mins is None else mins.to(x.device))
    return torch.nn.functional.linear(x.float(), w).to(x.dtype)


# -- round-to-nearest quantizers --------------------------------------------------------------

def quantize_int8(w: torch.Tensor, group: int | None = None) -> QuantizedTensor:
    """Symmetric int8, one scale per row (group None) or per `group` columns; q in -127..127."""
    n, k = w.shape
    group = group or k
    g = _padded_groups(w, group)
    scale = (g.abs().amax(-1) / 127.0).clamp(min=1e-10)
    q = torch.round(g / scale[..., None]).clamp(-127, 127).to(torch.int8).reshape(n, -1)[:, :k].contiguous()
    return QuantizedTensor("int8", group, q, scale.float())


def _int4_grid(g: torch.Tensor, zero_point: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q 0..15, scale, offset) for groups g [N, G, group] by round-to-nearest: w ~ q * scale + offset.
    zero_point: (q - z) * s over each group's [min, max] (AWQ's form; offset = -z * s); else
    symmetric (q - 8) * s with s = max|w| / 7. Scales are rounded to fp16 first (as stored)."""
    if zero_point:
        lo, hi = g.amin(-1).clamp(max=0.0), g.amax(-1).clamp(min=0.0)
        scale = ((hi - lo) / 15.0).clamp(min=1e-10).half().float()
        zero = torch.round(-lo / scale).clamp(0, 15)
        q = (torch.round(g / scale[..., None]) + zero[..., None]).clamp(0, 15)
        return q, scale, (-zero * scale).half().float()
    scale = (g.abs().amax(-1) / 7.0).clamp(min=1e-10).half().float()
    return torch.round(g / scale[..., None]).clamp(-8, 7) + 8, scale, -8.0 * scale


def quantize_int4(w: torch.Tensor, group: int, zero_point: bool = True) -> QuantizedTensor:
    """Group-wise int4 by round-to-nearest (see _int4_grid), packed."""
    n, k = w.shape
    q, scale, offset = _int4_grid(_padded_groups(w, group), zero_point)
    return QuantizedTensor("int4", group, pack_int4(q.reshape(n, -1)[:, :k]), scale.half(),
                           offset.half() if zero_point else None)


def fake_quantize_int4(w: torch.Tensor, group: int, zero_point: bool = True) -> torch.Tensor:
    """quantize_int4(w).dequantize() without packing (AWQ's searches run it many times)."""
    n, k = w.shape
    q, scale, offset = _int4_grid(_padded_groups(w, group), zero_point)
    return (q * scale[..., None] + offset[..., None]).reshape(n, -1)[:, :k]


def quantize_fp8(w: torch.Tensor) -> QuantizedTensor:
    """float8 e4m3 weights with one float32 scale per row (max |w| maps to 448)."""
    n, k = w.shape
    scale = (w.float().abs().amax(-1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
    q = (w.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return QuantizedTensor("fp8", k, q, scale.float())

