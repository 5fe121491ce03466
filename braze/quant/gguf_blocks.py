"""GGUF Q4_0 / Q4_1 / Q8_0 and Q4_K / Q6_K tensors as braze quantized weights, block values unchanged.

llama.cpp's blocks hold 32 weights each: Q8_0 = fp16 d + 32 int8 (w = q * d); Q4_0 = fp16 d +
16 bytes of nibbles (w = (q - 8) * d); Q4_1 = fp16 d, fp16 m + 16 bytes (w = q * d + m). Within a
Q4 block byte j holds weight j (low nibble) and weight j + 16 (high nibble); braze's int4 rows
pair adjacent weights (formats.py), so the nibbles are re-paired once at load time.

The K-quants of Q4_K_M files group 256 weights into a super-block (llama.cpp's ggml-quants.c):
  Q4_K (144 bytes): fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32,
       128 bytes of nibbles (bytes 32c..32c+31 hold sub-block 2c low, 2c+1 high);
       w = d * sc * q - dmin * m  ->  int4, group 32, scale d * sc, min -dmin * m (float32).
  Q6_K (210 bytes): 128 bytes of low nibbles, 64 of 2-bit highs, 16 int8 scales, fp16 d;
       w = d * sc * (q - 32) for 16 groups of 16  ->  int8, group 16, scale d * sc (float32).
The 4-bit and 6-bit values, scales and mins are the file's own (products of the file's two scale
levels are taken once, in float32, as llama.cpp does): no weight is expanded to float.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from braze.frontend.gguf_file import hf_name, unpermute_qk
from braze.quant.formats import QuantizedTensor, pack_int4

NATIVE_TYPES = ("Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K")
BLOCK = 32
SUPER_BLOCK = 256  # QK_K


def _f16(raw: np.ndarray, start: int) -> torch.Tensor:
    """The fp16 field at byte `start` of every block: [rows, blocks]."""
    return torch.from_numpy(np.ascontiguousarray(raw[..., start:start + 2]).view(np.float16)[..., 0].copy())


def blocks_to_quantized(kind: str, data: np.ndarray, shape: tuple[int, int]) -> QuantizedTensor:
    """One GGUF tensor's raw bytes [rows, bytes per row] of type `kind` -> QuantizedTensor [N, K]."""
    n, k = shape
    if kind in ("Q4_K", "Q6_K"):
        return _k_quant(kind, np.asarray(data, dtype=np.uint8).reshape(n, k // SUPER_BLOCK, -1), n, k)
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


def _k_quant(kind: str, raw: np.ndarray, n: int, k: int) -> QuantizedTensor:
    """Q4_K / Q6_K super-blocks [N, K/256, bytes] -> int4 g32 with mins / int8 g16 (module docstring)."""
    u = raw.astype(np.int32)
    if kind == "Q4_K":
        d, dmin = _f16(raw, 0).float(), _f16(raw, 2).float()
        s = u[..., 4:16]
        sc = np.concatenate((s[..., 0:4] & 63, (s[..., 8:12] & 15) | ((s[..., 0:4] >> 6) << 4)), axis=-1)
        m = np.concatenate((s[..., 4:8] & 63, (s[..., 8:12] >> 4) | ((s[..., 4:8] >> 6) << 4)), axis=-1)
        qs = u[..., 16:144].reshape(n, -1, 4, 1, 32)
        q = np.concatenate((qs & 15, qs >> 4), axis=3).reshape(n, k)  # sub-blocks 2c (low), 2c + 1 (high)
        scales = (d[..., None] * torch.from_numpy(sc).float()).reshape(n, -1)
        mins = -(dmin[..., None] * torch.from_numpy(m).float()).reshape(n, -1)
        return QuantizedTensor("int4", BLOCK, pack_int4(torch.from_numpy(q)), scales, mins)
    ql, qh = u[..., 0:128].reshape(n, -1, 2, 64), u[..., 128:192].reshape(n, -1, 2, 32)
    q = np.concatenate(((ql[..., :32] & 15) | ((qh & 3) << 4), (ql[..., 32:] & 15) | (((qh >> 2) & 3) << 4),
                        (ql[..., :32] >> 4) | (((qh >> 4) & 3) << 4), (ql[..., 32:] >> 4) | (((qh >> 6) & 3) << 4)),
                       axis=-1) - 32  # [N, blocks, 2 halves, 128]
    sc = torch.from_numpy(np.ascontiguousarray(raw[..., 192:208]).view(np.int8).astype(np.float32))
    scales = (_f16(raw, 208).float()[..., None] * sc).reshape(n, -1)
    return QuantizedTensor("int8", 16, torch.from_numpy(q.reshape(n, k).astype(np.int8)), scales)


def load_gguf_blocks(path: str | Path, num_heads: int, num_kv_heads: int) -> dict[str, QuantizedTensor]:
    """HF name -> QuantizedTensor for every 2-d tensor of a NATIVE_TYPES type in a llama GGUF file (q/k rows
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
