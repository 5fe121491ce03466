"""Quantization quality table (llama.cpp's style): method, bits per weight, size, perplexity, KL
divergence against the unquantized model, top-1 agreement, on one device.

    python -m braze.bench.quant_table --text tests/data/english_eval.txt --out bench/results/quant-cpu.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

METHODS = ("int8", "int4-rtn-g128", "int4-awq-g128", "int4-rtn-g64", "int4-awq-g64", "gguf")


def run(model: str, text_path: str, out: str, methods=METHODS, device: str = "cpu", dtype: str = "float32",
        window: int = 512, stride: int = 512, max_tokens: int | None = None) -> dict:
    import torch

    from braze.quant.evaluate import perplexities

    text = Path(text_path).read_text(encoding="utf-8")
    start = time.perf_counter()
    rows = perplexities(model, text, [None, *methods], device=device, dtype=dtype, window=window, stride=stride,
                        max_tokens=max_tokens)
    result = {"model": model, "text": str(text_path), "device": device if device == "cpu" else
              torch.cuda.get_device_name(), "dtype": dtype, "threads": torch.get_num_threads(),
              "seconds": round(time.perf_counter() - start, 1), "rows": rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{model} on {result['device']}: {rows[0]['tokens']} tokens of {text_path}, windows of {window}")
    print(f"{'method':<16}{'bits/w':>8}{'size MiB':>10}{'ppl':>9}{'d ppl %':>9}{'KL':>9}{'top-1':>8}")
    base = rows[0]["ppl"]
    for r in rows:
        kl = f"{r['kl']:.4f}" if "kl" in r else "-"
        top1 = f"{r['top1']:.3f}" if "top1" in r else "-"
        print(f"{r['method']:<16}{r['bits_per_weight']:>8.3f}{r['weight_bytes'] / 2**20:>10.1f}{r['ppl']:>9.3f}"
              f"{100 * (r['ppl'] / base - 1):>9.2f}{kl:>9}{top1:>8}")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="quantization quality table (perplexity, KL, top-1)")
    p.add_argument("--model", default="smollm2")
    p.add_argument("--text", default="tests/data/english_eval.txt")
    p.add_argument("--out", default="bench/results/quant-cpu.json")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--stride", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=None)
    a = p.parse_args(argv)
    run(a.model, a.text, a.out, tuple(m for m in a.methods.split(",") if m), a.device, a.dtype, a.window, a.stride,
        a.max_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
