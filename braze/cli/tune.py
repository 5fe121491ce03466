"""`braze tune`: measure the most promising configs of every kernel of a model, into the tuning
database (resumable: records are written as they are measured; a second identical run measures
nothing). `--export FILE` / `--import FILE` share the database's records as JSON lines."""
from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from braze.cli.progress import load_progress


def add_tune_args(p) -> None:
    p.add_argument("--budget", type=int, default=None, help="at most this many measurements in this run")
    p.add_argument("--fraction", type=float, default=0.2,
                   help="share of each kernel's search space to measure, best-ranked first (default 0.2)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes compiling candidates in parallel (timing is one at a time); "
                        "default: 1 on the CPU, 4 on a GPU")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per candidate before it is killed")
    p.add_argument("--json", action="store_true", help="print one JSON line (measured, kernels, ...) at the end")
    p.add_argument("--db", default=None, help="tuning database (default: <braze cache>/tune/tuning.db)")
    p.add_argument("--export", metavar="FILE", help="write every record of the database to FILE (JSON lines) and exit")
    p.add_argument("--import", dest="import_file", metavar="FILE", help="add FILE's records to the database and exit")


def run_tune(args) -> int:
    from braze.api import default_device
    from braze.tune.db import TuningDB
    from braze.tune.device import device_info
    from braze.tune.programs import model_program
    from braze.tune.tuner import tune_program

    console = Console(stderr=True)
    db = TuningDB(args.db)
    try:
        if args.export or args.import_file:
            if args.import_file:
                console.print(f"imported {db.import_jsonl(args.import_file)} records into {db.path}")
            if args.export:
                console.print(f"exported {db.export_jsonl(args.export)} records from {db.path} to {args.export}")
            return 0
        device = args.device or default_device()
        info = device_info(device)
        with load_progress(sys.stderr.isatty() and not args.json) as step:
            program = model_program(args.model, device, args.dtype, args.max_model_len, report=step)
        workers = args.workers or (1 if info.kind == "cpu" else 4)
        progress = Progress(TextColumn("[bold]tuning[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, disable=args.json or not sys.stderr.isatty())
        with progress:
            bar = progress.add_task(f"{args.model} on {info.name}", total=None)

            def on_result(unit, config, result):
                progress.update(bar, advance=1, description=f"{unit.kernel.name} bucket {unit.bucket}: {result.status}")
            report = tune_program(program, info, db, budget=args.budget, fraction=args.fraction, workers=workers,
                                  timeout_s=args.timeout, on_plan=lambda n: progress.update(bar, total=n),
                                  on_result=on_result)
        summary = {"measured": report.measured, "kernels": report.kernels, "candidates": report.candidates,
                   "failed": report.failed, "stopped_by_budget": report.stopped_by_budget, "model": report.model,
                   "device": info.name, "db": str(db.path), "records": db.count()}
        if args.json:
            print(json.dumps(summary))
        else:
            console.print(f"measured {report.measured} candidates ({report.failed} failed) of {report.kernels} "
                          f"kernel buckets ({report.candidates} candidates in their spaces); cost model: "
                          f"{report.model}; {summary['records']} records in {db.path}"
                          + ("; budget reached, run again to continue" if report.stopped_by_budget else ""))
        return 0
    finally:
        db.close()
