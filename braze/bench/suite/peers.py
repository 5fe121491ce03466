"""One measurement function per peer. Each fills `res` (a model's entry) as it goes, so a peer
that fails halfway keeps what it measured; the caller catches the exception.

Timing: synchronize + perf_counter around each run, warm-up first, median of `repeats`.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from braze.bench.suite.reference_model import Transformer, decode_one_token, prefill


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_seconds(fn, device: str, repeats: int, warmup: int = 1) -> float:
    """Median wall time of fn() (fn may instead return its own measured seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        own = fn()
        sync(device)
        times.append(own if isinstance(own, float) else time.perf_counter() - start)
    return statistics.median(times)


def round_robin_decode_prefill(llms: dict, prompt: list[int], long_prompt: list[int], new_tokens: int,
                               rounds: int) -> dict:
    """{name: (decode tok/s, prefill tok/s)} of braze.LLMs: decode = new_tokens over the time
    between generating 1 and 1 + new_tokens tokens after `prompt`, prefill = `long_prompt` and one
    token. Every LLM runs every case once per round, in turn, after a warm-up round, so drift in
    clocks or host load during the run hits all alike; medians over the rounds."""
    import braze
    cases = {"first": (prompt, 1), "full": (prompt, new_tokens + 1), "long": (long_prompt, 1)}
    samples = {name: {case: [] for case in cases} for name in llms}
    for r in range(rounds + 1):
        for name, llm in llms.items():
            for case, (ids, n) in cases.items():
                params = braze.SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)
                sync("cuda")
                start = time.perf_counter()
                llm.generate(prompt_token_ids=[ids], sampling_params=params)
                sync("cuda")
                if r:  # round 0 warms up
                    samples[name][case].append(time.perf_counter() - start)
    med = {name: {case: statistics.median(v) for case, v in s.items()} for name, s in samples.items()}
    return {name: (new_tokens / (m["full"] - m["first"]), len(long_prompt) / m["long"]) for name, m in med.items()}


def free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextlib.contextmanager
def fresh_compiler_caches(root: Path):
    """Point braze's and Triton's on-disk caches at empty folders under root (restored afterwards)."""
    saved = {k: os.environ.get(k) for k in ("BRAZE_CACHE_DIR", "TRITON_CACHE_DIR")}
    os.environ["BRAZE_CACHE_DIR"] = str(root / "braze")
    os.environ["TRITON_CACHE_DIR"] = str(root / "triton")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_braze(res: dict, folder: Path, device: str, dtype: str, prompt: list[int], long_prompt: list[int],
              new_tokens: int, repeats: int, say) -> None:
    import braze

    def params(n):
        return braze.SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)

    kwargs = dict(device=device, dtype=dtype, max_num_seqs=1,
                  max_model_len=max(len(long_prompt), len(prompt) + new_tokens) + 16,
                  max_num_batched_tokens=len(long_prompt))
    with tempfile.TemporaryDirectory(prefix="braze-cold-") as cold, fresh_compiler_caches(Path(cold)):
        say("  braze: cold compile (empty braze and Triton caches)")
        sync(device)
        start = time.perf_counter()
        llm = braze.LLM(str(folder), **kwargs)
        sync(device)
        res["compile_cold_s"] = time.perf_counter() - start
        say(f"  braze: timing decode and prefill (cold compile {res['compile_cold_s']:.1f} s)")
        first = median_seconds(lambda: llm.generate(prompt_token_ids=[prompt], sampling_params=params(1)),
                               device, repeats)
        full = median_seconds(lambda: llm.generate(prompt_token_ids=[prompt], sampling_params=params(new_tokens + 1)),
                              device, repeats)
        res["decode_bs1"]["braze_tok_s"] = new_tokens / (full - first)
        long = median_seconds(lambda: llm.generate(prompt_token_ids=[long_prompt], sampling_params=params(1)),
                              device, repeats)
        res["prefill_2048"]["braze_tok_s"] = len(long_prompt) / long
        del llm
        free_memory()
        say("  braze: warm start (LLM(...) to the first token, caches filled)")
        sync(device)
        start = time.perf_counter()
        llm = braze.LLM(str(folder), **kwargs)
        llm.generate(prompt_token_ids=[prompt], sampling_params=params(1))
        sync(device)
        res["compile_warm_s"] = time.perf_counter() - start
        del llm
        free_memory()


def _pad8(n: int) -> int:
    return (n + 7) // 8 * 8


def run_reference(res: dict, model: Transformer, device: str, prompt: torch.Tensor, long_prompt: torch.Tensor,
                  new_tokens: int, repeats: int, compiled: bool, say) -> None:
    """The static-cache model, eager or compiled the gpt-fast way (decode: reduce-overhead CUDA graphs)."""
    key = "torch_compile_tok_s" if compiled else "torch_eager_tok_s"
    name = "torch.compile" if compiled else "torch eager"
    decode_fn, prefill_fn, attention = decode_one_token, prefill, contextlib.nullcontext
    if compiled:
        import torch._inductor.config as inductor_config
        from torch.nn.attention import SDPBackend, sdpa_kernel

        inductor_config.coordinate_descent_tuning = True
        decode_fn = torch.compile(decode_one_token, mode="reduce-overhead", fullgraph=True)
        prefill_fn = torch.compile(prefill, fullgraph=True)
        if device.startswith("cuda"):  # gpt-fast decodes with the math backend: inductor fuses it
            attention = lambda: sdpa_kernel(SDPBackend.MATH)  # noqa: E731

    t = prompt.shape[1]
    model.setup_caches(1, _pad8(t + new_tokens + 1))

    def decode_run() -> float:
        with torch.no_grad():
            cur = prefill(model, prompt, torch.arange(t, device=device))
            pos = torch.tensor([t], device=device, dtype=torch.int64)
            sync(device)
            start = time.perf_counter()
            with attention():
                for _ in range(new_tokens):
                    cur = decode_fn(model, cur, pos).clone()
                    pos += 1
            sync(device)
            return time.perf_counter() - start

    say(f"  {name}: decode" + (" (compiling first)" if compiled else ""))
    seconds = median_seconds(decode_run, device, repeats, warmup=2 if compiled else 1)
    res["decode_bs1"][key] = new_tokens / seconds

    n = long_prompt.shape[1]
    model.setup_caches(1, _pad8(n + 1))
    positions = torch.arange(n, device=device)

    def prefill_run():
        with torch.no_grad():
            prefill_fn(model, long_prompt, positions)

    say(f"  {name}: prefill {n}")
    seconds = median_seconds(prefill_run, device, repeats, warmup=2 if compiled else 1)
    res["prefill_2048"][key] = n / seconds


def run_hf(res: dict, folder: Path, device: str, dtype: str, prompt: torch.Tensor, long_prompt: torch.Tensor,
           new_tokens: int, repeats: int, say) -> None:
    """transformers generate on the same folder: decode = (generate(N+1) - generate(1)) / N."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    say("  transformers: loading the folder")
    torch_dtype = getattr(torch, dtype)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype, device_map=device)
    except Exception:  # an older transformers without device_map support here
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype).to(device)
    model.eval()

    def gen(ids, n):
        def run():
            with torch.inference_mode():
                model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                               do_sample=False, pad_token_id=0)
        return run

    try:
        say("  transformers: decode")
        first = median_seconds(gen(prompt, 1), device, repeats)
        full = median_seconds(gen(prompt, new_tokens + 1), device, repeats)
        res["decode_bs1"]["hf_tok_s"] = new_tokens / (full - first)
        say(f"  transformers: prefill {long_prompt.shape[1]}")
        res["prefill_2048"]["hf_tok_s"] = long_prompt.shape[1] / median_seconds(gen(long_prompt, 1), device,
                                                                                repeats)
    finally:
        del model
        free_memory()
