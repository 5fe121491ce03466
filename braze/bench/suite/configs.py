"""The published config.json of each benchmarked model (only the keys a decoder needs).

The suite benchmarks random weights of these exact shapes: speed does not depend on the values,
and no download is needed.
"""
from __future__ import annotations

_LLAMA_COMMON = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "attention_bias": False,
    "mlp_bias": False,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "pretraining_tp": 1,
    "use_cache": True,
}

_QWEN2_COMMON = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_act": "silu",
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_scaling": None,
    "use_sliding_window": False,
    "use_cache": True,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
}

MODEL_CONFIGS: dict[str, dict] = {
    # TinyLlama/TinyLlama-1.1B-Chat-v1.0
    "tinyllama-1.1b": {
        **_LLAMA_COMMON,
        "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
        "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None,
        "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
    },
    # meta-llama/Llama-3.2-1B
    "llama-3.2-1b": {
        **_LLAMA_COMMON,
        "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
        "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": True, "bos_token_id": 128000, "eos_token_id": 128001,
    },
    # Qwen/Qwen2.5-0.5B
    "qwen2.5-0.5b": {
        **_QWEN2_COMMON,
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "max_position_embeddings": 32768, "sliding_window": 32768, "max_window_layers": 24,
        "tie_word_embeddings": True,
    },
    # Qwen/Qwen2.5-7B
    "qwen2.5-7b": {
        **_QWEN2_COMMON,
        "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "max_position_embeddings": 131072, "sliding_window": 131072, "max_window_layers": 28,
        "tie_word_embeddings": False,
    },
    # meta-llama/Meta-Llama-3-8B
    "llama-3-8b": {
        **_LLAMA_COMMON,
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "rope_scaling": None,
        "tie_word_embeddings": False, "bos_token_id": 128000, "eos_token_id": 128001,
    },
}

DEFAULT_MODELS = tuple(MODEL_CONFIGS)


def tiny_config(family: str = "llama", **overrides) -> dict:
    """A small config of the same families, for tests and smoke runs on the CPU."""
    base = dict(MODEL_CONFIGS["qwen2.5-0.5b" if family == "qwen2" else "llama-3.2-1b"])
    base.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=512, max_position_embeddings=4096)
    base.pop("head_dim", None)
    if family == "llama":
        base.update(rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 64, "rope_type": "llama3"},
                    bos_token_id=1, eos_token_id=2)
    else:
        base.update(bos_token_id=1, eos_token_id=2, sliding_window=None)
    base.update(overrides)
    return base

PEERS = ("braze", "eager", "compile", "hf")


def add_selection_args(parser) -> None:
    """--models, --peers and --merge: the suite's own command line and `braze bench --suite models`."""
    parser.add_argument("--models", default=None, help=f"comma-separated subset of: {', '.join(MODEL_CONFIGS)}")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset of: " + ",".join(PEERS))
    parser.add_argument("--merge", action="store_true",
                        help="keep the other models already in the results file (run a few models per invocation)")
