"""The decode attention's L2 prefetch programs (braze/passes/prefetch.py, braze/codegen/triton/
prefetch.py): the launcher adds them only where the GPU has bulk prefetch, with 16-byte-aligned
byte ranges of the tagged weights; on a Hopper GPU the step computes exactly what it computes
without them, and matches the Kernel IR reference."""
from __future__ import annotations

import pytest
import torch

import braze.codegen.triton.module as triton_module
from braze.codegen.triton.attention import emit_attention
from braze.codegen.triton.module import EmitContext
from braze.ir.parse import parse_graph
from braze.passes.pipeline import lower
from braze.passes.prefetch import prefetch_weights_in_attention, without_prefetch
from braze.runtime.executable import Executable
from kv_layer_text import kv_layer_text  # (tests/support)


def _layer(h: int, hkv: int, d: int, slots: int, context: int, hidden: int, up: int, dtype: str) -> str:
    """One attention layer, then an O projection [hidden, h*d] and an up projection [up, hidden]."""
    short = {"float32": "f32", "bfloat16": "bf16"}[dtype]
    text = kv_layer_text(h, hkv, d, slots, context).replace("f32[", f"{short}[")
    return text.replace("return out=%6, cache=%2", f"""%wo = weight() {{name="wo"}} : {short}[{hidden}, {h * d}]
    %wu = weight() {{name="wu"}} : {short}[{up}, {hidden}]
    %7 = linear(%6, %wo) : {short}[T, {hidden}]
    %8 = linear(%7, %wu) : {short}[T, {up}]
    return out=%8, cache=%2""")


def _weights(h, d, context, hidden, up, dtype, gen):
    dt = getattr(torch, dtype)
    return {"cos": torch.randn(context, d // 2, generator=gen).to(dt), "sin": torch.randn(context, d // 2, generator=gen).to(dt),
            "wo": (torch.randn(hidden, h * d, generator=gen) / (h * d) ** 0.5).to(dt),
            "wu": (torch.randn(up, hidden, generator=gen) / hidden ** 0.5).to(dt)}


def test_the_launcher_prefetches_aligned_byte_ranges_only_where_asked():
    program = prefetch_weights_in_attention(
        without_prefetch(lower(parse_graph(_layer(2, 1, 8, 3, 8, 12, 20, "float32"),
                                           _weights(2, 8, 8, 12, 20, "float32", torch.Generator().manual_seed(0)),
                                           {"T": 4}))), budget=1000)
    attention = next(k for k in program.kernels if k.kind == "attention")
    assert attention.attr("prefetch") == (("wo", 0, 192), ("wu", 0, 58))
    wo, wu = (EmitContext(program).buf(name) for name in ("wo", "wu"))
    launch = emit_attention(attention, EmitContext(program, l2_prefetch=True)).launch
    # 192 float32 = 768 bytes; 58 float32 = 232 bytes, of which 224 are whole 16-byte units
    assert f"{wo}, {wu}, " in launch and "PF_LO0=0, PF_HI0=768, PF_LO1=0, PF_HI1=224, PF_LO2=0, PF_HI2=0" in launch
    assert "ns + kv_new + 2)]" in launch and "PF=2, PF_LANES=128" in launch
    plain = emit_attention(attention, EmitContext(program, l2_prefetch=False)).launch
    assert "ns + kv_new + 0)]" in plain and "PF=0," in plain and "PF_HI0=0," in plain


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 9,
                    reason="needs a Hopper or newer GPU (bulk L2 prefetch)")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("t", [1, 5])
def test_gpu_decode_with_prefetch_programs_computes_what_it_did_without(dtype, t, monkeypatch):
    monkeypatch.setattr(triton_module, "L2_PREFETCH", True)
    h, hkv, d, slots, context, hidden, up = 6, 3, 16, 6, 300, 576, 4099
    gen = torch.Generator().manual_seed(t)
    weights = _weights(h, d, context, hidden, up, dtype, gen)
    base = without_prefetch(lower(parse_graph(_layer(h, hkv, d, slots, context, hidden, up, dtype), weights, {"T": 8})))
    # 3 MB: wo whole (hidden x h*d), then a ragged cut of wu, over several prefetch programs and lanes
    tagged = prefetch_weights_in_attention(base, budget=3 << 20)
    assert len(next(k for k in tagged.kernels if k.kind == "attention").attr("prefetch")) == 2
    positions = [299, 0, 150, 64, 17][:t]
    feeds = {"qkv": torch.randn(t, (h + 2 * hkv) * d, generator=gen).to(getattr(torch, dtype)),
             "pos": torch.tensor(positions), "slots": torch.tensor([5, 0, 2, 3, 1][:t]),
             "cache": torch.randn(slots, 2 * hkv, context, d, generator=gen).to(getattr(torch, dtype))}
    want = Executable(base, backend="reference").run({k: v.clone() for k, v in feeds.items()})
    outs = []
    for program in (base, tagged):
        exe = Executable(program, backend="triton", device="cuda")
        outs.append(exe.run({k: v.to("cuda", copy=True) for k, v in feeds.items()}, decode_step=True))
    assert "cp.async.bulk.prefetch.L2" in exe.compiled.source and "+ 2)](" in exe.compiled.source
    assert torch.equal(outs[0]["out"], outs[1]["out"]) and torch.equal(outs[0]["cache"], outs[1]["cache"])
    tol = dict(rtol=1e-3, atol=1e-3) if dtype == "float32" else dict(rtol=3e-2, atol=3e-2)
    torch.testing.assert_close(outs[1]["out"].float().cpu(), want["out"].float(), **tol)
