"""The OpenAI-compatible HTTP app: /v1/models, /v1/completions, /v1/chat/completions (streamed
over SSE or not), /health, /metrics.

    app = build_app(braze.LLM("smollm2"), "smollm2", api_key=None)
    uvicorn.run(app, host="127.0.0.1", port=8000)

One EngineLoop thread runs the engine; handlers submit requests to it and read their tokens from
asyncio queues. A streaming client that goes away aborts its request (its cache is freed before
the next step); a non-streaming one is noticed within a second.
"""
from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from braze.errors import BrazeError, PromptTooLongError
from braze.serve.engine_loop import EngineLoop, RequestStream
from braze.serve.metrics import ServerMetrics
from braze.serve.protocol import ChatCompletionRequest, CompletionRequest, ServeError, bad_request
from braze.serve.text import TextAssembler

DISCONNECT_POLL_S = 1.0  # how often a non-streaming request checks that its client is still there


def build_app(llm, model_name: str, api_key: str | None = None, engine=None) -> FastAPI:
    """engine: the Engine to serve (default llm.engine); its thread is the only one to touch it."""
    metrics = ServerMetrics()
    engine_loop = EngineLoop(engine or llm.engine, metrics)
    metrics.watch_engine(lambda: engine_loop.stats)
    context = (engine or llm.engine).context
    vocab = llm.config.vocab_size

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        engine_loop.start()
        yield
        engine_loop.stop()

    app = FastAPI(title="braze", description="OpenAI-compatible completions served by braze", lifespan=lifespan)
    app.state.engine_loop, app.state.metrics = engine_loop, metrics

    def require_api_key(request: Request) -> None:
        if api_key is not None and request.headers.get("authorization", "") != f"Bearer {api_key}":
            raise ServeError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>' "
                                  "with the key braze serve was started with", code="invalid_api_key")

    def check_model(name: str) -> None:
        if name != model_name:
            raise ServeError(404, f"the model {name!r} does not exist; this server serves {model_name!r}",
                             code="model_not_found", param="model")

    def check_length(ids: list[int], max_tokens: int) -> None:
        if not ids:
            raise bad_request("the prompt is empty: give at least one token", "prompt")
        if len(ids) + max_tokens > context:
            raise ServeError(400, f"this model's context holds {context} tokens, but {len(ids)} prompt tokens "
                                  f"+ {max_tokens} max_tokens were asked for; shorten the prompt or lower "
                                  f"max_tokens", code="context_length_exceeded", param="max_tokens")

    @app.exception_handler(ServeError)
    async def _serve_error(_request, error: ServeError):
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(BrazeError)
    async def _braze_error(_request, error: BrazeError):
        code = "context_length_exceeded" if isinstance(error, PromptTooLongError) else "invalid_value"
        return JSONResponse(ServeError(400, str(error), code=code).body(), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(_request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
                             for e in error.errors()[:5])
        return JSONResponse(bad_request(f"invalid request: {problems}").body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, error: StarletteHTTPException):
        kind = "not_found" if error.status_code == 404 else "invalid_request_error"
        return JSONResponse(ServeError(error.status_code, str(error.detail), kind=kind).body(),
                            status_code=error.status_code)

    @app.get("/health")
    async def health():
        if not engine_loop.thread.is_alive():
            return JSONResponse({"status": "engine stopped"}, status_code=503)
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus_metrics():
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=[Depends(require_api_key)])
    async def list_models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": int(time.time()),
                                            "owned_by": "braze", "max_model_len": context,
                                            "vocab_size": vocab}]}

    def completion_prompt(prompt) -> list[int]:
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]  # a batch of one
        elif isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
            raise bad_request(f"got {len(prompt)} prompts; braze takes one prompt per request", "prompt")
        if isinstance(prompt, str):
            return llm.tokenizer.encode(prompt)
        bad = [t for t in prompt if not 0 <= t < vocab]
        if bad:
            raise bad_request(f"token id {bad[0]} is out of the vocabulary [0, {vocab})", "prompt")
        return list(prompt)

    @app.post("/v1/completions", dependencies=[Depends(require_api_key)])
    async def completions(body: CompletionRequest, request: Request):
        check_model(body.model)
        body.check_unsupported()
        ids = completion_prompt(body.prompt)
        params = body.sampling_params(16 if body.max_tokens is None else body.max_tokens)
        check_length(ids, params.max_tokens)
        return await _respond(request, body, ids, params, chat=False)

    @app.post("/v1/chat/completions", dependencies=[Depends(require_api_key)])
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        check_model(body.model)
        body.check_unsupported()
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        try:
            rendered = llm.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        except Exception as error:  # noqa: BLE001 (templates raise what they like on odd conversations)
            raise bad_request(f"the chat template cannot render these messages: {error}", "messages") from error
        ids = llm.tokenizer.encode(rendered, add_special_tokens=False)
        max_tokens = body.max_completion_tokens if body.max_tokens is None else body.max_tokens
        if max_tokens is None:
            max_tokens = max(context - len(ids), 1)  # as much as the context holds
        params = body.sampling_params(max_tokens)
        check_length(ids, params.max_tokens)
        return await _respond(request, body, ids, params, chat=True)

    async def _respond(request: Request, body, ids: list[int], params, chat: bool):
        stream = engine_loop.submit(ids, params, "chatcmpl" if chat else "cmpl")
        text = TextAssembler(llm.tokenizer, params.stop_strings)
        shape = ResponseShape(stream.request_id, model_name, chat)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_sse(stream, text, shape, include_usage), media_type="text/event-stream")
        pieces, finish_reason = [], None
        try:
            while finish_reason is None:
                try:
                    out = await asyncio.wait_for(stream.next(), DISCONNECT_POLL_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return Response(status_code=499)
                    continue
                pieces.append(text.feed(out.new_token_ids))
                if out.finished:
                    finish_reason = out.finish_reason
                    pieces.append(text.finish())
        finally:
            if finish_reason is None:
                engine_loop.abort(stream)
        return shape.response("".join(pieces), finish_reason, usage(stream))

    async def _sse(stream: RequestStream, text: TextAssembler, shape: "ResponseShape", include_usage: bool):
        finished = False
        try:
            if shape.chat:
                yield event(shape.chunk({"role": "assistant", "content": ""}, None))
            while not finished:
                try:
                    out = await stream.next()
                except Exception as error:  # noqa: BLE001 (the engine failed: tell the client, end the stream)
                    finished = True
                    yield event(ServeError(500, f"the engine failed: {error}", kind="server_error").body())
                    break
                piece = text.feed(out.new_token_ids)
                if out.finished:
                    finished = True
                    piece += text.finish()
                if piece:
                    yield event(shape.chunk(piece, None))
                if out.finished:
                    yield event(shape.chunk("", out.finish_reason))
                    if include_usage:
                        yield event(shape.usage_chunk(usage(stream)))
            yield "data: [DONE]\n\n"
        finally:
            if not finished:  # the client went away (the server cancelled this generator)
                engine_loop.abort(stream)

    return app


def usage(stream: RequestStream) -> dict:
    return {"prompt_tokens": stream.num_prompt_tokens, "completion_tokens": stream.num_output_tokens,
            "total_tokens": stream.num_prompt_tokens + stream.num_output_tokens}


def event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class ResponseShape:
    """OpenAI's JSON for one request: a whole response, or stream chunks."""

    def __init__(self, request_id: str, model: str, chat: bool):
        self.id, self.model, self.chat, self.created = request_id, model, chat, int(time.time())

    def _envelope(self, kind: str, choices: list) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices}

    def response(self, text: str, finish_reason: str, usage: dict) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": finish_reason}
            return {**self._envelope("chat.completion", [choice]), "usage": usage}
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return {**self._envelope("text_completion", [choice]), "usage": usage}

    def chunk(self, piece, finish_reason: str | None) -> dict:
        if self.chat:
            delta = piece if isinstance(piece, dict) else ({"content": piece} if piece else {})
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return self._envelope("chat.completion.chunk", [choice])
        choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope("text_completion", [choice])

    def usage_chunk(self, usage: dict) -> dict:
        return {**self._envelope("chat.completion.chunk" if self.chat else "text_completion", []), "usage": usage}
