"""The NumPy reference kernels against their textbook formulas, and the
composed backward pass against finite differences (float64)."""

import numpy as np
import pytest

from kernels import numpy_backend as ref
from kernels.common import RELU, SIGMOID, SOFTMAX, allocate_workspace

rng = np.random.default_rng(1234)


def randn(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def one_hot(n, k):
    return np.eye(k)[rng.integers(0, k, n)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_forward_is_x_times_w_plus_b(dtype):
    x, w, b = randn(5, 7, dtype=dtype), randn(7, 3, dtype=dtype), randn(3, dtype=dtype)
    out = np.empty((5, 3), dtype)
    ref.affine_forward(x, w, b, out)
    np.testing.assert_allclose(out, x.astype(float) @ w.astype(float) + b, rtol=1e-5, atol=1e-5)
    assert out.dtype == dtype


def test_affine_backward_gives_the_chain_rule_products():
    x, w, delta = randn(6, 4), randn(4, 3), randn(6, 3)
    grad_w, grad_b, grad_x = np.empty((4, 3)), np.empty(3), np.empty((6, 4))
    ref.affine_backward_params(x, delta, grad_w, grad_b)
    ref.affine_backward_input(delta, w, grad_x)
    np.testing.assert_allclose(grad_w, sum(np.outer(x[i], delta[i]) for i in range(6)))
    np.testing.assert_allclose(grad_b, delta.sum(axis=0))
    np.testing.assert_allclose(grad_x, delta @ w.T)


def test_sigmoid_matches_the_logistic_formula():
    z = randn(4, 5) * 5
    out = np.empty_like(z)
    ref.sigmoid(z, out)
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-z)), rtol=1e-14)


def test_relu_keeps_positive_values_and_zeroes_the_rest():
    z = np.array([[-2.0, -0.0, 0.0, 3.5]])
    out = np.empty_like(z)
    ref.relu(z, out)
    np.testing.assert_array_equal(out, [[0, 0, 0, 3.5]])


def test_softmax_rows_are_exp_over_sum():
    z = randn(6, 10)
    out = np.empty_like(z)
    ref.softmax(z, out)
    np.testing.assert_allclose(out, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturated_activations_and_losses_stay_finite(dtype):
    z = np.array([[-800.0, -100.0, 0.0, 100.0, 800.0]], dtype)
    probs = np.empty_like(z)
    ref.sigmoid(z, probs)
    assert np.isfinite(probs).all()
    np.testing.assert_array_equal(probs[0, [0, 4]], [0, 1])
    ref.softmax(z, probs)
    assert np.isfinite(probs).all() and probs[0, 4] == 1
    y = np.zeros_like(z)
    y[0, 0] = 1  # the least likely class: a large but finite loss
    assert ref.softmax_cross_entropy(z, y) == pytest.approx(1600, rel=1e-6)
    column = z.T.copy()  # targets 1: the losses are 800, 100, log 2, ~0, ~0
    expected = 900 + np.log(2)
    assert ref.sigmoid_cross_entropy(column, np.ones_like(column)) == pytest.approx(expected, rel=1e-6)


def test_softmax_cross_entropy_matches_minus_log_probability():
    z, y = randn(7, 10), one_hot(7, 10)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert ref.softmax_cross_entropy(z, y) == pytest.approx(-np.sum(y * np.log(probs)), rel=1e-12)


def test_sigmoid_cross_entropy_matches_the_binary_formula():
    z, y = randn(9, 1) * 3, rng.integers(0, 2, (9, 1)).astype(float)
    p = 1 / (1 + np.exp(-z))
    expected = -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert ref.sigmoid_cross_entropy(z, y) == pytest.approx(expected, rel=1e-12)


def test_output_delta_is_the_scaled_error():
    probs, y = rng.random((4, 3)), one_hot(4, 3)
    out = np.empty_like(probs)
    ref.output_delta(probs, y, 0.25, out)
    np.testing.assert_allclose(out, (probs - y) / 4)


def test_count_correct_uses_argmax_or_a_half_threshold():
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    y = np.eye(3)[[1, 2, 2]]
    assert ref.count_correct(probs, y) == 2
    binary = np.array([[0.2], [0.5], [0.9]])
    assert ref.count_correct(binary, np.array([[0.0], [1.0], [0.0]])) == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_update_steps_against_the_gradient_in_place(dtype):
    param, grad = randn(3, 2, dtype=dtype), randn(3, 2, dtype=dtype)
    expected = param.astype(float) - 0.5 * grad
    ref.sgd_update(param, grad, 0.5)
    np.testing.assert_allclose(param, expected, rtol=1e-6)
    assert param.dtype == dtype


def test_activation_backward_steps_match_finite_differences():
    z = randn(3, 4) + 0.05  # keep away from ReLU's kink at 0
    grad_a = randn(3, 4)
    eps = 1e-6
    for forward, backward, uses in ((ref.sigmoid, ref.sigmoid_backward, "a"),
                                    (ref.relu, ref.relu_backward, "z")):
        a, a_plus, a_minus = (np.empty_like(z) for _ in range(3))
        forward(z, a)
        forward(z + eps, a_plus)
        forward(z - eps, a_minus)
        out = np.empty_like(z)
        backward(a if uses == "a" else z, grad_a, out)
        np.testing.assert_allclose(out, grad_a * (a_plus - a_minus) / (2 * eps), rtol=1e-6,
                                   atol=1e-9)


# --- the composed backward pass against finite differences --------------------------------

def mean_loss(weights, biases, x, y, hidden, output):
    zs = [np.empty((x.shape[0], w.shape[1])) for w in weights]
    acts = [np.empty_like(z) for z in zs]
    ref.forward(weights, biases, x, hidden, output, zs, acts)
    if output == SOFTMAX:
        return ref.softmax_cross_entropy(zs[-1], y) / x.shape[0]
    return ref.sigmoid_cross_entropy(zs[-1], y) / x.shape[0]


@pytest.mark.parametrize("hidden", [SIGMOID, RELU], ids=["sigmoid", "relu"])
@pytest.mark.parametrize("output,n_out", [(SOFTMAX, 4), (SIGMOID, 1)], ids=["softmax", "sigmoid"])
@pytest.mark.parametrize("sizes", [(5, 4), (5, 6, 3)], ids=["one-hidden", "two-hidden"])
def test_train_epoch_gradients_match_finite_differences(hidden, output, n_out, sizes):
    sizes = (*sizes, n_out)
    n = 8
    x = randn(n, sizes[0])
    y = one_hot(n, n_out) if output == SOFTMAX else rng.integers(0, 2, (n, 1)).astype(float)
    weights = tuple(randn(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
    biases = tuple(randn(b) * 0.1 for b in sizes[1:])
    original = [p.copy() for p in weights + biases]

    ws = allocate_workspace(sizes, n, np.float64)
    ref.train_epoch(weights, biases, x, y, np.arange(n), n, 1e-300, hidden, output, ws)
    analytic = list(ws.grad_w) + list(ws.grad_b)

    eps = 1e-6
    for param, saved, grad in zip(weights + biases, original, analytic):
        param[...] = saved  # undo the (negligible) update
    for param, grad in zip(weights + biases, analytic):
        numeric = np.empty_like(param)
        for index in np.ndindex(param.shape):
            keep = param[index]
            param[index] = keep + eps
            plus = mean_loss(weights, biases, x, y, hidden, output)
            param[index] = keep - eps
            minus = mean_loss(weights, biases, x, y, hidden, output)
            param[index] = keep
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_train_epoch_applies_the_update_and_reports_loss_and_accuracy():
    sizes, n = (3, 4, 2), 6
    x, y = randn(n, 3), one_hot(n, 2)
    weights = tuple(randn(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
    biases = tuple(np.zeros(b) for b in sizes[1:])
    before = [p.copy() for p in weights + biases]
    expected_loss = mean_loss(weights, biases, x, y, RELU, SOFTMAX) * n
    hidden = np.maximum(x @ weights[0] + biases[0], 0)
    guesses = (hidden @ weights[1] + biases[1]).argmax(axis=1)  # before the update
    expected_correct = int(np.sum(guesses == y.argmax(axis=1)))
    ws = allocate_workspace(sizes, n, np.float64)
    loss, correct, steps = ref.train_epoch(weights, biases, x, y, np.arange(n), n, 0.1,
                                           RELU, SOFTMAX, ws)
    assert loss == pytest.approx(expected_loss)
    assert correct == expected_correct and steps == 1
    for param, old, grad in zip(weights + biases, before, list(ws.grad_w) + list(ws.grad_b)):
        np.testing.assert_allclose(param, old - 0.1 * grad)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_train_epoch_stops_before_updating_at_a_non_finite_loss():
    sizes, n = (3, 2), 4
    x, y = randn(n, 3), one_hot(n, 2)
    weights, biases = (randn(3, 2),), (np.zeros(2),)
    x[2, 0] = np.inf  # the second batch of two rows will produce a NaN loss
    ws = allocate_workspace(sizes, 2, np.float64)
    _, _, steps = ref.train_epoch(weights, biases, x, y, np.arange(n), 2, 0.1, RELU, SOFTMAX, ws)
    assert steps == 1
    assert np.isfinite(weights[0]).all()
