"""Network: shapes, initialisation, input checks and predictions."""

import numpy as np
import pytest

from fastnn import Network


def test_layers_follow_the_sizes_and_dtype():
    net = Network([784, 32, 16, 10], dtype="float32")
    assert [w.shape for w in net.weights] == [(784, 32), (32, 16), (16, 10)]
    assert [b.shape for b in net.biases] == [(32,), (16,), (10,)]
    assert all(p.dtype == np.float32 for p in net.weights + net.biases)
    assert net.output == "softmax" and net.classes == tuple(range(10))


def test_one_output_unit_means_a_sigmoid_binary_model():
    net = Network([784, 8, 1], classes=(1, 2))
    assert net.output == "sigmoid" and net.classes == (1, 2)


@pytest.mark.parametrize("hidden,init,gain", [("relu", "auto", 2.0), ("sigmoid", "auto", 1.0),
                                              ("relu", "lecun", 1.0), ("sigmoid", "he", 2.0)])
def test_initial_weights_have_the_chosen_scale(hidden, init, gain):
    net = Network([784, 400, 10], hidden=hidden, init=init, dtype="float64")
    assert net.weights[0].std() == pytest.approx(np.sqrt(gain / 784), rel=0.02)
    assert not any(b.any() for b in net.biases)


def test_the_same_seed_gives_the_same_weights():
    a, b, c = Network([20, 5, 3], seed=7), Network([20, 5, 3], seed=7), Network([20, 5, 3], seed=8)
    assert np.array_equal(a.weights[0], b.weights[0])
    assert not np.array_equal(a.weights[0], c.weights[0])


@pytest.mark.parametrize("kwargs,message", [
    ({"sizes": [784]}, "at least two"),
    ({"sizes": [784, 0, 10]}, "positive"),
    ({"sizes": [784, 12.7, 10]}, "whole numbers"),
    ({"sizes": [784, "wide", 10]}, "whole numbers"),
    ({"sizes": [784, 10], "hidden": "tanh"}, "Unknown hidden activation 'tanh'"),
    ({"sizes": [784, 10], "dtype": "float16"}, "Unknown dtype 'float16'"),
    ({"sizes": [784, 10], "init": "xavier"}, "Unknown init 'xavier'"),
    ({"sizes": [784, 1], "classes": (3, 3)}, "distinct class labels"),
])
def test_bad_configurations_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Network(**kwargs)


def test_predict_proba_rows_are_distributions_in_class_order():
    net = Network([784, 16, 10])
    x = np.random.default_rng(0).random((5, 784))
    probs = net.predict_proba(x)
    assert probs.shape == (5, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(net.predict(x), probs.argmax(axis=1))


def test_binary_models_report_both_class_probabilities_and_their_digits():
    net = Network([784, 4, 1], classes=(1, 2))
    probs = net.predict_proba(np.random.default_rng(0).random((6, 784)))
    assert probs.shape == (6, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    assert set(net.predict(np.zeros((3, 784)))) <= {1, 2}


@pytest.mark.parametrize("x,message", [
    (np.zeros((3, 780)), "X has 780 features, expected"),
    (np.zeros((2, 3, 784)), r"X has shape \(2, 3, 784\)"),
    (np.zeros((0, 784)), "no rows"),
    (np.full((2, 784), np.nan), "NaN or infinite"),
    (np.array([["a"] * 784]), "expected real numbers"),
])
def test_bad_inputs_are_refused(x, message):
    with pytest.raises(ValueError, match=message):
        Network([784, 10]).predict(x)


@pytest.mark.parametrize("labels,message", [
    (np.array([0, 1, 10]), r"\[10\], which are not among"),
    (np.array([0, 1]), r"shape \(2,\), expected \(3,\)"),
    (np.array([0.5, 1, 2]), "integer class labels"),
])
def test_bad_labels_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        Network([784, 10]).score(np.zeros((3, 784)), labels)


def test_score_is_the_fraction_of_correct_predictions():
    net = Network([784, 10])
    x = np.random.default_rng(1).random((50, 784))
    predicted = net.predict(x)
    labels = predicted.copy()
    labels[:10] = (labels[:10] + 1) % 10
    assert net.score(x, labels) == pytest.approx(0.8)
