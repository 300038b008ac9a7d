"""What a run reports as it goes: override the hooks of `RunEvents` you need.

The training loop knows nothing about printing or stopping rules (as in
Keras' callbacks): `fastnn.workflow.run` calls these hooks, and a caller decides
what they do. `fastnn.progress.ConsoleEvents` prints like ``fastnn train``.
"""

from __future__ import annotations


class StopTraining(Exception):
    """Raise from `RunEvents.on_epoch_end` to end the run after that epoch.

    The run then finishes as if that epoch had been the last: it saves, scores
    and writes its metrics, and its result says ``status == "stopped"``. Any
    other exception from a hook (a pruned trial, say) ends the run unsaved.
    """


class RunEvents:
    """Hooks called by `fastnn.workflow.run`; each does nothing unless overridden."""

    def note(self, message: str) -> None:
        """A line for the person watching: a data fallback, compiling, what is trained."""

    def on_train_begin(self, config, task, network, done_epochs: int) -> None:
        """Training is about to start; ``done_epochs`` were completed before (a resumed run)."""

    def on_progress(self, rows_done: int, rows_total: int, loss_sum: float,
                    n_correct: int) -> None:
        """Every few thousand rows of an epoch (see `fastnn.train.fit`)."""

    def on_epoch_end(self, record, history) -> None:
        """After each completed epoch; may raise `StopTraining`."""

    def on_train_end(self) -> None:
        """Training stopped: finished, stopped early, interrupted or diverged."""
