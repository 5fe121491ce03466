"""The reference interpreter: runs a Graph with torch ops. This *is* the Graph IR's semantics;
every pass and every generated kernel is checked against it."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from braze.ir.graph import Graph, Node

TORCH_DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
               "int32": torch.int32, "int64": torch.int64, "bool": torch.bool,
               "int8": torch.int8, "uint8": torch.uint8, "float8_e4m3fn": torch.float8_e4m3fn}

UNARY_FUNCTIONS = {
    "neg": torch.neg, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
    "reciprocal": torch.reciprocal, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "silu": F.silu,
    "relu": torch.relu, "gelu": F.gelu, "cos": torch.cos, "sin": torch.sin, "abs": torch.abs,
    "square": torch.square, "logical_not": torch.logical_not,
}
BINARY_FUNCTIONS = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
                    "maximum": torch.maximum, "minimum": torch.minimum, "pow": torch.pow,
                    "eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt, "ge": torch.ge,
                    "logical_and": torch.logical_and, "logical_or": torch.logical_or}


def rope_reference(x, positions, cos, sin, head_dim, rotary_heads=None):
    """Rotate-half RoPE (the HF/NeoX layout) per head; cos/sin tables are [context, head_dim/2].
    With rotary_heads, heads from that index on are returned unchanged."""
    t = x.shape[0]
    xh = x.view(t, -1, head_dim).float()
    r = xh.shape[1] if rotary_heads is None else rotary_heads
    c = cos[positions].float()[:, None, :]
    s = sin[positions].float()[:, None, :]
    lo, hi = xh[:, :r, : head_dim // 2], xh[:, :r, head_dim // 2:]
    rotated = torch.cat([lo * c - hi * s, hi * c + lo * s], dim=-1)
    return torch.cat([rotated, xh[:, r:]], dim=1).reshape(x.shape).to(x.dtype)


def paged_sequence_cache(cache, block_table, slots):
    """A paged cache [num_blocks, heads, B, D] seen per token as its sequence's contiguous cache
    [T, heads, blocks_per_seq * B, D]: block j of slot s is cache[block_table[s, j]]. Table entries
    past a sequence's length may hold anything (they are clamped to a valid block, then masked)."""
    blocks = block_table[slots].long().clamp(0, cache.shape[0] - 1)  # [T, MB]
    gathered = cache[blocks]  # [T, MB, heads, B, D]
    t, mb, heads, bs, d = gathered.shape
    return gathered.permute(0, 2, 1, 3, 4).reshape(t, heads, mb * bs, d)


def kv_store_reference(cache, x, slots, positions, block_table=None, inplace: bool = False):
    """cache row (slot, position) = x[t] (its heads split into [heads, D]); with a block table the
    row lives in block block_table[slot, position // B] at row position % B."""
    out = cache if inplace else cache.clone()
    rows = x.view(x.shape[0], cache.shape[1], cache.shape[3]).to(cache.dtype)
    if block_table is None:
        out[slots, :, positions, :] = rows
    else:
        block_size = cache.shape[2]
        out[block_table[slots, positions // block_size].long(), :, positions % block_size, :] = rows
    return out


def attention_reference(q, k_cache, v_cache, slots, positions, num_heads, num_kv_heads, head_dim, scale,
                        block_table=None):
    """Each token attends to its own sequence's cache rows 0..position (inclusive)."""
    t, group = q.shape[0], num_heads // num_kv_heads
    qh = q.view(t, num_heads, head_dim).float()
    if block_table is None:
        k_rows, v_rows = k_cache[slots], v_cache[slots]  # [T, Hkv, C, D]
    else:
        k_rows = paged_sequence_cache(k_cache, block_table, slots)
        v_rows = paged_sequence_cache(v_cache, block_table, slots)
    k = k_rows.float().repeat_interleave(group, dim=1)  # [T, H, C, D]
    v = v_rows.float().repeat_interleave(group, dim=1)
    scores = torch.einsum("thd,thcd->thc", qh, k) * scale
    visible = torch.arange(k.shape[2], device=positions.device)[None, :] <= positions[:, None]  # [T, C]
    scores = scores.masked_fill(~visible[:, None, :], float("-inf"))
    out = torch.einsum("thc,thcd->thd", torch.softmax(scores, dim=-1), v)
    return out.reshape(t, num_heads * head_dim).to(q.dtype)


def _resolve(shape, env):
    return tuple(env[d] if isinstance(d, str) else d for d in shape)


def _bind_symbols(node: Node, value: torch.Tensor, env: dict) -> None:
    for d, actual in zip(node.shape, value.shape):
        if isinstance(d, str):
            if env.setdefault(d, actual) != actual:
                raise ValueError(f"symbol {d} is {env[d]} elsewhere but {actual} for input {node.attr('name')}")
        elif d != actual:
            raise ValueError(f"input {node.attr('name')} has shape {list(value.shape)}, graph says {list(node.shape)}")


def evaluate(node: Node, args: list, graph: Graph, feeds: dict, env: dict, inplace_state: bool = False):
    op, a = node.op, node.attr_dict
    if op == "input":
        value = feeds[a["name"]]
        _bind_symbols(node, value, env)
        return value
    if op == "weight":
        return graph.weights[a["name"]]
    if op == "constant":
        return torch.tensor(a["value"], dtype=TORCH_DTYPE[node.dtype])
    if op == "cast":
        return args[0].to(TORCH_DTYPE[a["dtype"]])
    if op in UNARY_FUNCTIONS:
        return UNARY_FUNCTIONS[op](args[0])
    if op in BINARY_FUNCTIONS:
        return BINARY_FUNCTIONS[op](args[0], args[1])
    if op == "where":
        return torch.where(args[0], args[1], args[2])
    if op == "sum":
        return args[0].sum(dim=-1, keepdim=True)
    if op == "max":
        return args[0].amax(dim=-1, keepdim=True)
    if op == "mean":
        return args[0].mean(dim=-1, keepdim=True)
    if op == "softmax":
        return torch.softmax(args[0].float(), dim=-1).to(args[0].dtype)
    if op == "rms_norm":
        x = args[0].float()
        normed = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + a["eps"])
        return normed.to(args[0].dtype) * args[1]
    if op == "reshape":
        return args[0].reshape(_resolve(node.shape, env))
    if op == "transpose":
        perm = a.get("perm") or tuple(range(args[0].dim() - 2)) + (args[0].dim() - 1, args[0].dim() - 2)
        return args[0].permute(perm)
    if op == "slice":
        return args[0].narrow(a["axis"], a["start"], a["stop"] - a["start"])
    if op == "concat":
        return torch.cat(args, dim=a["axis"])
    if op == "matmul":
        return args[0] @ args[1]
    if op == "linear":
        return F.linear(args[0], args[1])
    if op == "quantized_linear":
        from braze.quant.formats import quantized_linear_reference
        return quantized_linear_reference(args[0], *args[1:], format=a["format"], group=a["group"])
    if op == "gather":
        return args[0][args[1]]
    if op == "rope":
        return rope_reference(args[0], args[1], args[2], args[3], a["head_dim"], a.get("rotary_heads"))
    if op == "kv_store":
        return kv_store_reference(*args, inplace=inplace_state)
    if op == "attention":
        return attention_reference(*args[:5], a["num_heads"], a["num_kv_heads"], a["head_dim"], a["scale"],
                                   *args[5:])
    raise NotImplementedError(f"interpreter has no rule for {op}")


def interpret(graph: Graph, feeds: dict[str, torch.Tensor], inplace_state: bool = False) -> dict[str, torch.Tensor]:
    """Run `graph` on `feeds` (input name -> tensor); returns output name -> tensor.

    inplace_state=True lets kv_store update its cache input in place (the engine's reference path);
    the default keeps every input untouched, as a pure function should.
    """
    values: dict[int, torch.Tensor] = {}
    env: dict[str, int] = {}
    for node in graph.nodes:
        values[id(node)] = evaluate(node, [values[id(i)] for i in node.inputs], graph, feeds, env, inplace_state)
    return {name: values[id(node)] for name, node in graph.outputs}
