"""Running trials: one `fastnn.run` per trial, in this process or in worker processes.

A worker repeatedly claims a trial (while the study has fewer than the
target of finished and running trials, and before the deadline), trains it
with `fastnn.workflow.run`, reports the validation accuracy of every epoch to
Optuna and stops when the pruner says so. Claims go through one lock shared
by the workers of a sweep, so that together they start exactly as many
trials as asked; workers on other machines only see the study's counts.

Stopping: a stop flag (set by SIGINT/SIGTERM, or by the parent process) is
checked every few thousand training rows; the trial in progress is then told
to Optuna as failed, so it never stays "running", and the worker returns.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

from ..config import ConfigError, RunConfig
from ..events import RunEvents
from ..interrupts import STOP_SIGNALS
from ..workflow import RunDiverged, prepare_task, run, task_settings
from .report import trial_line
from .space import SearchSpace, parse_value
from .study import StudySpec, count, make_sampler, mark_owner, open_study, optuna


class SweepStopped(Exception):
    """The sweep was asked to stop (Ctrl-C, SIGTERM, or the parent process went away)."""


@dataclass(frozen=True)
class WorkerPlan:
    """What every worker of a sweep does: the study, the run settings and the budget."""

    study: StudySpec
    settings: dict  # RunConfig settings shared by all trials (backend, threads, data, ...)
    trials: int  # the study's target of finished trials
    deadline: float | None = None  # time.time() after which no trial starts
    quiet: bool = False
    seed: int = 0


class StopFlag:
    """Set when the sweep must stop; ``check`` raises `SweepStopped` once it is."""

    def __init__(self, event=None, parent: int | None = None):
        self.event = event if event is not None else threading.Event()
        self.parent = parent  # stop too when this process is no longer our parent

    def set(self, *_):
        self.event.set()

    def is_set(self) -> bool:
        if self.parent is not None and os.getppid() != self.parent:
            return True
        return self.event.is_set()

    def check(self) -> None:
        if self.is_set():
            raise SweepStopped


class TrialEvents(RunEvents):
    """Reports each epoch's validation accuracy to the trial; prunes; honours the stop flag."""

    def __init__(self, trial, stop: StopFlag, quiet: bool):
        self.trial, self.stop, self.quiet = trial, stop, quiet
        self.pruned_at = None

    def note(self, message: str) -> None:
        if not self.quiet and message.startswith(("compiling", "compiled")):
            print(f"sweep: {message}", file=sys.stderr, flush=True)

    def on_progress(self, rows_done, rows_total, loss_sum, n_correct) -> None:
        self.stop.check()

    def on_epoch_end(self, record, history) -> None:
        self.stop.check()
        self.trial.report(record.val_accuracy, record.epoch)
        if self.trial.should_prune():
            self.pruned_at = record.epoch
            raise optuna().TrialPruned(f"pruned after epoch {record.epoch}")


#: This process's tasks, by the settings that make them: a sweep's trials differ
#: only in what the search space sets, so a worker loads and splits the data
#: once (about 0.8 s on full MNIST, as long as a pruned trial's epoch).
_TASKS = {}


def _task_for(config: RunConfig, events: RunEvents):
    key = task_settings(config)
    if key not in _TASKS:
        _TASKS[key] = prepare_task(config, events)
    return _TASKS[key]


def run_trial(trial, space: SearchSpace, plan: WorkerPlan, stop: StopFlag) -> float:
    """Train the point of ``space`` that ``trial`` suggests; return its last validation accuracy."""
    mark_owner(trial)
    point = space.suggest(trial)
    config = RunConfig.resolve(**plan.settings, **point)
    events = TrialEvents(trial, stop, plan.quiet)
    started = time.perf_counter()
    try:
        result = run(config, events, task=_task_for(config, events))
    except optuna().TrialPruned:
        trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("stopped", f"pruned after epoch {events.pruned_at}")
        raise
    except RunDiverged as err:  # a hopeless learning rate: pruned, so samplers learn from it
        trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("stopped", f"diverged in epoch {err.epoch}")
        raise optuna().TrialPruned(f"diverged in epoch {err.epoch}") from None
    if result.status == "interrupted":
        raise SweepStopped
    trial.set_user_attr("seconds", time.perf_counter() - started)
    trial.set_user_attr("test_accuracy", result.test_accuracy)
    trial.set_user_attr("data", result.config.data)
    trial.set_user_attr("backend", result.config.backend)
    trial.set_user_attr("epochs_run", len(result.history.epochs))
    return result.history.epochs[-1].val_accuracy


def work(plan: WorkerPlan, claims, stop: StopFlag, worker: int = 0) -> int:
    """Run trials until the study has ``plan.trials`` finished ones, the deadline passes or
    ``stop`` is set; return how many this worker finished.

    ``claims`` is a lock shared by the workers of this sweep. Raises
    `ConfigError` (a setting of the space does not fit the data) and
    `SweepStopped`.
    """
    space = SearchSpace({name: parse_value(name, value)
                         for name, value in plan.study.space.items()})
    study = open_study(plan.study)
    # A different stream per worker and per restart: not the same first samples again.
    study.sampler = make_sampler(plan.study.sampler, space, plan.seed * 1000 + 97 * worker
                                 + len(study.get_trials(deepcopy=False)))
    done = 0
    while True:
        stop.check()
        if plan.deadline is not None and time.time() >= plan.deadline:
            return done
        while not claims.acquire(timeout=0.5):  # (a worker killed holding it: stop works)
            stop.check()
        held = {"claim": True}

        def release():
            if held["claim"]:
                claims.release()
                held["claim"] = False

        try:
            counts = count(study)
            if counts["finished"] + counts["running"] >= plan.trials:
                return done

            def objective(trial):
                release()  # the trial exists, running: the next claim counts it
                return _reported(trial, space, plan, stop)

            study.optimize(objective, n_trials=1, catch=())
            done += 1
        finally:
            release()


def _reported(trial, space, plan, stop) -> float:
    """`run_trial`, then the trial's live line (unless quiet)."""
    opt = optuna()
    try:
        value = run_trial(trial, space, plan, stop)
    except opt.TrialPruned:
        if not plan.quiet:
            print(trial_line(trial.number, "pruned", None, trial.params, trial.user_attrs),
                  file=sys.stderr, flush=True)
        raise
    if not plan.quiet:
        print(trial_line(trial.number, "complete", value, trial.params, trial.user_attrs),
              file=sys.stderr, flush=True)
    return value


def worker_main(plan: WorkerPlan, claims, event, results, worker: int) -> None:
    """Entry point of a worker process: `work`, then one message to ``results``.

    The message is ("done", trials this worker finished), ("stopped",) or
    ("error", kind, text) with kind "usage" or "failure".
    """
    stop = StopFlag(event, parent=os.getppid())
    for signum in STOP_SIGNALS:
        signal.signal(signum, stop.set)
    try:
        results.put(("done", work(plan, claims, stop, worker)))
    except SweepStopped:
        results.put(("stopped",))
    except ConfigError as err:
        results.put(("error", "usage", str(err)))
    except Exception as err:  # reported by the parent as the sweep's failure
        results.put(("error", "failure", f"{type(err).__name__}: {err}" if not str(err)
                     else str(err)))
