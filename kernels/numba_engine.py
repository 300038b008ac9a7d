"""The compiled epoch loop: the phases of ``numba_phases.py`` run batch after batch.

`train_steps` is the one driver, for one thread and for several. It runs
each phase's blocks through `rows_threaded` (phase 1) and `learn_threaded`
(phases 2 and 3), the only functions compiled with ``parallel=True``: each
is a ``prange`` over blocks of one compiled phase function of
``numba_phases.py`` (`rows_block`, `learn_block`), called, not inlined: a
``prange`` body is analysed by Numba's parallel passes, which cost far more
on a big inlined body than on a call.
With one block (and Numba's pool set to one thread by the caller) a region
runs on the calling thread and wakes nobody.

What compiling costs, and why the code is shaped so: Numba compiles each
function on its own, and LLVM optimises a callee again inside every compiled
caller, so compile time grows with the depth of the call tree and with each
extra signature. So calls pass typed values, never literals such as ``0`` or
``True`` (Numba compiles a callee once more for each literal it is called
with), the ``prange`` bodies only call the phase functions (Numba's parallel
passes are slow on big bodies), and the forward pass of prediction calls
`rows_threaded` from Python, without the rest of the loop. Inlining the
small helpers at Numba's level (``inline="always"``) was measured to cost
more than it saves (53 s against 40 s of CPU for a float32 loop).

A batch of one row takes a fused path (`gradient_update_row`): phases 2 and
3 in one pass, no gradient buffers, no threads.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit
from .numba_phases import gradient_update_row, learn_block, rows_block, weights_finite


@jit(parallel=True)
def rows_threaded(n_blocks, rows, train, start, n_layers, weights, biases, x, indptr, indices,
                  values, xb, y, order, hidden, output, scale, zs, acts, deltas, skip_zeros,
                  row_loss, row_hit, row_finite):
    """Phase 1 with tile rows 0..rows split into ``n_blocks`` blocks over threads."""
    for t in prange(n_blocks):
        t = np.int64(t)  # prange counts in uint64; one signature needs int64
        rows_block(rows * t // n_blocks, rows * (t + 1) // n_blocks, rows, train, start, n_layers,
                   weights, biases, x, indptr, indices, values, xb, y, order, hidden, output,
                   scale, zs, acts, deltas, skip_zeros, row_loss, row_hit, row_finite)


@jit(parallel=True, internal=True)
def learn_threaded(n_blocks, rows, start, update, n_layers, weights, biases, indptr,
                   indices, values, xb, order, acts, deltas, grad_w, grad_b, lr, bounds, col_start,
                   csc_rows, csc_values, touched, touched_list, n_touched, skip_zeros,
                   new_weights_finite):
    """Phases 2 and 3 with the weights split into ``n_blocks`` blocks over threads."""
    for t in prange(n_blocks):
        learn_block(np.int64(t), n_blocks, rows, start, update, n_layers, weights, biases,
                    indptr, indices, values, xb, order, acts, deltas, grad_w, grad_b, lr, bounds,
                    col_start, csc_rows, csc_values, touched, touched_list, n_touched,
                    skip_zeros, new_weights_finite)


@jit
def train_steps(n_blocks, sparse_first, n_layers, weights, biases, x, indptr, indices, values,
                xb, y, order,
                batch_size, lr, hidden, output, zs, acts, deltas, grad_w, grad_b,
                bounds, row_loss, row_hit, row_finite, col_start, csc_rows, csc_values,
                touched, touched_list, n_touched, new_weights_finite):
    """Gradient-descent steps over the rows ``order`` in batches; see ``train_epoch``.

    Each batch is walked in tiles of ``len(row_loss)`` rows, so that even a
    full-batch step works in cache-sized pieces: phase 1 on the tile, then
    (unless the batch's loss so far is not finite) phase 2, and after the
    batch's last tile phase 3. Returns ``(loss_sum, n_correct, n_steps)``.
    The loss of a batch is summed in the arrays' dtype, like the reference's.
    """
    # Numba compiles a callee again for each constant it is called with
    # (0, True, ...), so the calls below pass typed values, not literals.
    one, yes = np.int64(1), np.bool_(True)
    dtype = row_loss.dtype.type
    step = dtype(lr)
    tile = row_loss.shape[0]
    for i in range(n_layers):
        grad_w[i][:] = 0
        grad_b[i][:] = 0
    skip_zeros = sparse_first and weights_finite(n_layers, weights)
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
            rows = min(m, lo + tile) - lo
            rows_threaded(n_blocks if m > 1 else one, rows, yes, start + lo, n_layers, weights,
                          biases, x, indptr, indices, values, xb, y, order, hidden, output, scale,
                          zs, acts, deltas, skip_zeros, row_loss, row_hit, row_finite)
            deltas_finite = yes
            for s in range(rows):
                loss += row_loss[s]
                hits += row_hit[s]
                deltas_finite = deltas_finite and row_finite[s] == 1
            if not np.isfinite(loss):  # row losses are >= 0: the batch's is not finite
                break
            if m == 1:
                row = order[start]
                now_finite = gradient_update_row(
                    n_layers, weights, biases, acts, deltas, step, x[row], indices, values,
                    indptr[row], indptr[row + 1], sparse_first and deltas_finite)
                skip_zeros = skip_zeros and now_finite
                continue
            last_tile = lo + rows == m
            learn_threaded(n_blocks, rows, start + lo, last_tile, n_layers, weights, biases,
                           indptr, indices, values, xb, order, acts, deltas, grad_w, grad_b,
                           step, bounds, col_start, csc_rows, csc_values, touched, touched_list,
                           n_touched, sparse_first and deltas_finite, new_weights_finite)
            if last_tile:
                for t in range(n_blocks):
                    skip_zeros = skip_zeros and new_weights_finite[t] == 1
        if not np.isfinite(loss):
            break
        loss_sum += loss
        n_correct += hits
        n_steps += 1
    return loss_sum, n_correct, n_steps
