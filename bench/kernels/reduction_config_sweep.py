"""RMSNorm (a row reduction) launch configs on the kernel suite's rmsnorm cases (not a test): each
(rows a program, warps) is given to the reduction kernel as tuning knobs, checked against eager and
timed like the kernel suite (one CUDA-graph replay, cold L2, median).

    PYTHONPATH=. python3 bench/kernels/reduction_config_sweep.py [--out F]
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

CONFIGS = [(1, 4), (1, 8), (1, 16), (2, 4), (2, 8), (4, 8)]  # (block_r, num_warps)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/reduction-config-sweep.json")
    args = ap.parse_args()
    flush = _flush_buffer("cuda")
    rows = []
    for model in ("tinyllama-1.1b", "qwen2.5-7b"):
        for dtype in ("bfloat16", "float32"):
            for seq in (32, 128, 512):
                module, inputs = build_case("rmsnorm", MODEL_CONFIGS[model], seq, getattr(torch, dtype), "cuda")
                with torch.inference_mode():
                    want = module(*inputs)
                compiled = torch.compile(module, fullgraph=True)
                compiled(*inputs)
                row = {"model": model, "dtype": dtype, "seq": seq, "configs": {},
                       "compile_us": gpu_us(graphed(lambda: compiled(*inputs)), 50, flush)}
                graph, names = export_graph(module, inputs)
                base = lower(graph)
                feeds = dict(zip(names, inputs))
                for block_r, warps in CONFIGS:
                    knobs = {0: {"block_r": block_r, "num_warps": warps}}
                    row["configs"][f"r{block_r}w{warps}"] = measure(with_knobs(base, "reduction", knobs), feeds,
                                                                   want, flush)
                best = min(row["configs"], key=lambda c: row["configs"][c]["us"])
                print(f"{model:<15} {dtype:<9} seq {seq:<4} compile {row['compile_us']:6.1f} us | "
                      + " ".join(f"{c} {v['us']:5.1f}" for c, v in row["configs"].items()) + f" | best {best}",
                      flush=True)
                rows.append(dict(row, best=best))
                torch._dynamo.reset()
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
