"""``fastnn bench``: the harness end to end on the bundled sample, its JSON, its rules.

Every run here is tiny (a few hundred rows, one round) so the file takes
seconds; the timings themselves are not checked, only their bookkeeping.
The PyTorch and JAX parts run only where torch / jax are importable (CI has
neither); everything else runs with fastnn's own backends.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import bench, peers
from fastnn.cli import main
from fastnn.network import Network
from kernels.common import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, allocate_workspace
from kernels.numpy_backend import train_epoch

# One thread: a shared, busy test machine slows threaded epochs of a few
# hundred rows by orders of magnitude (a preempted thread stalls each barrier).
TINY = ["bench", "--quick", "--data", "sample", "--rows", "400", "--repeat", "2",
        "--threads", "1"]
RECORD_KEYS = {"impl", "config", "layers", "hidden", "batch_size", "threads", "min_s",
               "median_s", "times_s", "rounds", "extrapolated", "timed_samples", "n_samples",
               "warmup_s", "compile_s", "gflop_per_epoch", "useful_gflop_per_epoch", "gflops",
               "useful_gflops", "peak_fraction", "useful_peak_fraction", "numba_ratio_min",
               "numba_ratio_median", "numba_speedup_min", "numba_speedup_median",
               "full_batch", "dataset"}


def test_dense_flops_reproduce_the_issue_figure():
    # 784-128-64-10, 60,000 samples: 27.3 GFLOP per epoch whatever the batch size.
    assert bench.dense_flops((784, 128, 64, 10), 60_000) == 27_264_000_000
    # The first layer has no input gradient: forward + weight gradient only.
    assert bench.dense_flops((784, 10), 1) == 4 * 784 * 10
    assert bench.dense_flops((784, 10, 10), 2) == 2 * (4 * 7840 + 6 * 100)


def test_useful_flops_count_the_first_layer_over_nonzero_inputs_only():
    sizes = (784, 128, 64, 10)
    # Dense inputs: useful work is the dense work.
    assert bench.useful_flops(sizes, 3, 3 * 784) == bench.dense_flops(sizes, 3)
    # All-zero inputs: only the later layers' forward, weight and input gradients remain.
    assert bench.useful_flops(sizes, 3, 0) == 3 * 6 * (128 * 64 + 64 * 10)
    # One nonzero pixel: its 128 products forward and 128 in the weight gradient.
    assert bench.useful_flops((784, 128), 1, 1) == 4 * 128


def test_configurations_are_chosen_by_name_in_the_order_given(capsys):
    assert [c.name for c in bench.select_configs(["c4", "C3", "C4"])] == ["C4", "C3"]
    assert list(bench.CONFIGS) == [f"C{i}" for i in range(1, 8)]
    assert bench.CONFIGS["C7"].sizes == (784, 1024, 1024, 10)
    with pytest.raises(ValueError, match="Unknown configuration 'C9': choose from C1, C2"):
        bench.select_configs(["C9"])


def test_the_binary_configuration_trains_on_zeros_and_ones_only(tmp_path, capsys, sample_data):
    path = tmp_path / "bench.json"
    assert main([*TINY, "--impl", "numba", "--impl", "numpy", "--config", "C4", "--config", "C3",
                 "--json", str(path)]) == 0
    out = capsys.readouterr().out
    result = json.loads(path.read_text())
    assert result["configs"] == ["C4", "C3"]
    assert [r["config"] for r in result["records"]] == ["C4", "C4", "C3", "C3"]
    c4 = result["records"][0]
    labels = sample_data.train_labels[:400]
    assert c4["n_samples"] == np.isin(labels, (0, 1)).sum() < 400
    assert c4["layers"] == [784, 128, 64, 1] and c4["output"] == "sigmoid"
    assert c4["full_batch"] and c4["batch_size"] == c4["n_samples"]
    assert "digits 0 vs 1 only" in out


def test_numba_efficiency_is_put_on_useful_work_beside_dense_work(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main([*TINY, "--impl", "numba", "--config", "C1", "--json", str(path)]) == 0
    (rec,) = json.loads(path.read_text())["records"]
    # MNIST is mostly zeros: the useful work of 784-128-64-10 is well under its dense work.
    assert 0.1 < rec["nonzero_input_fraction"] < 0.3
    assert rec["useful_gflop_per_epoch"] < 0.5 * rec["gflop_per_epoch"]
    assert rec["useful_peak_fraction"] < 0.5 * rec["peak_fraction"]
    out = capsys.readouterr().out
    assert "dense  useful useful" in out and "GFLOP/s  %peak GFLOP/s  %peak" in out


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
    assert "C1  784-128-64-10    sigmoid    64 numba" in out
    assert "numba/t = numba's time / this row's time" in out
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
        assert rec["useful_peak_fraction"] == pytest.approx(
            rec["useful_gflops"] / result["gemm"]["gflops"])
    by = {(r["impl"], r["config"]): r for r in records}
    assert by[("numpy", "C2")]["extrapolated"] and by[("numpy", "C2")]["timed_samples"] == 100
    assert not by[("numba", "C2")]["extrapolated"]
    assert by[("numba", "C3")]["full_batch"] and by[("numba", "C3")]["batch_size"] == 400
    assert by[("numba", "C3")]["numba_ratio_min"] == by[("numba", "C3")]["numba_speedup_min"] == 1.0
    numpy64, numba64 = by[("numpy", "C1")], by[("numba", "C1")]
    assert numpy64["numba_ratio_median"] == pytest.approx(
        numba64["median_s"] / numpy64["median_s"])
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


def test_without_jax_the_peer_is_skipped_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(peers, "jax_available", lambda: False)
    assert main([*TINY, "--repeat", "1", "--check-accuracy"]) == 0
    out, _ = capsys.readouterr()
    notes = [line for line in out.splitlines() if "jax" in line and "skipped" in line]
    assert notes == ['note: jax: skipped: JAX is not installed (pip install "fastnn[peers]" to '
                     'include it).']
    assert "jax " not in out.split("accuracy check")[1]


def test_check_accuracy_alone_times_nothing(tmp_path, capsys):
    path = tmp_path / "acc.json"
    assert main([*TINY, "--impl", "numpy", "--check-accuracy", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert result["records"] == [] and result["accuracy"]["batch_size"] == 64
    assert "seconds per epoch" not in capsys.readouterr().out


def test_bad_values_are_usage_errors(capsys):
    for args in (["--threads", "999"], ["--repeat", "0"], ["--extrapolate-rows", "-1"],
                 ["--impl", "tensorflow"], ["--config", "C9"]):
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


def reference_epoch(net, x, labels, order, batch, lr=0.1):
    """The numpy backend's epoch of ``net`` in place: the steps a peer must reproduce."""
    ws = allocate_workspace(net.sizes, batch, np.float32)
    train_epoch(tuple(net.weights), tuple(net.biases), x, net.targets(labels, len(x)), order,
                batch, np.float32(lr), HIDDEN_ACTIVATIONS[net.hidden],
                OUTPUT_ACTIVATIONS[net.output], ws)


def assert_same_parameters(net, weights, biases):
    for mine, theirs in zip(net.weights + net.biases, list(weights) + list(biases)):
        np.testing.assert_allclose(theirs, mine, rtol=1e-4, atol=1e-5)


# --- PyTorch, where it is installed ---------------------------------------------------

def test_torch_peer_takes_the_same_steps_as_the_reference(digits_task):
    pytest.importorskip("torch")
    x, labels = digits_task.x_train[:300], digits_task.labels_train[:300]
    net = Network((784, 32, 16, 10), seed=3)
    order = np.random.default_rng(1).permutation(300)
    mlp = peers.TorchMLP(net.sizes, "relu", x, labels)
    mlp.set_parameters(net.weights, net.biases)
    assert mlp.train_epoch(mlp.batches(order, 64), 0.1) == 5
    reference_epoch(net, x, labels, order, 64)
    assert_same_parameters(net, *mlp.parameters())


def test_torch_peer_trains_a_binary_sigmoid_network_like_the_reference(pair_task):
    pytest.importorskip("torch")
    x, labels = pair_task.x_train[:300], pair_task.labels_train[:300]
    net = Network((784, 16, 8, 1), hidden="sigmoid", seed=3)
    order = np.random.default_rng(1).permutation(300)
    mlp = peers.TorchMLP(net.sizes, "sigmoid", x, net.class_indices(labels, 300))
    mlp.set_parameters(net.weights, net.biases)
    mlp.train_epoch(mlp.batches(order, 64), 0.1)
    reference_epoch(net, x, labels, order, 64)
    assert_same_parameters(net, *mlp.parameters())


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


# --- JAX, where it is installed -------------------------------------------------------

@pytest.mark.parametrize("sizes, hidden, batch", [
    ((784, 32, 16, 10), "relu", 64),      # 4 full batches in the scan, then a ragged 44
    ((784, 16, 10), "sigmoid", 300),      # full batch: one step over the inputs in place
    ((784, 16, 8, 1), "sigmoid", 128),    # binary: sigmoid output, binary cross-entropy
])
def test_jax_peer_takes_the_same_steps_as_the_reference(digits_task, pair_task, sizes, hidden,
                                                        batch):
    pytest.importorskip("jax")
    task = pair_task if sizes[-1] == 1 else digits_task
    x, labels = task.x_train[:300], task.labels_train[:300]
    net = Network(sizes, hidden=hidden, seed=3)
    order = np.random.default_rng(1).permutation(300)
    mlp = peers.JaxMLP(sizes, hidden, x, net.class_indices(labels, 300))
    mlp.set_parameters(net.weights, net.biases)
    mlp.train_epoch(mlp.plan(order, batch, 0.1))
    assert mlp.compile_seconds > 0
    reference_epoch(net, x, labels, order, batch)
    assert_same_parameters(net, *mlp.parameters())


def test_jax_compiles_once_per_epoch_shape(digits_task):
    pytest.importorskip("jax")
    x, labels = digits_task.x_train[:200], digits_task.labels_train[:200]
    mlp = peers.JaxMLP((784, 8, 10), "relu", x, labels)
    mlp.set_parameters(*Network((784, 8, 10)).copy_parameters())
    order = np.arange(200)
    first = mlp.plan(order, 64, 0.1)[0]
    assert mlp.plan(order[::-1], 64, 0.5)[0] is first  # same shapes, other rows and lr
    assert mlp.plan(order[:128], 64, 0.1)[0] is not first  # no ragged batch: another program


def test_quick_bench_with_jax(tmp_path, capsys):
    pytest.importorskip("jax")
    path = tmp_path / "bench.json"
    assert main([*TINY, "--repeat", "1", "--impl", "numba", "--impl", "jax", "--config", "C1",
                 "--config", "C4", "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert {r["impl"] for r in result["records"]} == {"numba", "jax"}
    jax_records = [r for r in result["records"] if r["impl"] == "jax"]
    assert all(r["compile_s"] > 0 for r in jax_records)
    assert result["environment"]["jax"]["version"] and result["accuracy"]["agree"]
    out = capsys.readouterr().out
    assert "JAX" in out and "jax compile of each timed epoch program, not in the timings" in out


def test_start_jax_sizes_the_pool_without_pinning_any_thread():
    pytest.importorskip("jax")
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    # A fresh process: the pool is sized once, when JAX's CPU client is created.
    code = ("import os\n"
            "from fastnn import peers\n"
            "before = os.sched_getaffinity(0)\n"
            "assert peers.start_jax(1) == 1 and peers.start_jax(2) == 1\n"
            "assert peers.jax_info()['threads'] == 1\n"
            "tasks = os.listdir('/proc/self/task')\n"
            "assert len(tasks) > 1 and all(os.sched_getaffinity(int(t)) == before for t in tasks)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
