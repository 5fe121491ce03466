"""The L2 prefetch of the GEMV after a decode attention (braze/passes/prefetch.py, braze/codegen/
triton/prefetch.py): the launcher passes 16-byte-aligned byte ranges of the tagged weights only
where the GPU has bulk prefetch and kernels launch with PDL, the prefetch comes before the GEMV's
griddepcontrol.wait; on a Hopper GPU the step computes exactly what it computes without it, and
matches the Kernel IR reference."""
from __future__ import annotations

import pytest
import torch

import braze.codegen.triton.module as triton_module
from braze.codegen.triton.matmul import emit_matmul
from braze.codegen.triton.module import EmitContext, _wait_for_previous_kernel
from braze.ir.parse import parse_graph
from braze.passes.pipeline import lower
from braze.passes.prefetch import prefetch_weights_during_attention, without_prefetch
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
    program = prefetch_weights_during_attention(
        without_prefetch(lower(parse_graph(_layer(2, 1, 8, 3, 8, 12, 20, "float32"),
                                           _weights(2, 8, 8, 12, 20, "float32", torch.Generator().manual_seed(0)),
                                           {"T": 4}))), budget=1000)
    o_proj = program.kernels[2]
    assert o_proj.attr("prefetch") == (("wo", 0, 192), ("wu", 0, 58))
    wo, wu = (EmitContext(program).buf(name) for name in ("wo", "wu"))
    emitted = emit_matmul(o_proj, EmitContext(program, pdl=True, l2_prefetch=True))
    # 192 float32 = 768 bytes; 58 float32 = 232 bytes, of which 224 are whole 16-byte units; the
    # unused ranges are empty
    assert (f"PF0={wo}, PF1={wu}, PF2={wo}, PF3={wo}, PF_LO0=0, PF_HI0=768, PF_LO1=0, PF_HI1=224, "
            "PF_LO2=0, PF_HI2=0, PF_LO3=0, PF_HI3=0, num_warps=") in emitted.launch
    # the prefetch goes before the wait for the attention, the rest of the GEMV after it
    source = _wait_for_previous_kernel(emitted.jit, {"KERNEL", "KERNEL_gemm"})
    gemv = source[source.index("def KERNEL("):source.index("def KERNEL_gemm(")]
    assert gemv.index("_braze_prefetch_ranges(") < gemv.index("gdc_wait()") < gemv.index("cols = ")
    assert source.count("gdc_wait()") == 2  # the GEMM's at its top, as before
    for ctx in (EmitContext(program, pdl=False, l2_prefetch=True), EmitContext(program, pdl=True)):
        plain = emit_matmul(o_proj, ctx)
        assert "PF0" not in plain.launch and "_braze_prefetch_ranges" not in plain.jit


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 9,
                    reason="needs a Hopper or newer GPU (bulk L2 prefetch)")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("t", [1, 5])
def test_gpu_decode_with_prefetch_computes_what_it_did_without(dtype, t, monkeypatch):
    monkeypatch.setattr(triton_module, "L2_PREFETCH", True)
    monkeypatch.setattr(triton_module, "PDL", True)
    h, hkv, d, slots, context, hidden, up = 6, 3, 16, 6, 300, 576, 4099
    gen = torch.Generator().manual_seed(t)
    weights = _weights(h, d, context, hidden, up, dtype, gen)
    base = without_prefetch(lower(parse_graph(_layer(h, hkv, d, slots, context, hidden, up, dtype), weights, {"T": 8})))
    # 3 MB: wo whole (hidden x h*d), then a ragged cut of wu, over many programs and lanes
    tagged = prefetch_weights_during_attention(base, budget=3 << 20)
    assert len(tagged.kernels[2].attr("prefetch")) == 2
    positions = [299, 0, 150, 64, 17][:t]
    feeds = {"qkv": torch.randn(t, (h + 2 * hkv) * d, generator=gen).to(getattr(torch, dtype)),
             "pos": torch.tensor(positions), "slots": torch.tensor([5, 0, 2, 3, 1][:t]),
             "cache": torch.randn(slots, 2 * hkv, context, d, generator=gen).to(getattr(torch, dtype))}
    want = Executable(base, backend="reference").run({k: v.clone() for k, v in feeds.items()})
    outs = []
    for program in (base, tagged):
        exe = Executable(program, backend="triton", device="cuda")
        outs.append(exe.run({k: v.to("cuda", copy=True) for k, v in feeds.items()}, decode_step=True))
    assert "cp.async.bulk.prefetch.L2" in exe.compiled.source
    assert torch.equal(outs[0]["out"], outs[1]["out"]) and torch.equal(outs[0]["cache"], outs[1]["cache"])
    tol = dict(rtol=1e-3, atol=1e-3) if dtype == "float32" else dict(rtol=3e-2, atol=3e-2)
    torch.testing.assert_close(outs[1]["out"].float().cpu(), want["out"].float(), **tol)
