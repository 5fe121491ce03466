"""The tuning database: concurrent writers lose nothing, a corrupt file is moved aside (not
deleted) and rebuilt, records and step verdicts travel between machines as JSON lines, and a
database written before step verdicts existed still opens."""
from __future__ import annotations

import json
import multiprocessing
import sqlite3

import pytest

from braze.errors import InvalidArgumentError
from braze.tune.db import Record, StepTime, StepVerdict, TuningDB
from braze.tune.device import DeviceInfo

DEVICE = DeviceInfo("cpu", "test-cpu", "cpu-2", "braze=0;torch=0;triton=none")


def record(key: str, i: int, time_us: float = 1.0, status: str = "ok") -> Record:
    return Record(key, 0, DEVICE.name, DEVICE.capability, DEVICE.versions, json.dumps({"nr": i}), "matmul", "cpp",
                  status, time_us if status == "ok" else None)


def _writer(path: str, key: str, count: int) -> None:
    db = TuningDB(path)
    for i in range(count):
        db.add(record(key, i, float(i + 1)))
    db.close()


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "tuning.db")
    TuningDB(path).close()
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(path, key, 150)) for key in ("a", "b")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    db = TuningDB(path)
    assert db.count() == 300
    assert db.best("a", 0, DEVICE).config_dict == {"nr": 0}
    assert len(db.measured_configs("b", 0, DEVICE)) == 150
    db.close()


def test_corrupt_database_is_moved_aside_and_rebuilt(tmp_path):
    path = tmp_path / "tuning.db"
    db = TuningDB(path)
    db.add(record("a", 1))
    db.close()
    garbage = b"this is not an SQLite database " * 200
    path.write_bytes(garbage)
    with pytest.warns(RuntimeWarning, match="moved it to"):
        db = TuningDB(path)
    assert db.count() == 0  # a fresh database that works
    db.add(record("a", 2))
    assert db.count() == 1
    db.close()
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == garbage  # kept, byte for byte


def test_export_import_round_trip(tmp_path):
    src = TuningDB(tmp_path / "a.db")
    for i in range(5):
        src.add(record("k", i, 10.0 - i))
    src.add(record("k", 99, status="crash"))
    assert src.export_jsonl(tmp_path / "records.jsonl") == 6
    dst = TuningDB(tmp_path / "b.db")
    assert dst.import_jsonl(tmp_path / "records.jsonl") == 6
    assert dst.best("k", 0, DEVICE).config_dict == {"nr": 4}
    assert sorted(r.status for r in dst.records("k", 0, DEVICE)) == ["crash"] + ["ok"] * 5
    (tmp_path / "bad.jsonl").write_text('{"kernel_key": "x"}\n')
    with pytest.raises(InvalidArgumentError, match="bad.jsonl:1: not a tuning record"):
        dst.import_jsonl(tmp_path / "bad.jsonl")
    src.close()
    dst.close()


OLD_SCHEMA = """
CREATE TABLE measurements (
    kernel_key TEXT NOT NULL, bucket INTEGER NOT NULL, device_name TEXT NOT NULL, capability TEXT NOT NULL,
    versions TEXT NOT NULL, config TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, time_us REAL, max_error REAL, error TEXT, features TEXT, label TEXT, created REAL,
    PRIMARY KEY (kernel_key, bucket, device_name, capability, versions, config)
);
CREATE INDEX by_device ON measurements (device_name, capability, status);
"""


def verdict(key: str, model: str, what: str = "kept") -> StepVerdict:
    return StepVerdict(key, 0, DEVICE.name, DEVICE.capability, DEVICE.versions, model, json.dumps({"nr": 1}), what,
                       "decode", 90.0, 100.0, "tiny")


def test_a_database_from_before_step_verdicts_still_opens(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    r = record("a", 1, 3.0)
    conn.execute(f"INSERT INTO measurements VALUES ({', '.join('?' * 15)})",
                 [getattr(r, f) for f in Record.__dataclass_fields__])
    conn.commit()
    conn.close()
    db = TuningDB(path)  # no warning, nothing moved aside: the new tables are added
    assert db.count() == 1 and db.best("a", 0, DEVICE).time_us == 3.0
    assert db.verdict("a", 0, DEVICE, json.dumps({"nr": 1}), "m") is None
    db.add_verdict(verdict("a", "m"))
    assert db.verdict("a", 0, DEVICE, json.dumps({"nr": 1}), "m").kept
    db.close()
    assert [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name] == []


def test_export_import_carries_step_verdicts_and_times(tmp_path):
    src = TuningDB(tmp_path / "a.db")
    src.add(record("k", 1, 2.0))
    src.add_verdict(verdict("k", "m1", "reverted"))
    src.add_verdict(verdict("k", "m2", "kept"))
    src.replace_step_times("m1", DEVICE, [StepTime("m1", DEVICE.name, DEVICE.capability, DEVICE.versions, "decode",
                                                   100.0, 110.0, 100.0)])
    assert src.export_jsonl(tmp_path / "all.jsonl") == 4
    dst = TuningDB(tmp_path / "b.db")
    assert dst.import_jsonl(tmp_path / "all.jsonl") == 4
    assert dst.count() == 1
    config = json.dumps({"nr": 1})
    assert dst.verdict("k", 0, DEVICE, config, "m2").kept
    assert not dst.verdict("k", 0, DEVICE, config, "m3").kept  # only other models: a revert wins
    assert dst.verdict("k", 0, DEVICE, config, "m1").change_pct == pytest.approx(-10.0)
    assert [t.raw_us for t in dst.step_times("m1", DEVICE)] == [110.0]
    src.close()
    dst.close()
