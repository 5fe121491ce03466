"""The Kernel IR verifier: operands exist and fit, expressions reference what they may."""
from __future__ import annotations

from braze.errors import GraphVerificationError
from braze.ir.kernel import EXPR_OPS, KERNEL_KINDS, Program
from braze.ir.ops import numel


def verify_program(program: Program) -> Program:
    names = {b.name: b for b in program.buffers}
    if len(names) != len(program.buffers):
        raise GraphVerificationError("two buffers share a name")
    written = {b.name for b in program.buffers if b.kind != "temp"}
    for k in program.kernels:
        where = f"kernel {k.name}"
        if k.kind not in KERNEL_KINDS:
            raise GraphVerificationError(f"{where}: unknown kind {k.kind}")
        for v in list(k.operands) + [k.output]:
            if v.buffer not in names:
                raise GraphVerificationError(f"{where}: unknown buffer {v.buffer}")
            if len(v.shape) != len(v.strides):
                raise GraphVerificationError(f"{where}: view {v} has {len(v.shape)} dims, {len(v.strides)} strides")
        for v in k.operands:
            if v.buffer not in written:
                raise GraphVerificationError(f"{where}: reads {v.buffer} before any kernel writes it")
        if names[k.output.buffer].kind in ("input", "weight"):
            raise GraphVerificationError(f"{where}: writes read-only buffer {k.output.buffer}")
        written.add(k.output.buffer)
        exprs = [e for _, e in k.reductions] + [e for e in (k.prologue, k.expr) if e is not None]
        for root in exprs:
            for e in root.walk():
                if e.op not in EXPR_OPS:
                    raise GraphVerificationError(f"{where}: unknown expression op {e.op}")
                if e.op == "load" and not 0 <= e.value < len(k.operands):
                    raise GraphVerificationError(f"{where}: load of operand {e.value} out of range")
                if e.op == "rowred" and not 0 <= e.value < len(k.reductions):
                    raise GraphVerificationError(f"{where}: reads reduction {e.value}, has {len(k.reductions)}")
                if e.op == "acc" and k.kind != "matmul":
                    raise GraphVerificationError(f"{where}: acc outside a matmul")
    _verify_decode_rows(program)
    _verify_prefetch(program, names)
    for name, buf in program.outputs:
        if buf not in written:
            raise GraphVerificationError(f"output {name} (buffer {buf}) is never written")
    return program


def _verify_decode_rows(program: Program) -> None:
    """A kv_store tagged decode_rows_by names a later attention tagged decode_rows_of it, and back
    (braze/passes/decode_rows.py)."""
    position = {k.name: i for i, k in enumerate(program.kernels)}
    for i, k in enumerate(program.kernels):
        for tag, kind, back, where in (("decode_rows_by", "attention", "decode_rows_of", "after"),
                                       ("decode_rows_of", "kv_store", "decode_rows_by", "before")):
            other = k.attr(tag)
            if other is None:
                continue
            j = position.get(other, -1)
            partner = program.kernels[j] if j >= 0 else None
            paired = partner is not None and partner.kind == kind and partner.attr(back) == k.name
            if not paired or (j < i) != (where == "before"):
                raise GraphVerificationError(f"kernel {k.name}: {tag}={other} does not name the {kind} {where} it "
                                             f"tagged {back}={k.name}")


def _verify_prefetch(program: Program, names: dict) -> None:
    """A kernel's `prefetch` ranges (braze/passes/prefetch.py) lie inside weight buffers."""
    for k in program.kernels:
        for name, first, count in k.attr("prefetch") or ():
            buf = names.get(name)
            if buf is None or buf.kind != "weight":
                raise GraphVerificationError(f"kernel {k.name}: prefetch names {name}, which is not a weight buffer")
            size = numel(buf.shape, dict(program.symbols))
            if first < 0 or count <= 0 or first + count > size:
                raise GraphVerificationError(f"kernel {k.name}: prefetch of elements [{first}, {first + count}) "
                                             f"of {name}, which has {size}")
