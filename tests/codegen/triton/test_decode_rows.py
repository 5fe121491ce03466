"""A decode step (one new token per sequence) through the Triton kernels, with the attention
writing the new k|v rows itself (braze/passes/decode_rows.py): the same outputs and cache as the
Kernel IR reference, which runs the kv_store and the attention as written."""
from __future__ import annotations

import pytest
import torch

import braze.codegen.triton.module as triton_module
from braze.codegen.triton.module import EmitContext
from braze.codegen.triton.simple import emit_kv_store
from braze.ir.parse import parse_graph
from braze.passes.pipeline import lower
from braze.runtime.executable import Executable
from kv_layer_text import kv_layer_text  # noqa: E402  (tests/support)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("h, hkv, d", [(2, 1, 8), (6, 3, 16)])
@pytest.mark.parametrize("decode_step", [True, False])
def test_decode_attention_writing_its_rows_matches_the_reference(h, hkv, d, decode_step, monkeypatch):
    monkeypatch.setattr(triton_module, "PDL", False)  # with PDL the kv_store keeps writing (EmitContext)
    slots, context = 4, 40
    gen = torch.Generator().manual_seed(h * d)
    tables = {"cos": torch.randn(context, d // 2, generator=gen), "sin": torch.randn(context, d // 2, generator=gen)}
    program = lower(parse_graph(kv_layer_text(h, hkv, d, slots, context), tables, {"T": 8}))
    assert [k.attr("decode_rows_of") for k in program.kernels if k.kind == "attention"] == ["k0_kv_store"]
    # distinct slots; positions 0 (only the new row), inside the first split and past several splits
    feeds = {"qkv": torch.randn(4, (h + 2 * hkv) * d, generator=gen), "pos": torch.tensor([7, 0, 33, 1]),
             "slots": torch.tensor([2, 0, 1, 3]),
             "cache": torch.randn(slots, 2 * hkv, context, d, generator=gen)}
    want = Executable(program, backend="reference").run({k: v.clone() for k, v in feeds.items()})
    exe = Executable(program, backend="triton", device=DEVICE)
    got = exe.run({k: v.to(DEVICE, copy=True) for k, v in feeds.items()}, decode_step=decode_step)
    torch.testing.assert_close(got["out"].cpu(), want["out"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got["cache"].cpu(), want["cache"], rtol=1e-5, atol=1e-5)
    assert "    if s.get('decode_step'):\n        return  # k1_attention writes the rows" in exe.compiled.source


def test_with_pdl_the_kv_store_still_writes_every_step():
    program = lower(parse_graph(kv_layer_text(2, 1, 8, 2, 16), {"cos": torch.ones(16, 4), "sin": torch.zeros(16, 4)},
                                {"T": 4}))
    store = program.kernels[0]
    assert store.attr("decode_rows_by") == "k1_attention"
    assert not EmitContext(program, pdl=True).decode_rows(store)
    assert "decode_step" not in emit_kv_store(store, EmitContext(program, pdl=True)).launch
    assert "decode_step" in emit_kv_store(store, EmitContext(program, pdl=False)).launch


@pytest.mark.parametrize("decode_step", [True, False])
def test_decode_attention_loading_old_rows_before_the_wait_matches_the_reference(decode_step, monkeypatch):
    """EARLY_KV: q and the first chunk of each split's old rows are loaded before the wait, the token's
    own row (written by the kv_store just before) merged in after it. Small chunks and splits so the
    new row falls in a split's first chunk, in a later chunk, and alone at position 0."""
    import braze.codegen.triton.attention as attention
    monkeypatch.setattr(triton_module, "EARLY_KV", True)
    monkeypatch.setattr(EmitContext, "decode_rows", lambda self, kernel: False)  # the kv_store writes
    monkeypatch.setattr(attention, "DECODE_BN", 16)
    monkeypatch.setattr(attention, "DECODE_MIN_ROWS_PER_SPLIT", 16)
    h, hkv, d, slots, context = 4, 2, 16, 5, 120
    gen = torch.Generator().manual_seed(3)
    tables = {"cos": torch.randn(context, d // 2, generator=gen), "sin": torch.randn(context, d // 2, generator=gen)}
    program = lower(parse_graph(kv_layer_text(h, hkv, d, slots, context), tables, {"T": 8}))
    feeds = {"qkv": torch.randn(5, (h + 2 * hkv) * d, generator=gen), "pos": torch.tensor([119, 0, 40, 17, 64]),
             "slots": torch.tensor([2, 0, 1, 4, 3]), "cache": torch.randn(slots, 2 * hkv, context, d, generator=gen)}
    want = Executable(program, backend="reference").run({k: v.clone() for k, v in feeds.items()})
    exe = Executable(program, backend="triton", device=DEVICE)
    got = exe.run({k: v.to(DEVICE, copy=True) for k, v in feeds.items()}, decode_step=decode_step)
    assert "EARLY_KV=bool(s.get('decode_step'))" in exe.compiled.source
    torch.testing.assert_close(got["out"].cpu(), want["out"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got["cache"].cpu(), want["cache"], rtol=1e-5, atol=1e-5)


def test_no_early_cache_loads_after_a_kernel_writing_positions_or_as_a_program_s_first_kernel():
    import braze.codegen.triton.attention as attention
    from braze.codegen.triton.attention_decode import early_kv_safe
    program = lower(parse_graph(kv_layer_text(2, 1, 8, 2, 16), {"cos": torch.ones(16, 4), "sin": torch.zeros(16, 4)},
                                {"T": 4}))
    store, attn = program.kernels[0], program.kernels[1]
    ctx = EmitContext(program, pdl=True, early_kv=True)
    q, kc, vc, slots, pos = attn.operands[:5]
    kv, index = {kc.buffer, vc.buffer}, {slots.buffer, pos.buffer}
    assert early_kv_safe(attn, ctx, kv, index)
    assert "EARLY_KV=" in attention.emit_attention(attn, ctx).launch
    assert not early_kv_safe(store, ctx, kv, index)  # first kernel: the launch before is unknown
    assert not early_kv_safe(attn, ctx, kv, {slots.buffer, pos.buffer, store.output.buffer})
    assert "EARLY_KV=" not in attention.emit_attention(attn, EmitContext(program, pdl=True)).launch
