"""torch.compile(backend="braze"): supported regions run as braze kernels (C++ on the CPU), the rest
as ATen; results equal eager."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import braze


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(24, 64), nn.GELU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


class LlamaMLPBlock(nn.Module):
    def __init__(self, d=32, i=48):
        super().__init__()
        self.norm = nn.RMSNorm(d, eps=1e-6)
        self.gate, self.up, self.down = (nn.Linear(d, i, bias=False), nn.Linear(d, i, bias=False),
                                         nn.Linear(i, d, bias=False))

    def forward(self, x):
        h = self.norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class SoftmaxHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln, self.proj = nn.LayerNorm(32), nn.Linear(32, 7)

    def forward(self, x):
        return torch.softmax(self.proj(self.ln(x)) / 0.7, dim=-1)


class WithASort(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, x):
        return self.b(torch.sort(F.silu(self.a(x)), dim=-1).values)


def run(module, shape, calls=2):
    torch.manual_seed(0)
    module = module.eval()
    braze.backend.stats.reset()
    compiled = torch.compile(module, backend="braze")
    with torch.no_grad():
        for seed in range(calls):
            x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
            torch.testing.assert_close(compiled(x), module(x), atol=1e-5, rtol=1e-5)
    torch._dynamo.reset()
    return braze.backend.stats


@pytest.mark.parametrize("module, shape", [(MLP(), (5, 24)), (LlamaMLPBlock(), (2, 3, 32)), (SoftmaxHead(), (4, 32))],
                         ids=["mlp", "llama_mlp_block", "softmax_head"])
def test_compiled_modules_equal_eager_with_90_percent_in_braze(module, shape):
    stats = run(module, shape)
    assert stats.regions >= 1
    assert stats.compiled_nodes / (stats.compiled_nodes + stats.fallback_nodes) >= 0.9, stats


def test_an_unsupported_op_runs_as_aten_and_the_rest_in_braze():
    stats = run(WithASort(), (3, 16))
    assert stats.regions == 2 and stats.fallback_nodes >= 1 and stats.compiled_nodes >= 4, stats


def test_with_autograd_recording_the_graph_stays_aten():
    torch.manual_seed(0)
    module = MLP()
    braze.backend.stats.reset()
    compiled = torch.compile(module, backend="braze")
    x = torch.randn(5, 24)
    torch.testing.assert_close(compiled(x), module(x))
    assert braze.backend.stats.regions == 0 and braze.backend.stats.fallback_nodes > 0
    torch._dynamo.reset()
