"""Bad candidates cost one candidate each, never the run, and a wrong result never wins."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from braze.tune.db import TuningDB
from braze.tune.device import device_info
from braze.tune.kernel_bench import KernelBench
from braze.tune.knobs import config_text
from braze.tune.tuner import measure_unit
from braze.tune.workers import WorkerPool

FAULTY = f"{Path(__file__).with_name('faulty_bench.py')}:FaultyBench"


def test_crashing_hanging_failing_and_wrong_candidates_do_not_stop_tuning(cache_dir, linear_unit):
    program, unit = linear_unit
    device = device_info("cpu")
    good = {"mb": 8, "nr": 2, "threads": 1}
    other = {"mb": 16, "nr": 4, "threads": 1}
    KernelBench(unit.task).check(good)  # compile the clean kernels once here: the time limit is for faults
    KernelBench(unit.task).check(other)
    unit = dataclasses.replace(unit, task=dataclasses.replace(unit.task, runner=FAULTY))
    configs = [{**good, "fault": "crash"}, good, {**good, "fault": "hang"}, {**good, "fault": "segfault"},
               {**good, "fault": "wrong"}, {**good, "fault": "raise"}, {**good, "fault": "illegal_address"}, other]
    db = TuningDB(cache_dir / "tune.db")
    with WorkerPool(workers=1, timeout_s=6) as pool:
        results = dict((config_text(c), r) for c, r in measure_unit(pool, db, device, unit, configs, repeats=3))
        assert pool.restarts == 4  # crash, hang, segfault, illegal address: each worker replaced
    status = {c.get("fault", "none") if "fault" in c else config_text(c): results[config_text(c)].status
              for c in configs}
    assert status == {"crash": "crash", config_text(good): "ok", "hang": "timeout", "segfault": "crash",
                      "wrong": "wrong", "raise": "error", "illegal_address": "crash", config_text(other): "ok"}
    assert "does not compile" in results[config_text({**good, "fault": "raise"})].error
    wrong = results[config_text({**good, "fault": "wrong"})]
    assert wrong.max_error > 0.01 and wrong.time_us is None
    # every outcome is in the database, and only correct, timed candidates can be the best
    records = db.records(unit.key, unit.bucket, device)
    assert len(records) == len(configs)
    best = db.best(unit.key, unit.bucket, device)
    assert best.status == "ok" and "fault" not in best.config_dict
    db.close()
