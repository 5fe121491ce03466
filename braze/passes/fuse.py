"""Fusion: Graph IR -> Kernel IR.

Every graph value either gets a buffer (it is *materialized*) or is inlined into the one kernel
that consumes it. Rules, in the spirit of Inductor's can_fuse:
  - views (slice/reshape/transpose) and broadcasts are free: operands read through strided Views;
  - a pointwise or reduction value with one consumer is inlined into it (vertical fusion); when
    that consumer is a linear's input, it becomes the matmul's prologue (RMSNorm, SiLU*mul);
  - a linear whose only consumer is pointwise of the same shape is inlined as that kernel's
    anchor: the pointwise chain is its epilogue (bias, residual add, activation);
  - a computed value whose only use is a concat (directly or through reshapes) is written by its
    own kernel straight into its slice of the concat's buffer (Qwen3's normalised q and k);
  - a computed value whose only use is a reshape that is a graph output is written by its own
    kernel straight into the output's buffer (linear over [B, T, C] flattened to [B*T, C]);
  - a rope read only by kv_store (its x) and attention (its q), directly or through head-aligned
    column slices, at the same positions, is not a kernel: its readers rotate what they read
    (attr rope_heads, the tables as their last operands; see braze.ir.kernel.fused_rope);
  - gather, rope, kv_store, attention, batched matmul (two activations: it stays `matmul` after
    the layout pass made every other matmul a linear) and graph outputs are otherwise materialized.
Fusion is optimistic: a kernel that turns out illegal (two matmuls, mismatched reduction rows)
demotes the offending node to a buffer and fusion runs again.
"""
from __future__ import annotations

from dataclasses import replace

from braze.errors import GraphVerificationError
from braze.ir.graph import Graph, Node
from braze.ir.kernel import Buffer, Expr, Kernel, Program, View
from braze.ir.ops import LINEAR_OPS, POINTWISE_OPS, REDUCTION_OPS, VIEW_OPS
from braze.passes.views import NotAView, broadcast_view, full_view, reshape_view, slice_view, transpose_view

ALWAYS_MATERIALIZED = ("gather", "rope", "kv_store", "attention", "concat", "matmul")
ANCHOR_KINDS = ("gather", "rope", "kv_store", "attention")


class _Demote(Exception):
    def __init__(self, node: Node):
        self.node = node


class _Fusion:
    def __init__(self, graph: Graph, forced: set[int]):
        self.graph = graph
        self.forced = forced
        self.users: dict[int, list[Node]] = {}
        for n in graph.nodes:
            for i in dict.fromkeys(n.inputs):  # distinct users: mul(x, x) has one
                self.users.setdefault(id(i), []).append(n)
        self.outputs = {id(n) for _, n in graph.outputs}
        self.buffers: dict[int, Buffer] = {}
        self.state_inputs = {id(n.inputs[0]) for n in graph.nodes if n.op == "kv_store"}

    # which values get a buffer
    def materialized(self, n: Node) -> bool:
        if n.op in ("input", "weight"):
            return True
        if n.op == "constant":
            return False
        if n.op == "rope" and self.rope_fuses_into_readers(n):
            return False
        if id(n) in self.forced or id(n) in self.outputs or n.op in ALWAYS_MATERIALIZED:
            return True
        if n.op in VIEW_OPS:
            return False
        users = self.users.get(id(n), [])
        if n.op == "cast" and users and all(self._inlinable_into(n, u) for u in users):
            return False  # a cast is cheaper to recompute in each consumer than to store (bf16 RMSNorm)
        if len(users) != 1:
            return True
        if self.concat_part(n) is not None or self.output_reshaped(n) is not None:
            return False  # its kernel writes into the concat's or the output's buffer
        u = users[0]
        if n.op in LINEAR_OPS:
            return not (u.op in POINTWISE_OPS and u.shape == n.shape and u.dtype == n.dtype)
        return not self._inlinable_into(n, u)

    def rope_fuses_into_readers(self, n: Node) -> bool:
        """Every reader of rope n is a kv_store's x or an attention's q at n's positions, directly or
        through a head-aligned column slice: a decode layer then runs no rope kernel at all."""
        if id(n) in self.forced or id(n) in self.outputs or len(n.shape) != 2:
            return False
        head_dim, positions = n.attr("head_dim"), n.inputs[1]
        for user in self.users.get(id(n), []):
            readers = [user]
            if user.op == "slice":
                if user.attr("axis") % 2 != 1 or user.attr("start") % head_dim or id(user) in self.outputs:
                    return False
                readers = self.users.get(id(user), [])
            for r in readers:
                value = n if r is user else user
                if r.op == "kv_store":
                    fits = r.inputs[1] is value and r.inputs[3] is positions and r.inputs[0].shape[-1] == head_dim
                elif r.op == "attention":
                    fits = r.inputs[0] is value and r.inputs[4] is positions and r.attr("head_dim") == head_dim
                else:
                    fits = False
                if not fits or r.inputs.count(value) != 1:
                    return False
        return bool(self.users.get(id(n)))

    def _writes_in_place(self, n: Node) -> bool:
        """n is computed by a fused kernel (pointwise, reduction or linear) that may write its result
        into another value's buffer."""
        return (n.op in POINTWISE_OPS + REDUCTION_OPS + LINEAR_OPS and id(n) not in self.forced
                and id(n) not in self.outputs)

    def _reshape_chain(self, n: Node):
        """(value, its only user or None) for n and each reshape that is the only user of the one before."""
        part = n
        while True:
            users = self.users.get(id(part), [])
            user = users[0] if len(users) == 1 else None
            yield part, user
            if user is None or user.op != "reshape":
                return
            part = user

    def concat_part(self, n: Node) -> Node | None:
        """The concat input (n itself, or reshapes of it) through which n's only use is a concat, when
        n's kernel can write there."""
        if not self._writes_in_place(n):
            return None
        for part, user in self._reshape_chain(n):
            if id(part) in self.outputs or user is None:
                return None
            if user.op == "concat":
                return part if user.inputs.count(part) == 1 else None
        return None

    def output_reshaped(self, n: Node) -> Node | None:
        """The graph output that is n through reshapes only, when n's fused kernel can write it in place."""
        if not self._writes_in_place(n):
            return None
        for _, user in self._reshape_chain(n):
            if user is not None and user.op == "reshape" and id(user) in self.outputs:
                try:
                    reshape_view(full_view("out", user.shape), n.shape)
                except NotAView:
                    return None
                return user
        return None

    def attention_output(self, n: Node) -> Node | None:
        """The graph output that is attention n through reshapes and transposes only (each the only
        user of the one before), when n's kernel can write it through a [T, H, D] view."""
        node = n
        while True:
            users = self.users.get(id(node), [])
            if len(users) != 1 or users[0].op not in ("reshape", "transpose") or id(node) in self.outputs:
                return None
            node = users[0]
            if id(node) in self.outputs:
                break
        heads = (n.shape[0], n.attr("num_heads"), n.attr("head_dim"))
        try:
            _written_back_through(self, node, n, heads)
        except NotAView:
            return None
        return node

    def written_by_attention(self, n: Node) -> bool:
        base = n
        while base.op in ("reshape", "transpose"):
            base = base.inputs[0]
        return base.op == "attention" and self.attention_output(base) is n

    @staticmethod
    def _inlinable_into(n: Node, u: Node) -> bool:
        if u.op in POINTWISE_OPS or u.op in REDUCTION_OPS:
            return True
        return u.op in LINEAR_OPS and u.inputs[0] is n and n not in u.inputs[1:]

    def buffer_of(self, n: Node) -> Buffer:
        if id(n) not in self.buffers:
            if n.op == "input":
                kind = "state" if id(n) in self.state_inputs else "input"
                self.buffers[id(n)] = Buffer(n.attr("name"), n.shape, n.dtype, kind)
            elif n.op == "weight":
                self.buffers[id(n)] = Buffer(n.attr("name"), n.shape, n.dtype, "weight")
            elif n.op == "kv_store":  # updates its cache in place: the same buffer
                self.buffers[id(n)] = self.buffer_of(n.inputs[0])
            else:
                self.buffers[id(n)] = Buffer(f"t{len([b for b in self.buffers.values() if b.kind == 'temp'])}",
                                             n.shape, n.dtype, "temp")
        return self.buffers[id(n)]

    def view_of(self, n: Node, through: bool = False) -> View:
        """How to read value n: its own buffer, or (views) a strided window onto another."""
        if n.op in VIEW_OPS and (through or not self.materialized(n)):
            src = self.view_of(n.inputs[0])
            try:
                if n.op == "slice":
                    return slice_view(src, n.attr("axis"), n.attr("start"), n.attr("stop"))
                if n.op == "transpose":
                    return transpose_view(src, n.attr("perm"))
                return reshape_view(src, n.shape)
            except NotAView:
                raise _Demote(n.inputs[0])
        if n.op == "rope" and not self.materialized(n):
            return self.view_of(n.inputs[0])  # its readers rotate the values as they load them
        if not self.materialized(n):
            raise _Demote(n)
        b = self.buffer_of(n)
        return full_view(b.name, b.shape)


def _inlined_region(f: _Fusion, root: Node) -> tuple[list[Node], list[Node]]:
    """The inlined nodes feeding root: (epilogue side, prologue side of the matmul if any)."""
    epilogue, prologue, seen = [], [], set()

    def walk(n: Node, side: list, is_root: bool = False):
        if id(n) in seen or (not is_root and (f.materialized(n) or n.op in VIEW_OPS + ("constant",))):
            return
        seen.add(id(n))
        side.append(n)
        if n.op in LINEAR_OPS and side is epilogue:
            walk(n.inputs[0], prologue)
            return
        if n.op in VIEW_OPS:
            return
        for i in n.inputs:
            walk(i, side)

    walk(root, epilogue, is_root=True)
    return epilogue, prologue


class _KernelBuilder:
    def __init__(self, f: _Fusion):
        self.f = f
        self.operands: list[View] = []
        self.reductions: list[tuple[str, Expr]] = []
        self.memo: dict[tuple, Expr] = {}

    def load(self, n: Node, domain, through: bool = False) -> Expr:
        view = broadcast_view(self.f.view_of(n, through), domain)
        if view not in self.operands:
            self.operands.append(view)
        return Expr("load", (), self.operands.index(view))

    def expr(self, n: Node, domain, is_root: bool = False) -> Expr:
        key = (id(n), domain)
        if key in self.memo:
            return self.memo[key]
        if n.op == "constant":
            e = Expr("const", (), float(n.attr("value")))
        elif n.op in VIEW_OPS and is_root:
            e = self.load(n, domain, through=True)
        elif not is_root and (self.f.materialized(n) or n.op in VIEW_OPS):
            e = self.load(n, domain)
        elif n.op == "cast":
            e = Expr("cast", (self.expr(n.inputs[0], domain),), n.attr("dtype"))
        elif n.op in POINTWISE_OPS:
            e = Expr(n.op, tuple(self.expr(i, domain) for i in n.inputs))
        elif n.op in REDUCTION_OPS:
            body = self.expr(n.inputs[0], n.inputs[0].shape)
            self.reductions.append((n.op, body))
            e = Expr("rowred", (), len(self.reductions) - 1)
        elif n.op in LINEAR_OPS:
            e = Expr("acc")
        else:
            raise _Demote(n)
        self.memo[key] = e
        return e


def _anchor_kernel(f: _Fusion, n: Node, index: int) -> Kernel:
    reads = n.inputs[1:] if n.op == "kv_store" else n.inputs  # kv_store writes its first input
    if n.op == "attention":
        return _with_fused_rope(f, n, _attention_kernel(f, n, index))
    out = f.buffer_of(n)
    kernel = Kernel(f"k{index}_{n.op}", n.op, tuple(f.view_of(i) for i in reads), full_view(out.name, out.shape),
                    attrs=n.attrs, sources=(n.op,))
    return _with_fused_rope(f, n, kernel) if n.op == "kv_store" else kernel


def _with_fused_rope(f: _Fusion, n: Node, kernel: Kernel) -> Kernel:
    """kernel (of kv_store or attention n) rotating the heads it reads from a rope fused into it."""
    value = n.inputs[1] if n.op == "kv_store" else n.inputs[0]
    rope, first_head = value, 0
    if value.op == "slice":
        rope = value.inputs[0]
    if rope.op != "rope" or f.materialized(rope):
        return kernel
    head_dim = rope.attr("head_dim")
    if value is not rope:
        first_head = value.attr("start") // head_dim
    rotary = rope.attr("rotary_heads")
    rotary = rope.shape[-1] // head_dim if rotary is None else rotary
    heads = min(rotary - first_head, value.shape[-1] // head_dim)
    if heads <= 0:  # it reads only heads the rope passes through (v)
        return kernel
    tables = (f.view_of(rope.inputs[2]), f.view_of(rope.inputs[3]))
    return replace(kernel, operands=kernel.operands + tables, sources=("rope",) + kernel.sources,
                   attrs=kernel.attrs + (("rope_heads", heads), ("rope_head_dim", head_dim)))


def _attention_kernel(f: _Fusion, n: Node, index: int) -> Kernel:
    """Attention reads q and writes its output through [T, H, D] views, so the head transposes around
    a PyTorch sdpa ([B, H, T, D] <-> token rows [B*T, H*D]) are strides, not copy kernels."""
    heads = (n.shape[0], n.attr("num_heads"), n.attr("head_dim"))
    q = _heads_view(f, n.inputs[0], heads) or f.view_of(n.inputs[0])
    views = [q] + [f.view_of(i) for i in n.inputs[1:]]
    target = f.attention_output(n)
    if target is not None:
        out_view = _written_back_through(f, target, n, heads)
    else:
        out = f.buffer_of(n)
        out_view = full_view(out.name, out.shape)
    return Kernel(f"k{index}_attention", "attention", tuple(views), out_view, attrs=n.attrs, sources=("attention",))


def _heads_view(f: _Fusion, q: Node, heads: tuple) -> View | None:
    """q [T, H*D] that is a reshape of a strided [.., T, H, D] value, read as one [T, H, D] view."""
    if q.op != "reshape" or f.materialized(q):
        return None
    try:
        return reshape_view(f.view_of(q.inputs[0]), heads)
    except NotAView:
        return None


def _written_back_through(f: _Fusion, output: Node, value: Node, heads: tuple) -> View:
    """The view of output's buffer that `value` (viewed as [T, H, D]) lands on, undoing the chain of
    reshapes and transposes from value to output."""
    chain = [output]
    while chain[-1].inputs[0] is not value:
        chain.append(chain[-1].inputs[0])
    out = f.buffer_of(output)
    view = full_view(out.name, out.shape)
    for node in chain:
        below = node.inputs[0]
        if node.op == "transpose":
            perm = node.attr("perm") or tuple(range(len(node.shape) - 2)) + (len(node.shape) - 1, len(node.shape) - 2)
            view = transpose_view(view, tuple(perm.index(i) for i in range(len(perm))))
        else:
            view = reshape_view(view, heads if below is value else below.shape)
    return view


def _batch_matmul_kernel(f: _Fusion, n: Node, index: int) -> Kernel:
    """A [*batch, M, K] @ B [*batch, K, N], both read through views broadcast to the output's batch."""
    a, b = n.inputs
    batch = n.shape[:-2]
    operands = (broadcast_view(f.view_of(a), batch + a.shape[-2:]), broadcast_view(f.view_of(b), batch + b.shape[-2:]))
    out = f.buffer_of(n)
    return Kernel(f"k{index}_batch_matmul", "batch_matmul", operands, full_view(out.name, out.shape), sources=("matmul",))


def _concat_kernels(f: _Fusion, n: Node, index: int) -> list[Kernel]:
    """A runtime concat: each input's kernel writes its slice of the output, or (inputs that are
    buffers already) one copy kernel per input does."""
    out, axis, start, kernels = f.buffer_of(n), n.attr("axis"), 0, []
    for i, part in enumerate(n.inputs):
        stop = start + part.shape[axis]
        target = slice_view(full_view(out.name, out.shape), axis, start, stop)
        producer = _producer_writing(part, f.concat_part)
        if producer is not None:
            kernels.append(_fused_kernel(f, producer, index + i, reshape_view(target, producer.shape)))
        else:
            kb = _KernelBuilder(f)
            body = kb.load(part, part.shape)
            kernels.append(Kernel(f"k{index + i}_pointwise", "pointwise", tuple(kb.operands), target, expr=body,
                                  sources=("concat",)))
        start = stop
    return kernels


def _producer_writing(value: Node, target_of) -> Node | None:
    """The node under `value` (through reshapes) whose kernel writes `value`'s place itself: a
    concat part (target_of = concat_part) or an output reshape (target_of = output_reshaped)."""
    node = value
    while node.op == "reshape":
        node = node.inputs[0]
    return node if target_of(node) is value else None


def _split_point(f: _Fusion, root: Node, reduction: Node, anchor: Node) -> Node:
    """Where a region holding a matmul and a reduction is cut: the reduction gets its own buffer,
    or (it is the region's root: a reduction of the matmul's epilogue) its input does, or the matmul."""
    for n in (reduction, reduction.inputs[0], anchor):
        if n is not root and id(n) not in f.forced and n.op not in VIEW_OPS + ("constant", "input", "weight"):
            return n
    return anchor


def _fused_kernel(f: _Fusion, root: Node, index: int, out_view: View | None = None) -> Kernel:
    """The kernel computing root, writing its own buffer or (a concat part) `out_view`."""
    epilogue, prologue = _inlined_region(f, root)
    anchors = [n for n in epilogue if n.op in LINEAR_OPS]
    reductions = [n for n in epilogue if n.op in REDUCTION_OPS]
    if out_view is None:
        out = f.buffer_of(root)
        out_view = full_view(out.name, out.shape)
    sources = tuple(n.op for n in reversed(prologue)) + tuple(n.op for n in reversed(epilogue))
    kb = _KernelBuilder(f)
    if anchors:
        if len(anchors) > 1 or reductions:
            raise _Demote(anchors[-1] if len(anchors) > 1 else _split_point(f, root, reductions[0], anchors[0]))
        lin = anchors[0]
        a, w = lin.inputs[:2]
        if len(a.shape) != 2:
            raise NotImplementedError(f"linear over a {len(a.shape)}-d input {list(a.shape)}: flatten it to 2-d")
        for r in prologue:
            if r.op in LINEAR_OPS or (r.op in REDUCTION_OPS and r.inputs[0].shape != a.shape):
                raise _Demote(r)
        prologue_expr = kb.expr(a, a.shape, is_root=bool(prologue))
        prologue_reductions = tuple(kb.reductions)
        kb.reductions = []
        kb.operands.append(f.view_of(w))
        weight_index = len(kb.operands) - 1
        quant = ()
        if lin.op == "quantized_linear":  # scales (and mins) follow the packed weight
            kb.operands.extend(f.view_of(extra) for extra in lin.inputs[2:])
            quant = (("quant", lin.attr("format")), ("group", lin.attr("group")), ("k", a.shape[-1]),
                     ("scales", weight_index + 1), ("mins", weight_index + 2 if len(lin.inputs) > 3 else -1))
        epilogue_expr = kb.expr(root, root.shape, is_root=True)
        return Kernel(f"k{index}_matmul", "matmul", tuple(kb.operands), out_view,
                      expr=epilogue_expr, prologue=prologue_expr, reductions=prologue_reductions,
                      attrs=(("weight", weight_index),) + quant, sources=sources)
    if reductions:
        domain = reductions[0].inputs[0].shape
        for r in reductions:
            if r.inputs[0].shape != domain:
                raise _Demote(r)
        if root.shape not in (domain, domain[:-1] + (1,)):
            raise _Demote(reductions[0])
        body = kb.expr(root, domain, is_root=True)
        return Kernel(f"k{index}_reduction", "reduction", tuple(kb.operands), out_view,
                      expr=body, reductions=tuple(kb.reductions), sources=sources)
    body = kb.expr(root, root.shape, is_root=True)
    return Kernel(f"k{index}_pointwise", "pointwise", tuple(kb.operands), out_view, expr=body, sources=sources)


def _build(graph: Graph, forced: set[int]) -> Program:
    f = _Fusion(graph, forced)
    for n in graph.nodes:
        if n.op == "kv_store" and (n.inputs[0].op != "input" or len(f.users[id(n.inputs[0])]) != 1):
            raise ValueError("kv_store must update a graph input that nothing else reads")
    kernels = []
    for n in graph.nodes:
        if n.op in ("input", "weight", "constant") or not f.materialized(n):
            continue
        producer = _producer_writing(n, f.output_reshaped) if n.op == "reshape" else None
        if n.op in VIEW_OPS and f.written_by_attention(n):
            continue  # the attention kernel writes this output's buffer itself
        if producer is not None:  # the producer's kernel writes the output's buffer, reshaped
            out = f.buffer_of(n)
            kernels.append(_fused_kernel(f, producer, len(kernels),
                                         reshape_view(full_view(out.name, out.shape), producer.shape)))
        elif n.op == "concat":
            kernels.extend(_concat_kernels(f, n, len(kernels)))
        elif n.op in ANCHOR_KINDS:
            kernels.append(_anchor_kernel(f, n, len(kernels)))
        elif n.op == "matmul":
            kernels.append(_batch_matmul_kernel(f, n, len(kernels)))
        else:
            kernels.append(_fused_kernel(f, n, len(kernels)))
    outputs = tuple((name, f.buffer_of(n).name) for name, n in graph.outputs)
    buffers = list({b.name: b for b in f.buffers.values()}.values())
    return Program(tuple(kernels), tuple(buffers), outputs, graph.weights, graph.symbols, name=graph.name)


def fuse_into_kernels(graph: Graph) -> Program:
    forced: set[int] = set()
    while True:
        try:
            return _build(graph, forced)
        except NotAView as e:
            raise GraphVerificationError(f"the fuser cannot lay out this graph's buffers: {e}") from e
        except _Demote as demoted:
            if id(demoted.node) in forced:
                raise RuntimeError(f"fusion cannot place {demoted.node!r}")
            forced.add(id(demoted.node))
