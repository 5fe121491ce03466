"""The `braze` command line: generate, compile, run, bench, serve.

Errors a user can act on print as one line and exit 1; BRAZE_DEBUG=1 shows the traceback.
"""
from __future__ import annotations

import argparse
import sys
import traceback

from braze.bench.suite.configs import add_selection_args
from braze.bench.suite.kernels import add_kernel_suite_args
from braze.debug import debug_level
from braze.errors import BrazeError

DEFAULT_MODEL = "smollm2"


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="HF checkpoint folder, .gguf file, or an embedded model name (default: smollm2)")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when a GPU is present")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--max-model-len", type=int, default=2048, help="KV cache context per sequence")
    p.add_argument("--quant", default=None, help="quantize while compiling: int8, int4-rtn-g128, int4-awq-g128, "
                                                 "fp8, gguf (a GGUF file's own blocks); see docs/quantization.md")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="braze", description="braze: an ML compiler and inference engine for LLMs")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate text, streamed as it is produced")
    _model_args(gen)
    what = gen.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="text to continue")
    what.add_argument("--chat", help="a user message, rendered with the model's chat template")
    gen.add_argument("--system", help="a system message for --chat")
    gen.add_argument("--max-tokens", type=int, default=64)
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    gen.add_argument("--top-k", type=int, default=-1)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    gen.add_argument("--ignore-eos", action="store_true")

    comp = sub.add_parser("compile", help="compile a model and print an IR level")
    _model_args(comp)
    comp.add_argument("--ir", default="kernel", choices=["graph", "kernel", "cpp", "triton"],
                      help="graph: Graph IR after the passes; kernel: Kernel IR; cpp: generated C++; "
                           "triton: generated Triton")
    comp.add_argument("--dump-dir", help="write the IR after every pass into this folder")
    comp.add_argument("-c", "--code", help="compile a PyTorch call instead of --model, e.g. "
                                           "\"nn.RMSNorm(2048)(torch.randn(1, 32, 2048))\"")

    run = sub.add_parser("run", help="run a PyTorch call through braze and check it against eager")
    run.add_argument("-c", "--code", required=True, help="MODULE(ARGS), e.g. \"nn.RMSNorm(64)(torch.randn(2, 64))\"")
    run.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when a GPU is present")
    run.add_argument("--bench", action="store_true", help="time braze, eager and torch.compile (median of repeats)")
    run.add_argument("--repeats", type=int, default=50)

    bench = sub.add_parser("bench", help="prefill and decode tokens/s: braze vs transformers, same weights")
    _model_args(bench)
    bench.add_argument("--prompt-len", type=int, default=64)
    bench.add_argument("--new-tokens", type=int, default=32)
    bench.add_argument("--repeats", type=int, default=5)
    bench.add_argument("--json", default="bench/results/latest-cpu.json", help="where to save the results")
    bench.add_argument("--suite", default="model", choices=["model", "models", "kernels"],
                       help="model: --model against transformers; models: the GPU suite of real-config models "
                            "against PyTorch eager, torch.compile and transformers; kernels: per-layer subgraphs "
                            "against eager, torch.compile and max-autotune")
    add_selection_args(bench.add_argument_group("with --suite models (--merge also with kernels)"))
    add_kernel_suite_args(bench.add_argument_group("with --suite kernels"))

    from braze.cli.explain import add_explain_args
    from braze.cli.tune import add_tune_args
    tune = sub.add_parser("tune", help="measure the most promising configs of every kernel into the tuning database")
    _model_args(tune)
    add_tune_args(tune)
    explain = sub.add_parser("explain", help="per kernel: fused ops, chosen config and why, time vs roofline")
    _model_args(explain)
    add_explain_args(explain)
    bench_targets = bench.add_subparsers(dest="bench_target", required=False)
    from braze.cli.bench_serve import add_bench_serve_args
    add_bench_serve_args(bench_targets.add_parser(
        "serve", help="time to first token, time per output token and throughput of a running server"))

    serve = sub.add_parser("serve", help="serve the OpenAI API (completions, chat, streaming) over HTTP")
    _model_args(serve)
    from braze.cli.serve import add_serve_args
    add_serve_args(serve)

    from braze.cli.eval import add_eval_parser
    from braze.cli.quantize import add_quantize_parser
    add_quantize_parser(sub, _model_args)
    add_eval_parser(sub, _model_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            from braze.cli.generate import run_generate
            return run_generate(args)
        if args.command == "compile":
            from braze.cli.compile import run_compile
            return run_compile(args)
        if args.command == "run":
            from braze.cli.run import run_expression
            return run_expression(args)
        if args.command == "tune":
            from braze.cli.tune import run_tune
            return run_tune(args)
        if args.command == "explain":
            from braze.cli.explain import run_explain
            return run_explain(args)
        if args.command == "serve":
            from braze.cli.serve import run_serve
            return run_serve(args)
        if getattr(args, "bench_target", None) == "serve":
            from braze.cli.bench_serve import run_bench_serve
            return run_bench_serve(args)
        if args.command == "quantize":
            from braze.cli.quantize import run_quantize
            return run_quantize(args)
        if args.command == "eval":
            from braze.cli.eval import run_eval
            return run_eval(args)
        from braze.cli.bench import run_bench
        return run_bench(args)
    except BrazeError as error:
        if debug_level() >= 1:
            traceback.print_exc()
        print(f"braze: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("braze: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
