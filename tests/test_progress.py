"""Training progress: bars on a terminal, thinned lines elsewhere, silence with --quiet."""

import io
import os
import subprocess
import sys
import time

import pytest

from fastnn import Network
from fastnn.progress import MAX_LINES, TrainingProgress, choose_mode
from fastnn.train import EpochRecord, fit


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def record(epoch, val=0.91):
    return EpochRecord(epoch, loss=0.25, train_accuracy=0.9, val_accuracy=val, seconds=1.5)


@pytest.mark.parametrize("n_rows,batch,interactive,quiet,mode", [
    (54_000, 64, True, False, "bars"),     # many chunks per epoch
    (54_000, 1, True, False, "bars"),
    (54_000, "full", True, False, "run"),  # one step per epoch
    (5_000, 64, True, False, "run"),       # the whole epoch is one chunk
    (54_000, 64, False, False, "lines"),   # a log file
    (54_000, 64, True, True, "off"),
    (54_000, 64, False, True, "off"),
])
def test_the_mode_follows_the_terminal_the_batching_and_quiet(n_rows, batch, interactive,
                                                             quiet, mode):
    assert choose_mode(n_rows, batch, interactive=interactive, quiet=quiet) == mode


def test_an_epoch_bar_shows_running_loss_and_accuracy_then_the_epoch_summary():
    stream = Terminal()
    with TrainingProgress(2, 20_000, 64, stream=stream, min_interval=0) as progress:
        assert progress.mode == "bars"
        for epoch in (1, 2):
            for done, loss_sum, correct in ((8192, 8192 * 0.5, 6000), (16384, 16384 * 0.4, 13000)):
                progress.on_progress(done, 20_000, loss_sum, correct)
            running = stream.getvalue()
            assert f"epoch {epoch}/2:  41%" in running and "8.19k/20.0k" in running
            assert "16.4k/20.0k" in running and "loss 0.4000, acc 79.35%" in running
            progress.on_progress(20_000, 20_000, 20_000 * 0.3, 17_000)
            progress.on_epoch_end(record(epoch))
    finished = stream.getvalue().rstrip("\n").split("\n")
    assert len(finished) == 2  # one finished bar per epoch, each on its own line
    for epoch, line in zip((1, 2), finished):
        last = line.split("\r")[-1]
        assert last.startswith(f"epoch {epoch}/2: 100%")
        assert "20.0k/20.0k" in last and "[00:01<" in last  # the epoch's measured 1.5 s
        assert last.endswith("loss 0.2500, train 90.00%, val 91.00%]")


def test_full_batch_training_gets_one_bar_over_the_epochs():
    stream = Terminal()
    with TrainingProgress(300, 9_000, "full", stream=stream) as progress:
        for epoch in range(1, 301):
            progress.on_progress(9_000, 9_000, 9_000 * 0.3, 8_000)  # ignored in this mode
            progress.on_epoch_end(record(epoch))
    out = stream.getvalue()
    assert out.count("\n") == 1 and "epoch 1/" not in out
    last = out.strip().split("\r")[-1]
    assert last.startswith("training: 100%") and "300/300" in last
    assert "loss 0.2500, train 90.00%, val 91.00%" in last


def test_a_resumed_run_counts_from_its_checkpoint():
    stream = Terminal()
    with TrainingProgress(10, 54_000, 64, stream=stream, done_epochs=7) as progress:
        progress.on_progress(8192, 54_000, 100.0, 5000)
    assert "epoch  8/10" in stream.getvalue()
    stream = Terminal()
    with TrainingProgress(10, 54_000, "full", stream=stream, done_epochs=7) as progress:
        assert stream.getvalue() == ""  # no bar before an epoch is done
        progress.on_epoch_end(record(8))
    assert stream.getvalue().split("\r")[-1].startswith("training:  80%|")
    assert "8/10" in stream.getvalue()


@pytest.mark.parametrize("epochs", [3, 20, 21, 100, 1000])
def test_without_a_terminal_lines_are_thinned_to_about_twenty(epochs):
    stream = io.StringIO()
    with TrainingProgress(epochs, 54_000, 64, stream=stream) as progress:
        assert progress.mode == "lines"
        for epoch in range(1, epochs + 1):
            progress.on_progress(54_000, 54_000, 1.0, 1)
            progress.on_epoch_end(record(epoch, val=None))
    lines = stream.getvalue().splitlines()
    assert len(lines) == min(epochs, len(lines)) and len(lines) <= MAX_LINES + 1
    assert len(lines) >= min(epochs, MAX_LINES // 2)
    width = len(str(epochs))
    assert lines[0] == f"epoch {1:>{width}}/{epochs}  loss 0.2500  train  90.00%  1.50s"
    assert lines[-1].startswith(f"epoch {epochs}/{epochs}")
    assert "\r" not in stream.getvalue()


def test_quiet_prints_nothing():
    stream = Terminal()
    with TrainingProgress(5, 54_000, 64, stream=stream, quiet=True) as progress:
        for epoch in range(1, 6):
            progress.on_progress(8192, 54_000, 1.0, 1)
            progress.on_epoch_end(record(epoch))
    assert stream.getvalue() == ""


def test_an_update_costs_next_to_nothing():
    """fit calls on_progress once per ~8192 rows: at < 0.5 ms a call, 60,000 rows spend < 4 ms."""
    stream = Terminal()
    with TrainingProgress(1, 10_000_000, 64, stream=stream) as progress:
        progress.on_progress(1, 10_000_000, 0.5, 1)  # the bar's creation
        calls = 2000
        started = time.perf_counter()
        for i in range(calls):
            progress.on_progress(8192 * (i + 1), 10_000_000, 0.5 * 8192 * (i + 1), 7000 * (i + 1))
        per_call = (time.perf_counter() - started) / calls
    assert per_call < 5e-4


def test_fit_drives_the_bars_through_its_hooks(small_xy):
    x, labels = small_xy
    x = x.repeat(30, axis=0)[:18_000]  # three chunks per epoch
    labels = labels.repeat(30)[:18_000]
    net = Network([784, 16, 10], seed=0)
    stream = Terminal()
    with TrainingProgress(2, len(x), 64, stream=stream) as progress:
        history = fit(net, x, labels, epochs=2, batch_size=64, lr=0.05, backend="numpy",
                      on_progress=progress.on_progress, on_epoch_end=progress.on_epoch_end)
    bars = stream.getvalue().rstrip("\n").split("\n")
    assert len(bars) == 2
    for epoch, bar in zip(history.epochs, bars):
        final = bar.split("\r")[-1]
        assert "18.0k/18.0k" in final
        assert f"loss {epoch.loss:.4f}, train {epoch.train_accuracy:.2%}]" in final


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_the_cli_draws_bars_on_a_terminal_and_lines_elsewhere(tmp_path):
    import pty

    args = [sys.executable, "-m", "fastnn", "train", "--data", "sample", "--backend", "numpy",
            "--layers", "16", "--epochs", "2", "--batch-size", "1"]
    env = {**os.environ, "COLUMNS": "120"}
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(args, stdout=subprocess.PIPE, stderr=follower, env=env,
                                timeout=300)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    terminal = b"".join(chunks).decode()
    assert result.returncode == 0, terminal
    assert result.stdout.decode().startswith("test accuracy")
    # batch size 1 means 8,192 rows per chunk: 9,000 rows are two chunks, so epoch bars
    for epoch in (1, 2):
        finished = [part for part in terminal.split("\r")
                    if part.startswith(f"epoch {epoch}/2: 100%")]
        assert finished and "val " in finished[-1]
    assert "epoch 1/2  loss" not in terminal

    logged = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert logged.returncode == 0
    assert "\r" not in logged.stderr and "%|" not in logged.stderr
    assert "epoch 1/2  loss" in logged.stderr and "epoch 2/2  loss" in logged.stderr
