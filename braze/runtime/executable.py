"""Executable: a compiled Program plus its preallocated buffers, run one step at a time.

Intermediates live in one arena sized by the memory plan at the symbols' upper bounds; weights
are laid out once; inputs and state (the KV cache) are the caller's tensors, used in place.
"""
from __future__ import annotations

import os

import torch

from braze.codegen.triton.module import DECODE_STEP
from braze.debug import log
from braze.errors import InvalidArgumentError
from braze.ir.interpret import TORCH_DTYPE
from braze.ir.kernel import Program
from braze.ir.kernel_interpret import resolve, run_program
from braze.passes.memory import ELEMENT_BYTES

BACKENDS = ("cpp", "triton", "reference")
DEFAULT_BACKEND = {"cpu": "cpp", "cuda": "triton"}


class Executable:
    """fresh_outputs: computed outputs get new tensors each run (written by their kernels directly)
    instead of arena views that the next run overwrites."""

    def __init__(self, program: Program, backend: str = "cpp", device: str = "cpu", fresh_outputs: bool = False):
        if backend not in BACKENDS:
            raise InvalidArgumentError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        interpreted = os.environ.get("TRITON_INTERPRET") == "1"  # Triton's CPU interpreter, for tests
        if (backend == "cpp" and device != "cpu") or (backend == "triton" and device != "cuda" and not interpreted):
            raise InvalidArgumentError(f"backend {backend!r} does not run on device {device!r}")
        if program.plan is None:
            raise ValueError("program has no memory plan; run it through braze.passes.pipeline.lower")
        self.program = program
        # the temp buffers that get a new tensor each run (distinct: two outputs may share one)
        self.fresh_buffers = list({buf: program.buffer(buf) for _, buf in program.outputs
                                   if program.buffer(buf).kind == "temp"}.values()) if fresh_outputs else []
        self.backend = backend
        self.device = torch.device(device)
        self.symbol_names = sorted(program.symbols)
        self.arena = torch.empty(max(program.plan.arena_bytes, 1), dtype=torch.uint8, device=self.device)
        self.buffers: dict[str, torch.Tensor] = {}  # name -> flat tensor (weights and temps)
        for b in program.buffers:
            if b.kind == "weight":
                self.buffers[b.name] = program.weights[b.name].to(self.device).contiguous().view(-1)
            elif b.kind == "temp":
                nbytes = _numel(resolve(b.shape, program.symbols)) * ELEMENT_BYTES[b.dtype]
                offset = program.plan.offsets[b.name]
                self.buffers[b.name] = self.arena[offset: offset + nbytes].view(TORCH_DTYPE[b.dtype])
        self.compiled = None
        if backend == "cpp":
            from braze.codegen.cpp import compile_program
            self.compiled = compile_program(program)
            log(1, f"C++ program {'from cache' if self.compiled.cache_hit else 'compiled'}: {self.compiled.source_path}")
            log(3, self.compiled.source)
        elif backend == "triton":
            from braze.codegen.triton import compile_program as compile_triton
            self.compiled = compile_triton(program)
            log(1, f"Triton program {'from cache' if self.compiled.cache_hit else 'generated'}: {self.compiled.path}")
            log(3, self.compiled.source)

    def _bind(self, feeds: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        flat = dict(self.buffers)
        symbols: dict[str, int] = {}
        for b in self.program.buffers:
            if b.kind not in ("input", "state"):
                continue
            if b.name not in feeds:
                raise InvalidArgumentError(f"missing input {b.name!r}")
            t = feeds[b.name]
            if t.dtype != TORCH_DTYPE[b.dtype] or not t.is_contiguous() or t.dim() != len(b.shape) \
                    or t.device.type != self.device.type:
                raise InvalidArgumentError(f"input {b.name!r} must be a contiguous {b.dtype} tensor of shape "
                                           f"{list(b.shape)} on {self.device}, got {t.dtype} {list(t.shape)} "
                                           f"on {t.device}")
            for d, actual in zip(b.shape, t.shape):
                if isinstance(d, str):
                    if symbols.setdefault(d, actual) != actual:
                        raise InvalidArgumentError(f"dim {d} is {symbols[d]} in one input but {actual} in {b.name!r}")
                    if actual > self.program.symbols[d]:
                        raise InvalidArgumentError(f"{b.name!r} has {d}={actual}, more than the compiled "
                                                   f"bound {self.program.symbols[d]}")
                elif d != actual:
                    raise InvalidArgumentError(f"input {b.name!r} has shape {list(t.shape)}, expected {list(b.shape)}")
            flat[b.name] = t.view(-1)
        for name in self.symbol_names:
            symbols.setdefault(name, 0)
        return flat, symbols

    def run(self, feeds: dict[str, torch.Tensor], decode_step: bool = False) -> dict[str, torch.Tensor]:
        """Run one step. Returned temps are views of the arena, valid until the next run (unless
        fresh_outputs). decode_step: every token is the only new one of its sequence (distinct
        slots), which lets a decode attention write its new cache rows (braze/passes/decode_rows.py)."""
        flat, symbols = self._bind(feeds)
        for b in self.fresh_buffers:
            flat[b.name] = torch.empty(_numel(resolve(b.shape, symbols)), dtype=TORCH_DTYPE[b.dtype], device=self.device)
        if self.backend == "cpp":
            pointers = [flat[b.name].data_ptr() for b in self.program.buffers]
            self.compiled.run(pointers, [symbols[s] for s in self.symbol_names])
        elif self.backend == "triton":
            self.compiled.run([flat[b.name] for b in self.program.buffers], {**symbols, DECODE_STEP: decode_step})
        else:
            run_program(self.program, flat, symbols)
        outputs = {}
        for name, buf in self.program.outputs:
            b = self.program.buffer(buf)
            shape = resolve(b.shape, symbols)
            # temps are views of the arena; a weight output (folded at compile time) is its constant
            outputs[name] = flat[buf][: _numel(shape)].view(shape) if b.kind in ("temp", "weight") else feeds[buf]
        return outputs


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
