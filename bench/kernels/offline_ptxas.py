"""What ptxas makes of braze's generated kernels, without a GPU: registers, spills, shared memory and
the SASS instruction mix of every Triton kernel one quantized (or float) matmul launches, compiled
for sm_90a (H100) by Triton's own bundled ptxas.

No speed comes out of this, only the static facts a GPU run would otherwise be needed for: whether
a tile spills (a `LOCAL` or `STACK` above 0), how many registers a thread holds (which bounds the
programs an SM keeps in flight), and how many instructions each kind of work compiles to.

How: Triton's active driver is replaced by a stub that names an sm_90 target, and every kernel
launch is turned into a compile-only warm-up; the generated launcher then runs on CPU tensors,
compiling each kernel it would launch (torch calls in between run on the CPU).

    python3 bench/kernels/offline_ptxas.py --quant fp8 --prologue silu_mul --k 5632 --n 2048 --rows 2048
    BRAZE_FP8_ROW_PROLOGUE=1 python3 bench/kernels/offline_ptxas.py --quant fp8 --prologue silu_mul --k 5632 --n 2048
    BRAZE_INT8_REVSPLITK=1 python3 bench/kernels/offline_ptxas.py --quant int8 --prologue rms_norm --k 2048 --n 11264 --rows 1
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)  # the GPU's code, not the interpreter's

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime.driver import driver  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"


class Sm90Stub:
    """The slice of Triton's CUDA driver that compiling needs: a target, a device, a stream."""

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_active_torch_device(self):
        return torch.device("cpu")


def compile_only(compiled: list):
    """Patch JITFunction.run so a launch compiles (warm-up) and records the kernel instead."""
    run = JITFunction.run

    def warm(self, *args, grid, warmup, **kwargs):
        kernel = run(self, *args, grid=grid, warmup=True, **kwargs)
        compiled.append((self.__name__, kernel))
        return kernel
    JITFunction.run = warm


def build(quant: str, prologue: str, k: int, n: int, rows: int, dtype: str):
    """One matmul of rows x k by an [n, k] weight, with the prologue a decoder layer gives it and,
    for SiLU*mul and a plain input, the residual a decoder layer adds after it."""
    from braze.ir.builder import GraphBuilder
    from braze.passes.pipeline import lower
    from braze.quant.methods import parse_method
    gen = torch.Generator().manual_seed(0)
    t = getattr(torch, dtype)
    b = GraphBuilder(symbols={"T": rows})
    width = 2 * k if prologue == "silu_mul" else k
    x = b.input("x", ("T", width), dtype)
    if prologue == "rms_norm":
        a = b.rms_norm(x, b.weight("norm", (torch.rand(k, generator=gen) + 0.5).to(t)), 1e-5)
    elif prologue == "silu_mul":
        a = b.mul(b.silu(b.slice(x, 1, 0, k)), b.slice(x, 1, k, 2 * k))
    else:
        a = x
    y = b.matmul(a, b.transpose(b.weight("w.weight", (torch.randn(n, k, generator=gen) / 8).to(t))))
    feeds = {"x": torch.randn(rows, width, generator=gen).to(t)}
    if prologue != "rms_norm":
        y = b.add(y, b.input("r", ("T", n), dtype))
        feeds["r"] = torch.randn(rows, n, generator=gen).to(t)
    return lower(b.build({"y": y}), quant=parse_method(quant) if quant != "none" else None), feeds


def sass_report(cubin: bytes) -> dict:
    """Resource usage (cuobjdump) and the opcode counts of the SASS (nvdisasm)."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        usage = subprocess.run([BIN / "cuobjdump", "-res-usage", f.name], capture_output=True, text=True).stdout
        sass = subprocess.run([BIN / "nvdisasm", "-c", f.name], capture_output=True, text=True).stdout
    res = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", usage))
    ops = collections.Counter(m.split(".")[0] for m in re.findall(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", sass))
    return {**{k.lower(): int(v) for k, v in res.items()}, "sass_instructions": sum(ops.values()),
            "top_ops": dict(ops.most_common(12))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quant", default="fp8", help="a braze quantization method, or none")
    p.add_argument("--prologue", default="plain", choices=("plain", "rms_norm", "silu_mul"))
    p.add_argument("--k", type=int, default=2048)
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--rows", type=int, default=2048, help="tokens: 1 is a decode step's GEMV")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--out", help="write the report as JSON here")
    args = p.parse_args()
    driver.set_active(Sm90Stub())
    compiled: list = []
    compile_only(compiled)
    from braze.codegen.triton import compile_program
    from braze.runtime.executable import Executable
    program, feeds = build(args.quant, args.prologue, args.k, args.n, args.rows, args.dtype)
    flat, symbols = Executable(program, backend="reference")._bind(feeds)
    compile_program(program).run([flat[b.name] for b in program.buffers], symbols)
    report = {"target": "sm_90a", "triton": triton.__version__, "case": vars(args),
              "env": {k: v for k, v in os.environ.items() if k.startswith("BRAZE_")}, "kernels": []}
    for name, kernel in compiled:
        entry = {"kernel": name, "num_warps": kernel.metadata.num_warps, **sass_report(kernel.asm["cubin"])}
        report["kernels"].append(entry)
        print(f"{name:40s} warps {entry['num_warps']:2d}  regs {entry.get('reg')}  local {entry.get('local')}  "
              f"stack {entry.get('stack')}  shared {entry.get('shared')}  SASS {entry['sass_instructions']}")
        print("    " + ", ".join(f"{op} {c}" for op, c in entry["top_ops"].items()))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    if not compiled:
        sys.exit("no Triton kernel was launched for this case")


if __name__ == "__main__":
    main()
