"""One kernel of a program as a stand-alone unit of tuning: its structure key (what the tuning
database is keyed by, equal for the same kernel in every layer) and a Task a worker process can
rebuild, compile with a candidate config and run on its own buffers."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from braze.ir.kernel import Buffer, Kernel, Program, View
from braze.ir.kernel_print import print_kernel
from braze.passes.decode_rows import TAGS as DECODE_ROWS_TAGS
from braze.passes.prefetch import TAG as PREFETCH_TAG


def _renamed(k: Kernel, program: Program) -> tuple[Kernel, list[Buffer]]:
    """The kernel with its buffers renamed b0, b1, ... in order of use (temps as inputs: a stand-
    alone program has no arena), its name and sources dropped, and its knobs and L2 prefetch tag
    removed (the tag names its neighbours' weights: a hint about the step, not this kernel's code)."""
    names: dict[str, str] = {}
    buffers: list[Buffer] = []

    def rename(v: View) -> View:
        if v.buffer not in names:
            names[v.buffer] = f"b{len(names)}"
            b = program.buffer(v.buffer)
            kind = "input" if b.kind == "temp" else b.kind
            buffers.append(Buffer(names[v.buffer], b.shape, b.dtype, kind))
        return replace(v, buffer=names[v.buffer])
    operands = tuple(rename(v) for v in k.operands)
    output = rename(k.output)
    attrs = tuple((key, value) for key, value in k.attrs if key not in ("knobs", PREFETCH_TAG))
    return replace(k, name="k", operands=operands, output=output, attrs=attrs, sources=()), buffers


def structure_key(k: Kernel, program: Program) -> str:
    """A hash of what determines the kernel's code and speed: kind, expressions, views, dtypes and
    buffer kinds; not its name, its buffers' names, its knobs or the symbols' upper bounds (a
    context or batch limit does not change a matmul; the bucket says which sizes a config is for)."""
    renamed, buffers = _renamed(k, program)
    text = "\n".join([print_kernel(renamed)] + [f"{b.name} {b.kind} {b.dtype} {list(b.shape)}" for b in buffers])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Task:
    """Everything a worker needs to build one kernel's bucket and measure configs of it (picklable).

    runner: "cpp" | "triton" (braze.tune.kernel_bench.KernelBench), or "FILE.py:Class" / "module:Class"
    for another bench (the tests inject crashing, hanging and wrong candidates this way).
    """

    key: str                # structure key
    bucket: int
    runner: str
    device: str             # "cpu" | "cuda"
    kernel: Kernel          # renamed, knobs removed
    buffers: tuple[Buffer, ...]
    bounds: tuple[tuple[str, int], ...]    # symbol upper bounds (the program's)
    symbols: tuple[tuple[str, int], ...]   # the values measured at
    label: str = ""         # for progress and errors: "k3_matmul (q|k|v projection) @ M=1"
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def program(self) -> Program:
        return Program((self.kernel,), self.buffers, (("out", self.kernel.output.buffer),),
                       symbols=dict(self.bounds), name=f"tune_{self.key}")


def make_task(k: Kernel, program: Program, bucket: int, symbols: dict[str, int], target: str,
              device: str) -> Task:
    renamed, buffers = _renamed(k, program)
    # A decode-rows tag names the kernel's partner (braze/passes/decode_rows.py), which a stand-alone
    # program lacks: the kernel is measured as the pair's launchers run it with PDL, untagged. The
    # structure key keeps the tag, so the same pair is found again in the database.
    renamed = replace(renamed, attrs=tuple(kv for kv in renamed.attrs if kv[0] not in DECODE_ROWS_TAGS))
    return Task(structure_key(k, program), bucket, target, device, renamed, tuple(buffers),
                tuple(sorted((s, int(v)) for s, v in program.symbols.items())),
                tuple(sorted(symbols.items())), label=f"{k.name} bucket {bucket}")


def program_key(program: Program) -> str:
    """The model a step verdict was reached in (braze.tune.verify): its kernels' structure keys in
    order and its step bounds, the kernels a step runs and the sizes it was timed at. Not its
    weights: two checkpoints of one architecture and size share it, as their timings do."""
    lines = [structure_key(k, program) for k in program.kernels]
    lines += [f"{s}={v}" for s, v in sorted(program.symbols.items())]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:20]
