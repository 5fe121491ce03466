"""Module assembly: programmatic dependent launch wiring (measured on the GPU: bench/NOTES.md)."""
from __future__ import annotations

import torch

import braze.codegen.triton.module as module
from braze.ir.builder import GraphBuilder
from braze.passes.pipeline import lower

SOURCE = '''@triton.jit
def helper(x, Y: tl.constexpr):
    return x + Y


@triton.jit(do_not_specialize=["T"])
def launched(a, b,
             T, BLOCK: tl.constexpr):
    i = tl.program_id(0)
    tl.store(b + i, helper(tl.load(a + i), 1))'''


def test_only_launched_functions_wait_for_the_previous_kernel():
    out = module._wait_for_previous_kernel(SOURCE, {"launched", "b", "s"})
    lines = out.split("\n")
    body = lines.index("             T, BLOCK: tl.constexpr):") + 1
    assert lines[body:body + 2] == ["    tl.extra.cuda.gdc_wait()", "    tl.extra.cuda.gdc_launch_dependents()"]
    assert out.count("gdc_wait") == 1  # the device helper is not launched: untouched


def test_pdl_is_left_out_where_it_cannot_run(monkeypatch):
    """Under the interpreter (and on GPUs before Hopper) the flag changes nothing."""
    b = GraphBuilder(symbols={"T": 4})
    x = b.input("x", ("T", 8), "float32")
    program = lower(b.build({"y": b.silu(x)}))
    monkeypatch.setattr(module, "PDL", True)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    source = module.emit_module(program)
    assert "gdc_wait" not in source and "launch_pdl" not in source
    if not torch.cuda.is_available():
        monkeypatch.delenv("TRITON_INTERPRET")
        assert "gdc_wait" not in module.emit_module(program)

