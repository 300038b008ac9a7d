"""`fastnn evaluate`: overall and per-class accuracy and a confusion matrix, as text or JSON."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import metrics
from fastnn.cli import main
from fastnn.data import make_task
from fastnn.network import Network


@pytest.fixture(scope="module")
def models(tmp_path_factory, sample_data):
    """A 10-class and a 4-vs-9 model on the sample (numpy backend), saved."""
    folder = tmp_path_factory.mktemp("evaluate")
    task = make_task(sample_data, val_size=0)
    net = Network([784, 32, 10], seed=0)
    net.fit(task.x_train, task.labels_train, epochs=2, batch_size=32, lr=0.1, backend="numpy")
    net.save(folder / "digits.npz")
    pair = make_task(sample_data, (4, 9), val_size=0)
    binary = Network([784, 8, 1], classes=(4, 9), hidden="sigmoid", seed=0)
    binary.fit(pair.x_train, pair.labels_train, epochs=30, batch_size="full", lr=1.0,
               backend="numpy")
    binary.save(folder / "pair.npz")
    return {"digits": (net, folder / "digits.npz", task),
            "pair": (binary, folder / "pair.npz", pair)}


@pytest.mark.parametrize("which", ["digits", "pair"])
def test_json_has_a_confusion_matrix_whose_rows_sum_to_the_class_counts(models, which):
    net, path, task = models[which]
    result = subprocess.run([sys.executable, "-m", "fastnn", "evaluate", str(path), "--data",
                             "sample", "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    matrix = np.array(report["confusion_matrix"])
    assert report["classes"] == list(net.classes)
    counts = [int(np.sum(task.labels_test == c)) for c in net.classes]
    assert matrix.sum(axis=1).tolist() == counts and matrix.sum() == report["n_test"]
    predicted = net.predict(task.x_test)
    assert report["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert report["accuracy"] == pytest.approx(np.mean(predicted == task.labels_test))
    for i, c in enumerate(net.classes):
        row = task.labels_test == c
        assert report["per_class"][str(c)] == pytest.approx(matrix[i, i] / counts[i])
        for j, d in enumerate(net.classes):
            assert matrix[i, j] == np.sum(predicted[row] == d)


def test_text_shows_the_matrix_with_counts_and_accuracy_per_row(models, capsys):
    net, path, task = models["digits"]
    assert main(["evaluate", str(path), "--data", "sample"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{path}: test accuracy ") and "2,000 images" in lines[0]
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["true", "0"])
    assert lines[header].split()[1:11] == [str(d) for d in range(10)]
    rows = lines[header + 2:header + 12]
    matrix = metrics.confusion_matrix(task.labels_test, net.predict(task.x_test), net.classes)
    for digit, line in enumerate(rows):
        cells, _, tail = line.partition("|")
        values = [0 if v == "." else int(v.replace(",", "")) for v in cells.split()[1:]]
        assert int(cells.split()[0]) == digit and values == matrix[digit].tolist()
        count, accuracy = tail.split()
        assert int(count.replace(",", "")) == np.sum(task.labels_test == digit)
        assert accuracy == f"{matrix[digit, digit] / matrix[digit].sum():.2%}"


def test_confusion_matrix_rejects_labels_outside_the_classes():
    assert metrics.confusion_matrix([1, 1, 2], [1, 2, 2], (1, 2)).tolist() == [[1, 1], [0, 1]]
    with pytest.raises(ValueError, match=r"true labels contain \[7\]"):
        metrics.confusion_matrix([1, 7], [1, 1], (1, 2))
    with pytest.raises(ValueError, match=r"predictions contain \[-1\]"):
        metrics.confusion_matrix([1, 2], [1, -1], (1, 2))


def test_a_class_without_images_prints_a_dash_not_nan():
    table = metrics.format_confusion(np.array([[3, 1], [0, 0]]), (0, 1))
    assert "nan" not in table.lower()
    assert table.splitlines()[-1].split()[-1] == "-"


def test_evaluate_on_full_mnist_when_it_is_missing_fails_with_one_line(models, tmp_path):
    _, path, _ = models["digits"]
    result = subprocess.run([sys.executable, "-m", "fastnn", "evaluate", str(path), "--data",
                             "mnist", "--no-download", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items()
                                 if k != "FASTNN_DATA_DIR"})
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_on_a_machine_without_compiled_kernels_it_evaluates_with_numpy_and_says_so(
        models, tmp_path):
    """Scoring takes milliseconds; compiling the numba forward pass would take seconds."""
    net, path, task = models["digits"]
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty-cache"))
    env.pop("FASTNN_BACKEND", None)
    result = subprocess.run([sys.executable, "-m", "fastnn", "evaluate", str(path), "--data",
                             "sample", "--json"], capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert "using the numpy backend" in result.stderr
    expected = np.mean(net.predict(task.x_test, "numpy") == task.labels_test)
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(expected)
    assert not any((tmp_path / "empty-cache").rglob("*.nbi"))  # nothing was compiled


def test_a_backend_asked_for_is_the_backend_used(monkeypatch):
    from fastnn.backend_setup import inference_backend
    import kernels

    monkeypatch.setattr(kernels.get_backend("numba"), "is_cached",
                        lambda dtype, **which: False)
    monkeypatch.delenv("FASTNN_BACKEND", raising=False)
    assert inference_backend("numba", "float32") == "numba"
    assert inference_backend(None, "float32") == "numpy"
    monkeypatch.setenv("FASTNN_BACKEND", "numba")
    assert inference_backend(None, "float32") == "numba"
