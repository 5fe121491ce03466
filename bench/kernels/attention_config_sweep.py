"""Prefill attention tile configs on the kernel suite's attention cases (not a test): each config is
given to the braze attention kernel as tuning knobs, checked against eager sdpa, and timed like the
kernel suite (one CUDA-graph replay, cold L2, median). Picks the defaults per dtype and head_dim.

    PYTHONPATH=. python3 bench/kernels/attention_config_sweep.py [--out F]
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
from braze.bench.suite.kernels import _flush_buffer, gpu_us, graphed  # noqa: E402
from braze.bench.suite.layer_cases import build_case  # noqa: E402
from braze.module_compiler import export_graph  # noqa: E402
from braze.passes.pipeline import lower  # noqa: E402
from knob_sweep import measure, with_knobs  # noqa: E402  (this folder)

CONFIGS = [  # (block_m, block_n, num_warps, num_stages)
    (64, 64, 4, 3), (64, 32, 4, 2), (32, 32, 4, 2), (32, 64, 4, 2), (64, 32, 8, 2), (16, 32, 4, 2),
    (128, 64, 8, 3), (64, 64, 8, 3), (128, 32, 8, 2), (32, 16, 2, 2),
    # wider K/V tiles: at 512 tokens every program is resident at once, so the slowest (the last
    # query tile, T / BN online-softmax steps) sets the time; fewer, wider steps may shorten it
    (64, 128, 4, 2), (64, 128, 8, 2), (32, 128, 4, 2), (128, 128, 8, 2), (64, 64, 4, 2), (64, 64, 4, 4),
]
# also timed heads-major with the last (longest) query tiles first ("h" suffix), and with the query
# heads of a kv head packed into one tile ("p": BM rows = BM / group tokens x the group's heads)
HEAVY_FIRST = [(64, 64, 4, 3), (128, 64, 8, 3), (64, 128, 8, 2), (128, 128, 8, 2)]
PACK_GQA = [(64, 64, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 2), (256, 64, 8, 3)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/attention-config-sweep.json")
    ap.add_argument("--seqs", default="32,128,512")
    ap.add_argument("--models", default="tinyllama-1.1b,qwen2.5-7b")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    args = ap.parse_args()
    flush = _flush_buffer("cuda")
    rows = []
    for model in args.models.split(","):
        for dtype in args.dtypes.split(","):
            for seq in map(int, args.seqs.split(",")):
                module, inputs = build_case("attention", MODEL_CONFIGS[model], seq, getattr(torch, dtype), "cuda")
                with torch.inference_mode():
                    want = module(*inputs)
                eager = gpu_us(graphed(lambda: module(*inputs)), 50, flush)
                graph, names = export_graph(module, inputs)
                base = lower(graph)
                row = {"model": model, "dtype": dtype, "seq": seq, "eager_us": eager, "configs": {}}
                feeds = dict(zip(names, inputs))
                variants = ([(c, 0, 0) for c in CONFIGS] + [(c, 1, 0) for c in HEAVY_FIRST]
                            + [(c, 0, 1) for c in PACK_GQA] + [(c, 1, 1) for c in PACK_GQA])
                for (bm, bn, warps, stages), heavy, pack in variants:
                    knobs = {0: {"block_m": bm, "block_n": bn, "num_warps": warps, "num_stages": stages,
                                 "heavy_first": heavy, "pack_gqa": pack}}
                    name = f"{bm}x{bn}w{warps}s{stages}{'h' if heavy else ''}{'p' if pack else ''}"
                    row["configs"][name] = measure(with_knobs(base, "attention", knobs), feeds, want, flush)
                ok = {k: v["us"] for k, v in row["configs"].items() if v.get("rel_err", 1) < 2e-2}
                best = min(ok, key=ok.get) if ok else None
                row["best"] = best
                print(f"{model:<15} {dtype:<9} seq {seq:<4} eager {eager:8.1f} us | default "
                      f"{row['configs'].get('64x64w4s3', {}).get('us', float('nan')):8.1f} | best {best} "
                      f"{ok.get(best, float('nan')):8.1f}", flush=True)
                rows.append(row)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
