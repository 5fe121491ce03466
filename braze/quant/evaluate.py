"""Perplexity of a model over a text, and how far a quantized model's predictions move.

The text is tokenized once and scored in windows of `window` tokens, each window a fresh
sequence of the compiled model (every position's logits returned); consecutive windows overlap by
window - stride tokens and only the new tokens of each are scored, so every token after the first
window sees at least window - stride tokens of context (the usual sliding-window perplexity).
With a quantization method, the unquantized model runs on the same windows and the report adds
the mean KL divergence KL(base || quantized) of the next-token distributions and how often both
pick the same top-1 token.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from braze.errors import InvalidArgumentError
from braze.ir.graph import Graph


@dataclass
class ScoringModel:
    """A model compiled to return the logits of every token of a window."""

    executable: object
    cache_shapes: dict
    weight_bytes: int
    linear_bits: float  # bits per weight over the matmul weights


def compile_for_scoring(loaded, weights, scheme, window: int, device: str, dtype: str, backend: str | None):
    from braze.models.llama import MODEL_BUILDERS
    from braze.passes.pipeline import lower
    from braze.runtime.executable import DEFAULT_BACKEND, Executable

    config = loaded.config
    graph = MODEL_BUILDERS[config.architecture](config, weights, dtype, max_seqs=1, context=window,
                                                max_tokens=window, device=device)
    graph = Graph(graph.outputs, graph.weights, {**graph.symbols, "N": window}, graph.name)  # all logits
    program = lower(graph, quant=scheme)
    exe = Executable(program, backend=backend or DEFAULT_BACKEND[device], device=device)
    caches = {b.name: b.shape for b in program.buffers if b.kind == "state"}
    used = {v.buffer for k in program.kernels for v in k.operands}
    weight_bytes = sum(program.weights[b.name].numel() * program.weights[b.name].element_size()
                       for b in program.buffers if b.kind == "weight" and b.name in used)
    return ScoringModel(exe, caches, weight_bytes, matmul_bits_per_weight(program))


def matmul_bits_per_weight(program) -> float:
    """Bits per weight over every matmul's weight (packed values, scales and mins counted)."""
    bits, count = 0, 0
    for k in program.kernels:
        if k.kind != "matmul":
            continue
        kdim = k.attr("k") or k.operands[k.attr("weight")].shape[1]
        names = [k.operands[k.attr("weight")].buffer]
        if k.attr("quant"):
            names.append(k.operands[k.attr("scales")].buffer)
            if k.attr("mins", -1) >= 0:
                names.append(k.operands[k.attr("mins")].buffer)
        bits += 8 * sum(program.weights[b].numel() * program.weights[b].element_size() for b in names)
        count += k.output.shape[-1] * kdim
    return bits / max(count, 1)


def _window_logits(model: ScoringModel, ids: list[int], device: str) -> torch.Tensor:
    from braze.ir.interpret import TORCH_DTYPE
    t = len(ids)
    program = model.executable.program
    feeds = {"tokens": torch.tensor(ids, dtype=torch.int64, device=device),
             "positions": torch.arange(t, dtype=torch.int64, device=device),
             "slots": torch.zeros(t, dtype=torch.int64, device=device),
             "logits_index": torch.arange(t, dtype=torch.int64, device=device)}
    for name, shape in model.cache_shapes.items():
        feeds[name] = torch.zeros(shape, dtype=TORCH_DTYPE[program.buffer(name).dtype], device=device)
    return model.executable.run(feeds)["logits"].float().clone()


def perplexities(model: str, text: str, methods: list[str | None], device: str = "cpu", dtype: str = "float32",
                 window: int = 512, stride: int | None = None, backend: str | None = None,
                 calibration_text: str | None = None, max_tokens: int | None = None) -> list[dict]:
    """One result per method ({"ppl", "tokens", "method", "bits_per_weight", "weight_bytes"}; None is the
    unquantized model), all scored on the same windows; when None is among them, every other
    method's result adds base_ppl, kl (mean KL(base || method) per token) and top1 agreement."""
    from braze.api import _load_quantized

    stride = stride or window // 2
    if not 0 < stride <= window:
        raise InvalidArgumentError(f"stride {stride} must be in 1..window ({window})")
    models, ids = {}, None
    for method in methods:
        loaded, weights, scheme = _load_quantized(model, method, calibration_text, lambda s: None)
        if ids is None:
            ids = loaded.tokenizer.encode(text)[: max_tokens or None]
        models[method] = (scheme.method if scheme else "none",
                          compile_for_scoring(loaded, weights, scheme, window, device, dtype, backend))
        del loaded, weights
    if len(ids) < 2:
        raise InvalidArgumentError("the text has fewer than 2 tokens: nothing to score")
    nll = dict.fromkeys(models, 0.0)
    kl, agree = dict.fromkeys(models, 0.0), dict.fromkeys(models, 0)
    count, start = 0, 0
    while True:
        chunk = ids[start: start + window]
        first = 1 if start == 0 else max(1, window - stride)  # the previous window scored the tokens before
        targets = torch.tensor(chunk[first:], dtype=torch.int64)
        if len(targets) == 0:
            break
        logps = {m: torch.log_softmax(_window_logits(sm, chunk, device)[first - 1:-1].cpu(), dim=-1)
                 for m, (_, sm) in models.items()}
        base = logps.get(None)
        for m, logp in logps.items():
            nll[m] -= logp.gather(1, targets[:, None]).sum().item()
            if base is not None and m is not None:
                kl[m] += (base.exp() * (base - logp)).sum().item()
                agree[m] += (base.argmax(-1) == logp.argmax(-1)).sum().item()
        count += len(targets)
        if start + window >= len(ids):
            break
        start += stride
    results = []
    for m, (name, sm) in models.items():
        r = {"method": name, "ppl": math.exp(nll[m] / count), "tokens": count, "window": window, "stride": stride,
             "bits_per_weight": round(sm.linear_bits, 3), "weight_bytes": sm.weight_bytes}
        if None in models and m is not None:
            r.update(base_ppl=math.exp(nll[None] / count), kl=kl[m] / count, top1=agree[m] / count)
        results.append(r)
    return results


def perplexity(model: str, text: str, quant: str | None = None, **kwargs) -> dict:
    """{"ppl", "tokens", ...}; with `quant` also base_ppl, kl, top1 (against the unquantized model;
    a `braze quantize` folder is scored on its own)."""
    from braze.quant.prepare import is_quantized_folder

    if quant is None or is_quantized_folder(model):
        return perplexities(model, text, [quant], **kwargs)[0]
    return perplexities(model, text, [None, quant], **kwargs)[1]
