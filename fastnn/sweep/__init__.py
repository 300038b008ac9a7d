"""Hyperparameter sweeps: many `fastnn.run` trials searched and pruned by Optuna.

    space.py   the search space: parameter specs from the command line or a TOML file
    study.py   the Optuna storage and study (created, continued, checked, cleaned)
    worker.py  running trials, in this process or in worker processes
    runner.py  a whole sweep: cores split between workers, signals, the study's end
    report.py  live lines, the best trials, the reproducing command, JSON, plots

Optuna is an optional dependency (``pip install "fastnn[sweep]"``); these
modules import it only when a sweep runs.
"""

from .runner import SweepOutcome, run_sweep, split_cores
from .space import DEFAULT_SPACE, PARAMETERS, SearchSpace, SpaceError
from .study import DEFAULT_STORAGE, DEFAULT_STUDY, StudyError, StudyMismatch, StudySpec
from .worker import WorkerPlan

__all__ = ["DEFAULT_SPACE", "DEFAULT_STORAGE", "DEFAULT_STUDY", "PARAMETERS", "SearchSpace",
           "SpaceError", "StudyError", "StudyMismatch", "StudySpec", "SweepOutcome", "WorkerPlan",
           "run_sweep", "split_cores"]
