"""Pass tests: helpers live in pass_testlib.py (this folder is put on sys.path) and tests/support."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
