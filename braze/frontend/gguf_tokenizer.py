"""Rebuild a `tokenizers` tokenizer from a GGUF file's metadata (GGUFs carry no tokenizer.json)."""
from __future__ import annotations

from functools import lru_cache

import tokenizers
from tokenizers import AddedToken, decoders, models, pre_tokenizers

from braze.errors import UnsupportedArchitectureError
from braze.frontend.tokenizer import Tokenizer

# llama.cpp token types (gguf.TokenType)
CONTROL, USER_DEFINED = 3, 4


@lru_cache(maxsize=1)
def _byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character table used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _pre_tokenizer(pre: str | None):
    if pre == "smollm":
        # SmolLM's own tokenizer.json (and llama.cpp's "smollm" rule) splits every digit apart.
        return pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        )
    return pre_tokenizers.ByteLevel(add_prefix_space=False)


def tokenizer_from_gguf(meta: dict, source: str) -> Tokenizer:
    """meta: the `tokenizer.*` GGUF keys already read into Python values."""
    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
        what = "sentencepiece (\"llama\")" if kind == "llama" else repr(kind)
        raise UnsupportedArchitectureError(
            f"{source}: GGUF tokenizer type {what} is not supported yet; braze reads byte-level BPE "
            "(\"gpt2\") GGUF tokenizers; use the Hugging Face checkpoint folder of this model instead"
        )
    tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
    types: list[int] = list(meta.get("tokenizer.ggml.token_type") or [])
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges") or []]

    # Some converters store a token as raw text; respell it in the byte alphabet so merges match.
    spelling = _byte_alphabet()
    alphabet = set(spelling.values())
    vocab = {}
    for index, token in enumerate(tokens):
        if not set(token) <= alphabet:
            token = "".join(spelling[b] for b in token.encode("utf-8"))
        vocab.setdefault(token, index)
    backend = tokenizers.Tokenizer(models.BPE(vocab, merges, fuse_unk=False, byte_fallback=False))
    backend.pre_tokenizer = _pre_tokenizer(meta.get("tokenizer.ggml.pre"))
    backend.decoder = decoders.ByteLevel()

    # Control tokens (<|im_start|>) must match whole in text; a "control" token spelled outside the
    # byte alphabet is a converter mislabel, skipped as transformers does.
    specials = [
        AddedToken(t, special=True, normalized=False)
        for t, ty in zip(tokens, types)
        if ty == CONTROL and set(t) <= alphabet
    ]
    user = [AddedToken(t, special=False, normalized=False) for t, ty in zip(tokens, types) if ty == USER_DEFINED]
    backend.add_special_tokens(specials)
    backend.add_tokens(user)

    def token_at(key: str) -> str | None:
        index = meta.get(key)
        return tokens[index] if index is not None and 0 <= index < len(tokens) else None

    eos_ids = tuple(
        dict.fromkeys(
            meta[k] for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id") if meta.get(k) is not None
        )
    )
    return Tokenizer(
        backend,
        bos_token=token_at("tokenizer.ggml.bos_token_id"),
        eos_token=token_at("tokenizer.ggml.eos_token_id"),
        add_bos_token=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        chat_template=meta.get("tokenizer.chat_template"),
        extra_eos_ids=eos_ids,
    )
