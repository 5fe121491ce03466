"""Stop strings: where generated text ends, and how much of it streaming must hold back.

As in vLLM, the output is cut where the earliest stop string starts and the stop string
itself is not part of the output.  While streaming, the last few characters that could be the
start of a stop string are held back until the next tokens show whether they are.
"""

from __future__ import annotations

from collections.abc import Iterable


def find_stop(text: str, stops: Iterable[str] | None, start: int = 0) -> int | None:
    """Index in `text` where the earliest stop string starts, or None when none occurs.

    `start` skips the part of `text` already searched (pass `len(old) - max_stop_len + 1`
    when text grows by appending, so each step costs only the new characters).
    """
    best: int | None = None
    for s in stops or ():
        if not s:
            continue
        i = text.find(s, max(0, start))
        if i != -1 and (best is None or i < best):
            best = i
    return best


def holdback(text: str, stops: Iterable[str] | None) -> int:
    """Number of trailing characters of `text` that could be the beginning of a stop string.

    Those characters must not be shown yet: the next token may complete the stop string.
    """
    n = 0
    for s in stops or ():
        # Longest k such that text ends with s[:k]; k < len(s) unless text ends with all of s.
        for k in range(min(len(s), len(text)), n, -1):
            if text.endswith(s[:k]):
                n = k
                break
    return n


class StopStringMatcher:
    """Incremental stop-string check for one request's streamed text.

    `feed(piece)` appends newly decoded text and returns the text that is now safe to show.
    After a stop string is found `stopped` is True, `text` is the final output (cut before
    the stop string) and later feeds return "".
    """

    def __init__(self, stops: Iterable[str] | None):
        self.stops = [s for s in (stops or ()) if s]
        self._max = max((len(s) for s in self.stops), default=0)
        self._buf = ""
        self._shown = 0
        self.stopped = False
        self.stop_string: str | None = None

    @property
    def text(self) -> str:
        return self._buf

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        old_len = len(self._buf)
        self._buf += piece
        if self.stops:
            i = find_stop(self._buf, self.stops, start=old_len - self._max + 1)
            if i is not None:
                self.stop_string = next(s for s in self.stops if self._buf.startswith(s, i))
                self._buf = self._buf[:i]
                self.stopped = True
                return self.flush()
        end = len(self._buf) - holdback(self._buf, self.stops)
        out = self._buf[self._shown:end] if end > self._shown else ""
        self._shown = max(self._shown, end)
        return out

    def flush(self) -> str:
        """Everything not shown yet (call at the end of generation: nothing is held back then)."""
        out = self._buf[self._shown:]
        self._shown = len(self._buf)
        return out
