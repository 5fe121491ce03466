"""GGUF Q4_0 / Q4_1 / Q8_0 tensors as braze quantized weights, block values unchanged.

llama.cpp's blocks hold 32 weights each: Q8_0 = fp16 d + 32 int8 (w = q * d); Q4_0 = fp16 d +
16 bytes of nibbles (w = (q - 8) * d); Q4_1 = fp16 d, fp16 m + 16 bytes (w = q * d + m). Within a
Q4 block byte j holds weight j (low nibble) and weight j + 16 (high nibble); braze's int4 rows
pair adjacent weights (formats.py), so the nibbles are re-paired once at load time. The scales,
mins and 4-bit values are the file's own: no weight is expanded to float.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from braze.frontend.gguf_file import hf_name, unpermute_qk
from braze.quant.formats import QuantizedTensor, pack_int4

NATIVE_TYPES = ("Q4_0", "Q4_1", "Q8_0")
BLOCK = 32


def _f16(raw: np.ndarray, start: int) -> torch.Tensor:
    """The fp16 field at byte `start` of every block: [rows, blocks]."""
    return torch.from_numpy(np.ascontiguousarray(raw[..., start:start + 2]).view(np.float16)[..., 0].copy())


def blocks_to_quantized(kind: str, data: np.ndarray, shape: tuple[int, int]) -> QuantizedTensor:
    """One GGUF tensor's raw bytes [rows, bytes per row] of type `kind` -> QuantizedTensor [N, K]."""
    n, k = shape
    raw = np.asarray(data, dtype=np.uint8).reshape(n, k // BLOCK, -1)  # [N, blocks, block bytes]
    if kind == "Q8_0":
        q = torch.from_numpy(np.ascontiguousarray(raw[..., 2:]).view(np.int8).reshape(n, k).copy())
        return QuantizedTensor("int8", BLOCK, q, _f16(raw, 0))
    if kind not in ("Q4_0", "Q4_1"):
        raise ValueError(f"GGUF type {kind} is not run natively; natively: {', '.join(NATIVE_TYPES)}")
    first = 2 if kind == "Q4_0" else 4
    qs = torch.from_numpy(np.ascontiguousarray(raw[..., first:]))  # [N, blocks, 16]
    q = torch.cat((qs & 15, qs >> 4), dim=-1).reshape(n, k)  # weights j, j + 16 back in order
    mins = _f16(raw, 2) if kind == "Q4_1" else None
    return QuantizedTensor("int4", BLOCK, pack_int4(q), _f16(raw, 0), mins)


def load_gguf_blocks(path: str | Path, num_heads: int, num_kv_heads: int) -> dict[str, QuantizedTensor]:
    """HF name -> QuantizedTensor for every 2-d Q4_0/Q4_1/Q8_0 tensor of a llama GGUF file (q/k rows
    put back in Hugging Face order, as the float loader does)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    out: dict[str, QuantizedTensor] = {}
    for tensor in reader.tensors:
        name, kind = hf_name(tensor.name), tensor.tensor_type.name
        if name is None or kind not in NATIVE_TYPES or len(tensor.shape) != 2:
            continue
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        q = blocks_to_quantized(kind, tensor.data, shape)
        heads = num_heads if tensor.name.endswith("attn_q.weight") else \
            num_kv_heads if tensor.name.endswith("attn_k.weight") else None
        if heads is not None:
            q = q.select_rows(torch.from_numpy(unpermute_qk(np.arange(shape[0]), heads).copy()))
        out[name] = q
    return out
