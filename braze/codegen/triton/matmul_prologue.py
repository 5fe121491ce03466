"""A matmul prologue factored for the one-pass GEMV (matmul.py): A[m, k] = scale(m) * rest(m, k)."""
from __future__ import annotations

from braze.ir.kernel import Expr


def factor_row_scale(prologue: Expr) -> tuple[Expr, Expr] | None:
    """Split A[m, k] = scale(m) * rest(m, k) when the prologue is a product whose factors are either
    row-only (reductions and constants: RMSNorm's rsqrt) or reduction-free; None otherwise.

    The scale then moves past the dot product (acc * scale), so the GEMV computes the reductions in
    the same pass over K as the product instead of a pass before it. Casts between the factors are
    looked through: the bf16 rounding of x * rsqrt(...) is skipped (the result is closer to exact,
    as Inductor's fused upcasts are).
    """
    factors: list[Expr] = []

    def flatten(e: Expr) -> None:
        if e.op == "cast":
            flatten(e.args[0])
        elif e.op == "mul":
            flatten(e.args[0])
            flatten(e.args[1])
        else:
            factors.append(e)
    flatten(prologue)
    scale, rest = [], []
    for f in factors:
        ops = {x.op for x in f.walk()}
        if "rowred" in ops and "load" in ops:
            return None
        (scale if "rowred" in ops else rest).append(f)
    if not scale or not rest:
        return None

    def product(fs: list[Expr]) -> Expr:
        out = fs[0]
        for f in fs[1:]:
            out = Expr("mul", (out, f))
        return out
    return product(scale), product(rest)
