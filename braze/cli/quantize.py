"""`braze quantize`: write a quantized model folder that braze loads back (docs/quantization.md)."""
from __future__ import annotations

import json
from pathlib import Path


def add_quantize_parser(sub, model_args) -> None:
    p = sub.add_parser("quantize", help="quantize a model's linear weights into a folder braze loads back")
    p.add_argument("--model", default="smollm2", help="HF checkpoint folder, .gguf file, or an embedded model name")
    p.add_argument("--method", required=True, help="int8, int4-rtn-g128, int4-awq-g128, int4-rtn-g128-sym, fp8, gguf")
    p.add_argument("--calib", help="calibration text file for AWQ (default: a built-in English text)")
    p.add_argument("--out", required=True, help="the folder to write (must be empty or new, unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out")


def run_quantize(args) -> int:
    from braze.errors import InvalidArgumentError
    from braze.frontend import load_model
    from braze.quant.prepare import save_quantized

    calib = None
    if args.calib:
        path = Path(args.calib)
        if not path.is_file():
            raise InvalidArgumentError(f"no such calibration file: {path}")
        calib = path.read_text(encoding="utf-8")
    config = save_quantized(load_model(args.model), args.method, args.out, calib, force=args.force)
    print(json.dumps({"out": str(args.out), "method": config["method"], "tensors": len(config["tensors"])}))
    return 0
