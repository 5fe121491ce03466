"""Where a prefill step's time goes (not a test): TinyLlama-1.1B (real config, random weights), one
2048-token prompt per method under torch.profiler; prints the GPU time by kernel name (top rows),
the total GPU time and the wall time, so host-bound launch gaps show as wall >> GPU.

    PYTHONPATH=. python3 bench/kernels/prefill_profile.py [--methods bf16,fp8,int8] [--tokens 2048]
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="bf16,fp8")
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args(argv)
    import braze
    from braze.bench.suite.checkpoint import make_checkpoint
    from braze.bench.suite.configs import MODEL_CONFIGS

    cfg = MODEL_CONFIGS["tinyllama-1.1b"]
    folder = make_checkpoint("tinyllama-1.1b", cfg, "bfloat16", say=print)
    ids = torch.randint(3, cfg["vocab_size"], (args.tokens,), generator=torch.Generator().manual_seed(0)).tolist()
    params = braze.SamplingParams(max_tokens=1, temperature=0, ignore_eos=True)
    for method in args.methods.split(","):
        llm = braze.LLM(str(folder), device="cuda", dtype="bfloat16", max_num_seqs=1,
                        quant=None if method == "bf16" else method, max_model_len=args.tokens,
                        max_num_batched_tokens=args.tokens)
        for _ in range(3):
            llm.generate(prompt_token_ids=[ids], sampling_params=params)
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            llm.generate(prompt_token_ids=[ids], sampling_params=params)
            torch.cuda.synchronize()
        wall_ms = (time.perf_counter() - start) * 1e3
        by_name, count = defaultdict(float), defaultdict(int)
        for e in prof.events():
            if e.device_type == torch.autograd.DeviceType.CUDA:
                by_name[e.name[:70]] += e.device_time_total / 1e3
                count[e.name[:70]] += 1
        gpu_ms = sum(by_name.values())
        print(f"{method}: GPU {gpu_ms:.2f} ms in {sum(count.values())} kernels, wall {wall_ms:.2f} ms (profiled)")
        for name, ms in sorted(by_name.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"   {ms:7.3f} ms {count[name]:4d}x  {name}")
        del llm
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
