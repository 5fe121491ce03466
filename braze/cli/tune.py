"""`braze tune`: measure the most promising configs of every kernel of a model, into the tuning
database (resumable: records are written as they are measured; a second identical run measures
nothing), then time the model's real steps with the heuristics and with the measured bests and
keep a best only where the step is faster with it (braze.tune.verify; `--no-verify-step` skips
it, and LLM(...) then keeps the heuristics until a later run verifies). `--export FILE` /
`--import FILE` share the database's records and verdicts as JSON lines."""
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
    p.add_argument("--max-num-seqs", type=int, default=4, help="as LLM(max_num_seqs=...): the steps to tune for")
    p.add_argument("--max-num-batched-tokens", type=int, default=256,
                   help="as LLM(max_num_batched_tokens=...): tokens per prefill step")
    p.add_argument("--no-verify-step", dest="verify_step", action="store_false",
                   help="skip timing the model's steps with the measured configs (LLM(...) uses a measured "
                        "config only once a step was faster with it)")
    p.add_argument("--step-budget", type=float, default=None, metavar="SECONDS",
                   help="at most this long trying reverts in the step stage (then the safe choice is taken)")
    p.add_argument("--export", metavar="FILE", help="write every record of the database to FILE (JSON lines) and exit")
    p.add_argument("--import", dest="import_file", metavar="FILE", help="add FILE's records to the database and exit")


def run_tune(args) -> int:
    from braze.api import default_device
    from braze.tune.db import TuningDB
    from braze.tune.device import device_info
    from braze.tune.programs import model_step_program
    from braze.tune.tuner import tune_program
    from braze.tune.verify import verify_program

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
            program, setup = model_step_program(args.model, device, args.dtype, args.max_model_len,
                                                args.max_num_seqs, args.max_num_batched_tokens, report=step)
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
        step_report = None
        if args.verify_step and not report.stopped_by_budget:  # verdicts on a half-measured space would not last
            def on_trial(n, unit, step, with_us, without_us, reverted):
                if not args.json:
                    console.print(f"  trial {n}: {step} step {with_us:.1f} us, {without_us:.1f} us with {unit.label} "
                                  f"at the heuristic's config: {'reverted' if reverted else 'kept'} {unit.label}")
            if not args.json:
                console.print("verifying the measured configs in the model's steps")
            step_report = verify_program(program, setup, info, db, model_label=args.model,
                                         time_budget_s=args.step_budget, on_trial=on_trial)
        summary = {"measured": report.measured, "kernels": report.kernels, "candidates": report.candidates,
                   "failed": report.failed, "stopped_by_budget": report.stopped_by_budget, "model": report.model,
                   "device": info.name, "db": str(db.path), "records": db.count(),
                   "step": step_report.as_dict() if step_report else None}
        if args.json:
            print(json.dumps(summary))
        else:
            console.print(f"measured {report.measured} candidates ({report.failed} failed) of {report.kernels} "
                          f"kernel buckets ({report.candidates} candidates in their spaces); cost model: "
                          f"{report.model}; {summary['records']} records in {db.path}"
                          + ("; budget reached, run again to continue" if report.stopped_by_budget else ""))
            if step_report is not None:
                console.print(_step_summary(step_report))
        return 0
    finally:
        db.close()


def _step_summary(r) -> str:
    if not r.units:
        return "step: no measured config differs from the heuristics'" + (f" ({r.skipped} not run by any step)"
                                                                           if r.skipped else "")
    times = "; ".join(f"{name} {t['heuristic']:.1f} us heuristic, {t['raw']:.1f} us with every measured best, "
                      f"{t['tuned']:.1f} us verified" for name, t in r.steps.items() if t.get("heuristic"))
    how = "verified before" if r.cached else f"{r.trials} revert trials, {r.seconds:.0f}s"
    return f"step: kept {r.kept} of {r.units} measured configs, reverted {r.reverted} ({how}); {times}"
