"""`braze compile`: run the compiler and print one IR level."""
from __future__ import annotations

import sys

from braze.cli.progress import load_progress
from braze.frontend import load_model
from braze.models.llama import MODEL_BUILDERS
from braze.errors import UnsupportedArchitectureError
from braze.models.config import SUPPORTED_ARCHITECTURES
from braze.passes.pipeline import GRAPH_PASSES, lower


def _graph_of_expression(code: str):
    from braze.cli.expression import parse_expression
    from braze.module_compiler import export_graph
    return export_graph(*parse_expression(code))[0]


def run_compile(args) -> int:
    if args.code:
        print(_lowered_text(_graph_of_expression(args.code), args, lambda *_: None))
        return 0
    with load_progress(sys.stderr.isatty()) as step:
        step("loading weights")
        loaded = load_model(args.model)
        config = loaded.config
        if config.architecture not in MODEL_BUILDERS:
            raise UnsupportedArchitectureError(f"architecture {config.architecture} is not supported; supported: "
                                               f"{', '.join(SUPPORTED_ARCHITECTURES)}")
        step("building the graph")
        context = min(args.max_model_len, config.max_position_embeddings)
        graph = MODEL_BUILDERS[config.architecture](config, loaded.weights, args.dtype, max_seqs=4,
                                                    context=context, max_tokens=min(256, context))
        text = _lowered_text(graph, args, step)
    print(text)
    return 0


def _lowered_text(graph, args, step) -> str:
    """The asked-for IR level of `graph` after the compiler passes (--dump-dir: every pass's IR)."""
    step("running compiler passes")
    if args.ir == "graph":
        optimized = graph
        for graph_pass in GRAPH_PASSES:
            optimized = graph_pass(optimized)
        text = str(optimized)
    if args.dump_dir or args.ir != "graph":
        program = lower(graph, dump_dir=args.dump_dir)
    if args.ir == "kernel":
        text = str(program)
    elif args.ir == "cpp":
        step("generating C++")
        from braze.codegen.cpp import emit_program
        text = emit_program(program)
    elif args.ir == "triton":  # the source is generated without a GPU; running it needs one
        step("generating Triton")
        from braze.codegen.triton import emit_module
        text = emit_module(program)
    return text
