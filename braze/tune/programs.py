"""The Kernel IR program `LLM(...)` would compile for a model, without compiling it: what
`braze tune` measures and `braze explain` explains (the same kernels, so the same database keys),
and the settings its step runs with (what braze.tune.verify times the step under)."""
from __future__ import annotations

from braze.errors import UnsupportedArchitectureError
from braze.ir.kernel import Program
from braze.tune.step import StepSetup


def model_program(model: str, device: str, dtype: str = "float32", max_model_len: int = 2048,
                  max_num_seqs: int = 4, max_num_batched_tokens: int = 256, report=None) -> Program:
    """Mirrors braze.api.LLM's graph building (slots, context, step tokens) for its defaults."""
    return model_step_program(model, device, dtype, max_model_len, max_num_seqs, max_num_batched_tokens, report)[0]


def model_step_program(model: str, device: str, dtype: str = "float32", max_model_len: int = 2048,
                       max_num_seqs: int = 4, max_num_batched_tokens: int = 256,
                       report=None) -> tuple[Program, StepSetup]:
    """(the program, how LLM(...) with these arguments runs its steps)."""
    from braze.frontend import load_model
    from braze.models.config import SUPPORTED_ARCHITECTURES
    from braze.models.llama import MODEL_BUILDERS
    from braze.passes.pipeline import lower
    report = report or (lambda step: None)
    report("loading weights")
    loaded = load_model(model)
    config = loaded.config
    if config.architecture not in MODEL_BUILDERS:
        raise UnsupportedArchitectureError(f"architecture {config.architecture} is not supported; supported: "
                                           f"{', '.join(SUPPORTED_ARCHITECTURES)}")
    context = min(max_model_len, config.max_position_embeddings)
    step_tokens = min(max_num_batched_tokens, context)
    slots = max_num_seqs + (1 if device == "cuda" else 0)  # LLM's spare CUDA-graph slot
    report("building the graph")
    graph = MODEL_BUILDERS[config.architecture](config, loaded.weights, dtype, max_seqs=slots, context=context,
                                                max_tokens=max(step_tokens, slots), device=device)
    del loaded
    report("running compiler passes")
    setup = StepSetup.for_llm(device, max_num_seqs, max(step_tokens, max_num_seqs), context)
    return lower(graph), setup
