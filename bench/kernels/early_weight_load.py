"""Does a decode GEMV gain from loading its first weight chunk *before* griddepcontrol.wait? (not a test)

With programmatic dependent launch a GEMV's programs become resident while the kernel before it
still runs (its tail), and wait at griddepcontrol.wait. Weights are never written by the kernel
before, so they may be loaded ahead of the wait: the first wave's weight bytes then move during the
previous kernel's tail instead of after it. This script times a chain shaped like TinyLlama's decode
GEMVs (per layer: QKV 2048->2560, O 2048->2048, gate/up 2048->11264, down 5632->2048; 22 layers,
each with its own weights), every kernel reading the output of the one before, captured in one
CUDA graph, for: no PDL, PDL, and PDL with the first chunk loaded before the wait; bf16 and int8
(per-row scale) weights. Variants are timed round-robin; outputs of all variants are compared.

    PYTHONPATH=. python3 bench/kernels/early_weight_load.py [--rounds 5] [--out F]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from braze.bench.ceilings import measure_copy_bandwidth  # noqa: E402
from braze.bench.suite.kernels import graphed  # noqa: E402
from braze.codegen.triton.matmul_config import matmul_config  # noqa: E402

LAYER = [(2048, 2560), (2048, 2048), (2048, 11264), (5632, 2048)]  # (K, N), TinyLlama
LAYERS = 22


@triton.jit
def gemv(x, w, scale, out, N, K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
         PDL: tl.constexpr, EARLY: tl.constexpr, SCALED: tl.constexpr):
    pid = tl.program_id(0)
    cols = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    wp = w + tl.minimum(cols, N - 1).to(tl.int64)[:, None] * K
    kk0 = tl.max_contiguous(tl.multiple_of(tl.arange(0, BLOCK_K), BLOCK_K), BLOCK_K)[None, :]
    if EARLY:  # weights only: nothing the kernel before writes
        b0 = tl.load(wp + kk0, mask=kk0 < K, other=0)
    if PDL:
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()
    acc = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    start = 0
    if EARLY:
        a0 = tl.load(x + kk0, mask=kk0 < K, other=0.0).to(tl.float32)
        acc += a0 * b0.to(tl.float32)
        start = BLOCK_K
    for k0 in range(start, K, BLOCK_K):
        kk = k0 + kk0
        a = tl.load(x + kk, mask=kk < K, other=0.0).to(tl.float32)
        b = tl.load(wp + kk, mask=kk < K, other=0)
        acc += a * b.to(tl.float32)
    value = tl.sum(acc, axis=1)
    if SCALED:
        value = value * tl.load(scale + tl.minimum(cols, N - 1))
    tl.store(out + cols, value.to(out.dtype.element_ty), mask=cols < N)


def config(K: int, N: int, wdtype: torch.dtype) -> tuple[int, int, int]:
    """(BLOCK_N, BLOCK_K, warps): braze's decode GEMV heuristic for this shape (no split-K: N fills
    the machine at every shape here)."""
    c = matmul_config(1, N, K, "bfloat16", weight_bytes=None if wdtype == torch.bfloat16 else 1.0)
    return c.block_n, c.block_k, c.num_warps


def build(wdtype: torch.dtype):
    torch.manual_seed(0)
    layers = []
    for _ in range(LAYERS):
        for K, N in LAYER:
            w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16) / K ** 0.5
            s = None
            if wdtype == torch.int8:
                s = (w.float().abs().amax(1) / 127).clamp_min(1e-8)
                w = (w.float() / s[:, None]).round().clamp(-127, 127).to(torch.int8)
            layers.append((K, N, w.contiguous(), s))
    x = torch.randn(2048, device="cuda", dtype=torch.bfloat16)
    outs = [torch.empty(N, device="cuda", dtype=torch.bfloat16) for _, N, _, _ in layers]
    return x, layers, outs


def chain(x, layers, outs, pdl: bool, early: bool):
    def run():
        inp = x
        for (K, N, w, s), out in zip(layers, outs):
            bn, bk, warps = config(K, N, w.dtype)
            extra = {"launch_pdl": True} if pdl else {}
            gemv[(triton.cdiv(N, bn),)](inp, w, s if s is not None else w, out, N, K, bn, bk, pdl, early,
                                        s is not None, num_warps=warps, **extra)
            inp = out
    return run


def time_ms(replay, replays: int = 50) -> float:
    """Mean time of back-to-back replays (the chain's kernels overlap each other, not the replays)."""
    replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / replays


def ptx_order() -> dict:
    """Where the first weight load sits against griddepcontrol.wait in the compiled EARLY kernel."""
    try:
        k = next(iter(gemv.device_caches[torch.cuda.current_device()][0].values()))
        ptx = k.asm["ptx"].split("\n")
    except Exception as e:  # noqa: BLE001 (a diagnostic only)
        return {"error": repr(e)}
    wait = next((i for i, line in enumerate(ptx) if "griddepcontrol.wait" in line), None)
    load = next((i for i, line in enumerate(ptx) if "ld.global" in line), None)
    return {"wait_line": wait, "first_ld_global_line": load}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    copy = measure_copy_bandwidth("cuda")
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
              "copy_TBps": copy / 1e12, "layers": LAYERS, "shapes": LAYER, "variants": {}}
    variants = {"no_pdl": (False, False), "pdl": (True, False), "pdl_early": (True, True)}
    for wdtype in (torch.bfloat16, torch.int8):
        x, layers, outs = build(wdtype)
        nbytes = sum(w.numel() * w.element_size() for _, _, w, _ in layers)
        graphs, finals = {}, {}
        for name, (pdl, early) in variants.items():
            graphs[name] = graphed(chain(x, layers, outs, pdl, early))
            graphs[name]()
            torch.cuda.synchronize()
            finals[name] = outs[-1].clone()
        same = all(torch.equal(finals[n], finals["no_pdl"]) for n in variants)
        times = {n: [] for n in variants}
        for _ in range(args.rounds):
            for n, g in graphs.items():
                times[n].append(time_ms(g))
        floor_ms = nbytes / copy * 1e3
        key = str(wdtype).replace("torch.", "")
        result["variants"][key] = {
            "weight_bytes": nbytes, "floor_ms": floor_ms, "outputs_identical": same,
            "ms": {n: statistics.median(t) for n, t in times.items()}, "ms_each": times}
        print(f"{key}: floor {floor_ms:.3f} ms, identical outputs {same}; "
              + ", ".join(f"{n} {statistics.median(t):.4f} ms ({floor_ms / statistics.median(t):.0%})"
                          for n, t in times.items()), flush=True)
        del graphs, layers, outs
        torch.cuda.empty_cache()
    result["ptx"] = ptx_order()
    print(result["ptx"])
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
