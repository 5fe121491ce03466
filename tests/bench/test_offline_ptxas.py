"""bench/kernels/offline_ptxas.py compiles braze's generated kernels for sm_90a on a machine without
a GPU (Triton's bundled ptxas) and reports their registers, spills and SASS. Run in a subprocess:
the script replaces Triton's driver and launch path for its whole process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
ROOT = Path(__file__).resolve().parents[2]


def _report(tmp_path, env, *args) -> dict:
    out = tmp_path / "ptxas.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | env | {"TRITON_CACHE_DIR": str(tmp_path / "tc")}
    run = subprocess.run([sys.executable, str(ROOT / "bench/kernels/offline_ptxas.py"), *args, "--out", str(out)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(out.read_text())


def test_int8_revsplitk_compiles_without_int_to_float_conversions(tmp_path):
    report = _report(tmp_path, {"BRAZE_INT8_REVSPLITK": "1"},
                     "--quant", "int8", "--prologue", "rms_norm", "--k", "256", "--n", "512", "--rows", "1")
    (kernel,) = [k for k in report["kernels"] if k["kernel"].endswith("_revsplitk")]
    assert kernel["sass_instructions"] > 100 and kernel["reg"] > 0
    assert kernel["local"] == 0 and kernel["stack"] == 0  # no spills
    assert "I2F" not in kernel["top_ops"] and "LOP3" in kernel["top_ops"]  # the exponent trick, not I2F


def test_fp8_row_prologue_compiles_without_spills(tmp_path):
    report = _report(tmp_path, {"BRAZE_FP8_ROW_PROLOGUE": "1"},
                     "--quant", "fp8", "--prologue", "silu_mul", "--k", "512", "--n", "256", "--rows", "80")
    (kernel,) = [k for k in report["kernels"] if k["kernel"].endswith("_prologue_fp8")]
    assert kernel["num_warps"] == 4 and kernel["local"] == 0
