"""Comparisons, logical ops, where and batched matmul through the Triton backend (the interpreter on
a machine without a GPU: float32), checked against the Graph IR interpreter."""
from __future__ import annotations

import pytest
import torch

from braze.ir.interpret import interpret
from braze.passes.pipeline import lower
from select_and_bmm_graphs import ATTENTION, BROADCAST_LEFT, SELECT, feeds, graph

# rows past the last one in a block compute 0/0 before their store is masked off (numpy warns)
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


@pytest.mark.parametrize("text, t", [(SELECT, 1), (SELECT, 9), (ATTENTION, 9), (BROADCAST_LEFT, 5)],
                         ids=["select_t1", "select_t9", "masked_attention", "broadcast_left"])
def test_triton_equals_the_interpreter(text, t, run_program_triton):
    g = graph(text)
    program = lower(g)
    inputs = feeds(g, {"T": t}, seed=t)
    want, got = interpret(g, inputs), run_program_triton(program, inputs)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")


def test_half_precision_batched_matmul_runs_in_its_dtype(run_program_triton):
    """float16 operands go to tl.dot as float16 (tensor cores on a GPU), accumulating in float32."""
    g = graph(BROADCAST_LEFT.replace("f32", "f16"))
    program = lower(g)
    inputs = feeds(g, {"T": 3}, seed=3)
    want = (inputs["a"].float() @ inputs["b"].float()).half()
    got = run_program_triton(program, inputs)["out"]
    assert got.dtype == torch.float16
    torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2)
