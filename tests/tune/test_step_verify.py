"""Step verification: a measured best that makes the model's step slower is reverted, the verdict
is stored and choose.py (LLM(...)) honours it, and a second identical `braze tune` times nothing.

The step times are injected (the shared 2-core test machine is far noisier than a 1% margin), but
the CLI test still compiles and runs every program through the real C++ step."""
from __future__ import annotations

import json
import os

import pytest

import braze
from braze.cli.main import main
from braze.tune import verify
from braze.tune.choose import choose_knobs
from braze.tune.db import Record, StepVerdict, TuningDB
from braze.tune.device import device_info
from braze.tune.extract import program_key, structure_key
from braze.tune.knobs import config_text
from braze.tune.programs import model_step_program
from braze.tune.step import StepTimer
from braze.tune.tuner import tunable_units
from braze.tune.verify import STEP_MARGIN, StepUnit, decide

ARGS = ["--device", "cpu", "--max-model-len", "64"]
TUNE = ["tune", "--fraction", "0.01", "--json"] + ARGS  # measures the heuristic's config only
BAD = {"mb": 8, "nr": 1, "threads": 1}     # "fastest" alone, 50% slower in the step (injected)
GOOD = {"mb": 64, "nr": 8, "threads": 0}   # fastest alone, 10% faster in the step


# ---------------------------------------------------------------- the greedy search alone


def _measure(effects: dict, base: dict, log: list):
    """A deterministic step timer: each tuned unit multiplies the steps it runs in."""
    def measure(sets):
        log.append(list(sets))
        out = []
        for tuned in sets:
            times = dict(base)
            for unit_id in tuned:
                for step, factor in effects[unit_id].items():
                    times[step] *= factor
            out.append(times)
        return out
    return measure


def _unit(name: str, steps, share: float) -> StepUnit:
    return StepUnit(name, 0, {"x": 1}, tuple(steps), share)


def test_decide_reverts_the_unit_that_slows_the_step_and_keeps_the_rest():
    units = [_unit("big_bad", ["decode"], 5.0), _unit("good", ["decode"], 3.0), _unit("prefill", ["prefill"], 1.0),
             _unit("neutral_prefill", ["prefill"], 9.0)]
    effects = {("big_bad", 0): {"decode": 1.2}, ("good", 0): {"decode": 0.9}, ("prefill", 0): {"prefill": 0.95},
               ("neutral_prefill", 0): {"prefill": 1.0}}
    log = []
    decisions, times, trials = decide(units, ["decode", "prefill"], _measure(effects, {"decode": 100.0,
                                                                                       "prefill": 1000.0}, log))
    assert {u: d.verdict for (u, _), d in decisions.items()} == {
        "big_bad": "reverted", "good": "kept", "prefill": "kept", "neutral_prefill": "kept"}
    assert decisions[("big_bad", 0)].with_us == pytest.approx(108.0)     # 100 * 1.2 * 0.9
    assert decisions[("big_bad", 0)].without_us == pytest.approx(90.0)
    assert times["decode"] == {"heuristic": 100.0, "raw": pytest.approx(108.0), "tuned": pytest.approx(90.0)}
    assert trials == 4                       # every unit tried once, the largest share of its step first
    assert log[1][2] == frozenset({("good", 0), ("prefill", 0), ("neutral_prefill", 0)})
    assert all(frozenset() in sets for sets in log)  # the heuristic step is re-timed with every trial


def test_decide_stops_trying_at_the_trial_limit_and_stays_safe():
    units = [_unit("bad", ["decode"], 1.0), _unit("good", ["decode"], 5.0)]
    effects = {("bad", 0): {"decode": 1.3}, ("good", 0): {"decode": 0.9}}
    decisions, times, trials = decide(units, ["decode"], _measure(effects, {"decode": 100.0}, []), max_trials=1)
    # the one trial (good, the larger share) refuses to revert it; untried, bad stays, the step
    # (117 us) is slower than the heuristics' and both fall back
    assert trials == 1 and {d.verdict for d in decisions.values()} == {"reverted"}
    assert times["decode"]["tuned"] == 100.0


def test_decide_falls_back_to_the_heuristics_when_no_revert_wins_the_margin():
    # each unit alone helps a little; together they are within the noise margin of the heuristics
    units = [_unit("a", ["decode"], 2.0), _unit("b", ["decode"], 1.0)]
    effects = {("a", 0): {"decode": 1 - STEP_MARGIN / 4}, ("b", 0): {"decode": 1 - STEP_MARGIN / 4}}
    decisions, times, trials = decide(units, ["decode"], _measure(effects, {"decode": 100.0}, []))
    assert {d.verdict for d in decisions.values()} == {"reverted"} and trials == 2
    assert times["decode"]["tuned"] == times["decode"]["heuristic"]


def test_decide_does_not_keep_a_revert_that_slows_another_step():
    # the shared unit slows decode a little but speeds prefill a lot: reverting it is refused,
    # and decode (not faster than the heuristics) falls back, taking the shared unit with it
    units = [_unit("shared", ["decode", "prefill"], 5.0)]
    effects = {("shared", 0): {"decode": 1.05, "prefill": 0.5}}
    decisions, times, _ = decide(units, ["decode", "prefill"], _measure(effects, {"decode": 100.0,
                                                                                  "prefill": 1000.0}, []))
    assert decisions[("shared", 0)].verdict == "reverted" and decisions[("shared", 0)].step == "decode"
    assert times["prefill"]["tuned"] == times["prefill"]["heuristic"]


# ---------------------------------------------------------------- braze tune, end to end


class InjectedTimer(StepTimer):
    """Runs each step for real (compiled C++, as LLM runs it) but reports a fixed time: 1000 us,
    x1.5 in the steps where the BAD config runs, x0.9 where the GOOD one does."""
    built = 0

    def __init__(self, setup, program, shapes, bad, good):
        super().__init__(setup, program, shapes, repeats=2, warmup=1, decode_steps=2, prefill_calls=1)
        self.bad, self.good = bad, good
        type(self).built += 1

    def _time_once(self, variant, shape):
        super()._time_once(variant, shape)
        program = variant.executable.program
        present = {(structure_key(k, program), b, config_text(dict(items)))
                   for k in program.kernels if k.attr("knobs") for b, items, _ in k.attr("knobs").entries}
        factor = 1.0
        for (key, bucket, config), steps, f in ((*self.bad, 1.5), (*self.good, 0.9)):
            if (key, bucket, config) in present and shape.name in steps:
                factor *= f
        return 1e-3 * factor


def _record(unit, config: dict, time_us: float) -> Record:
    device = device_info("cpu")
    return Record(unit.key, unit.bucket, device.name, device.capability, device.versions, config_text(config),
                  "matmul", "cpp", "ok", time_us)


def run_json(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_braze_tune_reverts_a_config_that_slows_the_step(cache_dir, tiny_checkpoints, capsys, monkeypatch):
    model = str(tiny_checkpoints["llama"])
    first = run_json(capsys, TUNE + ["--model", model])
    assert first["measured"] == first["kernels"] and first["step"]["units"] == 0  # nothing differs yet

    # two configs recorded as fastest alone: one slows the step (gate|up at prefill), one speeds it (QKV, decode)
    program, setup = model_step_program(model, "cpu", max_model_len=64)
    units = {(u.kernels[0], u.bucket): u for u in tunable_units(program, device_info("cpu"))}
    # RMSNorm fused into each; the first layer's gate|up is the first unit 2 x 120 wide
    gate_up = next(u for (_, bucket), u in units.items() if bucket == 0 and u.kernel.output.shape[-1] == 2 * 120)
    qkv = units[("k1_matmul", 1)]
    assert len(gate_up.kernels) == 3
    db = TuningDB()
    db.add(_record(gate_up, BAD, 0.001))
    db.add(_record(qkv, GOOD, 0.001))
    db.close()
    bad = (gate_up.key, 0, config_text(BAD)), {"decode_batch", "prefill"}
    good = (qkv.key, 1, config_text(GOOD)), {"decode"}
    InjectedTimer.built = 0
    monkeypatch.setattr(verify, "make_timer", lambda s, p, shapes: InjectedTimer(s, p, shapes, bad, good))

    step = run_json(capsys, TUNE + ["--model", model])["step"]
    assert (step["units"], step["kept"], step["reverted"], step["cached"]) == (2, 1, 1, False)
    assert step["decode_us"] == pytest.approx({"heuristic": 1000.0, "raw": 900.0, "tuned": 900.0})
    assert step["prefill_us"] == pytest.approx({"heuristic": 1000.0, "raw": 1500.0, "tuned": 1000.0})
    assert step["decode_batch_us"] == pytest.approx({"heuristic": 1000.0, "raw": 1500.0, "tuned": 1000.0})

    # the verdicts persist, keyed by the model they were reached in
    db = TuningDB()
    device = device_info("cpu")
    reverted = db.verdict(gate_up.key, 0, device, config_text(BAD), program_key(program))
    kept = db.verdict(qkv.key, 1, device, config_text(GOOD), program_key(program))
    assert reverted.verdict == "reverted" and reverted.change_pct == pytest.approx(50.0)
    assert kept.kept and kept.model_label == model
    db.close()

    # LLM(...) honours them: the reverted unit runs the untuned code (no knobs), the kept one its best
    def knobs_of(program, name):
        return next(k for k in program.kernels if k.name == name).attr("knobs")
    llm = braze.LLM(model, device="cpu", max_model_len=64)
    assert program_key(llm.program) == program_key(program)  # the verdicts' model is LLM's program
    assert all(knobs_of(llm.program, name) is None for name in gate_up.kernels)
    assert knobs_of(llm.program, "k1_matmul").get(1) == GOOD and knobs_of(llm.program, "k1_matmul").source(1) == "db"
    monkeypatch.setenv("BRAZE_TUNE", "raw")  # every per-kernel best, unverified: the bad one too
    raw = braze.LLM(model, device="cpu", max_model_len=64).program
    assert knobs_of(raw, gate_up.kernels[0]).get(0) == BAD and knobs_of(raw, "k1_matmul").get(1) == GOOD
    monkeypatch.delenv("BRAZE_TUNE")

    # braze explain says why
    assert main(["explain", "--model", model, "--json"] + ARGS) == 0
    reports = json.loads(capsys.readouterr().out)["kernels"]
    by_unit = {(r["kernels"][0], r["bucket"]): r for r in reports}
    assert by_unit[(gate_up.kernels[0], 0)]["step"] == "reverted: decode_batch step slower by 50.0%"
    assert by_unit[("k1_matmul", 1)]["step"].startswith("verified in step: decode step 10.0% faster")

    # a second identical run measures nothing and times nothing
    again = run_json(capsys, TUNE + ["--model", model])
    assert again["measured"] == 0 and InjectedTimer.built == 1
    assert again["step"]["cached"] and again["step"]["trials"] == 0 and again["step"]["reverted"] == 1
    assert again["step"]["prefill_us"] == step["prefill_us"]


def test_choose_uses_a_measured_best_only_once_a_step_kept_it(cache_dir, linear_unit):
    program, unit = linear_unit
    device = device_info("cpu")
    db = TuningDB()
    db.add(_record(unit, unit.default, 5.0))
    db.add(_record(unit, BAD, 1.0))

    def chosen(verified=True):
        knobs = choose_knobs(program, device, db, verified=verified).kernels[0].attr("knobs")
        return (knobs.get(unit.bucket), knobs.source(unit.bucket)) if knobs else "untuned"
    assert chosen() == "untuned"                                              # never verified
    assert chosen(verified=False) == (BAD, "db")                              # BRAZE_TUNE=raw

    def verdict(model: str, what: str) -> StepVerdict:
        return StepVerdict(unit.key, unit.bucket, device.name, device.capability, device.versions, model,
                           config_text(BAD), what, "prefill", 90.0, 100.0)
    db.add_verdict(verdict("another model", "kept"))
    assert chosen() == (BAD, "db")                                            # kept in another model
    db.add_verdict(verdict("a third model", "reverted"))
    assert chosen() == "untuned"                                              # a revert anywhere wins
    db.add_verdict(verdict(program_key(program), "kept"))
    assert chosen() == (BAD, "db")                                            # this model's verdict decides
    db.close()
    assert os.environ.get("BRAZE_TUNE") is None
