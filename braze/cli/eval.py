"""`braze eval ppl`: perplexity over a text file (and, with --quant, KL and top-1 agreement against
the unquantized model)."""
from __future__ import annotations

import json
from pathlib import Path


def add_eval_parser(sub, model_args) -> None:
    p = sub.add_parser("eval", help="evaluate a model: `braze eval ppl --text FILE`")
    p.add_argument("task", choices=["ppl"], help="ppl: perplexity over --text")
    model_args(p)
    p.add_argument("--text", required=True, help="a UTF-8 text file to score")
    p.add_argument("--window", type=int, default=512, help="tokens per scored window (the context)")
    p.add_argument("--stride", type=int, default=None, help="new tokens per window (default: window / 2)")
    p.add_argument("--calib", help="AWQ calibration text file")
    p.add_argument("--json", action="store_true", help="print one JSON line")


def run_eval(args) -> int:
    from braze.api import default_device
    from braze.errors import InvalidArgumentError
    from braze.quant.evaluate import perplexity

    path = Path(args.text)
    if not path.is_file():
        raise InvalidArgumentError(f"no such text file: {path}")
    calib = Path(args.calib).read_text(encoding="utf-8") if args.calib else None
    result = perplexity(args.model, path.read_text(encoding="utf-8"), quant=args.quant,
                        device=args.device or default_device(), dtype=args.dtype, window=args.window,
                        stride=args.stride, calibration_text=calib)
    if args.json:
        print(json.dumps(result))
    else:
        extra = (f"  (unquantized {result['base_ppl']:.3f}, KL {result['kl']:.4f}, top-1 {result['top1']:.3f})"
                 if "kl" in result else "")
        print(f"perplexity {result['ppl']:.3f} over {result['tokens']} tokens, method {result['method']}, "
              f"{result['bits_per_weight']} bits per weight{extra}")
    return 0
