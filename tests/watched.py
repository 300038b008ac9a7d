"""A child process whose stderr is collected line by line while it runs, for tests that
signal a process at a moment it announces."""

import re
import signal
import subprocess
import threading
import time

import pytest


class WatchedProcess:
    """``argv`` running in ``cwd``; `wait_for` a line of its stderr, then `finish`."""

    def __init__(self, argv, cwd, timeout=60.0):
        self.proc = _start_as_a_terminal_would(argv, cwd)
        self.timeout = timeout
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, pattern):
        """Return once a stderr line matches ``pattern``; fail the test if none comes in time."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if any(re.search(pattern, line) for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.proc.kill()
        pytest.fail(f"never saw {pattern!r}; stderr: {''.join(self.lines)}")

    def finish(self):
        """``(exit code, stdout, stderr)`` once the process has ended."""
        out = self.proc.stdout.read()
        code = self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return code, out, "".join(self.lines)


def _start_as_a_terminal_would(argv, cwd):
    """``argv`` started with SIGINT's default action, as a terminal starts its foreground job.

    A test run launched in the background (``cmd &`` in a script) ignores
    SIGINT, every child would inherit that, and fastnn rightly keeps a
    signal its parent ignores: the SIGINT tests would then test nothing but
    the launch. An ignored signal is inherited across exec, a handler is
    not, so the child starts with the default while this process has a
    handler installed.
    """
    swap = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if swap else None
    try:
        return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    finally:
        if swap:
            signal.signal(signal.SIGINT, previous)
