"""The Numba backend: the reference kernels compiled, and a compiled training loop.

Read it beside ``numpy_backend.py``: the public names, signatures and
meanings are the same. The work is done in small modules, one job each:

``numba_elementwise``  activations, losses, output deltas, the update
``numba_affine``       products: BLAS for big blocks, loops for small ones,
                       the sparse first layer
``numba_inputs``       `prepare_inputs`: each row's nonzero pixels, found once
``numba_columns``      a full batch's pixels sorted by column, kept between steps
``numba_phases``       the phases of a step, named after the reference's
``numba_engine``       the epoch loop over those phases, on one thread or several
``numba_sync``         the barrier where the engine's threads meet between phases
``numba_compile``      compiling the engine's parts a run needs, on first use

This module is the Python side: it checks what callers pass (compiled code
has no bounds checks, so a mistake here would corrupt memory instead of
raising), pads per-layer tuples, allocates scratch and picks the thread
count. Kernels compile on first use, for the dtype a run uses, and are
cached on disk (``kernels/_jit.py``); `warmup` compiles what one run
needs (``numba_compile.py``), `compile_all` everything.

Results are bit-for-bit reproducible for a fixed thread count: every sum is
taken in a fixed order, no scratch is read before it is written, and the
float environment is the process's (see ``_jit.py``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from . import numba_compile
from ._jit import compile_stats, jit
from .common import RELU, PreparedInputs, WarmupInfo, Workspace, check_epoch_args
from .numba_affine import (NARROW_LANES, affine_backward_input, affine_backward_params,
                           affine_forward)
from .numba_columns import kept_sorted_columns, slot_length
from .numba_elementwise import (count_correct, output_delta, relu, relu_backward, sgd_update,
                                sigmoid, sigmoid_backward, sigmoid_cross_entropy, softmax,
                                softmax_cross_entropy)
from .numba_engine import (LAYER_SLOTS, engine_unit, engine_units, forward_rows, is_narrow,
                           train_steps, units_called)
from .numba_inputs import check_prepared, prepare_inputs
from .numba_phases import backward_block, gradient_block, narrow_gradient_block
from .numba_sync import new_sync

NAME = "numba"

__all__ = [
    "NAME", "affine_forward", "affine_backward_params", "affine_backward_input", "sigmoid",
    "sigmoid_backward", "relu", "relu_backward", "softmax", "softmax_cross_entropy",
    "sigmoid_cross_entropy", "output_delta", "count_correct", "sgd_update", "forward",
    "backward_deltas", "parameter_gradients", "prepare_inputs", "train_epoch", "warmup",
    "compile_all", "is_compiled", "is_cached", "compile_estimate",
]

#: Smallest batch whose steps are split over threads. Measured on 2 cores: from
#: 64 rows two threads pay; at 16-32 rows waking them costs more than they save.
PARALLEL_MIN_BATCH = 64

#: Rows of a batch processed together: big batches (up to the full data set)
#: are walked in tiles, so the per-row buffers stay cache-sized.
TILE_ROWS = 512

#: Narrowest wide first layer that reads only the nonzero pixels. First layers
#: of at most ``NARROW_LANES`` (16) units read them too, through the narrow
#: kernels (16 lanes in registers); from 17 to 31 units the first layer
#: multiplies dense rows through BLAS: a row of weights is too short for the
#: wide sparse loops to vectorise well, and BLAS over all pixels was measured
#: 3-7x faster than them (784-10-10 on AMD EPYC, Zen 3, before the narrow kernels).
SPARSE_MIN_WIDTH = 32


# --- checks, padding, scratch -------------------------------------------------------------

def _check_layers(weights, biases, dtype):
    """Number of layers, after checking every parameter is a C-contiguous array of ``dtype``."""
    for arr in tuple(weights) + tuple(biases):
        if not isinstance(arr, np.ndarray) or arr.dtype != dtype or not arr.flags.c_contiguous:
            got = getattr(arr, "dtype", type(arr).__name__)
            raise ValueError(f"numba backend: parameters must be C-contiguous {dtype} arrays "
                             f"(got {got})")
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


def _sparse_first(weights) -> bool:
    """Whether the first layer reads only nonzero inputs (see `SPARSE_MIN_WIDTH`)."""
    width = weights[0].shape[1]
    return width <= NARROW_LANES or width >= SPARSE_MIN_WIDTH


def _blocks_for(rows: int) -> int:
    """Blocks to split ``rows`` into: one per thread of Numba's pool, or 1 below `PARALLEL_MIN_BATCH`.

    The count follows the pool's size, which is fixed for the process, not the
    number of threads in use (``--threads``): the blocks, and with them every
    BLAS call's shape and every sum's order, are the same for any thread
    count, so results are too. Fewer threads than blocks take turns.
    """
    pool = numba.config.NUMBA_NUM_THREADS
    return pool if pool > 1 and rows >= PARALLEL_MIN_BATCH else 1


_blas_control = None  # a threadpoolctl controller, made on first use


@contextmanager
def _single_threaded_blas():
    """BLAS on one thread, for the duration.

    Each of the engine's threads calls BLAS for the products of its own
    block: a multi-threaded BLAS would oversubscribe the cores, and would
    split its sums differently with its thread count, which callers of
    `train_epoch` may have set to anything.
    """
    global _blas_control
    if _blas_control is None:
        _blas_control = ThreadpoolController()
    with _blas_control.limit(limits=1, user_api="blas"):
        yield


def _workers_for(n_blocks) -> int:
    """Threads to run ``n_blocks`` blocks on: those in use, at most one per block.

    The threads in use are Numba's setting (``numba.set_num_threads``, which
    ``--threads`` sets); the engine runs its blocks on threads of its own.
    """
    return min(n_blocks, numba.get_num_threads())


_worker_pools = {}  # n_workers -> the threads that run workers 1 .. n_workers - 1


def _on_workers(run, n_workers):
    """``run(worker)`` for workers 0 .. n_workers - 1 at once; returns worker 0's result.

    Worker 0 runs on this thread, the others on threads kept for the next
    call (starting a thread costs ~0.2 ms, and training calls this once per
    ~8,192 rows); ``run`` must release the GIL. The workers wait for each
    other, so each needs a thread of its own: the pool has one per worker
    it runs. All of them have returned when this does.
    """
    if n_workers == 1:
        return run(0)
    pool = _worker_pools.get(n_workers)
    if pool is None:
        pool = _worker_pools[n_workers] = ThreadPoolExecutor(
            n_workers - 1, thread_name_prefix="fastnn-worker")
    others = [pool.submit(run, worker) for worker in range(1, n_workers)]
    result = run(0)
    for other in others:
        other.result()
    return result


def _batches_in_storage_order(order, batch_size):
    """``order`` with the rows of each batch (its consecutive slices) in ascending order.

    A step's gradient is a sum over its batch's rows, in any order, and rows
    visited in storage order are read sequentially: a full batch of 784-10-10
    steps 35% faster than in a shuffled order (PyTorch and JAX visit a full
    batch in place too). Sorting every batch, not only a full one, keeps a
    step's result a function of its rows alone: an epoch stopped after k
    steps ends with the parameters of an epoch over its first k batches.
    Costs 0.4 ms per epoch of 60,000 rows.
    """
    if batch_size == 1:
        return order
    whole = order.shape[0] // batch_size * batch_size
    order = order.copy()
    order[:whole].reshape(-1, batch_size).sort(axis=1)
    order[whole:].sort()
    return order


#: Nonzero entries counted to split the first layer's inputs between blocks.
BOUNDS_SAMPLE = 1 << 18


def _input_bounds(indices, n_in, n_blocks):
    """Where phases 2 and 3 split the first layer's inputs: (n_blocks + 1,) int64.

    Block t owns inputs ``bounds[t]:bounds[t+1]``; phase 2's first-layer work
    is one product per nonzero entry, so the ranges hold about equal numbers
    of them, as counted in the first `BOUNDS_SAMPLE` entries (about 1,700
    MNIST rows). The top half of an MNIST image holds 47% of its nonzero
    pixels: split at the middle, one thread had 10% more work than the
    other and the other waited. Where each range ends changes no result:
    every gradient element is summed over the rows in the same order.
    """
    counts = np.cumsum(np.bincount(indices[:BOUNDS_SAMPLE], minlength=n_in))
    if counts.shape[0] == 0 or counts[-1] == 0:
        inner = [n_in * t // n_blocks for t in range(1, n_blocks)]
    else:
        inner = np.searchsorted(counts, counts[-1] * np.arange(1, n_blocks) / n_blocks) + 1
    return np.array([0, *np.minimum(inner, n_in), n_in], np.int64)


def _row_scratch(rows, dtype):
    """Per-row results of phase 1: loss, hit, first-layer delta finite."""
    return np.zeros(rows, dtype), np.zeros(rows, np.int64), np.ones(rows, np.uint8)


def _column_scratch(rows, n_in, n_blocks, dtype):
    """Room to sort a tile's first-layer entries by column: column ends, rows, values.

    Left uninitialised: `first_layer_gradient` writes the ends and reads only
    the entries it has written. The ends are one slot of ``numba_columns.py``'s
    layout (two per block more than the inputs, and where the tile's entries
    begin, unused here). Then the narrow first layer's gradient, 16
    lanes per input (``numba_phases.narrow_first_layer_gradient``), zeroed:
    the update clears what phase 2 adds.
    """
    return (np.empty(slot_length(n_in, n_blocks), np.int64), np.empty(rows * n_in, np.int32),
            np.empty(rows * n_in, dtype), np.zeros((n_in, NARROW_LANES), dtype))


#: ``sorted_slots`` of a run whose tiles sort their entries on every step.
_SORT_EVERY_STEP = np.zeros(0, np.uint8)


def _may_keep_sorted_columns(batch_size, n, weights) -> bool:
    """Whether a call's sort by column may be kept for the next (``numba_columns.py``).

    A call of one batch of two rows or more (a full batch, when it comes
    again), through the wide sparse first layer: the narrow and dense ones
    do not sort.
    """
    return (batch_size >= n >= 2 and _sparse_first(weights)
            and not is_narrow(weights[0].shape[1]))


def _check_writeable(arrays):
    """Raise ValueError if an array the engine writes to is read-only."""
    if not all(arr.flags.writeable for arr in arrays):
        raise ValueError("numba backend: parameters to update and output buffers must be "
                         "writeable (got a read-only array): pass a copy")


def _writeable(a):
    """``a``, or a copy of it when it is read-only (a memory-mapped file, say).

    The compiled units take writeable arrays only: their signatures are fixed
    before they are compiled (see ``numba_engine.unit_types``).
    """
    return a if a.flags.writeable else a.copy()


def _prepared(x, dtype=None) -> PreparedInputs:
    inputs = PreparedInputs(*map(_writeable, prepare_inputs(x)))
    check_prepared(inputs)
    if dtype is not None and inputs.x.dtype != dtype:
        raise ValueError(f"numba backend: inputs must have the parameters' dtype {dtype}, "
                         f"got {inputs.x.dtype}")
    return inputs


# --- composed: forward pass, deltas, gradients, one epoch ----------------------------------

def forward(weights, biases, x, hidden, output, zs, activations):
    """Run the network on x (n, n_in), filling ``zs[i]`` and ``activations[i]``.

    weights[i] (k, m) and biases[i] (m,) are layer i's parameters; ``hidden``
    and ``output`` are activation codes from ``kernels.common``. The last
    entry of ``activations`` receives the output probabilities. Runs the
    training engine's own forward phase over all rows.
    """
    inputs = _prepared(x)
    x = inputs.x
    weights, biases = tuple(map(_writeable, weights)), tuple(map(_writeable, biases))
    n_layers = _check_layers(weights, biases, x.dtype)
    _check_layers(zs, activations, x.dtype)
    _check_writeable(tuple(zs) + tuple(activations))
    n = x.shape[0]
    _check_forward_buffers(weights, x, zs, activations)
    skip_zeros = _sparse_first(weights) and all(np.isfinite(w).all() for w in weights)
    weights, biases, zs, activations = _pad(n_layers, weights, biases, zs, activations)
    n_blocks = _blocks_for(n)
    first_layer = engine_unit("first_layer_block", x.dtype.name, len(weights),
                              narrow=is_narrow(weights[0].shape[1]))
    rest = engine_unit("forward_block", x.dtype.name, len(weights))
    order = np.arange(n, dtype=np.int64)

    n_workers = _workers_for(n_blocks)

    def run(worker):  # forward_rows releases the GIL; the blocks' rows are independent
        for t in range(worker, n_blocks, n_workers):
            forward_rows(first_layer, rest, n * t // n_blocks, n * (t + 1) // n_blocks, n,
                         n_layers, weights, biases, x, inputs.indptr, inputs.indices,
                         inputs.values, order, int(hidden), int(output), zs, activations,
                         skip_zeros)

    with _single_threaded_blas():
        _on_workers(run, n_workers)


def _check_forward_buffers(weights, x, zs, acts):
    if x.shape[1] != weights[0].shape[0]:
        raise ValueError(f"x has {x.shape[1]} columns, the first layer takes "
                         f"{weights[0].shape[0]} inputs")
    for i, w in enumerate(weights):
        want = (x.shape[0], w.shape[1])
        if zs[i].shape != want or acts[i].shape != want:
            raise ValueError(f"layer {i} buffers must have shape {want}, got "
                             f"{zs[i].shape} and {acts[i].shape}")


def backward_deltas(weights, hidden, zs, activations, deltas):
    """Every hidden layer's delta from the last one, in place; see the reference."""
    n_layers = _check_layers(weights, (), zs[0].dtype)
    _check_layers(zs, tuple(activations) + tuple(deltas), zs[0].dtype)
    rows = deltas[-1].shape[0]
    for i in range(n_layers):
        want = (rows, weights[i].shape[1])
        if zs[i].shape != want or activations[i].shape != want or deltas[i].shape != want:
            raise ValueError(f"layer {i} buffers must have shape {want}")
    weights, zs, activations, deltas = _pad(n_layers, weights, zs, activations, deltas)
    with _single_threaded_blas():
        _backward(rows, n_layers, weights, int(hidden), zs, activations, deltas)


@jit
def _backward(rows, n_layers, weights, hidden, zs, acts, deltas):
    zero = rows - rows
    backward_block(zero, rows, rows, n_layers, weights, hidden, zs, acts, deltas,
                   np.ones(rows, np.uint8))


@jit
def _gradients(n_layers, x, indptr, indices, values, order, acts, deltas, grad_w, grad_b,
               bounds, col_start, csc_rows, csc_values, narrow_grad, touched, touched_list,
               n_touched, skip_zeros):
    unsorted, no_slots = np.int64(-1), np.zeros(0, np.uint8)  # sort the entries here
    for i in range(n_layers):
        grad_w[i][:] = 0
        grad_b[i][:] = 0
    g0 = grad_w[0]
    if g0.shape[1] <= NARROW_LANES:  # the engine's variant for this width (is_narrow)
        narrow_gradient_block(0, 1, order.shape[0], 0, n_layers, indptr, indices, values, x,
                              order, acts, deltas, grad_w, grad_b, bounds, col_start, csc_rows,
                              csc_values, unsorted, no_slots, narrow_grad, touched, touched_list,
                              n_touched, skip_zeros)
        if skip_zeros:  # the first layer's gradient went to its 16-lane copy
            for j in range(g0.shape[0]):
                for c in range(g0.shape[1]):
                    g0[j, c] = narrow_grad[j, c]
    else:
        gradient_block(0, 1, order.shape[0], 0, n_layers, indptr, indices, values, x, order,
                       acts, deltas, grad_w, grad_b, bounds, col_start, csc_rows, csc_values,
                       unsorted, no_slots, narrow_grad, touched, touched_list, n_touched,
                       skip_zeros)


def parameter_gradients(x, activations, deltas, grad_w, grad_b):
    """Every layer's ``grad_w = input.T @ delta`` and ``grad_b = delta.sum(0)``; see the reference."""
    inputs = _prepared(x)
    x = inputs.x
    n_layers = len(grad_w)
    _check_layers(tuple(activations) + tuple(deltas), tuple(grad_w) + tuple(grad_b), x.dtype)
    n, n_in = x.shape
    for i in range(n_layers):
        k, m = grad_w[i].shape
        if deltas[i].shape != (n, m) or grad_b[i].shape != (m,) or (
                i and activations[i - 1].shape != (n, k)) or (i == 0 and k != n_in):
            raise ValueError(f"layer {i} gradient buffers do not match the inputs and deltas")
    skip_zeros = _sparse_first(grad_w) and all(np.isfinite(d).all() for d in deltas[:1])
    activations, deltas, grad_w, grad_b = _pad(n_layers, activations, deltas, grad_w, grad_b)
    with _single_threaded_blas():
        _gradients(n_layers, x, inputs.indptr, inputs.indices, inputs.values,
                   np.arange(n, dtype=np.int64), activations, deltas, grad_w, grad_b,
                   np.array([0, n_in], np.int64), *_column_scratch(n, n_in, 1, x.dtype),
                   np.zeros(n_in, np.uint8), np.zeros(n_in, np.int64), np.zeros(1, np.int64),
                   skip_zeros)


def train_epoch(weights, biases, x, y, order, batch_size, lr, hidden, output, ws: Workspace):
    """Run gradient-descent steps over the rows ``x[order]`` in batches.

    Parameters
    ----------
    weights, biases : tuples of (k, m) and (m,) arrays, updated in place.
    x : the inputs as returned by `prepare_inputs` (N rows of n_in). A plain
        (N, n_in) array is accepted too and prepared on every call, which
        costs a pass over all of it: prepare once when calling repeatedly.
        Do not change the prepared arrays in place between calls with one
        workspace: a full batch keeps their entries, sorted by column, in
        ``ws`` (``numba_columns.py``); change x, prepare anew.
    y : (N, n_out) one-hot (or 0/1) targets, of the inputs' dtype.
    order : (n,) int64 row indices; each batch takes the next ``batch_size`` of
        them (the last may be short) and visits its rows in ascending order.
    batch_size : rows per step. lr : learning rate.
    hidden, output : activation codes. ws : buffers from `allocate_workspace`
    (``ws.y`` stays unused, and ``ws.x`` holds a tile's gathered rows only
    when the first layer is dense: rows are read from x and y directly).

    Returns
    -------
    (loss_sum, n_correct, n_steps) : the summed loss and correct count of the
    batches completed before the update (forward pass before each step), and
    the number of steps taken. Training stops early, before updating, at the
    first batch whose loss is not finite: then ``n_steps`` is that batch's index.
    """
    inputs = _prepared(x)
    x = inputs.x
    n_layers = _check_layers(weights, biases, x.dtype)
    order, batch_size = check_epoch_args(weights, biases, x, y, order, batch_size, ws)
    y = _writeable(np.ascontiguousarray(y))
    order = _writeable(_batches_in_storage_order(order, batch_size))
    buffers = (*ws.z, *ws.a, *ws.delta, *ws.grad_w, *ws.grad_b, ws.x)
    if not all(buffer.flags.c_contiguous for buffer in buffers):
        raise ValueError("numba backend: workspace buffers must be C-contiguous: allocate "
                         "them with allocate_workspace")
    _check_writeable(tuple(weights) + tuple(biases) + buffers)
    rows = max(1, min(batch_size, order.shape[0]))
    n_blocks = _blocks_for(rows)
    n_in = x.shape[1]
    weights, biases, zs, acts, deltas, grad_w, grad_b = _pad(
        n_layers, weights, biases, ws.z, ws.a, ws.delta, ws.grad_w, ws.grad_b)
    tile = min(rows, TILE_ROWS)
    bounds = _input_bounds(inputs.indices, n_in, n_blocks)
    col_start, csc_rows, csc_values, narrow_grad = _column_scratch(tile, n_in, n_blocks, x.dtype)
    sorted_slots = _SORT_EVERY_STEP
    if _may_keep_sorted_columns(batch_size, order.shape[0], weights):
        kept = kept_sorted_columns(ws.kept, inputs, order, tile, bounds)
        if kept is not None:
            col_start, csc_rows, csc_values, sorted_slots = kept
    scratch = (
        bounds,
        *_row_scratch(tile, x.dtype),
        col_start, csc_rows, csc_values, sorted_slots, narrow_grad,
        np.zeros(n_in, np.uint8),      # touched: first-layer rows of this batch
        np.zeros(n_in, np.int64),      # touched_list
        np.zeros(n_blocks, np.int64),  # n_touched, per block
        np.ones(n_blocks, np.uint8))   # new_weights_finite, per block
    units = engine_units(x.dtype, len(weights), weights[0].shape[1],
                         units_called(batch_size, order.shape[0]))
    n_workers = _workers_for(n_blocks)
    sync = new_sync()
    sparse_first = _sparse_first(weights)

    def run(worker):  # train_steps releases the GIL
        return train_steps(
            *units, n_blocks, worker, n_workers, sync, sparse_first, n_layers, weights, biases, x,
            inputs.indptr, inputs.indices, inputs.values, ws.x, y, order, batch_size, float(lr),
            int(hidden), int(output), zs, acts, deltas, grad_w, grad_b, *scratch)

    with _single_threaded_blas():
        loss_sum, n_correct, n_steps = _on_workers(run, n_workers)
    return float(loss_sum), int(n_correct), int(n_steps)


# --- compilation ---------------------------------------------------------------------------

def _parts_for(batch_size, training, first_layer_width):
    """The compiled parts a run needs (see ``numba_compile.py``).

    Training: the units `train_steps` calls at this batch size, for a run
    of many rows, and the stand-ins of the others; a run that needs another
    unit later (a last batch of one row, say) compiles it on first use.
    Otherwise the forward pass alone. A first layer of at most
    ``NARROW_LANES`` units (``first_layer_width``; None: a wider one) takes
    the narrow variants of the units that have one.
    """
    if not training:
        return numba_compile.forward_parts(first_layer_width)
    return numba_compile.training_parts(units_called(batch_size, None), first_layer_width)


def is_compiled(dtype=np.float32, batch_size=64, *, training=True,
                first_layer_width=None) -> bool:
    """Whether what a run of this batch size needs is compiled or loaded in this process.

    ``training=False`` asks about the forward pass only; ``first_layer_width``
    is the number of units of the network's first layer (None: more than
    ``NARROW_LANES``, 16).
    """
    return numba_compile.is_loaded(dtype, _parts_for(batch_size, training, first_layer_width))


def is_cached(dtype=np.float32, batch_size=64, *, training=True, first_layer_width=None) -> bool:
    """Whether the disk cache holds what a run of this batch size needs, for this CPU.

    Then `warmup` only loads. ``training=False`` asks about the forward pass
    only; ``first_layer_width`` as in `is_compiled`. A look at the cache's
    indexes; nothing is loaded.
    """
    return numba_compile.is_cached(dtype, _parts_for(batch_size, training, first_layer_width))


def compile_estimate(dtype=np.float32, batch_size=64, *, training=True,
                     first_layer_width=None) -> float:
    """Seconds `warmup` would spend compiling, on the machine the compile costs were measured on.

    Zero when everything is loaded or cached; see ``numba_compile.estimate_seconds``.
    """
    return numba_compile.estimate_seconds(dtype,
                                          _parts_for(batch_size, training, first_layer_width))


def warmup(dtype=np.float32, batch_size=64, *, training=True,
           first_layer_width=None) -> WarmupInfo:
    """Compile, or load from the disk cache, what a run of ``dtype`` and ``batch_size`` needs.

    Training: `prepare_inputs`, the epoch loop and the units it calls at this
    batch size with the threads now in use, and the forward pass that
    validation uses; with ``training=False`` only `prepare_inputs` and the
    forward pass, which is all that ``evaluate`` and ``predict`` need. The
    units are those of a first layer of ``first_layer_width`` units (None:
    more than ``NARROW_LANES``, 16; a narrow one runs other variants of two
    units). When some are not cached and the machine has two cores or more,
    a second process compiles about half of them meanwhile. Calling it again
    in the same process is free.
    """
    return numba_compile.load_or_compile(dtype,
                                         _parts_for(batch_size, training, first_layer_width))


def compile_all() -> WarmupInfo:
    """Compile (or load) every kernel for float32 and float64: for building images.

    Every part of the engine (each unit and its stand-in, both drivers) and
    every standalone kernel, so no later run of any kind compiles anything.
    """
    compiled_before, loaded_before = compile_stats()
    t0 = time.perf_counter()
    for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        numba_compile.load_or_compile(dtype, numba_compile.ALL_PARTS)
        _run_standalone_kernels(dtype)
    seconds = time.perf_counter() - t0
    compiled_after, loaded_after = compile_stats()
    return WarmupInfo(seconds, compiled_after - compiled_before, loaded_after - loaded_before)


def _run_standalone_kernels(dtype):
    """Every kernel of this module outside the engine, once on tiny arrays: compiles them."""
    rng = np.random.default_rng(0)
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
    sizes = (4, 2, 2)
    weights = (w, rng.random((2, 2)).astype(dtype))
    zs = [np.zeros((3, 2), dtype), np.zeros((3, 2), dtype)]
    acts = [a.copy() for a in zs]
    deltas = [a.copy() for a in zs]
    backward_deltas(weights, RELU, zs, acts, deltas)
    parameter_gradients(x, acts, deltas, [np.zeros((k, m), dtype) for k, m in
                                          zip(sizes, sizes[1:])], [b.copy(), b.copy()])
