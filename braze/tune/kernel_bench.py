"""The bench a worker builds for one kernel's bucket: buffers, the reference output, candidates.

Inputs are random (weights and activations ~ N(0, 0.5), index operands valid: gather rows inside
the table, attention slots 0 and positions inside the cache). The reference is the Kernel IR
interpreter's output on the same inputs, so a wrong default config cannot bless a wrong candidate.
Timing: several input sets in rotation, a cache flush before each call (in a model the weights
of one layer are not in cache when its kernels run), warm-up, median of repeats; on CUDA each
call is captured in a CUDA graph and replayed, timed with CUDA events (host launch overhead out),
on the CPU perf_counter around each call.
"""
from __future__ import annotations

import math
import time

import torch

from braze.ir.interpret import TORCH_DTYPE
from braze.ir.kernel import Program
from braze.ir.kernel_interpret import resolve, run_program, view_tensor
from braze.tune.knobs import Knobs

TOLERANCE = {"float32": 2e-3, "float16": 1e-2, "bfloat16": 3e-2}  # max |error| / max |reference|
ROTATION_BYTES = {"cuda": 256 << 20, "cpu": 64 << 20}
# written before each timed call: larger than the L2 (GPU) or last-level cache (CPU), so a kernel's
# weights come from memory as they do in a model whose weights do not fit in cache
FLUSH_BYTES = {"cuda": 256 << 20, "cpu": 128 << 20}
MAX_SETS = 4
DECODE_CONTEXT = 1024  # cache rows a decode-bucket attention reads (or the whole cache if shorter)


def _numel(shape) -> int:
    return math.prod(shape) if shape else 1


class KernelBench:
    def __init__(self, task):
        self.task = task
        self.device = torch.device(task.device if task.device == "cpu" or torch.cuda.is_available() else "cpu")
        self.program = task.program()
        self.kernel = self.program.kernels[0]
        self.bounds = dict(task.bounds)
        self.symbols = dict(task.symbols)
        gen = torch.Generator(device=self.device).manual_seed(0)
        base = {b.name: self._fill(b, gen) for b in self.program.buffers}
        set_bytes = sum(t.numel() * t.element_size() for t in base.values())
        sets = max(1, min(MAX_SETS, ROTATION_BYTES[self.device.type] // max(set_bytes, 1)))
        # weights are never written: the fresh copy (for the check) and the reference share them
        written = {b.name for b in self.program.buffers if b.kind != "weight"}
        self.pristine = {n: t.clone() for n, t in base.items() if n in written}
        self.sets = [base] + [{n: t.clone() for n, t in base.items()} for _ in range(sets - 1)]
        reference = {n: t.clone() if n in written else t for n, t in base.items()}
        run_program(self.program, reference, self.symbols)
        self.reference = view_tensor(reference, self.kernel.output, self.symbols).clone()
        self.out_dtype = self.program.buffer(self.kernel.output.buffer).dtype
        self.flush = torch.empty(FLUSH_BYTES[self.device.type], dtype=torch.int8, device=self.device)
        self._compiled: tuple[str, object] | None = None

    # -- inputs ---------------------------------------------------------------------------------
    def _fill(self, b, gen) -> torch.Tensor:
        n = _numel(resolve(b.shape, self.bounds))
        dtype = TORCH_DTYPE[b.dtype]
        if dtype.is_floating_point:
            return (0.5 * torch.randn(n, generator=gen, device=self.device)).to(dtype)
        return self._indices(b, n).to(dtype).to(self.device)

    def _indices(self, b, n: int) -> torch.Tensor:
        """Valid values for an index operand, by what the kernel reads it as."""
        k = self.kernel
        uses = [i for i, v in enumerate(k.operands) if v.buffer == b.name]
        if k.kind == "gather" and 1 in uses:
            rows = resolve(k.operands[0].shape, self.bounds)[0]
            return torch.randint(0, rows, (n,), generator=torch.Generator().manual_seed(1))
        if k.kind == "rope" and 1 in uses:
            rows = resolve(k.operands[2].shape, self.bounds)[0]
            return torch.arange(n) % rows
        if k.kind == "attention" and 4 in uses:  # positions: decode reads a long context, prefill its prompt
            cache_rows = resolve(k.operands[1].shape, self.bounds)[2]
            if self.task.bucket == 1:
                return torch.full((n,), min(cache_rows, DECODE_CONTEXT) - 1)
            return torch.arange(n).clamp(max=cache_rows - 1)
        return torch.zeros(n)  # slots, and anything else: 0 is valid everywhere

    def _reset(self, flat: dict) -> None:
        for name, t in self.pristine.items():
            flat[name].copy_(t)

    # -- candidates -----------------------------------------------------------------------------
    def _candidate(self, config: dict):
        """A callable running the kernel compiled with `config` on one input set."""
        from braze.tune.knobs import config_text
        key = config_text(config)
        if self._compiled and self._compiled[0] == key:
            return self._compiled[1]
        kernel = self.kernel
        attrs = tuple(kv for kv in kernel.attrs if kv[0] != "knobs") + (
            ("knobs", Knobs.of({self.task.bucket: (config, "db")})),)
        from dataclasses import replace
        program = Program((replace(kernel, attrs=attrs),), self.program.buffers, self.program.outputs,
                          symbols=self.program.symbols, name=self.program.name)
        names = [b.name for b in program.buffers]
        if self.task.runner == "cpp":
            from braze.codegen.cpp import compile_program
            compiled = compile_program(program)
            values = [self.symbols[s] for s in sorted(program.symbols)]

            def run(flat):
                compiled.run([flat[n].data_ptr() for n in names], values)
        else:
            from braze.codegen.triton import compile_program
            compiled = compile_program(program)

            def run(flat):
                compiled.run([flat[n] for n in names], self.symbols)
        self._compiled = (key, run)
        return run

    def check(self, config: dict) -> tuple[bool, float, str]:
        run = self._candidate(config)
        flat = self.sets[0]
        self._reset(flat)
        run(flat)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        got = view_tensor(flat, self.kernel.output, self.symbols).float()
        want = self.reference.float()
        if got.shape != want.shape:
            return False, math.inf, f"output shape {list(got.shape)}, expected {list(want.shape)}"
        same_nan = torch.equal(torch.isnan(got), torch.isnan(want))
        finite = ~torch.isnan(want)
        err = float((got[finite] - want[finite]).abs().max()) if finite.any() else 0.0
        scale = float(want[finite].abs().max()) if finite.any() else 1.0
        rel = err / (scale or 1.0)
        tol = TOLERANCE.get(self.out_dtype, 0.0)
        if not same_nan or not rel <= tol:
            return False, rel, f"max error {rel:.3g} of the reference's largest value (tolerance {tol:g})"
        return True, rel, ""

    def time(self, config: dict, repeats: int) -> float:
        run = self._candidate(config)
        if self.device.type == "cuda":
            return self._time_cuda(run, repeats)
        for flat in self.sets:  # warm-up
            run(flat)
        times = []
        deadline = time.perf_counter() + 3.0
        while len(times) < repeats and (len(times) < 5 or time.perf_counter() < deadline):
            flat = self.sets[len(times) % len(self.sets)]
            self.flush.zero_()
            start = time.perf_counter()
            run(flat)
            times.append(time.perf_counter() - start)
        return 1e6 * sorted(times)[len(times) // 2]

    def _time_cuda(self, run, repeats: int) -> float:
        calls = [lambda flat=flat: run(flat) for flat in self.sets]
        for call in calls:  # warm-up (also allocates any workspace before capture)
            call()
        torch.cuda.synchronize()
        try:
            replays = []
            for call in calls:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    call()
                replays.append(graph.replay)
        except Exception:  # not capturable: time plain calls (host launch time included)
            replays = calls
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for i, (start, end) in enumerate(events):
            self.flush.zero_()
            start.record()
            replays[i % len(replays)]()
            end.record()
        torch.cuda.synchronize()
        times = sorted(s.elapsed_time(e) for s, e in events)
        return 1e3 * times[len(times) // 2]
