"""L2 prefetch programs for an attention tagged by braze/passes/prefetch.py.

The decode attention's grid grows by PROGRAMS programs per kv head; those programs compute no
split: the first token's issue `cp.async.bulk.prefetch.L2` (Hopper and newer) for their share of
the tagged weight ranges, CHUNK bytes a lane, and exit. Nothing waits for a prefetch, so they cost
the attention only the issue of a few instructions; the copy engine reads the bytes while the
attention's own dependent loads leave HBM idle.
"""
from __future__ import annotations

from braze.codegen.triton.module import EmitContext
from braze.errors import CompilationError
from braze.ir.kernel import Kernel
from braze.passes.memory import ELEMENT_BYTES
from braze.passes.prefetch import MAX_RANGES, TAG

PROGRAMS = 2     # prefetch programs per kv head (x Hkv in all)
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


def prefetch_arguments(k: Kernel, ctx: EmitContext, num_warps: int, stand_in,
                       enabled: bool = True) -> tuple[str, str, int]:
    """(the four pointer arguments, the constexprs, programs per kv head) of an attention's L2
    prefetch; with no tag, where the GPU has no bulk prefetch, or not enabled, zero programs."""
    ranges = (k.attr(TAG) or ()) if enabled and ctx.l2_prefetch else ()
    if len(ranges) > MAX_RANGES:
        raise CompilationError(f"kernel {k.name}: {len(ranges)} prefetch ranges, at most {MAX_RANGES}")
    pointers, constants = [], []
    for i in range(MAX_RANGES):
        if i < len(ranges):
            name, first, count = ranges[i]
            size = ELEMENT_BYTES[ctx.program.buffer(name).dtype]
            lo = -(-first * size // ALIGN) * ALIGN      # whole 16-byte units inside the range
            hi = max(lo, (first + count) * size // ALIGN * ALIGN)
            pointers.append(ctx.buf(name))
        else:
            lo = hi = 0
            pointers.append(ctx.buf(stand_in.buffer))
        constants.append(f"PF_LO{i}={lo}, PF_HI{i}={hi}")
    programs = PROGRAMS if ranges else 0
    constants.append(f"PF={programs}, PF_LANES={32 * num_warps}, PF_CHUNK={CHUNK}")
    return ", ".join(pointers), ", ".join(constants), programs
