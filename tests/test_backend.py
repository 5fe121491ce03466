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


class GPT2Block(nn.Module):
    """Pre-LayerNorm attention (scaled_dot_product_attention, causal) and a tanh-GELU MLP."""

    def __init__(self, d=48, heads=4):
        super().__init__()
        self.heads = heads
        self.ln1, self.attn, self.proj = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ln2, self.fc, self.out = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.attn(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class LlamaBlock(nn.Module):
    """RMSNorm, GQA attention (kv heads repeated), SwiGLU MLP."""

    def __init__(self, d=48, heads=4, kv_heads=2, inter=96):
        super().__init__()
        self.h, self.kvh, self.hd = heads, kv_heads, d // heads
        self.n1, self.n2 = nn.RMSNorm(d, eps=1e-6), nn.RMSNorm(d, eps=1e-6)
        self.q, self.o = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.k, self.v = nn.Linear(d, kv_heads * self.hd, bias=False), nn.Linear(d, kv_heads * self.hd, bias=False)
        self.g, self.u, self.dn = nn.Linear(d, inter, bias=False), nn.Linear(d, inter, bias=False), \
            nn.Linear(inter, d, bias=False)

    def forward(self, x):
        b, t, c = x.shape
        h = self.n1(x)
        q = self.q(h).view(b, t, self.h, self.hd).transpose(1, 2)
        k, v = (p(h).view(b, t, self.kvh, self.hd).transpose(1, 2).repeat_interleave(self.h // self.kvh, dim=1)
                for p in (self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.o(y)
        h = self.n2(x)
        return x + self.dn(F.silu(self.g(h)) * self.u(h))


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


@pytest.mark.parametrize("module, shape", [(MLP(), (5, 24)), (LlamaMLPBlock(), (2, 3, 32)), (SoftmaxHead(), (4, 32)),
                                           (GPT2Block(), (2, 7, 48)), (LlamaBlock(), (2, 7, 48))],
                         ids=["mlp", "llama_mlp_block", "softmax_head", "gpt2_block", "llama_block"])
def test_compiled_modules_equal_eager_all_in_braze(module, shape):
    """Every node of these (attention as braze's attention op, repeat_interleave's expand too) runs
    in one braze region."""
    stats = run(module, shape)
    assert stats.regions == 1 and stats.fallback_nodes == 0 and stats.compiled_nodes >= 3, stats


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


def test_a_transformers_llama_compiles_whole_and_equals_eager(tiny_causal_lm):
    """aot_autograd's graph of the model: the mask and positions (arange, cumsum, index,
    comparisons) are computed at import, attention is braze's attention op, every node in braze."""
    model = tiny_causal_lm("llama")
    braze.backend.stats.reset()
    compiled = torch.compile(model, backend="braze")
    with torch.no_grad():
        for seed in range(2):
            ids = torch.randint(0, 128, (2, 8), generator=torch.Generator().manual_seed(seed))
            torch.testing.assert_close(compiled(ids).logits, model(ids).logits, atol=1e-4, rtol=1e-4)
    torch._dynamo.reset()
    stats = braze.backend.stats
    assert stats.compiled_nodes / (stats.compiled_nodes + stats.fallback_nodes) >= 0.9, stats
    assert stats.regions == 1 and stats.fallback_nodes == 0, stats


class MaskedAttention(nn.Module):
    """Attention written out: q @ k^T, masked_fill by a causal buffer, softmax, @ v."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.heads, self.qkv = heads, nn.Linear(d, 3 * d)
        self.register_buffer("causal", torch.tril(torch.ones(16, 16, dtype=torch.bool)))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in self.qkv(x).split(c, -1))
        scores = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        probs = torch.softmax(scores.masked_fill(~self.causal[:t, :t], float("-inf")), dim=-1)
        return (probs @ v).transpose(1, 2).reshape(b, t, c)


def test_hand_written_masked_attention_compiles_whole():
    """aot_autograd's bmm/expand form of the matmuls and the mask (a buffer: a run-time input of
    the region) run in braze: batched matmuls, where and softmax."""
    stats = run(MaskedAttention(), (2, 6, 32))
    assert stats.regions == 1 and stats.fallback_nodes == 0, stats
