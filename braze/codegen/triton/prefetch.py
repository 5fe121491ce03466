"""L2 prefetch by the matmul after a decode attention, tagged by braze/passes/prefetch.py.

With programmatic dependent launch the kernel after the attention (the O projection) has its
programs resident while the attention runs, each waiting at griddepcontrol.wait. Before that wait
every program issues `cp.async.bulk.prefetch.L2` (Hopper and newer) for its share of the tagged
weight ranges, CHUNK bytes a lane: the copy engine moves them while the attention's dependent
loads leave HBM idle, and no kernel waits for it (a CTA does not retire before its bulk prefetches
land, so issuing them from the attention itself lengthened the attention by their transfer time:
bench/NOTES.md).
"""
from __future__ import annotations

from braze.codegen.triton.module import WAIT_MARKER, EmitContext
from braze.errors import CompilationError
from braze.ir.kernel import Kernel
from braze.passes.memory import ELEMENT_BYTES
from braze.passes.prefetch import MAX_RANGES, TAG

LANES = 128      # bulk prefetches a program issues at once
CHUNK = 16384    # bytes one lane's bulk prefetch covers
ALIGN = 16       # cp.async.bulk.prefetch wants 16-byte aligned addresses and sizes

HELPER = '''
@triton.jit
def _braze_prefetch_l2(ptr, LO: tl.constexpr, HI: tl.constexpr, part, parts, LANES: tl.constexpr,
                       CHUNK: tl.constexpr):
    """Part `part` of `parts` of bytes [LO, HI) of ptr's buffer into L2, one bulk prefetch of up to
    CHUNK bytes a lane (LO, HI and CHUNK are multiples of 16)."""
    if HI > LO:
        base = ptr.to(tl.pointer_type(tl.uint8))
        per = tl.cdiv(tl.cdiv(HI - LO, parts), CHUNK) * CHUNK
        lo = LO + part * per
        hi = tl.minimum(lo + per, HI)
        lane = tl.arange(0, LANES)
        for start in range(lo, hi, LANES * CHUNK):
            at = start + lane * CHUNK
            size = tl.minimum(hi - at, CHUNK)
            tl.inline_asm_elementwise(
                "{ .reg .pred p; setp.gt.s32 p, $2, 0; @p cp.async.bulk.prefetch.L2.global [$1], $2; mov.u32 $0, 0; }",
                "=r,l,r", [base + at.to(tl.int64), size], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _braze_prefetch_ranges(P0, P1, P2, P3, part, parts, LO0: tl.constexpr, HI0: tl.constexpr,
                           LO1: tl.constexpr, HI1: tl.constexpr, LO2: tl.constexpr, HI2: tl.constexpr,
                           LO3: tl.constexpr, HI3: tl.constexpr, LANES: tl.constexpr, CHUNK: tl.constexpr):
    _braze_prefetch_l2(P0, LO0, HI0, part, parts, LANES, CHUNK)
    _braze_prefetch_l2(P1, LO1, HI1, part, parts, LANES, CHUNK)
    _braze_prefetch_l2(P2, LO2, HI2, part, parts, LANES, CHUNK)
    _braze_prefetch_l2(P3, LO3, HI3, part, parts, LANES, CHUNK)
'''

PARAMETERS = ", ".join([f"PF{i}" for i in range(MAX_RANGES)]
                       + [f"PF_{e}{i}: tl.constexpr" for i in range(MAX_RANGES) for e in ("LO", "HI")])


def prefetch_call(indent: str, part: str, parts: str, marker: bool = True) -> str:
    """The jit line issuing program `part` of `parts`'s share, for a function with PARAMETERS, and
    (with `marker`) the marker that puts the function's griddepcontrol.wait after it."""
    bounds = ", ".join(f"PF_LO{i}, PF_HI{i}" for i in range(MAX_RANGES))
    pointers = ", ".join(f"PF{i}" for i in range(MAX_RANGES))
    call = f"{indent}_braze_prefetch_ranges({pointers}, {part}, {parts}, {bounds}, {LANES}, {CHUNK})"
    return call + (f"\n{indent}{WAIT_MARKER}" if marker else "")


def prefetch_arguments(k: Kernel, ctx: EmitContext) -> str | None:
    """The launch's keyword arguments for PARAMETERS: the tagged ranges as 16-byte-aligned byte
    bounds (unused ones empty, on a stand-in pointer); None with no tag, or where the GPU has no
    bulk prefetch or kernels launch without PDL (the prefetch would not overlap the attention)."""
    ranges = k.attr(TAG) or ()
    if not ranges or not (ctx.l2_prefetch and ctx.pdl):
        return None
    if len(ranges) > MAX_RANGES:
        raise CompilationError(f"kernel {k.name}: {len(ranges)} prefetch ranges, at most {MAX_RANGES}")
    pointers, bounds = [], []
    for i in range(MAX_RANGES):
        if i < len(ranges):
            name, first, count = ranges[i]
            size = ELEMENT_BYTES[ctx.program.buffer(name).dtype]
            lo = -(-first * size // ALIGN) * ALIGN      # whole 16-byte units inside the range
            hi = max(lo, (first + count) * size // ALIGN * ALIGN)
        else:
            name, lo, hi = ranges[0][0], 0, 0
        pointers.append(f"PF{i}={ctx.buf(name)}")
        bounds.append(f"PF_LO{i}={lo}, PF_HI{i}={hi}")
    return ", ".join(pointers + bounds)
