"""Where a braze decode step's time goes (not a test): TinyLlama-1.1B-shaped random bf16 weights,
one CUDA-graph decode step timed, then every kernel of one eager step timed with torch.profiler.

    PYTHONPATH=. python3 bench/kernels/decode_profile.py [--layers 22] [--context 256] [--prefetch-mb 16]
        [--quant int4-rtn-g128]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from braze.bench.ceilings import measure_copy_bandwidth  # noqa: E402
from braze.models.config import ModelConfig  # noqa: E402
from braze.models.config import expected_weight_shapes  # noqa: E402
from braze.models.llama import build_llama  # noqa: E402
from braze.passes.decode_rows import without_decode_rows  # noqa: E402
from braze.passes.memory import ELEMENT_BYTES  # noqa: E402
from braze.passes.pipeline import lower  # noqa: E402
from braze.quant import parse_method  # noqa: E402
from braze.runtime.engine import Engine  # noqa: E402
from braze.runtime.executable import Executable  # noqa: E402

TINYLLAMA = ModelConfig(architecture="LlamaForCausalLM", vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                        num_layers=22, num_heads=32, num_kv_heads=4, head_dim=64, rms_norm_eps=1e-5,
                        rope_theta=10000.0, max_position_embeddings=2048)


def random_weights(config: ModelConfig) -> dict[str, torch.Tensor]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    out = {}
    for name, shape in expected_weight_shapes(config).items():
        if len(shape) == 1:
            out[name] = torch.ones(shape, device="cuda", dtype=torch.bfloat16)
        else:
            out[name] = (torch.randn(shape, device="cuda", generator=gen) * 0.02).to(torch.bfloat16)
    return out


def compiled_resources(module) -> list[tuple[str, int, int]]:
    """(function, registers, spilled bytes) of every compiled specialization of the module's attention
    kernels (Triton keeps them in each JITFunction's device cache)."""
    import triton
    rows = []
    for name, fn in vars(module).items():
        if isinstance(fn, triton.runtime.jit.JITFunction) and name.startswith("_braze_attn"):
            for caches in getattr(fn, "device_caches", {}).values():
                for kernel in caches[0].values():
                    rows.append((name, getattr(kernel, "n_regs", -1), getattr(kernel, "n_spills", -1)))
    return rows


def numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-pdl", action="store_true", help="no programmatic dependent launch between kernels")
    ap.add_argument("--no-decode-rows", action="store_true",
                    help="a kv_store kernel per layer writes the new rows (no braze/passes/decode_rows.py)")
    ap.add_argument("--prefetch-mb", type=float, default=None,
                    help="MB of weights the matmul after each attention pulls into L2 while the attention "
                         "runs (braze/passes/prefetch.py; 0: none)")
    ap.add_argument("--quant", default=None, help="a braze quantization method (int8, int4-rtn-g128, fp8, ...)")
    args = ap.parse_args(argv)
    if args.prefetch_mb is not None:
        os.environ["BRAZE_PREFETCH_MB"] = str(args.prefetch_mb)
    from braze.passes.prefetch import default_budget
    import braze.codegen.triton.module as triton_module
    triton_module.PDL = not args.no_pdl
    config = ModelConfig(**{**TINYLLAMA.__dict__, "num_layers": args.layers})
    weights = random_weights(config)
    weight_bytes = sum(w.numel() * w.element_size() for w in weights.values())
    t0 = time.perf_counter()
    program = lower(build_llama(config, weights, "bfloat16", max_seqs=2, context=2048, max_tokens=512, device="cuda"),
                    quant=parse_method(args.quant) if args.quant else None)
    if args.no_decode_rows:
        program = without_decode_rows(program)
    exe = Executable(program, backend="triton", device="cuda")
    engine = Engine(exe, 1, 2048, 512, (), lambda ids: "", cuda_graphs=True)
    engine.graphs.capture_all()
    torch.cuda.synchronize()
    compile_s = time.perf_counter() - t0
    ctx = args.context
    engine._step(list(range(ctx)), list(range(ctx)), [0] * ctx, [ctx - 1])  # a prompt in the cache
    torch.cuda.synchronize()
    for _ in range(2):
        engine.graphs.run_greedy([1], [ctx], [0], 8)
    start = time.perf_counter()
    engine.graphs.run_greedy([1], [ctx], [0], args.steps)
    pipelined = (time.perf_counter() - start) / args.steps
    times = []
    for _ in range(args.steps):
        s = time.perf_counter()
        engine.graphs.run([1], [ctx], [0]).argmax().item()
        times.append(time.perf_counter() - s)
    step_sync = sorted(times)[len(times) // 2]
    bandwidth = measure_copy_bandwidth("cuda")
    embed_row = config.hidden_size * 2
    tied = config.tie_word_embeddings
    # the weights the program reads (quantized ones as packed), less the embedding and RoPE tables
    # (a step reads one row of each)
    program_weight_bytes = sum(numel(b.shape) * ELEMENT_BYTES[b.dtype] for b in program.buffers
                               if b.kind == "weight" and not b.name.startswith("rope."))
    step_bytes = program_weight_bytes - (0 if tied else weights["model.embed_tokens.weight"].numel() * 2) + embed_row \
        + 2 * config.num_layers * config.num_kv_heads * config.head_dim * ctx * 2
    # per-kernel times of one eager decode step
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        engine._step([1], [ctx], [0], [0], decode_step=True)  # as the decode graphs run it
        torch.cuda.synchronize()
    kernels = {}
    for e in prof.key_averages():
        if e.device_type.name == "CUDA" or getattr(e, "device_time_total", 0):
            kernels[e.key] = (getattr(e, "device_time_total", 0.0), e.count)
    result = {"layers": config.num_layers, "context": ctx, "pdl": not args.no_pdl, "quant": args.quant,
              "decode_rows_in_attention": not args.no_decode_rows, "prefetch_mb": default_budget() / 2**20,
              "compile_s": compile_s,
              "weight_bytes": weight_bytes, "step_bytes": step_bytes, "copy_TBps": bandwidth / 1e12,
              "roofline_ms": step_bytes / bandwidth * 1e3, "graph_step_ms": step_sync * 1e3,
              "pipelined_step_ms": pipelined * 1e3,
              "pct_roofline_pipelined": 100 * step_bytes / bandwidth / pipelined,
              "kernels_us": {k: {"total_us": v[0], "count": v[1]} for k, v in
                             sorted(kernels.items(), key=lambda kv: -kv[1][0])[:25]},
              "num_kernels": len(program.kernels)}
    print(json.dumps({k: v for k, v in result.items() if k != "kernels_us"}, indent=1))
    for k, v in list(result["kernels_us"].items())[:25]:
        print(f"{v['total_us']:9.1f} us  x{v['count']:3d}  {k[:90]}")
    for name, regs, spills in compiled_resources(exe.compiled.module):
        print(f"  {name}: {regs} registers, {spills} spills")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
