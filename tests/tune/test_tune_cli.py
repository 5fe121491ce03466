"""`braze tune` records as it measures, resumes where a budget stopped it, and a second identical
run measures nothing; `braze explain` shows each kernel's fused ops and where its config came from;
LLM(...) then compiles with the tuned configs."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import braze
from braze.cli.main import main
from braze.tune.db import TuningDB
from braze.tune.device import device_info
from braze.tune.explain import explain_program
from braze.tune.programs import model_program

TUNE = ["tune", "--device", "cpu", "--fraction", "0.01", "--json"]  # one candidate per kernel bucket


def run_json(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def interrupted_run(model: str) -> int:
    """Start `braze tune`, press Ctrl-C once two records are in; returns how many it had written."""
    process = subprocess.Popen([sys.executable, "-m", "braze.cli.main"] + TUNE + ["--model", model],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    count = 0
    while count < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        try:
            db = TuningDB()
            count = db.count()
            db.close()
        except sqlite3.Error:
            pass
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()[-2000:]
    db = TuningDB()
    count = db.count()
    db.close()
    return count


def test_tune_resumes_and_a_second_run_measures_nothing(cache_dir, tiny_checkpoints, capsys):
    model = str(tiny_checkpoints["llama"])
    before = interrupted_run(model)
    assert before >= 2
    budgeted = run_json(capsys, TUNE + ["--model", model, "--budget", "2"])
    assert budgeted["measured"] == 2 and budgeted["stopped_by_budget"] and budgeted["kernels"] >= 8
    rest = run_json(capsys, TUNE + ["--model", model])
    assert rest["measured"] > 0 and not rest["stopped_by_budget"]
    again = run_json(capsys, TUNE + ["--model", model])
    assert again["measured"] == 0 and again["kernels"] == budgeted["kernels"]
    db = TuningDB()
    # nothing measured was lost or measured twice, and Ctrl-C did not mark a candidate as crashed
    assert db.count() == before + budgeted["measured"] + rest["measured"]
    assert db.count("ok") == db.count()
    db.close()

    # explain: fused ops of every kernel (RMSNorm's reduction and rsqrt fused into the QKV matmul)
    db = TuningDB()
    program = model_program(model, "cpu")
    reports = explain_program(program, device_info("cpu"), db, None, bandwidth=10e9, peak_flops=100e9)
    db.close()
    qkv = next(r for r in reports if "rsqrt" in r.fused_ops)
    assert {"sum", "rsqrt", "linear"} <= set(qkv.fused_ops) and any("q|k|v" in w for w in qkv.weights)
    assert all(r.source == "db" and r.measured_us and r.bytes > 0 and r.flops > 0 for r in reports)
    assert all(r.roofline_pct is not None for r in reports)
    plot = cache_dir / "roofline.png"
    assert main(["explain", "--model", model, "--device", "cpu", "--plot", str(plot)]) == 0
    table = capsys.readouterr().out
    assert "rsqrt" in table and "(db)" in table
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # LLM(...) compiles with the tuned configs (here every measured best is the heuristic's, the one
    # candidate measured: the emitters' own code, no knobs), and its tokens do not change
    llm = braze.LLM(model, device="cpu", max_model_len=64)
    assert not any(k.attr("knobs") for k in llm.program.kernels)
    params = braze.SamplingParams(max_tokens=6, temperature=0)
    tuned = llm.generate(prompt_token_ids=[[5, 6, 7]], sampling_params=params)[0].token_ids
    os.environ["BRAZE_TUNE"] = "0"
    try:
        plain = braze.LLM(model, device="cpu", max_model_len=64)
    finally:
        del os.environ["BRAZE_TUNE"]
    assert not any(k.attr("knobs") for k in plain.program.kernels)
    assert plain.generate(prompt_token_ids=[[5, 6, 7]], sampling_params=params)[0].token_ids == tuned
