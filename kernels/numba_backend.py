"""The Numba backend: the reference kernels compiled, and a compiled training loop.

Read it beside ``numpy_backend.py``: the public functions have the same names,
signatures and meaning, and they come in the same order. Each is compiled by
`kernels._jit.jit`, the one place holding the JIT options. Shapes use ``n``
for samples (rows), ``k`` for a layer's inputs and ``m`` for its outputs;
arrays are float32 or float64, C-contiguous, and every kernel computes in the
dtype it is given (constants are cast to it, so float32 stays float32).

Two things make this backend fast beyond compiling the loops:

* `train_epoch` composes the kernels in nopython code, so Python is entered
  once per epoch, not per batch or per sample.
* Zero inputs are skipped. About 80% of MNIST pixels are 0, and a zero
  input adds nothing to ``x @ w`` nor to ``x.T @ delta``; the first layer
  runs both products over each row's nonzero (index, value) pairs only.
  Training reads those pairs from a sparse copy of the inputs that
  `prepare_inputs` builds once per data set, not once per epoch. This is
  exact, not an approximation: skipping is switched off whenever the other
  factor (the weights, or the deltas) holds an inf or NaN, because there
  the reference computes ``0 * inf = nan`` and so must we (the dense
  inputs are kept for that).

Loops run over contiguous rows of ``w`` (k, m) so that their bodies vectorise.
Batches of `PARALLEL_MIN_BATCH` rows or more are split over Numba's threads
(``numba.set_num_threads``, see ``fastnn/threads.py``); results do not depend
on the number of threads, because every sum is taken in the same row order.
"""

from __future__ import annotations

import time

import numba
import numpy as np
from numba import prange

from ._jit import compile_stats, jit
from .common import (RELU, SIGMOID, SOFTMAX, PreparedInputs, WarmupInfo, Workspace,
                     allocate_workspace)

NAME = "numba"

#: Smallest batch for which `train_epoch` splits each batch over threads.
#: Measured on 2 cores: from 64 rows on two threads paid (a batch-64 epoch
#: 0.24 s against 0.45 s on one); at 16-32 rows, with other processes on the
#: cores, waking threads twice per batch made epochs 2-3.5x slower than one thread.
PARALLEL_MIN_BATCH = 64

#: Rows of a batch processed together: big batches (up to the full data set)
#: are walked in tiles, so the per-row buffers stay cache-sized.
TILE_ROWS = 512


# --- affine layer ---------------------------------------------------------

@jit
def _all_finite(a):
    """True when no element of a is inf or NaN (``x * 0`` is 0 only for finite x)."""
    flat = a.reshape(a.size)
    s = flat.dtype.type(0)
    for i in range(flat.shape[0]):
        s += flat[i] * 0
    return s == 0


@jit
def _compress_row(x_row, bounds, idx, val, offsets):
    """Gather the nonzero entries of x_row into (idx, val); returns their count.

    ``bounds`` (C+1,) splits the input units into C blocks; ``offsets[t]`` is
    where block t's entries start, so thread t of the weight gradient can walk
    only its own inputs. The compaction is branch-free: every entry is written,
    and the write position only advances past nonzero ones.
    """
    count = 0
    offsets[0] = 0
    for t in range(bounds.shape[0] - 1):
        for j in range(bounds[t], bounds[t + 1]):
            v = x_row[j]
            idx[count] = j
            val[count] = v
            count += 1 if v != 0 else 0
        offsets[t + 1] = count
    return count


# The row kernels below add several rows of w per pass over out_row: the
# out_row vector is then loaded and stored once per 4 (or 8) rows of w instead
# of once per row, which is what bounds these loops.

@jit
def _affine_row(x_row, w, b, out_row):
    """``out_row = x_row @ w + b`` for one row (every input, zero or not)."""
    k, m = w.shape
    out_row[:] = 0
    j = 0
    while j + 4 <= k:
        v0, v1, v2, v3 = x_row[j], x_row[j + 1], x_row[j + 2], x_row[j + 3]
        for c in range(m):
            out_row[c] += (v0 * w[j, c] + v1 * w[j + 1, c]) + (v2 * w[j + 2, c] + v3 * w[j + 3, c])
        j += 4
    for jj in range(j, k):
        v = x_row[jj]
        for c in range(m):
            out_row[c] += v * w[jj, c]
    for c in range(m):
        out_row[c] += b[c]


@jit
def _sparse_affine_row(idx, val, lo, hi, w, b, out_row):
    """`_affine_row` for an input given by its nonzero (index, value) pairs ``lo:hi``."""
    m = w.shape[1]
    out_row[:] = 0
    p = lo
    while p + 8 <= hi:
        j0, j1, j2, j3 = idx[p], idx[p + 1], idx[p + 2], idx[p + 3]
        j4, j5, j6, j7 = idx[p + 4], idx[p + 5], idx[p + 6], idx[p + 7]
        v0, v1, v2, v3 = val[p], val[p + 1], val[p + 2], val[p + 3]
        v4, v5, v6, v7 = val[p + 4], val[p + 5], val[p + 6], val[p + 7]
        for c in range(m):
            out_row[c] += (((v0 * w[j0, c] + v1 * w[j1, c]) + (v2 * w[j2, c] + v3 * w[j3, c]))
                           + ((v4 * w[j4, c] + v5 * w[j5, c]) + (v6 * w[j6, c] + v7 * w[j7, c])))
        p += 8
    for q in range(p, hi):
        j = idx[q]
        v = val[q]
        for c in range(m):
            out_row[c] += v * w[j, c]
    for c in range(m):
        out_row[c] += b[c]


@jit
def affine_forward(x, w, b, out):
    """``out = x @ w + b`` for x (n, k), w (k, m), b (m,), out (n, m)."""
    k = x.shape[1]
    skip_zeros = _all_finite(w)
    idx = np.empty(k, np.int32)
    val = np.empty(k, x.dtype)
    offsets = np.empty(2, np.int64)
    bounds = np.array([0, k])
    for r in range(x.shape[0]):
        if skip_zeros:
            count = _compress_row(x[r], bounds, idx, val, offsets)
            _sparse_affine_row(idx, val, 0, count, w, b, out[r])
        else:
            _affine_row(x[r], w, b, out[r])


@jit
def affine_backward_params(x, delta, grad_w, grad_b):
    """Parameter gradients of an affine layer.

    ``grad_w = x.T @ delta`` (k, m) and ``grad_b = delta.sum(0)`` (m,),
    for x (n, k) and delta (n, m), the gradient of the loss at the layer's output.
    """
    grad_w[:] = 0
    grad_b[:] = 0
    m = delta.shape[1]
    skip_zeros = _all_finite(delta)
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[r, j]
            if v != 0 or not skip_zeros:
                for c in range(m):
                    grad_w[j, c] += v * delta[r, c]
        for c in range(m):
            grad_b[c] += delta[r, c]


@jit
def _backward_input_row(delta_row, w, out_row):
    """``out_row = w @ delta_row``: one dot product per contiguous row of w."""
    for j in range(w.shape[0]):
        s = out_row.dtype.type(0)
        for c in range(w.shape[1]):
            s += w[j, c] * delta_row[c]
        out_row[j] = s


@jit
def affine_backward_input(delta, w, out):
    """Input gradient of an affine layer: ``out = delta @ w.T`` (n, k)."""
    for r in range(delta.shape[0]):
        _backward_input_row(delta[r], w, out[r])


# --- activations ------------------------------------------------------------
#
# The public kernels work on arrays of any shape (C-contiguous); the ``_row``
# helpers that the training loop uses work on one 1-D row.

@jit
def _sigmoid_row(z, out):
    one = z.dtype.type(1)
    for c in range(z.shape[0]):
        v = z[c]
        # exp(-|z|) never overflows; choose the algebraically equal form by sign.
        e = np.exp(-abs(v))
        out[c] = (one if v >= 0 else e) / (one + e)


@jit
def sigmoid(z, out):
    """Logistic function, elementwise, without overflow for large |z|."""
    _sigmoid_row(z.reshape(z.size), out.reshape(out.size))


@jit
def _sigmoid_backward_row(a, grad_a, out):
    one = a.dtype.type(1)
    for c in range(a.shape[0]):
        out[c] = grad_a[c] * (a[c] * (one - a[c]))


@jit
def sigmoid_backward(a, grad_a, out):
    """``out = grad_a * a * (1 - a)`` where ``a = sigmoid(z)``."""
    _sigmoid_backward_row(a.reshape(a.size), grad_a.reshape(grad_a.size), out.reshape(out.size))


@jit
def _relu_row(z, out):
    zero = z.dtype.type(0)
    for c in range(z.shape[0]):
        v = z[c]
        # Written so that NaN passes through, as with np.maximum.
        out[c] = zero if v < zero else v


@jit
def relu(z, out):
    """``out = max(z, 0)`` elementwise."""
    _relu_row(z.reshape(z.size), out.reshape(out.size))


@jit
def _relu_backward_row(z, grad_a, out):
    zero = z.dtype.type(0)
    one = z.dtype.type(1)
    for c in range(z.shape[0]):
        # A multiply, not a select, so that an inf/NaN gradient stays visible.
        out[c] = grad_a[c] * (one if z[c] > zero else zero)


@jit
def relu_backward(z, grad_a, out):
    """``out = grad_a`` where ``z > 0``, else 0."""
    _relu_backward_row(z.reshape(z.size), grad_a.reshape(grad_a.size), out.reshape(out.size))


@jit
def _row_max(z):
    mx = z[0]
    for c in range(1, z.shape[0]):
        if z[c] > mx:
            mx = z[c]
    return mx


@jit
def _softmax_row(z, out):
    mx = _row_max(z)
    total = z.dtype.type(0)
    for c in range(z.shape[0]):
        e = np.exp(z[c] - mx)
        out[c] = e
        total += e
    for c in range(z.shape[0]):
        out[c] /= total


@jit
def softmax(z, out):
    """Row-wise softmax of z (n, m), shifted by the row maximum for stability."""
    for r in range(z.shape[0]):
        _softmax_row(z[r], out[r])


# --- losses ---------------------------------------------------------------------
#
# Both losses are computed from the logits z, not from probabilities, so they
# stay finite and accurate when a probability rounds to exactly 0 or 1. They
# are summed in the arrays' dtype, like the reference, so a float32 loss
# overflows (and training stops) where the reference's does.

@jit
def _softmax_cross_entropy_row(z, y):
    mx = _row_max(z)
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
        loss += _softmax_cross_entropy_row(z[r], y[r])
    return loss


@jit
def _sigmoid_cross_entropy_row(z, y):
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
        loss += _sigmoid_cross_entropy_row(z[r], y[r])
    return loss


@jit
def _output_delta_row(probs, y, scale, out):
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
        _output_delta_row(probs[r], y[r], s, out[r])


@jit
def _argmax_row(v):
    best = 0
    for c in range(1, v.shape[0]):
        if v[c] > v[best]:
            best = c
    return best


@jit
def _correct_row(probs, y):
    if probs.shape[0] == 1:
        half = probs.dtype.type(0.5)
        return (probs[0] >= half) == (y[0] >= half)
    return _argmax_row(probs) == _argmax_row(y)


@jit
def count_correct(probs, y):
    """Number of rows whose prediction matches the target.

    One output column: class 1 when ``probs >= 0.5``. Several: the argmax.
    """
    hits = 0
    for r in range(probs.shape[0]):
        if _correct_row(probs[r], y[r]):
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


# --- composed: forward pass and one epoch -----------------------------------------------
#
# Per-row pieces first, then the drivers. A row's forward pass, loss and
# backward deltas need only that row and the (fixed) weights, so rows can be
# split over threads; a weight gradient sums over rows, so it is split over
# the rows of w instead (each thread owns a block of input units).
#
# The compiled drivers take per-layer tuples padded to `LAYER_SLOTS` entries
# with empty arrays, plus the real number of layers: that way one compiled
# signature per dtype serves every network of up to `LAYER_SLOTS` layers
# (deeper ones compile their own, once).

#: Layer tuples are padded to this length before entering compiled code.
LAYER_SLOTS = 4


@jit
def _activate_row(code, z, out):
    if code == SIGMOID:
        _sigmoid_row(z, out)
    elif code == RELU:
        _relu_row(z, out)
    else:
        _softmax_row(z, out)


@jit
def _forward_row(x_row, idx, val, lo, hi, r, n_layers, weights, biases, hidden, output,
                 zs, acts, skip_zeros):
    """Forward pass of row ``r``: fills ``zs[i][r]`` and ``acts[i][r]`` for every layer.

    The input is x_row, whose nonzero (index, value) pairs are ``idx[lo:hi]``
    and ``val[lo:hi]``; the first layer reads the pairs when ``skip_zeros``,
    else x_row. ``skip_zeros`` must be False when any weight is inf or NaN.
    """
    if skip_zeros:
        _sparse_affine_row(idx, val, lo, hi, weights[0], biases[0], zs[0][r])
    else:
        _affine_row(x_row, weights[0], biases[0], zs[0][r])
    _activate_row(output if n_layers == 1 else hidden, zs[0][r], acts[0][r])
    for i in range(1, n_layers):
        _affine_row(acts[i - 1][r], weights[i], biases[i], zs[i][r])
        _activate_row(output if i == n_layers - 1 else hidden, zs[i][r], acts[i][r])


@jit
def _weights_finite(n_layers, weights):
    for i in range(n_layers):
        if not _all_finite(weights[i]):
            return False
    return True


@jit
def _forward_rows(lo, hi, n_layers, weights, biases, x, hidden, output, zs, acts,
                  idx, val, offsets, bounds, skip_zeros):
    for r in range(lo, hi):
        count = _compress_row(x[r], bounds, idx, val, offsets) if skip_zeros else 0
        _forward_row(x[r], idx, val, 0, count, r, n_layers, weights, biases, hidden, output,
                     zs, acts, skip_zeros)


@jit(parallel=True)
def _forward_compiled(n_layers, weights, biases, x, hidden, output, zs, acts,
                      idx, val, offsets, bounds):
    """Rows split into ``len(idx)`` blocks, one per thread (one block: no threads)."""
    n = x.shape[0]
    n_blocks = idx.shape[0]
    skip_zeros = _weights_finite(n_layers, weights)
    for t in prange(n_blocks):
        _forward_rows(n * t // n_blocks, n * (t + 1) // n_blocks, n_layers, weights, biases,
                      x, hidden, output, zs, acts, idx[t], val[t], offsets[t], bounds,
                      skip_zeros)


def forward(weights, biases, x, hidden, output, zs, activations):
    """Run the network on x (n, n_in), filling ``zs[i]`` and ``activations[i]``.

    weights[i] (k, m) and biases[i] (m,) are layer i's parameters; ``hidden``
    and ``output`` are activation codes from ``kernels.common``. The last
    entry of ``activations`` receives the output probabilities.
    """
    n_layers = _check_layers(weights, biases, x)
    x = np.ascontiguousarray(x)
    n, n_in = x.shape
    n_blocks = max(1, min(numba.get_num_threads(), n // PARALLEL_MIN_BATCH))
    weights, biases, zs, activations = _pad(n_layers, weights, biases, zs, activations)
    _forward_compiled(
        n_layers, weights, biases, x, int(hidden), int(output), zs, activations,
        np.empty((n_blocks, n_in), np.int32), np.empty((n_blocks, n_in), x.dtype),
        np.empty((n_blocks, 2), np.int64), _input_bounds(n_in, 1))


# --- prepared inputs: each row's nonzero entries, found once ------------------------------

@jit
def _count_nonzeros(x, indptr):
    """``indptr[r + 1] - indptr[r]`` = the number of nonzero entries of row r of x (n, k).

    An entry counts as nonzero when ``v != 0`` (NaN does, -0.0 does not), as
    in `_compress_row`.
    """
    indptr[0] = 0
    for r in range(x.shape[0]):
        count = 0
        for j in range(x.shape[1]):
            count += 1 if x[r, j] != 0 else 0
        indptr[r + 1] = indptr[r] + count


@jit
def _gather_nonzeros(x, indices, values):
    """Write the nonzero entries of x, row by row in ascending column order, to indices/values.

    Branch-free: every entry is written, the position advances past nonzero
    ones only, so both arrays need one spare element after the last nonzero.
    """
    p = 0
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[r, j]
            indices[p] = j
            values[p] = v
            p += 1 if v != 0 else 0


# --- training: the three phases of one step -------------------------------------------
#
# The inputs come as the arrays of a `PreparedInputs`: the dense x (read only
# where zeros may not be skipped) and the CSR arrays indptr, indices, values
# (each row's nonzero entries, in ascending column order).

@jit
def _block_offsets(indices, lo, hi, bounds, offsets_row):
    """Split one row's nonzero entries ``lo:hi`` into the input blocks of ``bounds``.

    ``offsets_row[t]`` becomes the first position p in lo..hi with
    ``indices[p] >= bounds[t]`` (a binary search: indices ascend within a
    row), so block t's entries are ``offsets_row[t]:offsets_row[t + 1]``.
    """
    n_blocks = bounds.shape[0] - 1
    offsets_row[0] = lo
    for t in range(1, n_blocks):
        a = offsets_row[t - 1]
        b = hi
        while a < b:
            mid = (a + b) // 2
            if indices[mid] < bounds[t]:
                a = mid + 1
            else:
                b = mid
        offsets_row[t] = a
    offsets_row[n_blocks] = hi


@jit
def _rows_forward_backward(lo, hi, start, n_layers, weights, biases, x, indptr, indices, values,
                           y, order, hidden, output, scale, zs, acts, deltas, offsets, bounds,
                           skip_zeros, row_loss, row_hit, row_finite):
    """Phase 1 for rows lo..hi of a tile: forward, loss, and the delta of every layer.

    Tile row r is data row ``order[start + r]``. Its activations and deltas
    go to row r of the workspace buffers, where its nonzero inputs start for
    each block (positions in indices/values, see `_block_offsets`) to
    ``offsets[r]``, its loss, hit, and whether its first-layer delta is finite
    to ``row_loss[r]``, ``row_hit[r]`` and ``row_finite[r]``. Every tile
    reuses the leading rows of the buffers, so even a full-batch step works
    in cache-sized pieces.
    """
    last = n_layers - 1
    for r in range(lo, hi):
        row = order[start + r]
        p0, p1 = indptr[row], indptr[row + 1]
        _block_offsets(indices, p0, p1, bounds, offsets[r])
        _forward_row(x[row], indices, values, p0, p1, r, n_layers, weights, biases, hidden,
                     output, zs, acts, skip_zeros)
        if output == SOFTMAX:
            row_loss[r] = _softmax_cross_entropy_row(zs[last][r], y[row])
        else:
            row_loss[r] = _sigmoid_cross_entropy_row(zs[last][r], y[row])
        row_hit[r] = 1 if _correct_row(acts[last][r], y[row]) else 0
        _output_delta_row(acts[last][r], y[row], scale, deltas[last][r])
        for i in range(last, 0, -1):
            # The gradient at layer i-1's output, times the activation's derivative.
            _backward_input_row(deltas[i][r], weights[i], deltas[i - 1][r])
            if hidden == SIGMOID:
                _sigmoid_backward_row(acts[i - 1][r], deltas[i - 1][r], deltas[i - 1][r])
            else:
                _relu_backward_row(zs[i - 1][r], deltas[i - 1][r], deltas[i - 1][r])
        row_finite[r] = 1 if _all_finite(deltas[0][r]) else 0


@jit
def _accumulate_block(t, n_blocks, lo, hi, n_layers, acts, deltas, grad_w, grad_b,
                      indices, values, offsets, bounds, touched, touched_list, n_touched,
                      skip_zeros, x, order, start):
    """Phase 2, block t: add tile rows lo..hi to block t of every gradient.

    Block t owns first-layer inputs ``bounds[t]:bounds[t+1]``, rows
    ``k*t//n_blocks : k*(t+1)//n_blocks`` of the other layers' grad_w, and the
    same share of every grad_b's columns, so blocks never write the same
    element, and each element is summed over rows in row order whatever the
    number of blocks. Tile row r's nonzero inputs of block t are
    ``indices/values[offsets[r, t]:offsets[r, t + 1]]``. The first layer
    touches only the grad_w rows of inputs that are nonzero somewhere in the
    batch; they are listed in ``touched_list[bounds[t]:bounds[t] + n_touched[t]]``
    for the update.
    When a delta is inf or NaN (``skip_zeros`` False) every input counts,
    read from ``x[order[start + r]]``.
    """
    g0 = grad_w[0]
    d0 = deltas[0]
    m0 = g0.shape[1]
    base = bounds[t]
    # A local count, written back once: n_touched[t] shares a cache line
    # with the other blocks' counts, and threads would fight over it.
    count = n_touched[t]
    if skip_zeros:
        for r in range(lo, hi):
            for p in range(offsets[r, t], offsets[r, t + 1]):
                j = indices[p]
                v = values[p]
                if touched[j] == 0:
                    touched[j] = 1
                    touched_list[base + count] = j
                    count += 1
                for c in range(m0):
                    g0[j, c] += v * d0[r, c]
    else:
        for j in range(bounds[t], bounds[t + 1]):
            if touched[j] == 0:
                touched[j] = 1
                touched_list[base + count] = j
                count += 1
        for r in range(lo, hi):
            x_row = x[order[start + r]]
            for j in range(bounds[t], bounds[t + 1]):
                v = x_row[j]
                for c in range(m0):
                    g0[j, c] += v * d0[r, c]
    n_touched[t] = count
    for i in range(1, n_layers):
        g = grad_w[i]
        a = acts[i - 1]
        d = deltas[i]
        k, m = g.shape
        for j in range(k * t // n_blocks, k * (t + 1) // n_blocks):
            r = lo
            while r + 4 <= hi:  # four rows per pass over g[j]
                v0, v1, v2, v3 = a[r, j], a[r + 1, j], a[r + 2, j], a[r + 3, j]
                for c in range(m):
                    g[j, c] += ((v0 * d[r, c] + v1 * d[r + 1, c])
                                + (v2 * d[r + 2, c] + v3 * d[r + 3, c]))
                r += 4
            for rr in range(r, hi):
                v = a[rr, j]
                for c in range(m):
                    g[j, c] += v * d[rr, c]
    for i in range(n_layers):
        gb = grad_b[i]
        d = deltas[i]
        m = gb.shape[0]
        for c in range(m * t // n_blocks, m * (t + 1) // n_blocks):
            total = gb[c]  # summed locally: neighbouring columns belong to other blocks
            for r in range(lo, hi):
                total += d[r, c]
            gb[c] = total


@jit
def _update_block(t, n_blocks, n_layers, weights, biases, grad_w, grad_b, lr,
                  bounds, touched, touched_list, n_touched, weights_finite):
    """Phase 3, block t: ``param -= lr * grad`` on block t, then zero the gradient.

    Zeroing here keeps every gradient buffer zero between steps, so phase 2
    can accumulate into it. First-layer rows nobody touched have a zero
    gradient, so skipping them changes nothing. ``weights_finite[t]`` is set
    to whether block t's new weights are all finite (the rest did not change).
    """
    w0 = weights[0]
    g0 = grad_w[0]
    base = bounds[t]
    poison = w0.dtype.type(0)  # stays 0 unless some new weight is inf or NaN
    for u in range(n_touched[t]):
        j = touched_list[base + u]
        for c in range(w0.shape[1]):
            w0[j, c] -= lr * g0[j, c]
            g0[j, c] = 0
            poison += w0[j, c] * 0
        touched[j] = 0
    n_touched[t] = 0
    for i in range(1, n_layers):
        w = weights[i]
        g = grad_w[i]
        k, m = w.shape
        for j in range(k * t // n_blocks, k * (t + 1) // n_blocks):
            for c in range(m):
                w[j, c] -= lr * g[j, c]
                g[j, c] = 0
                poison += w[j, c] * 0
    weights_finite[t] = 1 if poison == 0 else 0
    for i in range(n_layers):
        b = biases[i]
        gb = grad_b[i]
        m = b.shape[0]
        for c in range(m * t // n_blocks, m * (t + 1) // n_blocks):
            b[c] -= lr * gb[c]
            gb[c] = 0


@jit
def _learn_block(t, n_blocks, lo, hi, n_layers, weights, biases, acts, deltas, grad_w, grad_b,
                 indices, values, offsets, bounds, touched, touched_list, n_touched,
                 deltas_finite, x, order, start, update, lr, weights_finite):
    """Phase 2 for tile rows lo..hi, then phase 3 if ``update`` (after the last tile).

    Both touch only block t's weights, so one thread can run them back to back.
    """
    _accumulate_block(t, n_blocks, lo, hi, n_layers, acts, deltas, grad_w, grad_b,
                      indices, values, offsets, bounds, touched, touched_list, n_touched,
                      deltas_finite, x, order, start)
    if update:
        _update_block(t, n_blocks, n_layers, weights, biases, grad_w, grad_b, lr,
                      bounds, touched, touched_list, n_touched, weights_finite)


@jit
def _update_one_row(n_layers, weights, biases, acts, deltas, lr, x_row, indices, values, lo, hi,
                    deltas_finite, weights_finite):
    """Phases 2 and 3 fused for a batch of one row (batch row 0): no gradient buffers.

    With one row the gradient of w is an outer product, so ``w -= lr * grad``
    can be applied element by element as it is computed: the same products,
    rounded the same way, in one pass instead of three. The row's nonzero
    inputs are ``indices/values[lo:hi]``, read while the deltas are finite.
    """
    poison = weights[0].dtype.type(0)  # stays 0 unless some new weight is inf or NaN
    w0 = weights[0]
    d0 = deltas[0][0]
    m0 = w0.shape[1]
    if deltas_finite:
        for p in range(lo, hi):
            j = indices[p]
            v = values[p]
            for c in range(m0):
                w0[j, c] -= lr * (v * d0[c])
                poison += w0[j, c] * 0
    else:
        for j in range(w0.shape[0]):
            v = x_row[j]
            for c in range(m0):
                w0[j, c] -= lr * (v * d0[c])
                poison += w0[j, c] * 0
    for i in range(1, n_layers):
        w = weights[i]
        a = acts[i - 1][0]
        d = deltas[i][0]
        k, m = w.shape
        for j in range(k):
            v = a[j]
            for c in range(m):
                w[j, c] -= lr * (v * d[c])
                poison += w[j, c] * 0
    for i in range(n_layers):
        b = biases[i]
        d = deltas[i][0]
        for c in range(b.shape[0]):
            b[c] -= lr * d[c]
    weights_finite[0] = 1 if poison == 0 else 0


@jit
def _zero_gradients(n_layers, grad_w, grad_b):
    for i in range(n_layers):
        grad_w[i][:] = 0
        grad_b[i][:] = 0


# --- training: the epoch loop, on one thread or over threads ------------------------------
#
# The two drivers below are the same text except that the parallel one runs
# each phase's blocks with prange, and the serial one has a fused path for
# batches of one row. They are separate functions, not one compiled twice,
# because Numba's disk cache does not tell parallel code from serial code.
# The serial one exists because waking threads three times per step costs
# more than a small batch's work.

@jit
def _train_epoch_serial(n_layers, weights, biases, inputs, y, order, batch_size, lr,
                        hidden, output, ws, scratch):
    """The epoch loop of `train_epoch` on the calling thread: see `_train_epoch_parallel`."""
    x, indptr, indices, values = inputs
    zs, acts, deltas, grad_w, grad_b = ws
    (offsets, bounds, row_loss, row_hit, row_finite,
     touched, touched_list, n_touched, weights_finite) = scratch
    dtype = row_loss.dtype.type
    step = dtype(lr)
    tile = offsets.shape[0]
    n_blocks = bounds.shape[0] - 1
    _zero_gradients(n_layers, grad_w, grad_b)
    skip_zeros = _weights_finite(n_layers, weights)
    loss_sum = 0.0
    n_correct = 0
    n_steps = 0
    n = order.shape[0]
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        scale = dtype(1.0 / m)
        loss = dtype(0)
        hits = 0
        if m == 1:
            row = order[start]
            _rows_forward_backward(0, 1, start, n_layers, weights, biases,
                                   x, indptr, indices, values, y, order,
                                   hidden, output, scale, zs, acts, deltas,
                                   offsets, bounds, skip_zeros,
                                   row_loss, row_hit, row_finite)
            loss = row_loss[0]
            if not np.isfinite(loss):
                break
            _update_one_row(n_layers, weights, biases, acts, deltas, step, x[row], indices,
                            values, indptr[row], indptr[row + 1], row_finite[0] == 1,
                            weights_finite)
            skip_zeros = skip_zeros and weights_finite[0] == 1
            loss_sum += loss
            n_correct += row_hit[0]
            n_steps += 1
            continue
        for lo in range(0, m, tile):
            hi = min(m, lo + tile)
            rows = hi - lo
            for t in range(n_blocks):
                _rows_forward_backward(rows * t // n_blocks, rows * (t + 1) // n_blocks,
                                       start + lo, n_layers, weights, biases,
                                       x, indptr, indices, values, y, order,
                                       hidden, output, scale, zs, acts, deltas,
                                       offsets, bounds, skip_zeros,
                                       row_loss, row_hit, row_finite)
            deltas_finite = True
            for s in range(rows):
                loss += row_loss[s]
                hits += row_hit[s]
                deltas_finite = deltas_finite and row_finite[s] == 1
            if not np.isfinite(loss):  # row losses are >= 0: the batch's is not finite
                break
            for t in range(n_blocks):
                _learn_block(t, n_blocks, 0, rows, n_layers, weights, biases, acts, deltas,
                             grad_w, grad_b, indices, values, offsets, bounds, touched,
                             touched_list, n_touched, deltas_finite, x, order, start + lo,
                             hi == m, step, weights_finite)
        if not np.isfinite(loss):
            break
        for t in range(n_blocks):
            skip_zeros = skip_zeros and weights_finite[t] == 1
        loss_sum += loss
        n_correct += hits
        n_steps += 1
    return loss_sum, n_correct, n_steps


@jit(parallel=True)
def _train_epoch_parallel(n_layers, weights, biases, inputs, y, order, batch_size, lr,
                          hidden, output, ws, scratch):
    """The epoch loop of `train_epoch`, each phase split into blocks over threads.

    ``inputs`` holds the arrays of a `PreparedInputs` (x, indptr, indices, values).
    For each batch, for each tile of at most ``len(offsets)`` rows: phase 1 (rows
    split over blocks), then, unless the batch loss so far (summed in the
    arrays' dtype, like the reference) is not finite, phase 2 (weights split
    over blocks) and after the last tile phase 3 in the same threaded loop.
    ``len(bounds) - 1`` is the number of blocks. Zero inputs
    are skipped while the weights (forward) and deltas (gradient) are finite.
    """
    x, indptr, indices, values = inputs
    zs, acts, deltas, grad_w, grad_b = ws
    (offsets, bounds, row_loss, row_hit, row_finite,
     touched, touched_list, n_touched, weights_finite) = scratch
    dtype = row_loss.dtype.type
    step = dtype(lr)
    tile = offsets.shape[0]
    n_blocks = bounds.shape[0] - 1
    _zero_gradients(n_layers, grad_w, grad_b)
    skip_zeros = _weights_finite(n_layers, weights)
    loss_sum = 0.0
    n_correct = 0
    n_steps = 0
    n = order.shape[0]
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        scale = dtype(1.0 / m)
        loss = dtype(0)
        hits = 0
        for lo in range(0, m, tile):
            hi = min(m, lo + tile)
            rows = hi - lo
            for t in prange(n_blocks):
                _rows_forward_backward(rows * t // n_blocks, rows * (t + 1) // n_blocks,
                                       start + lo, n_layers, weights, biases,
                                       x, indptr, indices, values, y, order,
                                       hidden, output, scale, zs, acts, deltas,
                                       offsets, bounds, skip_zeros,
                                       row_loss, row_hit, row_finite)
            deltas_finite = True
            for s in range(rows):
                loss += row_loss[s]
                hits += row_hit[s]
                deltas_finite = deltas_finite and row_finite[s] == 1
            if not np.isfinite(loss):  # row losses are >= 0: the batch's is not finite
                break
            for t in prange(n_blocks):
                _learn_block(t, n_blocks, 0, rows, n_layers, weights, biases, acts, deltas,
                             grad_w, grad_b, indices, values, offsets, bounds, touched,
                             touched_list, n_touched, deltas_finite, x, order, start + lo,
                             hi == m, step, weights_finite)
        if not np.isfinite(loss):
            break
        for t in range(n_blocks):
            skip_zeros = skip_zeros and weights_finite[t] == 1
        loss_sum += loss
        n_correct += hits
        n_steps += 1
    return loss_sum, n_correct, n_steps


# --- the Python side: checks, padding, scratch ------------------------------------------

def _check_layers(weights, biases, x):
    """Number of layers, after checking every parameter is a C-contiguous array of x's dtype."""
    for arr in tuple(weights) + tuple(biases):
        if arr.dtype != x.dtype or not arr.flags.c_contiguous:
            raise ValueError(
                f"numba backend: parameters must be C-contiguous {x.dtype} arrays "
                f"(got {arr.dtype}, c_contiguous={arr.flags.c_contiguous})"
            )
    return len(weights)


def _pad(n_layers, *per_layer):
    """Each per-layer sequence as a tuple padded with empty arrays to the slot count."""
    slots = max(n_layers, LAYER_SLOTS)
    padded = []
    for arrays in per_layer:
        arrays = tuple(arrays)
        filler = np.zeros((0,) * arrays[0].ndim, arrays[0].dtype)
        padded.append(arrays + (filler,) * (slots - len(arrays)))
    return padded


def _input_bounds(n_in, n_blocks):
    """Split ``n_in`` input units into ``n_blocks`` contiguous blocks."""
    return np.array([n_in * t // n_blocks for t in range(n_blocks + 1)], dtype=np.int64)


def _scratch(tile, n_in, n_blocks, dtype):
    """The training loop's own buffers, beyond the caller's `Workspace`."""
    return (
        np.empty((tile, n_blocks + 1), np.int64),  # offsets: where each block's nonzero
                                                   # inputs start in indices/values
        _input_bounds(n_in, n_blocks),             # bounds: input units of each block
        np.empty(tile, dtype),                     # row_loss
        np.empty(tile, np.int64),                  # row_hit
        np.empty(tile, np.uint8),                  # row_finite: first-layer delta finite
        np.zeros(n_in, np.uint8),                  # touched: first-layer rows in this batch
        np.empty(n_in, np.int64),                  # touched_list
        np.zeros(n_blocks, np.int64),              # n_touched, per block
        np.empty(n_blocks, np.uint8),              # weights_finite, per block
    )


def prepare_inputs(x) -> PreparedInputs:
    """The inputs in the form `train_epoch` takes, built once before training.

    Returns a `kernels.common.PreparedInputs`: x as a C-contiguous array and
    the CSR arrays of its nonzero entries, found by two compiled passes over x
    (full MNIST: about 9 million nonzeros). `train_epoch` reads each row's
    nonzero inputs from them instead of searching the row again every epoch.
    Call it once per data set and pass its result as ``x`` to every
    `train_epoch` of the run. A `PreparedInputs` is returned as it is.
    (The NumPy twin returns x unchanged.)
    """
    if isinstance(x, PreparedInputs):
        return x
    x = np.ascontiguousarray(x)
    if x.ndim != 2:
        raise ValueError(f"numba backend: inputs must be a 2-D array, got {x.ndim}-D")
    # The arrays are NumPy's, not allocated in compiled code: NumPy asks Linux for
    # huge pages for big arrays, which spares the TLB when rows are read in random order.
    indptr = np.empty(x.shape[0] + 1, np.int64)
    _count_nonzeros(x, indptr)
    nnz = int(indptr[-1])
    indices = np.empty(nnz + 1, np.int32)
    values = np.empty(nnz + 1, x.dtype)
    _gather_nonzeros(x, indices, values)
    return PreparedInputs(x, indptr, indices[:nnz], values[:nnz])


def _check_prepared(inputs: PreparedInputs):
    """Raise ValueError unless ``inputs`` has the layout `prepare_inputs` builds."""
    x, indptr, indices, values = inputs
    ok = (isinstance(x, np.ndarray) and x.ndim == 2 and x.flags.c_contiguous
          and isinstance(indptr, np.ndarray) and indptr.dtype == np.int64
          and indptr.shape == (x.shape[0] + 1,)
          and isinstance(indices, np.ndarray) and indices.dtype == np.int32
          and isinstance(values, np.ndarray) and values.dtype == x.dtype
          and indices.ndim == values.ndim == 1 and indices.shape == values.shape
          and indices.flags.c_contiguous and values.flags.c_contiguous
          and int(indptr[-1]) == indices.shape[0])
    if not ok:
        raise ValueError("numba backend: the prepared inputs are not in the layout "
                         "prepare_inputs builds; pass the result of prepare_inputs(x)")


def train_epoch(weights, biases, x, y, order, batch_size, lr, hidden, output, ws: Workspace):
    """Run gradient-descent steps over the rows ``x[order]`` in batches.

    Parameters
    ----------
    weights, biases : tuples of (k, m) and (m,) arrays, updated in place.
    x : the inputs as returned by `prepare_inputs` (N rows of n_in). A plain
        (N, n_in) array is accepted too and prepared on every call, which
        costs a pass over all of it: prepare once when calling repeatedly.
    y : (N, n_out) one-hot (or 0/1) targets, of the inputs' dtype.
    order : (n,) int64 row indices in visiting order; the last batch may be short.
    batch_size : rows per step. lr : learning rate.
    hidden, output : activation codes. ws : buffers from `allocate_workspace`
    (``ws.x`` and ``ws.y`` stay unused: rows are read from x and y directly).

    Returns
    -------
    (loss_sum, n_correct, n_steps) : the summed loss and correct count of the
    batches completed before the update (forward pass before each step), and
    the number of steps taken. Training stops early, before updating, at the
    first batch whose loss is not finite: then ``n_steps`` is that batch's index.
    """
    inputs = prepare_inputs(x)
    _check_prepared(inputs)
    x = inputs.x
    n_layers = _check_layers(weights, biases, x)
    if y.dtype != x.dtype:
        raise ValueError(f"numba backend: y must have x's dtype {x.dtype}, got {y.dtype}")
    # Contiguous copies only if needed, so that one compiled signature serves.
    y = np.ascontiguousarray(y)
    order = np.ascontiguousarray(order, dtype=np.int64)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    rows = max(1, min(batch_size, order.shape[0]))
    threads = numba.get_num_threads()
    parallel = threads > 1 and rows >= PARALLEL_MIN_BATCH
    run = _train_epoch_parallel if parallel else _train_epoch_serial
    scratch = _scratch(min(rows, TILE_ROWS), x.shape[1], threads if parallel else 1, x.dtype)
    weights, biases, zs, acts, deltas, grad_w, grad_b = _pad(
        n_layers, weights, biases, ws.z, ws.a, ws.delta, ws.grad_w, ws.grad_b)
    loss_sum, n_correct, n_steps = run(
        n_layers, weights, biases, (x, inputs.indptr, inputs.indices, inputs.values), y, order,
        batch_size, float(lr), int(hidden), int(output), (zs, acts, deltas, grad_w, grad_b),
        scratch)
    return float(loss_sum), int(n_correct), int(n_steps)


# --- compilation ---------------------------------------------------------------------------

_warmed_up = False


def is_compiled() -> bool:
    """True once `warmup` has run in this process: no JIT pause is left."""
    return _warmed_up


def warmup() -> WarmupInfo:
    """Compile, or load from the disk cache, every kernel for float32 and float64.

    Runs each public kernel, `prepare_inputs` and both training drivers (one
    thread and threaded) on tiny arrays. Activation codes and layer counts up to
    `LAYER_SLOTS` are runtime values, so these signatures cover every network
    of that depth. The first run in a fresh environment compiles; later
    processes load the machine code from ``__pycache__``. Calling it again
    in the same process is cheap.
    """
    global _warmed_up
    compiled_before, loaded_before = compile_stats()
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        _warm_kernels(rng, dtype)
        _warm_training(rng, dtype)
    seconds = time.perf_counter() - t0
    compiled_after, loaded_after = compile_stats()
    _warmed_up = True
    return WarmupInfo(seconds, compiled_after - compiled_before, loaded_after - loaded_before)


def _warm_kernels(rng, dtype):
    x = rng.random((3, 4)).astype(dtype)
    w = rng.random((4, 2)).astype(dtype)
    b = np.zeros(2, dtype)
    z = np.zeros((3, 2), dtype)
    out = np.zeros((3, 2), dtype)
    y = np.eye(2, dtype=dtype)[[0, 1, 0]]
    affine_forward(x, w, b, z)
    affine_backward_params(x, z, w.copy(), b.copy())
    affine_backward_input(z, w, x.copy())
    for kernel in (sigmoid, relu, softmax):
        kernel(z, out)
    sigmoid_backward(out, z, out)
    relu_backward(z, z.copy(), out)
    softmax_cross_entropy(z, y)
    sigmoid_cross_entropy(z[:, :1], y[:, :1])
    output_delta(out, y, 0.5, out)
    count_correct(out, y)
    sgd_update(w, w.copy(), 0.1)
    sgd_update(b, b.copy(), 0.1)


def _warm_training(rng, dtype):
    sizes = (5, 3, 2)
    n_layers = len(sizes) - 1
    weights = tuple(rng.standard_normal((k, m)).astype(dtype) for k, m in zip(sizes, sizes[1:]))
    biases = tuple(np.zeros(m, dtype) for m in sizes[1:])
    n = 4
    x = rng.random((n, sizes[0])).astype(dtype)
    x[rng.random(x.shape) < 0.5] = 0
    y = np.eye(2, dtype=dtype)[rng.integers(0, 2, n)]
    order = np.arange(n, dtype=np.int64)
    inputs = prepare_inputs(x)
    ws = allocate_workspace(sizes, n, dtype)
    padded = _pad(n_layers, weights, biases, ws.z, ws.a, ws.delta, ws.grad_w, ws.grad_b)
    # Both drivers, whatever the thread count now (--threads may change it later).
    for run in (_train_epoch_serial, _train_epoch_parallel):
        run(n_layers, padded[0], padded[1], tuple(inputs), y, order, n, 0.0, SIGMOID, SOFTMAX,
            tuple(padded[2:]), _scratch(n, sizes[0], 2, dtype))
    forward(weights, biases, x, RELU, SOFTMAX, ws.z, ws.a)
