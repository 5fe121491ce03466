"""What the config sweeps share (not a test): a program whose kernels of one kind carry given
tuning knobs, and one config's check-then-time against eager, timed like the kernel suite (one
CUDA-graph replay, cold L2, median)."""
from __future__ import annotations

from dataclasses import replace

from braze.bench.suite.kernels import gpu_us, graphed, relative_error
from braze.ir.kernel import Program
from braze.runtime.executable import Executable


def with_knobs(program: Program, kind: str, knobs: dict) -> Program:
    """program with `knobs` ({bucket: {knob: value}}) on every kernel of `kind`."""
    return replace(program, kernels=tuple(replace(k, attrs=k.attrs + (("knobs", knobs),)) if k.kind == kind else k
                                          for k in program.kernels))


def measure(program: Program, feeds: dict, want, flush, repeats: int = 50) -> dict:
    """{"us", "rel_err"} of the program's first output against `want`, or {"us": inf, "error"} when
    the config does not compile or run (a sweep goes on)."""
    try:
        exe = Executable(program, backend="triton", device="cuda", fresh_outputs=True)
        err = relative_error(exe.run(feeds)["out0"], want)
        return {"us": gpu_us(graphed(lambda: exe.run(feeds)), repeats, flush), "rel_err": err}
    except Exception as e:  # noqa: BLE001
        return {"us": float("inf"), "error": f"{type(e).__name__}: {str(e)[:200]}"}
