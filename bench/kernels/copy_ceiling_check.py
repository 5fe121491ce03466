"""How steady the measured copy-bandwidth ceiling is, in a fresh process, with and without the
timed CUDA warm-up (braze.bench.ceilings.CUDA_WARM_SECONDS).

    for w in 0 0.3 0 0.3; do python3 bench/kernels/copy_ceiling_check.py $w; done

Each run prints the first copy measurement of its process (what a benchmark run gets), three more
after it, and the bf16 matmul rate.
"""
from __future__ import annotations

import argparse

import torch

import braze.bench.ceilings as ceilings
from braze.errors import InvalidArgumentError


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("warm_seconds", type=float, help="CUDA_WARM_SECONDS for this process")
    args = ap.parse_args()
    ceilings.CUDA_WARM_SECONDS = args.warm_seconds
    try:
        first = ceilings.measure_copy_bandwidth("cuda") / 1e12
    except InvalidArgumentError as e:  # no GPU: one line, not a traceback
        raise SystemExit(f"copy_ceiling_check: {e}") from None
    more = [round(ceilings.measure_copy_bandwidth("cuda") / 1e12, 3) for _ in range(3)]
    matmul = ceilings.measure_matmul_flops("cuda", torch.bfloat16) / 1e12
    print(f"warm_s={args.warm_seconds} first_TBps={first:.3f} then={more} bf16_TFLOPs={matmul:.0f}", flush=True)


if __name__ == "__main__":
    main()
