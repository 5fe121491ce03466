"""Helpers of the serve tests (imported as `serve_testlib`: conftest.py puts this folder on sys.path)."""
from __future__ import annotations

import socket
import threading
import time

API_KEY = "test-key"
MODEL = "smollm2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """uvicorn in a thread on a free port; `url` is the root, `app` the FastAPI app."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    @property
    def engine_stats(self) -> dict:
        return self.app.state.engine_loop.stats

    def wait_idle(self, timeout: float = 30.0) -> dict:
        """Wait until no request is waiting or running; returns the engine's stats then."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.engine_stats
            if (stats["running"] == 0 and stats["waiting"] == 0) or time.monotonic() > deadline:
                return stats
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
