"""Batch invariance: a request's greedy output is the same bits alone or in any batch.

make_batch_invariant(program) is a pure Kernel IR -> Kernel IR step that tags every matmul and
attention kernel with attr `batch_invariant`; the Triton emitters then use one kernel config for
every step size (braze/codegen/triton/invariant.py says which and why). A matmul's tuned `knobs`
(one config per M bucket) are dropped: in this mode there are no buckets. Attention keeps its
decode knobs (chunk size, warps, stages: the same for every step either way).

The C++ backend is batch invariant without it (its loops do not depend on the step's row count),
so LLM(...) runs this step for the Triton backend only. It is on by default; LLM(...,
batch_invariant=False), `braze serve --no-batch-invariant` or BRAZE_BATCH_INVARIANT=0 turn it
off (faster kernels picked per step size, outputs that may differ in the last bits with the batch).
Decode steps' attention writing the new cache rows itself (braze/passes/decode_rows.py) is turned
off too: it sums the new row's score in another order than a mixed step would.
"""
from __future__ import annotations

import os
from dataclasses import replace

from braze.ir.kernel import Kernel, Program
from braze.passes.decode_rows import without_decode_rows

INVARIANT_KINDS = ("matmul", "attention")


def batch_invariant_default() -> bool:
    """On unless the environment says BRAZE_BATCH_INVARIANT=0."""
    return os.environ.get("BRAZE_BATCH_INVARIANT", "1") != "0"


def _tag(k: Kernel) -> Kernel:
    if k.kind not in INVARIANT_KINDS or k.attr("batch_invariant"):
        return k
    drop = ("knobs",) if k.kind == "matmul" else ()
    attrs = tuple(kv for kv in k.attrs if kv[0] not in drop) + (("batch_invariant", True),)
    return replace(k, attrs=attrs)


def make_batch_invariant(program: Program) -> Program:
    program = without_decode_rows(program)
    return replace(program, kernels=tuple(_tag(k) for k in program.kernels))


def is_batch_invariant(program: Program) -> bool:
    """Every matmul and attention kernel of the program is tagged (and there is at least one)."""
    tagged = [k.attr("batch_invariant", False) for k in program.kernels if k.kind in INVARIANT_KINDS]
    return bool(tagged) and all(tagged)
