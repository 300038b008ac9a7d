"""``fastnn bench``: the harness end to end on the bundled sample, its JSON, its rules.

Every run here is tiny (a few hundred rows, one round) so the file takes
seconds; the timings themselves are not checked, only their bookkeeping.
The PyTorch parts run only where torch is importable (CI has no torch).
"""

import json

import numpy as np
import pytest

from fastnn import bench, peers
from fastnn.cli import main

# One thread: a shared, busy test machine slows threaded epochs of a few
# hundred rows by orders of magnitude (a preempted thread stalls each barrier).
TINY = ["bench", "--quick", "--data", "sample", "--rows", "400", "--repeat", "2",
        "--threads", "1"]
RECORD_KEYS = {"impl", "layers", "batch_size", "threads", "min_s", "median_s", "times_s",
               "rounds", "extrapolated", "timed_samples", "n_samples", "warmup_s",
               "gflop_per_epoch", "gflops", "peak_fraction", "numba_speedup_min",
               "numba_speedup_median", "full_batch", "dataset"}


def test_dense_flops_reproduce_the_issue_figure():
    # 784-128-64-10, 60,000 samples: 27.3 GFLOP per epoch whatever the batch size.
    assert bench.dense_flops((784, 128, 64, 10), 60_000) == 27_264_000_000
    # The first layer has no input gradient: forward + weight gradient only.
    assert bench.dense_flops((784, 10), 1) == 4 * 784 * 10
    assert bench.dense_flops((784, 10, 10), 2) == 2 * (4 * 7840 + 6 * 100)


def test_warmup_order_meets_every_batch_shape_of_the_epoch():
    order = np.arange(1000)
    for batch in (1, 64, 256, 999, 1000):
        warm = bench.warmup_order(order, batch)
        shapes = {len(order[i:i + batch]) for i in range(0, len(order), batch)}
        warm_shapes = {len(warm[i:i + batch]) for i in range(0, len(warm), batch)}
        assert shapes == warm_shapes
        assert len(warm) <= max(bench.WARMUP_ROWS + 2 * batch, batch)


def test_quick_bench_on_the_sample_writes_records_and_a_table(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main([*TINY, "--impl", "numba", "--impl", "numpy", "--extrapolate-rows", "100",
                 "--json", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "bundled SAMPLE, not full MNIST" in out
    assert "GEMM peak:" in out and "warm-up, not in the timings: numba" in out
    assert "accuracy check" in out and "agree" in out
    assert "784-128-64-10      64 numba" in out
    assert "* extrapolated: timed on the first 100 samples" in out
    assert "round 2/2" in err  # progress goes to stderr

    result = json.loads(path.read_text())
    assert result["schema_version"] == bench.SCHEMA_VERSION
    assert result["dataset"] == "sample" and result["n_train"] == 400
    assert result["n_train_available"] == 10_000 and "the first 400 of 10,000" in out
    assert result["impls"] == ["numba", "numpy"]
    records = result["records"]
    assert len(records) == 2 * len(bench.CONFIGS)
    for rec in records:
        assert RECORD_KEYS <= set(rec)
        assert rec["rounds"] == 2 and len(rec["times_s"]) == 2
        assert 0 < rec["min_s"] <= rec["median_s"]
        assert rec["threads"] == result["threads"]
        assert rec["gflops"] == pytest.approx(rec["gflop_per_epoch"] / rec["min_s"])
        assert rec["peak_fraction"] == pytest.approx(rec["gflops"] / result["gemm"]["gflops"])
    by = {(r["impl"], tuple(r["layers"]), r["batch_size"]): r for r in records}
    assert by[("numpy", (784, 128, 64, 10), 1)]["extrapolated"]
    assert by[("numpy", (784, 128, 64, 10), 1)]["timed_samples"] == 100
    assert not by[("numba", (784, 128, 64, 10), 1)]["extrapolated"]
    assert by[("numba", (784, 128, 64, 10), 400)]["full_batch"]
    assert by[("numba", (784, 10, 10), 400)]["numba_speedup_min"] == 1.0
    numpy64 = by[("numpy", (784, 128, 64, 10), 64)]
    numba64 = by[("numba", (784, 128, 64, 10), 64)]
    assert numpy64["numba_speedup_median"] == pytest.approx(
        numpy64["median_s"] / numba64["median_s"])

    env = result["environment"]
    assert env["cpu"]["model"] and env["versions"]["numpy"] == np.__version__
    assert "OPENBLAS_CORETYPE" in env["blas_env"]
    assert result["gemm"]["gflops"] > 0 and len(result["gemm"]["runs"]) == 2
    assert set(result["warmup"]) == {"numba", "numpy"}
    accuracy = result["accuracy"]
    assert set(accuracy["test_accuracy"]) == {"numba", "numpy"} and accuracy["agree"]


def test_without_torch_the_peer_is_skipped_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(peers, "torch_available", lambda: False)
    assert main([*TINY, "--repeat", "1", "--check-accuracy"]) == 0
    out, _ = capsys.readouterr()
    notes = [line for line in out.splitlines() if "torch" in line and "skipped" in line]
    assert notes == ["note: torch: skipped: PyTorch is not installed (install PyTorch, CPU "
                     "build, to include it)."]
    assert "numba" in out and "torch " not in out.split("accuracy check")[1]


def test_check_accuracy_alone_times_nothing(tmp_path, capsys):
    path = tmp_path / "acc.json"
    assert main([*TINY, "--impl", "numpy", "--check-accuracy", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert result["records"] == [] and result["accuracy"]["batch_size"] == 64
    assert "seconds per epoch" not in capsys.readouterr().out


def test_bad_values_are_usage_errors(capsys):
    for args in (["--threads", "999"], ["--repeat", "0"], ["--extrapolate-rows", "-1"],
                 ["--impl", "tensorflow"]):
        with pytest.raises(SystemExit) as stop:
            main([*TINY, *args])
        assert stop.value.code == 2, args
    capsys.readouterr()


def test_plot_draws_the_batch_size_sweep(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "times.png"
    assert main([*TINY, "--repeat", "1", "--impl", "numba", "--plot", str(png),
                 "--threads", str(bench.default_threads())]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()


def test_plot_records_take_the_swept_network():
    records = [{"impl": "numba", "layers": [784, 128, 64, 10], "batch_size": b,
                "full_batch": b == 600, "median_s": 1.0} for b in (1, 64, 600)]
    records.append({"impl": "numba", "layers": [784, 10, 10], "batch_size": 600,
                    "full_batch": True, "median_s": 0.1})
    picked, title = bench.plot_records({"records": records, "dataset": "mnist",
                                        "n_train": 600, "threads": 2})
    assert [r["batch_size"] for r in picked] == [1, 64, "full"]
    assert title.startswith("784-128-64-10 epoch time (full MNIST")


# --- PyTorch, where it is installed ---------------------------------------------------

def test_torch_peer_takes_the_same_steps_as_the_reference(digits_task):
    pytest.importorskip("torch")
    from fastnn.network import Network
    from kernels.common import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, allocate_workspace
    from kernels.numpy_backend import train_epoch

    x, labels = digits_task.x_train[:300], digits_task.labels_train[:300]
    net = Network((784, 32, 16, 10), seed=3)
    order = np.random.default_rng(1).permutation(300)
    mlp = peers.TorchMLP(net.sizes, "relu", x, labels)
    mlp.set_parameters(net.weights, net.biases)
    assert mlp.train_epoch(mlp.batches(order, 64), 0.1) == 5
    ws = allocate_workspace(net.sizes, 64, np.float32)
    y = net.targets(labels, 300)
    train_epoch(tuple(net.weights), tuple(net.biases), x, y, order, 64, np.float32(0.1),
                HIDDEN_ACTIVATIONS["relu"], OUTPUT_ACTIVATIONS["softmax"], ws)
    weights, biases = mlp.parameters()
    for mine, theirs in zip(net.weights + net.biases, weights + biases):
        np.testing.assert_allclose(theirs, mine, rtol=1e-4, atol=1e-5)


def test_torch_full_batch_reads_the_inputs_in_place(digits_task):
    pytest.importorskip("torch")
    x, labels = digits_task.x_train[:100], digits_task.labels_train[:100]
    mlp = peers.TorchMLP((784, 8, 10), "sigmoid", x, labels)
    assert mlp.batches(np.arange(100), 100) == [None]
    assert [len(b) for b in mlp.batches(np.arange(100), 40)] == [40, 40, 20]


def test_quick_bench_with_torch(tmp_path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "bench.json"
    assert main([*TINY, "--repeat", "1", "--impl", "numba", "--impl", "torch",
                 "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert {r["impl"] for r in result["records"]} == {"numba", "torch"}
    assert result["environment"]["torch"]["version"]
    assert result["accuracy"]["agree"]
    assert "PyTorch" in capsys.readouterr().out
