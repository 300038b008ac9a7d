"""Activations, losses, output deltas and the update, for the numba backend.

Each public kernel has the name and signature of its twin in
``numpy_backend.py``. The ``*_row`` functions do the same on one 1-D row;
the training phases in ``numba_phases.py`` call those, row by row of a block.
Every kernel computes in the dtype it is given (constants are cast to it).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .common import RELU, SIGMOID


# --- activations ------------------------------------------------------------
#
# The public kernels work on arrays of any shape (C-contiguous); the ``*_row``
# versions that the training phases use work on one 1-D row.

@jit(internal=True)
def sigmoid_row(z, out):
    one = z.dtype.type(1)
    for c in range(z.shape[0]):
        v = z[c]
        # exp(-|z|) never overflows; choose the algebraically equal form by sign.
        e = np.exp(-abs(v))
        out[c] = (one if v >= 0 else e) / (one + e)


@jit
def sigmoid(z, out):
    """Logistic function, elementwise, without overflow for large |z|."""
    sigmoid_row(z.reshape(z.size), out.reshape(out.size))


@jit(internal=True)
def sigmoid_backward_row(a, grad_a, out):
    one = a.dtype.type(1)
    for c in range(a.shape[0]):
        out[c] = grad_a[c] * (a[c] * (one - a[c]))


@jit
def sigmoid_backward(a, grad_a, out):
    """``out = grad_a * a * (1 - a)`` where ``a = sigmoid(z)``."""
    sigmoid_backward_row(a.reshape(a.size), grad_a.reshape(grad_a.size), out.reshape(out.size))


@jit(internal=True)
def relu_row(z, out):
    zero = z.dtype.type(0)
    for c in range(z.shape[0]):
        v = z[c]
        # Written so that NaN passes through, as with np.maximum.
        out[c] = zero if v < zero else v


@jit
def relu(z, out):
    """``out = max(z, 0)`` elementwise."""
    relu_row(z.reshape(z.size), out.reshape(out.size))


@jit(internal=True)
def relu_backward_row(z, grad_a, out):
    zero = z.dtype.type(0)
    one = z.dtype.type(1)
    for c in range(z.shape[0]):
        # A multiply, not a select, so that an inf/NaN gradient stays visible.
        out[c] = grad_a[c] * (one if z[c] > zero else zero)


@jit
def relu_backward(z, grad_a, out):
    """``out = grad_a`` where ``z > 0``, else 0."""
    relu_backward_row(z.reshape(z.size), grad_a.reshape(grad_a.size), out.reshape(out.size))


@jit(internal=True)
def row_max(z):
    mx = z[0]
    for c in range(1, z.shape[0]):
        if z[c] > mx:
            mx = z[c]
    return mx


@jit(internal=True)
def softmax_row(z, out):
    mx = row_max(z)
    for c in range(z.shape[0]):
        out[c] = np.exp(z[c] - mx)
    # A sum in a loop of its own. In a loop that also stored to out, LLVM
    # would check at run time whether out and z overlap and take a scalar loop
    # when they might, and the scalar loop sums in another order than the
    # vectorised one: the result depended on where the two rows lie in memory.
    total = z.dtype.type(0)
    for c in range(z.shape[0]):
        total += out[c]
    for c in range(z.shape[0]):
        out[c] /= total


@jit
def softmax(z, out):
    """Row-wise softmax of z (n, m), shifted by the row maximum for stability."""
    for r in range(z.shape[0]):
        softmax_row(z[r], out[r])


# --- losses ---------------------------------------------------------------------
#
# Both losses are computed from the logits z, not from probabilities, so they
# stay finite and accurate when a probability rounds to exactly 0 or 1. They
# are summed in the arrays' dtype, like the reference, so a float32 loss
# overflows (and training stops) where the reference's does.

@jit(internal=True)
def softmax_cross_entropy_row(z, y):
    mx = row_max(z)
    total = z.dtype.type(0)
    for c in range(z.shape[0]):
        total += np.exp(z[c] - mx)
    log_total = np.log(total)
    loss = z.dtype.type(0)
    # Every column, not just the target's, so that a NaN/inf logit shows.
    for c in range(z.shape[0]):
        loss -= y[c] * ((z[c] - mx) - log_total)
    return loss


@jit
def softmax_cross_entropy(z, y):
    """Summed categorical cross-entropy of ``softmax(z)`` against one-hot y.

    z, y : (n, m). Returns ``-sum(y * log_softmax(z))`` as a Python float.
    """
    loss = z.dtype.type(0)
    for r in range(z.shape[0]):
        loss += softmax_cross_entropy_row(z[r], y[r])
    return loss


@jit(internal=True)
def sigmoid_cross_entropy_row(z, y):
    zero = z.dtype.type(0)
    loss = zero
    for c in range(z.shape[0]):
        v = z[c]
        loss += (v if v > zero else zero) - v * y[c] + np.log1p(np.exp(-abs(v)))
    return loss


@jit
def sigmoid_cross_entropy(z, y):
    """Summed binary cross-entropy of ``sigmoid(z)`` against targets y in {0, 1}.

    z, y : (n, 1). Uses ``max(z, 0) - z*y + log(1 + exp(-|z|))``.
    """
    loss = z.dtype.type(0)
    for r in range(z.shape[0]):
        loss += sigmoid_cross_entropy_row(z[r], y[r])
    return loss


@jit(internal=True)
def output_delta_row(probs, y, scale, out):
    for c in range(probs.shape[0]):
        out[c] = (probs[c] - y[c]) * scale


@jit
def output_delta(probs, y, scale, out):
    """Gradient of ``scale * loss`` with respect to the output logits.

    For softmax + categorical cross-entropy and for sigmoid + binary
    cross-entropy alike this is ``scale * (probs - y)``; training passes
    ``scale = 1 / batch_size`` so that the update follows the batch mean.
    """
    s = probs.dtype.type(scale)
    for r in range(probs.shape[0]):
        output_delta_row(probs[r], y[r], s, out[r])


@jit(internal=True)
def argmax_row(v):
    best = 0
    for c in range(1, v.shape[0]):
        if v[c] > v[best]:
            best = c
    return best


@jit(internal=True)
def correct_row(probs, y):
    if probs.shape[0] == 1:
        half = probs.dtype.type(0.5)
        return (probs[0] >= half) == (y[0] >= half)
    return argmax_row(probs) == argmax_row(y)


@jit
def count_correct(probs, y):
    """Number of rows whose prediction matches the target.

    One output column: class 1 when ``probs >= 0.5``. Several: the argmax.
    """
    hits = 0
    for r in range(probs.shape[0]):
        if correct_row(probs[r], y[r]):
            hits += 1
    return hits


# --- update -------------------------------------------------------------------------

@jit
def sgd_update(param, grad, lr):
    """Gradient-descent step in place: ``param -= lr * grad``."""
    p = param.reshape(param.size)
    g = grad.reshape(grad.size)
    step = param.dtype.type(lr)
    for i in range(p.shape[0]):
        p[i] -= step * g[i]


@jit(internal=True)
def activate_row(code, z, out):
    """The activation ``code`` (``kernels.common``) of one row."""
    if code == SIGMOID:
        sigmoid_row(z, out)
    elif code == RELU:
        relu_row(z, out)
    else:
        softmax_row(z, out)
