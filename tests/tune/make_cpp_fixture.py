"""Measure every C++ matmul config of a set of layer shapes on this machine into a JSON-lines
fixture (tests/tune/fixtures/cpp_measurements.jsonl) and train the shipped cost model from it.

    python tests/tune/make_cpp_fixture.py [--out FILE.jsonl.gz] [--model braze/tune/shipped_model.txt]
    python tests/tune/make_cpp_fixture.py --train-only   # retrain the shipped model from the fixture alone
    (with GPU measurements too: python -m braze.tune.train_shipped FIXTURE GPU.records.jsonl)

Each record is a tuning-database record (braze tune --import reads the file). Measuring takes
~15 minutes on a 2-core machine (every candidate is a separate g++ build)."""
from __future__ import annotations

import argparse
import gzip
import tempfile
from pathlib import Path

import torch

from braze.module_compiler import export_graph
from braze.passes.pipeline import lower
from braze.tune.cost_model import SHIPPED
from braze.tune.db import TuningDB
from braze.tune.device import device_info
from braze.tune.train_shipped import train_shipped
from braze.tune.tuner import measure_unit, tunable_units
from braze.tune.workers import WorkerPool

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "cpp_measurements.jsonl.gz"
SHAPES = [(256, 512), (512, 256), (512, 1024), (1024, 512), (768, 768), (576, 1536), (1536, 576), (2048, 256),
          (384, 2048), (1024, 1024), (320, 640), (640, 320)]
ROWS = (1, 32)


def layer(k: int, n: int, norm: bool) -> torch.nn.Module:
    linear = torch.nn.Linear(k, n, bias=False)
    return torch.nn.Sequential(torch.nn.RMSNorm(k), linear) if norm else linear


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(FIXTURE))
    parser.add_argument("--model", default=str(SHIPPED))
    parser.add_argument("--train-only", action="store_true", help="train the model from --out, measure nothing")
    args = parser.parse_args()
    if not args.train_only:
        with tempfile.TemporaryDirectory() as tmp:
            db = TuningDB(Path(tmp) / "fixture.db")
            measure(db, device_info("cpu"))
            export_gz(db, args.out)
            db.close()
    model = train_shipped([args.out], Path(args.model))
    print(f"shipped model ({model.meta['backend']}, {model.meta['records']} records) -> {args.model}")


def export_gz(db: TuningDB, out: str) -> None:
    plain = Path(out).with_suffix("")
    count = db.export_jsonl(plain)
    with open(plain, "rb") as src, gzip.open(out, "wb") as dst:
        dst.write(src.read())
    plain.unlink()
    print(f"{count} records -> {out}")


def measure(db: TuningDB, device) -> None:
    """Every config of every shape (one layer each: odd shapes with an RMSNorm prologue)."""
    with WorkerPool(1, timeout_s=120) as pool:
        for i, (k, n) in enumerate(SHAPES):
            for rows in ROWS:
                graph, _ = export_graph(layer(k, n, norm=i % 2 == 0), (torch.randn(rows, k),))
                for unit in tunable_units(lower(graph), device):
                    results = measure_unit(pool, db, device, unit, unit.space, repeats=10)
                    ok = [r.time_us for _, r in results if r.status == "ok"]
                    print(f"K={k} N={n} M={rows}: {len(ok)} ok, best {min(ok):.1f} us, "
                          f"default {results[0][1].time_us:.1f} us", flush=True)


if __name__ == "__main__":
    main()
