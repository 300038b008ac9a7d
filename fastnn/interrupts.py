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
def signals_interrupt():
    """While active, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread.

    A signal the parent process set to be ignored stays ignored; the previous
    handlers come back on exit.
    """
    _last["signal"] = signal.SIGINT
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
                previous[signum] = signal.signal(signum, _raise_interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_signal() -> tuple:
    """(exit code, name) of the signal that stopped the run: 130 SIGINT, 143 SIGTERM."""
    signum = _last["signal"]
    return 128 + signum, signal.Signals(signum).name


@contextmanager
def signals_ignored():
    """While active (in the main thread), SIGINT and SIGTERM are ignored."""
    ignored = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            ignored[signum] = signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in ignored.items():
            signal.signal(signum, handler)
