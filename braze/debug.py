"""One debug knob: BRAZE_DEBUG=0..4 (or braze.debug.set_debug_level from code).

1: decisions (memory plan, cache hits, timings)  2: per-pass statistics  3: generated sources
4: the IR after every pass.  Errors show their traceback from level 1 on.
"""
from __future__ import annotations

import os
import sys

_level: int | None = None


def debug_level() -> int:
    if _level is not None:
        return _level
    try:
        return int(os.environ.get("BRAZE_DEBUG", "0"))
    except ValueError:
        return 0


def set_debug_level(level: int | None) -> None:
    global _level
    _level = level


def log(level: int, message: str) -> None:
    if debug_level() >= level:
        print(f"[braze] {message}", file=sys.stderr, flush=True)
