"""C++ backend tests: a hermetic compile cache per session; helpers live in tests/support/cpp_testlib.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/support, not this folder: this folder holds `triton/`, which would shadow the real package
# (as an empty namespace package) wherever triton is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))


@pytest.fixture(autouse=True, scope="session")
def _cpp_cache_dir(tmp_path_factory):
    """Hermetic compile cache shared by this session's tests."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAZE_CACHE_DIR", str(tmp_path_factory.mktemp("braze_cache")))
    yield
    mp.undo()
