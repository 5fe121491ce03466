"""`braze explain`: for each distinct kernel of a model, the graph ops fused into it, the config
chosen per bucket and where it came from (db / model / heuristic; for a measured best, whether a
model step was faster with it: "verified in step" / "reverted: ... slower by X%"), predicted and measured time,
bytes and flops, % of its roofline, and why the runner-up lost; `--plot FILE.png` draws the
roofline chart."""
from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from braze.cli.progress import load_progress


def add_explain_args(p) -> None:
    p.add_argument("--plot", metavar="FILE.png", help="draw the roofline chart of all kernels")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--db", default=None, help="tuning database (default: <braze cache>/tune/tuning.db)")
    p.add_argument("--max-num-seqs", type=int, default=4, help="as LLM(max_num_seqs=...) (and `braze tune`)")
    p.add_argument("--max-num-batched-tokens", type=int, default=256, help="as LLM(max_num_batched_tokens=...)")


def _us(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def run_explain(args) -> int:
    from braze.api import default_device
    from braze.bench.ceilings import measure_ceilings
    from braze.tune.choose import picks_allowed
    from braze.tune.cost_model import CostModel
    from braze.tune.db import TuningDB
    from braze.tune.device import device_info
    from braze.tune.explain import explain_program, plot_roofline
    from braze.tune.programs import model_program

    device = args.device or default_device()
    info = device_info(device)
    db = TuningDB(args.db)
    try:
        with load_progress(sys.stderr.isatty() and not args.json) as step:
            program = model_program(args.model, device, args.dtype, args.max_model_len, args.max_num_seqs,
                                    args.max_num_batched_tokens, report=step)
            step("measuring the roofline ceilings")
            import torch
            dtype = getattr(torch, args.dtype)
            ceilings = measure_ceilings("cuda" if info.kind == "cuda" and torch.cuda.is_available() else "cpu", dtype)
            step("explaining")
            model = CostModel.for_device(db, info, retrain=False)
            reports = explain_program(program, info, db, model, ceilings.bandwidth_bytes_s, ceilings.matmul_flops,
                                      model_picks=picks_allowed(model, info))
    finally:
        db.close()
    if args.json:
        print(json.dumps({"device": info.name, "ceilings": {"bandwidth_GBps": ceilings.bandwidth_bytes_s / 1e9,
                                                            "matmul_GFLOPs": ceilings.matmul_flops / 1e9},
                          "kernels": [r.as_dict() for r in reports]}))
    else:
        table = Table(title=f"{args.model} on {info.name}: {len(program.kernels)} kernels; {ceilings.summary()}",
                      show_lines=True)
        for col in ("kernel", "fused ops (weights read)", "bucket", "config (source)", "pred us", "meas us", "MB", "GFLOP",
                    "% roofline", "runner-up"):
            table.add_column(col, overflow="fold")
        for r in reports:
            name = r.kernels[0] + (f" (+{len(r.kernels) - 1} alike)" if len(r.kernels) > 1 else "")
            weights = ", ".join(w.removeprefix("model.") for w in r.weights)
            table.add_row(name, " ".join(r.fused_ops) + (f"\n[dim]{weights}[/dim]" if weights else ""),
                          f"{r.bucket} ({r.rows} rows)",
                          f"{r.config} ({r.source})" + (f"\n[dim]{escape(r.step)}[/dim]" if r.step else ""),
                          _us(r.predicted_us), _us(r.measured_us), f"{r.bytes / 1e6:.2f}", f"{r.flops / 1e9:.3f}",
                          "-" if r.roofline_pct is None else f"{r.roofline_pct:.0f}%", r.runner_up)
        Console(width=200).print(table)
    if args.plot:
        plot_roofline(reports, ceilings.bandwidth_bytes_s, ceilings.matmul_flops, args.plot,
                      f"{args.model} on {info.name}")
        print(f"roofline chart: {args.plot}", file=sys.stderr)
    return 0
