"""The per-layer kernel suite, end to end on the CPU (C++ backend) with tiny configs."""
from __future__ import annotations

import json

import pytest
import torch

from braze.bench.suite import kernels as K
from braze.bench.suite.configs import MODEL_CONFIGS, tiny_config
from braze.bench.suite.layer_cases import CASES, build_case
from braze.errors import InvalidArgumentError


@pytest.fixture
def tiny_models(monkeypatch):
    monkeypatch.setitem(MODEL_CONFIGS, "tiny-llama", tiny_config("llama"))
    monkeypatch.setitem(MODEL_CONFIGS, "tiny-qwen2", tiny_config("qwen2"))
    return "tiny-llama,tiny-qwen2"


def test_every_case_compiles_checks_and_is_timed(tiny_models, tmp_path):
    out = tmp_path / "kernels.json"
    result = K.run_kernel_suite(tiny_models, "float32", "7", peers="braze,eager", device="cpu", repeats=3, out=out,
                                say=lambda s: None)
    saved = json.loads(out.read_text())
    assert saved["cases"] == result["cases"] and len(saved["cases"]) == 2 * len(CASES)
    for c in saved["cases"]:
        assert c["checked"] and c["max_rel_error"] < 1e-4, c
        assert c["braze_us"] > 0 and c["eager_us"] > 0 and c["compile_us"] is None and not c["errors"]
        assert c["braze_kernels"] >= 1
    g = saved["geomean"]["float32"]
    assert g["vs_eager_cases"] == 2 * len(CASES) and g["vs_eager"] > 0 and g["vs_compile"] is None
    # the whole decoder block is a handful of fused kernels, not one per ATen op
    block = next(c for c in saved["cases"] if c["case"] == "decoder_block")
    assert block["braze_kernels"] <= 14


def test_merge_keeps_other_cases_and_a_failing_peer_is_recorded(tiny_models, tmp_path, monkeypatch):
    out = tmp_path / "kernels.json"
    K.run_kernel_suite("tiny-llama", "float32", "5", cases="rmsnorm", peers="braze,eager", device="cpu", repeats=2,
                       out=out, say=lambda s: None)

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler today")

    import braze
    monkeypatch.setattr(braze, "compile_module", broken, raising=False)
    result = K.run_kernel_suite("tiny-llama", "float32", "5", cases="silu_mul", peers="braze,eager", device="cpu",
                                repeats=2, out=out, merge=True, say=lambda s: None)
    by_case = {c["case"]: c for c in result["cases"]}
    assert set(by_case) == {"rmsnorm", "silu_mul"} and by_case["rmsnorm"]["checked"]
    failed = by_case["silu_mul"]
    assert failed["braze_us"] is None and "no compiler today" in failed["errors"]["braze"] and failed["eager_us"] > 0
    assert result["geomean"]["float32"]["failed_checks"] == ["tiny-llama/silu_mul seq 5"]


def test_geomeans_leave_out_failed_checks():
    cases = [{"name": "a", "dtype": "bfloat16", "seq": 1, "checked": True, "braze_us": 1.0, "eager_us": 4.0,
              "compile_us": 1.0, "max_autotune_us": None},
             {"name": "b", "dtype": "bfloat16", "seq": 1, "checked": True, "braze_us": 1.0, "eager_us": 1.0,
              "compile_us": 4.0, "max_autotune_us": None},
             {"name": "c", "dtype": "bfloat16", "seq": 1, "checked": False, "braze_us": 1.0, "eager_us": 100.0,
              "compile_us": 100.0, "max_autotune_us": None}]
    g = K.geomeans(cases)["bfloat16"]
    assert g["vs_eager"] == pytest.approx(2.0) and g["vs_compile"] == pytest.approx(2.0)
    assert g["vs_max_autotune"] is None and g["failed_checks"] == ["c seq 1"]


def test_bad_selections_name_the_choices():
    with pytest.raises(InvalidArgumentError, match="tinyllama-1.1b"):
        K.run_kernel_suite("gpt-5", device="cpu", out=None)
    with pytest.raises(InvalidArgumentError, match="decoder_block"):
        K.run_kernel_suite("tinyllama-1.1b", cases="everything", device="cpu", out=None)


def test_cases_follow_the_configs_shapes():
    cfg = MODEL_CONFIGS["qwen2.5-7b"]
    module, (x,) = build_case("qkv_proj", cfg, 4, torch.float32, "meta")
    assert module.weight.shape == (28 * 128 + 2 * 4 * 128, 3584) and module.bias is not None and x.shape == (1, 4, 3584)
    _, (q, k) = build_case("rope", MODEL_CONFIGS["tinyllama-1.1b"], 4, torch.float32, "meta")
    assert q.shape == (1, 32, 4, 64) and k.shape == (1, 4, 4, 64)
