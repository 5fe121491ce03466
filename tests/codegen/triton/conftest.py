"""Triton backend tests: on a machine without CUDA, kernels run in Triton's CPU interpreter.

    def test_x(run_program_triton):
        outputs = run_program_triton(program, feeds)   # {graph output name: CPU tensor}
"""
from __future__ import annotations

import os

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True, scope="session")
def _triton_interpret_without_cuda():
    """TRITON_INTERPRET=1 only when there is no GPU (the interpreter's bfloat16 math is unreliable:
    CPU tests use float32/float16)."""
    if DEVICE == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        yield
        return
    mp = pytest.MonkeyPatch()
    mp.setenv("TRITON_INTERPRET", "1")
    yield
    mp.undo()


def _run_program_triton(program, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Compile (cached) and run one step on DEVICE; feeds are not modified, outputs come back on the CPU."""
    from braze.runtime.executable import Executable
    exe = Executable(program, backend="triton", device=DEVICE)
    outputs = exe.run({k: v.to(DEVICE, copy=True) for k, v in feeds.items()})
    return {k: v.cpu().clone() for k, v in outputs.items()}


@pytest.fixture
def run_program_triton():
    return _run_program_triton
