"""fastnn.run: the whole ``fastnn train`` workflow as one library call, with event hooks."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import RunConfig, RunEvents, StopTraining, run
from fastnn.cli import main
from fastnn.modelio import read_checkpoint

QUICK = dict(data="sample", backend="numpy", layers=(8,), seed=2, val_size=0.2)


class Recorder(RunEvents):
    """Keeps what the run reported; stops after epoch ``stop_after`` if given."""

    def __init__(self, stop_after=None, fail_after=None):
        self.notes, self.val_accuracies, self.ended = [], [], False
        self.stop_after, self.fail_after = stop_after, fail_after

    def note(self, message):
        self.notes.append(message)

    def on_epoch_end(self, record, history):
        self.val_accuracies.append(record.val_accuracy)
        if record.epoch == self.stop_after:
            raise StopTraining
        if record.epoch == self.fail_after:
            raise KeyError("pruned")

    def on_train_end(self):
        self.ended = True


def test_a_run_trains_scores_saves_and_writes_its_metrics(tmp_path):
    config = RunConfig(**QUICK, epochs=2, save=str(tmp_path / "m.npz"),
                       metrics_json=str(tmp_path / "m.json"))
    events = Recorder()
    result = run(config, events)
    assert result.status == "completed" and result.config.data == "sample"
    assert len(result.history.epochs) == 2 and len(events.val_accuracies) == 2
    assert all(0 < accuracy <= 1 for accuracy in events.val_accuracies) and events.ended
    assert result.test_accuracy == result.network.score(result.task.x_test,
                                                        result.task.labels_test)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert metrics["config"] == config.record() | {"data": "sample"}
    assert set(metrics) >= {"backend", "dtype", "dataset", "data", "config", "epochs",
                            "test_accuracy", "compile_seconds", "train_seconds", "total_seconds",
                            "startup_seconds"}
    # From the process's start (this test process's) to the first epoch: before the run began.
    assert metrics["startup_seconds"] > metrics["total_seconds"] - metrics["train_seconds"]
    assert any(note.startswith("training 784-8-10 (relu, softmax) on ") for note in events.notes)
    assert result.saved == tmp_path / "m.npz"


def test_a_hook_stops_the_run_early_and_the_saved_run_resumes_to_the_same_end(tmp_path):
    stopped = run(RunConfig(**QUICK, epochs=3, save=str(tmp_path / "a.npz")),
                  Recorder(stop_after=1))
    assert stopped.status == "stopped" and len(stopped.history.epochs) == 1
    assert stopped.test_accuracy is not None
    resumed = run(RunConfig.resolve(resume=str(tmp_path / "a.npz")))
    assert resumed.done_before == 1 and len(resumed.this_run) == 2
    whole = run(RunConfig(**QUICK, epochs=3))
    for mine, theirs in zip(resumed.network.weights, whole.network.weights):
        np.testing.assert_array_equal(mine, theirs)


def test_another_exception_from_a_hook_ends_the_run_unsaved(tmp_path):
    events = Recorder(fail_after=1)
    with pytest.raises(KeyError, match="pruned"):
        run(RunConfig(**QUICK, epochs=3, save=str(tmp_path / "m.npz"),
                      checkpoint_every=60), events)
    assert events.ended and not (tmp_path / "m.npz").exists()


def test_a_divergence_says_what_the_file_holds(tmp_path):
    with pytest.raises(fastnn.RunDiverged, match="No model was saved"):
        run(RunConfig(**QUICK, epochs=2, lr=1e30, save=str(tmp_path / "m.npz")))
    assert not (tmp_path / "m.npz").exists()


def test_a_validation_size_too_large_for_the_task_is_a_config_error():
    with pytest.raises(fastnn.ConfigError, match="leaves no training data"):
        run(RunConfig(**{**QUICK, "val_size": 10_000}, epochs=1))


def test_a_checkpoint_written_by_a_run_is_one_fastnn_train_resumes(tmp_path, capsys):
    run(RunConfig(**QUICK, epochs=2, save=str(tmp_path / "m.npz")))
    assert main(["train", "--resume", str(tmp_path / "m.npz"), "--epochs", "3", "-q"]) == 0
    assert "after 3 epochs (1 in this run)" in capsys.readouterr().out
    assert len(read_checkpoint(tmp_path / "m.npz")[2].epochs) == 3


def test_the_readme_example_of_a_whole_run_runs(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("### A whole run, as `fastnn train` does it", 1)[1]
    code = re.search(r"^```python\n(.*?)^```", section, re.S | re.M).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<example>", "exec"), {"__name__": "__example__"})
    assert (tmp_path / "minibatch.npz").is_file() and (tmp_path / "minibatch.json").is_file()


def test_a_task_prepared_once_trains_as_a_run_that_loads_its_own():
    """What a sweep does: load and split the data once, then run many configurations on it."""
    from fastnn.workflow import prepare_task

    config = RunConfig(**QUICK, epochs=2)
    own = run(config)
    shared = run(config, task=prepare_task(config))
    assert shared.history.epochs[-1].val_accuracy == own.history.epochs[-1].val_accuracy
    assert shared.test_accuracy == own.test_accuracy and shared.config.data == "sample"
    for a, b in zip(shared.network.weights, own.network.weights):
        np.testing.assert_array_equal(a, b)


def test_a_task_made_for_other_settings_is_refused():
    from fastnn.config import ConfigError
    from fastnn.workflow import prepare_task

    pair = prepare_task(RunConfig(**QUICK, digits=(4, 9)))
    with pytest.raises(ConfigError, match=r"the task given was made for other settings \(4 vs 9"):
        run(RunConfig(**QUICK, epochs=1), task=pair)
    other_split = prepare_task(RunConfig(**(QUICK | {"seed": QUICK["seed"] + 1})))
    with pytest.raises(ConfigError, match="made for other settings"):
        run(RunConfig(**QUICK, epochs=1), task=other_split)
