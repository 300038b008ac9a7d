"""A whole training run as one call: `run(config, events)` returns a `RunResult`.

    >>> from fastnn import RunConfig, run
    >>> result = run(RunConfig.resolve("minibatch", epochs=3, data="sample"))
    >>> result.test_accuracy, result.history.epochs[-1].val_accuracy

It does what ``fastnn train`` does: loads the data, builds the task and the
network, restores a checkpoint (``config.resume``), prepares the backend,
trains with checkpoints (``config.save``), stops cleanly on Ctrl-C, reports a
divergence saying what was kept, saves, scores on the test set, and writes the
metrics JSON and plots. It reports through a `fastnn.events.RunEvents`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import __version__, mnist, plots
from .backend_setup import prepare_backend
from .checkpoints import Checkpointer
from .config import ConfigError, RunConfig, check_output
from .data import Task, make_task
from .events import RunEvents, StopTraining
from .history import History
from .modelio import ModelFileError, read_checkpoint
from .network import Network
from .train import TrainingDiverged, TrainingInterrupted, fit, resolve_batch_size

STATUSES = ("completed", "stopped", "interrupted")


class RunDiverged(TrainingDiverged):
    """Training diverged; the message also says what ``config.save`` now holds."""

    def __init__(self, diverged: TrainingDiverged, kept: str):
        RuntimeError.__init__(self, f"{diverged}{kept}")
        self.epoch, self.batch, self.history = diverged.epoch, diverged.batch, diverged.history


@dataclass
class RunResult:
    """What a run did.

    ``status`` is "completed", "stopped" (an event hook raised `StopTraining`)
    or "interrupted" (Ctrl-C or SIGTERM; ``network`` holds the last completed
    epoch, saved to ``saved`` when there was one). ``config`` is the run's
    configuration with ``data`` resolved to the source used. ``test_accuracy``
    and ``metrics`` are None for an interrupted run.
    """

    status: str
    config: RunConfig
    task: Task
    network: Network
    history: History
    done_before: int = 0  # epochs completed before this run (a resumed checkpoint)
    test_accuracy: float | None = None
    compile_seconds: float = 0.0
    total_seconds: float = 0.0
    startup_seconds: float | None = None  # process start to this run's first epoch
    saved: Path | None = None
    plots: list = field(default_factory=list)
    metrics: dict | None = None

    @property
    def this_run(self) -> list:
        """The epoch records of this run (without those of the checkpoint resumed)."""
        return self.history.epochs[self.done_before:]

    @property
    def train_seconds(self) -> float:
        """Seconds in this run's training epochs."""
        return sum(record.seconds for record in self.this_run)


def task_settings(config: RunConfig) -> tuple:
    """What `prepare_task` makes a task of: the data, digits, validation size, seed and dtype."""
    return (config.data, config.data_dir, config.digits, config.val_size, config.seed,
            config.dtype)


def prepare_task(config: RunConfig, events: RunEvents | None = None) -> Task:
    """The task ``config`` trains on: its data found (or downloaded) and split, as `run` does.

    Raises `ConfigError` for a validation size the task cannot take and
    `fastnn.mnist.DataError` for data that cannot be found or read.
    """
    events = events or RunEvents()
    data = mnist.load(config.data, config.data_dir, download=config.download)
    if data.note:
        events.note(data.note)
    try:
        task = make_task(data, config.digits, val_size=config.val_size, seed=config.seed,
                         dtype=config.dtype)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return replace(task, settings=task_settings(config))


def run(config: RunConfig, events: RunEvents | None = None, *,
        task: Task | None = None) -> RunResult:
    """Perform the training run ``config`` describes; see the module docstring.

    ``task``, when given, is what `prepare_task` returned for settings with
    the same data, digits, validation size, seed and dtype: runs that share
    them (a sweep's trials) load and split the data once.

    Raises `ConfigError` for settings that do not fit (unwritable outputs, a
    validation size too large for the task, too many threads),
    `fastnn.mnist.DataError` for data that cannot be found or read,
    `fastnn.modelio.ModelFileError` for a checkpoint that cannot be resumed,
    `RunDiverged` when training diverges, and whatever an event hook raises
    other than `StopTraining`.
    """
    events = events or RunEvents()
    check_output(config.save, "--save")
    check_output(config.metrics_json, "--metrics-json")
    if config.plot_dir:  # before training, not after it
        plots.check_available("--plot-dir")
        plots.prepare_directory(config.plot_dir)

    if task is None:
        task = prepare_task(config, events)
    elif task.settings != task_settings(config):
        raise ConfigError(f"the task given was made for other settings ({task.name} in "
                          f"{task.x_train.dtype}): make it with prepare_task(config)")
    config = replace(config, data=task.source)
    net = Network(config.sizes, hidden=config.hidden, classes=config.digits,
                  dtype=config.dtype, seed=config.seed, init=config.init)
    resume = _restore(config, net, events) if config.resume else None
    done_before = len(resume.epochs) if resume else 0
    record = config.record()
    events.note(f"training {'-'.join(map(str, config.sizes))} ({config.hidden}, {net.output}) "
                f"on {task.name}: {len(task.x_train):,} train / {len(task.x_val):,} val / "
                f"{len(task.x_test):,} test images from "
                f"{'full MNIST' if task.source == 'mnist' else 'the bundled sample'}; "
                f"backend {config.backend}, {config.dtype}")

    started = time.perf_counter()
    try:
        batch_rows = resolve_batch_size(config.batch_size, len(task.x_train))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    compile_seconds = prepare_backend(config.backend, config.dtype, batch_rows,
                                      first_layer_width=net.sizes[1], threads=config.threads,
                                      note=events.note)
    checkpoints = Checkpointer(config.save, net, record, config.checkpoint_every)
    seen = {"history": resume}

    def epoch_ended(epoch_record, history):
        if result.startup_seconds is None:
            result.startup_seconds = _process_seconds() - epoch_record.seconds
        seen["history"] = history
        events.on_epoch_end(epoch_record, history)
        checkpoints.on_epoch_end(epoch_record, history)

    result = RunResult("completed", config, task, net, resume, done_before)
    events.on_train_begin(config, task, net, done_before)
    try:
        result.history = fit(
            net, task.x_train, task.labels_train, epochs=config.epochs,
            batch_size=config.batch_size, lr=config.lr, backend=config.backend,
            seed=config.seed, validation=(task.x_val, task.labels_val) if len(task.x_val) else None,
            on_epoch_end=epoch_ended, on_progress=events.on_progress, resume=resume)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    except StopTraining:
        result.status, result.history = "stopped", seen["history"]
    except TrainingInterrupted as stop:
        result.status, result.history = "interrupted", stop.history
        if config.save and stop.history.epochs:
            checkpoints.save(stop.history)
            result.saved = Path(config.save)
        return result
    except TrainingDiverged as err:
        raise RunDiverged(err, _kept(config, checkpoints.saved_epoch)) from None
    finally:
        events.on_train_end()
    result.total_seconds = time.perf_counter() - started
    result.compile_seconds = compile_seconds + result.history.compile_seconds
    _finish(result, checkpoints, events)
    return result


def _restore(config: RunConfig, net: Network, events: RunEvents) -> History:
    """Put the checkpoint's parameters into ``net``; return its history."""
    stored, _, history = read_checkpoint(config.resume)
    shape = lambda n: (n.sizes, n.classes, n.hidden, n.dtype)  # noqa: E731
    if shape(stored) != shape(net):
        raise ModelFileError(f"{config.resume}: its network {stored.sizes} does not match "
                             f"its stored configuration and data {net.sizes}")
    net.set_parameters(stored.weights, stored.biases)
    events.note(f"resuming {config.resume} after epoch {len(history.epochs)} of "
                f"{config.epochs}")
    return history


def _kept(config: RunConfig, saved_epoch) -> str:
    """What ``config.save`` holds after a divergence, as the end of a message."""
    if not config.save:
        return ""
    if saved_epoch is not None:
        return (f" {config.save} holds the checkpoint of epoch {saved_epoch}, saved before "
                "the divergence.")
    if config.resume:
        return f" {config.save} was left as it was."
    return " No model was saved."


_IMPORTED = time.perf_counter()


def _process_seconds() -> float:
    """Seconds since this process started (on Linux; elsewhere since fastnn was imported).

    Linux counts a process's start in clock ticks since boot, so this is
    good to a tick (10 ms); it includes the interpreter's own start.
    """
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            fields = stat.read().rsplit(")", 1)[1].split()
            up = float(uptime.read().split()[0])
        return up - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - _IMPORTED


def _finish(result: RunResult, checkpoints: Checkpointer, events: RunEvents) -> None:
    """Save, score on the test set, write the metrics JSON and the plots."""
    config, task, net, history = result.config, result.task, result.network, result.history
    if config.save:  # first: a signal from now on must not cost the trained model
        checkpoints.save(history)
        result.saved = Path(config.save)
    result.test_accuracy = net.score(task.x_test, task.labels_test, config.backend)
    result.metrics = {
        "fastnn_version": __version__,
        "backend": config.backend,
        "dtype": config.dtype,
        "dataset": task.source,
        "data": {"origin": task.origin, "task": task.name, "n_train": len(task.x_train),
                 "n_val": len(task.x_val), "n_test": len(task.x_test)},
        "config": checkpoints.config,
        "epochs": history.as_dicts(),
        "test_accuracy": result.test_accuracy,
        "compile_seconds": result.compile_seconds,
        "train_seconds": sum(record.seconds for record in history.epochs),
        "total_seconds": result.total_seconds,
        "startup_seconds": result.startup_seconds,
    }
    if config.metrics_json:
        Path(config.metrics_json).write_text(json.dumps(result.metrics, indent=2) + "\n")
    if config.plot_dir:
        result.plots = plots.write_training_plots(config.plot_dir, history, net, task.x_test,
                                                  task.labels_test)
        events.note(f"plots: {', '.join(str(path) for path in result.plots)}")
