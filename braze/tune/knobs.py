"""Knobs: the launch parameters chosen for one kernel, per bucket, with where each came from.

A kernel's `knobs` attr (attached by braze.tune.choose_knobs) is read by the emitters:
`knobs.get(bucket)` is a config dict or None (then the emitter's own heuristic applies).

Buckets split a kernel's runtime sizes into ranges that get one config each (the launcher picks
the range at run time, so no recompilation per size):
  Triton matmul    1 (M == 1), 16 (M <= 16), 64 (M <= 64), 0 (larger)   - matmul.M_BUCKETS
  Triton attention 1 (decode, T <= 16), 0 (prefill)
  C++ matmul       1 (M == 1), 0 (larger)
  everything else  0 (one config)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SOURCES = ("db", "model", "heuristic")


def config_text(config: dict) -> str:
    """A config's canonical form: the tuning database's key column and what a record stores."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def config_label(config: dict) -> str:
    """Short human form: 'gemv block_n=4 block_k=1024 num_warps=4'."""
    head = [str(config["variant"])] if "variant" in config else []
    return " ".join(head + [f"{k}={v}" for k, v in sorted(config.items()) if k != "variant"])


@dataclass(frozen=True)
class Knobs:
    entries: tuple[tuple[int, tuple[tuple[str, Any], ...], str], ...]  # (bucket, config items, source)

    @classmethod
    def of(cls, chosen: dict[int, tuple[dict, str]]) -> "Knobs":
        """chosen: bucket -> (config, source); source in SOURCES."""
        return cls(tuple((bucket, tuple(sorted(config.items())), source)
                         for bucket, (config, source) in sorted(chosen.items())))

    def get(self, bucket: int) -> dict | None:
        for b, items, _ in self.entries:
            if b == bucket:
                return dict(items)
        return None

    def source(self, bucket: int) -> str | None:
        for b, _, source in self.entries:
            if b == bucket:
                return source
        return None

    def __str__(self) -> str:
        return "{" + "; ".join(f"{b}: {config_label(dict(items))} [{source}]" for b, items, source in self.entries) + "}"
