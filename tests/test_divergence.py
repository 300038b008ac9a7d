"""Training that blows up is stopped, even while its loss stays finite.

`fit` stops when the loss becomes NaN or infinite, or when the mean loss of
a stretch of batches is more than `EXPLOSION_FACTOR` times the larger of the
loss of guessing (ln of the number of classes) and the loss training started
from. Either way the network gets back the parameters it had at the start of
the epoch, and the message says which those are. Healthy runs, the presets
among them, are never stopped.
"""

import math
import re
import subprocess
import sys

import numpy as np
import pytest

import kernels
from fastnn import Network, TrainingDiverged, fit, presets
from fastnn.config import RunConfig
from fastnn.data import make_task
from fastnn.train import EXPLOSION_FACTOR, reference_loss

from .conftest import same_parameters

BACKENDS = list(kernels.BACKENDS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_finite_explosion_stops_training_and_restores_the_start_of_the_epoch(small_xy,
                                                                              backend):
    x, labels = small_xy
    net = Network([784, 32, 10], seed=0)
    start = Network([784, 32, 10], seed=0)
    with pytest.raises(TrainingDiverged) as stop:
        fit(net, x, labels, epochs=3, batch_size=64, lr=1e6, backend=backend)
    message = str(stop.value)
    exploded = re.fullmatch(
        r"training diverged: the loss exploded to (\S+) per sample in batches 1-10 of epoch 1, "
        r"over 10 times the loss training started from \((\S+)\)\. The parameters from before "
        r"the first epoch were restored\. Try a smaller learning rate than 1e\+06\.", message)
    assert exploded, message
    reference = float(exploded.group(2))
    assert float(exploded.group(1)) > 10 * reference and 2.3 < reference < 2.6
    assert (stop.value.epoch, stop.value.batch, stop.value.history.epochs) == (1, 10, [])
    assert same_parameters(net, start)


def test_an_explosion_in_a_later_epoch_restores_the_end_of_the_one_before(small_xy):
    x, labels = small_xy
    net = Network([784, 32, 10], seed=0)
    kept = {}

    def blow_up_after_epoch_2(record, history):
        if record.epoch == 2:
            kept["parameters"] = net.copy_parameters()
            net.weights[-1] *= 1e4  # finite, but every loss from here on is enormous

    with pytest.raises(TrainingDiverged) as stop:
        fit(net, x, labels, epochs=5, batch_size=64, lr=0.1, backend="numpy",
            on_epoch_end=blow_up_after_epoch_2)
    assert "of epoch 3, over 10 times the loss training started from" in str(stop.value)
    assert "The parameters from the end of epoch 2 were restored." in str(stop.value)
    assert len(stop.value.history.epochs) == 2
    weights, biases = kept["parameters"]
    weights[-1] *= 1e4  # what epoch 3 started from
    assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, weights + biases))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_non_finite_loss_also_restores_the_start_of_the_epoch(small_xy, backend):
    x, labels = small_xy
    net = Network([784, 32, 10], seed=0)
    with pytest.raises(TrainingDiverged) as stop:
        fit(net, x, labels, epochs=3, batch_size=10, lr=1e30, backend=backend)
    assert re.fullmatch(r"training diverged: the loss became NaN or infinite at epoch 1, batch "
                        r"\d+\. The parameters from before the first epoch were restored\. "
                        r"Try a smaller learning rate than 1e\+30\.", str(stop.value))
    assert stop.value.batch > 1  # some steps were taken, and undone:
    assert same_parameters(net, Network([784, 32, 10], seed=0))


def test_the_reference_is_the_loss_at_the_start_or_of_guessing_if_that_is_higher(small_xy):
    x, labels = small_xy
    net = Network([784, 16, 10], seed=0)
    y = net.targets(labels, len(labels))
    start = reference_loss(net, x, y)
    assert math.log(10) < start < 2.6  # an untrained network is about as good as a guess
    net.biases[-1][:] = [100] + [0] * 9  # sure of "0": a loss of about 100 on every other digit
    assert reference_loss(net, x, y) == pytest.approx(100 * np.mean(labels != 0), rel=0.02)
    trained = Network([784, 16, 1], classes=(0, 1))
    trained.biases[-1][:] = 20  # sure of "1", and right: a loss near 0
    assert reference_loss(trained, x[:5], np.ones((5, 1), np.float32)) == math.log(2)


def test_a_guessing_reference_is_named_as_such(small_xy):
    x, labels = small_xy
    net = Network([784, 16, 10], seed=0)
    fit(net, x, labels, epochs=2, batch_size=32, lr=0.1, backend="numpy")  # now far below ln 10
    with pytest.raises(TrainingDiverged, match=r"over 10 times the loss of guessing \(2\.3\)\. "
                                               r"The parameters from before the first epoch"):
        fit(net, x, labels, epochs=1, batch_size=64, lr=1e6, backend="numpy")


def test_a_network_that_starts_far_off_may_still_train(small_xy):
    x, labels = small_xy
    net = Network([784, 16, 10], seed=0)
    net.biases[-1][:] = [60] + [0] * 9  # confidently wrong, but nothing is blowing up
    history = fit(net, x, labels, epochs=3, batch_size=32, lr=0.1, backend="numpy")
    assert history.epochs[-1].loss < history.epochs[0].loss


# The presets' first 100 full-batch steps or 10 epochs on the sample: what blows up,
# blows up early; their whole runs on full MNIST were checked by hand (see README).
MAX_STEPS, MAX_EPOCHS = 100, 10


def preset_run(name, sample_data):
    """Train ``name``'s configuration on the bundled sample.

    Returns the highest mean loss of any call into the backend (the stretch of
    batches `fit` checks) and the run's reference loss.
    """
    config = RunConfig.resolve(name)
    digits = config.digits
    task = make_task(sample_data, digits, seed=0)
    n_out = 10 if len(digits) == 10 else 1
    net = Network([784, *config.layers, n_out], hidden=config.hidden,
                  classes=digits, init=config.init, seed=0)
    reference = reference_loss(net, task.x_train, net.targets(task.labels_train,
                                                              len(task.labels_train)))
    seen = {"rows": 0, "loss": 0.0, "worst": 0.0}

    def watch(rows, total, loss_sum, correct):
        if rows <= seen["rows"]:  # a new epoch
            seen["rows"], seen["loss"] = 0, 0.0
        stretch = (loss_sum - seen["loss"]) / (rows - seen["rows"])
        seen.update(rows=rows, loss=loss_sum, worst=max(seen["worst"], stretch))

    cap = MAX_STEPS if config.batch_size == "full" else MAX_EPOCHS
    fit(net, task.x_train, task.labels_train, epochs=min(config.epochs, cap),
        batch_size=config.batch_size, lr=config.lr, backend="numba", on_progress=watch)
    return seen["worst"], reference


@pytest.mark.parametrize("name", [None, *presets.PRESETS], ids=["default", *presets.PRESETS])
def test_the_presets_train_far_below_the_limit(sample_data, name):
    worst, reference = preset_run(name, sample_data)
    assert worst < EXPLOSION_FACTOR * reference / 2, (worst, reference)


def test_the_cli_exits_1_with_one_line_and_suggests_a_smaller_lr(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fastnn", "train", "--data", "sample", "--backend", "numpy",
         "--lr", "1e6", "--layers", "32", "--epochs", "2"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"fastnn: error: training diverged: the loss exploded to \S+ per sample in "
                        r"batches 1-\d+ of epoch 1, over 10 times the loss training started "
                        r"from \(2\.\d\)\. The parameters from before the first epoch were "
                        r"restored\. "
                        r"Try a smaller learning rate than 1e\+06\.", last), last
