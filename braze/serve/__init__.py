"""`braze serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) over braze's engine."""
from braze.serve.app import build_app

__all__ = ["build_app"]
