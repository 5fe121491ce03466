"""Run the GPU model benchmark suite: `python bench/run_models.py --models llama-3.2-1b --peers braze,compile`.

Same as `python -m braze.bench.suite` (and `braze bench --device cuda --suite models`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from braze.bench.suite import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
