"""`braze compile -c EXPR` and `braze run -c EXPR`: a PyTorch call written on the command line.

EXPR is `MODULE(ARGS)`, e.g. `nn.RMSNorm(2048)(torch.randn(1, 32, 2048))`: the callee becomes the
module braze compiles, the arguments its example inputs (they fix the shapes). `torch`, `nn` and
`F` (torch.nn.functional) are in scope; a callee that is a plain function (`F.silu`) is wrapped
in a module.
"""
from __future__ import annotations

import ast

import torch

from braze.errors import InvalidArgumentError


class _Call(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def parse_expression(code: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """(module, example inputs) from `MODULE(ARGS)`."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError as e:
        raise InvalidArgumentError(f"-c {code!r} is not a Python expression: {e.msg}") from e
    call = tree.body
    if not isinstance(call, ast.Call) or call.keywords:
        raise InvalidArgumentError(f"-c {code!r}: write MODULE(ARGS), e.g. \"nn.RMSNorm(64)(torch.randn(2, 64))\"")
    scope = {"torch": torch, "nn": torch.nn, "F": torch.nn.functional}
    try:
        callee = eval(compile(ast.Expression(call.func), "<-c>", "eval"), scope)  # noqa: S307 (the user's own code)
        args = tuple(eval(compile(ast.Expression(a), "<-c>", "eval"), scope) for a in call.args)  # noqa: S307
    except Exception as e:  # noqa: BLE001  (whatever the user's expression raises, said in one line)
        raise InvalidArgumentError(f"-c {code!r} failed: {type(e).__name__}: {e}") from e
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        raise InvalidArgumentError(f"-c {code!r}: the arguments must be tensors (the example inputs)")
    module = (callee if isinstance(callee, torch.nn.Module) else _Call(callee)).eval()
    try:  # run it once as written, so a wrong shape is the user's error, not a tracing failure
        with torch.no_grad():
            module(*args)
    except Exception as e:  # noqa: BLE001
        raise InvalidArgumentError(f"-c {code!r} failed: {type(e).__name__}: {e}") from e
    return module, args

