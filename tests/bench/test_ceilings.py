import time

import pytest
import torch

from braze.bench import measure_ceilings, measure_copy_bandwidth, measure_matmul_flops
from braze.errors import InvalidArgumentError


def test_copy_bandwidth_plausible():
    bw = measure_copy_bandwidth("cpu", nbytes=32 << 20, repeats=3)
    assert 0.1e9 < bw < 10e12, bw


def test_matmul_flops_plausible():
    flops = measure_matmul_flops("cpu", torch.float32, n=256, repeats=3)
    assert 1e7 < flops < 1e15, flops


def test_default_ceilings_are_fast():
    t0 = time.perf_counter()
    c = measure_ceilings("cpu")
    elapsed = time.perf_counter() - t0
    assert c.bandwidth_bytes_s > 0 and c.matmul_flops > 0 and c.threads >= 1
    assert c.ridge_flops_per_byte > 0
    assert "GB/s" in c.summary()
    assert elapsed < 6.0, elapsed  # the defaults aim at < 3 s; slack for a busy CI machine


def test_bad_device():
    with pytest.raises(InvalidArgumentError):
        measure_copy_bandwidth("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgumentError, match="CUDA"):
            measure_matmul_flops("cuda")
