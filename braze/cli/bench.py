"""`braze bench`: braze vs transformers eager on the same weights, with the roofline."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from braze.bench.llm_bench import run_llm_bench, save

DEFAULT_JSON = "bench/results/latest-cpu.json"


def run_bench(args) -> int:
    from braze.api import default_device
    args.device = args.device or default_device()
    if args.suite == "models":
        from braze.bench.suite import run_models_suite
        run_models_suite(args.models, device=args.device, peers=args.peers, merge=args.merge,
                         out=args.json if args.json != DEFAULT_JSON else "bench/results/latest-cuda.json")
        return 0
    if args.suite == "kernels":
        from braze.bench.suite.kernels import DEFAULT_OUT, run_kernel_suite
        run_kernel_suite(args.kernel_models, args.dtypes, args.seqs, args.cases, args.kernel_peers, args.device,
                         out=args.json if args.json != DEFAULT_JSON else DEFAULT_OUT, merge=args.merge)
        return 0
    console = Console(stderr=True)
    result = run_llm_bench(args.model, args.device, args.dtype, args.prompt_len, args.new_tokens, args.repeats,
                           max_model_len=min(args.max_model_len, 1024), quant=getattr(args, "quant", None),
                           say=lambda s: console.print(f"[dim]{s}...[/dim]"))
    d, p = result["decode"], result["prefill"]
    table = Table(title=f"{args.model} on {args.device} ({args.dtype}, {result['threads']} threads; "
                        f"copy bandwidth {result['ceilings']['copy_GBps']:.1f} GB/s)")
    for col in ("", "braze", "transformers eager", "braze / eager", "roofline"):
        table.add_column(col, justify="right")
    table.add_row("decode tok/s (batch 1)", f"{d['braze_tok_s']:.1f}", f"{d['hf_tok_s']:.1f}", f"{d['speedup']:.2f}x",
                  f"{d['roofline_tok_s']:.1f} (braze {d['braze_pct_roofline']:.0f}%, eager {d['hf_pct_roofline']:.0f}%)")
    table.add_row(f"prefill tok/s ({args.prompt_len} tokens)", f"{p['braze_tok_s']:.1f}", f"{p['hf_tok_s']:.1f}",
                  f"{p['speedup']:.2f}x", "")
    Console().print(table)
    if args.json:
        save(result, args.json)
        console.print(f"[dim]saved {args.json}[/dim]")
    return 0
