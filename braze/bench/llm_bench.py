"""Decode and prefill tokens/s of braze and transformers eager on the same weights, one process,
with the machine's memory-bandwidth roofline measured in the same run."""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

from braze.bench.ceilings import measure_copy_bandwidth
from braze.errors import BrazeError
from braze.passes.memory import ELEMENT_BYTES


def _prefill_and_decode_seconds(run, new_tokens: int, repeats: int) -> tuple[float, float]:
    """(median seconds of a 1-token generation, median seconds of the new_tokens decode steps). Each
    repeat times run(1) and run(new_tokens + 1) back to back and keeps their difference: paired
    differences share the machine's load at that moment, where a difference of two medians taken
    minutes apart can even come out negative on a busy machine."""
    run(1)(), run(new_tokens + 1)()  # warm-up
    firsts, decodes = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        run(1)()
        mid = time.perf_counter()
        run(new_tokens + 1)()
        end = time.perf_counter()
        firsts.append(mid - start)
        decodes.append((end - mid) - (mid - start))
    return statistics.median(firsts), statistics.median(decodes)


def decode_bytes_per_token(llm, context: int) -> int:
    """Bytes one batch-1 decode step must read: every weight a matmul or norm streams, one
    embedding row, and the KV cache rows attended over."""
    program, c = llm.program, llm.config
    matmul_weights = {k.operands[k.attr("weight")].buffer for k in program.kernels if k.kind == "matmul"}
    total = 0
    for b in program.buffers:
        if b.kind != "weight" or b.name.startswith("rope."):
            continue
        size = program.weights[b.name].numel() * ELEMENT_BYTES[b.dtype]
        if b.name in matmul_weights or len(b.shape) == 1:
            total += size
        else:  # gathered tables: one row per token
            total += size // b.shape[0]
    kv = 2 * c.num_layers * c.num_kv_heads * c.head_dim * context * ELEMENT_BYTES[llm.dtype]
    return total + kv


def load_reference(model: str, dtype: str):
    """The same checkpoint in transformers (a GGUF is dequantized by transformers itself)."""
    try:
        import transformers
    except ImportError:
        raise BrazeError("the benchmark compares with transformers: pip install 'transformers>=4.46'") from None
    from braze.frontend import EMBEDDED_MODELS, embedded_model_path
    path = Path(embedded_model_path(model)) if model.lower() in EMBEDDED_MODELS else Path(model)
    torch_dtype = getattr(torch, dtype)
    if path.suffix == ".gguf":
        return transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                                 dtype=torch_dtype).eval()
    return transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype).eval()


def run_llm_bench(model: str, device: str = "cpu", dtype: str = "float32", prompt_len: int = 64,
                  new_tokens: int = 32, repeats: int = 5, max_model_len: int = 512, say=print,
                  quant: str | None = None) -> dict:
    import braze
    from braze.runtime.sampling import SamplingParams

    say("measuring memory bandwidth")
    bandwidth = measure_copy_bandwidth(device)
    say("compiling braze")
    start = time.perf_counter()
    llm = braze.LLM(model, device=device, dtype=dtype, max_model_len=max_model_len, max_num_seqs=1, quant=quant)
    compile_s = time.perf_counter() - start
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(100, llm.config.vocab_size - 100, (prompt_len,), generator=gen).tolist()

    def braze_run(n):
        return lambda: llm.generate(prompt_token_ids=[prompt],
                                    sampling_params=SamplingParams(max_tokens=n, temperature=0, ignore_eos=True))
    say("timing braze")
    braze_first, braze_decode_s = _prefill_and_decode_seconds(braze_run, new_tokens, repeats)

    say("loading the transformers reference")
    ref = load_reference(model, dtype).to(device)
    ids = torch.tensor([prompt], device=device)

    def hf_run(n):
        def run():
            with torch.inference_mode():
                ref.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                             pad_token_id=llm.tokenizer.eos_token_ids[0] if llm.tokenizer.eos_token_ids else 0)
        return run
    say("timing transformers")
    hf_first, hf_decode_s = _prefill_and_decode_seconds(hf_run, new_tokens, repeats)

    context = prompt_len + new_tokens // 2
    step_bytes = decode_bytes_per_token(llm, context)
    braze_decode = new_tokens / braze_decode_s
    hf_decode = new_tokens / hf_decode_s
    roofline = bandwidth / step_bytes
    return {
        "model": model, "device": device, "dtype": dtype, "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "braze": braze.__version__,
        "prompt_len": prompt_len, "new_tokens": new_tokens, "repeats": repeats,
        "ceilings": {"copy_GBps": bandwidth / 1e9},
        "bytes_per_decode_token": step_bytes,
        "decode": {"braze_tok_s": braze_decode, "hf_tok_s": hf_decode, "speedup": braze_decode / hf_decode,
                   "roofline_tok_s": roofline, "braze_pct_roofline": 100 * braze_decode / roofline,
                   "hf_pct_roofline": 100 * hf_decode / roofline},
        "prefill": {"braze_tok_s": prompt_len / braze_first, "hf_tok_s": prompt_len / hf_first,
                    "speedup": hf_first / braze_first},
        "compile_s": compile_s,
    }


def save(result: dict, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
