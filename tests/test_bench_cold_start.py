"""``scripts/bench_cold_start.py``: it runs the CLI cold and warm and reports both.

The real measurement compiles every Numba kernel per cold run (minutes); here
the numpy backend stands in (``FASTNN_BACKEND=numpy``), so only the script's
bookkeeping is checked, in seconds.
"""

import json
import shutil

import pytest

from .conftest import SCRIPTS, load_script


@pytest.fixture(scope="module")
def cold_start():
    return load_script("bench_cold_start")


def test_it_covers_the_commands_of_the_issue(cold_start):
    assert list(cold_start.COMMANDS) == ["train", "train-float64", "train-threads1",
                                         "train-batch1", "train-full", "evaluate", "predict",
                                         "evaluate-numba", "predict-numba"]
    assert cold_start.COMMANDS["predict-numba"][-2:] == ["--backend", "numba"]
    assert "--dtype" in cold_start.COMMANDS["train-float64"]
    assert ["--batch-size", "full"] == cold_start.COMMANDS["train-full"][4:6]


def test_evaluate_and_predict_cold_and_warm(cold_start, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FASTNN_BACKEND", "numpy")
    path = tmp_path / "cold.json"
    assert cold_start.main(["--runs", "1", "--only", "evaluate", "--only", "predict",
                            "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cold start of the fastnn CLI; CPU " in out
    assert [line.split()[0] for line in out.splitlines()[-2:]] == ["evaluate", "predict"]
    result = json.loads(path.read_text())
    for record in result["results"]:
        assert len(record["cold_s"]) == len(record["warm_s"]) == 1
        assert min(record["cold_s"] + record["warm_s"]) > 0


def test_runs_must_be_positive(cold_start, capsys):
    with pytest.raises(SystemExit) as stop:
        cold_start.main(["--runs", "0"])
    assert stop.value.code == 2
    capsys.readouterr()


def test_another_tree_runs_in_turn_with_this_one(cold_start, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FASTNN_BACKEND", "numpy")
    other = tmp_path / "other"
    for package in ("fastnn", "kernels"):
        shutil.copytree(SCRIPTS.parent / package, other / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "cold.json"
    assert cold_start.main(["--runs", "2", "--only", "predict", "--tree", str(other),
                            "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"tree {other} (unknown)" in out
    records = json.loads(path.read_text())["results"]
    assert [r["tree"] for r in records] == [str(SCRIPTS.parent), str(other)]
    assert all(len(r["cold_s"]) == len(r["warm_s"]) == 2 for r in records)


def test_a_tree_must_hold_fastnn(cold_start, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cold_start.main(["--tree", str(tmp_path)])
    assert stop.value.code == 2
    assert "no fastnn package there" in capsys.readouterr().err
