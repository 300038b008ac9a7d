"""Activations, losses, output deltas and the update, for the numba backend.

Each public kernel has the name and signature of its twin in
``numpy_backend.py``. The ``*_row`` functions do the same on one 1-D row;
the training phases in ``numba_phases.py`` call those, row by row of a block.
Every kernel computes in the dtype it is given (constants are cast to it).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._jit import jit
from .common import RELU, SIGMOID


# --- exp of float32, in vector instructions -----------------------------------
#
# LLVM turns np.exp into one call of the C library's expf per element: a
# sigmoid layer's loop cannot vectorise around it (6% of a 784-128-64-10
# sigmoid epoch at batch 256 was in expf). `exp_nonpositive_f32` computes the
# same function in plain arithmetic, which the loop vectorises.

@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE 754 bits are the int32 ``bits`` (an LLVM bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


#: exp(x) on |r| <= ln(2)/2 is 1 + r + r^2 * P(r): P's coefficients, highest
#: first (Cephes expf; within 2 ulp of exp over that range).
_EXP_P = (np.float32(1.9875691500e-4), np.float32(1.3981999507e-3),
          np.float32(8.3334519073e-3), np.float32(4.1665795894e-2),
          np.float32(1.6666665459e-1), np.float32(5.0000001201e-1))


#: The least float32 whose exp is a normal float32 (exp(x) >= 2^-126): ln(2^-126)
#: rounded up to a float32.
_EXP_MIN_NORMAL = np.float32(-87.33654)


@jit(internal=True, reassociate=False)
def exp_nonpositive_f32(x):
    """exp(x) for a float32 x <= 0 (or NaN), to within 2 ulp; a vectorisable loop body.

    x = k ln2 + r with k an integer and |r| <= ln2/2 (ln2 in two parts, so
    k ln2 is exact), exp(r) by a polynomial, 2^k built from its exponent
    bits. Below `_EXP_MIN_NORMAL` the result would be subnormal: it is 0
    there (the true value is below 1.2e-38). NaN stays NaN. Without
    ``reassoc``: the two parts of ln2 must not be added up before they are
    used.
    """
    k = np.floor(x * np.float32(1.44269504088896341) + np.float32(0.5))
    r = (x - k * np.float32(0.693359375)) - k * np.float32(-2.12194440e-4)
    p = _EXP_P[0]
    p = p * r + _EXP_P[1]
    p = p * r + _EXP_P[2]
    p = p * r + _EXP_P[3]
    p = p * r + _EXP_P[4]
    p = p * r + _EXP_P[5]
    e = (p * r) * r + r + np.float32(1)
    scale = _float32_from_bits((np.int32(k) + np.int32(127)) << np.int32(23))
    zero = np.float32(0)
    tiny = x < _EXP_MIN_NORMAL
    return (x if x != x else zero) if tiny or x != x else e * scale


# --- activations ------------------------------------------------------------
#
# The public kernels work on arrays of any shape (C-contiguous); the ``*_row``
# versions that the training phases use work on one 1-D row.

@jit(internal=True)
def sigmoid_row(z, out):
    one = z.dtype.type(1)
    # exp(-|z|) never overflows; choose the algebraically equal form by sign.
    if z.itemsize == 4:  # float32: exp in vector instructions
        for c in range(z.shape[0]):
            v = z[c]
            e = exp_nonpositive_f32(np.float32(-abs(v)))
            out[c] = (one if v >= 0 else e) / (one + e)
    else:
        for c in range(z.shape[0]):
            v = z[c]
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
