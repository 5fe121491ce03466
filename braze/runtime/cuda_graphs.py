"""CUDA graphs for model steps: one graph per batch-size bucket for decode (DecodeGraphs), and one
per token-count bucket for prefill and mixed steps (StepGraphs), replayed over static buffers.

Decode launches ~5 kernels a layer; launched from Python each costs tens of microseconds, more
than the kernel itself at batch 1. A captured graph replays them all with one call. Batches
smaller than their bucket are padded with tokens that write only the cache's spare slot.

Each graph also takes the greedy token and feeds it back as the next step's input (position + 1),
so greedy decoding can replay several steps back to back and read their tokens with one
synchronization: the GPU never waits for the host between tokens.

A prefill step launches the same ~150 kernels plus library calls whose host cost (cuBLASLt's
per-call heuristics for fp8 _scaled_mm: ~45 us, a Triton launch: ~25 us) made a 2048-token
prefill host-bound on the H100 (fp8: 6.5 ms of GPU work in a 20 ms step). StepGraphs pads the
step's tokens to a bucket (padding rows write the spare slot, as in decode) and its sampled rows
to a power of two, and replays.
"""
from __future__ import annotations

import torch

from braze.debug import log


def static_inputs(device, n: int, pad_slot: int, logits_index: torch.Tensor) -> dict[str, torch.Tensor]:
    """A graph's input buffers for n tokens, every row a padding row until loaded."""
    return {"tokens": torch.zeros(n, dtype=torch.int64, device=device),
            "positions": torch.zeros(n, dtype=torch.int64, device=device),
            "slots": torch.full((n,), pad_slot, dtype=torch.int64, device=device),
            "logits_index": logits_index}


def grow_scratch(executable, caches: dict, max_tokens: int, pad_slot: int) -> None:
    """Run one step of max_tokens padding rows before any capture. Library matmuls and split-K
    stage through workspaces that grow to the largest step seen (matmul_library.py); a graph
    captured with a smaller workspace would keep its address after a later, larger step
    reallocated it, and replay into freed memory (an illegal address on the H100 when the
    allocator had reused it). After this step no workspace grows again."""
    inputs = static_inputs(executable.device, max_tokens, pad_slot,
                           torch.zeros(1, dtype=torch.int64, device=executable.device))
    executable.run({**inputs, **caches})
    torch.cuda.synchronize()


def capture(executable, feeds: dict, pool, after=None, decode_step: bool = False):
    """(graph, logits) of one run of the executable on `feeds` captured in `pool`; after(logits)
    is captured too. Two runs on a side stream first compile the kernels and allocate scratch
    outside the capture. decode_step: see Executable.run."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            executable.run(feeds, decode_step=decode_step)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        logits = executable.run(feeds, decode_step=decode_step)["logits"]
        if after is not None:
            after(logits)
    return graph, logits


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
        static = static_inputs(self.executable.device, n, self.pad_slot,
                               torch.arange(n, dtype=torch.int64, device=self.executable.device))

        def feed_back(logits):  # the greedy token becomes the next step's input, one position on
            static["next"] = torch.argmax(logits, dim=-1)
            static["tokens"].copy_(static["next"])
            static["positions"].add_(1)
        # one token per sequence (padding rows all write the spare slot's rows, with equal values)
        graph, logits = capture(self.executable, {**static, **self.caches}, self.pool, feed_back, decode_step=True)
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
        return self.launch_greedy(tokens, positions, slots, steps)[:, : len(tokens)].T.tolist()

    def launch_greedy(self, tokens: list[int], positions: list[int], slots: list[int], steps: int) -> torch.Tensor:
        """Enqueue `steps` greedy decode steps back to back without waiting for them: the device
        tensor [steps, bucket] of the tokens they make (column i: sequence i, padding past the batch)."""
        graph, static, _ = self._load(tokens, positions, slots)
        self._greedy = (graph, static)
        return self.continue_greedy(steps)

    def continue_greedy(self, steps: int) -> torch.Tensor:
        """`steps` more greedy steps from where the last launch_greedy's left off: each step feeds its
        token and position back on the device, so no host input is needed (a chunk launched before the
        previous one is read keeps the GPU busy while the host checks stops)."""
        graph, static = self._greedy
        out = torch.empty((steps, static["next"].shape[0]), dtype=torch.int64, device=static["next"].device)
        for i in range(steps):
            graph.replay()
            out[i].copy_(static["next"])
        return out


STEP_GRAPH_FINE = 512   # token buckets: powers of two up to here, then multiples of STEP_GRAPH_STEP
STEP_GRAPH_STEP = 256   # (padding costs at most a third of a step past 512 tokens)


def step_buckets(max_tokens: int) -> list[int]:
    """Token-count buckets of prefill / mixed steps up to max_tokens (the compiled bound)."""
    buckets, b = [], 16
    while b < min(max_tokens, STEP_GRAPH_FINE):
        buckets.append(b)
        b *= 2
    b = STEP_GRAPH_FINE
    while b < max_tokens:
        buckets.append(b)
        b += STEP_GRAPH_STEP
    return buckets + [max_tokens]


class StepGraphs:
    """Prefill and mixed steps (any tokens, positions and slots; logits of some rows) as CUDA
    graphs, captured on first use of a (token bucket, sampled-rows bucket) and sharing the decode
    graphs' memory pool (`pool_owner.pool`): steps never run concurrently."""

    def __init__(self, executable, caches: dict[str, torch.Tensor], max_tokens: int, pad_slot: int, pool_owner):
        self.executable = executable
        self.caches = caches
        self.pad_slot = pad_slot
        self.buckets = step_buckets(max_tokens)
        self.pool_owner = pool_owner
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], torch.Tensor]] = {}

    def _capture(self, n: int, rows: int):
        static = static_inputs(self.executable.device, n, self.pad_slot,
                               torch.zeros(rows, dtype=torch.int64, device=self.executable.device))
        graph, logits = capture(self.executable, {**static, **self.caches}, self.pool_owner.pool)
        self.pool_owner.pool = graph.pool()
        log(1, f"captured a {n}-token step ({rows} sampled rows) as a CUDA graph")
        self.graphs[(n, rows)] = (graph, static, logits)
        return self.graphs[(n, rows)]

    def fits(self, num_tokens: int) -> bool:
        return num_tokens <= self.buckets[-1]

    def run(self, tokens: list[int], positions: list[int], slots: list[int], logits_index: list[int]) -> torch.Tensor:
        """One step; returns the logits of logits_index's rows (valid until the next replay)."""
        n = next(b for b in self.buckets if b >= len(tokens))
        rows = 1 << max(0, (len(logits_index) - 1).bit_length())
        graph, static, logits = self.graphs.get((n, rows)) or self._capture(n, rows)
        pad, pad_rows = n - len(tokens), rows - len(logits_index)
        host = torch.tensor(tokens + [0] * pad + positions + [0] * pad + slots + [self.pad_slot] * pad
                            + logits_index + [0] * pad_rows, dtype=torch.int64).pin_memory()
        static["tokens"].copy_(host[:n], non_blocking=True)
        static["positions"].copy_(host[n: 2 * n], non_blocking=True)
        static["slots"].copy_(host[2 * n: 3 * n], non_blocking=True)
        static["logits_index"].copy_(host[3 * n:], non_blocking=True)
        graph.replay()
        return logits[: len(logits_index)]


def model_graphs(executable, caches: dict[str, torch.Tensor], max_batch: int, max_tokens: int) -> tuple:
    """(DecodeGraphs, StepGraphs) of an executable whose cache has a spare slot at index max_batch
    (the padding rows write it), after the one max-size step that must precede any capture."""
    grow_scratch(executable, caches, max_tokens, pad_slot=max_batch)
    decode = DecodeGraphs(executable, caches, max_batch, pad_slot=max_batch)
    return decode, StepGraphs(executable, caches, max_tokens, max_batch, decode)
