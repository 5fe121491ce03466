"""The GPU model suite, end to end on the CPU with tiny configs, and its reference model vs transformers."""
from __future__ import annotations

import json
import math

import pytest
import torch

from braze.bench.suite import PEERS, decode_bytes_per_token, run_models_suite
from braze.bench.suite.checkpoint import load_state_dict, make_checkpoint
from braze.bench.suite.configs import MODEL_CONFIGS, tiny_config
from braze.bench.suite.reference_model import Transformer, generate
from braze.errors import InvalidArgumentError
from braze.frontend.hf import config_from_dict
from braze.models.config import expected_weight_shapes


def _hf_model(cfg: dict, seed: int = 0):
    transformers = pytest.importorskip("transformers")
    hf_cfg = transformers.AutoConfig.for_model(cfg["model_type"],
                                               **{k: v for k, v in cfg.items() if k != "model_type"})
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.float32).eval()
    with torch.no_grad():  # larger than HF's init so logits are peaked and greedy tokens are stable
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.3 if "embed" in name or "lm_head" in name else 0.1)
    return model


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_reference_model_matches_transformers(family):
    cfg = tiny_config(family)
    hf = _hf_model(cfg)
    ref = Transformer.from_state_dict(config_from_dict(cfg), hf.state_dict())
    ref.setup_caches(1, 128)
    ids = torch.randint(0, cfg["vocab_size"], (1, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(ids).logits
        got = ref(ids, torch.arange(40))
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        # the static cache: prefill 40 tokens, then decode one at a time
        hf_tokens = hf.generate(ids, max_new_tokens=12, min_new_tokens=12, do_sample=False, pad_token_id=0)
        assert generate(ref, ids, 12)[0].tolist() == hf_tokens[0, 40:].tolist()


def test_reference_model_has_bias_and_llama3_rope():
    qwen = config_from_dict(tiny_config("qwen2"))
    assert qwen.attention_bias and qwen.tie_word_embeddings
    llama = config_from_dict(MODEL_CONFIGS["llama-3.2-1b"])
    assert llama.rope_scaling["rope_type"] == "llama3" and llama.tie_word_embeddings


@pytest.mark.parametrize("name", list(MODEL_CONFIGS))
def test_real_configs_have_the_published_sizes(name):
    c = config_from_dict(MODEL_CONFIGS[name])
    total = sum(math.prod(s) for s in expected_weight_shapes(c).values())
    published = {"tinyllama-1.1b": 1.100, "llama-3.2-1b": 1.236, "qwen2.5-0.5b": 0.494, "qwen2.5-7b": 7.616,
                 "llama-3-8b": 8.030}[name]
    assert total / 1e9 == pytest.approx(published, rel=0.005)
    # a decode step reads every weight once, the embedding one row only, the LM head (tied or not) in full
    table = c.vocab_size * c.hidden_size
    read = total + c.hidden_size if c.tie_word_embeddings else total - table + c.hidden_size
    kv = 2 * c.num_layers * c.num_kv_heads * c.head_dim * 100
    assert decode_bytes_per_token(MODEL_CONFIGS[name], "bfloat16", 100) == 2 * (read + kv)


def test_checkpoint_is_cached_and_loads(tmp_path):
    cfg = tiny_config("qwen2")
    a = make_checkpoint("tiny", cfg, "float32", tmp_path, device="cpu", say=lambda *_: None)
    b = make_checkpoint("tiny", cfg, "float32", tmp_path, device="cpu", say=lambda *_: None)
    assert a == b and (a / "tokenizer.json").is_file()
    state = load_state_dict(a, "cpu")
    assert "lm_head.weight" not in state and "model.layers.0.self_attn.q_proj.bias" in state
    assert state["model.norm.weight"].eq(1).all()
    assert state["model.embed_tokens.weight"].std().item() == pytest.approx(0.02, rel=0.1)


def test_suite_end_to_end_on_cpu(tmp_path):
    out = tmp_path / "results" / "latest.json"
    lines: list[str] = []
    result = run_models_suite([("tiny-llama", tiny_config("llama")), ("tiny-qwen2", tiny_config("qwen2"))],
                              dtype="float32", device="cpu", prompt_len=8, new_tokens=128, prefill_len=32,
                              repeats=3, peers=("braze", "eager", "hf"), out=out, say=lines.append,
                              cache_dir=tmp_path / "models")
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    for key in ("device", "torch", "triton", "braze", "ceilings", "models"):
        assert key in saved
    assert saved["ceilings"]["copy_TBps"] > 0 and saved["ceilings"]["bf16_matmul_TFLOPs"] > 0
    assert [m["model"] for m in saved["models"]] == ["tiny-llama", "tiny-qwen2"]
    for m in saved["models"]:
        assert m["errors"] == {}, m["errors"]
        assert m["dtype"] == "float32"
        d, p = m["decode_bs1"], m["prefill_2048"]
        assert set(d) >= {"braze_tok_s", "torch_compile_tok_s", "torch_eager_tok_s", "hf_tok_s", "roofline_tok_s"}
        assert set(p) >= {"braze_tok_s", "torch_compile_tok_s", "torch_eager_tok_s"}
        assert d["torch_compile_tok_s"] is None and p["torch_compile_tok_s"] is None  # not asked for
        for v in (d["braze_tok_s"], d["torch_eager_tok_s"], d["hf_tok_s"], d["roofline_tok_s"],
                  p["braze_tok_s"], p["torch_eager_tok_s"], m["compile_cold_s"], m["compile_warm_s"]):
            assert v is not None and math.isfinite(v) and v > 0, m
    assert any("tiny-qwen2" in line for line in lines)  # the table went to `say`


def test_a_failing_peer_records_an_error_and_the_run_goes_on(tmp_path, monkeypatch):
    from braze.bench.suite import peers

    def boom(*args, **kwargs):
        raise RuntimeError("no CUDA backend yet")

    monkeypatch.setattr(peers, "run_braze", boom)
    result = run_models_suite([("tiny", tiny_config("llama"))], dtype="float32", device="cpu", prompt_len=8,
                              new_tokens=4, prefill_len=16, repeats=1, peers="braze,eager", out=None,
                              say=lambda *_: None, cache_dir=tmp_path)
    m = result["models"][0]
    assert "no CUDA backend yet" in m["errors"]["braze"]
    assert m["decode_bs1"]["braze_tok_s"] is None and m["decode_bs1"]["torch_eager_tok_s"] > 0


def test_unknown_peer_or_model_is_rejected():
    with pytest.raises(InvalidArgumentError, match="choose from: tinyllama-1.1b"):
        run_models_suite(["gpt-5"], out=None, say=lambda *_: None)
    with pytest.raises(InvalidArgumentError, match="vllm"):
        run_models_suite(peers="vllm", out=None, say=lambda *_: None)
    assert PEERS == ("braze", "eager", "compile", "hf")


def test_merge_keeps_other_models(tmp_path):
    out = tmp_path / "r.json"
    kw = dict(dtype="float32", device="cpu", prompt_len=4, new_tokens=2, prefill_len=8, repeats=1, peers="eager",
              out=out, say=lambda *_: None, cache_dir=tmp_path)
    run_models_suite([("a", tiny_config("llama"))], **kw)
    run_models_suite([("b", tiny_config("qwen2"))], merge=True, **kw)
    run_models_suite([("a", tiny_config("llama"))], merge=True, keep_checkpoints=False, **kw)
    saved = json.loads(out.read_text())
    assert sorted(m["model"] for m in saved["models"]) == ["a", "b"]
