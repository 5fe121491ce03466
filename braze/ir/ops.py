"""The Graph IR's operator set: what each op means (see interpret.py) and how its result type is inferred.

Shapes are tuples of dims; a dim is an int or a symbol name ("T" tokens in the step, "N" sequences
whose logits are wanted). Reductions always run over the last axis and keep it (size 1), which is
all a decoder LLM needs and keeps every kernel's loop nest simple.

Comparisons and the logical ops produce `bool` values (stored one byte each, 0 or 1; kernels
compute them as 0.0/1.0 like every other value); `where` selects by a bool condition.
"""
from __future__ import annotations

from typing import Callable

Dim = int | str
Shape = tuple[Dim, ...]

# int8 / uint8 / float8_e4m3fn hold quantized weights only (see braze/quant): computed values stay float
DTYPES = ("float32", "bfloat16", "float16", "int32", "int64", "bool", "int8", "uint8", "float8_e4m3fn")
FLOAT_DTYPES = ("float32", "bfloat16", "float16")
SHORT_DTYPE = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", "int32": "i32", "int64": "i64",
               "bool": "bool", "int8": "i8", "uint8": "u8", "float8_e4m3fn": "f8e4m3"}
LONG_DTYPE = {v: k for k, v in SHORT_DTYPE.items()}

UNARY_OPS = ("neg", "exp", "log", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid", "silu", "relu",
             "gelu", "cos", "sin", "abs", "square", "cast", "logical_not")
ARITHMETIC_OPS = ("add", "sub", "mul", "div", "maximum", "minimum", "pow")
COMPARE_OPS = ("eq", "ne", "lt", "le", "gt", "ge")  # same-dtype operands -> bool
LOGICAL_OPS = ("logical_and", "logical_or")  # bool, bool -> bool
BINARY_OPS = ARITHMETIC_OPS + COMPARE_OPS + LOGICAL_OPS
POINTWISE_OPS = UNARY_OPS + BINARY_OPS + ("where",)  # where(cond: bool, a, b) -> a's dtype
REDUCTION_OPS = ("sum", "max")
COMPOSITE_OPS = ("rms_norm", "softmax", "mean")  # removed by the decompose pass
VIEW_OPS = ("reshape", "transpose", "slice")
SOURCE_OPS = ("input", "weight", "constant")
LINEAR_OPS = ("linear", "quantized_linear")  # x [..., K] by a constant weight: matmul kernels
OTHER_OPS = ("matmul", "linear", "quantized_linear", "concat", "gather", "rope", "kv_store", "attention")
ALL_OPS = SOURCE_OPS + POINTWISE_OPS + REDUCTION_OPS + COMPOSITE_OPS + VIEW_OPS + OTHER_OPS


class ShapeError(ValueError):
    pass


def numel(shape: Shape, symbols: dict[str, int]) -> int:
    n = 1
    for d in shape:
        n *= symbols[d] if isinstance(d, str) else d
    return n


def broadcast(a: Shape, b: Shape) -> Shape:
    """Numpy broadcasting; symbols only match themselves or 1."""
    out = []
    for i in range(max(len(a), len(b))):
        da = a[len(a) - 1 - i] if i < len(a) else 1
        db = b[len(b) - 1 - i] if i < len(b) else 1
        if da == db or db == 1:
            out.append(da)
        elif da == 1:
            out.append(db)
        else:
            raise ShapeError(f"cannot broadcast {list(a)} with {list(b)}")
    return tuple(reversed(out))


def _axis(shape: Shape, axis: int) -> int:
    if not -len(shape) <= axis < len(shape):
        raise ShapeError(f"axis {axis} out of range for shape {list(shape)}")
    return axis % len(shape)


def _reshape(shapes, attrs):
    (src,), new = shapes, tuple(attrs["shape"])
    src_sym = sorted(d for d in src if isinstance(d, str))
    new_sym = sorted(d for d in new if isinstance(d, str))
    fixed = lambda s: numel(tuple(d for d in s if isinstance(d, int)), {})  # noqa: E731
    if src_sym != new_sym or fixed(src) != fixed(new):
        raise ShapeError(f"cannot reshape {list(src)} to {list(new)}")
    return new


def _transpose(shapes, attrs):
    (src,) = shapes
    perm = attrs.get("perm") or tuple(range(len(src) - 2)) + (len(src) - 1, len(src) - 2)
    if sorted(perm) != list(range(len(src))):
        raise ShapeError(f"bad permutation {perm} for shape {list(src)}")
    return tuple(src[p] for p in perm)


def _slice(shapes, attrs):
    (src,) = shapes
    axis = _axis(src, attrs["axis"])
    start, stop = attrs["start"], attrs["stop"]
    if isinstance(src[axis], str) or not 0 <= start < stop <= src[axis]:
        raise ShapeError(f"bad slice [{start}:{stop}] of axis {axis} in {list(src)}")
    return src[:axis] + (stop - start,) + src[axis + 1:]


def _concat(shapes, attrs):
    axis = _axis(shapes[0], attrs["axis"])
    total = 0
    for s in shapes:
        if len(s) != len(shapes[0]) or any(s[i] != shapes[0][i] for i in range(len(s)) if i != axis):
            raise ShapeError(f"cannot concat {[list(x) for x in shapes]} on axis {axis}")
        if isinstance(s[axis], str):
            raise ShapeError("concat along a symbolic axis is not supported")
        total += s[axis]
    return shapes[0][:axis] + (total,) + shapes[0][axis + 1:]


def _reduce(shapes, attrs):
    (src,) = shapes
    if attrs.get("axis", -1) not in (-1, len(src) - 1):
        raise ShapeError("reductions run over the last axis only")
    return src[:-1] + (1,)


def _matmul(shapes, attrs):
    """a [..., K] @ b [K, N] (a weight or a 2-d value), or batched: a [..., M, K] @ b [..., K, N]
    with the batch dims broadcast as numpy does (q @ k^T of an attention head)."""
    a, b = shapes
    if len(b) < 2 or a[-1] != b[-2] or (len(b) > 2 and len(a) < 2):
        raise ShapeError(f"matmul shapes {list(a)} @ {list(b)} do not agree")
    if len(b) == 2:
        return a[:-1] + (b[1],)
    return broadcast(a[:-2], b[:-2]) + (a[-2], b[-1])


def _linear(shapes, attrs):
    a, w = shapes
    if len(w) != 2 or a[-1] != w[1]:
        raise ShapeError(f"linear input {list(a)} does not match weight {list(w)} ([out, in])")
    return a[:-1] + (w[0],)


def _quantized_linear(shapes, attrs):
    """x [..., K] by a quantized weight [N, K] (braze/quant/formats.py defines the formats):
    packed [N, K] (int8, fp8) or [N, K/2] (int4, two per byte), scales [N, ceil(K/group)],
    optional mins of the scales' shape."""
    from braze.quant.formats import check_quantized_shapes
    x, packed, scales, *mins = shapes
    try:
        check_quantized_shapes(attrs["format"], attrs["group"], x[-1], packed, scales, mins[0] if mins else None)
    except ValueError as e:
        raise ShapeError(str(e)) from None
    return x[:-1] + (packed[0],)


def _gather(shapes, attrs):
    table, idx = shapes
    if len(idx) != 1 or len(table) != 2:
        raise ShapeError(f"gather needs a [rows, cols] table and [n] indices, got {list(table)}, {list(idx)}")
    return (idx[0], table[1])


def _rope(shapes, attrs):
    """attrs: head_dim; rotary_heads (optional): only the first that many heads rotate, the rest
    pass through unchanged (one rope over a fused q|k|v rotates q and k and carries v along)."""
    x, pos, cos, sin = shapes
    half = attrs["head_dim"] // 2
    if x[-1] % attrs["head_dim"] or cos[-1] != half or sin != cos or pos != x[:1]:
        raise ShapeError(f"rope shapes x={list(x)} positions={list(pos)} cos={list(cos)} do not agree")
    rotary = attrs.get("rotary_heads")
    if rotary is not None and not 0 <= rotary <= x[-1] // attrs["head_dim"]:
        raise ShapeError(f"rope rotary_heads={rotary} outside 0..{x[-1] // attrs['head_dim']} heads")
    return x


def _block_table(shapes, first_optional: int, op: str) -> None:
    """The optional last operand of kv_store/attention: a paged cache's block table [S, blocks per
    sequence]; token t's cache row p lives in block table[slots[t], p // B] at row p % B."""
    if not first_optional <= len(shapes) <= first_optional + 1:
        raise ShapeError(f"{op} takes {first_optional} inputs, or {first_optional + 1} with a block table, "
                         f"got {len(shapes)}")
    if len(shapes) > first_optional and len(shapes[-1]) != 2:
        raise ShapeError(f"{op} block table {list(shapes[-1])} should be [sequences, blocks per sequence]")


def _kv_store(shapes, attrs):
    _block_table(shapes, 4, "kv_store")
    cache, x, slots, pos = shapes[:4]
    if len(cache) != 4 or x[-1] != cache[1] * cache[3] or slots != pos or slots != x[:1]:
        raise ShapeError(f"kv_store shapes cache={list(cache)} x={list(x)} do not agree")
    return cache


def _attention(shapes, attrs):
    _block_table(shapes, 5, "attention")
    q, kc, vc, slots, pos = shapes[:5]
    h, hkv, d = attrs["num_heads"], attrs["num_kv_heads"], attrs["head_dim"]
    if q[-1] != h * d or kc != vc or kc[1] != hkv or kc[3] != d or h % hkv or slots != q[:1]:
        raise ShapeError(f"attention shapes q={list(q)} cache={list(kc)} do not agree with {h}/{hkv} heads of {d}")
    return q


def _same(shapes, attrs):
    return shapes[0]


def _binary(shapes, attrs):
    return broadcast(shapes[0], shapes[1])


def _where(shapes, attrs):
    return broadcast(broadcast(shapes[0], shapes[1]), shapes[2])


# op -> (number of inputs or None for variadic, shape rule)
SHAPE_RULES: dict[str, tuple[int | None, Callable]] = {
    **{op: (1, _same) for op in UNARY_OPS},
    **{op: (2, _binary) for op in BINARY_OPS},
    "where": (3, _where),
    **{op: (1, _reduce) for op in REDUCTION_OPS + ("mean",)},
    "softmax": (1, _same),
    "rms_norm": (2, lambda s, a: broadcast(s[0], s[1])),
    "reshape": (1, _reshape),
    "transpose": (1, _transpose),
    "slice": (1, _slice),
    "concat": (None, _concat),
    "matmul": (2, _matmul),
    "linear": (2, _linear),
    "quantized_linear": (None, _quantized_linear),
    "gather": (2, _gather),
    "rope": (4, _rope),
    "kv_store": (None, _kv_store),  # + an optional block table (a paged cache)
    "attention": (None, _attention),
}


def result_dtype(op: str, dtypes: list[str], attrs: dict) -> str:
    if op == "cast":
        return attrs["dtype"]
    if op in LOGICAL_OPS + ("logical_not",) and any(d != "bool" for d in dtypes):
        raise ShapeError(f"{op} takes bool operands, got {', '.join(dtypes)}")
    if op == "where":
        if dtypes[0] != "bool" or dtypes[1] != dtypes[2]:
            raise ShapeError(f"where takes a bool condition and two values of one dtype, got {', '.join(dtypes)}")
        return dtypes[1]
    if op == "gather":
        return dtypes[0]
    if op in ("kv_store", "attention") and len(dtypes) == (5 if op == "kv_store" else 6) \
            and dtypes[-1] not in ("int32", "int64"):
        raise ShapeError(f"{op} block table is {dtypes[-1]}; it holds block ids (int32 or int64)")
    if op in ("rope", "kv_store", "attention", "linear", "matmul", "rms_norm", "quantized_linear"):
        return dtypes[0]
    if len(dtypes) == 2 and dtypes[0] != dtypes[1]:
        raise ShapeError(f"{op} mixes {dtypes[0]} and {dtypes[1]}; insert a cast")
    return "bool" if op in COMPARE_OPS else dtypes[0]


def infer(op: str, shapes: list[Shape], dtypes: list[str], attrs: dict) -> tuple[Shape, str]:
    if op not in SHAPE_RULES:
        raise ShapeError(f"unknown op {op!r}")
    arity, rule = SHAPE_RULES[op]
    if arity is not None and len(shapes) != arity:
        raise ShapeError(f"{op} takes {arity} inputs, got {len(shapes)}")
    return tuple(rule(shapes, attrs)), result_dtype(op, dtypes, attrs)
