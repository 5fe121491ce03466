"""Measurement that survives bad candidates: every candidate is compiled, checked and timed in a
worker process, so a crash, a hang or an illegal memory access costs that candidate, not the run.

The parent hands out one job at a time per worker and watches the pipes. A worker that dies
(segfault, os._exit, CUDA error that kills the context) is recorded as `crash` and replaced; one
that overruns its time limit is killed, recorded as `timeout` and replaced. Compilation and the
correctness check run in parallel across workers; timing is serialized by the parent (one worker
at a time holds the device), so concurrent compiles never disturb a measurement.

A job's bench (a runner class built from its Task, once per task per worker) has:
    check(config) -> (ok, max_error, detail)   compile, run once on fresh inputs, compare with the reference
    time(config, repeats) -> microseconds       warm-up, median of repeats over rotating inputs
"""
from __future__ import annotations

import importlib
import importlib.util
import multiprocessing
import os
import time
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait

STATUSES = ("ok", "wrong", "crash", "timeout", "error")


@dataclass
class Result:
    status: str                # one of STATUSES
    time_us: float | None = None
    max_error: float | None = None
    error: str = ""


@dataclass
class Job:
    task: object               # braze.tune.extract.Task
    config: dict
    repeats: int = 20


def load_runner(runner: str):
    """The bench class of a Task's runner: "cpp"/"triton", "module:Class" or "path/file.py:Class"."""
    if runner in ("cpp", "triton"):
        from braze.tune.kernel_bench import KernelBench
        return KernelBench
    where, name = runner.rsplit(":", 1)
    if where.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"braze_tune_runner_{abs(hash(where))}", where)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, name)


def _worker_main(conn) -> None:
    """A worker's loop: build benches on demand, check each candidate, time it when allowed."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the run, no candidate "crashed"
    import torch  # noqa: F401  (imported before "ready" so a job's time limit excludes it)
    benches: dict = {}
    conn.send(("ready", None))
    while True:
        msg = conn.recv()
        if msg is None:
            return
        job: Job = msg
        task = job.task
        try:
            bench = benches.get((task.key, task.bucket, task.runner))
            if bench is None:
                benches.clear()  # one bench at a time: its buffers (a 1 GB lm_head, say) are freed first
                bench = benches[(task.key, task.bucket, task.runner)] = load_runner(task.runner)(task)
            ok, max_error, detail = bench.check(job.config)
            if not ok:
                conn.send(("result", Result("wrong", max_error=max_error, error=detail)))
                continue
            conn.send(("may_time", None))
            if conn.recv() != "go":
                return
            micros = bench.time(job.config, job.repeats)
            conn.send(("result", Result("ok", time_us=micros, max_error=max_error)))
        except Exception as e:  # a compile error or a runtime error in this candidate: the worker lives on
            lines = "".join(traceback.format_exception_only(type(e), e)).strip()[-2000:]
            if _poisons_cuda(lines):  # the CUDA context is unusable now: report, then make way for a new worker
                conn.send(("fatal", Result("crash", error=lines)))
                conn.close()
                os._exit(3)
            conn.send(("result", Result("error", error=lines)))


def _poisons_cuda(message: str) -> bool:
    """Errors after which a CUDA context cannot run anything else (an illegal address, a trap)."""
    return any(text in message for text in ("illegal memory access", "device-side assert", "unspecified launch failure",
                                            "misaligned address", "illegal instruction", "CUDA error: an illegal"))


class _Worker:
    def __init__(self, ctx):
        self.parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.job: Job | None = None
        self.deadline = time.monotonic()
        self.timing = False

    def kill(self) -> int | None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.parent.close()
        return self.process.exitcode


class WorkerPool:
    """workers: processes checking candidates in parallel (timing is one at a time regardless).
    timeout_s: per candidate, for its compile + check and again for its timing."""

    def __init__(self, workers: int = 1, timeout_s: float = 120.0, startup_timeout_s: float = 300.0):
        self.ctx = multiprocessing.get_context("spawn")  # no inherited CUDA context or locks
        self.size, self.timeout_s, self.startup_timeout_s = max(1, workers), timeout_s, startup_timeout_s
        self.workers: list[_Worker] = []
        self.restarts = 0

    def _start(self) -> _Worker:
        w = _Worker(self.ctx)
        w.deadline = time.monotonic() + self.startup_timeout_s
        return w

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        for w in self.workers:
            try:
                if w.process.is_alive():
                    w.parent.send(None)
            except OSError:
                pass
        for w in self.workers:
            w.process.join(2)
            w.kill()
        self.workers = []

    def run(self, jobs, on_result) -> None:
        """Measure every job; on_result(job, result) is called as each finishes (in the parent)."""
        pending = deque(jobs)
        if not pending:
            return
        while len(self.workers) < min(self.size, len(pending)):
            self.workers.append(self._start())
        waiting_to_time: deque[_Worker] = deque()
        timing: _Worker | None = None
        unfinished = len(pending)
        while unfinished:
            now = time.monotonic()
            for i, w in enumerate(self.workers):
                if w.ready and w.job is None and pending:
                    job = pending.popleft()
                    try:
                        w.parent.send(job)
                    except OSError:  # it died while idle (out of memory, killed): a new one takes the job
                        pending.appendleft(job)
                        w.kill()
                        self.workers[i] = self._start()
                        self.restarts += 1
                        continue
                    w.job, w.deadline = job, now + self.timeout_s
            if timing is None and waiting_to_time:
                timing = waiting_to_time.popleft()
                timing.timing, timing.deadline = True, time.monotonic() + self.timeout_s
                timing.parent.send("go")
            busy = [w for w in self.workers if not w.ready or w.job is not None]
            soonest = min(w.deadline for w in busy) if busy else now + 1
            ready = wait([w.parent for w in busy], timeout=max(0.0, soonest - time.monotonic()))
            finished: list[tuple[_Worker, Result | None, bool]] = []  # (worker, result, replace it)
            for w in busy:
                if w.parent in ready:
                    try:
                        kind, payload = w.parent.recv()
                    except (EOFError, OSError):
                        finished.append((w, None, True))  # died: crash
                        continue
                    if kind == "ready":
                        w.ready = True
                    elif kind == "may_time":
                        waiting_to_time.append(w)
                        w.deadline = float("inf")  # waiting for the device is not its fault
                    else:  # "result", or "fatal": the worker exits after sending it
                        finished.append((w, payload, kind == "fatal"))
                elif time.monotonic() > w.deadline:
                    finished.append((w, Result("timeout", error=f"no answer within {self.timeout_s:.0f}s"), True))
            for w, result, replace in finished:
                if w is timing:
                    timing = None
                job = w.job
                if result is None or replace:
                    code = w.kill()
                    if result is None:
                        result = Result("crash", error=f"worker exited with code {code}")
                    self.workers[self.workers.index(w)] = self._start()
                    self.restarts += 1
                    if job is None:  # died while starting: nothing to blame, but do not spin forever
                        raise RuntimeError(f"a tuning worker could not start ({result.error})")
                else:
                    w.job, w.timing = None, False
                if job is not None:
                    unfinished -= 1
                    on_result(job, result)
