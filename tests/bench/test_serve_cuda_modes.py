"""braze.bench.serve_cuda --batch-invariant both: braze measured with the mode on and off in one run
(on a CPU, shrunk: the script's plumbing; the numbers that count come from a GPU)."""
from __future__ import annotations

import json


def test_serve_bench_measures_both_invariance_modes(tmp_path, monkeypatch):
    from braze.bench.serve_cuda import main as serve_cuda

    monkeypatch.setenv("BRAZE_BENCH_MODELS_DIR", str(tmp_path / "models"))
    out = tmp_path / "serve-cuda.json"
    serve_cuda(["--shrink", "--device", "cpu", "--dtype", "float32", "--concurrency", "3", "--prompt-len", "6",
                "--max-tokens", "4", "--max-num-batched-tokens", "16", "--invariance-checks", "2", "--skip-hf",
                "--batch-invariant", "both", "--out", str(out)])
    result = json.loads(out.read_text())
    modes = result["batch_invariant_modes"]
    assert set(modes) == {"on", "off"} and result["batch_invariant"] == "on"
    assert result["bs1_decode_tok_s"] == modes["on"]["bs1_decode_tok_s"]
    for mode, run in modes.items():
        assert run["batch_invariance"] == {"mode": mode, "requests_checked": 2, "greedy_equal_alone": 2,
                                           "first_differing_token": {}}
        assert run["concurrency_3"]["output_tokens"] == 3 * 4 and run["bs1_decode_tok_s"] > 0
    cost = result["batch_invariance_cost"]
    assert cost["bs1_decode_on_over_off"] > 0 and cost["concurrency_3_output_on_over_off"] > 0
