"""Step time against the number of tokens in the step (not a test): TinyLlama-1.1B (real config,
random weights, bf16), one sequence, each token count replayed from the engine's step graphs
(decode: its decode graph), CUDA-event medians. `--m16 library` runs the M <= 16 matmul bucket
through cuBLAS instead of braze's GEMV-16 kernel, to compare.

    PYTHONPATH=. python3 bench/kernels/step_tokens_sweep.py [--tokens 1,8,16,17,32,64,65,128,512] [--m16 library]
"""
from __future__ import annotations

import argparse
import statistics

import torch


def replay_us(fn, repeats: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="1,8,16,17,32,64,65,128,512")
    ap.add_argument("--m16", default="gemv", choices=("gemv", "library"))
    args = ap.parse_args(argv)
    import braze
    import braze.codegen.triton.matmul as mm
    from braze.bench.suite.checkpoint import make_checkpoint
    from braze.bench.suite.configs import MODEL_CONFIGS

    if args.m16 == "library":
        real = mm.default_matmul_config

        def library_at_16(g, m_bucket, n, k):
            c = real(g, m_bucket, n, k)
            if m_bucket == mm.GEMV_MAX_M and mm.library_eligible(g) and not g.k.attr("quant"):
                return mm.MatmulConfig("library", 16, 128, 64, 4, 3, 1)
            return c
        mm.default_matmul_config = library_at_16
    folder = make_checkpoint("tinyllama-1.1b", MODEL_CONFIGS["tinyllama-1.1b"], "bfloat16", say=print)
    llm = braze.LLM(str(folder), device="cuda", dtype="bfloat16", max_num_seqs=1, max_model_len=1024,
                    max_num_batched_tokens=512)
    engine = llm.engine
    for n in map(int, args.tokens.split(",")):
        if n == 1:
            us = replay_us(lambda: engine.graphs.run([5], [300], [0]))
        else:
            us = replay_us(lambda n=n: engine.step_graphs.run([5] * n, list(range(n)), [0] * n, [n - 1]))
        print(f"m16={args.m16} tokens {n:4d}: {us:8.1f} us per step", flush=True)


if __name__ == "__main__":
    main()
