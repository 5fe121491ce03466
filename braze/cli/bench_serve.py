"""`braze bench serve --url URL`: TTFT, TPOT and throughput of a running server per concurrency."""
from __future__ import annotations

import json
import os
from pathlib import Path


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def add_bench_serve_args(p) -> None:
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server (as `braze serve` prints it)")
    p.add_argument("--concurrency", type=_int_list, default=[1, 8, 32, 128],
                   help="comma-separated in-flight request counts (default 1,8,32,128)")
    p.add_argument("--num-prompts", type=int, default=None, help="requests per level (default: 4 x the largest "
                                                                 "concurrency)")
    p.add_argument("--prompt-len", type=int, default=128, help="prompt tokens (random ids)")
    p.add_argument("--max-tokens", type=int, default=256, help="tokens generated per request (EOS ignored)")
    p.add_argument("--api-key", default=os.environ.get("BRAZE_API_KEY"))
    p.add_argument("--out", default="bench/results/serve-latest.json", help="where to save the JSON")


def run_bench_serve(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from braze.bench.serve_bench import run_serve_bench

    console = Console(stderr=True)
    num_prompts = args.num_prompts or 4 * max(args.concurrency)
    result = run_serve_bench(args.url, args.concurrency, num_prompts, args.prompt_len, args.max_tokens,
                             api_key=args.api_key, say=lambda s: console.print(f"[dim]{s}...[/dim]"))
    table = Table(title=f"{result['model']} at {result['url']}: prompt {args.prompt_len}, "
                        f"{args.max_tokens} new tokens, {num_prompts} requests per level")
    for col in ("concurrency", "ok / failed", "output tok/s", "TTFT p50/p90/p99 ms", "TPOT p50/p90/p99 ms"):
        table.add_column(col, justify="right")
    for level in result["levels"]:
        t, p = level["ttft_ms"], level["tpot_ms"]
        table.add_row(str(level["concurrency"]), f"{level['completed']} / {level['failed']}",
                      f"{level['output_tok_s']:.1f}",
                      "/".join(f"{t[k]:.0f}" for k in ("p50", "p90", "p99")) if t else "-",
                      "/".join(f"{p[k]:.1f}" for k in ("p50", "p90", "p99")) if p else "-")
    Console().print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    console.print(f"[dim]saved {args.out}[/dim]")
    return 0 if all(level["failed"] == 0 for level in result["levels"]) else 1
