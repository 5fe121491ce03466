"""The CLI end to end (subprocesses): output, IR printing, and one-line errors for bad input."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]


def braze_cli(*args: str, debug: bool = False, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BRAZE_DEBUG": "1" if debug else "0"}
    return subprocess.run([sys.executable, "-m", "braze.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("braze: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture()
def checkpoint_copy(tiny_checkpoints, tmp_path) -> Path:
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoints["llama"], dst)
    return dst


def test_generate_streams_text(tiny_checkpoints):
    r = braze_cli("generate", "--model", str(tiny_checkpoints["qwen2"]), "--prompt", "Hello", "--max-tokens", "8",
                  "--max-model-len", "64")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


def test_compile_prints_every_ir_level(tiny_checkpoints, tmp_path):
    model = str(tiny_checkpoints["qwen3"])
    graph = braze_cli("compile", "--model", model, "--ir", "graph", "--max-model-len", "64")
    assert graph.returncode == 0 and "linear(" in graph.stdout and "return logits=" in graph.stdout
    kernel = braze_cli("compile", "--model", model, "--ir", "kernel", "--max-model-len", "64",
                       "--dump-dir", str(tmp_path / "dump"))
    assert kernel.returncode == 0 and "kernel k1_matmul matmul" in kernel.stdout and "arena" in kernel.stdout
    dumps = sorted(p.name for p in (tmp_path / "dump").iterdir())
    assert dumps[0] == "00-input.txt" and any("fuse_into_kernels" in d for d in dumps) and len(dumps) >= 10
    cpp = braze_cli("compile", "--model", model, "--ir", "cpp", "--max-model-len", "64")
    assert cpp.returncode == 0 and 'extern "C" void braze_run' in cpp.stdout
    triton = braze_cli("compile", "--model", model, "--ir", "triton", "--max-model-len", "64")
    assert triton.returncode == 0 and "@triton.jit" in triton.stdout and "def run(b, s):" in triton.stdout


def test_bench_writes_json(tiny_checkpoints, tmp_path):
    out = tmp_path / "bench.json"
    # decode tok/s is a difference of medians (n tokens - 1 token): enough tokens to stay above the noise
    r = braze_cli("bench", "--model", str(tiny_checkpoints["llama"]), "--prompt-len", "8", "--new-tokens", "16",
                  "--repeats", "3", "--json", str(out))
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    assert result["decode"]["braze_tok_s"] > 0 and result["decode"]["hf_tok_s"] > 0
    assert 0 < result["decode"]["braze_pct_roofline"]
    assert "decode tok/s" in r.stdout


def test_missing_path(tmp_path):
    assert_one_line_error(braze_cli("generate", "--model", str(tmp_path / "nope"), "--prompt", "hi"),
                          "no such file or directory", "nope")


def test_unsupported_architecture_lists_supported(checkpoint_copy):
    config = json.loads((checkpoint_copy / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (checkpoint_copy / "config.json").write_text(json.dumps(config))
    assert_one_line_error(braze_cli("generate", "--model", str(checkpoint_copy), "--prompt", "hi"),
                          "GPT2LMHeadModel", "LlamaForCausalLM", "Qwen3ForCausalLM")


def test_truncated_weights_name_the_file(checkpoint_copy):
    weights = checkpoint_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert_one_line_error(braze_cli("generate", "--model", str(checkpoint_copy), "--prompt", "hi"),
                          "model.safetensors")


def test_missing_weight_file(checkpoint_copy):
    (checkpoint_copy / "model.safetensors").unlink()
    assert_one_line_error(braze_cli("generate", "--model", str(checkpoint_copy), "--prompt", "hi"),
                          "model.safetensors")


def test_missing_tensor_and_wrong_shape(checkpoint_copy):
    weights = checkpoint_copy / "model.safetensors"
    tensors = load_file(weights)
    name = "model.layers.1.mlp.up_proj.weight"
    del tensors[name]
    save_file(tensors, weights)
    assert_one_line_error(braze_cli("generate", "--model", str(checkpoint_copy), "--prompt", "hi"), name)
    tensors[name] = load_file(weights)["model.layers.1.mlp.gate_proj.weight"][:, :-1].contiguous()
    save_file(tensors, weights)
    shape = list(tensors[name].shape)
    assert_one_line_error(braze_cli("generate", "--model", str(checkpoint_copy), "--prompt", "hi"),
                          name, str(shape[1]))


def test_prompt_longer_than_context(tiny_checkpoints):
    r = braze_cli("generate", "--model", str(tiny_checkpoints["llama"]), "--prompt", "word " * 200,
                  "--max-model-len", "32")
    assert_one_line_error(r, "32", "prompt has")


def test_debug_shows_the_traceback(tmp_path):
    r = braze_cli("generate", "--model", str(tmp_path / "nope"), "--prompt", "hi", debug=True)
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_bad_sampling_parameter(tiny_checkpoints):
    r = braze_cli("generate", "--model", str(tiny_checkpoints["llama"]), "--prompt", "hi", "--top-p", "0")
    assert_one_line_error(r, "top_p")


def test_bench_suite_unknown_model_or_peer_is_one_line():
    assert_one_line_error(braze_cli("bench", "--suite", "models", "--models", "gpt-5", "--device", "cpu"),
                          "gpt-5", "llama-3-8b")
    assert_one_line_error(braze_cli("bench", "--suite", "models", "--peers", "braze,vllm", "--device", "cpu"),
                          "vllm", "compile")


def test_compile_and_run_a_pytorch_expression():
    code = "nn.Sequential(nn.RMSNorm(40), nn.Linear(40, 24), nn.SiLU())(torch.randn(3, 40))"
    kernel = braze_cli("compile", "-c", code, "--ir", "kernel")
    assert kernel.returncode == 0 and "kernel k0_matmul matmul" in kernel.stdout, kernel.stderr
    cpp = braze_cli("compile", "-c", code, "--ir", "cpp")
    assert cpp.returncode == 0 and 'extern "C" void braze_run' in cpp.stdout
    run = braze_cli("run", "-c", code, "--device", "cpu", "--bench", "--repeats", "3")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["max_rel_error"] < 1e-5 and result["kernels"] == 1
    assert all(result[k] > 0 for k in ("braze_us", "eager_us", "compile_us"))


def test_bad_expression_is_one_line():
    assert_one_line_error(braze_cli("run", "-c", "nn.Linear(4, 2)(3)"), "must be tensors")
    assert_one_line_error(braze_cli("compile", "-c", "nn.Linear(4, 2)("), "not a Python expression")
    assert_one_line_error(braze_cli("run", "-c", "nn.Linear(4, 2)(torch.randn(3, 5))"), "failed")
