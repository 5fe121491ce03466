"""FP8 prefill projections that add the residual (O and down): `_scaled_mm` then an add kernel
(braze now) against one Triton fp8 GEMM that adds the residual in its epilogue (not a test).

In bf16 prefill cuBLAS adds the residual itself (`torch.addmm`, beta = 1); `torch._scaled_mm` has
no such input, so an fp8 matmul with a residual writes its product, and a second kernel reads it
and the residual and writes the sum: for TinyLlama at 2048 tokens three more 8 MB passes and a
launch, twice a layer. This measures whether a Triton e4m3 GEMM with per-token and per-channel
scales and the add fused beats that pair at the shapes that have the add. Every variant is checked
against the float32 product of the same e4m3 values (the Triton one is braze's
`braze/codegen/triton/fp8_gemm.py`, BRAZE_FP8_FUSED_ADD=1); timing is one CUDA graph replay, median of
`--repeats`, L2 warm (a prefill's activations were just written) or cold (`--flush`).

    PYTHONPATH=. python3 bench/kernels/fp8_residual_gemm.py [--tokens 2048] [--out F]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from braze.bench.suite.kernels import _flush_buffer, gpu_us, graphed  # noqa: E402
from braze.codegen.triton.fp8_gemm import fp8_mm_add  # noqa: E402

# (model, projection) -> (N, K): the prefill matmuls that add the residual
SHAPES = {
    ("tinyllama-1.1b", "o_proj"): (2048, 2048), ("tinyllama-1.1b", "down_proj"): (2048, 5632),
    ("qwen2.5-7b", "o_proj"): (3584, 3584), ("qwen2.5-7b", "down_proj"): (3584, 18944),
}


def candidates(K: int) -> list[dict]:
    out = []
    for bm, bn, bk, warps, stages in itertools.product((64, 128), (128, 256), (128,), (4, 8), (3, 4)):
        if K % bk or (bm == 64 and bn == 256 and warps == 4):
            continue
        out.append(dict(block_m=bm, block_n=bn, block_k=bk, num_warps=warps, num_stages=stages))
    return out


def name(cfg: dict) -> str:
    return f"triton_{cfg['block_m']}x{cfg['block_n']}x{cfg['block_k']}_w{cfg['num_warps']}s{cfg['num_stages']}"


def e4m3_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row scales (max / 448) and the e4m3 rows, as braze's fp8 prologue writes them."""
    scale = (x.float().abs().amax(dim=1, keepdim=True) / 448.0).clamp(min=1e-12)
    return (x.float() / scale).to(torch.float8_e4m3fn), scale


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/fp8-residual-gemm.json")
    ap.add_argument("--tokens", default="2048")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--config-out", help="write the best TinyLlama config as BRAZE_FP8_ADD_CONFIG's value here")
    ap.add_argument("--flush", action="store_true", help="zero a 256 MB buffer before each replay (cold L2)")
    args = ap.parse_args()
    torch.manual_seed(0)
    flush = _flush_buffer("cuda") if args.flush else None
    rows = []
    for tokens in map(int, args.tokens.split(",")):
        for (model, case), (N, K) in SHAPES.items():
            a8, s_a = e4m3_rows(torch.randn(tokens, K, device="cuda"))
            w8, s_w = e4m3_rows(torch.randn(N, K, device="cuda") / K ** 0.5)
            s_w = s_w.view(-1).contiguous()
            res = torch.randn(tokens, N, device="cuda", dtype=torch.bfloat16)
            want = (a8.float() * s_a) @ (w8.float() * s_w[:, None]).t() + res.float()
            out = torch.empty(tokens, N, device="cuda", dtype=torch.bfloat16)

            def err() -> float:
                return ((out.float() - want).abs().max() / want.abs().max()).item()

            def scaled_mm_add():
                y = torch._scaled_mm(a8, w8.t(), scale_a=s_a, scale_b=s_w.view(1, -1), out_dtype=torch.bfloat16,
                                     use_fast_accum=True)
                torch.add(y, res, out=out)

            def scaled_mm_only():
                torch._scaled_mm(a8, w8.t(), scale_a=s_a, scale_b=s_w.view(1, -1), out_dtype=torch.bfloat16,
                                 use_fast_accum=True, out=out)

            a16 = (a8.float() * s_a).to(torch.bfloat16)
            w16 = (w8.float() * s_w[:, None]).to(torch.bfloat16)
            results = {}
            for label, fn in (("scaled_mm+add", scaled_mm_add), ("scaled_mm", scaled_mm_only),
                              ("bf16_addmm", lambda: torch.addmm(res, a16, w16.t(), out=out))):
                us = gpu_us(graphed(fn), args.repeats, flush)
                results[label] = {"us": us, "rel_err": err() if label != "scaled_mm" else None}
            for cfg in candidates(K):
                try:
                    config = tuple(cfg[k] for k in ("block_m", "block_n", "block_k", "num_warps", "num_stages"))
                    run = (lambda config=config: fp8_mm_add(a8, s_a, w8, s_w, res, out, config))
                    out.zero_()
                    run()
                    torch.cuda.synchronize()
                    results[name(cfg)] = {"us": gpu_us(graphed(run), args.repeats, flush), "rel_err": err()}
                except Exception as exc:  # a config that does not compile (shared memory) is skipped, named
                    results[name(cfg)] = {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
            ok = {k: v for k, v in results.items() if k.startswith("triton") and "us" in v and v["rel_err"] < 2e-2}
            best = min(ok, key=lambda k: ok[k]["us"]) if ok else None
            base = results["scaled_mm+add"]["us"]
            flops = 2 * tokens * N * K
            row = {"model": model, "case": case, "tokens": tokens, "n": N, "k": K, "configs": results, "best_triton": best,
                   "best_vs_scaled_mm_add": round(base / ok[best]["us"], 3) if best else None}
            rows.append(row)
            print(f"{model} {case} T={tokens}: scaled_mm+add {base:.1f} us, scaled_mm {results['scaled_mm']['us']:.1f}, "
                  f"bf16 addmm {results['bf16_addmm']['us']:.1f}; best {best} "
                  f"{ok[best]['us'] if best else float('nan'):.1f} us "
                  f"({flops / (ok[best]['us'] * 1e6) if best else 0:.0f} TFLOP/s) -> {row['best_vs_scaled_mm_add']}x",
                  flush=True)
    # one config for every shape of the model the end-to-end runs use (TinyLlama): the least total time
    tiny = [r for r in rows if r["model"] == "tinyllama-1.1b"]
    names = [c for c in tiny[0]["configs"] if c.startswith("triton") and all(
        "us" in r["configs"][c] and r["configs"][c]["rel_err"] < 2e-2 for r in tiny)] if tiny else []
    common = min(names, key=lambda c: sum(r["configs"][c]["us"] for r in tiny)) if names else None
    if common:
        cfg = next(c for c in candidates(tiny[0]["k"]) if name(c) == common)
        env = ",".join(str(cfg[k]) for k in ("block_m", "block_n", "block_k", "num_warps", "num_stages"))
        print(f"BRAZE_FP8_ADD_CONFIG={env}  ({common}: TinyLlama O + down "
              f"{sum(r['configs'][common]['us'] for r in tiny):.1f} us vs _scaled_mm + add "
              f"{sum(r['configs']['scaled_mm+add']['us'] for r in tiny):.1f} us)")
        if args.config_out:
            Path(args.config_out).write_text(env + "\n")
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
            "flush": args.flush, "best_common_tinyllama": common, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(info, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
