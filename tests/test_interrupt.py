"""Interrupted runs lose nothing: SIGINT/SIGTERM checkpoint, --resume, divergence.

The signal tests run ``fastnn train`` in a real process, signal it while it
waits at a known point of a known epoch (so where the signal lands does not
depend on timing), resume the checkpoint it leaves and compare the result with
an uninterrupted run of the same seed: with the NumPy backend the parameters
must be identical, bit for bit.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastnn.cli import main
from fastnn.modelio import read_checkpoint, read_model_file, save_model
from fastnn.network import Network
from fastnn.train import History, TrainingInterrupted, fit

from .conftest import same_parameters
from .watched import WatchedProcess

# Per-sample SGD on 5,000 rows: one call into the backend per epoch.
EPOCHS = 8
RUN = ["train", "--data", "sample", "--backend", "numpy", "--layers", "16",
       "--hidden", "sigmoid", "--lr", "0.05", "--batch-size", "1", "--val-size", "0.5",
       "--seed", "4"]


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


# `fastnn train`, paused in epoch argv[1] (after its training steps, before the epoch is
# complete) until a signal arrives, or for at most five minutes.
PAUSED = """
import sys, time
import fastnn.cli as cli
import fastnn.workflow as workflow

pause_in, real_fit = int(sys.argv[1]), workflow.fit

def fit(*args, on_progress, on_epoch_end, **options):
    completed = [len(options["resume"].epochs) if options.get("resume") else 0]

    def ended(record, history):
        completed[0] = record.epoch
        on_epoch_end(record, history)

    def progress(*report):
        on_progress(*report)
        if completed[0] + 1 == pause_in:
            print(f"waiting for a signal in epoch {pause_in}", file=sys.stderr, flush=True)
            time.sleep(300)

    return real_fit(*args, on_progress=progress, on_epoch_end=ended, **options)

workflow.fit = fit
sys.exit(cli.main(sys.argv[2:]))
"""


def paused_training(args, cwd, pause_in) -> WatchedProcess:
    """A ``fastnn train`` process, paused in epoch ``pause_in`` for a signal."""
    return WatchedProcess([sys.executable, "-c", PAUSED, str(pause_in), *args], cwd,
                          timeout=300.0)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same run, start to finish, without a signal."""
    folder = tmp_path_factory.mktemp("straight")
    result = cli(*RUN, "--epochs", str(EPOCHS), "--save", "full.npz", cwd=folder)
    assert result.returncode == 0, result.stderr
    return read_model_file(folder / "full.npz")


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signalled_run_saves_a_checkpoint_and_resumes_to_the_same_parameters(
        tmp_path, uninterrupted, signum, code):
    run = paused_training([*RUN, "--epochs", str(EPOCHS), "--save", "ck.npz"], cwd=tmp_path,
                   pause_in=2)
    run.wait_for(r"^waiting for a signal in epoch 2")
    run.proc.send_signal(signum)
    returncode, out, err = run.finish()

    assert returncode == code, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == (f"fastnn: interrupted by {signal.Signals(signum).name} after epoch 1 of "
                    f"{EPOCHS}; checkpoint saved to ck.npz; continue with: fastnn train --resume "
                    "ck.npz")
    done = 1  # epoch 2 was in progress
    assert out == ""  # no test-accuracy summary for a run that did not finish

    net, meta, history = read_checkpoint(tmp_path / "ck.npz")
    assert [record.epoch for record in history.epochs] == list(range(1, done + 1))
    assert meta["config"]["epochs"] == EPOCHS
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]  # no temporary files left

    resumed = cli("train", "--resume", "ck.npz", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming ck.npz after epoch {done} of {EPOCHS}" in resumed.stderr
    assert f"after {EPOCHS} epochs ({EPOCHS - done} in this run)" in resumed.stdout
    assert resumed.stdout.rstrip().endswith("saved ck.npz")

    final, final_meta = read_model_file(tmp_path / "ck.npz")
    reference, reference_meta = uninterrupted
    assert same_parameters(final, reference)
    losses = [e["loss"] for e in final_meta["training"]["epochs"]]
    assert losses == [e["loss"] for e in reference_meta["training"]["epochs"]]
    assert final_meta["training"]["rng_state"] == reference_meta["training"]["rng_state"]


def test_even_a_killed_run_keeps_its_last_checkpoint_and_resumes_exactly(tmp_path,
                                                                         uninterrupted):
    run = paused_training([*RUN, "--epochs", str(EPOCHS), "--save", "ck.npz",
                    "--checkpoint-every", "0"], cwd=tmp_path, pause_in=3)
    run.wait_for(r"^waiting for a signal in epoch 3")
    run.proc.send_signal(signal.SIGKILL)  # no handler, no clean-up: only what is on disk counts
    returncode, _, _ = run.finish()
    assert returncode == -signal.SIGKILL
    assert len(read_checkpoint(tmp_path / "ck.npz")[2].epochs) == 2
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".tmp")] == ["ck.npz"]
    resumed = cli("train", "--resume", "ck.npz", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert same_parameters(read_model_file(tmp_path / "ck.npz")[0], uninterrupted[0])


def test_without_save_an_interrupted_run_says_nothing_was_saved(tmp_path):
    run = paused_training([*RUN, "--epochs", "50"], cwd=tmp_path, pause_in=2)
    run.wait_for(r"^waiting for a signal in epoch 2")
    run.proc.send_signal(signal.SIGINT)
    returncode, _, err = run.finish()
    assert returncode == 130
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == ("fastnn: interrupted by SIGINT after epoch 1 of 50; nothing saved (give "
                    "--save PATH to keep a checkpoint)")
    assert list(tmp_path.iterdir()) == []


def test_a_signal_before_the_first_epoch_completes_saves_nothing(tmp_path):
    run = paused_training([*RUN, "--epochs", "50", "--save", "ck.npz"], cwd=tmp_path, pause_in=1)
    run.wait_for(r"^waiting for a signal in epoch 1")
    run.proc.send_signal(signal.SIGTERM)
    returncode, _, err = run.finish()
    assert returncode == 143
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == "fastnn: interrupted by SIGTERM before the first epoch completed; nothing saved"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def sigint_as_in_a_terminal():
    """SIGINT raises KeyboardInterrupt here, as in a terminal's foreground job.

    A test run launched in the background ignores SIGINT, and fastnn keeps a
    signal its parent ignores (see ``tests/watched.py``).
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_loading_data_exits_with_its_code(monkeypatch, capsys, signum, code,
                                                         sigint_as_in_a_terminal):
    import fastnn.mnist

    def load(*args, **options):
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler interrupts this
        raise AssertionError("the signal was not turned into KeyboardInterrupt")

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(fastnn.mnist, "load", load)
    with pytest.raises(SystemExit) as stop:
        main(["train", "--data", "sample"])
    assert stop.value.code == code
    assert capsys.readouterr().err == f"fastnn: interrupted by {signal.Signals(signum).name}\n"
    assert signal.getsignal(signal.SIGTERM) is previous  # main() put the old handler back


# --- divergence through the CLI ------------------------------------------------------------

def test_divergence_exits_1_with_one_line_and_saves_nothing(tmp_path):
    result = cli("train", "--data", "sample", "--backend", "numpy", "--layers", "16",
                 "--lr", "1e30", "--epochs", "3", "--save", "m.npz", "--metrics-json", "m.json",
                 cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"fastnn: error: training diverged: the loss became NaN or infinite at "
                        r"epoch 1, batch \d+\. The parameters from before the first epoch were "
                        r"restored\. Try a smaller learning rate than 1e\+30\. No model was "
                        r"saved\.", last)
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_divergence_after_a_checkpoint_says_what_the_file_holds(tmp_path, monkeypatch, capsys):
    import fastnn.workflow
    from fastnn.train import TrainingDiverged

    def diverging_fit(net, x, labels, **options):
        history = fit(net, x, labels, **{**options, "epochs": 2})
        raise TrainingDiverged(3, 17, options["lr"], history)

    monkeypatch.setattr(fastnn.workflow, "fit", diverging_fit)
    path = tmp_path / "m.npz"
    with pytest.raises(SystemExit) as stop:
        main([*QUICK, "--epochs", "3", "--save", str(path), "--checkpoint-every", "0"])
    assert stop.value.code == 1
    assert capsys.readouterr().err.endswith(
        f"Try a smaller learning rate than 0.1. {path} holds the checkpoint of epoch 2, saved "
        "before the divergence.\n")
    assert len(read_checkpoint(path)[2].epochs) == 2


def test_checkpoints_are_written_only_as_often_as_asked(tmp_path, monkeypatch):
    import fastnn.checkpoints

    written = []
    real_save = fastnn.checkpoints.save_model

    def save(path, net, **fields):
        written.append(len(fields["training"]["epochs"]))
        return real_save(path, net, **fields)

    monkeypatch.setattr(fastnn.checkpoints, "save_model", save)
    assert main([*QUICK, "--epochs", "4", "--save", str(tmp_path / "a.npz")]) == 0
    assert written == [4]  # the default: at most one a minute, and a fast run ends first
    written.clear()
    assert main([*QUICK, "--epochs", "4", "--save", str(tmp_path / "b.npz"),
                 "--checkpoint-every", "0"]) == 0
    assert written == [1, 2, 3, 4]


# --- resume and its rules, in process ------------------------------------------------------

QUICK = ["train", "--data", "sample", "--backend", "numpy", "--layers", "8", "--seed", "2",
         "--val-size", "0.2", "-q"]


def test_a_finished_run_can_be_extended_to_equal_a_longer_run(tmp_path):
    assert main([*QUICK, "--epochs", "2", "--save", str(tmp_path / "short.npz")]) == 0
    assert main(["train", "--resume", str(tmp_path / "short.npz"), "--epochs", "3", "-q",
                 "--save", str(tmp_path / "extended.npz")]) == 0
    assert main([*QUICK, "--epochs", "3", "--save", str(tmp_path / "long.npz")]) == 0
    extended, meta = read_model_file(tmp_path / "extended.npz")
    assert same_parameters(extended, read_model_file(tmp_path / "long.npz")[0])
    assert meta["config"]["epochs"] == 3
    # --save named another file: the checkpoint resumed from is untouched.
    assert len(read_checkpoint(tmp_path / "short.npz")[2].epochs) == 2


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "ck.npz"
    assert main([*QUICK, "--epochs", "2", "--save", str(path)]) == 0
    return path


@pytest.mark.parametrize("flags,message", [
    (["--lr", "0.5"], "--lr 0.5 contradicts the checkpoint {ck}, which was trained with --lr 0.1; "
                      "with --resume only --epochs may change"),
    (["--layers", "8,8"], "--layers 8,8 contradicts the checkpoint {ck}, which was trained with "
                          "--layers 8"),
    (["--digits", "0,1"], "--digits 0,1 contradicts the checkpoint {ck}, which was trained with "
                          "--digits all"),
    (["--seed", "3"], "--seed 3 contradicts"),
    (["--batch-size", "full"], "--batch-size full contradicts"),
    (["--hidden", "sigmoid"], "--hidden sigmoid contradicts"),
    (["--init", "lecun"], "--init lecun contradicts"),
    (["--val-size", "0.1"], "--val-size 0.1 contradicts"),
    (["--dtype", "float64"], "--dtype float64 contradicts"),
    (["--preset", "sgd"], "--preset sgd contradicts the checkpoint {ck}, which was trained with "
                          "--preset None"),
    (["--data", "mnist"], "--data mnist contradicts the checkpoint {ck}, which was trained on "
                          "--data sample"),
    (["--epochs", "2"], "the checkpoint {ck} has already completed 2 of 2 epochs; give --epochs "
                        "greater than 2 to train further"),
    ([], "has already completed 2 of 2 epochs"),
])
def test_resume_rejects_flags_that_contradict_the_checkpoint(checkpoint, capsys, flags, message):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--resume", str(checkpoint), *flags])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastnn: error: ")
    assert message.format(ck=checkpoint) in err


def test_resume_accepts_flags_that_repeat_the_checkpoint(checkpoint):
    assert main(["train", "--resume", str(checkpoint), "--epochs", "3", "--lr", "0.1",
                 "--layers", "8", "--seed", "2", "--val-size", "0.2", "--digits", "all",
                 "--init", "auto", "--hidden", "relu", "--data", "sample", "-q"]) == 0
    assert len(read_checkpoint(checkpoint)[2].epochs) == 3


def test_a_model_without_training_state_cannot_be_resumed(tmp_path, capsys):
    path = tmp_path / "plain.npz"
    save_model(path, Network([784, 8, 10]))
    with pytest.raises(SystemExit) as stop:
        main(["train", "--resume", str(path)])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err == (f"fastnn: error: {path} is a model without training state, so it cannot be "
                   "resumed; resume from a file written by 'fastnn train --save'\n")


def test_resume_of_a_missing_file_fails_with_exit_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--resume", str(tmp_path / "nope.npz")])
    assert stop.value.code == 1
    assert capsys.readouterr().err.startswith(f"fastnn: error: model file {tmp_path}")


def test_a_damaged_training_state_is_reported_on_load(tmp_path):
    net = Network([784, 8, 10])
    history = History("numpy", 64, 0.1, rng_state={"bit_generator": "PCG64", "state": "x"})
    save_model(tmp_path / "bad_rng.npz", net, training=history.state())
    with pytest.raises(ValueError, match="bad_rng.npz has a damaged training state: the "
                                         "shuffling state is not a valid state"):
        read_model_file(tmp_path / "bad_rng.npz")
    state = fit_state(net)
    state["epochs"][0]["epoch"] = 7
    save_model(tmp_path / "bad_epochs.npz", net, training=state)
    with pytest.raises(ValueError, match="not numbered 1, 2, ...: record 1 says epoch 7"):
        read_model_file(tmp_path / "bad_epochs.npz")
    state = fit_state(net)
    del state["rng_state"]
    save_model(tmp_path / "no_rng.npz", net, training=state)
    with pytest.raises(ValueError, match="training state lacks rng_state"):
        read_model_file(tmp_path / "no_rng.npz")


def fit_state(net):
    rng = np.random.default_rng(0)
    x, labels = rng.random((40, 784)), rng.integers(0, 10, 40)
    return fit(net, x, labels, epochs=1, batch_size=8, backend="numpy").state()


# --- fit: an interrupt anywhere leaves a consistent state --------------------------------

@pytest.mark.parametrize("where", ["mid-epoch", "validation", "after-epoch"])
def test_an_interrupt_anywhere_in_fit_resumes_to_the_uninterrupted_result(small_xy, where):
    x, labels = small_xy
    options = dict(batch_size=1, lr=0.05, seed=5, backend="numpy",
                   validation=(x[:50], labels[:50]))
    straight = Network([784, 8, 10], seed=1)
    fit(straight, x, labels, epochs=3, **options)

    net = Network([784, 8, 10], seed=1)

    def on_progress(*_):
        if where == "mid-epoch" and finished[0] == 1:
            raise KeyboardInterrupt

    def on_epoch_end(record, history):
        finished[0] = record.epoch
        if where == "after-epoch" and record.epoch == 2:
            raise KeyboardInterrupt

    finished = [0]
    original_predict = Network.predicted_indices  # what fit's validation pass calls

    def predicted_indices(self, *args, **kwargs):
        if where == "validation" and finished[0] == 1:
            raise KeyboardInterrupt
        return original_predict(self, *args, **kwargs)

    Network.predicted_indices = predicted_indices
    try:
        with pytest.raises(TrainingInterrupted) as stop:
            fit(net, x, labels, epochs=3, on_progress=on_progress, on_epoch_end=on_epoch_end,
                **options)
    finally:
        Network.predicted_indices = original_predict
    history = stop.value.history
    assert len(history.epochs) == (2 if where == "after-epoch" else 1)
    resumed = History.from_state(json.loads(json.dumps(history.state())))
    fit(net, x, labels, epochs=3, resume=resumed, **options)
    assert same_parameters(net, straight)


def test_fit_refuses_to_resume_a_finished_run(small_xy):
    x, labels = small_xy
    net = Network([784, 8, 10])
    history = fit(net, x, labels, epochs=1, batch_size=100, backend="numpy")
    with pytest.raises(ValueError, match=r"already completed 1 epoch\(s\); ask for more than 1"):
        fit(net, x, labels, epochs=1, batch_size=100, backend="numpy", resume=history)


def test_saved_models_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        save_model(tmp_path / "m.npz", Network([4, 2]))
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("batch_size", [1, 64, "full"])
def test_resume_matches_with_the_numba_backend_too(small_xy, batch_size):
    """Bit for bit, as with the NumPy backend: a resumed run is the uninterrupted run."""
    x, labels = small_xy
    options = dict(batch_size=batch_size, lr=0.05, seed=3, backend="numba")
    straight = Network([784, 16, 10], seed=1)
    fit(straight, x, labels, epochs=4, **options)
    resumed = Network([784, 16, 10], seed=1)
    first = fit(resumed, x, labels, epochs=2, **options)
    state = History.from_state(json.loads(json.dumps(first.state())))  # as a checkpoint has it
    fit(resumed, x, labels, epochs=4, resume=state, **options)
    for a, b in zip(resumed.weights + resumed.biases, straight.weights + straight.biases):
        np.testing.assert_array_equal(a, b)
