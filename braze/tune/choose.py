"""The tune step of the pipeline: a pure function Program -> Program that attaches knobs to every
tunable kernel, per bucket, from (in order) the tuning database's best measured config, the cost
model's pick over the search space, or today's heuristic. The emitters read those knobs.

The model's pick is used only when the model was trained on measurements of this target (the
shipped model or one trained on the local database) and predicts it clearly faster than the
heuristic's config (MODEL_MARGIN); configs it picks come from the same legal search space the
tuner measures.

BRAZE_TUNE=0 turns the step off (every kernel keeps the emitters' heuristics).
"""
from __future__ import annotations

import os
import sqlite3
import warnings
from dataclasses import dataclass, replace

from braze.debug import log
from braze.ir.kernel import Kernel, Program
from braze.tune.device import DeviceInfo, device_info
from braze.tune.extract import structure_key
from braze.tune.features import features
from braze.tune.knobs import Knobs
from braze.tune.space import buckets, default_config, search_space, tunable

TARGET_DEVICE = {"cpp": "cpu", "triton": "cuda"}
# The model's pick replaces the heuristic's config only when predicted this much faster: an
# unmeasured config has to be clearly better to be worth the risk of the model being wrong.
MODEL_MARGIN = 0.9


@dataclass
class Choice:
    config: dict
    source: str                       # db | model | heuristic
    predicted_us: float | None = None
    measured_us: float | None = None


def choose_config(k: Kernel, program: Program, bucket: int, symbols: dict, device: DeviceInfo, db=None,
                  model=None, key: str | None = None) -> Choice:
    if db is not None:
        best = db.best(key or structure_key(k, program), bucket, device)
        if best is not None:
            return Choice(best.config_dict, "db", measured_us=best.time_us)
    if model is not None:
        space = search_space(k, program, device.target, bucket, device)  # the heuristic's config first
        predicted = model.predict_us([features(k, program, symbols, bucket, c, device) for c in space])
        i = min(range(len(space)), key=lambda j: predicted[j])
        if predicted[i] < MODEL_MARGIN * predicted[0]:
            return Choice(space[i], "model", predicted_us=predicted[i])
        return Choice(space[0], "heuristic", predicted_us=predicted[0])
    return Choice(default_config(k, program, device.target, bucket, device), "heuristic")


def choose_knobs(program: Program, device: DeviceInfo, db=None, model=None) -> Program:
    """A new program whose tunable kernels carry `knobs` (one Choice per bucket)."""
    cache: dict[tuple[str, int], Choice] = {}
    kernels = []
    for k in program.kernels:
        if not tunable(k, device.target):
            kernels.append(k)
            continue
        key = structure_key(k, program)
        chosen = {}
        for bucket, symbols in buckets(k, program, device.target).items():
            if (key, bucket) not in cache:
                cache[(key, bucket)] = choose_config(k, program, bucket, symbols, device, db, model, key)
            choice = cache[(key, bucket)]
            chosen[bucket] = (choice.config, choice.source)
        attrs = tuple(kv for kv in k.attrs if kv[0] != "knobs") + (("knobs", Knobs.of(chosen)),)
        kernels.append(replace(k, attrs=attrs))
    sources = [s for k in kernels if k.attr("knobs") for _, _, s in k.attr("knobs").entries]
    log(1, f"tune: {len(sources)} kernel buckets: " + ", ".join(f"{sources.count(s)} from {s}"
                                                                 for s in ("db", "model", "heuristic") if s in sources))
    return replace(program, kernels=tuple(kernels))


def picks_allowed(model, device: DeviceInfo) -> bool:
    """May LLM(...) use this model's unmeasured picks on `device`? A model trained on this machine's
    database, yes; the shipped one only for a GPU it was measured on. CPU times depend on the
    machine's core count and load (the shipped CPU model was measured on a busy 2-core machine),
    so there it only ranks what `braze tune` measures."""
    if model is None or model.origin != "shipped":
        return model is not None
    return device.kind == "cuda" and device.name in model.meta.get("devices", [])


def tune_step(program: Program, target: str) -> Program:
    """The pipeline's tune step for a backend ("cpp" or "triton"): the local tuning database and
    cost model; any problem reading them leaves the heuristics in place (with a warning)."""
    if os.environ.get("BRAZE_TUNE", "1") == "0" or target not in TARGET_DEVICE:
        return program
    from braze.tune.cost_model import CostModel
    from braze.tune.db import TuningDB
    try:
        device = device_info(TARGET_DEVICE[target])
        db = TuningDB()
        try:
            model = CostModel.for_device(db, device, retrain=False)
            return choose_knobs(program, device, db, model if picks_allowed(model, device) else None)
        finally:
            db.close()
    except (sqlite3.Error, OSError, ImportError) as e:
        warnings.warn(f"braze: tuned configs unavailable ({e}); using the heuristics", RuntimeWarning, stacklevel=2)
        return program
