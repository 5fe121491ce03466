"""The Python API, in vLLM's shape:

    llm = braze.LLM("smollm2")
    out = llm.generate(["The capital of France is"], braze.SamplingParams(max_tokens=16, temperature=0))
    print(out[0].text)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from braze.debug import log
from braze.errors import InvalidArgumentError, UnsupportedArchitectureError
from braze.frontend import load_model
from braze.models.config import SUPPORTED_ARCHITECTURES
from braze.models.llama import MODEL_BUILDERS, PagedLayout
from braze.passes.batch_invariant import batch_invariant_default, make_batch_invariant
from braze.passes.pipeline import lower
from braze.tune.choose import tune_step
from braze.runtime.engine import Engine
from braze.runtime.executable import DEFAULT_BACKEND, Executable
from braze.runtime.kv_blocks import PagedCacheManager
from braze.runtime.sampling import SamplingParams

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None


@dataclass
class RequestOutput:
    """One prompt's result. `.text` and `.token_ids` are the (first) completion's."""

    request_id: int
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.outputs[0].text

    @property
    def token_ids(self) -> list[int]:
        return self.outputs[0].token_ids

    @property
    def finish_reason(self) -> str | None:
        return self.outputs[0].finish_reason


def default_device() -> str:
    """The GPU when there is one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidArgumentError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def _load_quantized(model: str, quant: str | None, calibration_text: str | None, report):
    """(loaded model, weights for the graph, QuantScheme or None): a `braze quantize` folder, or
    `model` quantized on the fly by method `quant` (braze/quant/methods.py)."""
    from braze.quant.prepare import is_quantized_folder, load_quantized, quantize_weights

    if is_quantized_folder(model):
        if quant is not None:
            raise InvalidArgumentError(f"{model} is quantized already; drop quant={quant!r}")
        loaded, scheme = load_quantized(model)
        return loaded, loaded.weights, scheme
    loaded = load_model(model)
    if quant is not None:
        report(f"quantizing ({quant})")
    weights, scheme = quantize_weights(loaded, quant, calibration_text)
    return loaded, weights, scheme


class LLM:
    """Load a model, compile it through braze's IRs, and generate.

    model: a Hugging Face checkpoint folder, a llama .gguf file, or "smollm2" (the embedded default).
    device: "cuda" (Triton kernels, CUDA graphs for decode) or "cpu" (C++/OpenMP); default: the GPU
    when there is one. enforce_eager=True launches decode kernels one by one instead of a graph.
    max_model_len: the KV cache's context per sequence; max_num_seqs: sequences decoded together;
    max_num_batched_tokens: tokens per prefill step (longer prompts are prefilled in chunks).
    quant: a quantization method (int8, int4-awq-g128, fp8, gguf, ...: braze/quant/methods.py) applied
    while compiling; calibration_text: AWQ's calibration text (default: a built-in one).
    kv_block_size: a paged KV cache of blocks of this many tokens (default: one slot of max_model_len
    per sequence), num_kv_blocks of them (default: enough for max_num_seqs full contexts), shared
    prompt prefixes cached and reused unless prefix_caching=False (braze/runtime/kv_blocks.py).
    batch_invariant: a request's greedy output is the same alone or in any batch (one kernel config
    for every step size, braze/passes/batch_invariant.py); default on when requests can share a step
    (max_num_seqs > 1), unless BRAZE_BATCH_INVARIANT=0. With one sequence at a time every step
    holds one request, so the fastest kernels are batch invariant already.
    """

    def __init__(self, model: str, device: str | None = None, dtype: str = "float32", *,
                 max_model_len: int | None = None, max_num_seqs: int = 4, max_num_batched_tokens: int = 256,
                 backend: str | None = None, enforce_eager: bool = False, dump_dir: str | None = None,
                 progress: Callable[[str], None] | None = None, quant: str | None = None,
                 calibration_text: str | None = None, kv_block_size: int | None = None,
                 num_kv_blocks: int | None = None, prefix_caching: bool = True,
                 batch_invariant: bool | None = None):
        device = device or default_device()
        _check_choice("device", device, DEVICES)
        _check_choice("dtype", dtype, DTYPES)
        if device == "cuda" and not torch.cuda.is_available():
            raise InvalidArgumentError("device='cuda' asked for, but torch sees no CUDA GPU; use device='cpu'")
        backend = backend or DEFAULT_BACKEND[device]
        cuda_graphs = device == "cuda" and backend == "triton" and not enforce_eager
        report = progress or (lambda step: None)
        started = time.perf_counter()
        report("loading weights")
        loaded, weights, scheme = _load_quantized(model, quant, calibration_text, report)
        config = loaded.config
        if config.architecture not in MODEL_BUILDERS:
            raise UnsupportedArchitectureError(f"architecture {config.architecture} is not supported; supported: "
                                               f"{', '.join(SUPPORTED_ARCHITECTURES)}")
        self.config, self.tokenizer, self.device, self.dtype = config, loaded.tokenizer, device, dtype
        self.max_model_len = min(max_model_len or config.max_position_embeddings, config.max_position_embeddings)
        step_tokens = min(max_num_batched_tokens, self.max_model_len)
        report("building the graph")
        slots = max_num_seqs + (1 if cuda_graphs else 0)  # a spare slot absorbs CUDA-graph padding rows
        paged, cache_manager = None, None
        if kv_block_size is not None:  # a spare block absorbs the padding rows' writes
            blocks = num_kv_blocks or max_num_seqs * -(-self.max_model_len // max(kv_block_size, 1))
            paged = PagedLayout(blocks + (1 if cuda_graphs else 0), kv_block_size)
            cache_manager = PagedCacheManager(paged.num_blocks, kv_block_size, max_num_seqs, self.max_model_len,
                                              prefix_caching, spare_row=max_num_seqs if cuda_graphs else None)
        graph = MODEL_BUILDERS[config.architecture](config, weights, dtype, max_seqs=slots,
                                                    context=self.max_model_len,
                                                    max_tokens=max(step_tokens, slots), device=device, paged=paged)
        del loaded, weights
        report("running compiler passes")
        self.program = lower(graph, dump_dir=dump_dir, quant=scheme)
        del graph
        # knobs per kernel: the tuning database's best, else the cost model's pick, else the heuristics
        self.program = tune_step(self.program, backend)
        if batch_invariant is None:
            batch_invariant = max_num_seqs > 1 and batch_invariant_default()
        self.batch_invariant = bool(batch_invariant)
        if self.batch_invariant and backend == "triton":  # the C++ kernels are batch invariant as they are
            self.program = make_batch_invariant(self.program)
        report(f"compiling kernels ({backend})")
        self.executable = Executable(self.program, backend=backend, device=device)
        self.engine = Engine(self.executable, max_num_seqs, self.max_model_len, max(step_tokens, max_num_seqs),
                             self.tokenizer.eos_token_ids, self.tokenizer.decode, cuda_graphs=cuda_graphs,
                             cache_manager=cache_manager)
        if cuda_graphs:
            report("capturing CUDA graphs")
            self.engine.graphs.capture_all()
        self.load_seconds = time.perf_counter() - started
        log(1, f"LLM ready in {self.load_seconds:.2f}s: {len(self.program.kernels)} kernels")

    def generate(self, prompts: str | list[str] | None = None,
                 sampling_params: SamplingParams | list[SamplingParams] | None = None,
                 prompt_token_ids: list[list[int]] | None = None,
                 on_token: Callable[[int, int], None] | None = None) -> list[RequestOutput]:
        """Complete each prompt (text, or token ids). on_token(request_index, token_id) streams."""
        if prompts is None and prompt_token_ids is None:
            raise InvalidArgumentError("generate() needs prompts or prompt_token_ids")
        if isinstance(prompts, str):
            prompts = [prompts]
        texts: list[str | None] = list(prompts) if prompts is not None else [None] * len(prompt_token_ids)
        ids = prompt_token_ids if prompt_token_ids is not None else [self.tokenizer.encode(p) for p in prompts]
        if prompts is not None and prompt_token_ids is not None and len(prompts) != len(prompt_token_ids):
            raise InvalidArgumentError("prompts and prompt_token_ids must have the same length")
        params = sampling_params or SamplingParams()
        params = list(params) if isinstance(params, list) else [params] * len(ids)
        if len(params) != len(ids):
            raise InvalidArgumentError(f"got {len(ids)} prompts but {len(params)} SamplingParams")
        seqs = self.engine.generate([list(map(int, p)) for p in ids], params, on_token)
        return [RequestOutput(s.index, texts[s.index], s.prompt,
                              [CompletionOutput(0, s.text, s.output, s.finish_reason)]) for s in seqs]

    def chat(self, messages: list[dict] | list[list[dict]], sampling_params: SamplingParams | None = None,
             on_token: Callable[[int, int], None] | None = None) -> list[RequestOutput]:
        """Render each conversation with the model's chat template, then generate the reply."""
        conversations = [messages] if messages and isinstance(messages[0], dict) else messages
        prompts = [self.tokenizer.apply_chat_template(c, add_generation_prompt=True) for c in conversations]
        ids = [self.tokenizer.encode(p, add_special_tokens=False) for p in prompts]
        out = self.generate(None, sampling_params, prompt_token_ids=ids, on_token=on_token)
        for o, p in zip(out, prompts):
            o.prompt = p
        return out
