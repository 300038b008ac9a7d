"""The phases of one training step, compiled, each named after its reference step.

``numpy_backend.train_epoch`` takes a step in this order, and so does the
engine in ``numba_engine.py``:

1. per block of rows: the forward pass (`first_layer_block`, then
   `forward_block` for the rest), then `deltas_block`: `loss_block` (loss,
   hits and the output delta), then `backward_block` (every hidden layer's
   delta);
2. per block of weights: `gradient_block` (``grad_w += a.T @ delta``);
3. per block of weights: `update_block` (``param -= lr * grad``).

A first layer of at most ``NARROW_LANES`` units reads its inputs in other
loops: its phases 1 and 2 begin with `narrow_first_layer_block` and
`narrow_gradient_block` instead, which take the same arguments, so a run
compiles only the variant its network uses.

Phase 1 splits a tile of rows over threads: a row's forward pass and deltas
need only that row and the fixed weights. Phases 2 and 3 split the weights
instead: thread t owns first-layer inputs ``bounds[t]:bounds[t+1]`` and the
same share of every other layer's rows, so no two threads write one element
and every gradient is summed over the rows in the same order, whatever the
number of threads.

Tile row r is data row ``order[start + r]``; its activations and deltas are
row r of the workspace buffers. The inputs arrive as the arrays of a
`kernels.common.PreparedInputs`: the first layer reads each row's nonzero
entries from the CSR arrays ``indptr, indices, values``, and reads the dense
``x`` only where zeros may not be skipped (an inf/NaN factor, where the
reference computes ``0 * inf = nan``).

Per-layer arguments are tuples padded to a fixed length (see
``numba_engine.LAYER_SLOTS``), with ``n_layers`` the real count.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .common import SIGMOID, SOFTMAX
from .numba_affine import (NARROW_LANES, add_bias, add_matmul_at, all_finite, copy_row, matmul,
                           matmul_wt, narrow_affine_row, narrow_rows_end, sparse_affine_row,
                           uses_blas)
from .numba_elementwise import (activate_row, correct_row, output_delta_row,
                                relu_backward_row, sigmoid_backward_row,
                                sigmoid_cross_entropy_row, softmax_cross_entropy_row)


@jit(internal=True)
def weights_finite(n_layers, weights):
    """True when every weight is finite: only then may zero inputs be skipped."""
    for i in range(n_layers):
        w = weights[i]
        for j in range(w.shape[0]):
            if not all_finite(w[j]):
                return False
    return True


@jit(first_class=True)
def first_layer_block(lo, hi, tile_rows, start, w, b, x, indptr, indices, values, xb, order, z,
                      skip_zeros):
    """The first layer's ``z[lo:hi] = x @ w + b`` for tile rows lo..hi: phase 1 begins.

    With ``skip_zeros`` it reads each row's nonzero inputs (`sparse_affine_row`);
    without (a first layer of 17-31 units, or a non-finite weight), it
    multiplies the dense rows (`dense_first_layer`). A first layer of at most
    ``NARROW_LANES`` units runs `narrow_first_layer_block` instead.
    """
    if skip_zeros:
        for r in range(lo, hi):
            row = order[start + r]
            sparse_affine_row(indices, values, indptr[row], indptr[row + 1], w, b, z[r])
    else:
        dense_first_layer(lo, hi, tile_rows, start, w, b, x, xb, order, z)


@jit(first_class=True)
def narrow_first_layer_block(lo, hi, tile_rows, start, w, b, x, indptr, indices, values, xb,
                             order, z, skip_zeros):
    """`first_layer_block` for a first layer of at most ``NARROW_LANES`` units.

    With ``skip_zeros`` each row's nonzero inputs go to sixteen running sums
    (`narrow_affine_row`). Its own unit, so that a run compiles only the
    variant its first layer uses (a second variant in one unit cost a
    training compile about a second of CPU).
    """
    if skip_zeros:
        safe_end = narrow_rows_end(*w.shape)
        for r in range(lo, hi):
            row = order[start + r]
            narrow_affine_row(indices, values, indptr[row], indptr[row + 1], w, b, z[r],
                              safe_end)
    else:
        dense_first_layer(lo, hi, tile_rows, start, w, b, x, xb, order, z)


@jit(internal=True)
def dense_first_layer(lo, hi, tile_rows, start, w, b, x, xb, order, z):
    """``z[lo:hi] = x @ w + b`` over dense rows, gathered into ``xb[lo:hi]`` (phase 2 reads them)."""
    for r in range(lo, hi):
        copy_row(x[order[start + r]], xb[r])
    matmul(xb, w, z, lo, hi, uses_blas(tile_rows, w))
    add_bias(z, b, lo, hi)


@jit(first_class=True)
def forward_block(lo, hi, tile_rows, n_layers, weights, biases, hidden, output, zs, acts):
    """The rest of the forward pass of tile rows lo..hi, after `first_layer_block`.

    Fills ``acts[0][lo:hi]`` from ``zs[0]``, then ``zs[i]`` and ``acts[i]``
    of every later layer (`matmul`); the last ``acts`` holds the
    probabilities. The first layer is a unit of its own so that two
    processes can compile the forward pass, each half of it.
    """
    last = n_layers - 1
    for i in range(n_layers):
        if i > 0:
            matmul(acts[i - 1], weights[i], zs[i], lo, hi, uses_blas(tile_rows, weights[i]))
            add_bias(zs[i], biases[i], lo, hi)
        code = output if i == last else hidden
        for r in range(lo, hi):
            activate_row(code, zs[i][r], acts[i][r])


@jit(internal=True)
def loss_block(lo, hi, start, n_layers, y, order, output, scale, zs, acts, deltas,
               row_loss, row_hit):
    """Loss, hit and output delta of tile rows lo..hi.

    ``row_loss[r]`` is the row's loss (from the logits, in the arrays'
    dtype), ``row_hit[r]`` 1 if it was classified right, and the last delta
    is ``scale * (probs - y)``.
    """
    last = n_layers - 1
    for r in range(lo, hi):
        row = order[start + r]
        if output == SOFTMAX:
            row_loss[r] = softmax_cross_entropy_row(zs[last][r], y[row])
        else:
            row_loss[r] = sigmoid_cross_entropy_row(zs[last][r], y[row])
        row_hit[r] = 1 if correct_row(acts[last][r], y[row]) else 0
        output_delta_row(acts[last][r], y[row], scale, deltas[last][r])


@jit(internal=True)
def backward_block(lo, hi, tile_rows, n_layers, weights, hidden, zs, acts, deltas, row_finite):
    """Every hidden layer's delta for tile rows lo..hi, from the output delta back.

    ``deltas[i-1] = (deltas[i] @ w[i].T) * activation'``. The first layer's
    input gradient is never needed, so never computed. ``row_finite[r]``
    tells whether row r's first-layer delta is finite.
    """
    for i in range(n_layers - 1, 0, -1):
        matmul_wt(deltas[i], weights[i], deltas[i - 1], lo, hi, uses_blas(tile_rows, weights[i]))
        for r in range(lo, hi):
            if hidden == SIGMOID:
                sigmoid_backward_row(acts[i - 1][r], deltas[i - 1][r], deltas[i - 1][r])
            else:
                relu_backward_row(zs[i - 1][r], deltas[i - 1][r], deltas[i - 1][r])
    for r in range(lo, hi):
        row_finite[r] = 1 if all_finite(deltas[0][r]) else 0


@jit(first_class=True)
def deltas_block(lo, hi, tile_rows, start, n_layers, weights, y, order, hidden, output, scale,
                 zs, acts, deltas, row_loss, row_hit, row_finite):
    """The rest of phase 1 for tile rows lo..hi, after `forward_block`: loss, then deltas."""
    loss_block(lo, hi, start, n_layers, y, order, output, scale, zs, acts, deltas,
               row_loss, row_hit)
    backward_block(lo, hi, tile_rows, n_layers, weights, hidden, zs, acts, deltas, row_finite)


@jit(internal=True)
def _first_at_least(indices, lo, hi, bound):
    """First position p in lo..hi with ``indices[p] >= bound`` (indices ascend in a row)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < bound:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit(internal=True)
def sort_by_column(rows, start, indptr, indices, values, order, b0, b1, tile_base, ends,
                   csc_rows, csc_values):
    """The tile rows' entries in columns b0..b1, sorted by column, to ``csc_rows/csc_values``.

    A counting sort, which keeps each column's rows in tile order. The
    entries go after ``tile_base`` and the tile's entries in columns before
    b0; afterwards column b0 + u holds positions ``ends[u]:ends[u + 1]``
    (``ends`` has b1 - b0 + 2 elements).
    """
    width = b1 - b0
    for u in range(1, width + 2):
        ends[u] = 0
    # Positions are unsigned in the two passes over the entries: indexing
    # then needs no negative-index wraparound (a fifth of their instructions).
    one, two = np.uint64(1), np.uint64(2)
    before = 0  # the tile's entries in columns before b0
    for r in range(rows):  # count each column's entries
        row = order[start + r]
        first = _first_at_least(indices, indptr[row], indptr[row + 1], b0)
        before += first - indptr[row]
        p = np.uint64(first)
        end = np.uint64(indptr[row + 1])
        while p < end and indices[p] < b1:
            ends[np.uint64(indices[p] - b0) + two] += 1
            p += one
    ends[0] = ends[1] = tile_base + before
    for u in range(1, width + 1):  # column b0 + u - 1 starts at ends[u]
        ends[u + 1] += ends[u]
    for r in range(rows):  # place them; ends[u] moves on to the end of column b0 + u - 1
        row = order[start + r]
        p = np.uint64(_first_at_least(indices, indptr[row], indptr[row + 1], b0))
        end = np.uint64(indptr[row + 1])
        while p < end and indices[p] < b1:
            u = np.uint64(indices[p] - b0) + one
            q = np.uint64(ends[u])
            csc_rows[q] = r
            csc_values[q] = values[p]
            ends[u] = q + one
            p += one


@jit(internal=True)
def first_layer_gradient(t, rows, start, indptr, indices, values, order, d0, g0, bounds,
                         col_start, csc_rows, csc_values, tile_slot, sorted_slots, touched,
                         touched_list, n_touched):
    """``g0 += x.T @ d0`` on block t's inputs, over the tile rows' nonzero inputs only.

    The tile's entries in block t are sorted by column first
    (`sort_by_column`), so that each touched row of g0 is read and written
    once per tile and gets four rows' products per pass, instead of once per
    entry. With ``tile_slot`` -1 they are sorted into scratch on every call.
    A full batch, whose tiles are the same rows step after step, keeps them
    instead (``numba_columns.py``, which describes the slots): tile k sorts
    into slot k of ``col_start`` and the kept ``csc_rows/csc_values`` once,
    marks ``sorted_slots[k * n_blocks + t]``, and later steps only read
    them. The g0 rows block t touches for the first time are appended to its
    part of ``touched_list``.
    """
    b0, b1 = bounds[t], bounds[t + 1]
    n_blocks = bounds.shape[0] - 1
    slot_size = g0.shape[0] + 2 * n_blocks + 1  # numba_columns.slot_length
    slot = max(tile_slot, 0) * slot_size
    ends = col_start[slot + b0 + 2 * t:slot + b1 + 2 * t + 2]
    in_slot = tile_slot >= 0
    # The only call of sort_by_column here, so that it is compiled in once.
    if not in_slot or sorted_slots[tile_slot * n_blocks + t] == 0:
        tile_base = col_start[slot + slot_size - 1] if in_slot else 0
        sort_by_column(rows, start, indptr, indices, values, order, b0, b1, tile_base, ends,
                       csc_rows, csc_values)
        if in_slot:
            sorted_slots[tile_slot * n_blocks + t] = 1
    m = g0.shape[1]
    count = n_touched[t]  # local: the counts of all blocks share a cache line
    # Positions and rows unsigned, as in the sort: 8.9 against 10.2 ns per
    # entry for this loop alone (784-128, AMD Zen 3).
    one, two, three, four = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4)
    q = np.uint64(ends[0])
    for u in range(b1 - b0):
        end = np.uint64(ends[u + 1])
        if q == end:
            continue
        j = b0 + u
        if touched[j] == 0:
            touched[j] = 1
            touched_list[b0 + count] = j
            count += 1
        g = g0[j]
        while q + four <= end:
            r0, r1 = np.uint64(csc_rows[q]), np.uint64(csc_rows[q + one])
            r2, r3 = np.uint64(csc_rows[q + two]), np.uint64(csc_rows[q + three])
            v0, v1 = csc_values[q], csc_values[q + one]
            v2, v3 = csc_values[q + two], csc_values[q + three]
            for c in range(m):
                g[c] += (v0 * d0[r0, c] + v1 * d0[r1, c]) + (v2 * d0[r2, c] + v3 * d0[r3, c])
            q += four
        while q < end:
            r0 = np.uint64(csc_rows[q])
            v0 = csc_values[q]
            for c in range(m):
                g[c] += v0 * d0[r0, c]
            q += one
    n_touched[t] = count


@jit(internal=True, reassociate=False)
def narrow_first_layer_gradient(t, rows, start, indptr, indices, values, order, d0,
                                narrow_grad, bounds):
    """``g0 += x.T @ d0`` on block t's inputs for a first layer of m <= 16 units, in 16 lanes.

    ``narrow_grad[j, c]`` (n_in, NARROW_LANES) holds ``g0[j, c]``: each
    nonzero input adds ``value * d0[r, 0:16]`` to a row of 16, two 8-lane
    FMAs (the sixteen named deltas are packed into registers, as the sums
    of `narrow_affine_row` are). Lanes m..15 read the next rows of d0 and
    collect products nobody uses; `update_block` clears them. Rows are
    added in order, so each element's sum does not depend on the blocks.
    """
    b0, b1 = bounds[t], bounds[t + 1]
    m = d0.shape[1]
    safe_rows = narrow_rows_end(d0.shape[0], m)
    for r in range(rows):
        row = order[start + r]
        p1 = indptr[row + 1]
        p = _first_at_least(indices, indptr[row], p1, b0)
        if r >= safe_rows:  # its 16 lanes would read past the end of d0
            while p < p1 and indices[p] < b1:
                for c in range(m):
                    narrow_grad[indices[p], c] += values[p] * d0[r, c]
                p += 1
            continue
        d_0, d_1, d_2, d_3 = d0[r, 0], d0[r, 1], d0[r, 2], d0[r, 3]
        d_4, d_5, d_6, d_7 = d0[r, 4], d0[r, 5], d0[r, 6], d0[r, 7]
        d_8, d_9, d_10, d_11 = d0[r, 8], d0[r, 9], d0[r, 10], d0[r, 11]
        d_12, d_13, d_14, d_15 = d0[r, 12], d0[r, 13], d0[r, 14], d0[r, 15]
        q = np.uint64(p)  # unsigned: indexing needs no negative-index wraparound
        end = np.uint64(p1)
        g = narrow_grad
        while q < end and indices[q] < b1:
            j = np.uint64(indices[q])
            v = values[q]
            g[j, 0] += v * d_0
            g[j, 1] += v * d_1
            g[j, 2] += v * d_2
            g[j, 3] += v * d_3
            g[j, 4] += v * d_4
            g[j, 5] += v * d_5
            g[j, 6] += v * d_6
            g[j, 7] += v * d_7
            g[j, 8] += v * d_8
            g[j, 9] += v * d_9
            g[j, 10] += v * d_10
            g[j, 11] += v * d_11
            g[j, 12] += v * d_12
            g[j, 13] += v * d_13
            g[j, 14] += v * d_14
            g[j, 15] += v * d_15
            q += np.uint64(1)


@jit(internal=True)
def touch_block(t, bounds, touched, touched_list, n_touched):
    """List every first-layer row of block t as touched (a dense or narrow gradient)."""
    base = bounds[t]
    count = n_touched[t]
    for j in range(bounds[t], bounds[t + 1]):
        if touched[j] == 0:
            touched[j] = 1
            touched_list[base + count] = j
            count += 1
    n_touched[t] = count


@jit(first_class=True)
def gradient_block(t, n_blocks, rows, start, n_layers, indptr, indices, values, xb, order,
                   acts, deltas, grad_w, grad_b, bounds, col_start, csc_rows, csc_values,
                   tile_slot, sorted_slots, narrow_grad, touched, touched_list, n_touched,
                   skip_zeros):
    """Phase 2, block t: add tile rows 0..rows to block t of every gradient.

    The first layer adds ``value * delta`` over each row's nonzero inputs in
    block t (`first_layer_gradient`), and lists the grad_w rows it touched
    in ``touched_list[bounds[t]:bounds[t] + n_touched[t]]`` so the update
    visits only those. Without ``skip_zeros`` (a first layer of 17-31
    units, or an inf or NaN first-layer delta) every input counts
    (`dense_first_layer_gradient`). The other layers: `hidden_layers_gradient`.
    A first layer of at most ``NARROW_LANES`` units runs
    `narrow_gradient_block` instead.
    """
    if skip_zeros:
        first_layer_gradient(t, rows, start, indptr, indices, values, order, deltas[0],
                             grad_w[0], bounds, col_start, csc_rows, csc_values, tile_slot,
                             sorted_slots, touched, touched_list, n_touched)
    else:
        dense_first_layer_gradient(t, rows, xb, deltas[0], grad_w[0], bounds, touched,
                                   touched_list, n_touched)
    hidden_layers_gradient(t, n_blocks, rows, n_layers, acts, deltas, grad_w, grad_b)


@jit(first_class=True)
def narrow_gradient_block(t, n_blocks, rows, start, n_layers, indptr, indices, values, xb,
                          order, acts, deltas, grad_w, grad_b, bounds, col_start, csc_rows,
                          csc_values, tile_slot, sorted_slots, narrow_grad, touched,
                          touched_list, n_touched, skip_zeros):
    """`gradient_block` for a first layer of at most ``NARROW_LANES`` units.

    With ``skip_zeros`` the first layer's gradient goes to its 16-lane copy,
    ``narrow_grad`` (`narrow_first_layer_gradient`), which `update_block`
    folds in.
    """
    if skip_zeros:
        touch_block(t, bounds, touched, touched_list, n_touched)
        narrow_first_layer_gradient(t, rows, start, indptr, indices, values, order, deltas[0],
                                    narrow_grad, bounds)
    else:
        dense_first_layer_gradient(t, rows, xb, deltas[0], grad_w[0], bounds, touched,
                                   touched_list, n_touched)
    hidden_layers_gradient(t, n_blocks, rows, n_layers, acts, deltas, grad_w, grad_b)


@jit(internal=True)
def dense_first_layer_gradient(t, rows, xb, d0, g0, bounds, touched, touched_list, n_touched):
    """Block t of ``g0 += xb.T @ d0`` over the dense rows phase 1 gathered into ``xb``."""
    touch_block(t, bounds, touched, touched_list, n_touched)
    add_matmul_at(xb, d0, 0, rows, g0, bounds[t], bounds[t + 1], uses_blas(rows, g0))


@jit(internal=True)
def hidden_layers_gradient(t, n_blocks, rows, n_layers, acts, deltas, grad_w, grad_b):
    """Block t of every other layer's ``grad_w += a.T @ delta`` (`add_matmul_at`), and of
    every bias gradient; block t of a layer is its share of the rows (weights) or columns
    (biases)."""
    for i in range(1, n_layers):
        k = grad_w[i].shape[0]
        add_matmul_at(acts[i - 1], deltas[i], 0, rows, grad_w[i],
                      k * t // n_blocks, k * (t + 1) // n_blocks, uses_blas(rows, grad_w[i]))
    for i in range(n_layers):
        gb = grad_b[i]
        d = deltas[i]
        m = gb.shape[0]
        for c in range(m * t // n_blocks, m * (t + 1) // n_blocks):
            total = gb[c]  # summed locally: neighbouring columns belong to other blocks
            for r in range(rows):
                total += d[r, c]
            gb[c] = total


@jit(first_class=True)
def update_block(t, n_blocks, n_layers, weights, biases, grad_w, grad_b, lr,
                 bounds, touched, touched_list, n_touched, new_weights_finite, narrow_grad):
    """Phase 3, block t: ``param -= lr * grad`` on block t, then zero the gradient.

    Zeroing here keeps every gradient buffer zero between steps, so phase 2
    can accumulate into it. First-layer rows nobody touched have a zero
    gradient, so skipping them changes nothing. A first layer of at most
    ``NARROW_LANES`` units has its gradient in ``grad_w[0]`` or in
    ``narrow_grad`` (see `gradient_block`), the other being zero: the second
    is added to the first, exactly, before the update. ``new_weights_finite[t]`` becomes whether
    block t's weights are all finite now (the rest did not change).
    """
    w0 = weights[0]
    g0 = grad_w[0]
    base = bounds[t]
    narrow = w0.shape[1] <= NARROW_LANES
    # Stays 0 unless some new weight is inf or NaN. A zero of the weights'
    # dtype: ``w * 0`` with the literal 0 would be float64, and the loops
    # would convert every float32 weight and run at half the vector width.
    zero = w0.dtype.type(0)
    poison = zero
    for u in range(n_touched[t]):
        j = touched_list[base + u]
        if narrow:  # fold the 16-lane copy in (exact: one of the two is zero), clear it
            for c in range(w0.shape[1]):
                g0[j, c] += narrow_grad[j, c]
            for c in range(NARROW_LANES):
                narrow_grad[j, c] = 0
        row_poison = zero  # per row: see gradient_update_row
        for c in range(w0.shape[1]):
            w0[j, c] -= lr * g0[j, c]
            g0[j, c] = 0
            row_poison += w0[j, c] * zero
        poison += row_poison
        touched[j] = 0
    n_touched[t] = 0
    for i in range(1, n_layers):
        w = weights[i]
        g = grad_w[i]
        k, m = w.shape
        for j in range(k * t // n_blocks, k * (t + 1) // n_blocks):
            row_poison = zero
            for c in range(m):
                w[j, c] -= lr * g[j, c]
                g[j, c] = 0
                row_poison += w[j, c] * zero
            poison += row_poison
    new_weights_finite[t] = 1 if poison == 0 else 0
    for i in range(n_layers):
        b = biases[i]
        gb = grad_b[i]
        m = b.shape[0]
        for c in range(m * t // n_blocks, m * (t + 1) // n_blocks):
            b[c] -= lr * gb[c]
            gb[c] = 0


@jit(first_class=True)
def gradient_update_row(n_layers, weights, biases, acts, deltas, lr, x_row, indices, values,
                        p0, p1, skip_zeros):
    """Phases 2 and 3 fused for a batch of one row (tile row 0); returns new weights finite.

    With one row a weight gradient is an outer product, so ``w -= lr * grad``
    is applied element by element as it is computed: the same products,
    rounded the same way, in one pass and without gradient buffers. The
    row's nonzero inputs are ``indices/values[p0:p1]``, read while
    ``skip_zeros`` (a finite first-layer delta), else the dense x_row.
    """
    zero = weights[0].dtype.type(0)  # of the weights' dtype: see update_block
    # Stays 0 unless some new weight is inf or NaN. Checked row by row, each
    # row's check starting from zero: one running check across rows made each
    # row's vector loop wait for the previous row's horizontal sum (a chain of
    # about 30 cycles per row of weights; a batch-1 epoch took 10-12% longer).
    poison = zero
    w0 = weights[0]
    d0 = deltas[0][0]
    m0 = w0.shape[1]
    if skip_zeros:
        for p in range(p0, p1):
            j = indices[p]
            v = values[p]
            row_poison = zero
            for c in range(m0):
                w0[j, c] -= lr * (v * d0[c])
                row_poison += w0[j, c] * zero
            poison += row_poison
    else:
        for j in range(w0.shape[0]):
            v = x_row[j]
            row_poison = zero
            for c in range(m0):
                w0[j, c] -= lr * (v * d0[c])
                row_poison += w0[j, c] * zero
            poison += row_poison
    for i in range(1, n_layers):
        w = weights[i]
        a = acts[i - 1][0]
        d = deltas[i][0]
        k, m = w.shape
        for j in range(k):
            v = a[j]
            row_poison = zero
            for c in range(m):
                w[j, c] -= lr * (v * d[c])
                row_poison += w[j, c] * zero
            poison += row_poison
    for i in range(n_layers):
        b = biases[i]
        d = deltas[i][0]
        for c in range(b.shape[0]):
            b[c] -= lr * d[c]
    return poison == 0
