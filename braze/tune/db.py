"""The tuning database: every measured candidate, in SQLite under the braze cache directory.

A record is keyed by (kernel structure key, bucket, device name, compute capability, software
versions, config) and holds the outcome (ok / wrong / crash / timeout / error), the time and the
cost model's features. Records are written one transaction per measurement as they arrive, so an
interrupted `braze tune` loses nothing it measured. WAL journaling and a busy timeout let several
processes tune at once. A file SQLite cannot read is moved aside (renamed, never deleted) and a
new database is started, with a warning.

    $BRAZE_CACHE_DIR (default ~/.cache/braze) / tune / tuning.db     (or the file $BRAZE_TUNE_DB)
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from braze.tune.device import DeviceInfo
from braze.tune.knobs import config_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    kernel_key TEXT NOT NULL, bucket INTEGER NOT NULL, device_name TEXT NOT NULL, capability TEXT NOT NULL,
    versions TEXT NOT NULL, config TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,
    status TEXT NOT NULL, time_us REAL, max_error REAL, error TEXT, features TEXT, label TEXT, created REAL,
    PRIMARY KEY (kernel_key, bucket, device_name, capability, versions, config)
);
CREATE INDEX IF NOT EXISTS by_device ON measurements (device_name, capability, status);
"""
FIELDS = ("kernel_key", "bucket", "device_name", "capability", "versions", "config", "kind", "target", "status",
          "time_us", "max_error", "error", "features", "label", "created")


def default_path() -> Path:
    """BRAZE_TUNE_DB, else <BRAZE_CACHE_DIR or ~/.cache/braze>/tune/tuning.db."""
    if os.environ.get("BRAZE_TUNE_DB"):
        return Path(os.environ["BRAZE_TUNE_DB"])
    env = os.environ.get("BRAZE_CACHE_DIR")
    return (Path(env) if env else Path.home() / ".cache" / "braze") / "tune" / "tuning.db"


@dataclass
class Record:
    kernel_key: str
    bucket: int
    device_name: str
    capability: str
    versions: str
    config: str            # canonical JSON (knobs.config_text)
    kind: str
    target: str
    status: str
    time_us: float | None = None
    max_error: float | None = None
    error: str = ""
    features: str = ""     # JSON object (braze.tune.features)
    label: str = ""
    created: float = 0.0

    @property
    def config_dict(self) -> dict:
        return json.loads(self.config)

    @property
    def features_dict(self) -> dict:
        return json.loads(self.features) if self.features else {}


class TuningDB:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = self._open()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(SCHEMA)
        row = conn.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            conn.close()
            raise sqlite3.DatabaseError(f"integrity check: {row[0] if row else 'no answer'}")
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                raise
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    os.replace(src, Path(str(aside) + suffix))
            warnings.warn(f"braze: the tuning database {self.path} could not be read ({e}); moved it to {aside} "
                          f"and started a new one", RuntimeWarning, stacklevel=3)
            return self._connect()

    def close(self) -> None:
        self.conn.close()

    # -- writing --------------------------------------------------------------------------------
    def add(self, record: Record) -> None:
        record.created = record.created or time.time()
        values = [getattr(record, f) for f in FIELDS]
        with self.conn:  # one short transaction per record: nothing measured is lost on an interrupt
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(f"INSERT OR REPLACE INTO measurements ({', '.join(FIELDS)}) "
                              f"VALUES ({', '.join('?' * len(FIELDS))})", values)

    # -- reading --------------------------------------------------------------------------------
    def _rows(self, where: str, args) -> list[Record]:
        cur = self.conn.execute(f"SELECT {', '.join(FIELDS)} FROM measurements WHERE {where}", args)
        return [Record(*row) for row in cur.fetchall()]

    def records(self, key: str, bucket: int, device: DeviceInfo) -> list[Record]:
        return self._rows("kernel_key = ? AND bucket = ? AND device_name = ? AND capability = ? AND versions = ?",
                          (key, bucket, device.name, device.capability, device.versions))

    def measured_configs(self, key: str, bucket: int, device: DeviceInfo) -> set[str]:
        return {r.config for r in self.records(key, bucket, device)}

    def best(self, key: str, bucket: int, device: DeviceInfo) -> Record | None:
        ok = [r for r in self.records(key, bucket, device) if r.status == "ok" and r.time_us is not None]
        return min(ok, key=lambda r: r.time_us) if ok else None

    def all_records(self, device: DeviceInfo | None = None, status: str | None = None) -> list[Record]:
        clauses, args = ["1 = 1"], []
        if device is not None:
            clauses.append("device_name = ? AND capability = ?")
            args += [device.name, device.capability]
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        return self._rows(" AND ".join(clauses), args)

    def count(self, status: str | None = None) -> int:
        if status is None:
            return self.conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM measurements WHERE status = ?", (status,)).fetchone()[0]

    # -- sharing --------------------------------------------------------------------------------
    def export_jsonl(self, path: str | Path) -> int:
        rows = self.all_records()
        with open(path, "w") as f:
            for r in rows:
                f.write(json.dumps(asdict(r), sort_keys=True) + "\n")
        return len(rows)

    def import_jsonl(self, path: str | Path) -> int:
        """Add every record of a JSON-lines file (gzip-compressed if it ends in .gz)."""
        from braze.errors import InvalidArgumentError
        import gzip
        count = 0
        with (gzip.open(path, "rt") if str(path).endswith(".gz") else open(path)) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    fields = json.loads(line)
                    record = Record(**{k: fields[k] for k in FIELDS if k in fields})
                except (ValueError, TypeError) as e:
                    raise InvalidArgumentError(f"{path}:{n}: not a tuning record ({e}); export one with "
                                               "`braze tune --export FILE`") from e
                self.add(record)
                count += 1
        return count


def record_for(task, device: DeviceInfo, kind: str, config: dict, result, features: dict) -> Record:
    """The database record of one measured candidate (result: braze.tune.workers.Result)."""
    return Record(task.key, task.bucket, device.name, device.capability, device.versions, config_text(config),
                  kind, device.target, result.status, result.time_us, result.max_error, result.error,
                  json.dumps(features, sort_keys=True), task.label)
