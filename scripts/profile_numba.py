"""Where an epoch of the numba backend spends its time, phase by phase and kernel by kernel.

    FASTNN_DATA_DIR=../shared/mnist python scripts/profile_numba.py [--threads 2]
        [--batch 1 64 256 full] [--repeat 3]

Three measurements per batch size, on full MNIST, 784-128-64-10 ReLU, float32,
after ``prepare_inputs`` (timed once and reported on its own: it is a one-time
cost per data set, as in ``fit``):

1. ``train_epoch`` as users call it (wall clock) on the prepared inputs, and
   the compiled epoch driver called directly: the difference is the Python
   side (argument checks, padding, scratch allocation), paid once per epoch.
2. An instrumented copy of the epoch driver: the same phase functions of
   ``kernels/numba_backend.py`` in the same order, with the CPU's cycle
   counter (``llvm.readcyclecounter``, i.e. rdtsc) read around every
   threaded region and inside every block. Region wall time minus the
   slowest block's work is fork/join and waiting; the slowest block minus
   the mean block is load imbalance.
3. The pieces of phase 1 (forward, loss, deltas) timed separately in
   compiled single-thread loops over the epoch's rows on the same weights;
   their shares split phase 1's measured work into GEMM-like parts (the
   sparse first layer, the dense layers, the input gradients) and
   elementwise parts (activations, softmax, loss, deltas, ReLU backward,
   locating the row's prepared nonzero inputs).

"GEMM-like" is multiply-add work over weight matrices; "elementwise" is
O(m) work per row. This script reads private functions of the numba
backend, so it follows that file: if a phase function is renamed it fails
loudly rather than measuring something else.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numba
import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import cgutils, types
from numba.extending import intrinsic

import kernels.numba_backend as nb
from fastnn import mnist
from fastnn.data import scale_pixels
from fastnn.network import Network
from fastnn.threads import limit_threads
from kernels.common import RELU, SOFTMAX, allocate_workspace


@intrinsic
def _cycles(typingctx):
    """The CPU's cycle counter (rdtsc on x86), readable from compiled code."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@numba.njit
def _now():
    return _cycles()


def cycles_per_second() -> float:
    """Calibrate the cycle counter against perf_counter over 0.2 s."""
    c0, t0 = _now(), time.perf_counter()
    time.sleep(0.2)
    c1, t1 = _now(), time.perf_counter()
    return (c1 - c0) / (t1 - t0)


# Slots of the clock array filled by the instrumented drivers (cycles).
P1_WALL, P1_MAX, P1_SUM, GLUE, P23_WALL, P2_MAX, P2_SUM, P3_MAX, P3_SUM, ONE_ROW = range(10)


@numba.njit(parallel=True)
def _profiled_parallel(n_layers, weights, biases, inputs, y, order, batch_size, lr,
                       hidden, output, ws, scratch, clock):
    """`_train_epoch_parallel` with cycle counters; `_learn_block` split into its two calls."""
    x, indptr, indices, values = inputs
    zs, acts, deltas, grad_w, grad_b = ws
    (offsets, bounds, row_loss, row_hit, row_finite,
     touched, touched_list, n_touched, weights_finite) = scratch
    dtype = row_loss.dtype.type
    step = dtype(lr)
    tile = offsets.shape[0]
    n_blocks = bounds.shape[0] - 1
    work = np.zeros(n_blocks, np.int64)
    work2 = np.zeros(n_blocks, np.int64)
    work3 = np.zeros(n_blocks, np.int64)
    nb._zero_gradients(n_layers, grad_w, grad_b)
    skip_zeros = nb._weights_finite(n_layers, weights)
    n = order.shape[0]
    n_steps = 0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        scale = dtype(1.0 / m)
        loss = dtype(0)
        for lo in range(0, m, tile):
            hi = min(m, lo + tile)
            rows = hi - lo
            c0 = _cycles()
            for t in prange(n_blocks):
                b0 = _cycles()
                nb._rows_forward_backward(rows * t // n_blocks, rows * (t + 1) // n_blocks,
                                          start + lo, n_layers, weights, biases,
                                          x, indptr, indices, values, y, order,
                                          hidden, output, scale, zs, acts, deltas,
                                          offsets, bounds, skip_zeros,
                                          row_loss, row_hit, row_finite)
                work[t] = _cycles() - b0
            c1 = _cycles()
            clock[P1_WALL] += c1 - c0
            clock[P1_MAX] += work.max()
            clock[P1_SUM] += work.sum()
            deltas_finite = True
            for s in range(rows):
                loss += row_loss[s]
                deltas_finite = deltas_finite and row_finite[s] == 1
            c2 = _cycles()
            clock[GLUE] += c2 - c1
            for t in prange(n_blocks):
                b0 = _cycles()
                nb._accumulate_block(t, n_blocks, 0, rows, n_layers, acts, deltas, grad_w,
                                     grad_b, indices, values, offsets, bounds, touched,
                                     touched_list, n_touched, deltas_finite, x, order, start + lo)
                b1 = _cycles()
                if hi == m:
                    nb._update_block(t, n_blocks, n_layers, weights, biases, grad_w, grad_b,
                                     step, bounds, touched, touched_list, n_touched,
                                     weights_finite)
                work2[t] = b1 - b0
                work3[t] = _cycles() - b1
            c3 = _cycles()
            clock[P23_WALL] += c3 - c2
            clock[P2_MAX] += work2.max()
            clock[P2_SUM] += work2.sum()
            clock[P3_MAX] += work3.max()
            clock[P3_SUM] += work3.sum()
        for t in range(n_blocks):
            skip_zeros = skip_zeros and weights_finite[t] == 1
        n_steps += 1
    return n_steps


@numba.njit
def _profiled_one_row(n_layers, weights, biases, inputs, y, order, lr, hidden, output, ws,
                      scratch, clock):
    """The batch-1 path of `_train_epoch_serial` with cycle counters."""
    x, indptr, indices, values = inputs
    zs, acts, deltas, grad_w, grad_b = ws
    (offsets, bounds, row_loss, row_hit, row_finite,
     touched, touched_list, n_touched, weights_finite) = scratch
    dtype = row_loss.dtype.type
    step = dtype(lr)
    skip_zeros = nb._weights_finite(n_layers, weights)
    for start in range(order.shape[0]):
        row = order[start]
        c0 = _cycles()
        nb._rows_forward_backward(0, 1, start, n_layers, weights, biases,
                                  x, indptr, indices, values, y, order,
                                  hidden, output, dtype(1.0), zs, acts, deltas,
                                  offsets, bounds, skip_zeros,
                                  row_loss, row_hit, row_finite)
        c1 = _cycles()
        nb._update_one_row(n_layers, weights, biases, acts, deltas, step, x[row], indices,
                           values, indptr[row], indptr[row + 1], row_finite[0] == 1,
                           weights_finite)
        c2 = _cycles()
        clock[P1_SUM] += c1 - c0
        clock[ONE_ROW] += c2 - c1
        skip_zeros = skip_zeros and weights_finite[0] == 1
    return order.shape[0]


@numba.njit(parallel=True)
def _empty_regions(n_regions, n_blocks, sink):
    """``n_regions`` threaded regions with (almost) no work: the cost of a fork/join."""
    for _ in range(n_regions):
        for t in prange(n_blocks):
            sink[t] += 1
    return sink.sum()


def fork_join_seconds(threads, n_regions=20000):
    """Seconds per empty ``prange`` region over ``threads`` blocks (median of 5 runs)."""
    sink = np.zeros(threads, np.int64)
    with limit_threads(threads):
        _empty_regions(10, threads, sink)
        times = []
        for _ in range(5):
            started = time.perf_counter()
            _empty_regions(n_regions, threads, sink)
            times.append((time.perf_counter() - started) / n_regions)
    return statistics.median(times)


# --- phase 1, piece by piece (one thread, frozen weights) ---------------------------------

@numba.njit
def _pieces(weights, biases, inputs, y, order, zs, acts, deltas, offsets, bounds, clock):
    """Cycles of each piece of phase 1 over every row of ``order`` (784-h1-h2-10, ReLU)."""
    x, indptr, indices, values = inputs
    n_layers = 3
    for start in range(order.shape[0]):
        row = order[start]
        c0 = _cycles()
        lo, hi = indptr[row], indptr[row + 1]
        nb._block_offsets(indices, lo, hi, bounds, offsets)
        c1 = _cycles()
        nb._sparse_affine_row(indices, values, lo, hi, weights[0], biases[0], zs[0][0])
        c2 = _cycles()
        nb._activate_row(RELU, zs[0][0], acts[0][0])
        c3 = _cycles()
        for i in range(1, n_layers):
            nb._affine_row(acts[i - 1][0], weights[i], biases[i], zs[i][0])
        c4 = _cycles()
        for i in range(1, n_layers):
            nb._activate_row(SOFTMAX if i == n_layers - 1 else RELU, zs[i][0], acts[i][0])
        loss = nb._softmax_cross_entropy_row(zs[2][0], y[row])
        hit = nb._correct_row(acts[2][0], y[row])
        nb._output_delta_row(acts[2][0], y[row], np.float32(1.0), deltas[2][0])
        c5 = _cycles()
        for i in range(n_layers - 1, 0, -1):
            nb._backward_input_row(deltas[i][0], weights[i], deltas[i - 1][0])
        c6 = _cycles()
        for i in range(n_layers - 1, 0, -1):
            nb._relu_backward_row(zs[i - 1][0], deltas[i - 1][0], deltas[i - 1][0])
        fin = nb._all_finite(deltas[0][0])
        c7 = _cycles()
        clock[0] += c1 - c0   # locate the row's prepared nonzero inputs
        clock[1] += c2 - c1   # sparse first layer (GEMM-like)
        clock[2] += (c3 - c2) + (c5 - c4)  # activations, softmax, loss, hit, output delta
        clock[3] += c4 - c3   # dense layers 2.. (GEMM-like)
        clock[4] += c6 - c5   # input gradients (GEMM-like)
        clock[5] += c7 - c6   # ReLU backward, finiteness check
        clock[6] += offsets[1] + hit + fin + (loss > 0)  # uses every result: none optimised away
    return 0


PIECES = ("locate prepared row", "layer-1 sparse forward", "activations/softmax/loss/delta",
          "dense forward (layers 2-3)", "input gradients", "ReLU backward/finite check")
GEMM_PIECES = {"layer-1 sparse forward", "dense forward (layers 2-3)", "input gradients"}


def piece_shares(net, inputs, y, order):
    sizes = net.sizes
    zs = tuple(np.zeros((1, m), np.float32) for m in sizes[1:])
    acts = tuple(np.zeros((1, m), np.float32) for m in sizes[1:])
    deltas = tuple(np.zeros((1, m), np.float32) for m in sizes[1:])
    offsets = np.empty(2, np.int64)
    bounds = np.array([0, sizes[0]], np.int64)
    clock = np.zeros(8, np.int64)
    args = (tuple(net.weights), tuple(net.biases), tuple(inputs), y, order, zs, acts, deltas,
            offsets, bounds)
    _pieces(*args, clock)  # compile and warm
    clock[:] = 0
    _pieces(*args, clock)
    total = clock[:6].sum()
    return {name: clock[i] / total for i, name in enumerate(PIECES)}


# --- driving -------------------------------------------------------------------------------

def load():
    data = mnist.load("mnist", os.environ.get("FASTNN_DATA_DIR"), download=False)
    x = scale_pixels(data.train_images, np.float32)
    y = np.eye(10, dtype=np.float32)[data.train_labels]
    return x, y


def profile(inputs, y, batch, threads, repeat, hz):
    """Timings of one batch size on ``inputs`` (from ``nb.prepare_inputs``, made once)."""
    n = inputs.x.shape[0]
    batch = n if batch == "full" else int(batch)
    net = Network((784, 128, 64, 10), seed=0)
    order = np.random.default_rng(0).permutation(n).astype(np.int64)
    lr = np.float32(0.01 if batch == 1 else 0.1)
    ws = allocate_workspace(net.sizes, min(batch, n), np.float32)
    wall, driver, clocks = [], [], []
    with limit_threads(threads):
        parallel = threads > 1 and batch >= nb.PARALLEL_MIN_BATCH
        rows = max(1, min(batch, n))
        for r in range(repeat + 1):  # round 0 compiles and warms
            weights = [w.copy() for w in net.weights]
            biases = [b.copy() for b in net.biases]
            started = time.perf_counter()
            nb.train_epoch(tuple(weights), tuple(biases), inputs, y, order, batch, lr, RELU,
                           SOFTMAX, ws)
            wall.append(time.perf_counter() - started)

            weights = [w.copy() for w in net.weights]
            biases = [b.copy() for b in net.biases]
            scratch = nb._scratch(min(rows, nb.TILE_ROWS), 784, threads if parallel else 1,
                                  np.float32)
            padded = nb._pad(3, weights, biases, ws.z, ws.a, ws.delta, ws.grad_w, ws.grad_b)
            run = nb._train_epoch_parallel if parallel else nb._train_epoch_serial
            started = time.perf_counter()
            run(3, padded[0], padded[1], tuple(inputs), y, order, batch, float(lr), RELU,
                SOFTMAX, tuple(padded[2:]), scratch)
            driver.append(time.perf_counter() - started)

            weights = [w.copy() for w in net.weights]
            biases = [b.copy() for b in net.biases]
            scratch = nb._scratch(min(rows, nb.TILE_ROWS), 784, threads if parallel else 1,
                                  np.float32)
            padded = nb._pad(3, weights, biases, ws.z, ws.a, ws.delta, ws.grad_w, ws.grad_b)
            clock = np.zeros(10, np.int64)
            if batch == 1:
                _profiled_one_row(3, padded[0], padded[1], tuple(inputs), y, order, float(lr),
                                  RELU, SOFTMAX, tuple(padded[2:]), scratch, clock)
            else:
                _profiled_parallel(3, padded[0], padded[1], tuple(inputs), y, order, batch,
                                   float(lr), RELU, SOFTMAX, tuple(padded[2:]), scratch, clock)
            clocks.append(clock / hz)
    wall, driver, clocks = wall[1:], driver[1:], clocks[1:]
    best = int(np.argmin([c.sum() for c in clocks]))
    return {"batch": batch, "threads": threads if parallel else 1, "wall": min(wall),
            "wall_median": statistics.median(wall), "driver": min(driver),
            "clock": clocks[best]}


def report(prof, shares):
    c = prof["clock"]
    print(f"\n== batch {prof['batch']}, {prof['threads']} thread(s) ==")
    print(f"train_epoch wall {prof['wall']:.4f}s (median {prof['wall_median']:.4f}); compiled "
          f"driver alone {prof['driver']:.4f}s; Python side {prof['wall'] - prof['driver']:+.4f}s")
    gemm_share = sum(v for k, v in shares.items() if k in GEMM_PIECES)
    if prof["batch"] == 1:
        p1, p23 = c[P1_SUM], c[ONE_ROW]
        total = p1 + p23
        print(f"instrumented total {total:.4f}s: phase 1 (forward, loss, deltas) {p1:.4f}s "
              f"({p1 / total:.0%}); fused gradient+update {p23:.4f}s ({p23 / total:.0%})")
        parts = {"GEMM-like": p1 * gemm_share + p23, "elementwise": p1 * (1 - gemm_share)}
    else:
        total = c[P1_WALL] + c[GLUE] + c[P23_WALL]
        n_blocks = prof["threads"]
        p1_work = c[P1_SUM] / n_blocks
        p2_work = c[P2_SUM] / n_blocks
        p3_work = c[P3_SUM] / n_blocks
        sync = total - c[GLUE] - (p1_work + p2_work + p3_work)
        print(f"instrumented total {total:.4f}s (wall of the threaded regions + serial glue)")
        for name, value in (("phase 1: forward, loss, deltas (mean block)", p1_work),
                            ("phase 2: gradient accumulation (mean block)", p2_work),
                            ("phase 3: SGD update + zero gradients (mean block)", p3_work),
                            ("serial glue between regions", c[GLUE]),
                            ("fork/join, waiting, imbalance", sync)):
            print(f"  {name:<50} {value:8.4f}s {value / total:6.1%}")
        imbalance = (c[P1_MAX] - p1_work) + (c[P2_MAX] + c[P3_MAX] - p2_work - p3_work)
        print(f"  (of which load imbalance, slowest block - mean block: {imbalance:.4f}s)")
        parts = {"GEMM-like": p1_work * gemm_share + p2_work,
                 "elementwise": p1_work * (1 - gemm_share) + p3_work,
                 "sync + glue": sync + c[GLUE]}
    parts["Python"] = max(0.0, prof["wall"] - prof["driver"])
    whole = sum(parts.values())
    print("  split: " + ", ".join(f"{k} {v:.4f}s ({v / whole:.0%})" for k, v in parts.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", nargs="+", default=["1", "64", "256", "full"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    hz = cycles_per_second()
    print(f"cycle counter: {hz / 1e9:.3f} GHz; 1-min load average {os.getloadavg()[0]:.2f}")
    x, y = load()
    nb.warmup()
    with limit_threads(args.threads):
        started = time.perf_counter()
        inputs = nb.prepare_inputs(x)
        prepare_seconds = time.perf_counter() - started
    print(f"prepare_inputs (once per data set, not in any timing below): {prepare_seconds:.4f}s, "
          f"{inputs.values.shape[0]:,} nonzero inputs ({inputs.values.shape[0] / x.size:.1%})")
    net = Network((784, 128, 64, 10), seed=0)
    order = np.random.default_rng(0).permutation(x.shape[0]).astype(np.int64)
    shares = piece_shares(net, inputs, y, order)
    print("phase 1 pieces (one thread, initial weights): "
          + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    if args.threads > 1:
        per_region = fork_join_seconds(args.threads)
        print(f"an empty threaded region (fork/join over {args.threads} threads): "
              f"{per_region * 1e6:.1f} us; a batch-64 epoch has 2 per step, 1,876 in all "
              f"({2 * 938 * per_region:.3f}s)")
    for batch in args.batch:
        report(profile(inputs, y, batch, args.threads, args.repeat, hz), shares)


if __name__ == "__main__":
    main()
