"""What a sweep prints and writes: live trial lines, the best trials, the command that
reproduces the best one, the study as JSON, and plots."""

from __future__ import annotations

import shlex

from ..config import flag_text
from ..extras import require
from .space import PARAMETERS, value_text

#: Rows of the best-trials table.
TABLE_ROWS = 5
#: Completed trials the parameter importances need before they mean anything.
MIN_TRIALS_FOR_IMPORTANCE = 5


def params_text(params: dict) -> str:
    return " ".join(f"{name}={value_text(params[name])}" for name in PARAMETERS
                    if name in params)


def trial_line(number: int, state: str, value, params: dict, attrs: dict) -> str:
    """The live line of a finished trial."""
    seconds = attrs.get("seconds")
    took = f"  {seconds:.1f}s" if seconds is not None else ""
    if state == "complete":
        test = attrs.get("test_accuracy")
        result = f"val {value:.2%}" + (f"  test {test:.2%}" if test is not None else "")
    else:  # "pruned after epoch 2", "diverged in epoch 1"
        result = attrs.get("stopped", "").removeprefix("pruned ")
    return f"trial {number:>3} {state:<8} {result}{took}  {params_text(params)}"


def trial_record(trial) -> dict:
    """One trial of the study as JSON-able data."""
    return {"number": trial.number, "state": trial.state.name.lower(), "value": trial.value,
            "params": trial.params, "val_accuracy_per_epoch":
                {str(step): v for step, v in sorted(trial.intermediate_values.items())},
            "test_accuracy": trial.user_attrs.get("test_accuracy"),
            "stopped": trial.user_attrs.get("stopped"),
            "seconds": trial.user_attrs.get("seconds"),
            "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
            "finished": trial.datetime_complete.isoformat() if trial.datetime_complete else None}


def completed(study) -> list:
    """The completed trials, best first (ties: the earlier trial)."""
    from .study import optuna
    done = study.get_trials(deepcopy=False, states=(optuna().trial.TrialState.COMPLETE,))
    return sorted(done, key=lambda t: (-t.value, t.number))


def point(trial, study) -> dict:
    """Every searched setting of ``trial``: its suggested params and the space's fixed ones."""
    from .space import parse_value
    fixed = {}
    for name, value in study.user_attrs["fastnn_space"].items():
        param = parse_value(name, value)
        if param.is_fixed:
            fixed[name] = param.choices[0]
    chosen = dict(trial.params)
    if "layers" in chosen:
        chosen["layers"] = tuple(int(size) for size in chosen["layers"].split(","))
    return {**fixed, **chosen}


def train_command(trial, study, settings: dict) -> str:
    """The `fastnn train` command that trains ``trial`` again, as the sweep trained it.

    ``settings`` are the sweep's shared run settings (backend, data_dir, ...).
    """
    fixed = study.user_attrs["fastnn_fixed"]
    values = {**point(trial, study), "seed": fixed["seed"], "val_size": fixed["val_size"],
              "digits": fixed["digits"], "dtype": fixed["dtype"],
              "data": trial.user_attrs.get("data", fixed["data"])}
    words = ["fastnn", "train"]
    for name in ("layers", "hidden", "init", "batch_size", "lr", "epochs", "seed", "val_size",
                 "digits", "dtype", "data"):
        value = flag_text(values[name]) if name == "digits" else values[name]
        words += ["--" + name.replace("_", "-"), value_text(tuple(value)) if name == "layers"
                  else value_text(value)]
    backend = trial.user_attrs.get("backend", settings.get("backend"))
    if backend:
        words += ["--backend", backend]
    if settings.get("threads"):  # the same threads: the same order of floating-point sums
        words += ["--threads", str(settings["threads"])]
    if settings.get("data_dir"):
        words += ["--data-dir", str(settings["data_dir"])]
    return shlex.join(words)


def best_table(study, rows: int = TABLE_ROWS) -> str:
    """The best completed trials as a text table."""
    best = completed(study)[:rows]
    lines = [f"{'rank':>4} {'trial':>5} {'val':>7} {'test':>7} {'seconds':>8}  parameters"]
    for rank, trial in enumerate(best, 1):
        test = trial.user_attrs.get("test_accuracy")
        seconds = trial.user_attrs.get("seconds")
        lines.append(f"{rank:>4} {trial.number:>5} {trial.value:>7.2%} "
                     f"{(f'{test:.2%}' if test is not None else '-'):>7} "
                     f"{(f'{seconds:.1f}' if seconds is not None else '-'):>8}  "
                     f"{params_text(trial.params)}")
    return "\n".join(lines)


def study_json(study, storage: str, settings: dict) -> dict:
    """The whole study: its space, settings, every trial, the best one and its command."""
    best = completed(study)
    return {"study": study.study_name, "storage": storage, "direction": "maximize",
            "objective": "validation accuracy after the last epoch",
            "space": study.user_attrs.get("fastnn_space"),
            "fixed": study.user_attrs.get("fastnn_fixed"),
            "trials": [trial_record(t) for t in study.get_trials(deepcopy=False)],
            "best": ({**trial_record(best[0]), "command": train_command(best[0], study, settings)}
                     if best else None)}


def write_plots(study, directory) -> tuple:
    """history.png (each finished trial's validation accuracy and the best so far) and, with
    enough completed trials, importances.png; returns (paths written, notes)."""
    from pathlib import Path

    from .study import optuna
    figure = require("matplotlib.figure", "sweep", "--plot-dir")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    states = optuna().trial.TrialState
    finished = [t for t in study.get_trials(deepcopy=False)
                if t.state in (states.COMPLETE, states.PRUNED)]
    done = [t for t in finished if t.state == states.COMPLETE]
    written, notes = [], []

    fig = figure.Figure(figsize=(7, 4), dpi=110)
    ax = fig.subplots()
    ax.scatter([t.number for t in done], [t.value for t in done], s=18, label="completed")
    pruned = [t for t in finished if t.state == states.PRUNED and t.intermediate_values]
    ax.scatter([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)]
                                            for t in pruned],
               s=18, marker="x", color="grey", label="pruned (last epoch reported)")
    best, xs, ys = None, [], []
    for trial in sorted(done, key=lambda t: t.number):
        best = trial.value if best is None else max(best, trial.value)
        xs.append(trial.number)
        ys.append(best)
    ax.step(xs, ys, where="post", color="C1", label="best so far")
    ax.set(xlabel="trial", ylabel="validation accuracy",
           title=f"optimisation history of study {study.study_name!r}")
    ax.legend(loc="lower right")
    written.append(directory / "history.png")
    fig.savefig(written[-1], bbox_inches="tight")

    varying = [name for name, value in study.user_attrs["fastnn_space"].items()
               if isinstance(value, (dict, list))]
    if len(done) < MIN_TRIALS_FOR_IMPORTANCE or not varying:
        notes.append(f"importances.png not written: parameter importances need at least "
                     f"{MIN_TRIALS_FOR_IMPORTANCE} completed trials and a searched parameter; "
                     f"the study has {len(done)} completed trial{'s' if len(done) != 1 else ''}")
        return written, notes
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
    try:
        importances = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    except (RuntimeError, ValueError) as err:
        notes.append(f"importances.png not written: {err}")
        return written, notes
    fig = figure.Figure(figsize=(6, 0.5 + 0.45 * max(1, len(importances))), dpi=110)
    ax = fig.subplots()
    names = list(importances)[::-1]
    ax.barh(names, [importances[name] for name in names])
    ax.set(xlabel="importance (PED-ANOVA, share of the total)",
           title=f"parameter importances, {len(done)} completed trials")
    written.append(directory / "importances.png")
    fig.savefig(written[-1], bbox_inches="tight")
    return written, notes
