"""`braze run -c EXPR [--bench]`: a PyTorch call through braze, checked against eager, optionally timed
against eager and torch.compile in the same process."""
from __future__ import annotations

import json

import torch
from rich.console import Console
from rich.table import Table

from braze.bench.suite.peers import median_seconds
from braze.cli.expression import parse_expression


def run_expression(args) -> int:
    from braze.api import default_device
    from braze.module_compiler import compile_module

    device = args.device or default_device()
    module, inputs = parse_expression(args.code)
    module, inputs = module.to(device), tuple(x.to(device) for x in inputs)
    fast = compile_module(module, *inputs, device=device)
    with torch.no_grad():
        got, want = fast(*inputs), module(*inputs)
    got, want = (got,) if isinstance(got, torch.Tensor) else got, (want,) if isinstance(want, torch.Tensor) else want
    error = max(float((g.float() - w.float()).abs().max()) for g, w in zip(got, want))
    scale = max(float(w.float().abs().max()) for w in want) or 1.0
    result = {"code": args.code, "device": device, "kernels": len(fast.program.kernels), "max_abs_error": error,
              "max_rel_error": error / scale}
    if args.bench:
        compiled = torch.compile(module)
        with torch.no_grad():
            for key, fn in (("braze_us", fast), ("eager_us", module), ("compile_us", compiled)):
                result[key] = 1e6 * median_seconds(lambda fn=fn: fn(*inputs), device, args.repeats, warmup=5)
        table = Table(title=f"{args.code} on {device} (median of {args.repeats})")
        for col in ("", "braze", "eager", "torch.compile", "braze vs eager", "braze vs compile"):
            table.add_column(col, justify="right")
        table.add_row("us", f"{result['braze_us']:.1f}", f"{result['eager_us']:.1f}", f"{result['compile_us']:.1f}",
                      f"{result['eager_us'] / result['braze_us']:.2f}x",
                      f"{result['compile_us'] / result['braze_us']:.2f}x")
        Console().print(table)
    print(json.dumps(result))
    return 0
