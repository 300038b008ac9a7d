"""Where a sweep's trials live: the Optuna storage, the study, and its bookkeeping.

The default storage is an Optuna journal file (``fastnn-sweep.journal`` in the
current directory): an append-only log that several local processes share
through a file lock, and that survives a killed sweep. ``--storage`` takes a
journal file path, or a database URL (``postgresql://...``, ``sqlite:///...``)
for an Optuna RDB storage that several machines can share; RDB storages get a
heartbeat, so a trial whose machine died is failed after `GRACE_SECONDS`.

A study remembers its search space and the fixed settings of its runs (in its
user attributes); `open_study` refuses to continue a study with others.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import warnings
from dataclasses import dataclass

from ..extras import require
from .space import SearchSpace, parse_value

DEFAULT_STORAGE = "fastnn-sweep.journal"
DEFAULT_STUDY = "fastnn"
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")
#: An RDB trial whose process has not beaten its heart for this long is failed.
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
#: A running trial that no process has marked as its own for this long is failed.
OWNERLESS_SECONDS = 60
#: Study user attributes holding what the study searches.
SPACE_ATTR, FIXED_ATTR = "fastnn_space", "fastnn_fixed"


class StudyError(Exception):
    """The storage cannot be opened, or the study cannot be continued (exit 1)."""


class StudyMismatch(ValueError):
    """The named study exists with another search space or settings (a usage error)."""


def optuna():
    """The optuna module, or `fastnn.extras.MissingExtra` saying how to install it."""
    module = require("optuna", "sweep", "fastnn sweep")
    # Failed trials are reported by fastnn in one line, not by Optuna with a traceback.
    module.logging.set_verbosity(module.logging.ERROR)
    return module


def is_database_url(storage: str) -> bool:
    return "://" in storage


@dataclass(frozen=True)
class StudySpec:
    """Which study, where, and how it searches: all a worker process needs to open it."""

    storage: str
    name: str
    space: dict  # SearchSpace.describe()
    fixed: dict  # the settings every trial shares (digits, val_size, seed, dtype, data)
    sampler: str = "tpe"
    pruner: str = "median"


def open_storage(storage: str):
    """An Optuna storage for a journal file path or a database URL; `StudyError` if it
    cannot be opened."""
    opt = optuna()
    try:
        if is_database_url(storage):
            with warnings.catch_warnings():  # the heartbeat is "experimental" since 2.9
                warnings.simplefilter("ignore", opt.exceptions.ExperimentalWarning)
                return opt.storages.RDBStorage(storage, heartbeat_interval=HEARTBEAT_SECONDS,
                                               grace_period=GRACE_SECONDS)
        from optuna.storages.journal import JournalFileBackend
        return opt.storages.JournalStorage(JournalFileBackend(storage))
    except Exception as err:  # drivers, URLs and files fail in many ways; say which
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StudyError(f"cannot open the study storage {storage!r}: {reason}") from None


def make_sampler(name: str, space: SearchSpace, seed: int):
    opt = optuna()
    if name == "grid":
        return opt.samplers.GridSampler(space.grid(), seed=seed)
    if name == "random":
        return opt.samplers.RandomSampler(seed=seed)
    return opt.samplers.TPESampler(seed=seed)


def make_pruner(name: str):
    """Median: stop a trial whose validation accuracy is below the median of earlier
    trials at the same epoch (after 3 trials); halving: successive halving from epoch 1."""
    opt = optuna()
    if name == "median":
        return opt.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "halving":
        return opt.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return opt.pruners.NopPruner()


def _differences(stored: dict, mine: dict) -> list:
    keys = sorted(set(stored) | set(mine))
    return [f"{key}: {json.dumps(stored.get(key))} (stored) vs {json.dumps(mine.get(key))}"
            for key in keys if stored.get(key) != mine.get(key)]


def open_study(spec: StudySpec, *, seed: int = 0, create: bool = False):
    """The study ``spec`` names, created if ``create`` and missing.

    An existing study must have been created by a sweep with the same space
    and fixed settings (`StudyMismatch` otherwise; nothing is written then).
    """
    opt = optuna()
    storage = open_storage(spec.storage)
    space = _space_of(spec)
    sampler, pruner = make_sampler(spec.sampler, space, seed), make_pruner(spec.pruner)
    try:
        names = [summary.study_name for summary in opt.get_all_study_summaries(storage)]
        if spec.name in names:
            study = opt.load_study(study_name=spec.name, storage=storage, sampler=sampler,
                                   pruner=pruner)
            _check_same(study, spec)
            return study
        if not create:
            raise StudyError(f"no study {spec.name!r} in {spec.storage}")
        study = opt.create_study(study_name=spec.name, storage=storage, direction="maximize",
                                 sampler=sampler, pruner=pruner, load_if_exists=True)
        if SPACE_ATTR not in study.user_attrs:  # not another process's, a moment ago
            study.set_user_attr(SPACE_ATTR, spec.space)
            study.set_user_attr(FIXED_ATTR, spec.fixed)
        _check_same(study, spec)
        return study
    except (StudyError, StudyMismatch):
        raise
    except Exception as err:
        raise StudyError(f"study {spec.name!r} in {spec.storage}: {err}") from None


def _space_of(spec: StudySpec) -> SearchSpace:
    return SearchSpace({name: parse_value(name, value) for name, value in spec.space.items()})


def _check_same(study, spec: StudySpec) -> None:
    attrs = study.user_attrs
    if SPACE_ATTR not in attrs:
        raise StudyMismatch(f"study {spec.name!r} in {spec.storage} was not made by fastnn "
                            "sweep; give another --study name")
    stored = {**attrs[SPACE_ATTR], **attrs.get(FIXED_ATTR, {})}
    different = _differences(stored, {**spec.space, **spec.fixed})
    if different:
        raise StudyMismatch(f"study {spec.name!r} in {spec.storage} was created with a different "
                            f"search space or settings ({'; '.join(different)}); repeat its "
                            "settings to continue it, or give a new --study name")


def count(study) -> dict:
    """{"finished": complete + pruned, "running": ..., "failed": ...} of the study."""
    states = optuna().trial.TrialState
    counts = {"finished": 0, "running": 0, "failed": 0}
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (states.COMPLETE, states.PRUNED):
            counts["finished"] += 1
        elif trial.state in (states.RUNNING, states.WAITING):
            counts["running"] += 1
        elif trial.state == states.FAIL:
            counts["failed"] += 1
    return counts


def mark_owner(trial) -> None:
    """Record which process runs ``trial``, so that `fail_orphans` can tell if it died."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _age(start: datetime.datetime) -> float:
    """Seconds since ``start`` (Optuna's storages give aware or naive local times)."""
    return (datetime.datetime.now(start.tzinfo) - start).total_seconds()


def fail_orphans(study) -> list:
    """Mark failed the running trials of this machine whose process is gone (a sweep
    killed with SIGKILL, a crashed worker); return their numbers.

    Trials of other machines are left to the RDB heartbeat (`GRACE_SECONDS`).
    """
    opt = optuna()
    with warnings.catch_warnings():  # "experimental" since Optuna 2.9, and still there
        warnings.simplefilter("ignore", opt.exceptions.ExperimentalWarning)
        opt.storages.fail_stale_trials(study)
    host, failed = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(opt.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        # A process marks its trial the moment it has it; one that died in between
        # left a trial nobody owns, which is failed once it is clearly not new.
        ownerless = "pid" not in attrs and trial.datetime_start is not None \
            and _age(trial.datetime_start) > OWNERLESS_SECONDS
        if ownerless or attrs.get("host") == host and isinstance(attrs.get("pid"), int) \
                and not _alive(attrs["pid"]):
            study.tell(trial.number, state=opt.trial.TrialState.FAIL, skip_if_finished=True)
            failed.append(trial.number)
    return failed
