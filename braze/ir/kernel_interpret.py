"""Reference semantics of Kernel IR, in torch: runs a Program kernel by kernel over flat buffers.

Used to check the fuser (Graph IR interpreter == Kernel IR interpreter) separately from codegen
(Kernel IR interpreter == generated C++/Triton)."""
from __future__ import annotations

import torch

from braze.ir.interpret import (BINARY_FUNCTIONS, TORCH_DTYPE, UNARY_FUNCTIONS, attention_reference,
                                kv_store_reference, rope_reference)
from braze.ir.kernel import Expr, Kernel, Program, View

def resolve(shape, symbols) -> tuple[int, ...]:
    return tuple(symbols[d] if isinstance(d, str) else d for d in shape)


def view_tensor(flat: dict[str, torch.Tensor], v: View, symbols) -> torch.Tensor:
    base = flat[v.buffer]  # as_strided offsets count from the storage start, not the view start
    return base.as_strided(resolve(v.shape, symbols), v.strides, base.storage_offset() + v.offset)


def eval_expr(root: Expr, k: Kernel, flat, symbols, reds=(), acc=None) -> torch.Tensor:
    values: dict[int, torch.Tensor] = {}
    for e in root.walk():
        if e.op == "load":
            r = view_tensor(flat, k.operands[e.value], symbols).float()
        elif e.op == "const":
            r = torch.tensor(e.value, dtype=torch.float32)
        elif e.op == "acc":
            r = acc
        elif e.op == "rowred":
            r = reds[e.value]
        elif e.op == "cast":
            r = values[id(e.args[0])].to(TORCH_DTYPE[e.value]).float()
        elif e.op == "where":
            r = torch.where(values[id(e.args[0])] != 0, values[id(e.args[1])], values[id(e.args[2])])
        elif e.op in UNARY_FUNCTIONS:
            r = UNARY_FUNCTIONS[e.op](values[id(e.args[0])]).float()  # logical_not gives bool: as 0/1
        else:
            r = BINARY_FUNCTIONS[e.op](values[id(e.args[0])], values[id(e.args[1])]).float()
        values[id(e)] = r
    return values[id(root)]


def _reduce(k: Kernel, flat, symbols) -> list[torch.Tensor]:
    reds: list[torch.Tensor] = []
    for op, body in k.reductions:
        value = eval_expr(body, k, flat, symbols, reds)
        reds.append(value.sum(-1, keepdim=True) if op == "sum" else value.amax(-1, keepdim=True))
    return reds


def kernel_weight(k: Kernel, ops: list[torch.Tensor]) -> torch.Tensor:
    """A matmul kernel's B [N, K] in float32: its weight operand, or (attrs quant) the weight its
    packed/scales/mins operands stand for (braze/quant/formats.py)."""
    if k.attr("quant") is None:
        return ops[k.attr("weight")].float()
    from braze.quant.formats import dequantize
    mins = ops[k.attr("mins")] if k.attr("mins", -1) >= 0 else None
    return dequantize(k.attr("quant"), k.attr("group"), ops[k.attr("weight")], ops[k.attr("scales")], mins)


def _rotated(k: Kernel, ops: list, value: int, positions: int) -> list:
    """The operands of a kv_store or attention with a RoPE fused into it: the rope applied to the
    first rope_heads heads of operand `value`, and the tables dropped."""
    if k.attr("rope_heads") is None:
        return ops
    ops, (cos, sin) = ops[:-2], ops[-2:]
    x = ops[value].contiguous()
    rotated = rope_reference(x.reshape(x.shape[0], -1), ops[positions], cos, sin, k.attr("rope_head_dim"),
                             k.attr("rope_heads"))
    return ops[:value] + [rotated.reshape(x.shape)] + ops[value + 1:]


def run_kernel(k: Kernel, flat: dict[str, torch.Tensor], symbols: dict[str, int]) -> None:
    out = view_tensor(flat, k.output, symbols)
    ops = [view_tensor(flat, v, symbols) for v in k.operands]
    if k.kind == "pointwise":
        result = eval_expr(k.expr, k, flat, symbols)
    elif k.kind == "reduction":
        result = eval_expr(k.expr, k, flat, symbols, _reduce(k, flat, symbols))
        result = result.expand(*result.shape[:-1], max(result.shape[-1], out.shape[-1]))[..., : out.shape[-1]]
    elif k.kind == "matmul":
        a = eval_expr(k.prologue, k, flat, symbols, _reduce(k, flat, symbols))
        acc = a @ kernel_weight(k, ops).T
        result = eval_expr(k.expr, k, flat, symbols, acc=acc)
    elif k.kind == "gather":
        result = ops[0][ops[1]]
    elif k.kind == "rope":
        result = rope_reference(ops[0].contiguous(), ops[1], ops[2], ops[3], k.attr("head_dim"),
                                k.attr("rotary_heads"))
    elif k.kind == "kv_store":  # operands x, slots, positions (, block table)
        ops = _rotated(k, ops, 0, 2)
        kv_store_reference(out, ops[0].contiguous(), *ops[1:], inplace=True)
        return
    elif k.kind == "batch_matmul":
        result = ops[0].float() @ ops[1].float()
    elif k.kind == "attention":
        ops = _rotated(k, ops, 0, 4)
        result = attention_reference(ops[0].contiguous(), ops[1], ops[2], ops[3], ops[4], k.attr("num_heads"),
                                     k.attr("num_kv_heads"), k.attr("head_dim"), k.attr("scale"), *ops[5:])
        result = result.reshape(out.shape)  # q and the output may be [T, H, D] views
    else:
        raise NotImplementedError(k.kind)
    out.copy_(result.expand(out.shape).to(out.dtype))


def run_program(program: Program, flat: dict[str, torch.Tensor], symbols: dict[str, int]) -> None:
    """flat: buffer name -> 1-d tensor of the buffer's dtype holding at least its elements."""
    for k in program.kernels:
        run_kernel(k, flat, symbols)
