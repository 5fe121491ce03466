"""This machine's ceilings for the roofline: memory bandwidth and dense matmul throughput.

Decode is memory-bound: tokens/s can not beat bandwidth / bytes read per token, so the
bandwidth measured here is what a decode benchmark is compared against.  Both measurements
use every thread torch has, warm up first and report the median of the repeats.  The CPU
defaults take well under 3 s together.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from braze.errors import InvalidArgumentError

MiB = 1 << 20


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InvalidArgumentError(f"device {str(device)!r} is not supported: use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"device {str(device)!r} asked for, but torch sees no CUDA GPU")
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"device {str(device)!r} is not supported: use 'cpu' or 'cuda'")
    return dev


# The copy ceiling varied 2.70-2.93 TB/s between runs on H100s, the lowest (2.70) in the first
# process of one call, where the same machine gave 2.82-2.86 in the next three. One warm-up copy of
# 256 MiB is ~0.1 ms of work, likely short of what an idle GPU needs to reach its clocks, so on CUDA
# the warm-up also runs for at least this long (whether that steadies the ceiling is not yet
# measured: bench/kernels/copy_ceiling_check.py).
CUDA_WARM_SECONDS = 0.3


def _time(fn, dev: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds of one call of fn (after `warmup` untimed calls, and on CUDA after at least
    CUDA_WARM_SECONDS of them)."""
    for _ in range(warmup):
        fn()
    times = []
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        until = time.perf_counter() + CUDA_WARM_SECONDS
        while time.perf_counter() < until:
            fn()
            torch.cuda.synchronize(dev)
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_copy_bandwidth(
    device: str | torch.device = "cpu",
    nbytes: int = 256 * MiB,
    repeats: int = 5,
    warmup: int = 1,
) -> float:
    """Memory bandwidth in bytes/s: `dst.copy_(src)` of two float32 buffers of `nbytes` each.

    Counts the bytes read plus the bytes written (2 * nbytes per copy), as STREAM's Copy does.
    `nbytes` should be well above the last-level cache (the default 256 MiB is).
    """
    dev = _device(device)
    if nbytes < 4 or repeats < 1:
        raise InvalidArgumentError(f"need nbytes >= 4 and repeats >= 1, got nbytes={nbytes}, repeats={repeats}")
    n = nbytes // 4
    src = torch.ones(n, dtype=torch.float32, device=dev)
    dst = torch.empty_like(src)
    dst.fill_(0.0)  # touch every page before timing
    seconds = _time(lambda: dst.copy_(src), dev, warmup, repeats)
    return 2 * n * 4 / seconds


def measure_matmul_flops(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    n: int | None = None,
    repeats: int = 5,
    warmup: int = 1,
) -> float:
    """Dense matmul throughput in FLOP/s: an n x n by n x n matmul counts 2 * n**3 FLOPs.

    Default n: 1024 on CPU (fast), 8192 on CUDA (large enough to reach peak).
    """
    dev = _device(device)
    if n is None:
        n = 8192 if dev.type == "cuda" else 1024
    if n < 1 or repeats < 1:
        raise InvalidArgumentError(f"need n >= 1 and repeats >= 1, got n={n}, repeats={repeats}")
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=dev, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=dev, dtype=dtype)
    out = torch.empty(n, n, device=dev, dtype=dtype)
    seconds = _time(lambda: torch.matmul(a, b, out=out), dev, warmup, repeats)
    return 2 * n**3 / seconds


@dataclass(frozen=True)
class Ceilings:
    device: str
    threads: int
    bandwidth_bytes_s: float
    matmul_flops: float
    matmul_dtype: str

    @property
    def ridge_flops_per_byte(self) -> float:
        """Arithmetic intensity where the roofline turns from memory- to compute-bound."""
        return self.matmul_flops / self.bandwidth_bytes_s

    def summary(self) -> str:
        return (
            f"{self.device} ({self.threads} threads): memory bandwidth {self.bandwidth_bytes_s / 1e9:.1f} GB/s, "
            f"{self.matmul_dtype} matmul {self.matmul_flops / 1e9:.1f} GFLOP/s, "
            f"ridge {self.ridge_flops_per_byte:.1f} FLOP/byte"
        )


def measure_ceilings(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Ceilings:
    """Both ceilings for `device` with the default (fast) settings."""
    dev = _device(device)
    return Ceilings(
        device=str(dev),
        threads=torch.get_num_threads(),
        bandwidth_bytes_s=measure_copy_bandwidth(dev),
        matmul_flops=measure_matmul_flops(dev, dtype),
        matmul_dtype=str(dtype).removeprefix("torch."),
    )
