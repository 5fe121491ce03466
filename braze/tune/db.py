"""The tuning database: every measured candidate, in SQLite under the braze cache directory.

A record is keyed by (kernel structure key, bucket, device name, compute capability, software
versions, config) and holds the outcome (ok / wrong / crash / timeout / error), the time and the
cost model's features. Records are written one transaction per measurement as they arrive, so an
interrupted `braze tune` loses nothing it measured. WAL journaling and a busy timeout let several
processes tune at once. A file SQLite cannot read is moved aside (renamed, never deleted) and a
new database is started, with a warning.

Step verdicts (braze.tune.verify): whether a unit's measured best config was kept or reverted when
the whole model step was timed, keyed like the records plus the model (braze.tune.extract.
program_key) and the config verified; step_times holds each verified step's times. Both tables
were added later: CREATE TABLE IF NOT EXISTS adds them to an older database when it is opened, so
old files keep working (their units are simply not verified yet).

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
CREATE TABLE IF NOT EXISTS step_verdicts (
    kernel_key TEXT NOT NULL, bucket INTEGER NOT NULL, device_name TEXT NOT NULL, capability TEXT NOT NULL,
    versions TEXT NOT NULL, model TEXT NOT NULL, config TEXT NOT NULL, verdict TEXT NOT NULL, step TEXT NOT NULL,
    with_us REAL, without_us REAL, model_label TEXT, created REAL,
    PRIMARY KEY (kernel_key, bucket, device_name, capability, versions, model, config)
);
CREATE TABLE IF NOT EXISTS step_times (
    model TEXT NOT NULL, device_name TEXT NOT NULL, capability TEXT NOT NULL, versions TEXT NOT NULL,
    step TEXT NOT NULL, heuristic_us REAL, raw_us REAL, verified_us REAL, model_label TEXT, created REAL,
    PRIMARY KEY (model, device_name, capability, versions, step)
);
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


@dataclass
class StepVerdict:
    """A unit's measured best config timed inside a model's step: kept, or reverted to the heuristic.
    with_us / without_us: the deciding step's time with the config and without it (for a kept one,
    the verified step against the all-heuristic step)."""
    kernel_key: str
    bucket: int
    device_name: str
    capability: str
    versions: str
    model: str             # braze.tune.extract.program_key of the program it was verified in
    config: str            # the config verified (knobs.config_text)
    verdict: str           # kept | reverted
    step: str              # the step that decided: decode, prefill, ...
    with_us: float | None = None
    without_us: float | None = None
    model_label: str = ""  # what the user called the model (for people reading the database)
    created: float = 0.0

    @property
    def kept(self) -> bool:
        return self.verdict == "kept"

    @property
    def change_pct(self) -> float | None:
        """How much slower (+) or faster (-) the step was with the config, in percent."""
        if not self.with_us or not self.without_us:
            return None
        return 100.0 * (self.with_us / self.without_us - 1.0)


@dataclass
class StepTime:
    """One verified step of a model: all-heuristic, all per-kernel bests (raw) and verified times."""
    model: str
    device_name: str
    capability: str
    versions: str
    step: str
    heuristic_us: float | None = None
    raw_us: float | None = None
    verified_us: float | None = None
    model_label: str = ""
    created: float = 0.0


VERDICT_FIELDS = tuple(StepVerdict.__dataclass_fields__)
STEP_FIELDS = tuple(StepTime.__dataclass_fields__)
TABLES = {"measurements": (Record, FIELDS), "step_verdicts": (StepVerdict, VERDICT_FIELDS),
          "step_times": (StepTime, STEP_FIELDS)}


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
        self._insert("measurements", record)

    def _insert(self, table: str, row) -> None:
        fields = TABLES[table][1]
        row.created = row.created or time.time()
        with self.conn:  # one short transaction per row: nothing measured is lost on an interrupt
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(fields)}) "
                              f"VALUES ({', '.join('?' * len(fields))})", [getattr(row, f) for f in fields])

    def add_verdict(self, verdict: StepVerdict) -> None:
        self._insert("step_verdicts", verdict)

    def replace_step_times(self, model: str, device: DeviceInfo, steps: list[StepTime]) -> None:
        """This model's verified step times on the device: `steps` in place of what was there."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("DELETE FROM step_times WHERE model = ? AND device_name = ? AND capability = ? "
                              "AND versions = ?", (model, device.name, device.capability, device.versions))
        for step in steps:
            self._insert("step_times", step)

    # -- reading --------------------------------------------------------------------------------
    def _select(self, table: str, where: str, args) -> list:
        cls, fields = TABLES[table]
        cur = self.conn.execute(f"SELECT {', '.join(fields)} FROM {table} WHERE {where}", args)
        return [cls(*row) for row in cur.fetchall()]

    def verdicts(self, key: str, bucket: int, device: DeviceInfo, config: str) -> list[StepVerdict]:
        """Every model's verdict on this config of the unit (newest first)."""
        rows = self._select("step_verdicts", "kernel_key = ? AND bucket = ? AND device_name = ? AND capability = ? "
                            "AND versions = ? AND config = ?",
                            (key, bucket, device.name, device.capability, device.versions, config))
        return sorted(rows, key=lambda v: -v.created)

    def verdict(self, key: str, bucket: int, device: DeviceInfo, config: str, model: str | None) -> StepVerdict | None:
        """The verdict that decides whether LLM(...) may use `config`: the one from this model; else,
        verified only in other models, a reverted one if any (a kernel that slowed one model's step
        is not trusted in another's), else the newest kept one; None: never verified."""
        rows = self.verdicts(key, bucket, device, config)
        mine = [v for v in rows if v.model == model]
        if mine:
            return mine[0]
        return next((v for v in rows if not v.kept), rows[0] if rows else None)

    def step_times(self, model: str, device: DeviceInfo) -> list[StepTime]:
        return self._select("step_times", "model = ? AND device_name = ? AND capability = ? AND versions = ?",
                            (model, device.name, device.capability, device.versions))

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
        """Every row as a JSON line: measurements as they always were, then step verdicts and step
        times tagged with their "table" (so files written before verdicts existed still import)."""
        count = 0
        with open(path, "w") as f:
            for table in TABLES:
                for row in self._select(table, "1 = 1", ()):
                    fields = asdict(row) | ({} if table == "measurements" else {"table": table})
                    f.write(json.dumps(fields, sort_keys=True) + "\n")
                    count += 1
        return count

    def import_jsonl(self, path: str | Path) -> int:
        """Add every row of a JSON-lines file (gzip-compressed if it ends in .gz)."""
        from braze.errors import InvalidArgumentError
        import gzip
        count = 0
        with (gzip.open(path, "rt") if str(path).endswith(".gz") else open(path)) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    fields = json.loads(line)
                    table = fields.get("table", "measurements")
                    cls, names = TABLES[table]
                    row = cls(**{k: fields[k] for k in names if k in fields})
                except (ValueError, TypeError, KeyError, AttributeError) as e:
                    raise InvalidArgumentError(f"{path}:{n}: not a tuning record ({e}); export one with "
                                               "`braze tune --export FILE`") from e
                self._insert(table, row)
                count += 1
        return count


def record_for(task, device: DeviceInfo, kind: str, config: dict, result, features: dict) -> Record:
    """The database record of one measured candidate (result: braze.tune.workers.Result)."""
    return Record(task.key, task.bucket, device.name, device.capability, device.versions, config_text(config),
                  kind, device.target, result.status, result.time_us, result.max_error, result.error,
                  json.dumps(features, sort_keys=True), task.label)
