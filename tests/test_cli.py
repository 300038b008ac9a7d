"""The command line, through its real entry points."""

import json
import os
import subprocess
import sys

import pytest

from fastnn.cli import main

QUICK = ["--data", "sample", "--backend", "numpy", "--layers", "32", "--epochs", "2"]


def run_cli(*args, cwd=None):
    """Run ``python -m fastnn`` in a fresh process, as a user would."""
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "FASTNN_BACKEND": "numpy"},
                          timeout=300)


def test_train_reports_test_accuracy_and_writes_model_and_metrics(tmp_path):
    model, metrics = tmp_path / "model.npz", tmp_path / "metrics.json"
    result = run_cli("train", *QUICK, "--save", str(model), "--metrics-json", str(metrics))
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    assert "epoch 2/2" in result.stderr and "bundled sample" in result.stderr
    report = json.loads(metrics.read_text())
    assert report["backend"] == "numpy" and report["dtype"] == "float32"
    assert report["dataset"] == "sample"
    assert report["config"]["layers"] == [784, 32, 10]
    assert [e["epoch"] for e in report["epochs"]] == [1, 2]
    assert set(report["epochs"][0]) == {"epoch", "loss", "train_accuracy", "val_accuracy",
                                        "seconds"}
    assert 0.8 < report["test_accuracy"] <= 1

    evaluated = run_cli("evaluate", str(model), "--data", "sample", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert scores["accuracy"] == pytest.approx(report["test_accuracy"])
    assert set(scores["per_class"]) == {str(d) for d in range(10)}


def test_quiet_prints_only_the_summary(capsys):
    assert main(["train", *QUICK, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("test accuracy") and err == ""


def test_even_a_quiet_summary_says_when_the_bundled_sample_stood_in(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FASTNN_DATA_DIR", raising=False)  # nothing named: the sample may stand in
    assert main(["train", *QUICK[2:], "--no-download", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "(digits 0-9, 2,000 test images of the bundled sample)" in out and err == ""


def test_a_preset_with_overrides_trains_a_digit_pair(tmp_path, capsys):
    metrics = tmp_path / "m.json"
    assert main(["train", "--preset", "binary12", "--epochs", "3", "--data", "sample",
                 "--backend", "numpy", "--metrics-json", str(metrics), "-q"]) == 0
    config = json.loads(metrics.read_text())["config"]
    assert config["preset"] == "binary12" and config["digits"] == [1, 2]
    assert config["layers"] == [784, 196, 1] and config["epochs"] == 3
    assert config["batch_size"] == "full" and config["hidden"] == "sigmoid"


def test_the_same_seed_gives_the_same_numbers(tmp_path):
    reports = []
    for name in ("a.json", "b.json"):
        assert main(["train", *QUICK, "-q", "--seed", "3", "--metrics-json",
                     str(tmp_path / name)]) == 0
        report = json.loads((tmp_path / name).read_text())
        reports.append(([e["loss"] for e in report["epochs"]], report["test_accuracy"]))
    assert reports[0] == reports[1]


def test_presets_are_listed(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("binary01", "binary12", "relu10", "sgd", "minibatch"):
        assert name in out


@pytest.mark.parametrize("args,code,message", [
    (["train", "--lr", "0"], 2, "argument --lr: '0' must be a positive, finite number"),
    (["train", "--lr", "nan"], 2, "must be a positive, finite number"),
    (["train", "--epochs", "0"], 2, "argument --epochs: '0' must be a positive integer"),
    (["train", "--batch-size", "0"], 2, "must be at least 1"),
    (["train", "--batch-size", "many"], 2, "'many' is not a positive integer or 'full'"),
    (["train", "--layers", "128,-4"], 2, "must be positive integers"),
    (["train", "--digits", "3,3"], 2, "repeat a digit"),
    (["train", "--digits", "1,12"], 2, "must lie in 0-9"),
    (["train", "--preset", "huge"], 2, "invalid choice: 'huge'"),
    (["train", "--backend", "cuda"], 2, "invalid choice: 'cuda'"),
    (["train", "--dtype", "float16"], 2, "invalid choice: 'float16'"),
    (["train", "--data", "sample", "--batch-size", "99999"], 2,
     "batch size 99999 must be between 1 and the number of training rows"),
    (["evaluate", "missing.npz", "--data", "sample"], 1, "model file missing.npz does not exist"),
])
def test_bad_input_gives_one_line_and_an_exit_code(tmp_path, args, code, message):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == code
    last = result.stderr.strip().splitlines()[-1]
    assert message in last
    assert "Traceback" not in result.stderr


def test_full_mnist_requested_but_missing_fails_loudly(tmp_path):
    result = run_cli("train", "--data", "mnist", "--no-download", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert str(tmp_path) in result.stderr


def test_the_console_script_is_installed():
    result = subprocess.run(["fastnn", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("fastnn ")


def test_the_program_returns_the_commands_exit_code_and_leaves_its_objects_to_the_exit(capsys):
    import gc

    from fastnn.cli import run

    try:
        assert run(["presets"]) == 0
        assert gc.get_freeze_count() > 0  # Python will not walk them again as it exits
    finally:
        gc.unfreeze()
    assert "784" in capsys.readouterr().out


def test_evaluate_gives_the_same_answer_on_either_backend(tmp_path, capsys):
    model = tmp_path / "model.npz"
    assert main(["train", *QUICK, "-q", "--save", str(model)]) == 0
    capsys.readouterr()
    reports = []
    for backend in ("numpy", "numba"):
        assert main(["evaluate", str(model), "--data", "sample", "--json",
                     "--backend", backend]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0]["accuracy"] == reports[1]["accuracy"]
    assert reports[0]["confusion_matrix"] == reports[1]["confusion_matrix"]


def test_compile_compiles_or_loads_every_kernel_and_says_how_many(capsys):
    assert main(["compile"]) == 0
    out = capsys.readouterr().out
    assert "kernel signatures compiled" in out and "loaded from the cache" in out
    from kernels import numba_backend
    assert numba_backend.is_compiled("float32") and numba_backend.is_compiled("float64")
