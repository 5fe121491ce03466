"""torch.export frontend: modules compiled through braze (C++ backend on the CPU) equal eager."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from braze.module_compiler import compile_module
from braze.frontend.torch_export import UnsupportedOpError, import_exported, supported_ops, supported_ops_markdown


class NormMLPHeads(nn.Module):
    """RMSNorm, linear with and without bias, SiLU, scalar mul, LayerNorm, softmax, tanh-GELU, mean."""

    def __init__(self):
        super().__init__()
        self.norm, self.a, self.b, self.ln = nn.RMSNorm(20), nn.Linear(20, 36), nn.Linear(36, 12, bias=False), \
            nn.LayerNorm(12)

    def forward(self, x):
        h = F.silu(self.a(self.norm(x))) * 2.0
        y = self.ln(self.b(h))
        return torch.softmax(y, -1) + F.gelu(y, approximate="tanh"), y.mean(-1, keepdim=True), F.gelu(y)


class LlamaMLPBlock(nn.Module):
    def __init__(self, d=24, i=40):
        super().__init__()
        self.norm = nn.RMSNorm(d, eps=1e-6)
        self.gate, self.up, self.down = nn.Linear(d, i, bias=False), nn.Linear(d, i, bias=False), \
            nn.Linear(i, d, bias=False)

    def forward(self, x):
        h = self.norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class EmbedHeads(nn.Module):
    """GPT-2-style input: token + position embeddings, LayerNorm, a tied head over split heads."""

    def __init__(self, vocab=50, d=16):
        super().__init__()
        self.tok, self.pos, self.ln = nn.Embedding(vocab, d), nn.Embedding(8, d), nn.LayerNorm(d)

    def forward(self, ids, positions):
        x = self.ln(self.tok(ids) + self.pos(positions))          # [B, T, d]
        heads = x.view(x.shape[0], x.shape[1], 4, 4).transpose(1, 2)  # [B, 4, T, 4]
        first, second = torch.split(heads, 2, dim=1)
        mixed = torch.cat([second, first], dim=1).transpose(1, 2).reshape(x.shape)
        return F.linear(mixed, self.tok.weight), torch.tanh(x[:, 1:, :8]).exp()


def check(module, *args, atol=1e-5, rtol=1e-5):
    torch.manual_seed(0)
    module = module.eval()
    fast = compile_module(module, *args)
    for seed in (1, 2):  # fresh inputs each call: the compiled function, not one result
        gen = torch.Generator().manual_seed(seed)
        new = [torch.randint(0, int(a.max()) + 1, a.shape, generator=gen) if not a.is_floating_point()
               else torch.randn(a.shape, generator=gen) for a in args]
        got, want = fast(*new), module(*new)
        got, want = (got,) if isinstance(got, torch.Tensor) else got, (want,) if isinstance(want, torch.Tensor) else want
        assert len(got) == len(want)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, atol=atol, rtol=rtol)
    return fast


def test_norms_linears_and_activations_equal_eager():
    torch.manual_seed(0)
    check(NormMLPHeads(), torch.randn(2, 3, 20))


def test_llama_mlp_block_fuses_like_the_llm_path():
    torch.manual_seed(0)
    fast = check(LlamaMLPBlock(), torch.randn(5, 24))
    # RMSNorm into gate|up (one linear), SiLU*mul into down, the residual add in down's epilogue
    assert [k.kind for k in fast.program.kernels] == ["matmul", "matmul"]


def test_embeddings_views_split_and_cat_equal_eager():
    torch.manual_seed(0)
    check(EmbedHeads(), torch.randint(0, 50, (2, 6)), torch.arange(6).repeat(2, 1))


class Attention(nn.Module):
    """scaled_dot_product_attention, causal or over every key, with GQA through enable_gqa."""

    def __init__(self, causal: bool):
        super().__init__()
        self.causal = causal
        self.qkv = nn.Linear(32, 32 + 2 * 16)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split([32, 16, 16], dim=-1)
        q = q.view(b, t, 4, 8).transpose(1, 2)
        k, v = (z.view(b, t, 2, 8).transpose(1, 2) for z in (k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, enable_gqa=True)
        return y.transpose(1, 2).reshape(b, t, 32)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
def test_scaled_dot_product_attention_is_braze_attention(causal):
    torch.manual_seed(0)
    fast = check(Attention(causal), torch.randn(3, 5, 32))
    assert "attention" in [k.kind for k in fast.program.kernels]


def test_attention_block_through_the_triton_kernels():
    """The same attention through the Triton backend (the interpreter on a machine without a GPU)."""
    torch.manual_seed(0)
    module = Attention(True).eval()
    x = torch.randn(2, 6, 32)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fast = compile_module(module.to(device), x.to(device), device=device, backend="triton")
    torch.testing.assert_close(fast(x.to(device)).cpu(), module(x.to(device)).cpu(), atol=1e-4, rtol=1e-4)


def test_masked_attention_is_refused_with_the_reason():
    class Masked(nn.Module):
        def forward(self, q, mask):
            return F.scaled_dot_product_attention(q, q, q, attn_mask=mask)

    ep = torch.export.export(Masked(), (torch.randn(1, 2, 4, 8), torch.ones(4, 4, dtype=torch.bool)))
    with pytest.raises(UnsupportedOpError, match="mask"):
        import_exported(ep)


def test_unsupported_op_names_itself_and_the_supported_ones():
    class Sorts(nn.Module):
        def forward(self, x):
            return torch.sort(x, dim=-1).values

    ep = torch.export.export(Sorts(), (torch.randn(3, 4),))
    with pytest.raises(UnsupportedOpError, match=r"aten\.sort.*has no braze rule; supported: .*aten\.linear"):
        import_exported(ep)


def test_reductions_over_other_dims_say_so():
    class SumsRows(nn.Module):
        def forward(self, x):
            return x.sum(0)

    with pytest.raises(UnsupportedOpError, match="last dim only"):
        import_exported(torch.export.export(SumsRows(), (torch.randn(3, 4),)))


def test_generated_ops_table_is_current():
    doc = Path(__file__).resolve().parents[2] / "docs" / "torch-ops.md"
    assert doc.read_text() == supported_ops_markdown(), "regenerate: python -m braze.frontend.torch_export > docs/torch-ops.md"
    assert "aten.linear.default" in supported_ops()


def test_training_mode_dropout_is_refused():
    class Drops(nn.Module):
        def forward(self, x):
            return F.dropout(x, 0.5, training=True)

    with pytest.raises(UnsupportedOpError, match="dropout"):
        import_exported(torch.export.export(Drops(), (torch.randn(2, 4),)))
