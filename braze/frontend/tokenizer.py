"""One tokenizer type for HF folders and GGUF files: encode, decode, chat template, streaming."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import tokenizers

from braze.errors import InvalidArgumentError, ModelNotFoundError, WeightFileError


def _token_text(value) -> str | None:
    """tokenizer_config.json writes special tokens as a string or as an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def _pick_template(value) -> str | None:
    """chat_template is a string, or (older files) a list of named templates."""
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        return named.get("default") or next(iter(named.values()), None)
    return value or None


class Tokenizer:
    """A `tokenizers.Tokenizer` plus what the model adds around it (BOS, EOS ids, chat template)."""

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        add_bos_token: bool = False,
        chat_template: str | None = None,
        extra_eos_ids: tuple[int, ...] = (),
    ):
        self.backend = backend
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.bos_token_id = backend.token_to_id(bos_token) if bos_token else None
        self.add_bos_token = add_bos_token and self.bos_token_id is not None
        self.chat_template = chat_template
        eos = list(extra_eos_ids)
        own = backend.token_to_id(eos_token) if eos_token else None
        if own is not None and own not in eos:
            eos.append(own)
        self.eos_token_ids: tuple[int, ...] = tuple(eos)
        self._compiled = None

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        # BOS is added here, not by the backend's post-processor, so both sources behave alike.
        ids = self.backend.encode(text, add_special_tokens=False).ids
        if add_special_tokens and self.add_bos_token and (not ids or ids[0] != self.bos_token_id):
            ids = [self.bos_token_id, *ids]
        return ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def incremental_decoder(self, skip_special_tokens: bool = True) -> "IncrementalDecoder":
        return IncrementalDecoder(self, skip_special_tokens)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True, **extra) -> str:
        """Render the model's chat template the way transformers does."""
        if not self.chat_template:
            raise InvalidArgumentError(
                "this model has no chat template; use generate with a plain prompt instead of chat"
            )
        import jinja2

        if self._compiled is None:
            self._compiled = _compile_template(self.chat_template)
        try:
            return self._compiled.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token or "",
                eos_token=self.eos_token or "",
                **extra,
            )
        except jinja2.TemplateError as e:
            raise InvalidArgumentError(f"the model's chat template rejected these messages: {e}") from e

    @classmethod
    def from_hf_folder(cls, folder: str | Path, model_eos_ids: tuple[int, ...] = ()) -> "Tokenizer":
        folder = Path(folder)
        tok_file = folder / "tokenizer.json"
        if not tok_file.is_file():
            raise ModelNotFoundError(
                f"{folder} has no tokenizer.json; braze needs the fast-tokenizer file "
                "(save it with transformers' AutoTokenizer.save_pretrained)"
            )
        try:
            backend = tokenizers.Tokenizer.from_file(str(tok_file))
        except Exception as e:
            raise WeightFileError(f"cannot read {tok_file}: {e}; re-download it") from e
        cfg = _read_optional_json(folder / "tokenizer_config.json")
        template = _pick_template(cfg.get("chat_template"))
        if template is None and (folder / "chat_template.jinja").is_file():
            template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        if template is None:
            template = _pick_template(_read_optional_json(folder / "chat_template.json").get("chat_template"))
        bos = _token_text(cfg.get("bos_token"))
        if "add_bos_token" in cfg:
            add_bos = bool(cfg["add_bos_token"])
        else:  # no flag: add BOS when the tokenizer.json post-processor would (Llama-style)
            bos_id = backend.token_to_id(bos) if bos else None
            probe = backend.encode("a", add_special_tokens=True).ids
            add_bos = bos_id is not None and bool(probe) and probe[0] == bos_id
        return cls(
            backend,
            bos_token=bos,
            eos_token=_token_text(cfg.get("eos_token")),
            add_bos_token=add_bos,
            chat_template=template,
            extra_eos_ids=model_eos_ids,
        )


def _read_optional_json(file: Path) -> dict:
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except ValueError as e:
        raise WeightFileError(f"cannot parse {file}: {e}; re-download it") from e


def _compile_template(source: str):
    """Same environment as transformers: sandboxed, trim/lstrip blocks, raise_exception, tojson."""
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # jinja's own tojson escapes HTML characters, which would change the prompt
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise InvalidArgumentError(f"the model's chat template does not parse: {e}") from e


class IncrementalDecoder:
    """Turn a growing list of ids into text pieces for streaming.

    Decodes a small window (the previous few tokens plus the new ones) rather than everything,
    and holds text back while it ends in U+FFFD: a multi-byte character split across tokens.
    Decoding from one token earlier keeps leading spaces that decoders strip at the start.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.prefix_offset = 0  # window start
        self.read_offset = 0  # ids before this were already returned as text

    def step(self, ids: list[int]) -> str:
        """Given all ids so far, return the text not yet returned ('' while a character is partial)."""
        decode = self.tokenizer.decode
        prefix = decode(ids[self.prefix_offset : self.read_offset], self.skip_special_tokens)
        text = decode(ids[self.prefix_offset :], self.skip_special_tokens)
        if len(text) <= len(prefix) or text.endswith("\ufffd"):
            return ""
        self.prefix_offset, self.read_offset = self.read_offset, len(ids)
        return text[len(prefix) :]

    def flush(self, ids: list[int]) -> str:
        """At the end of generation, return whatever was held back (even a partial character)."""
        decode = self.tokenizer.decode
        prefix = decode(ids[self.prefix_offset : self.read_offset], self.skip_special_tokens)
        text = decode(ids[self.prefix_offset :], self.skip_special_tokens)
        self.prefix_offset = self.read_offset = len(ids)
        return text[len(prefix) :] if text.startswith(prefix) else ""
