"""`braze bench serve` against the test server, and the GPU serving bench's script on a shrunk
config on the CPU (the GPU numbers come from the lead's run; this checks the script and its JSON)."""
from __future__ import annotations

import json

from braze.bench.serve_bench import percentiles
from braze.cli.main import main
from serve_testlib import API_KEY


def test_percentiles_interpolate_like_numpy():
    p = percentiles([0.001 * v for v in (4, 1, 3, 2)])
    assert p["p50"] == 2.5 and abs(p["p90"] - 3.7) < 1e-9 and p["mean"] == 2.5


def test_bench_serve_measures_each_concurrency(server, tmp_path):
    out = tmp_path / "serve.json"
    code = main(["bench", "serve", "--url", f"{server.url}/v1", "--api-key", API_KEY, "--concurrency", "1,4",
                 "--num-prompts", "4", "--prompt-len", "16", "--max-tokens", "5", "--out", str(out)])
    result = json.loads(out.read_text())
    assert code == 0 and [lv["concurrency"] for lv in result["levels"]] == [1, 4]
    for level in result["levels"]:
        assert level["completed"] == 4 and level["failed"] == 0 and level["output_tokens"] == 4 * 5
        assert 0 < level["ttft_ms"]["p50"] <= level["e2e_ms"]["p50"] and level["tpot_ms"]["p50"] > 0
        assert level["output_tok_s"] > 0


def test_gpu_serving_bench_script_runs_on_a_shrunk_config(tmp_path, monkeypatch):
    from braze.bench.serve_cuda import main as serve_cuda

    monkeypatch.setenv("BRAZE_BENCH_MODELS_DIR", str(tmp_path / "models"))
    out = tmp_path / "serve-cuda.json"
    serve_cuda(["--shrink", "--device", "cpu", "--dtype", "float32", "--concurrency", "4", "--prompt-len", "8",
                "--max-tokens", "6", "--max-num-batched-tokens", "16", "--invariance-checks", "4", "--out", str(out)])
    result = json.loads(out.read_text())
    level = result["concurrency_4"]
    assert result["device"] == "cpu" and result["bs1_decode_tok_s"] > 0 and level["output_tokens"] == 4 * 6
    assert level["hf_static_batch_tok_s"] > 0 and level["ttft_p50_ms"] > 0 and level["tpot_p50_ms"] > 0
    assert result["batch_invariance"]["greedy_equal_alone"] == 4
