"""Where batch-1 greedy decode loses time between the GPU's steps (not a test): TinyLlama-1.1B-shaped
random bf16 weights; `generate` (prompt 128, 256 new tokens, the suite's decode measure) with
engine.GREEDY_CHUNK at several sizes, round-robin, against the same decode graph replayed back to
back with no host checks at all.

    PYTHONPATH=. python3 bench/kernels/greedy_chunk_sweep.py [--chunks 8,16,32] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import braze  # noqa: E402
import braze.runtime.engine as engine_mod  # noqa: E402
from braze.bench.suite.checkpoint import make_checkpoint  # noqa: E402
from braze.bench.suite.configs import MODEL_CONFIGS  # noqa: E402


def seconds(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", default="8,16,32")
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("greedy_chunk_sweep needs a CUDA GPU")
    folder = make_checkpoint("tinyllama-1.1b", MODEL_CONFIGS["tinyllama-1.1b"])
    llm = braze.LLM(str(folder), device="cuda", dtype="bfloat16", max_num_seqs=1, max_model_len=512)
    prompt = list(range(3, 131))

    def generate(n):
        params = braze.SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)
        return lambda: llm.generate(prompt_token_ids=[prompt], sampling_params=params)
    chunks = [int(c) for c in args.chunks.split(",")]
    times = {c: [] for c in chunks}
    generate(args.new_tokens + 1)()  # warm-up
    for _ in range(args.rounds):
        for c in chunks:
            engine_mod.GREEDY_CHUNK = c
            first = seconds(generate(1))
            times[c].append((seconds(generate(args.new_tokens + 1)) - first) / args.new_tokens)
    graphs = llm.engine.graphs
    replay = statistics.median(seconds(lambda: graphs.run_greedy([1], [256], [0], args.new_tokens)) / args.new_tokens
                               for _ in range(args.rounds))
    result = {"device": torch.cuda.get_device_name(), "new_tokens": args.new_tokens,
              "graph_replay_ms_per_token": replay * 1e3,
              "generate_ms_per_token": {c: statistics.median(t) * 1e3 for c, t in times.items()}}
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
