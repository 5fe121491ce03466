"""The engine's own thread: it owns the Engine, takes requests and aborts from a queue between
steps, and hands each step's tokens to the asyncio side through per-request queues.

The engine is not thread-safe, so only this thread touches it; HTTP handlers talk to it with
`submit` (returns a RequestStream to iterate) and `abort`.
"""
from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from dataclasses import dataclass, field

from braze.debug import log
from braze.runtime.engine import Engine, StepOutput
from braze.runtime.sampling import SamplingParams
from braze.serve.metrics import ServerMetrics


@dataclass
class RequestStream:
    """One request's tokens as they come: `await stream.next()` gives StepOutputs, the last one
    finished (or raises the engine's error)."""
    request_id: str
    num_prompt_tokens: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    arrived: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    num_output_tokens: int = 0

    def put(self, item: StepOutput | BaseException) -> None:  # from the engine thread
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    async def next(self) -> StepOutput:
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


class EngineLoop:
    IDLE_WAIT_S = 0.5  # how long an idle loop sleeps before looking for work again (woken earlier)

    def __init__(self, engine: Engine, metrics: ServerMetrics):
        self.engine, self.metrics = engine, metrics
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.wake = threading.Event()
        self.streams: dict[str, RequestStream] = {}
        self.stats = engine.stats()  # the latest snapshot, read by /metrics and /health
        self._ids = itertools.count()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="braze-engine", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        self.thread.join(timeout=30)

    def submit(self, prompt_ids: list[int], params: SamplingParams, prefix: str = "cmpl") -> RequestStream:
        """Queue a request (from the event loop's thread); its tokens come through the stream."""
        self.engine.check_prompt(prompt_ids)  # reads only fixed sizes: safe from this thread
        stream = RequestStream(f"{prefix}-{next(self._ids)}-{time.time_ns():x}", len(prompt_ids),
                               asyncio.get_running_loop())
        self.inbox.put(("add", stream, prompt_ids, params))
        self.wake.set()
        return stream

    def abort(self, stream: RequestStream) -> None:
        """Drop a request (its client went away): the engine frees its cache before its next step."""
        self.inbox.put(("abort", stream))
        self.wake.set()

    def _take_inbox(self) -> None:
        while True:
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                break
            if message[0] == "add":
                _, stream, prompt_ids, params = message
                try:
                    self.engine.add_request(stream.request_id, prompt_ids, params)
                    self.streams[stream.request_id] = stream
                    self.metrics.prompt_tokens.inc(len(prompt_ids))
                except Exception as error:  # noqa: BLE001 (a request's error goes to its client)
                    stream.put(error)
            else:
                stream = message[1]
                if self.streams.pop(stream.request_id, None) is not None:
                    self.engine.abort(stream.request_id)
                    self.metrics.finished("abort", stream)
        self.stats = self.engine.stats()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._take_inbox()
            if not self.engine.has_unfinished():
                self.wake.wait(self.IDLE_WAIT_S)
                self.wake.clear()
                continue
            try:
                outputs = self.engine.step()
            except Exception as error:  # noqa: BLE001 (fail the running requests, keep serving)
                log(0, f"engine step failed: {error!r}")
                for request_id, stream in list(self.streams.items()):
                    self.engine.abort(request_id)
                    stream.put(error)
                self.streams.clear()
                continue
            now = time.perf_counter()
            for out in outputs:
                stream = self.streams.get(out.request_id)
                if stream is None:
                    continue
                if out.new_token_ids:
                    if stream.first_token_at is None:
                        stream.first_token_at = now
                        self.metrics.time_to_first_token.observe(now - stream.arrived)
                    stream.num_output_tokens += len(out.new_token_ids)
                    self.metrics.generation_tokens.inc(len(out.new_token_ids))
                if out.finished:
                    del self.streams[out.request_id]
                    self.metrics.finished(out.finish_reason, stream, now)
                stream.put(out)
            self.stats = self.engine.stats()
