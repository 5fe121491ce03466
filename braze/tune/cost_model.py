"""The learned cost model: gradient-boosted trees over braze.tune.features, predicting log2 of a
candidate's time in microseconds, trained on the tuning database and retrained as it grows.

LightGBM when it is installed, else scikit-learn's HistGradientBoostingRegressor. Only rankings
within one kernel's bucket are used for search, but absolute predictions are kept meaningful (the
features include the work's flops and bytes) because `braze explain` shows them.

Which model a process uses (CostModel.for_device):
  1. one trained on this database, if the database has enough measurements for the target
     (retrained when it has grown by RETRAIN_GROWTH since the last training, cached on disk);
  2. else the shipped model (braze/tune/shipped_model.*), trained on our own measurements,
     when it has seen the target (origin "shipped": it ranks `braze tune`'s candidates; whether
     LLM(...) may use its picks unmeasured is braze.tune.choose's rule);
  3. else none: the heuristic's configs are used.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

from braze.tune.features import FEATURE_NAMES, vector

MIN_RECORDS = 40          # measurements of a target before a model is trained on them
RETRAIN_GROWTH = 1.25     # retrain once the database has this many times the records trained on
SHIPPED = Path(__file__).with_name("shipped_model.txt")


def backend_name() -> str | None:
    try:
        import lightgbm  # noqa: F401
        return "lightgbm"
    except ImportError:
        pass
    try:
        import sklearn  # noqa: F401
        return "sklearn"
    except ImportError:
        return None


class CostModel:
    def __init__(self, booster, meta: dict, origin: str = "local"):
        self.booster, self.meta = booster, meta
        self.origin = origin  # "local": trained on this machine's database; "shipped": braze's own

    @property
    def targets(self) -> list[str]:
        return self.meta.get("targets", [])

    # -- training -------------------------------------------------------------------------------
    @classmethod
    def train(cls, rows: list[tuple[dict, float, str]], seed: int = 0, devices=()) -> "CostModel":
        """rows: (features, time in microseconds, target); devices: the names of the devices measured.
        Raises ImportError with neither library."""
        import numpy as np
        x = np.array([vector(f) for f, _, _ in rows], dtype=np.float64)
        y = np.array([math.log2(max(t, 1e-3)) for _, t, _ in rows], dtype=np.float64)
        meta = {"records": len(rows), "targets": sorted({t for _, _, t in rows}), "features": list(FEATURE_NAMES),
                "devices": sorted(set(devices))}
        backend = backend_name()
        if backend == "lightgbm":
            import lightgbm
            params = {"objective": "regression", "learning_rate": 0.1, "num_leaves": 12, "min_data_in_leaf": 3,
                      "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "seed": seed,
                      "verbose": -1, "num_threads": 1, "deterministic": True}
            dataset = lightgbm.Dataset(x, y, feature_name=list(FEATURE_NAMES), free_raw_data=False)
            booster = lightgbm.train(params, dataset, num_boost_round=150)
        elif backend == "sklearn":
            from sklearn.ensemble import HistGradientBoostingRegressor
            booster = HistGradientBoostingRegressor(max_iter=150, learning_rate=0.1, max_leaf_nodes=12,
                                                    min_samples_leaf=3, random_state=seed).fit(x, y)
        else:
            raise ImportError("the cost model needs lightgbm or scikit-learn: pip install lightgbm")
        meta["backend"] = backend
        return cls(booster, meta)

    def predict_log2_us(self, feats: list[dict]):
        import numpy as np
        x = np.array([vector(f) for f in feats], dtype=np.float64)
        return self.booster.predict(x)

    def predict_us(self, feats: list[dict]) -> list[float]:
        return [float(2.0 ** v) for v in self.predict_log2_us(feats)]

    # -- files ----------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.meta.get("backend") == "lightgbm":
            text = self.booster.model_to_string()
        else:
            import base64
            import pickle
            text = "pickle:" + base64.b64encode(pickle.dumps(self.booster)).decode()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps(self.meta, indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> "CostModel | None":
        """None when the file is missing, unreadable, of another feature set, or no library can read it."""
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            text = path.read_text()
        except (OSError, ValueError):
            return None
        if meta.get("features") != list(FEATURE_NAMES):
            return None  # trained on other features: retrain
        if not text.startswith("pickle:") and backend_name() != "lightgbm":
            from braze.debug import log
            log(1, f"cost model {path.name} needs lightgbm (not installed): heuristics only")
            return None
        try:
            if text.startswith("pickle:"):
                import base64
                import pickle
                return cls(pickle.loads(base64.b64decode(text[len("pickle:"):])), meta)
            import lightgbm
            return cls(lightgbm.Booster(model_str=text), meta)
        except Exception as e:  # noqa: BLE001 - a model we cannot read is a model we do not have
            warnings.warn(f"braze: cannot load the cost model {path}: {e}", RuntimeWarning, stacklevel=2)
            return None

    @classmethod
    def for_device(cls, db, device, retrain: bool = True) -> "CostModel | None":
        """The model to rank `device`'s candidates with (see the module docstring)."""
        rows = training_rows(db, device.target)
        devices = {r.device_name for r in db.all_records(status="ok") if r.target == device.target}
        digest = hashlib.sha256(device.target.encode()).hexdigest()[:12]
        path = db.path.parent / f"cost_model_{device.target}_{digest}.txt"
        cached = cls.load(path)
        if len(rows) >= MIN_RECORDS and retrain and backend_name() is not None:
            if cached is None or len(rows) >= RETRAIN_GROWTH * cached.meta.get("records", 0):
                cached = cls.train(rows, devices=devices)
                cached.save(path)
        if cached is not None and device.target in cached.targets:
            return cached
        shipped = cls.load(SHIPPED)
        if shipped is not None and device.target in shipped.targets:
            shipped.origin = "shipped"
            return shipped
        return None


def training_rows(db, target: str) -> list[tuple[dict, float, str]]:
    """(features, microseconds, target) of every successful measurement of `target` in the database."""
    return [(r.features_dict, r.time_us, r.target) for r in db.all_records(status="ok")
            if r.target == target and r.features and r.time_us]


def _ranks(values):
    """Average ranks (ties share the mean of their positions)."""
    import numpy as np
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for v in np.unique(values):
        tied = values == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation (Pearson's of the average ranks); nan for fewer than 2 values."""
    import numpy as np
    if len(a) < 2:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])
