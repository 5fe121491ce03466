"""OpenAI's request shapes (the subset braze serves), the error body, and request -> SamplingParams.

Fields OpenAI has and braze does not support are accepted only at their neutral value, so a
client that sets them gets a 400 that says so rather than a silent difference.
"""
from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from braze.runtime.sampling import SamplingParams

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class ServeError(Exception):
    """A request the server refuses: HTTP status, OpenAI error type and code."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> ServeError:
    return ServeError(400, message, code=code, param=param)


class StreamOptions(BaseModel):
    include_usage: bool = False


class _SamplingFields(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown fields (user, metadata, ...) are ignored

    model: str
    max_tokens: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX, description="braze extension: keep the k most likely")
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    stop: Union[str, list[str], None] = None
    n: int | None = Field(1, ge=INT64_MIN, le=INT64_MAX)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = 0.0
    frequency_penalty: float | None = 0.0
    ignore_eos: bool = Field(False, description="braze extension: keep going past end-of-sequence tokens")

    def check_unsupported(self) -> None:
        if self.n not in (None, 1):
            raise bad_request(f"n={self.n} is not supported: braze returns one choice per request; "
                              f"send n separate requests (with different seeds to sample differently)", "n")
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) not in (None, 0, 0.0):
                raise bad_request(f"{name} is not supported; leave it out or set it to 0", name)

    def sampling_params(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(max_tokens=max_tokens,
                              temperature=1.0 if self.temperature is None else self.temperature,
                              top_p=1.0 if self.top_p is None else self.top_p,
                              top_k=-1 if self.top_k is None else self.top_k,
                              seed=self.seed, stop=self.stop, ignore_eos=self.ignore_eos)


class CompletionRequest(_SamplingFields):
    prompt: Union[str, list[str], list[int], list[list[int]]]
    logprobs: int | None = None
    echo: bool | None = False
    suffix: str | None = None

    def check_unsupported(self) -> None:
        super().check_unsupported()
        if self.logprobs is not None:
            raise bad_request("logprobs are not supported; leave logprobs out", "logprobs")
        if self.echo:
            raise bad_request("echo is not supported; leave it out or set it to false", "echo")
        if self.suffix:
            raise bad_request("suffix (insertion) is not supported; leave it out", "suffix")


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[TextPart], None] = None

    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    logprobs: bool | None = False
    top_logprobs: int | None = None
    tools: list[dict] | None = None

    def check_unsupported(self) -> None:
        super().check_unsupported()
        if not self.messages:
            raise bad_request("messages is empty: give at least one message", "messages")
        if self.logprobs or self.top_logprobs is not None:
            raise bad_request("logprobs are not supported; leave logprobs and top_logprobs out", "logprobs")
        if self.tools:
            raise bad_request("tools (function calling) are not supported; leave tools out", "tools")
