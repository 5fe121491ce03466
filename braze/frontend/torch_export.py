"""torch.export frontend: an ExportedProgram (ATen ops) into Graph IR.

    graph = import_exported(torch.export.export(module, (x,)))

Parameters and buffers become weights, user inputs become inputs (the example's static shapes),
the program's outputs become `out0`, `out1`, ... Each ATen op is rewritten as the Graph IR ops
that mean the same thing (linear over [B, T, C] as a 2-d linear between reshapes, layer_norm from
means and rsqrt, ...); an op with no rule is an UnsupportedOpError that names it and lists the
supported ones. `SUPPORTED_OPS` is the table docs/ops list is generated from.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Callable

import torch

from braze.errors import BrazeError
from braze.ir.builder import GraphBuilder
from braze.ir.graph import Graph, Node, make
from braze.ir.ops import ShapeError

aten = torch.ops.aten

DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16",
               torch.int32: "int32", torch.int64: "int64"}


class UnsupportedOpError(BrazeError):
    """An ATen op (or a form of one) that the torch.export frontend has no rule for."""


class _Importer:
    def __init__(self, builder: GraphBuilder):
        self.b = builder
        self.constants = 0

    # -- helpers --------------------------------------------------------------------------------
    def const(self, value: float, like: Node) -> Node:
        return make("constant", shape=(), dtype=like.dtype, value=float(value))

    def operand(self, x, like: Node) -> Node:
        return x if isinstance(x, Node) else self.const(x, like)

    def binary(self, op: str, a, b) -> Node:
        like = a if isinstance(a, Node) else b
        return make(op, (self.operand(a, like), self.operand(b, like)))

    def last_axis(self, x: Node, dims, what: str) -> None:
        dims = [dims] if isinstance(dims, int) else list(dims)
        if len(dims) != 1 or dims[0] % len(x.shape) != len(x.shape) - 1:
            raise UnsupportedOpError(f"{what} over dims {dims} of a {len(x.shape)}-d tensor: braze reduces the "
                                     "last dim only")

    def keepdim(self, reduced: Node, x: Node, keepdim: bool) -> Node:
        return reduced if keepdim else make("reshape", (reduced,), shape=x.shape[:-1])

    def linear(self, x: Node, w: Node, bias: Node | None) -> Node:
        flat = x if len(x.shape) == 2 else make("reshape", (x,), shape=(math.prod(x.shape[:-1]), x.shape[-1]))
        y = make("matmul", (flat, make("transpose", (w,))))
        if len(x.shape) != 2:
            y = make("reshape", (y,), shape=x.shape[:-1] + (w.shape[0],))
        return make("add", (y, bias)) if bias is not None else y

    # -- composites written with Graph IR ops ---------------------------------------------------
    def layer_norm(self, x: Node, shape, w: Node | None, bias: Node | None, eps: float) -> tuple[Node, Node, Node]:
        """(normalised x, mean, rstd): aten.native_layer_norm's three results."""
        if list(shape) != [x.shape[-1]]:
            raise UnsupportedOpError(f"layer_norm over {list(shape)}: braze normalises the last dim only")
        mean = make("mean", (x,))
        centered = make("sub", (x, mean))
        rstd = make("rsqrt", (make("add", (make("mean", (make("mul", (centered, centered)),)), self.const(eps, x))),))
        y = make("mul", (centered, rstd))
        y = make("mul", (y, w)) if w is not None else y
        return (make("add", (y, bias)) if bias is not None else y), mean, rstd

    def gelu(self, x: Node, approximate: str = "none") -> Node:
        if approximate == "none":
            return make("gelu", (x,))
        inner = self.binary("mul", self.binary("add", x, self.binary("mul", make("mul", (make("mul", (x, x)), x)),
                                                                        0.044715)), math.sqrt(2 / math.pi))
        return self.binary("mul", self.binary("mul", x, 0.5), self.binary("add", make("tanh", (inner,)), 1.0))

    def softmax(self, x: Node, dim: int) -> Node:
        self.last_axis(x, dim, "softmax")
        return make("softmax", (x,))

    def slice(self, x: Node, dim: int, start=None, end=None, step=1) -> Node:
        axis = dim % len(x.shape)
        size = x.shape[axis]
        start, end = start or 0, size if end is None else min(end, size)
        start, end = start % size if start < 0 else start, end % size if end < 0 else end
        if step != 1:
            raise UnsupportedOpError(f"slice with step {step}: braze slices take step 1")
        return x if (start, end) == (0, size) else make("slice", (x,), axis=axis, start=start, stop=end)

    def reshape(self, x: Node, shape) -> Node:
        shape = list(shape)
        if -1 in shape:
            known = math.prod(d for d in shape if d != -1)
            shape[shape.index(-1)] = math.prod(x.shape) // known
        return x if tuple(shape) == x.shape else make("reshape", (x,), shape=tuple(shape))

    def permute(self, x: Node, dims) -> Node:
        dims = tuple(d % len(x.shape) for d in dims)
        return x if dims == tuple(range(len(dims))) else make("transpose", (x,), perm=dims)

    def swap(self, x: Node, a: int, c: int) -> Node:
        perm = list(range(len(x.shape)))
        perm[a % len(perm)], perm[c % len(perm)] = perm[c % len(perm)], perm[a % len(perm)]
        return self.permute(x, perm)

    def embedding(self, table: Node, idx: Node) -> Node:
        flat = idx if len(idx.shape) == 1 else make("reshape", (idx,), shape=(math.prod(idx.shape),))
        rows = make("gather", (table, flat))
        return rows if len(idx.shape) == 1 else make("reshape", (rows,), shape=idx.shape + (table.shape[1],))

    def cast(self, x: Node, dtype: torch.dtype | None) -> Node:
        if dtype is None or dtype not in DTYPE_NAMES:
            return x
        return self.b.cast(x, DTYPE_NAMES[dtype])

    def expand(self, x: Node, sizes) -> Node:
        """Broadcast to `sizes` as x * ones: the ones weight has the new sizes where x has 1s."""
        sizes = list(sizes)
        lead = len(sizes) - len(x.shape)
        src = (1,) * lead + x.shape
        target = tuple(src[i] if sizes[i] == -1 else sizes[i] for i in range(len(sizes)))
        if lead:
            x = make("reshape", (x,), shape=src)
        if target == src:
            return x
        self.constants += 1
        ones = torch.ones(tuple(t if d == 1 else 1 for t, d in zip(target, src)), dtype=getattr(torch, x.dtype))
        return make("mul", (x, self.b.weight(f"expand{self.constants}.ones", ones)))

    def sdpa(self, q: Node, k: Node, v: Node, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
             scale: float | None = None, enable_gqa: bool = False) -> Node:
        """scaled_dot_product_attention as braze's attention op: batch b is cache slot b, query t of a
        causal call sees keys 0..t, of a full one all keys. q [B, H, T, D], k and v [B, Hkv, S, D]."""
        if attn_mask is not None or dropout_p:
            raise UnsupportedOpError("scaled_dot_product_attention with a mask or dropout: braze takes causal or "
                                     "full attention")
        if len(q.shape) != 4 or len(k.shape) != 4 or k.shape != v.shape or q.shape[0] != k.shape[0] \
                or q.shape[3] != k.shape[3] or q.shape[1] % k.shape[1]:
            raise UnsupportedOpError(f"scaled_dot_product_attention of q {list(q.shape)}, k {list(k.shape)}, "
                                     f"v {list(v.shape)}: braze takes [B, H, T, D] with H a multiple of k's heads")
        batch, heads, t, d = q.shape
        keys = k.shape[2]
        if is_causal and t != keys:
            raise UnsupportedOpError(f"causal attention of {t} queries over {keys} keys: braze takes equal lengths")
        self.constants += 1
        slots = torch.arange(batch).repeat_interleave(t)
        positions = torch.arange(t).repeat(batch) if is_causal else torch.full((batch * t,), keys - 1)
        slots = self.b.weight(f"sdpa{self.constants}.slots", slots)
        positions = self.b.weight(f"sdpa{self.constants}.positions", positions)
        rows = make("reshape", (self.permute(q, (0, 2, 1, 3)),), shape=(batch * t, heads * d))
        out = make("attention", (rows, k, v, slots, positions), num_heads=heads, num_kv_heads=k.shape[1],
                   head_dim=d, scale=float(scale if scale is not None else 1 / math.sqrt(d)))
        return self.permute(make("reshape", (out,), shape=(batch, t, heads, d)), (0, 2, 1, 3))

    def reduce(self, op: str, x: Node, dims, keepdim: bool = False) -> Node:
        self.last_axis(x, dims, op)
        return self.keepdim(make(op, (x,)), x, keepdim)


def _rules(im: _Importer) -> dict[Any, Callable]:
    unary = {aten.neg.default: "neg", aten.exp.default: "exp", aten.log.default: "log", aten.sqrt.default: "sqrt",
             aten.rsqrt.default: "rsqrt", aten.reciprocal.default: "reciprocal", aten.tanh.default: "tanh",
             aten.sigmoid.default: "sigmoid", aten.silu.default: "silu", aten.relu.default: "relu",
             aten.cos.default: "cos", aten.sin.default: "sin", aten.abs.default: "abs"}
    binary = {aten.add.Tensor: "add", aten.sub.Tensor: "sub", aten.mul.Tensor: "mul", aten.div.Tensor: "div",
              aten.maximum.default: "maximum", aten.minimum.default: "minimum", aten.pow.Tensor_Scalar: "pow",
              aten.pow.Tensor_Tensor: "pow", aten.add.Scalar: "add", aten.sub.Scalar: "sub",
              aten.mul.Scalar: "mul", aten.div.Scalar: "div"}
    rules: dict[Any, Callable] = {op: (lambda x, name=name: make(name, (x,))) for op, name in unary.items()}
    rules.update({op: (lambda a, b, alpha=1, name=name: im.binary(name, a, b if alpha == 1 else im.binary("mul", b, alpha)))
                  for op, name in binary.items()})
    rules.update({
        aten.rsub.Scalar: lambda a, b, alpha=1: im.binary("sub", b, a if alpha == 1 else im.binary("mul", a, alpha)),
        aten.square.default: lambda x: make("mul", (x, x)),
        aten.gelu.default: lambda x, approximate="none": im.gelu(x, approximate),
        aten.linear.default: lambda x, w, bias=None: im.linear(x, w, bias),
        aten.matmul.default: lambda a, b: make("matmul", (a, b)),
        aten.mm.default: lambda a, b: make("matmul", (a, b)),
        aten.addmm.default: lambda bias, a, b: make("add", (make("matmul", (a, b)), bias)),
        aten.t.default: lambda x: make("transpose", (x,)),
        aten.transpose.int: lambda x, a, c: im.swap(x, a, c),
        aten.permute.default: lambda x, dims: im.permute(x, dims),
        aten.view.default: lambda x, shape: im.reshape(x, shape),
        aten.reshape.default: lambda x, shape: im.reshape(x, shape),
        aten._unsafe_view.default: lambda x, shape: im.reshape(x, shape),
        aten.flatten.using_ints: lambda x, a=0, c=-1: im.reshape(
            x, x.shape[:a % len(x.shape)] + (math.prod(x.shape[a % len(x.shape):c % len(x.shape) + 1]),)
            + x.shape[c % len(x.shape) + 1:]),
        aten.unsqueeze.default: lambda x, d: im.reshape(
            x, x.shape[:d % (len(x.shape) + 1)] + (1,) + x.shape[d % (len(x.shape) + 1):]),
        aten.squeeze.dim: lambda x, d: im.reshape(x, x.shape[:d % len(x.shape)] + x.shape[d % len(x.shape) + 1:])
        if x.shape[d % len(x.shape)] == 1 else x,
        aten.contiguous.default: lambda x, memory_format=None: x,
        aten.clone.default: lambda x, memory_format=None: x,
        aten.alias.default: lambda x: x,
        # export's check that a cast's input has the traced dtype: shapes and dtypes are static here
        aten._assert_tensor_metadata.default: lambda *args, **kwargs: None,
        aten.detach.default: lambda x: x,
        aten.dropout.default: lambda x, p, train: x if not (train and p) else _refuse("dropout in training mode"),
        aten.slice.Tensor: lambda x, dim=0, start=None, end=None, step=1: im.slice(x, dim, start, end, step),
        aten.narrow.default: lambda x, dim, start, length: im.slice(x, dim, start, start + length),
        aten.select.int: lambda x, dim, index: im.reshape(
            im.slice(x, dim, index, index + 1), x.shape[:dim % len(x.shape)] + x.shape[dim % len(x.shape) + 1:]),
        aten.cat.default: lambda xs, dim=0: make("concat", tuple(xs), axis=dim % len(xs[0].shape)),
        aten.split.Tensor: lambda x, size, dim=0: [im.slice(x, dim, s, s + size)
                                                   for s in range(0, x.shape[dim % len(x.shape)], size)],
        aten.split_with_sizes.default: lambda x, sizes, dim=0: [
            im.slice(x, dim, sum(sizes[:i]), sum(sizes[:i + 1])) for i in range(len(sizes))],
        aten.chunk.default: lambda x, n, dim=0: [
            im.slice(x, dim, s, s + -(-x.shape[dim % len(x.shape)] // n))
            for s in range(0, x.shape[dim % len(x.shape)], -(-x.shape[dim % len(x.shape)] // n))],
        aten.embedding.default: lambda table, idx, *rest: im.embedding(table, idx),
        aten.sum.dim_IntList: lambda x, dims, keepdim=False, dtype=None: im.reduce("sum", x, dims, keepdim),
        aten.mean.dim: lambda x, dims, keepdim=False, dtype=None: im.reduce("mean", x, dims, keepdim),
        aten.amax.default: lambda x, dims, keepdim=False: im.reduce("max", x, dims, keepdim),
        aten.softmax.int: lambda x, dim, dtype=None: im.softmax(x, dim),
        aten._softmax.default: lambda x, dim, half_to_float: im.softmax(x, dim),
        aten.rms_norm.default: lambda x, shape, w=None, eps=None: _rms_norm(im, x, shape, w, eps),
        aten.layer_norm.default: lambda x, shape, w=None, bias=None, eps=1e-5, cudnn=False:
            im.layer_norm(x, shape, w, bias, eps)[0],
        aten.native_layer_norm.default: lambda x, shape, w, bias, eps: im.layer_norm(x, shape, w, bias, eps),
        aten.to.dtype: lambda x, dtype, *rest, **kw: im.cast(x, dtype),
        aten._to_copy.default: lambda x, dtype=None, **kw: im.cast(x, dtype),
        aten.expand.default: lambda x, sizes, implicit=False: im.expand(x, sizes),
        aten.scaled_dot_product_attention.default: im.sdpa,
        # the forms aot_autograd leaves (their extra results, the log-sum-exp, are not computed)
        aten._scaled_dot_product_flash_attention_for_cpu.default:
            lambda q, k, v, dropout_p=0.0, is_causal=False, attn_mask=None, scale=None:
            (im.sdpa(q, k, v, attn_mask, dropout_p, is_causal, scale), None),
        operator.getitem: lambda xs, i: _item(xs, i),
    })
    return rules


def _refuse(what: str):
    raise UnsupportedOpError(f"{what}: braze compiles inference (call module.eval())")


def _item(values, i: int):
    if values[i] is None:
        raise UnsupportedOpError(f"result {i} of an op that braze computes only result 0 of")
    return values[i]


def _rms_norm(im: _Importer, x: Node, shape, w: Node | None, eps: float | None) -> Node:
    if list(shape) != [x.shape[-1]]:
        raise UnsupportedOpError(f"rms_norm over {list(shape)}: braze normalises the last dim only")
    eps = torch.finfo(getattr(torch, x.dtype)).eps if eps is None else eps
    if w is None:
        w = make("constant", shape=(), dtype=x.dtype, value=1.0)
    return make("rms_norm", (x, w), eps=float(eps))


def supported_ops() -> list[str]:
    """Every ATen overload the frontend has a rule for (the generated docs table)."""
    return sorted(str(op) for op in _rules(_Importer(GraphBuilder())) if op is not operator.getitem)


def supported_ops_markdown() -> str:
    """docs/torch-ops.md: `python -m braze.frontend.torch_export > docs/torch-ops.md`."""
    lines = ["# ATen ops the torch.export frontend takes", "",
             "Generated by `python -m braze.frontend.torch_export > docs/torch-ops.md` from",
             "`braze/frontend/torch_export.py`; an op not listed is an error that names it.", "",
             "| ATen op |", "|---|"]
    return "\n".join(lines + [f"| `{op}` |" for op in supported_ops()]) + "\n"


def import_exported(ep: "torch.export.ExportedProgram", name: str = "exported") -> Graph:
    """Graph IR for an exported program: parameters and buffers become weights."""
    sig = ep.graph_signature
    param_of = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
                **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
    state = {**ep.state_dict, **getattr(ep, "constants", {})}
    weights = {node: (param_of[node], state[param_of[node]]) for node in param_of}
    return import_fx(ep.graph, weights, name)


_TARGETS: frozenset = frozenset()


def supports(node: torch.fx.Node) -> bool:
    """Whether import_fx has a rule for this call (shapes may still make it refuse)."""
    global _TARGETS
    if not _TARGETS:
        _TARGETS = frozenset(_rules(_Importer(GraphBuilder())))
    return node.op == "call_function" and node.target in _TARGETS


def import_fx(graph: torch.fx.Graph, weights: dict[str, tuple[str, torch.Tensor]], name: str) -> Graph:
    """Graph IR for an ATen fx graph. weights: placeholder name -> (weight name, tensor); other
    placeholders are inputs (static shapes from node.meta["val"]); outputs are out0, out1, ..."""
    b = GraphBuilder(name=name)
    im = _Importer(b)
    rules = _rules(im)
    values: dict[str, Any] = {}
    outputs: dict[str, Node] = {}
    for node in graph.nodes:
        if node.op == "placeholder":
            if node.name in weights:
                weight_name, tensor = weights[node.name]
                values[node.name] = b.weight(weight_name, tensor.detach().contiguous())
                continue
            meta = node.meta.get("val")
            if not isinstance(meta, torch.Tensor) or any(not isinstance(d, int) for d in meta.shape):
                raise UnsupportedOpError(f"input {node.name} is not a tensor of static shape: export with static "
                                         "shapes")
            if meta.dtype not in DTYPE_NAMES:
                raise UnsupportedOpError(f"input {node.name} has dtype {meta.dtype}; braze takes "
                                         f"{', '.join(DTYPE_NAMES.values())}")
            values[node.name] = b.input(node.name, tuple(meta.shape), DTYPE_NAMES[meta.dtype])
        elif node.op == "call_function":
            rule = rules.get(node.target)
            if rule is None:
                raise UnsupportedOpError(f"{node.target} (node {node.name}) has no braze rule; supported: "
                                         f"{', '.join(supported_ops())}")
            args = torch.fx.node.map_arg(node.args, lambda n: values[n.name])
            kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: values[n.name])
            try:
                values[node.name] = rule(*args, **kwargs)
            except ShapeError as e:
                raise UnsupportedOpError(f"{node.target} (node {node.name}) in a form braze does not take: {e}") from e
        elif node.op == "output":
            results = node.args[0] if isinstance(node.args[0], (tuple, list)) else (node.args[0],)
            for i, out in enumerate(torch.fx.node.map_arg(tuple(results), lambda n: values[n.name])):
                outputs[f"out{i}"] = out
        else:
            raise UnsupportedOpError(f"fx node {node.name} ({node.op}) has no braze rule")
    return b.build(outputs)

if __name__ == "__main__":
    print(supported_ops_markdown(), end="")
