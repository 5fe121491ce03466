"""Train the shipped cost model (braze/tune/shipped_model.*) from measurement files (JSON lines as
`braze tune --export` and bench/tuning_eval.py write them, .gz allowed), every target at once:

    python -m braze.tune.train_shipped tests/tune/fixtures/cpp_measurements.jsonl.gz \\
        bench/results/tuning-cuda.records.jsonl
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from braze.tune.cost_model import SHIPPED, CostModel
from braze.tune.db import TuningDB


def train_shipped(files: list[str], out: Path = SHIPPED) -> CostModel:
    with tempfile.TemporaryDirectory() as tmp:
        db = TuningDB(Path(tmp) / "train.db")
        for f in files:
            db.import_jsonl(f)
        ok = [r for r in db.all_records(status="ok") if r.features and r.time_us]
        db.close()
    model = CostModel.train([(r.features_dict, r.time_us, r.target) for r in ok],
                            devices={r.device_name for r in ok})
    model.save(out)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--out", default=str(SHIPPED))
    args = parser.parse_args(argv)
    model = train_shipped(args.files, Path(args.out))
    print(f"{args.out}: {model.meta['backend']}, {model.meta['records']} records, targets {model.meta['targets']}, "
          f"devices {model.meta['devices']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
