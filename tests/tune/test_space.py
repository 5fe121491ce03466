"""Search spaces hold only legal configs: a sample of each kind's candidates, compiled with the
knobs the emitters read, matches the Kernel IR interpreter (C++ here, Triton in its interpreter)."""
from __future__ import annotations

import random

import pytest
import torch

from braze.codegen.cpp import emit_program
from braze.module_compiler import export_graph
from braze.passes.pipeline import lower
from braze.tune.choose import choose_knobs
from braze.tune.device import device_info
from braze.tune.kernel_bench import KernelBench
from braze.tune.knobs import Knobs
from braze.tune.tuner import tunable_units


def test_cpp_candidates_are_correct_and_buckets_get_their_own_code(cache_dir):
    graph, _ = export_graph(torch.nn.Sequential(torch.nn.RMSNorm(40), torch.nn.Linear(40, 27)), (torch.randn(1, 40),))
    program = lower(graph)
    device = device_info("cpu")
    (unit,) = tunable_units(program, device)
    assert unit.bucket == 1 and len(unit.space) == 8  # one row: columns per tile x threads
    bench = KernelBench(unit.task)
    for config in random.Random(0).sample(unit.space, 4):
        ok, error, detail = bench.check(config)
        assert ok, (config, detail)
    # two buckets with different knobs: one function, a branch on the row count
    knobs = Knobs.of({1: ({"mb": 64, "nr": 8, "threads": 1}, "db"), 0: ({"mb": 16, "nr": 2, "threads": 0}, "db")})
    kernel = program.kernels[0]
    tuned = program.__class__((kernel.__class__(**{**kernel.__dict__, "attrs": kernel.attrs + (("knobs", knobs),)}),),
                              program.buffers, program.outputs, program.weights, program.symbols, program.plan)
    source = emit_program(tuned)
    assert "if (mrows == 1) {" in source and "num_threads(1)" in source
    assert "mm_tile_4x8_f32" in source and "mm_tile_4x2_f32" in source


@pytest.mark.parametrize("rows", [1, 16, 96])
def test_triton_matmul_candidates_match_the_interpreter(rows, triton_device):
    graph, _ = export_graph(torch.nn.Sequential(torch.nn.RMSNorm(64), torch.nn.Linear(64, 48)),
                            (torch.randn(rows, 64),))
    program = lower(graph)
    device = device_info("cuda")  # the GPU, or Triton's interpreter on a machine without one
    (unit,) = tunable_units(program, device)
    variants = {c["variant"] for c in unit.space}
    assert variants == ({"gemv"} if rows == 1 else {"gemv", "gemm", "library"} if rows == 16 else {"gemm", "library"})
    assert all(c["split_k"] == 1 or 64 % (c["block_k"] * c["split_k"]) == 0 for c in unit.space)
    bench = KernelBench(unit.task)
    sample = [unit.default] + random.Random(rows).sample(unit.space[1:], min(3, len(unit.space) - 1))
    sample += [c for c in unit.space if c.get("split_k", 1) > 1][:1]
    for config in sample:
        ok, error, detail = bench.check(config)
        assert ok, (config, detail)


def test_triton_attention_and_rows_knobs_reach_the_source(triton_device):
    from braze.codegen.triton import emit_module
    graph, _ = export_graph(torch.nn.RMSNorm(64), (torch.randn(8, 64),))
    program = lower(graph)
    device = device_info("cuda")
    (unit,) = tunable_units(program, device)
    assert unit.kernel.kind == "reduction"
    config = next(c for c in unit.space if c != unit.default)
    ok, _, detail = KernelBench(unit.task).check(config)
    assert ok, detail

    class OneConfig:  # a stand-in model that predicts `config` fastest by far
        def predict_us(self, feats):
            return [1.0 if f["knob_block_r"] == config["block_r"] and f["knob_num_warps"] == config["num_warps"]
                    else 100.0 for f in feats]
    # a prefill-bucket pick is unverified: LLM(...) keeps the heuristic; BRAZE_TUNE=raw takes it
    assert choose_knobs(program, device, db=None, model=OneConfig()).kernels[0].attr("knobs") is None
    chosen = choose_knobs(program, device, db=None, model=OneConfig(), verified=False)
    assert chosen.kernels[0].attr("knobs").source(0) == "model"
    source = emit_module(chosen)
    assert f"BR={config['block_r']}" in source and f"num_warps={config['num_warps']}" in source


def test_model_picks_apply_to_the_decode_bucket(triton_device):
    """Without measurements, LLM(...) takes the cost model's pick at M = 1 (decode) only."""
    graph, _ = export_graph(torch.nn.Sequential(torch.nn.RMSNorm(64), torch.nn.Linear(64, 48)), (torch.randn(1, 64),))
    program = lower(graph)
    device = device_info("cuda")
    units = tunable_units(program, device)
    decode = next(u for u in units if u.bucket == 1)
    config = next(c for c in decode.space if c != decode.default)

    class OneConfig:  # predicts `config` fastest by far in every bucket it is legal in
        def predict_us(self, feats):
            return [1.0 if (f["knob_block_n"], f["knob_block_k"], f["knob_num_warps"]) ==
                    (config["block_n"], config["block_k"], config["num_warps"]) else 100.0 for f in feats]
    knobs = choose_knobs(program, device, db=None, model=OneConfig()).kernels[0].attr("knobs")
    assert knobs.source(1) == "model"
    assert all(bucket == 1 for bucket, _, _ in knobs.entries)
