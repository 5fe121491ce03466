"""AWQ's two searches on their own: the clipping search (lower output error on outliers, no clip
where clipping cannot help, only ever shrinking weights) and the scale folding (the float model is
the same, checked against transformers' own Llama, grouped-query heads included)."""
import pytest
import torch

from braze.frontend.hf import config_from_dict
from braze.quant.awq import awq_scale_weights, search_clip
from braze.quant.formats import fake_quantize_int4


def _output_error(x, w, wq):
    return (x @ wq.T - x @ w.T).pow(2).sum().item()


def _outliers(input_gain: float):
    """[64, 320] weights with, in every row-group of 128 (the last one short, 64, as SmolLM2's
    K = 576), an outlier each side at 10 standard deviations (so a zero point cannot absorb it), on
    input channels `input_gain` times as large as the others."""
    gen = torch.Generator().manual_seed(0)
    n, k = 64, 320
    w = torch.randn(n, k, generator=gen) * 0.02
    x = torch.randn(512, k, generator=gen)
    for g0 in (0, 128, 256):
        w[:, g0 + 3], w[:, g0 + 7] = 0.2, -0.2
        x[:, [g0 + 3, g0 + 7]] *= input_gain
    return w, x


@pytest.mark.parametrize("zero_point", [True, False])
def test_clip_lowers_the_output_error_of_weights_with_outliers(zero_point):
    w, x = _outliers(input_gain=0.1)  # outliers on quiet inputs: clamping them costs little
    clipped, ratios = search_clip(x, w, 128, zero_point)
    assert ratios.shape == (64, 3) and clipped.shape == w.shape
    assert torch.all(ratios < 1)
    rtn = _output_error(x, w, fake_quantize_int4(w, 128, zero_point))
    awq = _output_error(x, w, fake_quantize_int4(clipped, 128, zero_point))
    assert awq < 0.5 * rtn, (awq, rtn)
    # the clip only ever moves a weight toward zero, never past it
    assert torch.all(clipped.abs() <= w.abs()) and torch.all(clipped * w >= 0)
    # the same weights on loud inputs: every bit of an outlier counts, so they keep their range
    w, x = _outliers(input_gain=10.0)
    clipped, ratios = search_clip(x, w, 128, zero_point)
    assert torch.all(ratios == 1.0) and torch.equal(clipped, w)


@pytest.mark.parametrize("zero_point", [True, False])
def test_clip_ratio_is_one_when_clipping_cannot_help(zero_point):
    """Weights already on their group's int4 grid quantize exactly: any clip only adds error."""
    gen = torch.Generator().manual_seed(1)
    n, k, group = 16, 256, 64
    lo, hi = (-7, 8) if zero_point else (-7, 7)  # zero points: 15 steps over [min, max]; else max|w| / 7
    q = torch.randint(lo, hi + 1, (n, k), generator=gen)
    q[:, 0::group], q[:, 1::group] = lo, hi  # every row-group spans the whole grid
    w = q.float() / 64  # a power-of-two step: fp16 scales and zero points are exact
    assert torch.equal(fake_quantize_int4(w, group, zero_point), w)
    clipped, ratios = search_clip(torch.randn(128, k, generator=gen), w, group, zero_point)
    assert torch.all(ratios == 1.0)
    assert torch.equal(clipped, w)


def _tiny_llama(num_kv_heads: int):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=num_kv_heads, vocab_size=96,
                                      max_position_embeddings=128, architectures=["LlamaForCausalLM"],
                                      attn_implementation="sdpa")
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).float().eval()
    with torch.no_grad():  # uneven channels, as trained models have, so the scales are far from 1
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape) * 2 + 0.1)
            elif name.endswith("proj.weight"):
                p.mul_(torch.rand(p.shape[1]) * 3 + 0.2)
    return model


@pytest.mark.parametrize("num_kv_heads", [2, 4])  # grouped-query heads (O's scales tied per V row), and not
def test_scale_folding_keeps_the_float_model(num_kv_heads):
    model = _tiny_llama(num_kv_heads)
    config = config_from_dict(model.config.to_dict())
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ids = torch.randint(0, 96, (100,), generator=torch.Generator().manual_seed(2)).tolist()
    scaled = awq_scale_weights(config, weights, ids, group=32, clip=False)
    assert set(scaled) == set(weights)
    for name in ("input_layernorm", "post_attention_layernorm"):  # the scales were folded somewhere
        assert not torch.allclose(scaled[f"model.layers.0.{name}.weight"], weights[f"model.layers.0.{name}.weight"])
    for name in ("self_attn.o_proj", "mlp.down_proj"):
        assert not torch.allclose(scaled[f"model.layers.1.{name}.weight"], weights[f"model.layers.1.{name}.weight"])
    tokens = torch.tensor([ids[:64]])
    with torch.no_grad():
        before = model(tokens).logits
        model.load_state_dict(scaled)
        after = model(tokens).logits
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_clip_changes_only_the_clipped_linears_and_only_toward_zero():
    model = _tiny_llama(2)
    config = config_from_dict(model.config.to_dict())
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ids = torch.randint(0, 96, (100,), generator=torch.Generator().manual_seed(3)).tolist()
    scaled = awq_scale_weights(config, weights, ids, group=32, clip=False)
    clipped = awq_scale_weights(config, weights, ids, group=32, clip=True)
    changed = set()
    for name, w in scaled.items():
        c = clipped[name]
        assert torch.all(c.abs() <= w.abs()) and torch.all(c * w >= 0), name
        if not torch.equal(c, w):
            changed.add(name.split(".")[-2])
    assert changed and not changed & {"q_proj", "k_proj"}  # Q/K keep their range
    assert changed <= {"v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
