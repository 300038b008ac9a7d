"""Clean stops: SIGTERM (and SIGINT) as KeyboardInterrupt, and saves a signal cannot cut.

`fastnn.train.fit` turns a KeyboardInterrupt into a clean stop at the last
completed epoch. `signals_interrupt` makes SIGTERM do the same, as Ctrl-C does,
and remembers which signal came (`stop_signal`).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: The signal that stopped the run; SIGINT unless `signals_interrupt` saw another.
_last = {"signal": signal.SIGINT}


def _raise_interrupt(signum, frame):
    _last["signal"] = signum
    raise KeyboardInterrupt


@contextmanager
def handling_stop_signals(handler, keep=lambda current: False):
    """While active (in the main thread), ``handler`` receives SIGINT and SIGTERM.

    A signal whose current handler ``keep`` accepts keeps it; the previous
    handlers come back on exit. Elsewhere than the main thread, nothing changes.
    """
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            if not keep(signal.getsignal(signum)):
                previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, replaced in previous.items():
            signal.signal(signum, replaced)


@contextmanager
def signals_interrupt():
    """While active, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread.

    A signal the parent process set to be ignored (or that has a handler of
    someone else's) stays as it was; the previous handlers come back on exit.
    """
    _last["signal"] = signal.SIGINT
    with handling_stop_signals(_raise_interrupt, keep=lambda current: current not in (
            signal.SIG_DFL, signal.default_int_handler)):
        yield


def stop_signal() -> tuple:
    """(exit code, name) of the signal that stopped the run: 130 SIGINT, 143 SIGTERM."""
    signum = _last["signal"]
    return 128 + signum, signal.Signals(signum).name


@contextmanager
def signals_ignored():
    """While active (in the main thread), SIGINT and SIGTERM are ignored."""
    with handling_stop_signals(signal.SIG_IGN):
        yield
