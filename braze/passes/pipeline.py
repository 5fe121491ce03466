"""The compiler's table of contents: Graph IR -> passes -> Kernel IR, one named step at a time.

Every step is a pure function (a new IR, the old one untouched), followed by its level's verifier
and, with BRAZE_DEBUG or a dump directory, a printout of the IR it produced. The tune step comes
after lowering, once the backend is known: braze.tune.choose.tune_step(program, backend) attaches
each kernel's launch knobs (tuning database > cost model > heuristic); LLM(...) runs it.
"""
from __future__ import annotations

import time
from pathlib import Path

from braze.debug import debug_level, log
from braze.ir.graph import Graph
from braze.ir.kernel import Program
from braze.ir.kernel_verify import verify_program
from braze.ir.verify import verify_graph
from braze.passes.cleanup import eliminate_common_subexpressions, eliminate_dead_code
from braze.passes.concat import distribute_over_concat
from braze.passes.decode_rows import write_decode_rows_in_attention
from braze.passes.decompose import decompose
from braze.passes.flatten import flatten_leading_dims
from braze.passes.fold import fold_constants
from braze.passes.fuse import fuse_into_kernels
from braze.passes.horizontal import group_independent_kernels
from braze.passes.layout import choose_layouts
from braze.passes.memory import plan_memory
from braze.passes.prefetch import prefetch_weights_during_attention
from braze.passes.quantize import quantize_linears
from braze.passes.simplify import simplify

GRAPH_PASSES = [
    decompose,                       # rms_norm, softmax, mean -> pointwise + reductions
    distribute_over_concat,          # op(cat(a, b)) -> cat(op(a), op(b)): each part written in place
    flatten_leading_dims,            # elementwise ops over [B, T, C] run over [B*T, C]
    simplify,                        # x*1, --x, reshape(reshape(x)), ...
    eliminate_common_subexpressions,
    choose_layouts,                  # matmul -> linear [out, in]; Q/K/V and gate/up as one linear
    fold_constants,                  # the transposes and concats above become re-packed weights
    simplify,
    eliminate_common_subexpressions,
    eliminate_dead_code,
]
KERNEL_PASSES = [
    group_independent_kernels,       # independent pointwise kernels side by side share one launch
    write_decode_rows_in_attention,  # on decode steps the attention writes the new k|v rows itself
    prefetch_weights_during_attention,  # the next weights pulled into L2 while the attention runs
    plan_memory,                     # liveness-based offsets of intermediates in one arena
]


def _dump(text: str, step: int, name: str, dump_dir: str | None) -> None:
    if dump_dir:
        Path(dump_dir).mkdir(parents=True, exist_ok=True)
        (Path(dump_dir) / f"{step:02d}-{name}.txt").write_text(text + "\n")
    if debug_level() >= 4:
        log(4, f"--- after {name} ---\n{text}")


def graph_passes(quant=None) -> list:
    """GRAPH_PASSES, with quantize_linears after choose_layouts when a QuantScheme is given (its
    concats of packed Q/K/V weights are then folded like the float ones)."""
    if quant is None:
        return list(GRAPH_PASSES)

    def quantize(graph: Graph) -> Graph:
        return quantize_linears(graph, quant)
    at = GRAPH_PASSES.index(choose_layouts) + 1
    return GRAPH_PASSES[:at] + [quantize] + GRAPH_PASSES[at:]


def lower(graph: Graph, dump_dir: str | None = None, quant=None) -> Program:
    """Run every pass; returns the planned Kernel IR program. quant: a braze.quant QuantScheme."""
    verify_graph(graph)
    _dump(str(graph), 0, "input", dump_dir)
    step = 0
    for step, graph_pass in enumerate(graph_passes(quant), 1):
        start = time.perf_counter()
        graph = verify_graph(graph_pass(graph))
        log(2, f"pass {graph_pass.__name__}: {len(graph.nodes)} nodes, {time.perf_counter() - start:.3f}s")
        _dump(str(graph), step, graph_pass.__name__, dump_dir)
    program = verify_program(fuse_into_kernels(graph))
    step += 1
    log(2, f"pass fuse_into_kernels: {len(program.kernels)} kernels")
    _dump(str(program), step, "fuse_into_kernels", dump_dir)
    for kernel_pass in KERNEL_PASSES:
        step += 1
        program = verify_program(kernel_pass(program))
        _dump(str(program), step, kernel_pass.__name__, dump_dir)
    if program.plan:
        log(1, f"memory plan: {program.plan.arena_bytes / 2**20:.2f} MiB of intermediates "
               f"(one buffer each would take {program.plan.naive_bytes / 2**20:.2f} MiB)")
    return program
