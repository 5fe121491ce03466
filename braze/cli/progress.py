"""A rich spinner that names the current load/compile step (on stderr, so stdout stays the answer)."""
from __future__ import annotations

import contextlib
import time

from rich.console import Console

console = Console(stderr=True)


@contextlib.contextmanager
def load_progress(enabled: bool = True):
    """Yields a callback `step(name)`; prints each finished step with its time."""
    if not enabled:
        yield lambda name: None
        return
    state = {"name": None, "start": time.perf_counter()}
    with console.status("starting") as status:
        def step(name: str) -> None:
            now = time.perf_counter()
            if state["name"]:
                console.print(f"[dim]  {state['name']} ({now - state['start']:.1f}s)[/dim]")
            state.update(name=name, start=now)
            status.update(name + "...")
        yield step
        if state["name"]:
            console.print(f"[dim]  {state['name']} ({time.perf_counter() - state['start']:.1f}s)[/dim]")
