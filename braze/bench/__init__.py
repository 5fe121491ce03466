"""Benchmarks: machine ceilings (memory bandwidth, matmul FLOP/s) for the roofline."""

from braze.bench.ceilings import Ceilings, measure_ceilings, measure_copy_bandwidth, measure_matmul_flops

__all__ = ["Ceilings", "measure_ceilings", "measure_copy_bandwidth", "measure_matmul_flops"]
