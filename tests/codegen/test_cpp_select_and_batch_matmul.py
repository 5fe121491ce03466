"""Comparisons, logical ops, where and batched matmul through the pipeline and the C++ backend,
checked against the Graph IR interpreter (one compiled program at two token counts)."""
from __future__ import annotations

import pytest
import torch

from braze.ir.interpret import interpret
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable
from select_and_bmm_graphs import ATTENTION, BROADCAST_LEFT, SELECT, feeds, graph


def check(text: str, t_values=(9,)) -> Executable:
    g = graph(text)
    exe = Executable(lower(g), backend="cpp")
    for t in t_values:
        inputs = feeds(g, {"T": t}, seed=t)
        want, got = interpret(g, inputs), exe.run({k: v.clone() for k, v in inputs.items()})
        for name in want:
            assert got[name].dtype == want[name].dtype, name
            torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")
    return exe


def test_comparisons_logical_ops_and_where_equal_the_interpreter():
    exe = check(SELECT, t_values=(1, 9))
    assert "? 1.0f : 0.0f" in exe.compiled.source and "bool*" in exe.compiled.source


@pytest.mark.parametrize("text", [ATTENTION, BROADCAST_LEFT], ids=["masked_attention", "broadcast_left"])
def test_batched_matmul_equals_the_interpreter(text):
    exe = check(text, t_values=(1, 9) if text is BROADCAST_LEFT else (9,))
    assert "batch_matmul" in [k.kind for k in exe.program.kernels]
