"""Helpers for pass tests: Before/Expected text cases checked exactly and by the interpreter.

Imported as `pass_testlib` (tests/passes/conftest.py puts this folder on sys.path)."""
from __future__ import annotations

import torch

from braze.ir.graph import Graph
from braze.ir.interpret import TORCH_DTYPE, interpret
from braze.ir.parse import parse_graph
from braze.ir.verify import verify_graph


def normalize(text: str) -> str:
    """The printer's form of a hand-written graph text (labels renumbered, spacing canonical)."""
    return str(parse_graph(text))


def random_feeds(graph: Graph, symbols: dict[str, int] | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sizes = dict(graph.symbols, **(symbols or {}))
    feeds = {}
    for n in graph.inputs:
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in n.shape)
        if n.dtype == "bool":
            feeds[n.attr("name")] = torch.rand(shape, generator=gen) < 0.6
        elif n.dtype.startswith("int"):
            feeds[n.attr("name")] = torch.randint(0, 2, shape, generator=gen, dtype=TORCH_DTYPE[n.dtype])
        else:
            feeds[n.attr("name")] = torch.randn(shape, generator=gen).to(TORCH_DTYPE[n.dtype])
    return feeds


def assert_same_semantics(before: Graph, after: Graph, symbols=None, rtol=1e-5, atol=1e-5, seeds=(0, 1)) -> None:
    for seed in seeds:
        feeds = random_feeds(before, symbols, seed)
        want, got = interpret(before, feeds), interpret(after, feeds)
        assert list(want) == list(got)
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")


def check_pass(graph_pass, before: str, expected: str, weights=None, symbols=None, **tol) -> Graph:
    """Parse `before`, run the pass, compare with `expected` exactly and with the interpreter."""
    g = verify_graph(parse_graph(before, weights, symbols or {"T": 6}))
    out = verify_graph(graph_pass(g))
    assert str(out) == normalize(expected), f"\n--- got ---\n{out}\n--- expected ---\n{normalize(expected)}"
    assert_same_semantics(g, out, **tol)
    return out
