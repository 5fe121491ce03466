"""The per-layer kernel suite (`braze bench --suite kernels --device cuda`).

Every per-layer subgraph of TinyLlama-1.1B and Qwen2.5-7B (braze.bench.suite.layer_cases) at
batch 1 and several sequence lengths, in float32 and bfloat16, compiled four ways in one process:
braze (`braze.compile_module`: torch.export -> Graph IR -> fused kernels), PyTorch eager,
torch.compile (default) and torch.compile(mode="max-autotune"). Each braze result is checked
against eager before it is timed; a case that fails the check keeps its times but is left out of
the geomeans and listed.

Timing: each peer's call is captured once in a CUDA graph, so what is timed is the GPU work of
the call (its kernels and the gaps between them), not the Python that launches them; before each
replay the L2 cache is flushed by writing a buffer larger than it (triton.testing.do_bench's
method), then CUDA events around the replay; median of `repeats`. max-autotune is
torch.compile(mode="max-autotune-no-cudagraphs") inside the same capture (its own CUDA graphs
cannot be captured again). The wall time of a plain call, host included, is kept as `call_us`.

    python -m braze.bench.suite.kernels --models tinyllama-1.1b --dtypes bfloat16 --seqs 32,128
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from braze.bench.suite.configs import MODEL_CONFIGS
from braze.bench.suite.layer_cases import CASES, build_case
from braze.errors import InvalidArgumentError

DEFAULT_OUT = "bench/results/kernels-cuda.json"
KERNEL_MODELS = ("tinyllama-1.1b", "qwen2.5-7b")
SEQS = (32, 128, 512)
DTYPES = ("bfloat16", "float32")
PEERS = ("braze", "eager", "compile", "max-autotune")
TIME_KEYS = {"braze": "braze_us", "eager": "eager_us", "compile": "compile_us", "max-autotune": "max_autotune_us"}
# braze vs eager, relative to the largest |eager| value: float32 differs by summation order only
TOLERANCE = {"float32": 1e-3, "bfloat16": 3e-2, "float16": 1e-2}


def _flush_buffer(device: str) -> torch.Tensor | None:
    if not device.startswith("cuda"):
        return None
    return torch.empty(256 << 20, dtype=torch.int8, device=device)  # larger than any L2 so far (50-60 MB)


def wall_us(fn, device: str, repeats: int, warmup: int = 3) -> float:
    """Median wall microseconds of one call, host work included (synchronized around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1e6 * sorted(times)[len(times) // 2]


def graphed(fn):
    """fn's GPU work captured once in a CUDA graph (warmed up first on a side stream); its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def gpu_us(replay, repeats: int, flush: torch.Tensor | None) -> float:
    """Median microseconds of replay() with a cold L2, by CUDA events."""
    replay()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
    for start, end in events:
        if flush is not None:
            flush.zero_()
        start.record()
        replay()
        end.record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in events)
    return 1e3 * times[len(times) // 2]


def _outputs(x) -> tuple[torch.Tensor, ...]:
    return (x,) if isinstance(x, torch.Tensor) else tuple(x)


def relative_error(got, want) -> float:
    got, want = _outputs(got), _outputs(want)
    if len(got) != len(want):
        return math.inf
    err = max(float((g.float() - w.float()).abs().max()) for g, w in zip(got, want))
    scale = max(float(w.float().abs().max()) for w in want) or 1.0
    return err / scale


def bench_case(model: str, case: str, seq: int, dtype: str, device: str, peers, repeats: int,
               flush, say) -> dict:
    """One case's entry; each peer is isolated (a failure records null and an `errors` item)."""
    import braze

    entry = {"name": f"{model}/{case}", "model": model, "case": case, "dtype": dtype, "seq": seq,
             **{TIME_KEYS[p]: None for p in PEERS}, "call_us": {}, "max_rel_error": None, "checked": False,
             "errors": {}}
    module, inputs = build_case(case, MODEL_CONFIGS[model], seq, getattr(torch, dtype), device)
    with torch.inference_mode():
        want = module(*inputs)

    def measure(peer: str, make_fn) -> None:
        if peer not in peers:
            return
        try:
            start = time.perf_counter()
            fn = make_fn()
            with torch.inference_mode():
                got = fn(*inputs)  # compiles on the first call
                entry[f"{peer.replace('-', '_')}_first_call_s"] = round(time.perf_counter() - start, 2)
                if peer == "braze":
                    entry["braze_kernels"] = len(fn.program.kernels)
                    entry["max_rel_error"] = relative_error(got, want)
                    entry["checked"] = entry["max_rel_error"] <= TOLERANCE[dtype]
                call = lambda: fn(*inputs)  # noqa: E731
                entry["call_us"][peer] = wall_us(call, device, max(5, repeats // 4))
                entry[TIME_KEYS[peer]] = (gpu_us(graphed(call), repeats, flush) if device.startswith("cuda")
                                          else entry["call_us"][peer])
        except Exception as e:  # noqa: BLE001  (one peer's failure is recorded, the suite goes on)
            entry["errors"][peer] = f"{type(e).__name__}: {str(e).strip()[:400]}"
        finally:
            torch._dynamo.reset()

    measure("braze", lambda: braze.compile_module(module, *inputs, device=device))
    measure("eager", lambda: module)
    measure("compile", lambda: torch.compile(module, fullgraph=True))
    measure("max-autotune", lambda: torch.compile(module, mode="max-autotune-no-cudagraphs", fullgraph=True))
    times = "  ".join(f"{p} {entry[TIME_KEYS[p]]:.1f}" for p in PEERS if entry[TIME_KEYS[p]] is not None)
    check = "ok" if entry["checked"] else f"CHECK FAILED (rel err {entry['max_rel_error']})"
    say(f"  {entry['name']:<32} {dtype:<9} seq {seq:<4} us: {times}  [{check}]"
        + (f"  errors: {entry['errors']}" if entry["errors"] else ""))
    return entry


def geomeans(cases: list[dict]) -> dict:
    """Per dtype: geomean of peer_us / braze_us over the checked cases that have both times."""
    out = {}
    for dtype in sorted({c["dtype"] for c in cases}):
        row = {}
        for key, name in (("eager_us", "vs_eager"), ("compile_us", "vs_compile"),
                          ("max_autotune_us", "vs_max_autotune")):
            ratios = [c[key] / c["braze_us"] for c in cases
                      if c["dtype"] == dtype and c["checked"] and c["braze_us"] and c.get(key)]
            row[name] = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
            row[f"{name}_cases"] = len(ratios)
        row["failed_checks"] = [f"{c['name']} seq {c['seq']}" for c in cases
                                if c["dtype"] == dtype and not c["checked"]]
        out[dtype] = row
    return out


def _split(value, allowed, what: str, kind=str) -> list:
    items = [kind(str(v).strip()) for v in (value.split(",") if isinstance(value, str) else value) if str(v).strip()]
    if allowed is not None:
        unknown = [v for v in items if v not in allowed]
        if unknown:
            raise InvalidArgumentError(f"unknown {what} {unknown}; choose from: {', '.join(map(str, allowed))}")
    return items


def run_kernel_suite(models=KERNEL_MODELS, dtypes=DTYPES, seqs=SEQS, cases=CASES, peers=PEERS,
                     device: str = "cuda", repeats: int = 50, out: str | Path | None = DEFAULT_OUT,
                     merge: bool = False, say=print) -> dict:
    """Run every (model, case, dtype, seq); write `out` after each case. merge keeps the cases of an
    earlier `out` that this run does not re-measure."""
    from braze.bench.suite import _device_name, _versions

    models = _split(models, MODEL_CONFIGS, "model")
    dtypes = _split(dtypes, ("bfloat16", "float32", "float16"), "dtype")
    seqs = _split(seqs, None, "seq", int)
    cases = _split(cases, CASES, "case")
    peers = _split(peers, PEERS, "peer")
    result = {"device": _device_name(device), **_versions(), "suite": "kernels", "batch": 1, "repeats": repeats,
              "timing": ("GPU time of one call replayed from a CUDA graph, L2 flushed before each replay, median; "
                                          "call_us: wall time of a plain call, host included"), "cases": []}
    earlier = []
    if merge and out and Path(out).exists():
        earlier = json.loads(Path(out).read_text()).get("cases", [])
    flush = _flush_buffer(device)
    measured = []
    for model in models:
        for dtype in dtypes:
            say(f"== {model} {dtype}")
            for seq in seqs:
                for case in cases:
                    measured.append(bench_case(model, case, seq, dtype, device, peers, repeats, flush, say))
                    if out:
                        _save(result, earlier, measured, out)
    result = _save(result, earlier, measured, out) if out else dict(result, cases=measured,
                                                                     geomean=geomeans(measured))
    for dtype, row in result["geomean"].items():
        say(f"geomean {dtype}: " + ", ".join(f"{k} {v:.2f}x" for k, v in row.items()
                                             if k.startswith("vs_") and not k.endswith("_cases") and v))
    if out:
        say(f"wrote {out}")
    return result


def _save(result: dict, earlier: list[dict], measured: list[dict], out) -> dict:
    done = {(c["name"], c["dtype"], c["seq"]) for c in measured}
    cases = [c for c in earlier if (c["name"], c["dtype"], c["seq"]) not in done] + measured
    full = dict(result, cases=cases, geomean=geomeans(cases))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(full, indent=2) + "\n")
    return full


def add_kernel_suite_args(parser) -> None:
    parser.add_argument("--kernel-models", default=",".join(KERNEL_MODELS), help="comma-separated model configs")
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--seqs", default=",".join(map(str, SEQS)))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--kernel-peers", default=",".join(PEERS), help="comma-separated subset of: "
                        + ",".join(PEERS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m braze.bench.suite.kernels", description=__doc__.splitlines()[0])
    add_kernel_suite_args(ap)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--merge", action="store_true", help="keep the cases of --out that this run does not measure")
    a = ap.parse_args(argv)
    run_kernel_suite(a.kernel_models, a.dtypes, a.seqs, a.cases, a.kernel_peers, a.device, a.repeats, a.out,
                     a.merge)
    return 0


if __name__ == "__main__":
    sys.exit(main())
