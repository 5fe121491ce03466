"""The GPU model benchmark suite (`braze bench --device cuda --suite models`).

For each model (random weights of the real config) and one process: braze, a gpt-fast-style
static-cache PyTorch model eager and under torch.compile, and transformers generate, all on the
same checkpoint files; batch-1 decode tok/s, prefill tok/s, braze's cold/warm compile time, and
the machine's ceilings (copy bandwidth, matmul FLOP/s) for a bandwidth roofline.

    python -m braze.bench.suite --models llama-3.2-1b,qwen2.5-7b --peers braze,compile
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import traceback
from pathlib import Path

import torch

from braze.bench.suite.configs import DEFAULT_MODELS, MODEL_CONFIGS, PEERS, add_selection_args
from braze.bench.suite.report import print_table
from braze.errors import InvalidArgumentError
DEFAULT_OUT = "bench/results/latest-cuda.json"
__all__ = ["PEERS", "MODEL_CONFIGS", "run_models_suite", "main", "decode_bytes_per_token"]


def decode_bytes_per_token(cfg: dict, dtype: str, context: int) -> int:
    """Bytes one batch-1 decode step reads: every weight once (the embedding: one row; the LM head
    in full, tied or not) plus the K and V cache of `context` positions."""
    from braze.frontend.hf import config_from_dict
    from braze.models.config import expected_weight_shapes

    c = config_from_dict(cfg)
    elem = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    params = 0
    for name, shape in expected_weight_shapes(c).items():
        n = 1
        for s in shape:
            n *= s
        params += c.hidden_size if name == "model.embed_tokens.weight" else n
    if c.tie_word_embeddings:
        params += c.vocab_size * c.hidden_size
    kv = 2 * c.num_layers * c.num_kv_heads * c.head_dim * context
    return (params + kv) * elem


def _models(models) -> list[tuple[str, dict]]:
    """None: all five; names (a list or a comma-separated string); or (name, config dict) pairs."""
    if models is None:
        models = list(DEFAULT_MODELS)
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    out = []
    for m in models:
        if isinstance(m, str):
            if m not in MODEL_CONFIGS:
                raise InvalidArgumentError(f"unknown model {m!r}; choose from: {', '.join(MODEL_CONFIGS)}")
            out.append((m, MODEL_CONFIGS[m]))
        else:
            out.append((m[0], dict(m[1])))
    return out


def _error(e: BaseException) -> str:
    where = traceback.extract_tb(e.__traceback__)
    last = f" (at {Path(where[-1].filename).name}:{where[-1].lineno})" if where else ""
    return f"{type(e).__name__}: {str(e)[:800]}{last}"


def _versions() -> dict:
    import braze

    try:
        import triton
        triton_version = triton.__version__
    except Exception:
        triton_version = None
    try:
        import transformers
        hf_version = transformers.__version__
    except Exception:
        hf_version = None
    return {"torch": torch.__version__, "triton": triton_version, "braze": braze.__version__,
            "transformers": hf_version}


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return platform.processor() or platform.machine()


def _ceilings(device: str, say) -> tuple[dict, dict]:
    from braze.bench.ceilings import measure_copy_bandwidth, measure_matmul_flops

    say("measuring ceilings: copy bandwidth and bf16 matmul")
    ceilings, errors = {"copy_TBps": None, "bf16_matmul_TFLOPs": None}, {}
    try:
        ceilings["copy_TBps"] = measure_copy_bandwidth(device) / 1e12
    except Exception as e:
        errors["copy_bandwidth"] = _error(e)
    try:
        n = None if device.startswith("cuda") else 256  # CPU bf16 matmul is slow: keep the test quick
        ceilings["bf16_matmul_TFLOPs"] = measure_matmul_flops(device, torch.bfloat16, n=n) / 1e12
    except Exception as e:
        errors["bf16_matmul"] = _error(e)
    return ceilings, errors


def bench_model(name: str, cfg: dict, *, dtype: str, device: str, prompt_len: int, new_tokens: int,
                prefill_len: int, repeats: int, peers, cache_dir, copy_bytes_s: float | None, say) -> dict:
    """One model's entry; every peer is isolated (a failure records null plus an `errors` item)."""
    from braze.bench.suite import peers as P
    from braze.bench.suite.checkpoint import load_state_dict, make_checkpoint
    from braze.bench.suite.reference_model import Transformer
    from braze.frontend.hf import config_from_dict

    say(f"== {name} ({dtype})")
    context = prompt_len + new_tokens // 2
    step_bytes = decode_bytes_per_token(cfg, dtype, context)
    res = {
        "model": name, "dtype": dtype,
        "decode_bs1": {"braze_tok_s": None, "torch_compile_tok_s": None, "torch_eager_tok_s": None,
                       "hf_tok_s": None,
                       "roofline_tok_s": copy_bytes_s / step_bytes if copy_bytes_s else None},
        "prefill_2048": {"braze_tok_s": None, "torch_compile_tok_s": None, "torch_eager_tok_s": None,
                         "hf_tok_s": None},
        "compile_cold_s": None, "compile_warm_s": None,
        "bytes_per_decode_token": step_bytes, "errors": {},
    }
    errors = res["errors"]
    try:
        config = config_from_dict(cfg)
        folder = make_checkpoint(name, cfg, dtype, cache_dir, device=device, say=say)
    except Exception as e:
        errors["checkpoint"] = _error(e)
        say(f"  checkpoint failed: {errors['checkpoint']}")
        return res
    res["checkpoint"] = str(folder)
    gen = torch.Generator().manual_seed(0)
    hi = config.vocab_size
    prompt = torch.randint(3, hi, (prompt_len,), generator=gen).tolist()
    long_prompt = torch.randint(3, hi, (prefill_len,), generator=gen).tolist()
    prompt_t = torch.tensor([prompt], device=device)
    long_t = torch.tensor([long_prompt], device=device)

    def attempt(peer: str, fn) -> None:
        if peer not in peers:
            return
        try:
            fn()
        except Exception as e:
            errors[peer] = _error(e)
            say(f"  {peer} failed: {errors[peer]}")
        finally:
            P.free_memory()

    attempt("braze", lambda: P.run_braze(res, folder, device, dtype, prompt, long_prompt, new_tokens, repeats, say))
    if "eager" in peers or "compile" in peers:
        model = None
        try:
            model = Transformer.from_state_dict(config, load_state_dict(folder, device))
        except Exception as e:
            errors["reference"] = _error(e)
            say(f"  reference model failed to load: {errors['reference']}")
        if model is not None:
            for peer, compiled in (("eager", False), ("compile", True)):
                attempt(peer, lambda c=compiled: P.run_reference(res, model, device, prompt_t, long_t, new_tokens,
                                                                 repeats, c, say))
        del model
        torch._dynamo.reset()  # drops compiled graphs and CUDA-graph pools that hold this model
        P.free_memory()
    attempt("hf", lambda: P.run_hf(res, folder, device, dtype, prompt_t, long_t, new_tokens, repeats, say))
    roof = res["decode_bs1"]["roofline_tok_s"]
    if roof:
        res["pct_of_roofline"] = {k.removesuffix("_tok_s"): 100 * v / roof
                                  for k, v in res["decode_bs1"].items() if v and k != "roofline_tok_s"}
    return res


def _earlier_models(out, replaced: set[str]) -> list[dict]:
    """The entries of an earlier results file, minus the models about to be re-measured."""
    try:
        old = json.loads(Path(out).read_text())
    except (OSError, ValueError):
        return []
    return [m for m in old.get("models", []) if m.get("model") not in replaced]


def save(result: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def run_models_suite(models=None, dtype: str = "bfloat16", device: str = "cuda", prompt_len: int = 128,
                     new_tokens: int = 256, prefill_len: int = 2048, repeats: int = 3, peers=PEERS,
                     out: str | Path | None = DEFAULT_OUT, say=print, cache_dir: str | Path | None = None,
                     merge: bool = False, keep_checkpoints: bool = True) -> dict:
    """Benchmark every model against its peers; write `out` (after each model) and print a table.

    merge: keep the other models already in `out` (run the suite a few models at a time).
    keep_checkpoints=False deletes each random checkpoint once its model is done (saves disk).
    """
    peers = tuple(p.strip() for p in (peers.split(",") if isinstance(peers, str) else peers))
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise InvalidArgumentError(f"unknown peer(s) {unknown}; choose from: {', '.join(PEERS)}")
    model_list = _models(models)
    result = {"device": _device_name(device), **_versions(), "dtype": dtype, "prompt_len": prompt_len,
              "new_tokens": new_tokens, "prefill_len": prefill_len, "repeats": repeats, "peers": list(peers)}
    result["ceilings"], ceiling_errors = _ceilings(device, say)
    if ceiling_errors:
        result["errors"] = ceiling_errors
    result["models"] = []
    earlier = _earlier_models(out, {n for n, _ in model_list}) if merge and out else []
    copy = result["ceilings"]["copy_TBps"]
    for name, cfg in model_list:
        entry = bench_model(name, cfg, dtype=dtype, device=device, prompt_len=prompt_len, new_tokens=new_tokens,
                            prefill_len=prefill_len, repeats=repeats, peers=peers, cache_dir=cache_dir,
                            copy_bytes_s=copy * 1e12 if copy else None, say=say)
        result["models"].append(entry)
        if not keep_checkpoints and entry.get("checkpoint"):
            shutil.rmtree(entry["checkpoint"], ignore_errors=True)
        if out:
            save(dict(result, models=earlier + result["models"]), out)
    result["models"] = earlier + result["models"]
    print_table(result, say)
    if out:
        say(f"wrote {out}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m braze.bench.suite", description=__doc__.splitlines()[0])
    add_selection_args(ap)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--prefill-len", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--cache-dir", default=None,
                    help="where random checkpoints are cached (default $BRAZE_BENCH_MODELS_DIR or $TMPDIR)")
    ap.add_argument("--no-keep-checkpoints", action="store_true",
                    help="delete each random checkpoint after its model (saves disk; the next run rewrites it)")
    a = ap.parse_args(argv)
    result = run_models_suite(a.models, a.dtype, a.device, a.prompt_len, a.new_tokens, a.prefill_len, a.repeats,
                              a.peers, a.out, cache_dir=a.cache_dir, merge=a.merge,
                              keep_checkpoints=not a.no_keep_checkpoints)
    failed = sum(bool(m.get("errors")) for m in result["models"])
    return 0 if failed < len(result["models"]) or not result["models"] else 1


if __name__ == "__main__":
    sys.exit(main())
