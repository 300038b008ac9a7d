"""A whole sweep: the cores split between workers, the study opened, workers run, stops
handled. `run_sweep` is what ``fastnn sweep`` calls."""

from __future__ import annotations

import multiprocessing
import queue
import signal
from dataclasses import dataclass, field

from ..config import ConfigError
from ..interrupts import handling_stop_signals
from .study import StudyError, count, fail_orphans, open_study
from .worker import StopFlag, WorkerPlan, worker_main


@dataclass
class SweepOutcome:
    """How a sweep ended: the study, the trials this sweep's workers finished (those
    stopped by a signal do not report), the stop signal if any, the trials found orphaned."""

    study: object
    finished: int = 0
    signal: int | None = None
    orphans: list = field(default_factory=list)


def split_cores(jobs: int, threads: int | None, cores: int) -> int:
    """Threads per trial for ``jobs`` workers on ``cores`` cores (threads x jobs <= cores)."""
    if jobs > cores:
        raise ConfigError(f"--jobs {jobs}: this process can use {cores} core"
                          f"{'s' if cores != 1 else ''}; give --jobs {cores} or fewer")
    per = threads or cores // jobs
    if per * jobs > cores:
        raise ConfigError(f"--threads {per} with --jobs {jobs} needs {per * jobs} cores; this "
                          f"process can use {cores}; give --threads {cores // jobs} or fewer")
    return per


class _Signals:
    """While active, SIGINT and SIGTERM set ``stop`` (and remember which came) instead of
    raising KeyboardInterrupt wherever the main thread happens to be; a second one
    calls ``force`` (which kills the workers)."""

    def __init__(self, stop: StopFlag, force=lambda: None):
        self.stop, self.force, self.signum = stop, force, None
        self._handling = handling_stop_signals(self._handle,
                                               keep=lambda current: current is signal.SIG_IGN)

    def _handle(self, signum, frame):
        if self.signum is not None:
            self.force()
            return
        self.signum = signum
        self.stop.set()

    def __enter__(self):
        self._handling.__enter__()
        return self

    def __exit__(self, *exc):
        return self._handling.__exit__(*exc)


def run_sweep(plan: WorkerPlan, jobs: int, note=lambda message: None,
              banner: str | None = None) -> SweepOutcome:
    """Run ``plan`` with ``jobs`` worker processes; ``banner`` is noted once the study is open.

    Trials always run in worker processes, even with ``jobs == 1``: a worker
    whose parent is killed (even by SIGKILL) notices within a second and marks
    its trial failed, so no trial stays "running" for ever. Returns when the
    study has ``plan.trials`` finished trials, the deadline has passed, or a
    signal stopped it (``outcome.signal``; the trials then running are marked
    failed, so a rerun continues the study). Raises `ConfigError` for settings
    a trial cannot run with, `StudyError`, and `fastnn.sweep.study.StudyMismatch`.
    """
    study = open_study(plan.study, create=True)
    if banner:
        note(banner)
    outcome = SweepOutcome(study, orphans=fail_orphans(study))
    if outcome.orphans:
        note(f"marked failed the running trials of processes that are gone: "
             f"{', '.join(map(str, outcome.orphans))} (they will be run again)")
    counts = count(study)
    if counts["finished"] >= plan.trials:
        note(f"study {plan.study.name!r} already has {counts['finished']} finished trials "
             f"(--trials {plan.trials}); nothing to run")
        return outcome
    _run_processes(plan, jobs, outcome)
    outcome.orphans += fail_orphans(study)
    return outcome


def _run_processes(plan: WorkerPlan, jobs: int, outcome: SweepOutcome) -> None:
    # spawn, not fork: a forked child would inherit Numba's and BLAS's thread pools.
    context = multiprocessing.get_context("spawn")
    claims, event, results = context.Lock(), context.Event(), context.Queue()
    stop = StopFlag(event)
    workers = [context.Process(target=worker_main, args=(plan, claims, event, results, n),
                               name=f"fastnn-sweep-{n}") for n in range(jobs)]
    errors = []

    def kill():
        for process in workers:
            if process.is_alive():
                process.kill()  # their trials are marked failed by `fail_orphans`

    with _Signals(stop, kill) as signals:
        for process in workers:
            process.start()
        reported = 0
        while reported < jobs and (any(p.is_alive() for p in workers) or not results.empty()):
            try:
                message = results.get(timeout=0.2)
            except queue.Empty:
                continue
            reported += 1
            if message[0] == "done":
                outcome.finished += message[1]
            elif message[0] == "error":
                errors.append(message[1:])
                event.set()  # one worker's bad setting would stop the others too
        for process in workers:
            process.join()
    outcome.signal = signals.signum
    if errors:
        kind, text = errors[0]
        raise ConfigError(text) if kind == "usage" else StudyError(text)
