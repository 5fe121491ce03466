"""torch.export frontend: modules compiled through braze (C++ backend on the CPU) equal eager."""
from __future__ import annotations

import math
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


@pytest.mark.parametrize("seq", [6, 20], ids=["decode_splits", "prefill_tiles"])
def test_attention_block_through_the_triton_kernels(seq):
    """The same attention through the Triton backend (the interpreter on a machine without a GPU).
    Two prompts of 6 tokens (12 rows) take the split-KV decode kernel; of 20 (40 rows, tiles
    straddling the two prompts), the prefill kernel: a module's slots are constants, so past 16 rows
    it never stands for many sequences' single decode tokens."""
    from braze.codegen.triton import attention as attn_mod
    from braze.codegen.triton import emit_module

    torch.manual_seed(0)
    module = Attention(True).eval()
    x = torch.randn(2, seq, 32)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fast = compile_module(module.to(device), x.to(device), device=device, backend="triton")
    torch.testing.assert_close(fast(x.to(device)).cpu(), module(x.to(device)).cpu(), atol=1e-4, rtol=1e-4)
    assert f"if T <= {attn_mod.PROMPT_DECODE_MAX_T}:" in emit_module(fast.program)


class HandWrittenAttention(nn.Module):
    """GPT-style attention written out: q @ k^T, a causal buffer mask through masked_fill, softmax, @ v."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.register_buffer("causal", torch.tril(torch.ones(16, 16, dtype=torch.bool)))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in self.qkv(x).split(c, -1))
        scores = q @ k.transpose(-2, -1) / math.sqrt(c // self.heads)
        scores = scores.masked_fill(~self.causal[:t, :t], float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


def test_hand_written_attention_with_a_boolean_mask_equals_eager():
    torch.manual_seed(0)
    fast = check(HandWrittenAttention(), torch.randn(2, 6, 32), atol=1e-5)
    assert [k.kind for k in fast.program.kernels].count("batch_matmul") == 2


class MaskedSdpa(nn.Module):
    """scaled_dot_product_attention with the mask an input: boolean (True = attend) or additive."""

    def forward(self, q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def test_sdpa_with_a_boolean_mask_input_equals_eager():
    torch.manual_seed(0)
    mask = torch.rand(2, 1, 5, 7) < 0.7
    mask[..., 0] = True  # every query sees a key (a fully masked row is NaN in both)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    module = MaskedSdpa().eval()
    fast = compile_module(module, q, k, v, mask)
    torch.testing.assert_close(fast(q, k, v, mask), module(q, k, v, mask), atol=1e-5, rtol=1e-5)
    other = mask.roll(1, dims=-1) | (torch.arange(7) == 2)
    torch.testing.assert_close(fast(q, k, v, other), module(q, k, v, other), atol=1e-5, rtol=1e-5)


def test_sdpa_with_a_float_mask_input_equals_eager():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    bias = torch.randn(4, 6)  # an ALiBi-like additive bias, broadcast over batch and heads
    module = MaskedSdpa().eval()
    fast = compile_module(module, q, k, v, bias)
    torch.testing.assert_close(fast(q, k, v, bias), module(q, k, v, bias), atol=1e-5, rtol=1e-5)


class ConstantMaskSdpa(nn.Module):
    """A constant mask: causal (braze's attention op) or a sliding window (decomposed)."""

    def __init__(self, window: int | None):
        super().__init__()
        rows, cols = torch.arange(6)[:, None], torch.arange(6)[None, :]
        visible = cols <= rows if window is None else (cols <= rows) & (cols > rows - window)
        self.register_buffer("mask", visible)

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask, enable_gqa=True)


@pytest.mark.parametrize("window, kind", [(None, "attention"), (3, "batch_matmul")], ids=["causal", "window"])
def test_sdpa_with_a_constant_mask_picks_the_attention_op_when_it_is_causal(window, kind):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    fast = check(ConstantMaskSdpa(window), q, k, v)
    assert kind in [k.kind for k in fast.program.kernels]


class CompareAndSelect(nn.Module):
    """Comparisons, logical ops and where on activations, with bool and float outputs."""

    def forward(self, x, y):
        inside = (x >= -0.5) & (x < y)
        outside = ~inside | (x == 0) | (y != 1)
        clipped = torch.where(x > 0, x, 0.1 * x) + torch.clamp(y, -1, 1)
        return torch.where(inside, clipped, y.masked_fill(y <= 0, 0.0)), outside, (x > y).float().sum(-1)


def test_comparisons_and_where_on_activations_equal_eager():
    torch.manual_seed(0)
    fast = check(CompareAndSelect(), torch.randn(3, 10), torch.randn(3, 10))
    x, y = torch.randn(3, 10), torch.randn(3, 10)
    assert fast(x, y)[1].dtype == torch.bool


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # masked-off rows of a block
@pytest.mark.parametrize("module, shapes", [(HandWrittenAttention(), [(2, 6, 32)]),
                                            (CompareAndSelect(), [(3, 10), (3, 10)])], ids=["attention", "compare"])
def test_batched_matmul_and_selects_through_the_triton_kernels(module, shapes):
    """The Triton backend (the interpreter on a machine without a GPU, float32) on the new ops."""
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args = [torch.randn(s, device=device) for s in shapes]
    module = module.eval().to(device)
    fast = compile_module(module, *args, device=device, backend="triton")
    got, want = fast(*args), module(*args)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        torch.testing.assert_close(g.cpu(), w.cpu(), atol=1e-4, rtol=1e-4)


class Matmuls(nn.Module):
    """torch.matmul in its forms: [B, T, C] @ a weight, a vector, and bmm of two activations."""

    def __init__(self):
        super().__init__()
        self.w, self.v = nn.Parameter(torch.randn(12, 7)), nn.Parameter(torch.randn(7))

    def forward(self, x, y):
        h = x @ self.w                                   # [2, 5, 7]
        return h @ self.v, torch.bmm(h, y), y.transpose(1, 2) @ h.transpose(1, 2)


def test_matmul_forms_equal_eager():
    torch.manual_seed(0)
    check(Matmuls(), torch.randn(2, 5, 12), torch.randn(2, 7, 3), atol=1e-4, rtol=1e-4)


def test_dropout_in_attention_is_refused_with_the_reason():
    class Drops(nn.Module):
        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)

    ep = torch.export.export(Drops(), (torch.randn(1, 2, 4, 8),))
    with pytest.raises(UnsupportedOpError, match="dropout"):
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
