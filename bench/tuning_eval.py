"""Autotuning evaluation on a GPU: exhaustive search vs cost-model-guided search, and what tuning
buys TinyLlama-1.1B end to end. One command, bounded by --budget-s, writes --out as it goes:

    python bench/tuning_eval.py --out bench/results/tuning-cuda.json            # on the GPU (~8 min)
    python bench/tuning_eval.py --analyze bench/results/tuning-cuda.json         # redo the analysis anywhere
    braze tune --import bench/results/tuning-cuda.records.jsonl                  # share the measurements

1. Kernels: every tunable kernel of TinyLlama-1.1B and Llama-3-8B (real configs, random weights,
   one layer: every layer has the same kernels) at the decode (M = 1) and prefill buckets, then the
   kernel suite's per-layer cases (braze.bench.suite.layer_cases, seq 128) as time allows.
2. Exhaustive: every config of each kernel's search space (spaces over --max-space configs are
   subsampled to that many, the heuristic's config always kept; reported) is compiled, checked
   against the Kernel IR interpreter and timed in worker processes (CUDA graphs, cold L2, events).
3. Analysis, held-out by kernel (5 folds grouped by kernel structure): the cost model is trained on
   the other folds' measurements and ranks the held-out kernel's space. Guided search measures the
   heuristic's config plus the model's top picks, 20% of the space in all; its best is compared
   with the exhaustive best (gap_to_exhaustive, geomean), as is a random pick of the same size.
   spearman: mean rank correlation of predicted and measured times; top1_regret: geomean of the
   model's first pick's time over the best, minus 1.
4. Step verification (braze.tune.verify, what `braze tune --model` runs after measuring): the
   whole TinyLlama-1.1B model, built as LLM(**LLM_ARGS) builds it, has its decode (CUDA graph,
   batch 1) and prefill (512 tokens) steps timed with the heuristics and with the measured bests;
   a best is kept only where the step is faster with it (`step` in the results: step times,
   kept, reverted, trials).
5. TinyLlama-1.1B decode (batch 1) and prefill (512 tokens) tok/s through LLM.generate with the
   heuristics (BRAZE_TUNE=0), with every per-kernel best unverified (BRAZE_TUNE=raw: `e2e_raw`),
   and with the step-verified choices LLM(...) uses (BRAZE_TUNE=1: `e2e_verified`, and
   tinyllama.tuned).

Results are saved after every kernel and every end-to-end stage, so a run cut short keeps what it
measured. --seed-records FILE imports measurements first (e.g. an earlier run's records file):
kernels that have records on this device and software are then not measured again.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = ("tinyllama-1.1b", "llama-3-8b")
EVAL_BUCKETS = (1, 0)          # decode and prefill (the buckets batch-1 generation uses)
SEQ_CASES = 128
LLM_ARGS = dict(max_num_seqs=1, max_model_len=1024, max_num_batched_tokens=512)
PROMPT, LONG_PROMPT, NEW_TOKENS = 16, 512, 64


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- kernels


def model_program(name: str, dtype: str, device: str):
    """One layer of the model with random weights, built as LLM(**LLM_ARGS) builds it ("tiny": a
    small config of the same family, for a smoke run on Triton's CPU interpreter)."""
    import torch

    from braze.bench.suite.checkpoint import random_state_dict
    from braze.bench.suite.configs import MODEL_CONFIGS, tiny_config
    from braze.frontend.hf import config_from_dict
    from braze.models.llama import MODEL_BUILDERS
    from braze.passes.pipeline import lower
    cfg = dict(tiny_config() if name == "tiny" else MODEL_CONFIGS[name], num_hidden_layers=1)
    weights = dict(random_state_dict(cfg, getattr(torch, dtype), device))
    config = config_from_dict(cfg)
    slots = LLM_ARGS["max_num_seqs"] + (1 if device == "cuda" else 0)
    graph = MODEL_BUILDERS[config.architecture](config, weights, dtype, max_seqs=slots,
                                                context=LLM_ARGS["max_model_len"],
                                                max_tokens=LLM_ARGS["max_num_batched_tokens"], device=device)
    return lower(graph)


def suite_programs(dtype: str, device: str):
    import torch

    from braze.bench.suite.configs import MODEL_CONFIGS
    from braze.bench.suite.layer_cases import CASES, build_case
    from braze.module_compiler import export_graph
    from braze.passes.pipeline import lower
    for case in CASES:
        if case == "decoder_block":
            continue  # its kernels are the cases'
        try:
            module, inputs = build_case(case, MODEL_CONFIGS["tinyllama-1.1b"], SEQ_CASES, getattr(torch, dtype), device)
            graph, _ = export_graph(module, inputs)
            yield f"suite/{case}", lower(graph)
        except Exception as e:  # noqa: BLE001 - a case braze cannot compile is reported, not fatal
            say(f"  suite case {case}: skipped ({type(e).__name__}: {e})")


def subsample(unit, max_space: int, seed: int = 0) -> list[dict]:
    if len(unit.space) <= max_space:
        return list(unit.space)
    rest = [c for c in unit.space if c != unit.default]
    return [unit.default] + random.Random(seed).sample(rest, max_space - 1)


# ---------------------------------------------------------------- analysis


def _geomean(values) -> float | None:
    values = [v for v in values if v is not None and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def analyze(units: list[dict], fraction: float = 0.2, folds: int = 5, seed: int = 0) -> dict:
    """Held-out metrics of the cost model from exhaustive measurements (see the module docstring)."""
    from braze.tune.cost_model import CostModel, backend_name, spearman
    usable = [u for u in units if sum(r["status"] == "ok" for r in u["records"]) >= 3]
    out = {"units": len(units), "units_analyzed": len(usable), "model_backend": backend_name()}
    if not usable or backend_name() is None:
        out["note"] = "no cost-model library here or too few measurements: run --analyze where lightgbm is installed"
        return out
    keys = sorted({u["key"] for u in usable})
    random.Random(seed).shuffle(keys)
    fold_of = {k: i % folds for i, k in enumerate(keys)}
    per_unit = []
    for fold in range(folds):
        train = [(json.loads(r["features"]), r["time_us"], r["target"]) for u in usable if fold_of[u["key"]] != fold
                 for r in u["records"] if r["status"] == "ok"]
        test = [u for u in usable if fold_of[u["key"]] == fold]
        if not test or len(train) < 20:
            continue
        model = CostModel.train(train, seed=seed)
        for u in test:
            recs = u["records"]
            predicted = list(model.predict_log2_us([json.loads(r["features"]) for r in recs]))
            ok = [i for i, r in enumerate(recs) if r["status"] == "ok"]
            best = min(recs[i]["time_us"] for i in ok)
            default = next((r for r in recs if r["config"] == u["default"]), None)
            k = max(1, math.floor(fraction * len(recs)))
            ranked = sorted((i for i, r in enumerate(recs) if r["config"] != u["default"]), key=lambda i: predicted[i])
            picked = ([i for i, r in enumerate(recs) if r["config"] == u["default"]] + ranked)[:k]
            guided = min((recs[i]["time_us"] for i in picked if recs[i]["status"] == "ok"), default=None)
            rng = random.Random(seed)
            others = [i for i, r in enumerate(recs) if r["config"] != u["default"]]
            random_gaps = []
            for _ in range(50):
                draw = ([i for i, r in enumerate(recs) if r["config"] == u["default"]] + rng.sample(others, len(others)))[:k]
                t = min((recs[i]["time_us"] for i in draw if recs[i]["status"] == "ok"), default=None)
                random_gaps.append(t / best if t else None)
            top1 = min(ok, key=lambda i: predicted[i])
            per_unit.append({
                "label": u["label"], "key": u["key"], "bucket": u["bucket"], "kind": u["kind"], "space": len(recs),
                "measured_guided": k, "best_us": best, "guided_us": guided,
                "default_us": default["time_us"] if default and default["status"] == "ok" else None,
                "spearman": spearman([predicted[i] for i in ok], [recs[i]["time_us"] for i in ok]),
                "top1_ratio": recs[top1]["time_us"] / best, "guided_ratio": guided / best if guided else None,
                "random_ratio": _geomean(random_gaps)})
    if not per_unit:
        out["note"] = "too few kernels to hold any out"
        return out
    spearmans = [p["spearman"] for p in per_unit if p["spearman"] == p["spearman"]]
    gap = _geomean(p["guided_ratio"] for p in per_unit)
    untuned = _geomean(p["default_us"] / p["best_us"] for p in per_unit if p["default_us"])
    out.update({
        "measured_fraction": sum(p["measured_guided"] for p in per_unit) / sum(p["space"] for p in per_unit),
        "gap_to_exhaustive": gap - 1 if gap else None,
        "random_gap_to_exhaustive": (_geomean(p["random_ratio"] for p in per_unit) or 1) - 1,
        "spearman": sum(spearmans) / len(spearmans) if spearmans else None,
        "top1_regret": _geomean(p["top1_ratio"] for p in per_unit) - 1,
        "heuristic_vs_best_kernel_time": untuned,
        "per_kernel": per_unit})
    return out


# ---------------------------------------------------------------- end to end


def verify_steps(folder: str, dtype: str, db_path: str, device, budget_s: float) -> dict:
    """Step 4: braze tune's step stage on the whole model, against this run's database."""
    from braze.bench.suite.peers import free_memory
    from braze.tune.db import TuningDB
    from braze.tune.programs import model_step_program
    from braze.tune.verify import verify_program
    program, setup = model_step_program(folder, "cuda", dtype, max_model_len=LLM_ARGS["max_model_len"],
                                        max_num_seqs=LLM_ARGS["max_num_seqs"],
                                        max_num_batched_tokens=LLM_ARGS["max_num_batched_tokens"])
    db = TuningDB(db_path)

    def on_trial(n, unit, step, with_us, without_us, reverted):
        say(f"  trial {n}: {step} {with_us:.1f} us, {without_us:.1f} us with {unit.label} at the heuristic: "
            f"{'reverted' if reverted else 'kept'}")
    try:
        report = verify_program(program, setup, device, db, model_label="tinyllama-1.1b", time_budget_s=budget_s,
                                on_trial=on_trial)
    finally:
        db.close()
        del program
        free_memory()
    return report.as_dict()


E2E_ROUNDS = 9  # rounds of (untuned, raw, tuned) measured in turn: drift hits all three alike


def build_llm(folder: str, dtype: str, mode: str, db_path: str):
    """LLM(...) compiled with BRAZE_TUNE=mode (0: heuristics, raw: every per-kernel best, 1: the
    step-verified choices) and the count of its kernel buckets by knob source."""
    import braze
    os.environ["BRAZE_TUNE"] = mode
    os.environ["BRAZE_TUNE_DB"] = db_path
    llm = braze.LLM(folder, device="cuda", dtype=dtype, **LLM_ARGS)
    sources: dict[str, int] = {}
    for k in llm.program.kernels:
        if k.attr("knobs"):
            for _, _, source in k.attr("knobs").entries:
                sources[source] = sources.get(source, 0) + 1
    return llm, sources


def time_llms(llms: dict, rounds: int = E2E_ROUNDS) -> dict:
    """Decode and prefill tok/s of each LLM, measured round-robin (braze.bench.suite.peers:
    drift hits every variant alike), medians over the rounds. Timing one LLM at a time, back to
    back, read the same prefill kernels as up to 2x apart between runs."""
    from braze.bench.suite.peers import round_robin_decode_prefill
    prompt, long_prompt = list(range(3, 3 + PROMPT)), [3 + i % 250 for i in range(LONG_PROMPT)]
    timed = round_robin_decode_prefill(llms, prompt, long_prompt, NEW_TOKENS, rounds)
    return {name: {"decode_tok_s": decode, "prefill_tok_s": prefill, "rounds": rounds}
            for name, (decode, prefill) in timed.items()}


def end_to_end(args, result: dict, db_path: str, records_path: str, device) -> None:
    """Steps 4 and 5 into result (each stage saved as it ends; a failure is recorded, not raised)."""
    from braze.bench.suite.checkpoint import make_checkpoint
    from braze.bench.suite.configs import MODEL_CONFIGS
    from braze.tune.db import TuningDB
    try:
        folder = str(make_checkpoint("tinyllama-1.1b", MODEL_CONFIGS["tinyllama-1.1b"], args.dtype, say=say))
    except Exception as e:  # noqa: BLE001 - keep the kernel results
        result["tinyllama"] = {"error": f"{type(e).__name__}: {e}"}
        say(f"TinyLlama checkpoint failed: {e}")
        return
    try:
        say("verifying the measured configs in TinyLlama's decode and prefill steps")
        result["step"] = verify_steps(folder, args.dtype, db_path, device, args.step_budget_s)
        say(f"step: {result['step']}")
        shared = TuningDB(db_path)  # the records file carries the step verdicts too
        say(f"exported {shared.export_jsonl(records_path)} rows (records and step verdicts) to {records_path}")
        shared.close()
    except Exception as e:  # noqa: BLE001 - LLM(...) then runs unverified bests as the heuristics
        result["step"] = {"error": f"{type(e).__name__}: {e}"}
        say(f"step verification failed: {traceback.format_exc()}")
    save(result, args.out)
    runs, llms = {}, {}
    for name, mode in (("untuned", "0"), ("raw", "raw"), ("tuned", "1")):
        try:
            llms[name], sources = build_llm(folder, args.dtype, mode, db_path)
            runs[name] = {"knob_sources": sources}
        except Exception as e:  # noqa: BLE001
            runs[name] = {"error": f"{type(e).__name__}: {e}"}
            say(f"TinyLlama {name} failed to build: {e}")
    try:
        for name, timed in time_llms(llms).items():
            runs[name].update(timed)
            say(f"TinyLlama {name}: {runs[name]}")
    except Exception as e:  # noqa: BLE001
        for name in llms:
            runs[name] = {"error": f"{type(e).__name__}: {e}"}
        say(f"TinyLlama timing failed: {traceback.format_exc()}")
    llms.clear()
    result["tinyllama"] = dict(runs)
    untuned = runs["untuned"]
    if "error" in untuned:
        return

    def speedups(run):
        return {"decode_tok_s": run["decode_tok_s"], "prefill_tok_s": run["prefill_tok_s"],
                "decode_speedup": run["decode_tok_s"] / untuned["decode_tok_s"],
                "prefill_speedup": run["prefill_tok_s"] / untuned["prefill_tok_s"]} if "error" not in run else run
    # tuned: what LLM(...) runs (the step-verified choices); raw: every per-kernel best, unverified
    result["e2e_raw"], result["e2e_verified"] = speedups(runs["raw"]), speedups(runs["tuned"])
    for prefix, key in (("", "e2e_verified"), ("raw_", "e2e_raw")):
        for what in ("decode_speedup", "prefill_speedup"):
            if what in result[key]:
                result["tinyllama"][prefix + what] = result[key][what]
    say("end to end: " + json.dumps({"raw": result["e2e_raw"], "verified": result["e2e_verified"]}))


# ---------------------------------------------------------------- main


def save(result: dict, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results/tuning-cuda.json")
    parser.add_argument("--records", default=None, help="all measurements as JSON lines (default: OUT.records.jsonl)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of the whole run")
    parser.add_argument("--e2e-reserve-s", type=float, default=240.0, help="of the budget, kept for steps 4 and 5")
    parser.add_argument("--step-budget-s", type=float, default=100.0,
                        help="of the reserve, at most this long for step 4's revert trials")
    parser.add_argument("--seed-records", metavar="FILE", help="import these measurements first (JSON lines)")
    parser.add_argument("--max-space", type=int, default=40, help="subsample larger spaces to this many configs")
    parser.add_argument("--workers", type=int, default=8, help="processes compiling candidates in parallel")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--models", default=",".join(MODELS), help=f"of {', '.join(MODELS)}, or tiny (a smoke test)")
    parser.add_argument("--no-suite", action="store_true", help="only the models' kernels")
    parser.add_argument("--no-e2e", action="store_true", help="skip steps 4 and 5 (TinyLlama step check and tok/s)")
    parser.add_argument("--analyze", metavar="RESULTS.json", help="only redo step 3 from a saved result file")
    args = parser.parse_args(argv)
    records_path = args.records or str(Path(args.out).with_suffix(".records.jsonl"))

    if args.analyze:
        result = json.loads(Path(args.analyze).read_text())
        result.update(analyze(result["kernels"]))
        save(result, args.out if args.out != parser.get_default("out") else args.analyze)
        print(json.dumps({k: result.get(k) for k in ("measured_fraction", "gap_to_exhaustive", "spearman",
                                                      "top1_regret", "random_gap_to_exhaustive")}))
        return 0

    import torch

    from braze.tune.db import TuningDB
    from braze.tune.device import device_info
    from braze.tune.knobs import config_text
    from braze.tune.tuner import measure_unit, tunable_units
    from braze.tune.workers import WorkerPool
    started = time.monotonic()
    deadline = started + args.budget_s - (0 if args.no_e2e else args.e2e_reserve_s)
    device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        say("no CUDA GPU: this evaluation is for a GPU (TRITON_INTERPRET=1 runs it, slowly, on the interpreter)")
        return 1
    device = device_info("cuda")
    db_path = str(Path(args.out).with_suffix(".db"))
    for suffix in ("", "-wal", "-shm"):
        Path(db_path + suffix).unlink(missing_ok=True)  # this run's own measurements only
    db = TuningDB(db_path)
    if args.seed_records:
        say(f"imported {db.import_jsonl(args.seed_records)} rows from {args.seed_records}")
    result = {"device": device.name, "capability": device.capability, "versions": device.versions,
              "dtype": args.dtype, "budget_s": args.budget_s, "max_space": args.max_space, "kernels": [],
              "complete": False}
    say(f"device {device.name} ({device.num_sms} SMs); building the kernels")
    seen: set = set()

    def units_of():
        """(source, unit) of the models, then of the suite's cases (built only if time is left)."""
        programs = [(name, lambda name=name: model_program(name, args.dtype, device_name), EVAL_BUCKETS)
                    for name in args.models.split(",")]
        for name, build, wanted in programs:
            for u in tunable_units(build(), device):
                if u.bucket in wanted and (u.key, u.bucket) not in seen:
                    seen.add((u.key, u.bucket))
                    yield name, u
        if not args.no_suite:
            for name, program in suite_programs(args.dtype, device_name):
                for u in tunable_units(program, device):
                    if (u.key, u.bucket) not in seen:
                        seen.add((u.key, u.bucket))
                        yield name, u
    with WorkerPool(args.workers, timeout_s=90) as pool:
        for name, unit in units_of():
            if time.monotonic() > deadline:
                say("measurement budget spent: saving what was measured")
                result["stopped_by_budget"] = True
                break
            configs = subsample(unit, args.max_space)
            if db.records(unit.key, unit.bucket, device):  # seeded
                configs = [c for c in configs if config_text(c) not in db.measured_configs(unit.key, unit.bucket,
                                                                                             device)]
            t0 = time.monotonic()
            results = measure_unit(pool, db, device, unit, configs)
            records = db.records(unit.key, unit.bucket, device)  # this run's and any seeded ones
            ok = [r.time_us for r in records if r.status == "ok"]
            default = next((r.time_us for r in records if r.config == config_text(unit.default)), None)
            say(f"{name} {unit.kernel.name} ({unit.kernel.kind}) bucket {unit.bucket}: {len(ok)}/{len(records)} ok "
                f"({len(results)} measured now), best {min(ok) if ok else float('nan'):.1f} us, heuristic "
                f"{default or float('nan'):.1f} us ({time.monotonic() - t0:.0f}s)")
            result["kernels"].append({
                "source": name, "label": f"{name}/{unit.kernel.name}@{unit.bucket}", "key": unit.key,
                "bucket": unit.bucket, "kind": unit.kernel.kind, "space_full": len(unit.space),
                "default": config_text(unit.default),
                "records": [{"config": r.config, "status": r.status, "time_us": r.time_us, "features": r.features,
                             "target": r.target, "error": r.error[:300]} for r in records]})
            save(result, args.out)
    result["measure_s"] = time.monotonic() - started
    result["complete"] = not result.get("stopped_by_budget", False)
    say(f"exported {db.export_jsonl(records_path)} records to {records_path}")
    result["records_file"] = records_path
    result.update(analyze(result["kernels"]))
    save(result, args.out)
    say("analysis: " + json.dumps({k: result.get(k) for k in ("measured_fraction", "gap_to_exhaustive", "spearman",
                                                               "top1_regret", "random_gap_to_exhaustive")}))
    db.close()
    if not args.no_e2e and "tinyllama-1.1b" in args.models:
        end_to_end(args, result, db_path, records_path, device)
    result["wall_s"] = time.monotonic() - started
    save(result, args.out)
    say(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
