"""The tune step of the pipeline: a pure function Program -> Program that attaches knobs to every
tunable kernel, per bucket, from (in order) the tuning database's best measured config, the cost
model's pick over the search space, or today's heuristic. The emitters read those knobs.

A measured best that differs from the heuristic's config is used only when a model step was
faster with it (braze.tune.verify): kernels timed alone do not keep their order inside the step.
The verdict reached in this model (braze.tune.extract.program_key) decides; one reached only in
other models counts too, a revert in any of them winning. A best never verified in a step is not
used (the heuristic is): `braze tune --model M` verifies, and a later run that measures nothing
new verifies without measuring. BRAZE_TUNE=raw uses every measured best unverified (to compare).
A bucket left at the heuristic's config gets no knobs at all (attach_knobs says why).

The model's pick (a kernel with no measurements) is used only in the decode bucket (M = 1), when
the model was trained on measurements of this target (the shipped model or one trained on the
local database) and predicts it clearly faster than the heuristic's config (MODEL_MARGIN). An
unmeasured pick cannot be verified in a step; on the H100, the per-kernel bests a perfect model
would pick made TinyLlama's decode step 3.2-3.6% faster in two runs but its prefill steps 6-16%
slower (bench/results/tuning-cuda-verified.json), so prefill buckets keep the heuristic until
`braze tune` measures and verifies them. Picks come from the legal search space the tuner measures.

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
from braze.tune.extract import program_key, structure_key
from braze.tune.features import features
from braze.tune.knobs import Knobs, config_label, config_text
from braze.tune.space import buckets, default_config, search_space, tunable

TARGET_DEVICE = {"cpp": "cpu", "triton": "cuda"}
# The model's pick replaces the heuristic's config only when predicted this much faster: an
# unmeasured config has to be clearly better to be worth the risk of the model being wrong.
MODEL_MARGIN = 0.9
MODEL_PICK_BUCKETS = (1,)  # decode: where kernels timed alone kept their order in the step


@dataclass
class Choice:
    config: dict
    source: str                       # db | model | heuristic
    predicted_us: float | None = None
    measured_us: float | None = None
    step: str = ""                    # the step verdict on a measured best (for braze explain)


def step_note(verdict, config: dict, model: str | None) -> str:
    """A step verdict in words: 'verified in step: ...' / 'reverted: decode step slower by 3.2%'."""
    if verdict is None:
        return f"measured best {config_label(config)} not verified in a model step (`braze tune --model` verifies)"
    pct = verdict.change_pct
    where = f"{verdict.step} step" + ("" if verdict.model == model else " of another model")
    if verdict.kept:
        return f"verified in step: {where} {-pct:.1f}% faster" if pct is not None else "verified in step"
    if pct is None:
        return f"reverted: {where}"
    if pct > 0:
        return f"reverted: {where} slower by {pct:.1f}%"
    return f"reverted: {where} only {-pct:.1f}% faster (within the noise margin)"


def choose_config(k: Kernel, program: Program, bucket: int, symbols: dict, device: DeviceInfo, db=None,
                  model=None, key: str | None = None, model_key: str | None = None,
                  verified: bool = True) -> Choice:
    """model_key: program_key of the program, for its step verdicts; verified=False: any measured
    best, verified or not (BRAZE_TUNE=raw)."""
    if db is not None:
        key = key or structure_key(k, program)
        best = db.best(key, bucket, device)
        if best is not None:
            default = default_config(k, program, device.target, bucket, device)
            if not verified or best.config == config_text(default):
                return Choice(best.config_dict, "db", measured_us=best.time_us)
            verdict = db.verdict(key, bucket, device, best.config, model_key)
            note = step_note(verdict, best.config_dict, model_key)
            if verdict is not None and verdict.kept:
                return Choice(best.config_dict, "db", measured_us=best.time_us, step=note)
            return Choice(default, "heuristic", step=note)
    if model is not None and (bucket in MODEL_PICK_BUCKETS or not verified):
        space = search_space(k, program, device.target, bucket, device)  # the heuristic's config first
        predicted = model.predict_us([features(k, program, symbols, bucket, c, device) for c in space])
        i = min(range(len(space)), key=lambda j: predicted[j])
        if predicted[i] < MODEL_MARGIN * predicted[0]:
            return Choice(space[i], "model", predicted_us=predicted[i])
        return Choice(space[0], "heuristic", predicted_us=predicted[0])
    return Choice(default_config(k, program, device.target, bucket, device), "heuristic")


def attach_knobs(program: Program, device: DeviceInfo, pick) -> Program:
    """A new program whose tunable kernels carry `knobs`: pick(kernel, key, bucket, symbols) ->
    (config, source), asked once per (structure key, bucket). A bucket whose config is the
    heuristic's gets no entry (a kernel with none, no knobs): the emitters then run their own
    defaults, the very code BRAZE_TUNE=0 runs. (An explicit heuristic config is not always the
    same code: a Triton pointwise launch with a warp count also gets the PDL flag.) So a step
    verified against the untuned one is the step LLM(...) runs."""
    cache: dict[tuple[str, int], tuple[dict, str] | None] = {}
    kernels = []
    for k in program.kernels:
        if not tunable(k, device.target):
            kernels.append(k)
            continue
        key = structure_key(k, program)
        chosen = {}
        for bucket, symbols in buckets(k, program, device.target).items():
            if (key, bucket) not in cache:
                config, source = pick(k, key, bucket, symbols)
                default = config == default_config(k, program, device.target, bucket, device)
                cache[(key, bucket)] = None if default else (config, source)
            if cache[(key, bucket)] is not None:
                chosen[bucket] = cache[(key, bucket)]
        attrs = tuple(kv for kv in k.attrs if kv[0] != "knobs") + ((("knobs", Knobs.of(chosen)),) if chosen else ())
        kernels.append(replace(k, attrs=attrs))
    return replace(program, kernels=tuple(kernels))


def choose_knobs(program: Program, device: DeviceInfo, db=None, model=None, verified: bool = True) -> Program:
    """A new program whose tunable kernels carry `knobs` where a Choice is not the heuristic's config."""
    model_key = program_key(program) if db is not None and verified else None
    sources: list[str] = []

    def pick(k, key, bucket, symbols):
        choice = choose_config(k, program, bucket, symbols, device, db, model, key, model_key, verified)
        sources.append(choice.source)
        return choice.config, choice.source
    program = attach_knobs(program, device, pick)
    log(1, f"tune: {len(sources)} kernel buckets: " + ", ".join(f"{sources.count(s)} from {s}"
                                                                 for s in ("db", "model", "heuristic") if s in sources))
    return program


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
    mode = os.environ.get("BRAZE_TUNE", "1")
    if mode == "0" or target not in TARGET_DEVICE:
        return program
    from braze.tune.cost_model import CostModel
    from braze.tune.db import TuningDB
    try:
        device = device_info(TARGET_DEVICE[target])
        db = TuningDB()
        try:
            model = CostModel.for_device(db, device, retrain=False)
            return choose_knobs(program, device, db, model if picks_allowed(model, device) else None,
                                verified=mode != "raw")
        finally:
            db.close()
    except (sqlite3.Error, OSError, ImportError) as e:
        warnings.warn(f"braze: tuned configs unavailable ({e}); using the heuristics", RuntimeWarning, stacklevel=2)
        return program
