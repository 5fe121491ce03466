"""Serving throughput on the GPU: braze's engine with 64 requests in flight vs braze's batch-1
decode vs transformers `generate` with a static batch of 64, on the same random-weight checkpoint
(TinyLlama-1.1B's config, bf16), in one process.

    python -m braze.bench.serve_cuda --out bench/results/serve-cuda.json

The 64 requests (random prompts of 128 token ids, 256 new tokens each, EOS ignored, greedy) are
added to the engine at once and stepped in process (no HTTP: the number is the engine's). TTFT:
from the start of the run to a request's first token; TPOT: (last - first token) / 255. The first
8 requests are also run alone, and their greedy tokens compared with theirs in the batch (batch
invariance on this device and dtype). --batch-invariant both runs braze twice, with the mode on and
off (`batch_invariant_modes`, and `batch_invariance_cost`: on / off throughput ratios).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from braze.bench.serve_bench import percentiles


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_concurrent(llm, prompts: list[list[int]], max_tokens: int) -> dict:
    import braze

    params = braze.SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    engine = llm.engine
    _sync(llm.device)
    start = time.perf_counter()
    for i, prompt in enumerate(prompts):
        engine.add_request(("bench", i), prompt, params)
    first: dict = {}
    last: dict = {}
    tokens: dict = {i: [] for i in range(len(prompts))}
    while engine.has_unfinished():
        outputs = engine.step()
        now = time.perf_counter()
        for out in outputs:
            i = out.request_id[1]
            if out.new_token_ids:
                first.setdefault(i, now)
                last[i] = now
                tokens[i] += out.new_token_ids
    duration = time.perf_counter() - start
    total = sum(len(t) for t in tokens.values())
    return {"output_tok_s": total / duration, "duration_s": duration, "output_tokens": total,
            "ttft_ms": percentiles([first[i] - start for i in first]),
            "tpot_ms": percentiles([(last[i] - first[i]) / (len(tokens[i]) - 1) for i in first if len(tokens[i]) > 1]),
            "preemptions": engine.stats()["preemptions"], "tokens": tokens}


def bs1_decode_tok_s(llm, prompt: list[int], new_tokens: int, repeats: int = 3) -> float:
    import braze

    def timed(n: int) -> float:
        params = braze.SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)
        _sync(llm.device)
        start = time.perf_counter()
        llm.generate(prompt_token_ids=[prompt], sampling_params=params)
        _sync(llm.device)
        return time.perf_counter() - start

    timed(4)
    first = statistics.median(timed(1) for _ in range(repeats))
    full = statistics.median(timed(new_tokens + 1) for _ in range(repeats))
    return new_tokens / (full - first)


def hf_static_batch_tok_s(folder: Path, device: str, dtype: str, prompts: list[list[int]], new_tokens: int) -> float:
    import transformers

    transformers.utils.logging.disable_progress_bar()
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype)).to(device)
    model.eval()
    ids = torch.tensor(prompts, device=device)

    def run(n: int) -> float:
        _sync(device)
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, pad_token_id=0)
        _sync(device)
        return time.perf_counter() - start

    run(4)
    seconds = run(new_tokens)
    del model
    torch.cuda.empty_cache() if device == "cuda" else None
    return len(prompts) * new_tokens / seconds


def measure_braze(args, folder: Path, prompts: list[list[int]], invariant: bool, say) -> dict:
    """Compile with batch invariance on or off; batch-1 decode, the concurrent run, and the first
    `invariance_checks` requests alone vs in the batch."""
    import braze

    mode = "on" if invariant else "off"
    say(f"[batch invariance {mode}] compiling {args.model} ({args.dtype}) for {args.concurrency} sequences")
    started = time.perf_counter()
    llm = braze.LLM(str(folder), device=args.device, dtype=args.dtype, max_num_seqs=args.concurrency,
                    max_model_len=args.prompt_len + args.max_tokens + 16,
                    max_num_batched_tokens=args.max_num_batched_tokens, batch_invariant=invariant)
    compile_s = time.perf_counter() - started
    say(f"[batch invariance {mode}] ready in {compile_s:.1f} s; warm-up")
    run_concurrent(llm, prompts, 8)
    say(f"[batch invariance {mode}] batch-1 decode")
    bs1 = bs1_decode_tok_s(llm, prompts[0], args.max_tokens)
    say(f"[batch invariance {mode}] {args.concurrency} requests in flight")
    level = run_concurrent(llm, prompts, args.max_tokens)
    batch_tokens = level.pop("tokens")
    checked = min(args.invariance_checks, len(prompts))
    say(f"[batch invariance {mode}] {checked} requests alone")
    params = braze.SamplingParams(max_tokens=args.max_tokens, temperature=0, ignore_eos=True)
    mismatches = {}
    for i in range(checked):
        alone = llm.generate(prompt_token_ids=[prompts[i]], sampling_params=params)[0].token_ids
        if alone != batch_tokens[i]:
            mismatches[i] = next((k for k, (a, b) in enumerate(zip(alone, batch_tokens[i])) if a != b),
                                 min(len(alone), len(batch_tokens[i])))
    del llm
    torch.cuda.empty_cache() if args.device == "cuda" else None
    return {"compile_s": compile_s, "bs1_decode_tok_s": bs1, "level": level,
            "batch_invariance": {"mode": mode, "requests_checked": checked, "greedy_equal_alone": checked - len(mismatches),
                                 "first_differing_token": mismatches}}


def _level_json(level: dict, bs1: float, hf: float | None) -> dict:
    return {"output_tok_s": level["output_tok_s"], "hf_static_batch_tok_s": hf,
            "ttft_p50_ms": level["ttft_ms"]["p50"], "tpot_p50_ms": level["tpot_ms"]["p50"],
            "ttft_ms": level["ttft_ms"], "tpot_ms": level["tpot_ms"], "duration_s": level["duration_s"],
            "output_tokens": level["output_tokens"], "preemptions": level["preemptions"],
            "vs_bs1_decode": level["output_tok_s"] / bs1,
            "vs_hf_static_batch": level["output_tok_s"] / hf if hf else None}


def main(argv: list[str] | None = None) -> int:
    from braze.bench.suite.checkpoint import make_checkpoint
    from braze.bench.suite.configs import MODEL_CONFIGS

    p = argparse.ArgumentParser(prog="python -m braze.bench.serve_cuda", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tinyllama-1.1b", choices=sorted(MODEL_CONFIGS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--max-num-batched-tokens", type=int, default=2048)
    p.add_argument("--invariance-checks", type=int, default=8, help="requests also run alone and compared")
    p.add_argument("--batch-invariant", choices=("on", "off", "both"), default="on",
                   help="compile with batch invariance on (the default of LLM), off, or both one after the "
                        "other (what the mode costs: the top-level numbers are then the 'on' run's)")
    p.add_argument("--skip-hf", action="store_true")
    p.add_argument("--shrink", action="store_true", help="2 layers, hidden 64, vocab 512 of the config (checks "
                                                         "the script on a CPU in seconds)")
    p.add_argument("--out", default="bench/results/serve-cuda.json")
    args = p.parse_args(argv)

    say = lambda s: print(f"[serve-bench] {s}", flush=True)  # noqa: E731
    config = MODEL_CONFIGS[args.model]
    if args.shrink:
        config = {**config, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "head_dim": 16}
    folder = make_checkpoint(args.model, config, args.dtype, say=say)
    rng = random.Random(0)
    prompts = [[rng.randrange(100, config["vocab_size"]) for _ in range(args.prompt_len)]
               for _ in range(args.concurrency)]
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.batch_invariant]
    runs = {("on" if inv else "off"): measure_braze(args, folder, prompts, inv, say) for inv in modes}
    hf = None
    if not args.skip_hf:
        say(f"transformers generate, static batch of {args.concurrency}")
        hf = hf_static_batch_tok_s(folder, args.device, args.dtype, prompts, args.max_tokens)
    main_run = runs["on"] if "on" in runs else runs["off"]
    level_key = f"concurrency_{args.concurrency}"
    result = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "model": args.model + (" (shrunk)" if args.shrink else ""), "dtype": args.dtype, "prompt_len": args.prompt_len, "max_tokens": args.max_tokens,
        "max_num_batched_tokens": args.max_num_batched_tokens,
        "batch_invariant": "on" if "on" in runs else "off",
        "bs1_decode_tok_s": main_run["bs1_decode_tok_s"],
        level_key: _level_json(main_run["level"], main_run["bs1_decode_tok_s"], hf),
        "batch_invariance": main_run["batch_invariance"],
        "batch_invariant_modes": {mode: {"compile_s": r["compile_s"], "bs1_decode_tok_s": r["bs1_decode_tok_s"],
                                         level_key: _level_json(r["level"], r["bs1_decode_tok_s"], hf),
                                         "batch_invariance": r["batch_invariance"]} for mode, r in runs.items()},
    }
    if len(runs) == 2:  # what invariance costs: the 'on' run's throughput as a fraction of 'off'
        on, off = runs["on"], runs["off"]
        result["batch_invariance_cost"] = {
            "bs1_decode_on_over_off": on["bs1_decode_tok_s"] / off["bs1_decode_tok_s"],
            f"{level_key}_output_on_over_off": on["level"]["output_tok_s"] / off["level"]["output_tok_s"],
            f"{level_key}_ttft_p50_on_over_off": on["level"]["ttft_ms"]["p50"] / off["level"]["ttft_ms"]["p50"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    say(json.dumps({k: v for k, v in result.items() if k not in ("batch_invariance", "batch_invariant_modes")},
                   indent=2))
    for mode, r in runs.items():
        say(f"batch invariance ({mode}): {r['batch_invariance']}")
    say(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
