"""A request's text as its tokens come: incremental detokenization, then stop strings held back
until the next tokens show whether they complete (as `braze generate` streams)."""
from __future__ import annotations

from braze.frontend.tokenizer import IncrementalDecoder
from braze.runtime.stop import StopStringMatcher


class TextAssembler:
    def __init__(self, tokenizer, stop_strings: list[str]):
        self.decoder = IncrementalDecoder(tokenizer)
        self.matcher = StopStringMatcher(stop_strings)
        self.ids: list[int] = []

    def feed(self, new_ids: list[int]) -> str:
        """The text that may be shown now, given the request's new token ids."""
        if not new_ids:
            return ""
        self.ids += new_ids
        return self.matcher.feed(self.decoder.step(self.ids))

    def finish(self) -> str:
        """Whatever was held back: a partial character, the start of a stop string that never completed."""
        tail = self.matcher.feed(self.decoder.flush(self.ids))
        return tail if self.matcher.stopped else tail + self.matcher.flush()
