"""Training progress on stderr: tqdm bars on a terminal, summary lines elsewhere.

`TrainingProgress` plugs into `fastnn.train.fit` through its two hooks:
``on_progress`` (called between compiled chunks of ~8192 rows, so a bar
update costs nothing measurable) and ``on_epoch_end``. It picks one of
four modes:

``"bars"``    a terminal, epochs of several chunks: one bar per epoch over its
              rows, with the running loss and accuracy; each finished bar stays
              as that epoch's summary (with the validation accuracy).
``"run"``     a terminal, epochs of one chunk (full-batch training, or a small
              task): one bar over the epochs, with the last epoch's metrics.
``"lines"``   not a terminal (a log file, CI): one line per epoch, thinned to
              about 20 lines for long runs (the first and last always shown).
``"off"``     ``quiet``: nothing.

`ConsoleEvents` reports a whole `fastnn.workflow.run` the way ``fastnn train`` does.
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from typing import TYPE_CHECKING, TextIO

from .events import RunEvents
from .history import EpochRecord, History
from .train import ROWS_PER_CALL, resolve_batch_size

if TYPE_CHECKING:
    from tqdm import tqdm

MODES = ("bars", "run", "lines", "off")
#: Most epoch lines the "lines" mode prints for a long run (plus the last one).
MAX_LINES = 20


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def terminal_width(stream: TextIO) -> int | None:
    """Columns of the terminal behind ``stream``; None if unknown or reported as 0."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def choose_mode(n_rows: int, batch_size: int | str, *, interactive: bool,
                quiet: bool = False) -> str:
    """The mode for a run over ``n_rows`` training rows (see the module docstring)."""
    if quiet:
        return "off"
    if not interactive:
        return "lines"
    batch = resolve_batch_size(batch_size, n_rows)
    rows_per_call = max(1, ROWS_PER_CALL // batch) * batch
    return "bars" if n_rows > rows_per_call else "run"


def epoch_line(record: EpochRecord, epochs: int) -> str:
    """One epoch's summary: ``epoch 3/10  loss 0.1234  train 96.10%  val 95.80%  1.23s``."""
    val = "" if record.val_accuracy is None else f"  val {record.val_accuracy:7.2%}"
    return (f"epoch {record.epoch:>{len(str(epochs))}}/{epochs}  loss {record.loss:.4f}  "
            f"train {record.train_accuracy:7.2%}{val}  {record.seconds:.2f}s")


class TrainingProgress:
    """Reports a `fit` run; pass ``on_progress`` and ``on_epoch_end`` to `fit`.

    Use it as a context manager so that an unfinished bar is closed when
    training stops early (Ctrl-C, divergence).

    Parameters
    ----------
    epochs : the run's last epoch number. n_rows, batch_size : as given to `fit`.
    stream : where to write (default ``sys.stderr``).
    quiet : report nothing. interactive : draw bars; default: ``stream`` is a terminal.
    done_epochs : epochs already completed (a resumed run).
    min_interval : least seconds between two redraws of a bar.
    """

    def __init__(self, epochs: int, n_rows: int, batch_size: int | str, *,
                 stream: TextIO | None = None,
                 quiet: bool = False, interactive: bool | None = None, done_epochs: int = 0,
                 min_interval: float = 0.2):
        self.stream = sys.stderr if stream is None else stream
        if interactive is None:
            interactive = is_terminal(self.stream)
        self.mode = choose_mode(n_rows, batch_size, interactive=interactive, quiet=quiet)
        self.epochs = epochs
        self.epoch = done_epochs + 1  # the epoch under way
        self.every = max(1, math.ceil(epochs / MAX_LINES))
        self.min_interval = min_interval
        self._bar = None

    def _new_bar(self, **options) -> tqdm:
        from tqdm import tqdm  # here, not at import: 0.07 s that runs without bars skip

        # A terminal that reports no size (a bare pty) would get empty bars:
        # draw them 100 columns wide instead of following the window.
        sized = terminal_width(self.stream) is not None
        fixed = {} if sized else {"ncols": 100, "nrows": 24}
        return tqdm(file=self.stream, leave=True, dynamic_ncols=sized,
                    mininterval=self.min_interval, **fixed, **options)

    # --- the two hooks of `fit` ----------------------------------------------------

    def on_progress(self, rows_done: int, rows_total: int, loss_sum: float,
                    n_correct: int) -> None:
        if self.mode != "bars":
            return
        running = f"loss {loss_sum / rows_done:.4f}, acc {n_correct / rows_done:.2%}"
        if self._bar is None:  # the epoch's first report: its first chunk is done
            self._bar = self._new_bar(total=rows_total, initial=rows_done, postfix=running,
                                      unit="row", unit_scale=True,
                                      desc=f"epoch {self.epoch:>{len(str(self.epochs))}}"
                                           f"/{self.epochs}")
            return
        self._bar.set_postfix_str(running, refresh=False)
        self._bar.update(rows_done - self._bar.n)

    def on_epoch_end(self, record: EpochRecord, history: History | None = None) -> None:
        self.epoch = record.epoch + 1
        if self.mode == "lines":
            if record.epoch % self.every == 0 or record.epoch in (1, self.epochs):
                print(epoch_line(record, self.epochs), file=self.stream, flush=True)
        elif self.mode == "run":
            if self._bar is None:  # drawn once the first epoch is done, like the epoch bars
                self._bar = self._new_bar(total=self.epochs, initial=record.epoch - 1,
                                          desc="training", unit="epoch")
                self._bar.start_t = time.time() - record.seconds
            self._bar.set_postfix_str(self._metrics(record), refresh=False)
            self._bar.update(1)
        elif self.mode == "bars" and self._bar is not None:
            self._bar.set_postfix_str(self._metrics(record), refresh=False)
            # The bar's clock started at the first chunk's report: show the
            # epoch's measured time instead.
            self._bar.start_t = time.time() - record.seconds
            self._bar.close()
            self._bar = None

    @staticmethod
    def _metrics(record: EpochRecord) -> str:
        val = "" if record.val_accuracy is None else f", val {record.val_accuracy:.2%}"
        return f"loss {record.loss:.4f}, train {record.train_accuracy:.2%}{val}"

    # --- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "TrainingProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ConsoleEvents(RunEvents):
    """Reports a `fastnn.workflow.run` on ``stream`` (default stderr): its notes, then
    a `TrainingProgress`; with ``quiet``, nothing."""

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None):
        self.quiet, self.stream = quiet, stream
        self.progress = None

    def note(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr if self.stream is None else self.stream)

    def on_train_begin(self, config, task, network, done_epochs: int) -> None:
        self.progress = TrainingProgress(config.epochs, len(task.x_train), config.batch_size,
                                         stream=self.stream, quiet=self.quiet,
                                         done_epochs=done_epochs)

    def on_progress(self, *report) -> None:
        self.progress.on_progress(*report)

    def on_epoch_end(self, record, history) -> None:
        self.progress.on_epoch_end(record, history)

    def on_train_end(self) -> None:
        if self.progress is not None:
            self.progress.close()
