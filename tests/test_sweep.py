"""`fastnn sweep`: a hyperparameter search whose study survives interrupts and is shared.

Every sweep here is real: real Optuna studies in journal files under the test's
folder, real training on the bundled sample with the NumPy backend (no Numba
compilation), real worker processes and real signals.
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna", reason='fastnn sweep needs pip install "fastnn[sweep]"')

from fastnn.cli import main  # noqa: E402
from fastnn.config import ConfigError  # noqa: E402
from fastnn.sweep import split_cores  # noqa: E402
from fastnn.sweep.space import SearchSpace, SpaceError, parse_spec  # noqa: E402
from fastnn.threads import available_threads  # noqa: E402

from .watched import WatchedProcess  # noqa: E402

# Small, quick trials: a 784-32-10 or 784-64-10 network, two epochs of 9,000 sample rows.
QUICK = ["--data", "sample", "--backend", "numpy", "--threads", "1", "-p", "layers=32/64",
         "-p", "epochs=2"]
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def sweep(*args, cwd):
    """``fastnn sweep ARGS`` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "fastnn", "sweep", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


@pytest.fixture
def in_process(tmp_path, monkeypatch, capfd):
    """``fastnn sweep ARGS`` run by this process in ``tmp_path`` (its workers are processes
    of their own): (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)

    def run(*args):
        try:
            code = main(["sweep", *args])
        except SystemExit as exit:
            code = exit.code
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def load(folder, name="fastnn"):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "fastnn-sweep.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def trial_lines(stderr):
    """The trial numbers of the live lines, in the order they were printed."""
    return [int(number) for number in re.findall(r"^trial +(\d+) ", stderr, re.M)]


def sweep_process(args, cwd) -> WatchedProcess:
    """A running ``fastnn sweep`` process whose stderr is collected line by line."""
    return WatchedProcess([sys.executable, "-m", "fastnn", "sweep", *args], cwd)


# --- a sweep, its report, and the command that reproduces its best trial -----------------

def test_a_short_sweep_on_the_sample_reports_the_best_trial_and_how_to_train_it_again(
        tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *QUICK, "--trials", "4", "--plot-dir", "plots"]) == 0
    out, err = capfd.readouterr()
    assert sorted(trial_lines(err)) == [0, 1, 2, 3]
    assert "4 finished trials" in out
    assert re.search(r"^ +1 +\d+ +\d+\.\d\d% +\d+\.\d\d% ", out, re.M)  # rank 1, val, test
    assert (tmp_path / "plots" / "history.png").stat().st_size > 0
    assert "importances.png not written: parameter importances need at least 5 completed" in err

    # The printed command trains the best trial again: same split, seed and settings,
    # so the same validation accuracy, bit for bit, and the same test accuracy.
    command = out.strip().splitlines()[-1].strip()
    words = shlex.split(command)
    assert words[:2] == ["fastnn", "train"]
    assert main([*words[1:], "--metrics-json", "best.json", "-q"]) == 0
    metrics = json.loads((tmp_path / "best.json").read_text())
    best = load(tmp_path).best_trial
    assert metrics["epochs"][-1]["val_accuracy"] == best.value
    assert metrics["test_accuracy"] == best.user_attrs["test_accuracy"]


def test_json_holds_the_whole_study_and_importances_come_with_enough_trials(
        tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [*QUICK, "--trials", "7", "--pruner", "none", "--sampler", "random", "-q"]
    assert main(["sweep", *args, "--json", "--plot-dir", "plots"]) == 0
    out, err = capfd.readouterr()
    study = json.loads(out)
    assert [t["number"] for t in study["trials"]] == list(range(7))
    assert all(t["state"] == "complete" and len(t["val_accuracy_per_epoch"]) == 2
               for t in study["trials"])
    assert study["best"]["value"] == max(t["value"] for t in study["trials"])
    assert study["best"]["command"].startswith("fastnn train --layers ")
    assert study["space"]["layers"] == [[32], [64]] and study["space"]["epochs"] == 2
    assert (tmp_path / "plots" / "importances.png").stat().st_size > 0
    assert err == ""  # quiet


# --- worker processes, interrupts, restarts ---------------------------------------------

def test_two_worker_processes_on_one_storage_file_run_exactly_the_trials_asked(tmp_path,
                                                                              in_process):
    result = in_process(*QUICK, "--trials", "6", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert f"2 workers x 1 thread per trial on {available_threads()} cores" in result.stderr
    assert sorted(trial_lines(result.stderr)) == list(range(6))  # each trial run once
    trials = load(tmp_path).get_trials()
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state in FINISHED for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) <= 2


def gone(pids, timeout=30.0):
    """True once none of ``pids`` is a running process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.05)
    return False


def test_jobs_split_the_cores_and_never_ask_for_more_threads_than_there_are():
    assert split_cores(jobs=1, threads=None, cores=2) == 2
    assert split_cores(jobs=2, threads=None, cores=2) == 1
    assert split_cores(jobs=2, threads=None, cores=5) == 2
    assert split_cores(jobs=2, threads=2, cores=4) == 2
    with pytest.raises(ConfigError, match="--jobs 3: this process can use 2 cores"):
        split_cores(jobs=3, threads=None, cores=2)
    with pytest.raises(ConfigError, match="--threads 2 with --jobs 2 needs 4 cores"):
        split_cores(jobs=2, threads=2, cores=2)


@pytest.mark.parametrize("signum,jobs", [(signal.SIGINT, "2"), (signal.SIGKILL, "1")],
                         ids=["SIGINT-2-workers", "SIGKILL-1-worker"])
def test_a_stopped_sweep_continues_the_same_study_when_run_again(tmp_path, signum, jobs):
    # Trials of about a second each, so that a signal lands while one is running.
    args = ["--data", "sample", "--backend", "numpy", "--threads", "1", "-p", "layers=64",
            "-p", "epochs=6",
            "--pruner", "none", "--trials", "5", "--jobs", jobs]
    running = sweep_process(args, tmp_path)
    running.wait_for(r"^trial +\d+ complete")
    running.proc.send_signal(signum)
    code, out, err = running.finish()
    if signum == signal.SIGINT:
        assert code == 130
        assert err.splitlines()[-1] == (
            "fastnn: sweep interrupted by SIGINT; the trials that were running are marked "
            "failed; run the same command to continue the study")
        assert not load(tmp_path).get_trials(states=(optuna.trial.TrialState.RUNNING,))
    else:
        assert code == -signal.SIGKILL
        # The worker notices that its parent is gone, marks its trial failed and stops.
        workers = {t.user_attrs["pid"] for t in load(tmp_path).get_trials()}
        assert gone(workers)
    before = [t.number for t in load(tmp_path).get_trials(states=FINISHED)]
    assert 1 <= len(before) < 5

    again = sweep(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    trials = load(tmp_path).get_trials()
    finished = [t.number for t in trials if t.state in FINISHED]
    assert len(finished) == 5 and finished[:len(before)] == before  # the same study, continued
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in trials
               if t.state not in FINISHED)  # the trials cut short, run again as new ones


# --- pruning ------------------------------------------------------------------------------

def test_pruning_stops_the_trials_whose_learning_rate_cannot_work(tmp_path, in_process):
    # lr 1e-5 learns nothing in 3 epochs; lr 0.3 does. Random choices, seeded.
    result = in_process("--data", "sample", "--backend", "numpy", "--threads", "1",
                        "-p", "layers=32", "-p", "epochs=3", "-p", "lr=0.00001,0.3",
                        "-p", "batch_size=128", "-p", "hidden=relu", "--sampler", "random",
                        "--trials", "8")
    assert result.returncode == 0, result.stderr
    trials = load(tmp_path).get_trials()
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(t.params["lr"] == 0.00001 for t in pruned)
    assert all(len(t.intermediate_values) < 3 for t in pruned)  # stopped before the end
    assert re.search(r"^trial +\d+ pruned +after epoch \d", result.stderr, re.M)
    assert load(tmp_path).best_trial.params["lr"] == 0.3


def test_a_diverging_trial_is_pruned_not_fatal(tmp_path, in_process):
    result = in_process("--data", "sample", "--backend", "numpy", "-p", "layers=32",
                        "-p", "epochs=3", "-p", "lr=10000", "-p", "hidden=relu", "--trials", "2")
    assert result.returncode == 0, result.stderr
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert trials[0].user_attrs["stopped"].startswith("diverged in epoch")
    assert "no completed trial yet" in result.stdout


def test_successive_halving_is_selectable(in_process):
    from fastnn.sweep.study import make_pruner

    result = in_process(*QUICK, "--pruner", "halving", "--trials", "3")
    assert result.returncode == 0, result.stderr
    assert "median" not in result.stderr and "halving pruner" in result.stderr
    assert isinstance(make_pruner("halving"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)


# --- the search space -------------------------------------------------------------------

def test_specs_on_the_command_line_and_in_a_toml_file(tmp_path):
    assert parse_spec("lr", "0.001..1").describe() == {"low": 0.001, "high": 1.0, "log": True}
    assert parse_spec("epochs", "5..20").describe() == {"low": 5, "high": 20, "log": False}
    assert parse_spec("batch-size", "32,64,full").describe() == [32, 64, "full"]
    assert parse_spec("layers", "128,64/256").describe() == [[128, 64], [256]]
    assert parse_spec("hidden", "relu").is_fixed
    (tmp_path / "space.toml").write_text(
        'lr = { low = 0.01, high = 0.5, log = false }\nlayers = ["128,64", [256]]\n'
        'batch_size = [32, 64]\nepochs = 3\nhidden = "relu,sigmoid"\n')
    space = SearchSpace.from_specs(tmp_path / "space.toml", ["epochs=4..8"])
    assert space.describe() == {
        "lr": {"low": 0.01, "high": 0.5, "log": False}, "batch_size": [32, 64],
        "layers": [[128, 64], [256]], "hidden": ["relu", "sigmoid"], "init": "auto",
        "epochs": {"low": 4, "high": 8, "log": False}}
    with pytest.raises(SpaceError, match="unknown parameter 'momentum'"):
        parse_spec("momentum", "0.9")


def test_grid_search_runs_every_combination_once(tmp_path, in_process):
    result = in_process(*QUICK, "-p", "lr=0.1,0.3", "-p", "batch_size=64", "-p", "hidden=relu",
                        "--sampler", "grid", "--pruner", "none")
    assert result.returncode == 0, result.stderr
    points = {(t.params["lr"], t.params["layers"]) for t in load(tmp_path).get_trials()}
    assert points == {(0.1, "32"), (0.1, "64"), (0.3, "32"), (0.3, "64")}


# --- bad input: one line, exit code 2 or 1, the study untouched --------------------------

@pytest.mark.parametrize("args,code,message", [
    (["-p", "momentum=0.9"], 2, "unknown parameter 'momentum': a sweep searches lr, "
                                "batch_size, layers, hidden, init, epochs"),
    (["-p", "lr=1..0.1"], 2, "lr: the range 1.0..0.1 is empty (low is above high)"),
    (["-p", "epochs="], 2, "epochs: the spec is empty; give a range, choices or a value"),
    (["-p", "hidden=tanh"], 2, "hidden: 'tanh' is not one of sigmoid, relu"),
    (["--sampler", "grid"], 2, "--sampler grid needs choices, not ranges, for lr"),
    (["--jobs", str(available_threads() + 1)], 2,
     f"--jobs {available_threads() + 1}: this process can use {available_threads()} core"),
    (["--val-size", "0"], 2, "--val-size 0 leaves no validation rows"),
    (["--storage", "postgresql://nobody@127.0.0.1:9/none"], 1,
     "cannot open the study storage 'postgresql://nobody@127.0.0.1:9/none'"),
    (["--storage", "sqlite:////no/such/folder/s.db"], 1,
     "cannot open the study storage 'sqlite:////no/such/folder/s.db'"),
], ids=["unknown-name", "empty-range", "empty-spec", "bad-choice", "grid-with-range",
        "too-many-jobs", "no-validation", "unreachable-database", "unopenable-sqlite"])
def test_bad_input_is_one_line_and_an_exit_code(tmp_path, capsys, monkeypatch, args, code,
                                                message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit:
        main(["sweep", *QUICK, *args])
    err = capsys.readouterr().err
    assert exit.value.code == code
    assert err.count("\n") == 1 and message in err, err
    assert err.startswith("fastnn: error: ")
    assert not (tmp_path / "fastnn-sweep.journal").exists()


def test_a_study_with_another_search_space_is_refused_and_left_as_it_was(tmp_path, in_process):
    assert in_process(*QUICK, "--trials", "1").returncode == 0
    journal = tmp_path / "fastnn-sweep.journal"
    before = journal.read_bytes()
    result = in_process(*QUICK, "-p", "lr=0.5..1", "--trials", "2")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert ("study 'fastnn' in fastnn-sweep.journal was created with a different search space "
            'or settings (lr: {"low": 0.01, "high": 1.0, "log": true} (stored) vs '
            '{"low": 0.5, "high": 1.0, "log": true})') in result.stderr
    assert journal.read_bytes() == before
    # Another study name in the same file is fine.
    other = in_process(*QUICK, "-p", "lr=0.5..1", "--trials", "1", "--study", "other")
    assert other.returncode == 0, other.stderr


def test_without_optuna_the_command_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['optuna'] = None\n"  # as if it were not installed
            "from fastnn.cli import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "sweep", *QUICK], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert result.stderr == ('fastnn: error: fastnn sweep needs optuna, which is not installed: '
                             'pip install "fastnn[sweep]"\n')


def test_a_setting_the_data_cannot_take_stops_the_sweep_with_one_line(tmp_path, capfd,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit:
        main(["sweep", *QUICK, "-p", "batch_size=20000", "--trials", "3", "-q"])
    assert exit.value.code == 2
    assert capfd.readouterr().err == ("fastnn: error: batch size 20000 must be between 1 and "
                                      "the number of training rows (9000)\n")
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL]  # not left running
