"""Prometheus metrics of one server, names prefixed braze_. Each server has its own registry (two
servers in one process, as in the tests, do not share counters). Gauges of the engine's state
(queue, running, KV cache) are read from the engine loop's latest snapshot at scrape time."""
from __future__ import annotations

import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# latency buckets from 1 ms (a GPU decode step) to a minute (a long CPU prefill behind a queue)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
                   30.0, 60.0)


class _EngineStateCollector:
    def __init__(self, snapshot: Callable[[], dict]):
        self.snapshot = snapshot

    def collect(self):
        s = self.snapshot()
        yield GaugeMetricFamily("braze_requests_waiting", "Requests queued, not yet admitted", value=s["waiting"])
        yield GaugeMetricFamily("braze_requests_running", "Requests in the running batch", value=s["running"])
        # the cache manager's units: blocks of the paged cache; the slot cache counts one-token blocks
        yield GaugeMetricFamily("braze_kv_cache_used_blocks", "KV cache blocks held by requests", value=s["kv_used"])
        yield GaugeMetricFamily("braze_kv_cache_total_blocks", "KV cache blocks in all", value=s["kv_total"])
        yield GaugeMetricFamily("braze_kv_cache_usage_ratio", "Fraction of the KV cache in use",
                                value=s["kv_used"] / max(s["kv_total"], 1))
        yield CounterMetricFamily("braze_preemptions", "Requests preempted (recomputed later) for cache room",
                                  value=s["preemptions"])
        yield CounterMetricFamily("braze_engine_steps", "Model steps run", value=s["steps"])


class ServerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.prompt_tokens = Counter("braze_prompt_tokens", "Prompt tokens of admitted requests", registry=r)
        self.generation_tokens = Counter("braze_generation_tokens", "Tokens generated", registry=r)
        self.requests = Counter("braze_requests_finished", "Requests finished, by finish reason",
                                ["finish_reason"], registry=r)
        self.time_to_first_token = Histogram("braze_time_to_first_token_seconds",
                                             "From a request's arrival to its first token", buckets=LATENCY_BUCKETS,
                                             registry=r)
        self.time_per_output_token = Histogram("braze_time_per_output_token_seconds",
                                               "Mean time between a request's tokens after the first",
                                               buckets=LATENCY_BUCKETS, registry=r)
        self.request_latency = Histogram("braze_e2e_request_latency_seconds", "From arrival to the last token",
                                         buckets=LATENCY_BUCKETS, registry=r)

    def watch_engine(self, snapshot: Callable[[], dict]) -> None:
        self.registry.register(_EngineStateCollector(snapshot))

    def finished(self, reason: str, stream, now: float | None = None) -> None:
        now = now or time.perf_counter()
        self.requests.labels(finish_reason=reason).inc()
        self.request_latency.observe(now - stream.arrived)
        if stream.first_token_at is not None and stream.num_output_tokens > 1:
            self.time_per_output_token.observe((now - stream.first_token_at) / (stream.num_output_tokens - 1))

    def render(self) -> bytes:
        return generate_latest(self.registry)
