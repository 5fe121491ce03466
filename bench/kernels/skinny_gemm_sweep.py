"""Short-prompt projections (M = 16, 32 or 128 rows): braze's weight-streaming GEMV kernel (all M rows
in one tile, tl.dot per K chunk, optional split-K) against cuBLAS (not a test). At 16 rows (the
GEMV bucket braze runs for batched decode and short prompts) the heuristic's own config is timed
too ("default"). At these M a
projection is bound by reading the weight, and cuBLAS reaches well under the copy bandwidth there
(kernel suite, H100: TinyLlama gate|up at 32 tokens 27 us for 46 MB). Each config is given to the
matmul kernel as tuning knobs, checked against eager and timed like the kernel suite.

    PYTHONPATH=. python3 bench/kernels/skinny_gemm_sweep.py [--seqs 32,128] [--out F]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from braze.bench.suite.configs import MODEL_CONFIGS  # noqa: E402
from braze.bench.suite.kernels import _flush_buffer  # noqa: E402
from braze.bench.suite.layer_cases import build_case  # noqa: E402
from braze.module_compiler import export_graph  # noqa: E402
from braze.passes.pipeline import lower  # noqa: E402
from knob_sweep import measure, with_knobs  # noqa: E402  (this folder)

# (block_n, block_k, num_warps, num_stages, split_k)
CONFIGS = {
    16: [(16, 256, 4, 4, 1), (32, 256, 4, 3, 1), (64, 128, 4, 3, 1), (32, 128, 4, 4, 2), (64, 256, 8, 3, 1),
         (128, 128, 8, 3, 1)],
    32: [(32, 128, 4, 4, 1), (32, 256, 4, 3, 1), (64, 128, 4, 3, 1), (64, 128, 8, 3, 1), (16, 256, 4, 4, 1),
         (32, 128, 4, 4, 2), (64, 128, 4, 3, 2), (16, 128, 4, 4, 2), (64, 64, 4, 4, 1), (128, 64, 8, 3, 1)],
    128: [(32, 64, 4, 3, 1), (64, 64, 8, 3, 1), (32, 128, 8, 3, 1), (64, 32, 4, 3, 1), (16, 128, 4, 3, 1),
          (32, 64, 4, 3, 2)],
}
BUCKET = {16: 16, 32: 64, 128: 0}   # the launcher's M bucket for these row counts
BLOCK_M = {16: 16, 32: 64, 128: 128}
LIBRARY = {"variant": "library", "block_m": 128, "block_n": 128, "block_k": 64, "num_warps": 8, "num_stages": 3,
           "split_k": 1}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/skinny-gemm-sweep.json")
    ap.add_argument("--seqs", default="32,128")
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    flush = _flush_buffer("cuda")
    rows = []
    for seq in map(int, args.seqs.split(",")):
        for model in ("tinyllama-1.1b", "qwen2.5-7b"):
            for case in ("qkv_proj", "o_proj", "gate_up", "down_proj"):
                module, inputs = build_case(case, MODEL_CONFIGS[model], seq, getattr(torch, args.dtype), "cuda")
                with torch.inference_mode():
                    want = module(*inputs)
                graph, names = export_graph(module, inputs)
                base = lower(graph)
                feeds = dict(zip(names, inputs))
                row = {"model": model, "case": case, "seq": seq, "dtype": args.dtype, "configs": {}}
                weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
                row["weight_MB"] = weight_bytes / 1e6
                # (name, knobs for the bucket; None: the emitter's own choice, cuBLAS past 16 rows)
                candidates = [("default", None), ("library", LIBRARY)] if seq == 16 else [("library", None)]
                candidates += [("gemv_{}x{}x{}_w{}s{}_k{}".format(BLOCK_M[seq], bn, bk, warps, stages, split),
                                {"variant": "gemv", "block_m": BLOCK_M[seq], "block_n": bn, "block_k": bk,
                                 "num_warps": warps, "num_stages": stages, "split_k": split})
                               for bn, bk, warps, stages, split in CONFIGS[seq]]
                for key, knobs in candidates:
                    program = base if knobs is None else with_knobs(base, "matmul", {BUCKET[seq]: dict(knobs)})
                    row["configs"][key] = measure(program, feeds, want, flush)
                    if "rel_err" in row["configs"][key]:
                        row["configs"][key]["TBps"] = weight_bytes / row["configs"][key]["us"] / 1e6
                ok = {k: v["us"] for k, v in row["configs"].items() if v.get("rel_err", 1) < 2e-2}
                best = min(ok, key=ok.get)
                row["best"] = best
                lib = row["configs"]["library"]["us"]
                default = f" | default {row['configs']['default']['us']:7.1f} us" if "default" in row["configs"] else ""
                print(f"{model:<15} {case:<10} seq {seq:<4} {row['weight_MB']:6.1f} MB | cuBLAS {lib:7.1f} us{default} | "
                      f"best {best} {ok[best]:7.1f} us ({lib / ok[best]:.2f}x)", flush=True)
                rows.append(row)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows},
                                                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
