"""The executable: binding inputs, symbols at run time, outputs folded into constants."""
from __future__ import annotations

import pytest
import torch

from braze.errors import InvalidArgumentError
from braze.ir.parse import parse_graph
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable

GRAPH = """
%x = input() {name="x"} : f32[T, 4]
%w = weight() {name="w"} : f32[4, 4]
%0 = transpose(%w) : f32[4, 4]
%1 = add(%x, %x) : f32[T, 4]
return a=%0, b=%1
"""


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_output_folded_into_a_weight(backend):
    w = torch.randn(4, 4)
    exe = Executable(lower(parse_graph(GRAPH, {"w": w}, {"T": 4})), backend=backend)
    out = exe.run({"x": torch.ones(3, 4)})
    torch.testing.assert_close(out["a"], w.T)
    torch.testing.assert_close(out["b"], torch.full((3, 4), 2.0))


def test_bad_inputs_are_named():
    exe = Executable(lower(parse_graph(GRAPH, {"w": torch.randn(4, 4)}, {"T": 4})), backend="reference")
    with pytest.raises(InvalidArgumentError, match="missing input 'x'"):
        exe.run({})
    with pytest.raises(InvalidArgumentError, match="more than the compiled bound 4"):
        exe.run({"x": torch.ones(5, 4)})
    with pytest.raises(InvalidArgumentError, match="float32"):
        exe.run({"x": torch.ones(2, 4, dtype=torch.float64)})


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_fresh_outputs_survive_the_next_run(backend):
    exe = Executable(lower(parse_graph(GRAPH, {"w": torch.randn(4, 4)}, {"T": 4})), backend=backend,
                     fresh_outputs=True)
    first = exe.run({"x": torch.ones(3, 4)})["b"]
    second = exe.run({"x": torch.zeros(3, 4)})["b"]
    assert first.data_ptr() != second.data_ptr()
    torch.testing.assert_close(first, torch.full((3, 4), 2.0))
    torch.testing.assert_close(second, torch.zeros(3, 4))
