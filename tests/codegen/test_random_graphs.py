"""Random Graph IR programs, lowered through the whole pipeline and compiled with the C++ backend,
must match the reference interpreter (and the Kernel IR reference executor) at fp32 tolerance,
at two different token counts T with one compiled program.

Graphs mix unary/binary pointwise ops with broadcasting of [T, C], [T, 1] and [C] values,
last-axis reductions (keepdim), rms_norm/softmax/mean composites, and linear/matmul with small odd
sizes, and selects: where(a comparison of two values (and/or/not another), one value, another).
Unsafe ops get safe arguments: log/sqrt/rsqrt/reciprocal/div see abs(x) + 1, exp sees tanh(x).
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from braze.ir.builder import GraphBuilder
from braze.ir.graph import Node
from braze.ir.interpret import interpret
from braze.ir.ops import ShapeError, broadcast
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable

T_MAX = 9
WIDTHS = (5, 7, 12, 33)
SAFE_UNARY = ("neg", "tanh", "sigmoid", "silu", "relu", "gelu", "abs", "cos", "sin", "square")
POSITIVE_UNARY = ("log", "sqrt", "rsqrt", "reciprocal")
BINARY = ("add", "sub", "mul", "maximum", "minimum", "div")
COMPARE = ("eq", "ne", "lt", "le", "gt", "ge")
STEPS = ("unary", "unary", "positive", "exp", "binary", "binary", "binary", "select", "reduce", "mean",
         "rms_norm", "softmax", "linear", "matmul")


class RandomGraph:
    """Builds a graph one drawn step at a time; `values` is the pool later steps draw operands from."""

    def __init__(self, data, width: int):
        self.data, self.b, self.n_weights = data, GraphBuilder(symbols={"T": T_MAX}, name="random"), 0
        self.gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="weight seed"))
        x = self.b.input("x", ("T", width), "float32")
        self.values: list[Node] = [x]
        extra = data.draw(st.sampled_from(["none", "row", "col", "both"]), label="extra inputs")
        if extra in ("row", "both"):
            self.values.append(self.b.input("r", ("T", 1), "float32"))
        if extra in ("col", "both"):
            self.values.append(self.weight((width,)))

    def weight(self, shape) -> Node:
        self.n_weights += 1
        value = torch.randn(shape, generator=self.gen) / math.sqrt(shape[-1] if len(shape) == 2 else 1)
        return self.b.weight(f"w{self.n_weights}", value)

    def pick(self, where=lambda n: True) -> Node:
        """An eligible value, the newest one half of the time (so chains grow deep)."""
        options = [v for v in self.values if where(v)]
        if not options:
            return None
        return options[-1] if self.data.draw(st.booleans()) else self.data.draw(st.sampled_from(options))

    def op(self, name: str, *args, **attrs) -> Node:
        return self.b.op(name, *args, **attrs)

    def positive(self, v: Node) -> Node:
        return self.op("add", self.op("abs", v), self.b.constant(1.0))

    def step(self, kind: str) -> None:
        draw, is_2d = self.data.draw, (lambda n: len(n.shape) == 2 and n.shape[0] == "T")
        wide = lambda n: is_2d(n) and n.shape[1] != 1  # noqa: E731
        v = self.pick()

        def fits(n):  # broadcasts with v
            try:
                broadcast(v.shape, n.shape)
                return True
            except ShapeError:
                return False

        if kind == "unary":
            out = self.op(draw(st.sampled_from(SAFE_UNARY)), v)
        elif kind == "positive":
            out = self.op(draw(st.sampled_from(POSITIVE_UNARY)), self.positive(v))
        elif kind == "exp":
            out = self.op("exp", self.op("tanh", v))
        elif kind == "binary":
            other = self.pick(fits)
            if draw(st.booleans()):
                v, other = other, v
            op = draw(st.sampled_from(BINARY))
            out = self.op(op, v, self.positive(other) if op == "div" else other)
        elif kind == "select":
            a, b = self.pick(fits), self.pick(fits)
            cond = self.op(draw(st.sampled_from(COMPARE)), v, a)
            combine = draw(st.sampled_from(("none", "logical_and", "logical_or", "logical_not")))
            if combine == "logical_not":
                cond = self.op("logical_not", cond)
            elif combine != "none":
                cond = self.op(combine, cond, self.op("gt", b, self.b.constant(0.0)))
            out = self.op("where", cond, a, b)
        else:
            v = self.pick(wide)
            if v is None:
                return
            c = v.shape[1]
            if kind == "reduce":
                out = self.op(draw(st.sampled_from(("sum", "max"))), v)
            elif kind == "mean":
                out = self.op("mean", v)
            elif kind == "rms_norm":
                out = self.b.rms_norm(v, self.weight((c,)), 1e-5)
            elif kind == "softmax":
                out = self.op("softmax", v)
            elif kind == "linear":
                out = self.op("linear", v, self.weight((draw(st.sampled_from(WIDTHS)), c)))
            else:  # matmul: the layout pass turns it into linear over a transposed (folded) weight
                out = self.b.matmul(v, self.weight((c, draw(st.sampled_from(WIDTHS)))))
        self.values.append(out)


@st.composite
def random_graphs(draw):
    rg = RandomGraph(draw(st.data()), draw(st.sampled_from(WIDTHS)))
    for kind in draw(st.lists(st.sampled_from(STEPS), min_size=3, max_size=10)):
        rg.step(kind)
    # outputs read an input: a constant output folds into a weight, which Executable.run cannot
    # return (it looks non-temp outputs up in the feeds)
    live: set[int] = set()
    for v in rg.values:
        if v.op == "input" or any(id(i) in live for i in v.inputs):
            live.add(id(v))
    computed = [v for v in rg.values if v.op != "input" and id(v) in live]
    if not computed:
        computed = [rg.op("neg", rg.values[0])]
    used = {id(i) for v in computed for i in v.inputs}
    outputs = {f"out{i}": v for i, v in enumerate(v for v in computed if id(v) not in used)}  # no dead steps
    for i, v in enumerate(draw(st.lists(st.sampled_from(computed), max_size=2))):
        outputs[f"extra{i}"] = v  # intermediate values as outputs: materialized mid-kernel-chain
    return rg.b.build(outputs)


def feeds_for(graph, t: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {n.attr("name"): torch.randn(tuple(t if d == "T" else d for d in n.shape), generator=gen)
            for n in graph.inputs}


def assert_matches(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name in want:
        scale = max(1.0, want[name].abs().max().item())
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-4 * scale, msg=lambda m: f"{name}: {m}")


@settings(max_examples=30, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(graph=random_graphs(), ts=st.lists(st.integers(1, T_MAX), min_size=2, max_size=2, unique=True))
def test_random_graph_cpp_matches_interpreter(graph, ts):
    note(str(graph))
    program = lower(graph)
    note(str(program))
    cpp, ref = Executable(program, backend="cpp"), Executable(program, backend="reference")
    compiled = cpp.compiled
    for seed, t in enumerate(ts):  # one compiled program serves every T
        feeds = feeds_for(graph, t, seed)
        want = interpret(graph, feeds)
        assert_matches(ref.run(feeds), want)
        assert_matches({k: v.clone() for k, v in cpp.run(feeds).items()}, want)
    assert cpp.compiled is compiled


@pytest.mark.parametrize("width", [7, 33])
def test_llama_like_block_cpp_matches_interpreter(width):
    """The hand-written shape every model has: norm -> gate/up -> silu*up -> down + residual -> softmax."""
    b = GraphBuilder(symbols={"T": T_MAX})
    gen = torch.Generator().manual_seed(width)
    w = lambda name, *s: b.weight(name, torch.randn(s, generator=gen) / math.sqrt(s[-1]))  # noqa: E731
    x = b.input("x", ("T", width), "float32")
    h = b.rms_norm(x, w("norm", width), 1e-6)
    gate = b.matmul(h, b.transpose(w("gate", 12, width)))
    up = b.matmul(h, b.transpose(w("up", 12, width)))
    y = b.add(x, b.matmul(b.mul(b.silu(gate), up), b.transpose(w("down", width, 12))))
    g = b.build({"y": y, "p": b.op("softmax", y)})
    program = lower(g)
    assert [k.kind for k in program.kernels][:2] == ["matmul", "matmul"]
    exe = Executable(program, backend="cpp")
    for t in (1, T_MAX, 4):
        feeds = feeds_for(g, t, t)
        assert_matches({k: v.clone() for k, v in exe.run(feeds).items()}, interpret(g, feeds))
