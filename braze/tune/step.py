"""Timing a model's whole step the way LLM(...) runs it: what braze.tune.verify judges configs by.

Kernels timed alone (kernel_bench: a flushed cache, no neighbours) do not keep their order inside
the step. On a GPU decode is one CUDA graph in which programmatic dependent launch overlaps each
kernel with the next and a layer finds the L2 warm from the one before; prefill mixes library
(cuBLAS) and Triton GEMMs. So a measured best config is trusted only when the step itself gets
faster with it. A StepTimer compiles a program (its knobs attached) as LLM(...) does and times
the steps generation runs: decode through the engine's CUDA graphs, replayed greedily as the
engine does, and prefill through its token-bucket step graphs (cuda); or the C++ step (cpu).

Programs are timed round-robin (every program once per round, `repeats` rounds after warm-up,
the median of each), so drift in clocks or machine load hits all of them alike.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch

from braze.ir.kernel import Kernel, Program
from braze.tune.space import BUCKETS, row_dims

DECODE_POSITION = 128   # cache rows a timed decode step attends over (the context permitting)
MAX_VARIANTS = 3        # compiled programs kept at once (the heuristic's, the current, a trial)


@dataclass(frozen=True)
class StepShape:
    name: str       # decode | decode_batch | prefill | prefill_<tokens>
    tokens: int     # T: tokens in the step
    seqs: int       # N: sequences sampled (rows of the logits)
    decode: bool    # one token per sequence (a CUDA-graph replay on cuda)


@dataclass(frozen=True)
class StepSetup:
    """How LLM(...) runs a program's steps (braze/api.py): the backend, CUDA graphs for decode,
    batch invariance (its matmuls then ignore tuned knobs), and the step bounds."""
    device: str             # cpu | cuda
    backend: str            # cpp | triton
    max_num_seqs: int
    max_tokens: int         # tokens per step (the engine's max_step_tokens)
    context: int            # KV cache rows per sequence
    cuda_graphs: bool = False
    batch_invariant: bool = False

    @classmethod
    def for_llm(cls, device: str, max_num_seqs: int, max_tokens: int, context: int) -> "StepSetup":
        from braze.passes.batch_invariant import batch_invariant_default
        from braze.runtime.executable import DEFAULT_BACKEND
        backend = DEFAULT_BACKEND[device]
        return cls(device, backend, max_num_seqs, max_tokens, context, cuda_graphs=device == "cuda",
                   batch_invariant=backend == "triton" and max_num_seqs > 1 and batch_invariant_default())

    def transform(self, program: Program) -> Program:
        """What LLM(...) does to the program after the tune step."""
        if self.batch_invariant:
            from braze.passes.batch_invariant import make_batch_invariant
            return make_batch_invariant(program)
        return program


def _bucket_of(k: Kernel, program: Program, target: str, tokens: int, seqs: int) -> int | None:
    table = BUCKETS.get((target, k.kind))
    if table is None:
        return None
    values = {s: int(v) for s, v in program.symbols.items()} | {"T": tokens, "N": seqs}
    rows = math.prod(d if isinstance(d, int) else values[d] for d in row_dims(k))
    return next((b for b, (lo, hi, _) in table.items() if lo <= rows and (hi == 0 or rows <= hi)), None)


def bucket_at(k: Kernel, program: Program, target: str, shape: StepShape) -> int | None:
    """The bucket (braze.tune.space.BUCKETS) the kernel runs at in this step; None: not tunable."""
    return _bucket_of(k, program, target, shape.tokens, shape.seqs)


def step_shapes(setup: StepSetup, target: str) -> list[StepShape]:
    """The steps generation runs: one sequence decoding, a full batch decoding, a full prefill;
    then, for any row bucket none of those reach (a Triton matmul's M <= 64, or M <= 16 with one
    sequence), a prefill at the bucket's representative size."""
    shapes = [StepShape("decode", 1, 1, True)]
    if setup.max_num_seqs > 1:
        shapes.append(StepShape("decode_batch", setup.max_num_seqs, setup.max_num_seqs, True))
    shapes.append(StepShape("prefill", setup.max_tokens, 1, False))
    reached = {s.tokens for s in shapes}
    for (table_target, _), table in BUCKETS.items():
        if table_target != target:
            continue
        for lo, hi, rep in table.values():
            inside = [t for t in reached if lo <= t and (hi == 0 or t <= hi)]
            if not inside and lo <= setup.max_tokens:
                tokens = min(rep, setup.max_tokens)
                shapes.append(StepShape(f"prefill_{tokens}", tokens, 1, False))
                reached.add(tokens)
    return shapes


class _Variant:
    """One program compiled as LLM(...) compiles it, with its decode graphs on cuda."""

    def __init__(self, program: Program, timer: "StepTimer"):
        from braze.runtime.executable import Executable
        setup = timer.setup
        self.executable = Executable(setup.transform(program), backend=setup.backend, device=setup.device)
        self.graphs = self.step_graphs = None
        if setup.cuda_graphs:
            from braze.runtime.cuda_graphs import model_graphs
            self.graphs, self.step_graphs = model_graphs(self.executable, timer.caches, setup.max_num_seqs,
                                                         setup.max_tokens)


class StepTimer:
    """time(programs) -> for each program, {shape name: microseconds per step} (medians)."""

    def __init__(self, setup: StepSetup, program: Program, shapes: list[StepShape], repeats: int = 7,
                 warmup: int = 2, decode_steps: int = 32, prefill_calls: int = 2):
        from braze.ir.interpret import TORCH_DTYPE
        self.setup, self.shapes = setup, shapes
        self.repeats, self.warmup, self.decode_steps, self.prefill_calls = repeats, warmup, decode_steps, prefill_calls
        self.device = torch.device(setup.device)
        # one KV cache for every variant: its contents do not change a step's speed
        self.caches = {b.name: torch.zeros(b.shape, dtype=TORCH_DTYPE[b.dtype], device=self.device)
                       for b in program.buffers if b.kind == "state"}
        self.position = max(0, min(DECODE_POSITION, setup.context - decode_steps - 1))
        self.variants: dict[tuple, _Variant] = {}
        self.compiled = 0

    def _variant(self, program: Program, keep: set) -> _Variant:
        signature = knob_signature(program)
        if signature not in self.variants:
            for old in [s for s in self.variants if s not in keep][: max(0, len(self.variants) + 1 - MAX_VARIANTS)]:
                del self.variants[old]
            self._free()
            self.variants[signature] = _Variant(program, self)
            self.compiled += 1
        return self.variants[signature]

    def _feeds(self, shape: StepShape) -> dict[str, torch.Tensor]:
        n = shape.tokens
        positions = [self.position] * n if shape.decode else list(range(n))
        slots = list(range(n)) if shape.decode else [0] * n
        index = list(range(n)) if shape.decode else [n - 1]
        step = torch.tensor([[0] * n, positions, slots], dtype=torch.int64)
        return {"tokens": step[0].to(self.device), "positions": step[1].to(self.device),
                "slots": step[2].to(self.device), "logits_index": torch.tensor(index).to(self.device), **self.caches}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def _time_once(self, variant: _Variant, shape: StepShape) -> float:
        """Seconds per step, as the engine runs it."""
        if shape.decode and variant.graphs is not None:
            from braze.runtime.engine import GREEDY_CHUNK
            n = shape.seqs
            chunks = max(1, self.decode_steps // GREEDY_CHUNK)
            self._sync()
            start = time.perf_counter()
            for _ in range(chunks):  # run_greedy reads its tokens back: the engine's host check per chunk
                variant.graphs.run_greedy([0] * n, [self.position] * n, list(range(n)), GREEDY_CHUNK)
            return (time.perf_counter() - start) / (chunks * GREEDY_CHUNK)
        calls = self.decode_steps if shape.decode else self.prefill_calls
        if not shape.decode and variant.step_graphs is not None and variant.step_graphs.fits(shape.tokens):
            n = shape.tokens
            self._sync()
            start = time.perf_counter()
            for _ in range(calls):  # as the engine runs a prefill step: padded to its bucket, replayed
                variant.step_graphs.run([0] * n, list(range(n)), [0] * n, [n - 1])
            self._sync()
            return (time.perf_counter() - start) / calls
        feeds = self._feeds(shape)
        self._sync()
        start = time.perf_counter()
        for _ in range(calls):
            variant.executable.run(feeds)
        self._sync()
        return (time.perf_counter() - start) / calls

    def time(self, programs: list[Program]) -> list[dict[str, float]]:
        keep = {knob_signature(p) for p in programs}
        variants = [self._variant(p, keep) for p in programs]
        samples = [{s.name: [] for s in self.shapes} for _ in variants]
        for round_ in range(self.warmup + self.repeats):
            for v, out in zip(variants, samples):
                for shape in self.shapes:
                    seconds = self._time_once(v, shape)
                    if round_ >= self.warmup:
                        out[shape.name].append(seconds)
        return [{name: 1e6 * statistics.median(values) for name, values in out.items()} for out in samples]

    def _free(self) -> None:
        import gc
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def close(self) -> None:
        self.variants.clear()
        self.caches.clear()
        self._free()


def knob_signature(program: Program) -> tuple:
    """What makes two programs' compiled steps differ here: their kernels' knobs."""
    return tuple((k.name, k.attr("knobs")) for k in program.kernels if k.attr("knobs") is not None)
