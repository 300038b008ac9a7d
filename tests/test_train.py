"""fit: learning happens, runs are reproducible, bad settings and divergence
are reported, and interrupted runs resume to the same result."""

import numpy as np
import pytest

import kernels
from fastnn import Network, TrainingDiverged, TrainingInterrupted, fit
from fastnn.data import make_task
from fastnn.train import resolve_batch_size

from .conftest import same_parameters

BACKENDS = list(kernels.BACKENDS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ten_digit_training_reaches_high_held_out_accuracy(digits_task, backend):
    net = Network([784, 64, 10], hidden="relu", seed=0)
    history = fit(net, digits_task.x_train, digits_task.labels_train, epochs=3, batch_size=32,
                  lr=0.1, backend=backend, validation=(digits_task.x_val, digits_task.labels_val))
    assert history.epochs[-1].val_accuracy > 0.90
    assert net.score(digits_task.x_test, digits_task.labels_test) > 0.90
    losses = [record.loss for record in history.epochs]
    assert losses == sorted(losses, reverse=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_digit_pair_is_learned_with_a_sigmoid_output(pair_task, backend):
    net = Network([784, 16, 1], hidden="sigmoid", classes=(0, 1))
    fit(net, pair_task.x_train, pair_task.labels_train, epochs=30, batch_size="full", lr=0.5,
        backend=backend)
    assert net.score(pair_task.x_test, pair_task.labels_test) > 0.98


def test_a_pair_of_other_digits_maps_the_first_digit_to_class_zero(sample_data):
    task = make_task(sample_data, (7, 3), val_size=0)
    net = Network([784, 16, 1], classes=(7, 3))
    fit(net, task.x_train, task.labels_train, epochs=2, batch_size=16, lr=0.1, backend="numpy")
    assert set(np.unique(net.predict(task.x_test))) <= {3, 7}
    assert net.score(task.x_test, task.labels_test) > 0.9


@pytest.mark.parametrize("batch_size", [1, 7, 64, "full"])
def test_every_batching_mode_runs_the_expected_number_of_steps_and_learns(small_xy, batch_size):
    x, labels = small_xy
    net = Network([784, 32, 10], seed=1)
    before = net.score(x, labels)
    history = fit(net, x, labels, epochs=3, batch_size=batch_size, lr=0.05, backend="numpy")
    assert history.batch_size == (600 if batch_size == "full" else batch_size)
    assert len(history.epochs) == 3
    assert net.score(x, labels) > before


def test_the_same_seed_reproduces_the_run_exactly(small_xy):
    x, labels = small_xy
    runs = []
    for _ in range(2):
        net = Network([784, 16, 10], seed=3)
        history = fit(net, x, labels, epochs=2, batch_size=10, lr=0.1, seed=5, backend="numpy")
        runs.append((net, [r.loss for r in history.epochs]))
    assert same_parameters(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    other = Network([784, 16, 10], seed=3)
    fit(other, x, labels, epochs=2, batch_size=10, lr=0.1, seed=6, backend="numpy")
    assert not same_parameters(runs[0][0], other)


def test_history_records_every_epoch(small_xy, digits_task):
    x, labels = small_xy
    seen = []
    history = fit(Network([784, 8, 10]), x, labels, epochs=2, batch_size=50, backend="numpy",
                  validation=(digits_task.x_val, digits_task.labels_val),
                  on_epoch_end=lambda record, h: seen.append(record.epoch))
    assert seen == [1, 2]
    for record in history.epochs:
        assert record.loss > 0 and 0 <= record.train_accuracy <= 1
        assert 0 <= record.val_accuracy <= 1 and record.seconds > 0


@pytest.mark.parametrize("options,message", [
    ({"lr": 0}, "learning rate 0"),
    ({"lr": -0.1}, "learning rate -0.1"),
    ({"lr": float("nan")}, "learning rate nan"),
    ({"epochs": 0}, "epochs 0"),
    ({"batch_size": 0}, "batch size 0"),
    ({"batch_size": 601}, r"batch size 601 must be between 1 and the number of training rows \(600\)"),
    ({"backend": "cuda"}, "Unknown backend 'cuda': choose one of numpy, numba"),
])
def test_bad_settings_are_refused_before_training(small_xy, options, message):
    x, labels = small_xy
    net = Network([784, 8, 10])
    before = [w.copy() for w in net.weights]
    with pytest.raises(ValueError, match=message):
        fit(net, x, labels, **options)
    assert all(np.array_equal(w, b) for w, b in zip(net.weights, before))


def test_batch_size_full_means_every_row():
    assert resolve_batch_size("full", 123) == 123
    assert resolve_batch_size(None, 5) == 5
    assert resolve_batch_size(4, 5) == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_divergence_stops_at_once_and_keeps_finite_parameters(small_xy, backend):
    x, labels = small_xy
    net = Network([784, 32, 10], hidden="relu", seed=0)
    with pytest.raises(TrainingDiverged, match=r"epoch \d+, batch \d+.*smaller learning rate") as err:
        fit(net, x, labels, epochs=5, batch_size=10, lr=1e30, backend=backend)
    assert net.parameters_finite()
    assert err.value.epoch >= 1 and err.value.batch >= 1


def test_an_interrupt_restores_the_last_completed_epoch(small_xy):
    x, labels = small_xy
    net = Network([784, 8, 10])
    completed = {}

    def remember(record, history):
        completed[record.epoch] = net.copy_parameters()

    def interrupt(done, total, loss, correct):
        if len(completed) == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as err:
        fit(net, x, labels, epochs=5, batch_size=10, backend="numpy",
            on_epoch_end=remember, on_progress=interrupt)
    assert len(err.value.history.epochs) == 2
    weights, biases = completed[2]
    assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, weights + biases))


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(small_xy):
    x, labels = small_xy
    straight = Network([784, 8, 10], seed=2)
    fit(straight, x, labels, epochs=4, batch_size=20, seed=9, backend="numpy")

    resumed = Network([784, 8, 10], seed=2)
    first = fit(resumed, x, labels, epochs=2, batch_size=20, seed=9, backend="numpy")
    second = fit(resumed, x, labels, epochs=4, batch_size=20, seed=9, backend="numpy", resume=first)
    assert [r.epoch for r in second.epochs] == [1, 2, 3, 4]
    assert same_parameters(straight, resumed)
