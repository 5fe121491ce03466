"""Shared fixtures: tiny random Hugging Face checkpoints (all four families) and a tiny GGUF.

Sizes are deliberately odd (hidden 72/88, head_dim 12/18/20/22, GQA) so kernels cannot rely on
multiples of 16. Weights are re-initialised with a larger spread than HF's default (std 0.02) so
logits are peaked and greedy decoding is stable when comparing against transformers.

    def test_x(tiny_checkpoints):            # {"llama": Path, "llama3_rope": ..., "mistral": ...,
        path = tiny_checkpoints["qwen3"]     #  "qwen2": ..., "qwen3": ...}
"""
from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# Without a GPU, Triton kernels run in Triton's interpreter. Set it before anything imports triton
# (transformers does, through torch._dynamo): when the model tests ran before the Triton ones, a
# kernel module then failed inside the interpreter ("Cannot call @triton.jit'd outside of the
# scope of a kernel").
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# `make test` installs braze editable; a bare `.venv/bin/pytest` (importlib mode) would not find it.
if importlib.util.find_spec("braze") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TINY_VOCAB = 320
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_CORPUS = [
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))",
    "Hello, world! How are you today? I am fine, thank you.",
    "Compilers turn programs into machine code; interpreters run them directly.",
    "café naïve résumé 東京 😀 ✓ — “quotes” and ‘more’",
    "for i in range(10): total += i * i  # sum of squares",
    "Once upon a time there was a tiny language model that loved to count: one two three four.",
]

# family -> (transformers config class name, config kwargs)
FAMILIES: dict[str, tuple[str, dict]] = {
    "llama": ("LlamaConfig", dict(
        hidden_size=72, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
        intermediate_size=120, rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=1, eos_token_id=2,
    )),
    "llama3_rope": ("LlamaConfig", dict(
        hidden_size=72, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        intermediate_size=120, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
    )),
    "mistral": ("MistralConfig", dict(
        hidden_size=88, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=136, rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=None,
        bos_token_id=1, eos_token_id=2,
    )),
    "qwen2": ("Qwen2Config", dict(
        hidden_size=72, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
        intermediate_size=120, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=2,
    )),
    "qwen3": ("Qwen3Config", dict(
        hidden_size=72, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=20,
        intermediate_size=104, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=2,
    )),
}
MODEL_CLASSES = {
    "LlamaConfig": "LlamaForCausalLM", "MistralConfig": "MistralForCausalLM",
    "Qwen2Config": "Qwen2ForCausalLM", "Qwen3Config": "Qwen3ForCausalLM",
}


def build_tiny_tokenizer():
    """A byte-level BPE with exactly TINY_VOCAB entries, wrapped for save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    assert tok.get_vocab_size() == TINY_VOCAB, tok.get_vocab_size()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
    )


def _spread_init(model: torch.nn.Module) -> None:
    """Larger random weights than HF's init so the tiny model has confident, stable predictions."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.4 * torch.randn_like(p))  # logit std ~ 0.4 * sqrt(hidden) ~ 3.5
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))


def make_tiny_checkpoint(family: str, folder: Path, *, seed: int = 0, max_shard_size: str | None = None) -> Path:
    """Save a tiny random float32 checkpoint of `family` (a key of FAMILIES) with tokenizer into folder."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    config_cls, kwargs = FAMILIES[family]
    config = getattr(transformers, config_cls)(
        vocab_size=TINY_VOCAB, max_position_embeddings=256, torch_dtype="float32", **kwargs
    )
    torch.manual_seed(seed)
    model = getattr(transformers, MODEL_CLASSES[config_cls])(config).float().eval()
    _spread_init(model)
    if family == "qwen2":  # generation_config.json adds a second stop token, as real Qwen2 does
        model.generation_config = transformers.GenerationConfig(eos_token_id=[2, 0], bos_token_id=None)
    folder.mkdir(parents=True, exist_ok=True)
    extra = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(folder, **extra)
    build_tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture
def triton_device(monkeypatch) -> str:
    """Where a Triton backend test runs its kernels: the GPU when there is one, else Triton's
    interpreter on the CPU. (Setting TRITON_INTERPRET on a GPU machine would mix interpreted
    kernels with @triton.jit helpers already compiled for the GPU, which the interpreter refuses.)"""
    pytest.importorskip("triton")
    if torch.cuda.is_available():
        return "cuda"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    return "cpu"


@pytest.fixture(scope="module")
def fresh_braze_cache(tmp_path_factory):
    """BRAZE_CACHE_DIR in a new folder for one test module, so its kernels are compiled rather
    than read from an earlier run's cache (`pytestmark = pytest.mark.usefixtures(...)`)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAZE_CACHE_DIR", str(tmp_path_factory.mktemp("braze_cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """family -> folder of a tiny random HF checkpoint: llama, llama3_rope, mistral, qwen2, qwen3."""
    root = tmp_path_factory.mktemp("tiny_checkpoints")
    return {family: make_tiny_checkpoint(family, root / family) for family in FAMILIES}


# family -> (config class, model class, extra config) of the in-memory models the PyTorch path takes
CAUSAL_LM_FAMILIES: dict[str, tuple[str, str, dict]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {"head_dim": 16}),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}),
}
CAUSAL_LM_VOCAB = 128


def make_tiny_causal_lm(family: str) -> torch.nn.Module:
    """A tiny random float32 transformers causal LM (hidden 64, 2 layers, 4 heads, 2 KV heads,
    vocab 128) with sdpa attention and no KV cache, in eval mode: what torch.export sees."""
    import transformers

    config_class, model_class, extra = CAUSAL_LM_FAMILIES[family]
    config = getattr(transformers, config_class)(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
        vocab_size=CAUSAL_LM_VOCAB, max_position_embeddings=64, attn_implementation="sdpa", use_cache=False, **extra)
    torch.manual_seed(0)
    return getattr(transformers, model_class)(config).float().eval()


@pytest.fixture
def tiny_causal_lm():
    """make_tiny_causal_lm: family (a key of CAUSAL_LM_FAMILIES) -> model."""
    return make_tiny_causal_lm


@pytest.fixture(scope="session")
def tiny_sharded_checkpoint(tmp_path_factory) -> Path:
    """The same weights as tiny_checkpoints["llama"] (same seed), saved in several shards + index."""
    folder = tmp_path_factory.mktemp("tiny_sharded") / "llama"
    make_tiny_checkpoint("llama", folder, max_shard_size="40KB")
    return folder


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permutation of q/k rows (the frontend must undo it)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf_from_checkpoint(folder: Path, out: Path) -> Path:
    """Convert a tiny llama checkpoint to an F32 GGUF the way llama.cpp does (names, permutation,
    byte-level BPE tokenizer metadata)."""
    import json

    import gguf
    from safetensors.torch import load_file

    cfg = json.loads((folder / "config.json").read_text())
    tok = json.loads((folder / "tokenizer.json").read_text())
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in SPECIAL_TOKENS else 1 for t in tokens])
    merges = tok["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML_TEMPLATE)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    for name, t in load_file(str(folder / "model.safetensors")).items():
        a = t.float().numpy()
        if name in names:
            gname = names[name]
        else:
            _, _, i, *rest = name.split(".")
            gname = f"blk.{i}.{layer['.'.join(rest[:-1])]}.{rest[-1]}"
        if name.endswith("q_proj.weight"):
            a = _llama_cpp_permute(a, heads)
        elif name.endswith("k_proj.weight"):
            a = _llama_cpp_permute(a, kv_heads)
        w.add_tensor(gname, np.ascontiguousarray(a, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


@pytest.fixture(scope="session")
def tiny_gguf(tiny_checkpoints, tmp_path_factory) -> Path:
    """tiny_checkpoints["llama"] converted to an F32 llama GGUF file (loads in well under a second)."""
    return write_gguf_from_checkpoint(tiny_checkpoints["llama"], tmp_path_factory.mktemp("tiny_gguf") / "tiny.gguf")
