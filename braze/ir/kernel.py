"""Kernel IR: a Program is a list of kernels over named buffers, plus a memory plan.

A kernel has one anchor (its `kind`) and fused expression DAGs around it. Expressions compute in
float32 and read operands through Views (buffer + element strides + offset), so slices, reshapes,
transposes and broadcasts of a tensor cost nothing: they are just another view.

Kinds and what their expressions mean (`dom` = the kernel's iteration domain):
  pointwise  dom = output.shape.  output[i] = expr(i); every operand view has shape dom.
  reduction  dom = the reduced input's shape [..., C].  For each row r (all but the last axis):
             red_j[r] = fold(op_j, expr_j(r, c) for c in C)   (op_j in sum, max)
             output[r, c] = expr(r, c)  (output.shape == dom) or output[r, 0] = expr(r)
             (output.shape == dom[:-1] + (1,)); `rowred` j reads red_j[r].
  matmul     dom = [M, N], contraction K.  operands[attrs.weight] is B viewed [N, K].
             A[m, k] = prologue(m, k) (views shaped [M, K]; `rowred` reads reductions over k,
             computed first: this is how RMSNorm fuses into the matmul that consumes it)
             output[m, n] = expr(m, n) with `acc` = sum_k A[m, k] * B[n, k] (views shaped [M, N]).
  gather     output[i, :] = operands[0][operands[1][i], :]                      (embedding rows)
  rope       output = rotate-half RoPE of operands[0] [T, F] at positions operands[1], tables
             operands[2] (cos) and operands[3] (sin) [C, head_dim/2]; attrs head_dim.
  kv_store   output (a state buffer [S, Hkv, C, D]) rows [slots[t], :, positions[t], :] = x[t]
             for operands x [T, Hkv*D], slots [T], positions [T].
  attention  output[t] = softmax(q[t] K^T * scale) V over cache rows 0..positions[t] of slot
             slots[t]; operands q [T, H*D], k_cache, v_cache, slots, positions; attrs num_heads,
             num_kv_heads, head_dim, scale.
  RoPE fused into its readers: a kv_store or attention with attr rope_heads = R (and rope_head_dim)
             rotates the first R heads of x (kv_store) or q (attention) at positions[t] as it reads
             them, with the tables [C, head_dim/2] as its last two operands (cos, then sin): the rope
             kernel and its [T, F] intermediate are gone (see `fused_rope`).
  Decode rows: a kv_store with attr decode_rows_by = A and the attention A (attr decode_rows_of)
             that reads its cache are a pair whose kv_store a backend may skip on a step where every
             token is its sequence's only new one, A then writing those rows (braze/passes/
             decode_rows.py). The tags change no semantics: both kernels mean what they say above.
  batch_matmul  output[*b, m, n] = sum_k A[*b, m, k] * B[*b, k, n] (float32 accumulation) for
             operands A, B viewed with the output's batch dims (broadcast dims have stride 0):
             two activations, e.g. an attention's q @ k^T and probs @ v.

Comparisons and logical ops give 1.0 (true) or 0.0 (false); `where` picks its second argument
where the first is non-zero, else its third.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

from braze.ir.ops import Shape, SHORT_DTYPE

KERNEL_KINDS = ("pointwise", "reduction", "matmul", "gather", "rope", "kv_store", "attention", "batch_matmul")
EXPR_OPS = ("load", "const", "acc", "rowred", "cast",
            "neg", "exp", "log", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid", "silu", "relu",
            "gelu", "cos", "sin", "abs", "square", "logical_not",
            "add", "sub", "mul", "div", "maximum", "minimum", "pow",
            "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "where")


@dataclass(frozen=True, eq=False)
class Expr:
    """A scalar expression evaluated per element of a kernel's domain (float32 arithmetic).

    load: value = operand index; const: value = the number; acc: the matmul's dot product;
    rowred: value = reduction index; cast: value = dtype (rounds to that dtype and back to f32).
    """

    op: str
    args: tuple["Expr", ...] = ()
    value: Any = None

    def walk(self):
        seen, order = set(), []

        def visit(e):
            if id(e) in seen:
                return
            seen.add(id(e))
            for a in e.args:
                visit(a)
            order.append(e)
        visit(self)
        return order


@dataclass(frozen=True)
class Buffer:
    """A tensor the program reads or writes. kind: input | weight | state | temp.

    state buffers are inputs the program updates in place (the KV cache); temps live in the arena.
    """

    name: str
    shape: Shape
    dtype: str
    kind: str


@dataclass(frozen=True)
class View:
    buffer: str
    shape: Shape
    strides: tuple[int, ...]
    offset: int = 0

    def __str__(self) -> str:
        strides = ", ".join(map(str, self.strides))
        off = f"+{self.offset}" if self.offset else ""
        return f"{self.buffer}{off}[{', '.join(map(str, self.shape))}; {strides}]"


@dataclass(frozen=True)
class Kernel:
    name: str
    kind: str
    operands: tuple[View, ...]
    output: View
    expr: Expr | None = None
    prologue: Expr | None = None
    reductions: tuple[tuple[str, Expr], ...] = ()
    attrs: tuple[tuple[str, Any], ...] = ()
    sources: tuple[str, ...] = ()  # the graph ops fused into this kernel, for explain/debug

    def attr(self, name: str, default: Any = None) -> Any:
        return dict(self.attrs).get(name, default)


def without_attrs(program: Program, names) -> Program:
    """The program with attrs `names` dropped from every kernel (tags that a backend may ignore)."""
    names = frozenset(names)

    def strip(k: Kernel) -> Kernel:
        if not any(key in names for key, _ in k.attrs):
            return k
        return replace(k, attrs=tuple(kv for kv in k.attrs if kv[0] not in names))
    return replace(program, kernels=tuple(strip(k) for k in program.kernels))


def fused_rope(k: Kernel) -> tuple[tuple[View, ...], tuple[View, View] | None]:
    """A kv_store's or attention's own operands, and the (cos, sin) tables of a RoPE fused into it
    (None when there is none): the tables come last, after the optional block table."""
    if k.attr("rope_heads") is None:
        return k.operands, None
    return k.operands[:-2], (k.operands[-2], k.operands[-1])


@dataclass(frozen=True)
class MemoryPlan:
    offsets: Mapping[str, int]  # temp buffer -> byte offset in the arena
    arena_bytes: int  # peak bytes of intermediates at the symbols' upper bounds
    naive_bytes: int  # what one allocation per temp would take


@dataclass(frozen=True)
class Program:
    kernels: tuple[Kernel, ...]
    buffers: tuple[Buffer, ...]
    outputs: tuple[tuple[str, str], ...]  # graph output name -> buffer name
    weights: Mapping[str, Any] = field(default_factory=dict)
    symbols: Mapping[str, int] = field(default_factory=dict)
    plan: MemoryPlan | None = None
    name: str = "program"

    def __post_init__(self):
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        object.__setattr__(self, "symbols", MappingProxyType(dict(self.symbols)))

    def buffer(self, name: str) -> Buffer:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(name)

    def __str__(self) -> str:
        from braze.ir.kernel_print import print_program
        return print_program(self)


def dtype_tag(dtype: str) -> str:
    return SHORT_DTYPE[dtype]
