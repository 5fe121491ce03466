"""C++ backend tests: a hermetic compile cache per session; helpers live in cpp_testlib.py."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True, scope="session")
def _cpp_cache_dir(tmp_path_factory):
    """Hermetic compile cache shared by this session's tests."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAZE_CACHE_DIR", str(tmp_path_factory.mktemp("braze_cache")))
    yield
    mp.undo()
