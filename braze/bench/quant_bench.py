"""Quantized decode and prefill on the GPU: TinyLlama-1.1B (real config, random weights), batch 1.

    python -m braze.bench.quant_bench --out bench/results/quant-cuda.json

For bf16 and each method: braze.LLM(..., quant=method) compiled once, then decode tokens/s (the
difference between 1 and 1 + new_tokens generated tokens, CUDA graphs) and prefill tokens/s of a
2048-token prompt, every method measured once per round in turn, medians over the rounds (two runs
of one method at a time, back to back, differed by up to 1.6x in prefill); speedups are against
bf16 in the same run. Then every distinct weight shape of the model as a matmul at M = 1 (a decode
GEMV) against its own roofline, (weight bytes incl. scales + x + out) / measured copy bandwidth:
alone (one CUDA-graph replay, cold L2) and in a chain of copies with distinct weights replayed from
one graph (gemv_roofline). Random weights: int4 runs round-to-nearest (AWQ changes the values, not
the kernels or the bytes, so its speed is RTN's).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

MODEL = "tinyllama-1.1b"
METHODS = ("int8", "int4-rtn-g128", "fp8")
SAME_SPEED_AS = {"int4-rtn-g128": "int4-awq-g128"}


def build(folder: Path, method: str | None, long_prompt, say) -> tuple:
    """braze.LLM(..., quant=method) compiled once; (llm, entry with method, bits per weight, compile_s)."""
    import braze
    from braze.quant.evaluate import matmul_bits_per_weight

    start = time.perf_counter()
    llm = braze.LLM(str(folder), device="cuda", dtype="bfloat16", max_num_seqs=1, quant=method,
                    max_model_len=len(long_prompt), max_num_batched_tokens=len(long_prompt))
    entry = {"method": method or "bf16", "bits_per_weight": round(matmul_bits_per_weight(llm.program), 3),
             "compile_s": round(time.perf_counter() - start, 1)}
    say(f"  {entry['method']}: compiled in {entry['compile_s']} s, {entry['bits_per_weight']} bits/weight")
    return llm, entry


CHAIN_BYTES = 400 << 20  # a chain's distinct weights: far more than the 50-60 MB L2 can hold


def _gemv_program(n: int, k: int, method: str | None, copies: int, device: str = "cuda"):
    """`copies` independent y_i = x_i @ W_i^T ([1, k] x [n, k]^T), each with its own weights and input
    (so nothing merges them), lowered with the method's quantization; and the weights' bytes per copy."""
    from braze.ir.builder import GraphBuilder
    from braze.passes.pipeline import lower
    from braze.quant.methods import parse_method

    b = GraphBuilder(symbols={"T": 16})
    outputs = {}
    for i in range(copies):
        x = b.input(f"x{i}", ("T", k), "bfloat16")
        w = b.weight(f"w{i}", (torch.randn(n, k, device=device) * 0.02).bfloat16())
        outputs[f"y{i}"] = b.matmul(x, b.transpose(w))
    program = lower(b.build(outputs), quant=parse_method(method) if method else None)
    used = {v.buffer for kern in program.kernels for v in kern.operands}
    weight_bytes = sum(program.weights[name].numel() * program.weights[name].element_size() for name in used
                       if name in program.weights)
    return program, weight_bytes // copies


def gemv_roofline(n: int, k: int, method: str | None, bandwidth: float, repeats: int) -> dict:
    """One [1, k] x [n, k]^T matmul through braze's Triton kernel, vs (bytes moved) / bandwidth, timed
    two ways: alone (one CUDA-graph replay, cold L2: a replay's fixed cost, 4.7 us for an empty
    kernel in this harness, counts against it), and in a chain as a decode step runs it (copies with
    distinct weights back to back in one graph, programmatic dependent launch overlapping each one's
    start with the tail of the one before; time per GEMV = replay / copies)."""
    from braze.bench.suite.kernels import gpu_us, graphed
    from braze.runtime.executable import Executable

    program, weight_bytes = _gemv_program(n, k, method, 1)
    exe = Executable(program, backend="triton", device="cuda")
    feeds = {"x0": torch.randn(1, k, device="cuda").bfloat16()}
    us = gpu_us(graphed(lambda: exe.run(feeds)), repeats, torch.empty(256 << 20, dtype=torch.int8, device="cuda"))
    roof_us = 1e6 * (weight_bytes + 2 * k + 2 * n) / bandwidth
    copies = max(2, -(-CHAIN_BYTES // weight_bytes))
    chain, _ = _gemv_program(n, k, method, copies)
    chain_exe = Executable(chain, backend="triton", device="cuda")
    chain_feeds = {f"x{i}": torch.randn(1, k, device="cuda").bfloat16() for i in range(copies)}
    chain_us = gpu_us(graphed(lambda: chain_exe.run(chain_feeds)), max(5, repeats // 5), flush=None) / copies
    return {"method": method or "bf16", "n": n, "k": k, "us": round(us, 2), "roofline_us": round(roof_us, 2),
            "pct_of_roofline": round(100 * roof_us / us, 1), "kernels": len(program.kernels),
            "chain_copies": copies, "chain_us": round(chain_us, 2),
            "chain_pct_of_roofline": round(100 * roof_us / chain_us, 1)}


def run(out: str, methods=METHODS, new_tokens: int = 64, prefill_len: int = 2048, repeats: int = 9, say=print,
        gemv: bool = True) -> dict:
    from braze.bench.ceilings import measure_copy_bandwidth
    from braze.bench.suite.checkpoint import make_checkpoint
    from braze.bench.suite.configs import MODEL_CONFIGS

    if not torch.cuda.is_available():
        raise SystemExit("quant_bench needs a CUDA GPU")
    cfg = MODEL_CONFIGS[MODEL]
    bandwidth = measure_copy_bandwidth("cuda")
    say(f"copy bandwidth {bandwidth / 1e12:.2f} TB/s; checkpoint for {MODEL}")
    folder = make_checkpoint(MODEL, cfg, "bfloat16", say=say)
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, cfg["vocab_size"], (16,), generator=gen).tolist()
    long_prompt = torch.randint(3, cfg["vocab_size"], (prefill_len,), generator=gen).tolist()
    result = {"device": torch.cuda.get_device_name(), "model": MODEL, "weights": "random (real config)",
              "copy_bandwidth_bytes_s": bandwidth, "torch": torch.__version__, "new_tokens": new_tokens,
              "prefill_len": prefill_len, "methods": [], "gemv": [], "errors": {}}
    llms, entries = {}, {}
    for method in (None,) + tuple(methods):
        name = method or "bf16"
        try:
            llms[name], entries[name] = build(folder, method, long_prompt, say)
        except Exception as e:  # one method failing must not lose the others' numbers
            result["errors"][name] = f"{type(e).__name__}: {e}"
            say(f"  {name} failed: {result['errors'][name]}")
    from braze.bench.suite.peers import round_robin_decode_prefill
    for name, (decode, prefill) in round_robin_decode_prefill(llms, prompt, long_prompt, new_tokens, repeats).items():
        entries[name].update(decode_tok_s=decode, prefill_tok_s=prefill)
        say(f"  {name}: decode {decode:.0f} tok/s, prefill {prefill:.0f} tok/s")
    llms.clear()
    torch.cuda.empty_cache()
    base = entries.get("bf16")
    if base:
        result["bf16"] = base
    for name, entry in entries.items():
        if name == "bf16":
            continue
        if base:
            entry["decode_speedup_vs_bf16"] = round(entry["decode_tok_s"] / base["decode_tok_s"], 3)
            entry["prefill_speedup_vs_bf16"] = round(entry["prefill_tok_s"] / base["prefill_tok_s"], 3)
        if name in SAME_SPEED_AS:
            entry["speed_also_of"] = SAME_SPEED_AS[name]
        result["methods"].append(entry)
    result["repeats"] = repeats
    _save(result, out)
    if not gemv:
        return result
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * h // cfg["num_attention_heads"]
    shapes = [(h + 2 * kv, h), (h, h), (2 * inter, h), (h, inter), (v, h)]  # qkv, o, gate|up, down, lm_head
    for method in (None,) + tuple(methods):
        for n, k in shapes:
            try:
                result["gemv"].append(gemv_roofline(n, k, method, bandwidth, repeats=50))
            except Exception as e:
                result["errors"][f"gemv {method} {n}x{k}"] = f"{type(e).__name__}: {e}"
    for g in result["gemv"]:
        say(f"  GEMV {g['method']:>14} {g['n']:>6}x{g['k']:<5} alone {g['us']:8.1f} us {g['pct_of_roofline']:5.1f}%, "
            f"in a chain of {g['chain_copies']} {g['chain_us']:8.2f} us {g['chain_pct_of_roofline']:5.1f}% of roofline")
    _save(result, out)
    return result


def _save(result: dict, out: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench/results/quant-cuda.json")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--prefill-len", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--no-gemv", action="store_true", help="decode and prefill only, no GEMV-by-shape rows")
    args = p.parse_args(argv)
    run(args.out, tuple(m for m in args.methods.split(",") if m), args.new_tokens, args.prefill_len, args.repeats,
        gemv=not args.no_gemv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
