"""Where an epoch of the numba backend spends its time, phase by phase.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTNN_DATA_DIR=../shared/mnist \\
        python scripts/profile_numba.py [--layers 128 64] [--hidden sigmoid] [--batch 64]
        [--threads 2] [--repeat 3] [--digits 0 1]

On full MNIST (60,000 rows, float32; with ``--digits A B`` the rows of
those two digits and one sigmoid output, as C4), after `prepare_inputs`:

1. ``train_epoch`` as users call it (min and median of ``--repeat`` epochs).
2. The same steps driven from Python one phase at a time, through the
   engine's own `step_block` (``kernels/numba_engine.py``), its blocks
   split over threads by a ``prange`` here: phase 1 forward only
   (``train=False``), phase 1 whole (forward, loss, deltas), and phases 2+3
   (gradients, update). Each region is timed with
   ``perf_counter``; the cost of a call from Python is measured on an empty
   tile and subtracted. Shares are of the sum of the phases. A full batch
   is timed as training runs it after its first step, which sorts the
   inputs by column once for the steps after it.

It reads the engine's functions, so it follows them: if a phase is renamed
it fails loudly rather than measuring something else.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

from fastnn import mnist
from fastnn.data import scale_pixels
from fastnn.threads import limit_threads
from kernels import numba_backend as nb
from kernels.common import RELU, SIGMOID, SOFTMAX, allocate_workspace
from kernels.numba_columns import new_sorted_columns
from kernels.numba_engine import engine_units, step_block


@numba.njit(parallel=True, nogil=True)
def _forward(first_layer_fn, forward_fn, n_blocks, rows, start, n_layers, weights, biases, x,
             indptr, indices, values, xb, order, hidden, output, zs, acts, skip_zeros):
    """Phase 1's forward pass alone, split over threads as `_step` splits it."""
    for t in numba.prange(n_blocks):
        t = np.int64(t)
        lo, hi = rows * t // n_blocks, rows * (t + 1) // n_blocks
        first_layer_fn(lo, hi, rows, start, weights[0], biases[0], x, indptr, indices, values, xb,
                       order, zs[0], skip_zeros)
        forward_fn(lo, hi, rows, n_layers, weights, biases, hidden, output, zs, acts)


@numba.njit(parallel=True, nogil=True)
def _step(first_layer_fn, forward_fn, deltas_fn, gradient_fn, update_fn, learn, n_blocks, rows,
          start, update, n_layers, weights, biases, x, indptr, indices, values, xb, y, order,
          hidden, output, scale, lr, zs, acts, deltas, grad_w, grad_b, skip_zeros, row_loss,
          row_hit, row_finite, bounds, col_start, csc_rows, csc_values, tile_slot, sorted_slots,
          narrow_grad, touched, touched_list, n_touched, new_weights_finite):
    """A step's blocks (`step_block`: phase 1, or with ``learn`` phases 2 and 3) over threads."""
    for t in numba.prange(n_blocks):
        step_block(np.int64(t), first_layer_fn, forward_fn, deltas_fn, gradient_fn, update_fn,
                   learn, n_blocks, rows, start, update, n_layers, weights, biases, x, indptr,
                   indices, values, xb, y, order, hidden, output, scale, lr, zs, acts, deltas,
                   grad_w, grad_b, skip_zeros, row_loss, row_hit, row_finite, bounds, col_start,
                   csc_rows, csc_values, tile_slot, sorted_slots, narrow_grad, touched,
                   touched_list, n_touched, new_weights_finite)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--hidden", choices=["sigmoid", "relu"], default="sigmoid")
    parser.add_argument("--batch", default="64", help="rows per step, or 'full'")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--digits", type=int, nargs=2, metavar=("A", "B"),
                        help="a binary task, A against B (one sigmoid output), as C4")
    return parser.parse_args()


def main():
    args = parse_args()
    data = mnist.load("mnist", download=False)
    x = scale_pixels(data.train_images)
    if args.digits:
        keep = np.isin(data.train_labels, args.digits)
        x = x[keep]
        y = (data.train_labels[keep] == args.digits[1]).astype(np.float32)[:, None]
        output = SIGMOID
    else:
        y = np.eye(10, dtype=np.float32)[data.train_labels]
        output = SOFTMAX
    sizes = (784, *args.layers, y.shape[1])
    n = x.shape[0]
    batch = n if args.batch == "full" else int(args.batch)
    hidden = SIGMOID if args.hidden == "sigmoid" else RELU
    rng = np.random.default_rng(0)
    weights = tuple((rng.standard_normal((k, m)) / np.sqrt(k)).astype(np.float32)
                    for k, m in zip(sizes, sizes[1:]))
    biases = tuple(np.zeros(m, np.float32) for m in sizes[1:])
    order = rng.permutation(n)
    inputs = nb.prepare_inputs(x)
    ws = allocate_workspace(sizes, batch, np.float32)
    nb.warmup(np.float32, batch)
    print(f"{'-'.join(map(str, sizes))} {args.hidden}, batch {args.batch}, "
          f"{args.threads} thread(s), {n:,} rows, {inputs.values.size:,} nonzero inputs")

    with limit_threads(args.threads):
        epochs = []
        for _ in range(args.repeat):
            w, b = tuple(a.copy() for a in weights), tuple(a.copy() for a in biases)
            started = time.perf_counter()
            nb.train_epoch(w, b, inputs, y, order, batch, 0.05, hidden, output, ws)
            epochs.append(time.perf_counter() - started)
        print(f"train_epoch: min {min(epochs):.4f}s, median {statistics.median(epochs):.4f}s")
        phases = profile_phases(args, sizes, weights, biases, inputs, y, order, batch, hidden,
                                output, ws)
    total = sum(phases.values())
    for name, seconds in phases.items():
        print(f"  {name:<34} {seconds:.4f}s  {seconds / total:6.1%}")


def profile_phases(args, sizes, weights, biases, inputs, y, order, batch, hidden, output, ws):
    """Seconds in each phase over one epoch, the Python call cost taken out."""
    x, indptr, indices, values = inputs
    n_layers = len(sizes) - 1
    n_blocks = nb._blocks_for(batch)
    w, b, zs, acts, deltas, grad_w, grad_b = nb._pad(
        n_layers, tuple(a.copy() for a in weights), tuple(a.copy() for a in biases),
        ws.z, ws.a, ws.delta, ws.grad_w, ws.grad_b)
    tile = min(batch, nb.TILE_ROWS)
    row_loss, row_hit, row_finite = nb._row_scratch(tile, np.float32)
    col_start, csc_rows, csc_values, narrow_grad = nb._column_scratch(tile, 784, n_blocks,
                                                                      np.float32)
    bounds = np.array([784 * t // n_blocks for t in range(n_blocks + 1)], np.int64)
    # A full batch keeps its tiles' entries sorted by column, as train_epoch does
    # from its second epoch on; calls on an empty tile sort into scratch.
    scratch = col_start, csc_rows, csc_values, np.zeros(0, np.uint8)
    kept = new_sorted_columns(inputs, order, tile, n_blocks) if batch >= order.shape[0] else None
    touched, touched_list = np.zeros(784, np.uint8), np.zeros(784, np.int64)
    n_touched, finite = np.zeros(n_blocks, np.int64), np.ones(n_blocks, np.uint8)
    scale = np.float32(1 / batch)
    lr = np.float32(0.05)

    sparse = nb._sparse_first(weights)
    units = engine_units(np.float32, len(w), sizes[1])

    def step(learn, start, count, update):
        """One threaded region: phase 1, or with ``learn`` phases 2 and 3."""
        in_slot = kept is not None and count > 0
        columns, tile_slot = (kept, start // tile) if in_slot else (scratch, -1)
        _step(units.first_layer_block, units.forward_block, units.deltas_block,
              units.gradient_block, units.update_block, learn, n_blocks, count, start, update,
              n_layers, w, b, x, indptr, indices, values, ws.x, y, order, hidden, output, scale,
              lr, zs, acts, deltas, grad_w, grad_b, sparse, row_loss, row_hit, row_finite,
              bounds, *columns[:3], tile_slot, columns[3], narrow_grad, touched, touched_list,
              n_touched, finite)

    def rows(train, start, count):
        if not train:
            _forward(units.first_layer_block, units.forward_block, n_blocks, count, start,
                     n_layers, w, b, x, indptr, indices, values, ws.x, order, hidden, output, zs,
                     acts, sparse)
            return
        step(False, start, count, False)

    def learn(start, count, update):
        step(True, start, count, update)

    def timed(call, *arguments):
        started = time.perf_counter()
        call(*arguments)
        return time.perf_counter() - started

    tiles = [(start, min(tile, order.shape[0] - start))
             for start in range(0, order.shape[0], tile)]
    learn(0, 0, False)  # compiles the drivers above before anything is timed
    rows(True, 0, 0)
    empty = min(timed(rows, False, 0, 0) for _ in range(200))  # a call that does no work
    if kept is not None:  # the first step sorts the kept entries; time the steps after it
        for start, count in tiles:
            learn(start, count, False)
    seconds = {"phase 1: forward": 0.0, "phase 1: loss and deltas": 0.0,
               "phases 2+3: gradients and update": 0.0, "calls from Python (taken out)": 0.0}
    for start, count in tiles:
        forward = timed(rows, False, start, count) - empty
        whole = timed(rows, True, start, count) - empty
        seconds["phase 1: forward"] += forward
        seconds["phase 1: loss and deltas"] += max(0.0, whole - forward)
        last = (start + count) % batch == 0 or start + count == order.shape[0]
        seconds["phases 2+3: gradients and update"] += timed(learn, start, count, last) - empty
    seconds["calls from Python (taken out)"] = 3 * empty * len(tiles)
    return seconds


if __name__ == "__main__":
    main()
