"""The NumPy reference backend: the living definition of every kernel.

Each kernel is a plain function over arrays. Where the fast twin in
``numba_backend.py`` needs an output buffer, the kernel takes one (``out``)
and fills it; it never keeps state. Shapes use ``n`` for the number of
samples (rows), ``k`` for a layer's inputs and ``m`` for its outputs.
Arrays are float32 or float64; a kernel keeps the dtype it is given.
"""

from __future__ import annotations

import numpy as np

from .common import RELU, SIGMOID, SOFTMAX, WarmupInfo, Workspace, check_epoch_args

NAME = "numpy"


def warmup(dtype=np.float32, batch_size=64, *, training=True, first_layer_width=None
           ) -> WarmupInfo:
    """Nothing to compile for NumPy: no time spent, nothing compiled or loaded."""
    return WarmupInfo(0.0, 0, 0)


def compile_all() -> WarmupInfo:
    """Nothing to compile for NumPy."""
    return WarmupInfo(0.0, 0, 0)


def is_compiled(dtype=np.float32, batch_size=64, *, training=True,
                first_layer_width=None) -> bool:
    """Always True: NumPy has nothing to compile."""
    return True


def compile_estimate(dtype=np.float32, batch_size=64, *, training=True,
                     first_layer_width=None) -> float:
    """Zero: NumPy has nothing to compile."""
    return 0.0


def is_cached(dtype=np.float32, batch_size=64, *, training=True, first_layer_width=None
              ) -> bool:
    """Always True: NumPy has nothing to compile."""
    return True


# --- affine layer ---------------------------------------------------------

def affine_forward(x, w, b, out):
    """``out = x @ w + b`` for x (n, k), w (k, m), b (m,), out (n, m)."""
    np.matmul(x, w, out=out)
    out += b


def affine_backward_params(x, delta, grad_w, grad_b):
    """Parameter gradients of an affine layer.

    ``grad_w = x.T @ delta`` (k, m) and ``grad_b = delta.sum(0)`` (m,),
    for x (n, k) and delta (n, m), the gradient of the loss at the layer's output.
    """
    np.matmul(x.T, delta, out=grad_w)
    np.sum(delta, axis=0, out=grad_b)


def affine_backward_input(delta, w, out):
    """Input gradient of an affine layer: ``out = delta @ w.T`` (n, k)."""
    np.matmul(delta, w.T, out=out)


# --- activations ------------------------------------------------------------

def sigmoid(z, out):
    """Logistic function, elementwise, without overflow for large |z|."""
    # exp(-|z|) never overflows; choose the algebraically equal form by sign.
    e = np.exp(-np.abs(z))
    np.divide(np.where(z >= 0, 1, e), 1 + e, out=out)


def sigmoid_backward(a, grad_a, out):
    """``out = grad_a * a * (1 - a)`` where ``a = sigmoid(z)``."""
    np.multiply(grad_a, a * (1 - a), out=out)


def relu(z, out):
    """``out = max(z, 0)`` elementwise."""
    np.maximum(z, 0, out=out)


def relu_backward(z, grad_a, out):
    """``out = grad_a`` where ``z > 0``, else 0."""
    np.multiply(grad_a, z > 0, out=out)


def softmax(z, out):
    """Row-wise softmax of z (n, m), shifted by the row maximum for stability."""
    shifted = z - z.max(axis=1, keepdims=True)
    np.exp(shifted, out=out)
    out /= out.sum(axis=1, keepdims=True)


# --- losses ---------------------------------------------------------------------
#
# Both losses are computed from the logits z, not from probabilities, so they
# stay finite and accurate when a probability rounds to exactly 0 or 1.

def softmax_cross_entropy(z, y):
    """Summed categorical cross-entropy of ``softmax(z)`` against one-hot y.

    z, y : (n, m). Returns ``-sum(y * log_softmax(z))`` as a Python float.
    """
    shifted = z - z.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-(y * log_probs).sum())


def sigmoid_cross_entropy(z, y):
    """Summed binary cross-entropy of ``sigmoid(z)`` against targets y in {0, 1}.

    z, y : (n, 1). Uses ``max(z, 0) - z*y + log(1 + exp(-|z|))``.
    """
    return float((np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).sum())


def output_delta(probs, y, scale, out):
    """Gradient of ``scale * loss`` with respect to the output logits.

    For softmax + categorical cross-entropy and for sigmoid + binary
    cross-entropy alike this is ``scale * (probs - y)``; training passes
    ``scale = 1 / batch_size`` so that the update follows the batch mean.
    """
    np.subtract(probs, y, out=out)
    out *= scale


def count_correct(probs, y):
    """Number of rows whose prediction matches the target.

    One output column: class 1 when ``probs >= 0.5``. Several: the argmax.
    """
    if probs.shape[1] == 1:
        return int(((probs[:, 0] >= 0.5) == (y[:, 0] >= 0.5)).sum())
    return int((probs.argmax(axis=1) == y.argmax(axis=1)).sum())


# --- update -------------------------------------------------------------------------

def sgd_update(param, grad, lr):
    """Gradient-descent step in place: ``param -= lr * grad``."""
    param -= param.dtype.type(lr) * grad


# --- composed: forward pass and one epoch -----------------------------------------------

def _activate(code, z, out):
    if code == SIGMOID:
        sigmoid(z, out)
    elif code == RELU:
        relu(z, out)
    else:
        softmax(z, out)


def _output_loss(code, z, y):
    if code == SOFTMAX:
        return softmax_cross_entropy(z, y)
    return sigmoid_cross_entropy(z, y)


def forward(weights, biases, x, hidden, output, zs, activations):
    """Run the network on x (n, n_in), filling ``zs[i]`` and ``activations[i]``.

    weights[i] (k, m) and biases[i] (m,) are layer i's parameters; ``hidden``
    and ``output`` are activation codes from ``kernels.common``. The last
    entry of ``activations`` receives the output probabilities.
    """
    inputs = x
    last = len(weights) - 1
    for i in range(len(weights)):
        affine_forward(inputs, weights[i], biases[i], zs[i])
        _activate(output if i == last else hidden, zs[i], activations[i])
        inputs = activations[i]


def backward_deltas(weights, hidden, zs, activations, deltas):
    """Every hidden layer's delta, from the output delta ``deltas[-1]`` back.

    ``deltas[i-1] = (deltas[i] @ weights[i].T) * activation'(zs[i-1])``, in
    place. The first layer's input gradient is never needed, so never computed.
    """
    for i in range(len(weights) - 1, 0, -1):
        # The gradient at layer i-1's output goes into its delta buffer,
        # then is multiplied in place by the activation's derivative.
        affine_backward_input(deltas[i], weights[i], deltas[i - 1])
        if hidden == SIGMOID:
            sigmoid_backward(activations[i - 1], deltas[i - 1], deltas[i - 1])
        else:
            relu_backward(zs[i - 1], deltas[i - 1], deltas[i - 1])


def parameter_gradients(x, activations, deltas, grad_w, grad_b):
    """Every layer's ``grad_w[i] = input_i.T @ deltas[i]`` and ``grad_b[i] = deltas[i].sum(0)``.

    ``input_0`` is x (n, n_in); ``input_i`` is ``activations[i-1]``.
    """
    for i in range(len(grad_w)):
        layer_input = activations[i - 1] if i > 0 else x
        affine_backward_params(layer_input, deltas[i], grad_w[i], grad_b[i])


def prepare_inputs(x):
    """The inputs in the form `train_epoch` takes, built once before training.

    The reference reads its inputs as they are, so this returns ``x``
    unchanged. (The Numba twin returns a `kernels.common.PreparedInputs`.)
    Call it once per data set and pass its result as ``x`` to every
    `train_epoch` of the run.
    """
    return x


def train_epoch(weights, biases, x, y, order, batch_size, lr, hidden, output, ws: Workspace):
    """Run gradient-descent steps over the rows ``x[order]`` in batches.

    Each step runs the phases the compiled engine runs, in its order:
    forward, loss and output delta, backward deltas (per block of rows);
    then the parameter gradients; then the update.

    Parameters
    ----------
    weights, biases : tuples of (k, m) and (m,) arrays, updated in place.
    x : (N, n_in) inputs (as returned by `prepare_inputs`, which is x itself);
    y : (N, n_out) one-hot (or 0/1) targets, same dtype.
    order : (n,) int64 row indices in visiting order; the last batch may be short.
    batch_size : rows per step. lr : learning rate.
    hidden, output : activation codes. ws : buffers from `allocate_workspace`.

    Returns
    -------
    (loss_sum, n_correct, n_steps) : the summed loss and correct count of the
    batches completed before the update (forward pass before each step), and
    the number of steps taken. Training stops early, before updating, at the
    first batch whose loss is not finite: then ``n_steps`` is that batch's index.
    """
    order, batch_size = check_epoch_args(weights, biases, x, y, order, batch_size, ws)
    loss_sum = 0.0
    n_correct = 0
    n_steps = 0
    for start in range(0, order.shape[0], batch_size):
        rows = order[start:start + batch_size]
        m = rows.shape[0]
        xb, yb = ws.x[:m], ws.y[:m]
        np.take(x, rows, axis=0, out=xb)
        np.take(y, rows, axis=0, out=yb)
        zs = [z[:m] for z in ws.z]
        acts = [a[:m] for a in ws.a]
        deltas = [d[:m] for d in ws.delta]

        forward(weights, biases, xb, hidden, output, zs, acts)
        loss = _output_loss(output, zs[-1], yb)
        if not np.isfinite(loss):
            break
        loss_sum += loss
        n_correct += count_correct(acts[-1], yb)
        output_delta(acts[-1], yb, 1.0 / m, deltas[-1])
        backward_deltas(weights, hidden, zs, acts, deltas)

        parameter_gradients(xb, acts, deltas, ws.grad_w, ws.grad_b)

        for i in range(len(weights)):
            sgd_update(weights[i], ws.grad_w[i], lr)
            sgd_update(biases[i], ws.grad_b[i], lr)
        n_steps += 1
    return loss_sum, n_correct, n_steps
