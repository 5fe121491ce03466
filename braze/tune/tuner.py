"""Tuning a program: for every distinct (kernel structure, bucket), rank its search space with the
cost model, measure the top few (at most `fraction` of the space, the heuristic's config always
among them) in worker processes, and write each result to the tuning database as it arrives.

Idempotent and resumable: a unit is done when the database holds as many of its measurements as
its share (top-k); a rerun measures only what is missing, so a second identical run measures
nothing and an interrupted one continues where it stopped.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from braze.ir.kernel import Kernel, Program
from braze.tune.cost_model import CostModel
from braze.tune.db import TuningDB, record_for
from braze.tune.device import DeviceInfo
from braze.tune.extract import Task, make_task, structure_key
from braze.tune.features import features
from braze.tune.knobs import config_text
from braze.tune.space import buckets, default_config, search_space, tunable
from braze.tune.workers import Job, WorkerPool

FRACTION = 0.2  # of each space measured by guided search


@dataclass
class Unit:
    """One distinct kernel structure at one bucket: what is tuned (kernels: every kernel sharing it)."""

    kernel: Kernel
    program: Program
    bucket: int
    symbols: dict
    task: Task
    space: list[dict]
    default: dict
    kernels: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.task.key

    def features(self, config: dict, device: DeviceInfo) -> dict:
        return features(self.kernel, self.program, self.symbols, self.bucket, config, device)


def tunable_units(program: Program, device: DeviceInfo) -> list[Unit]:
    units: dict[tuple[str, int], Unit] = {}
    for k in program.kernels:
        if not tunable(k, device.target):
            continue
        key = None
        for bucket, symbols in buckets(k, program, device.target).items():
            key = key or structure_key(k, program)
            if (key, bucket) in units:
                units[(key, bucket)].kernels.append(k.name)
                continue
            task = make_task(k, program, bucket, symbols, device.target, device.kind)
            units[(key, bucket)] = Unit(k, program, bucket, symbols, task,
                                        search_space(k, program, device.target, bucket, device),
                                        default_config(k, program, device.target, bucket, device), [k.name])
    return list(units.values())


def share(unit: Unit, fraction: float = FRACTION) -> int:
    """How many candidates guided search measures for the unit."""
    return max(1, min(len(unit.space), math.floor(fraction * len(unit.space))))


def ranked(unit: Unit, model: CostModel | None, device: DeviceInfo, seed: int = 0) -> list[dict]:
    """The space in the order to measure it: the heuristic's config first, then by predicted time
    (without a model: a fixed shuffle, which is what guided search is compared with)."""
    rest = [c for c in unit.space if c != unit.default]
    if model is not None and rest:
        predicted = model.predict_log2_us([unit.features(c, device) for c in rest])
        rest = [rest[i] for i in sorted(range(len(rest)), key=lambda i: predicted[i])]
    else:
        random.Random(seed).shuffle(rest)
    return [unit.default] + rest


def plan(unit: Unit, db: TuningDB, model: CostModel | None, device: DeviceInfo,
         fraction: float = FRACTION) -> list[dict]:
    """The configs still to measure for the unit (its share minus what the database has)."""
    measured = db.measured_configs(unit.key, unit.bucket, device)
    missing = share(unit, fraction) - len(measured)
    if missing <= 0:
        return []
    todo = [c for c in ranked(unit, model, device) if config_text(c) not in measured]
    return todo[:missing]


@dataclass
class TuneReport:
    kernels: int = 0          # distinct (kernel, bucket) units
    candidates: int = 0       # size of their search spaces together
    measured: int = 0         # candidates timed or rejected in this run
    failed: int = 0           # of those: wrong, crash, timeout or error
    stopped_by_budget: bool = False
    model: str = "none"


def measure_unit(pool: WorkerPool, db: TuningDB, device: DeviceInfo, unit: Unit, configs: list[dict],
                 repeats: int = 20, on_result=None) -> list:
    """Measure `configs` of the unit in the pool; every result is written to the database as it
    arrives. Returns [(config, Result)]."""
    results = []

    def done(job: Job, result) -> None:
        db.add(record_for(unit.task, device, unit.kernel.kind, job.config, result,
                          unit.features(job.config, device)))
        results.append((job.config, result))
        if on_result is not None:
            on_result(unit, job.config, result)
    pool.run([Job(unit.task, c, repeats) for c in configs], done)
    return results


def tune_program(program: Program, device: DeviceInfo, db: TuningDB, budget: int | None = None,
                 fraction: float = FRACTION, workers: int = 1, timeout_s: float = 120.0, repeats: int = 20,
                 on_plan=None, on_result=None) -> TuneReport:
    """Tune every unit of `program` (budget: at most this many measurements in this run)."""
    units = tunable_units(program, device)
    model = CostModel.for_device(db, device)
    report = TuneReport(kernels=len(units), candidates=sum(len(u.space) for u in units),
                        model=(model.meta.get("backend", "?") if model else "none"))
    plans = [(u, plan(u, db, model, device, fraction)) for u in units]
    total = sum(len(p) for _, p in plans)
    if budget is not None and total > budget:
        report.stopped_by_budget = True
    if on_plan is not None:
        on_plan(min(total, budget) if budget is not None else total)
    left = budget if budget is not None else total
    with WorkerPool(workers, timeout_s) as pool:
        for index, (unit, _) in enumerate(plans):
            if left <= 0:
                break
            if index and index % 4 == 0:  # the database grew: retrain when it has grown enough
                model = CostModel.for_device(db, device) or model
            todo = plan(unit, db, model, device, fraction)[:left]
            results = measure_unit(pool, db, device, unit, todo, repeats, on_result)
            report.measured += len(results)
            report.failed += sum(1 for _, r in results if r.status != "ok")
            left -= len(results)
    return report
