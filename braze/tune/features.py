"""What the cost model sees of a (kernel, bucket, config): the work (flops, bytes, arithmetic
intensity, sizes) from Kernel IR, the config's knobs, and what they imply on the device (programs,
waves over the SMs or cores, estimated occupancy, shared-memory tile bytes, padding waste).

`kernel_work` is also what `braze explain` reports and puts on the roofline.
"""
from __future__ import annotations

import math

from braze.ir.kernel import Kernel, Program, View
from braze.ir.kernel_interpret import resolve
from braze.tune.device import DeviceInfo
from braze.passes.memory import ELEMENT_BYTES
from braze.tune.space import measured_rows

KINDS = ("matmul", "attention", "pointwise", "reduction")
VARIANTS = ("gemv", "gemm", "library")
KNOB_NAMES = ("block_m", "block_n", "block_k", "num_warps", "num_stages", "split_k", "group_m", "block_r",
              "programs_per_sm", "mb", "nr", "threads")
FEATURE_NAMES = ("kind", "target", "variant", "log_m", "log_n", "log_k", "log_flops", "log_bytes", "log_intensity",
                 "log_sms", *(f"knob_{n}" for n in KNOB_NAMES), "log_programs", "waves", "wave_tail",
                 "occupancy", "log_tile_bytes", "pad_waste", "elems_per_thread")


def _esize(program: Program, buffer: str) -> int:
    return ELEMENT_BYTES[program.buffer(buffer).dtype]


def _footprint(v: View, symbols: dict[str, int]) -> int:
    """Elements a view touches (broadcast dims, stride 0, count once)."""
    shape = resolve(v.shape, symbols)
    return math.prod(d for d, s in zip(shape, v.strides) if s) if shape else 1


def kernel_work(k: Kernel, program: Program, symbols: dict[str, int], bucket: int) -> dict:
    """m, n, k sizes, flops and bytes moved (each operand's footprint read once, the output written)."""
    from braze.tune.kernel_bench import DECODE_CONTEXT
    m = measured_rows(k, symbols)
    seen, read = set(), 0
    for v in k.operands:
        key = (v.buffer, v.offset, v.strides, tuple(resolve(v.shape, symbols)))
        if key not in seen:
            seen.add(key)
            read += _footprint(v, symbols) * _esize(program, v.buffer)
    written = _footprint(k.output, symbols) * _esize(program, k.output.buffer)
    nodes = sum(len(e.walk()) for e in (k.expr, k.prologue, *(b for _, b in k.reductions)) if e is not None)
    out_elems = _footprint(k.output, symbols)
    if k.kind == "matmul":
        w = k.operands[int(k.attr("weight", len(k.operands) - 1))]
        n, kk = resolve(w.shape, symbols)
        flops = 2 * m * n * kk + nodes * m * kk
    elif k.kind == "attention":
        heads, kv_heads, d = int(k.attr("num_heads")), int(k.attr("num_kv_heads")), int(k.attr("head_dim"))
        cache_rows = resolve(k.operands[1].shape, symbols)[2]
        context = min(cache_rows, DECODE_CONTEXT) if bucket == 1 else m
        n, kk = heads * d, context
        pairs = m * context if bucket == 1 else m * (m + 1) // 2
        flops = 4 * heads * d * pairs
        esize = _esize(program, k.operands[1].buffer)
        # K and V rows of the context (per kv head), q and the output; not the whole cache
        read = 2 * kv_heads * d * context * esize + m * heads * d * _esize(program, k.operands[0].buffer)
    else:
        n = resolve(k.output.shape, symbols)[-1] if k.output.shape else 1
        kk = 1
        flops = max(1, nodes) * max(out_elems, _footprint(k.operands[0], symbols) if k.operands else 1)
    total = read + written
    return {"m": m, "n": n, "k": kk, "flops": flops, "bytes": total,
            "intensity": flops / max(total, 1)}


def _log(x: float) -> float:
    return math.log2(max(float(x), 1.0))


def _programs(k: Kernel, work: dict, config: dict, device: DeviceInfo, bucket: int) -> tuple[int, int, int]:
    """(programs launched, warps per program, shared-memory bytes per program) the config implies."""
    m, n = work["m"], work["n"]
    warps = int(config.get("num_warps", 4))
    if device.target == "cpp":
        threads = 1 if int(config.get("threads", 0)) == 1 else device.num_sms
        return threads, 1, 0
    if k.kind == "matmul":
        if config.get("variant") == "library":
            return math.ceil(m / 128) * math.ceil(n / 128), 8, 0
        bm, bn, bk = int(config["block_m"]), int(config["block_n"]), int(config["block_k"])
        stages = int(config.get("num_stages", 3))
        if config.get("variant") == "gemv":
            return math.ceil(n / bn) * int(config.get("split_k", 1)), warps, stages * (bm + bn) * bk * 2
        return math.ceil(m / bm) * math.ceil(n / bn), warps, stages * (bm + bn) * bk * 2
    if k.kind == "attention":
        heads, kv_heads = int(k.attr("num_heads")), int(k.attr("num_kv_heads"))
        if bucket == 1:
            splits = max(1, math.ceil(int(config.get("programs_per_sm", 2)) * device.num_sms / max(m * kv_heads, 1)))
            return m * kv_heads * splits, warps, int(config.get("num_stages", 2)) * 2 * int(config["block_n"]) * 128
        return math.ceil(m / int(config["block_m"])) * heads, warps, \
            int(config.get("num_stages", 2)) * 2 * int(config["block_n"]) * 128
    return math.ceil(m / int(config.get("block_r", 1))), warps, 0


def features(k: Kernel, program: Program, symbols: dict[str, int], bucket: int, config: dict,
             device: DeviceInfo) -> dict:
    work = kernel_work(k, program, symbols, bucket)
    programs, warps, smem = _programs(k, work, config, device, bucket)
    slots = max(device.num_sms, 1)
    waves = programs / slots
    # resident programs per SM: 64 warps and the shared memory bound it (CPU: one per core)
    per_sm = 1 if device.target == "cpp" else max(1, min(64 // max(warps, 1), device.smem_bytes // max(smem, 1)))
    occupancy = min(1.0, programs / (slots * per_sm))
    bm = int(config.get("block_m", config.get("block_r", config.get("mb", 1))))
    padded = math.ceil(work["m"] / bm) * bm
    feats = {
        "kind": KINDS.index(k.kind) if k.kind in KINDS else -1,
        "target": 0 if device.target == "cpp" else 1,
        "variant": VARIANTS.index(config["variant"]) if config.get("variant") in VARIANTS else -1,
        "log_m": _log(work["m"]), "log_n": _log(work["n"]), "log_k": _log(work["k"]),
        "log_flops": _log(work["flops"]), "log_bytes": _log(work["bytes"]),
        "log_intensity": math.log2(max(work["intensity"], 1e-6)), "log_sms": _log(device.num_sms),
        **{f"knob_{name}": float(config[name]) if isinstance(config.get(name), (int, float)) else -1.0
           for name in KNOB_NAMES},
        "log_programs": _log(programs), "waves": waves, "wave_tail": waves - math.floor(waves),
        "occupancy": occupancy, "log_tile_bytes": _log(smem), "pad_waste": (padded - work["m"]) / padded,
        "elems_per_thread": bm * int(config.get("block_n", 1)) / (32 * max(warps, 1)),
    }
    return feats


def vector(feats: dict) -> list[float]:
    return [float(feats.get(name, -1.0)) for name in FEATURE_NAMES]
