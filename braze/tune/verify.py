"""Step verification: keep a kernel's measured best config only where the whole model step is
faster with it. `braze tune --model M` runs it after measuring; choose.py reads its verdicts.

A unit is a (kernel structure, bucket) whose measured best differs from the heuristic's config.
Steps are the ones generation runs (braze.tune.step.step_shapes) that reach at least one unit.
Starting from every unit's best (what choosing by per-kernel time alone would run):

1. For each step, try reverting its units one at a time, the largest share of the step first
   (kernels alike x time alone); a revert is kept when it makes that step faster by the margin
   and no other step slower by it. So a kept unit is one the step was not measurably faster
   without. Trials stop at MAX_TRIALS or the time budget; untried units stay as they are.
2. Then, until every step is either faster than the heuristics' by the margin or runs none of the
   tuned configs, the units of a step that is not are all reverted (so the result is never slower
   than untuned, beyond the noise margin). Reverting toward the heuristics when a gain is within
   the noise is on purpose: the heuristic's config is the one that needs no trust.

Every timing compares the programs round-robin in one call (braze.tune.step.StepTimer), medians
over repeats after warm-up; the all-heuristic program is re-timed alongside each trial.

Verdicts are written per unit, keyed like its records plus the model (extract.program_key) and
the config verified; a second run whose units all carry a verdict for their current best in this
model times nothing.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from braze.ir.kernel import Program
from braze.tune.choose import attach_knobs
from braze.tune.db import StepTime, StepVerdict, TuningDB
from braze.tune.device import DeviceInfo
from braze.tune.extract import program_key
from braze.tune.knobs import config_text
from braze.tune.step import StepSetup, StepTimer, bucket_at, step_shapes
from braze.tune.tuner import tunable_units

STEP_MARGIN = 0.01   # a change must move a step by more than this share to count (timing noise)
MAX_TRIALS = 24      # revert trials per verification; past it, step 2 settles what is left


@dataclass(frozen=True)
class StepUnit:
    key: str
    bucket: int
    config: dict            # the measured best (differs from the heuristic's)
    steps: tuple[str, ...]  # the steps it runs in
    share: float            # kernels alike x time alone: its weight in those steps
    label: str = ""         # "k6_matmul@0": its first kernel and bucket

    @property
    def id(self) -> tuple[str, int]:
        return (self.key, self.bucket)


@dataclass
class Decision:
    verdict: str            # kept | reverted
    step: str
    with_us: float | None
    without_us: float | None


@dataclass
class StepReport:
    model: str
    units: int = 0          # units verified (now or before)
    kept: int = 0
    reverted: int = 0
    skipped: int = 0        # differing units no step runs with their knobs (no verdict written)
    trials: int = 0         # revert trials timed in this run
    compiled: int = 0       # programs compiled to time them
    cached: bool = False    # every unit had its verdict already: nothing timed
    seconds: float = 0.0
    steps: dict = field(default_factory=dict)   # name -> {"heuristic", "raw", "tuned"} microseconds

    def as_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "steps"}
        out.update({f"{name}_us": times for name, times in self.steps.items()})
        return out


def decide(units: list[StepUnit], steps: list[str], measure, margin: float = STEP_MARGIN,
           max_trials: int = MAX_TRIALS, deadline: float | None = None, on_trial=None):
    """The greedy search of the module docstring. measure(list of sets of unit ids tuned) -> their
    step times ({step: us} each), timed together; on_trial(n, unit, step, us with it, us without,
    reverted) after each trial. Returns (decisions by unit id, times by step {"heuristic", "raw",
    "tuned"}, trials)."""
    by_id = {u.id: u for u in units}
    none, tuned = frozenset(), frozenset(by_id)
    heuristic, current = measure([none, tuned])
    raw = dict(current)
    decisions: dict[tuple[str, int], Decision] = {}
    trials = 0

    def faster(a: dict, b: dict, step: str) -> bool:
        return a[step] < b[step] * (1 - margin)

    def touching(step: str) -> list[tuple[str, int]]:
        return sorted((i for i in tuned if step in by_id[i].steps), key=lambda i: (-by_id[i].share, i))

    for step in steps:
        for unit_id in touching(step):
            if trials >= max_trials or (deadline is not None and time.monotonic() > deadline):
                break
            trial = tuned - {unit_id}
            heuristic, current, candidate = measure([none, tuned, trial])
            trials += 1
            others_ok = all(candidate[s] <= current[s] * (1 + margin) for s in steps if s != step)
            accepted = faster(candidate, current, step) and others_ok
            if on_trial is not None:
                on_trial(trials, by_id[unit_id], step, current[step], candidate[step], accepted)
            if accepted:
                decisions[unit_id] = Decision("reverted", step, current[step], candidate[step])
                tuned, current = trial, candidate
    while True:
        if tuned:
            heuristic, current = measure([none, tuned])
        else:
            current = dict(heuristic)
        losing = [s for s in steps if touching(s) and not faster(current, heuristic, s)]
        if not losing:
            break
        for unit_id in touching(losing[0]):
            decisions[unit_id] = Decision("reverted", losing[0], current[losing[0]], heuristic[losing[0]])
        tuned = tuned - set(touching(losing[0]))
    for s in steps:
        if not touching(s):  # it runs the untuned kernels: any difference measured is noise
            current[s] = heuristic[s]
    for unit_id in tuned:
        step = next(s for s in steps if s in by_id[unit_id].steps)
        decisions[unit_id] = Decision("kept", step, current[step], heuristic[step])
    times = {s: {"heuristic": heuristic[s], "raw": raw[s], "tuned": current[s]} for s in steps}
    return decisions, times, trials


def candidates(program: Program, device: DeviceInfo, db: TuningDB, setup: StepSetup) -> tuple[list[StepUnit], int]:
    """(the units to verify, how many differing units no step can judge): a measured best that
    differs from the heuristic's config, in a kernel that keeps its knobs under LLM(...)'s
    transforms (batch invariance drops a matmul's) and runs in one of the steps."""
    shapes = step_shapes(setup, device.target)
    differing = []
    for unit in tunable_units(program, device):
        best = db.best(unit.key, unit.bucket, device)
        if best is not None and best.config != config_text(unit.default):
            differing.append((unit, best))
    tuned = setup.transform(with_configs(program, device, {(u.key, u.bucket): b.config_dict for u, b in differing}))
    live = {k.name for k in tuned.kernels if k.attr("knobs") is not None}
    units, skipped = [], 0
    for unit, best in differing:
        steps = tuple(s.name for s in shapes if bucket_at(unit.kernel, program, device.target, s) == unit.bucket)
        if not steps or not live.intersection(unit.kernels):
            skipped += 1
            continue
        heuristic = next((r.time_us for r in db.records(unit.key, unit.bucket, device)
                          if r.config == config_text(unit.default) and r.status == "ok"), None)
        share = len(unit.kernels) * (heuristic or best.time_us or 0.0)
        label = f"{unit.kernels[0]}@{unit.bucket}"
        units.append(StepUnit(unit.key, unit.bucket, best.config_dict, steps, share, label))
    return units, skipped


def with_configs(program: Program, device: DeviceInfo, configs: dict[tuple[str, int], dict]) -> Program:
    """The program with `configs` for those units and the untuned code (no knobs) everywhere else:
    with none, the program BRAZE_TUNE=0 runs."""
    from braze.tune.space import default_config

    def pick(k, key, bucket, symbols):
        if (key, bucket) in configs:
            return configs[(key, bucket)], "db"
        return default_config(k, program, device.target, bucket, device), "heuristic"
    return attach_knobs(program, device, pick)


def make_timer(setup: StepSetup, program: Program, shapes) -> StepTimer:
    """The timer verify_program uses (tests put one with injected slowness in its place)."""
    return StepTimer(setup, program, shapes)


def verify_program(program: Program, setup: StepSetup, device: DeviceInfo, db: TuningDB, model_label: str = "",
                   margin: float = STEP_MARGIN, max_trials: int = MAX_TRIALS, time_budget_s: float | None = None,
                   on_trial=None) -> StepReport:
    """Verify the database's measured bests for `program` in its steps; write the verdicts."""
    started = time.monotonic()
    model = program_key(program)
    units, skipped = candidates(program, device, db, setup)
    report = StepReport(model, units=len(units), skipped=skipped)
    verdicts = {u.id: db.verdict(u.key, u.bucket, device, config_text(u.config), model) for u in units}
    if all(v is not None and v.model == model for v in verdicts.values()):
        report.cached = bool(units)
        report.kept = sum(v.kept for v in verdicts.values())
        report.reverted = len(units) - report.kept
        report.steps = {t.step: {"heuristic": t.heuristic_us, "raw": t.raw_us, "tuned": t.verified_us}
                        for t in db.step_times(model, device)} if units else {}
        return report
    shapes = [s for s in step_shapes(setup, device.target) if any(s.name in u.steps for u in units)]
    timer = make_timer(setup, program, shapes)
    by_id = {u.id: u for u in units}
    programs: dict[frozenset, Program] = {}

    def measure(sets):
        for s in sets:
            if s not in programs:
                programs[s] = with_configs(program, device, {i: by_id[i].config for i in s})
        return timer.time([programs[s] for s in sets])
    try:
        deadline = started + time_budget_s if time_budget_s is not None else None
        decisions, times, report.trials = decide(units, [s.name for s in shapes], measure, margin, max_trials,
                                                 deadline, on_trial)
        report.compiled = getattr(timer, "compiled", 0)
    finally:
        close = getattr(timer, "close", None)
        if close is not None:
            close()
    for unit_id, d in decisions.items():
        db.add_verdict(StepVerdict(unit_id[0], unit_id[1], device.name, device.capability, device.versions, model,
                                   config_text(by_id[unit_id].config), d.verdict, d.step, d.with_us, d.without_us,
                                   model_label))
    db.replace_step_times(model, device, [StepTime(model, device.name, device.capability, device.versions, step,
                                                   t["heuristic"], t["raw"], t["tuned"], model_label)
                                          for step, t in times.items()])
    report.kept = sum(d.verdict == "kept" for d in decisions.values())
    report.reverted = len(decisions) - report.kept
    report.steps = times
    report.seconds = time.monotonic() - started
    return report
