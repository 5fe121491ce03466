"""Weights pulled into L2 while a decode step's attention runs: its idle memory bandwidth put to work.

A decode step at batch 1 is a chain of kernels, each waiting for the one before. The GEMVs stream
weights at close to the memory bandwidth; the attention between the QKV and O projections does
not: it reads a few hundred KB of KV cache through a chain of dependent round trips (position, q,
K/V, partials, the arrival counter, the combine), so for its 5 us or so (TinyLlama on an H100)
HBM sits almost idle. Weights the next kernels will read (the O projection, then the start of
gate|up) can be copied into L2 during that time, so those GEMVs find them there.

The pass only tags: the matmul right after an attention gets attr `prefetch` = ((weight buffer,
first element, element count), ...), the weights of the kernels from it up to the next attention in
the order they run, each kernel's largest weight operand only (a matmul's weight, not its norm
vector or scales) and only where that is a float weight, `budget` bytes in all, at most MAX_RANGES
ranges. The tag changes no semantics: the interpreter and the C++ backend ignore it; the Triton GEMV of a tagged matmul, where kernels
launch with programmatic dependent launch on a Hopper or newer GPU, issues bulk L2 prefetches
(cp.async.bulk.prefetch) for those bytes before its griddepcontrol.wait, i.e. while the attention
still runs (braze/codegen/triton/prefetch.py). A prefetch is a hint: a line evicted before its
reader comes is read from HBM as before.

Measured on an H100 (bench/NOTES.md, bench/results/prefetch-h100.json): TinyLlama's bf16 decode
step 1.051 -> 1.033 ms at 16 MB (medians of 4 runs), 1.033 at 24, 1.044 at 32; hence
DEFAULT_BUDGET_MB = 16 (as fast as 24, and less of L2 taken). Quantized weights are left out: int4-rtn-g128's step was 0.862 -> 0.869 ms at 16 MB (its GEMVs are bound by
latency, not bandwidth, so bytes fetched early buy nothing and the prefetch traffic costs). The
first form, extra programs of the attention itself issuing the prefetches, measured slower (the
attention does not finish before its prefetches land) and was removed.
"""
from __future__ import annotations

import os
from dataclasses import replace

from braze.errors import InvalidArgumentError
from braze.ir.kernel import Program, View, without_attrs
from braze.ir.ops import FLOAT_DTYPES
from braze.passes.memory import ELEMENT_BYTES

TAG = "prefetch"
MAX_RANGES = 4  # the Triton GEMV takes this many (pointer, first, count) triples
# Bytes pulled in per attention. TinyLlama's O projection is 8.4 MB and its gate|up 46 MB; an
# H100's L2 holds 50 MB. 16 measured best on an H100, tied with 24 (bench/gpu_sweep.sh prefetch);
# BRAZE_PREFETCH_MB overrides it (0: no tags).
DEFAULT_BUDGET_MB = 16.0


def default_budget() -> int:
    text = os.environ.get("BRAZE_PREFETCH_MB", DEFAULT_BUDGET_MB)
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not mb >= 0:  # also NaN
        raise InvalidArgumentError(f"BRAZE_PREFETCH_MB={text!r} is not a size: give megabytes, e.g. 16, or 0 for none")
    return int(mb * 2**20)


def view_extent(v: View) -> tuple[int, int]:
    """(first element, element count) of the span of its buffer that a view reads (dims of stride 0
    or size 1 add nothing; a symbolic dim makes the view unsized: (offset, 0))."""
    last = v.offset
    for size, stride in zip(v.shape, v.strides):
        if not isinstance(size, int):
            return v.offset, 0
        if size > 0:
            last += (size - 1) * abs(stride)
    return v.offset, last - v.offset + 1


def _bulk_weight(program: Program, k) -> tuple[View, int] | None:
    """The weight operand of k with the most bytes, and its element size: a matmul's weight (packed,
    for a quantized one), not a fused norm's vector or a quantized weight's scales and mins (a few
    percent of its bytes, which would take ranges the next kernels' weights need)."""
    best = None
    for v in k.operands:
        buf = program.buffer(v.buffer)
        if buf.kind != "weight":
            continue
        size = ELEMENT_BYTES[buf.dtype]
        if best is None or view_extent(v)[1] * size > view_extent(best[0])[1] * best[1]:
            best = (v, size)
    return best


def _weight_ranges(program: Program, kernels, budget: int) -> tuple[tuple[str, int, int], ...]:
    """The (buffer, first, count) spans of the kernels' bulk weights, in order, cut at budget bytes
    and MAX_RANGES ranges; a span that continues the one before it joins it."""
    ranges: list[list] = []
    left = budget
    for k in kernels:
        bulk = _bulk_weight(program, k)
        if bulk is None or left <= 0:
            continue
        v, size = bulk
        if program.buffer(v.buffer).dtype not in FLOAT_DTYPES:  # quantized: measured slower (above)
            continue
        first, count = view_extent(v)
        count = min(count, left // size)
        if count <= 0:
            continue
        if ranges and ranges[-1][0] == v.buffer and ranges[-1][1] + ranges[-1][2] == first:
            ranges[-1][2] += count
        elif len(ranges) < MAX_RANGES:
            ranges.append([v.buffer, first, count])
        else:
            break
        left -= count * size
    return tuple(map(tuple, ranges))


def prefetch_weights_during_attention(program: Program, budget: int | None = None) -> Program:
    budget = default_budget() if budget is None else budget
    if budget <= 0:
        return program
    kernels = list(program.kernels)
    starts = [i for i, k in enumerate(kernels) if k.kind == "attention"]
    for n, i in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(kernels)
        if i + 1 >= end or kernels[i + 1].kind != "matmul" or kernels[i + 1].attr(TAG) is not None:
            continue
        ranges = _weight_ranges(program, kernels[i + 1:end], budget)
        if ranges:
            kernels[i + 1] = replace(kernels[i + 1], attrs=kernels[i + 1].attrs + ((TAG, ranges),))
    return replace(program, kernels=tuple(kernels))


def without_prefetch(program: Program) -> Program:
    """The program with no prefetching (to measure what the tags buy)."""
    return without_attrs(program, (TAG,))
