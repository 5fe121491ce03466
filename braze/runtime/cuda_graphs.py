"""CUDA graphs for the decode step: one graph per batch-size bucket, replayed over static buffers.

Decode launches ~5 kernels a layer; launched from Python each costs tens of microseconds, more
than the kernel itself at batch 1. A captured graph replays them all with one call. Batches
smaller than their bucket are padded with tokens that write only the cache's spare slot.

Each graph also takes the greedy token and feeds it back as the next step's input (position + 1),
so greedy decoding can replay several steps back to back and read their tokens with one
synchronization: the GPU never waits for the host between tokens.
"""
from __future__ import annotations

import torch

from braze.debug import log


def decode_buckets(max_batch: int) -> list[int]:
    buckets, b = [], 1
    while b < max_batch:
        buckets.append(b)
        b *= 2
    return buckets + [max_batch]


class DecodeGraphs:
    def __init__(self, executable, caches: dict[str, torch.Tensor], max_batch: int, pad_slot: int):
        self.executable = executable
        self.caches = caches
        self.pad_slot = pad_slot
        self.buckets = decode_buckets(max_batch)
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], torch.Tensor]] = {}
        self.pool = None  # graphs share one memory pool

    def _capture(self, n: int):
        device = self.executable.device
        static = {"tokens": torch.zeros(n, dtype=torch.int64, device=device),
                  "positions": torch.zeros(n, dtype=torch.int64, device=device),
                  "slots": torch.full((n,), self.pad_slot, dtype=torch.int64, device=device),
                  "logits_index": torch.arange(n, dtype=torch.int64, device=device)}
        feeds = {**static, **self.caches}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # compile kernels and allocate scratch outside the capture
            for _ in range(2):
                self.executable.run(feeds)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            logits = self.executable.run(feeds)["logits"]
            static["next"] = torch.argmax(logits, dim=-1)
            static["tokens"].copy_(static["next"])
            static["positions"].add_(1)
        self.pool = graph.pool()
        log(1, f"captured the decode step for batch {n} as a CUDA graph")
        self.graphs[n] = (graph, static, logits)
        return self.graphs[n]

    def capture_all(self) -> None:
        for n in self.buckets:
            if n not in self.graphs:
                self._capture(n)

    def _load(self, tokens: list[int], positions: list[int], slots: list[int]):
        n = len(tokens)
        bucket = next(b for b in self.buckets if b >= n)
        graph, static, logits = self.graphs.get(bucket) or self._capture(bucket)
        pad = bucket - n
        host = torch.tensor([tokens + [0] * pad, positions + [0] * pad, slots + [self.pad_slot] * pad],
                            dtype=torch.int64).pin_memory()
        static["tokens"].copy_(host[0], non_blocking=True)
        static["positions"].copy_(host[1], non_blocking=True)
        static["slots"].copy_(host[2], non_blocking=True)
        return graph, static, logits

    def run(self, tokens: list[int], positions: list[int], slots: list[int]) -> torch.Tensor:
        """One decode step; returns the logits [n, vocab] (valid until the next replay)."""
        graph, _, logits = self._load(tokens, positions, slots)
        graph.replay()
        return logits[: len(tokens)]

    def run_greedy(self, tokens: list[int], positions: list[int], slots: list[int], steps: int) -> list[list[int]]:
        """`steps` greedy decode steps back to back; returns each sequence's new tokens."""
        graph, static, _ = self._load(tokens, positions, slots)
        out = torch.empty((steps, static["next"].shape[0]), dtype=torch.int64, device=static["next"].device)
        for i in range(steps):
            graph.replay()
            out[i].copy_(static["next"])
        return out[:, : len(tokens)].T.tolist()
