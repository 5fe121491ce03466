"""Fixtures for the tuning tests: a tiny C++ matmul program and its one tuning unit."""
from __future__ import annotations

import pytest
import torch

from braze.module_compiler import export_graph
from braze.passes.pipeline import lower
from braze.tune.device import device_info
from braze.tune.tuner import tunable_units


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private braze cache (compiled kernels, tuning database, cost models) for the test."""
    monkeypatch.setenv("BRAZE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def linear_unit():
    """(program, the tuning unit of its one matmul at M = 4): RMSNorm fused into a 48 -> 40 linear."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.RMSNorm(48), torch.nn.Linear(48, 40))
    graph, _ = export_graph(module, (torch.randn(4, 48),))
    program = lower(graph)
    units = tunable_units(program, device_info("cpu"))
    assert len(units) == 1
    return program, units[0]
