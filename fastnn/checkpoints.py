"""Checkpoints of a run: saved whole, never cut short by a signal, at most so often."""

from __future__ import annotations

import time

from .interrupts import signals_ignored
from .modelio import save_model


def save_undisturbed(path, net, **fields) -> None:
    """`save_model` atomically; a second Ctrl-C or SIGTERM meanwhile cannot cut it short."""
    with signals_ignored():
        save_model(path, net, **fields)


class Checkpointer:
    """Saves ``net`` with its training state to ``path``, during training at most every
    ``every`` seconds.

    ``config`` is the run's recorded configuration; epoch ``config["epochs"]``,
    the last, is left to the end of the run, which saves it with its test score
    known. ``path`` None saves nothing.
    """

    def __init__(self, path, net, config: dict, every: float):
        self.path, self.net, self.config, self.every = path, net, config, every
        self.last_write = time.monotonic()
        self.saved_epoch = None  # the epoch of the last checkpoint written during training

    def save(self, history) -> None:
        save_undisturbed(self.path, self.net, training=history.state(), config=self.config)

    def on_epoch_end(self, record, history) -> None:
        due = time.monotonic() - self.last_write >= self.every
        if self.path and due and record.epoch < self.config["epochs"]:
            self.save(history)
            self.last_write = time.monotonic()
            self.saved_epoch = record.epoch
