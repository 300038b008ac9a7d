"""The compiled epoch loop: the phases of ``numba_phases.py`` run batch after batch.

`train_steps` is the one driver, for one thread and for several: a run
calls it on each of its threads at once (``numba_backend.train_epoch``),
and per batch each thread runs its share of phase 1's blocks, then of
phases 2 and 3's, waiting for the others after each (`run_step`,
``numba_sync.py``). `forward_rows` is phase 1's forward pass alone, for
prediction, over a block of rows.

The engine's units are compiled one by one: the phase functions
`first_layer_block`, `forward_block`, `deltas_block`, `gradient_block`,
`update_block` and `gradient_update_row` are each compiled on their own,
for the signature `unit_types` gives them, and handed to their callers as
function values (`engine_units`), never linked into them. Numba would
otherwise copy a callee's code into every compiled caller, where LLVM
optimises and generates it again: through the four levels from a phase to
the driver, that was most of a cold start (35 s for float32 on 2 cores).
Each unit now costs its own compile only, a run compiles just the units it
calls (`units_called`; prediction: the forward pass and `forward_rows`)
and passes cheap stand-ins for the others, and two processes can compile
different units at once (``numba_compile.py``). Inside a unit the small
helpers of ``numba_affine.py`` and ``numba_elementwise.py`` are linked in
and inlined as usual. A call through a function value costs nanoseconds,
paid a few times per batch.

A batch of one row takes a fused path (`gradient_update_row`): phases 2 and
3 in one pass, no gradient buffers, on the first thread.
"""

from __future__ import annotations

import functools
from collections import namedtuple

import numba
import numpy as np
from numba import types

from ._jit import first_class_function, jit
from .numba_affine import NARROW_LANES
from .numba_phases import (deltas_block, first_layer_block, forward_block, gradient_block,
                           gradient_update_row, narrow_first_layer_block, narrow_gradient_block,
                           update_block, weights_finite)
from .numba_sync import wait_for_all


@jit(refcounting=False)
def forward_rows(first_layer_fn, forward_fn, lo, hi, rows, n_layers, weights, biases, x, indptr,
                 indices, values, order, hidden, output, zs, acts, skip_zeros):
    """The forward pass of rows lo..hi of ``rows`` rows of x (in order), for prediction.

    The caller splits the rows into blocks and runs them on its own threads
    (this function releases the GIL): prediction is called once per epoch
    at most, where a ``prange`` region would cost more seconds of compiling
    than its threads ever save.
    """
    first_layer_fn(lo, hi, rows, np.int64(0), weights[0], biases[0], x, indptr, indices, values,
                   x, order, zs[0], skip_zeros)
    forward_fn(lo, hi, rows, n_layers, weights, biases, hidden, output, zs, acts)


@jit(internal=True)
def step_block(t, first_layer_fn, forward_fn, deltas_fn, gradient_fn, update_fn, learn, n_blocks,
               rows, start, update, n_layers, weights, biases, x, indptr, indices, values, xb,
               y, order, hidden, output, scale, lr, zs, acts, deltas, grad_w, grad_b,
               skip_zeros, row_loss, row_hit, row_finite, bounds, col_start, csc_rows,
               csc_values, tile_slot, sorted_slots, narrow_grad, touched, touched_list,
               n_touched, new_weights_finite):
    """Block t of a step's region: phase 1 on its share of the tile's ``rows``
    rows, or with ``learn`` phases 2 and 3 on its share of the weights (see
    ``numba_phases.py``); ``update`` after the batch's last tile only.
    """
    if learn:  # phases 2 and 3 touch only block t's weights: back to back
        gradient_fn(t, n_blocks, rows, start, n_layers, indptr, indices, values, xb, order,
                    acts, deltas, grad_w, grad_b, bounds, col_start, csc_rows, csc_values,
                    tile_slot, sorted_slots, narrow_grad, touched, touched_list, n_touched,
                    skip_zeros)
        if update:
            update_fn(t, n_blocks, n_layers, weights, biases, grad_w, grad_b, lr, bounds,
                      touched, touched_list, n_touched, new_weights_finite, narrow_grad)
    else:
        lo, hi = rows * t // n_blocks, rows * (t + 1) // n_blocks
        first_layer_fn(lo, hi, rows, start, weights[0], biases[0], x, indptr, indices, values,
                       xb, order, zs[0], skip_zeros)
        forward_fn(lo, hi, rows, n_layers, weights, biases, hidden, output, zs, acts)
        deltas_fn(lo, hi, rows, start, n_layers, weights, y, order, hidden, output, scale,
                  zs, acts, deltas, row_loss, row_hit, row_finite)


@jit(internal=True)
def run_step(first_layer_fn, forward_fn, deltas_fn, gradient_fn, update_fn, learn, n_blocks,
             worker, n_workers, sync, rows, start, update, n_layers, weights, biases, x, indptr,
             indices, values, xb, y, order, hidden, output, scale, lr, zs, acts, deltas, grad_w,
             grad_b, skip_zeros, row_loss, row_hit, row_finite, bounds, col_start, csc_rows,
             csc_values, tile_slot, sorted_slots, narrow_grad, touched, touched_list, n_touched,
             new_weights_finite):
    """This worker's share of a step's blocks (`step_block`), then the wait for the others.

    Worker w of n runs blocks w, w + n, w + 2n ...: the blocks, and with
    them every result, are the same whatever the number of workers. After
    `wait_for_all` every worker sees what all of them wrote.
    """
    for t in range(worker, n_blocks, n_workers):
        step_block(t, first_layer_fn, forward_fn, deltas_fn, gradient_fn, update_fn, learn,
                   n_blocks, rows, start, update, n_layers, weights, biases, x, indptr, indices,
                   values, xb, y, order, hidden, output, scale, lr, zs, acts, deltas, grad_w,
                   grad_b, skip_zeros, row_loss, row_hit, row_finite, bounds, col_start,
                   csc_rows, csc_values, tile_slot, sorted_slots, narrow_grad, touched,
                   touched_list, n_touched, new_weights_finite)
    wait_for_all(sync, n_workers)


@jit(refcounting=False)
def train_steps(first_layer_fn, forward_fn, deltas_fn, gradient_fn, update_fn, row_update_fn,
                n_blocks, worker, n_workers, sync, sparse_first, n_layers, weights, biases, x,
                indptr, indices, values, xb, y, order, batch_size, lr, hidden, output, zs, acts,
                deltas, grad_w, grad_b, bounds, row_loss, row_hit, row_finite, col_start,
                csc_rows, csc_values, sorted_slots, narrow_grad, touched, touched_list,
                n_touched, new_weights_finite):
    """Gradient-descent steps over the rows ``order`` in batches; see ``train_epoch``.

    The ``*_fn`` arguments are the `engine_units` of the arrays' dtype.
    Every one of the ``n_workers`` threads of a run calls this at once, with
    the same arguments but its own ``worker`` number (0, 1, ...) and the
    same ``sync`` array (`numba_sync.new_sync`); it takes its share of each
    step's blocks and returns the same result as the others.
    Each batch is walked in tiles of ``len(row_loss)`` rows, so that even a
    full-batch step works in cache-sized pieces: phase 1 on the tile, then
    (unless the batch's loss so far is not finite) phase 2, and after the
    batch's last tile phase 3. With a nonempty ``sorted_slots`` the batch is
    a full batch whose tiles keep their entries sorted by column from step to
    step (``numba_phases.first_layer_gradient``), tile k in slot k. Returns
    ``(loss_sum, n_correct, n_steps)``.
    The loss of a batch is summed in the arrays' dtype, like the reference's.
    """
    one, yes, no = np.int64(1), np.bool_(True), np.bool_(False)
    keep_sorted = sorted_slots.shape[0] > 0
    dtype = row_loss.dtype.type
    step = dtype(lr)
    tile = row_loss.shape[0]
    if worker == 0:
        for i in range(n_layers):
            grad_w[i][:] = 0
            grad_b[i][:] = 0
    wait_for_all(sync, n_workers)
    skip_zeros = sparse_first and weights_finite(n_layers, weights)
    loss_sum = 0.0
    n_correct = 0
    n_steps = 0
    n = order.shape[0]
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        scale = dtype(1.0 / m)
        row_blocks = n_blocks if m > 1 else one
        loss = dtype(0)
        hits = 0
        for lo in range(0, m, tile):
            rows = min(m, lo + tile) - lo
            tile_slot = lo // tile if keep_sorted else -one
            run_step(first_layer_fn, forward_fn, deltas_fn, gradient_fn, update_fn, no,
                     row_blocks, worker, n_workers, sync, rows, start + lo, no, n_layers,
                     weights, biases, x, indptr, indices, values, xb, y, order, hidden, output,
                     scale, step, zs, acts, deltas, grad_w, grad_b, skip_zeros, row_loss,
                     row_hit, row_finite, bounds, col_start, csc_rows, csc_values, tile_slot,
                     sorted_slots, narrow_grad, touched, touched_list, n_touched,
                     new_weights_finite)
            deltas_finite = yes
            for s in range(rows):
                loss += row_loss[s]
                hits += row_hit[s]
                deltas_finite = deltas_finite and row_finite[s] == 1
            if not np.isfinite(loss):  # row losses are >= 0: the batch's is not finite
                break
            if m == 1:  # the first worker alone, the others wait
                if worker == 0:
                    row = order[start]
                    now_finite = row_update_fn(
                        n_layers, weights, biases, acts, deltas, step, x[row], indices, values,
                        indptr[row], indptr[row + 1], sparse_first and deltas_finite)
                    new_weights_finite[0] = 1 if now_finite else 0
                wait_for_all(sync, n_workers)
                skip_zeros = skip_zeros and new_weights_finite[0] == 1
                continue
            last_tile = lo + rows == m
            sparse_gradient = sparse_first and deltas_finite
            run_step(first_layer_fn, forward_fn, deltas_fn, gradient_fn, update_fn, yes,
                     n_blocks, worker, n_workers, sync, rows, start + lo, last_tile, n_layers,
                     weights, biases, x, indptr, indices, values, xb, y, order, hidden, output,
                     scale, step, zs, acts, deltas, grad_w, grad_b, sparse_gradient, row_loss,
                     row_hit, row_finite, bounds, col_start, csc_rows, csc_values, tile_slot,
                     sorted_slots, narrow_grad, touched, touched_list, n_touched,
                     new_weights_finite)
            if last_tile:
                for t in range(n_blocks):
                    skip_zeros = skip_zeros and new_weights_finite[t] == 1
        if not np.isfinite(loss):
            break
        loss_sum += loss
        n_correct += hits
        n_steps += 1
    return loss_sum, n_correct, n_steps


# --- signatures, and the units compiled on demand -------------------------------------------

#: Layer tuples are padded to this length before entering compiled code, so
#: one compiled signature per dtype serves every network of up to this many
#: layers (deeper ones compile their own, once). Three covers the usual nets
#: (784-128-64-10, 784-10-10); each slot costs compile time, since every
#: ``weights[i]`` compiles to a switch over the slots (measured: 4 slots
#: compile 10-15% slower than 3).
LAYER_SLOTS = 3

#: The engine's units, as `engine_units` returns them.
Units = namedtuple("Units", "first_layer_block forward_block deltas_block gradient_block "
                            "update_block gradient_update_row")

#: The compiled function behind each unit.
UNIT_FUNCTIONS = Units(first_layer_block, forward_block, deltas_block, gradient_block,
                       update_block, gradient_update_row)

#: The units that have a variant for a narrow first layer, and that variant.
NARROW_UNITS = {"first_layer_block": narrow_first_layer_block,
                "gradient_block": narrow_gradient_block}


def is_narrow(first_layer_width) -> bool:
    """Whether a first layer of this many units runs the narrow variants (`NARROW_UNITS`).

    None stands for a layer wider than ``NARROW_LANES`` (the default networks).
    """
    return first_layer_width is not None and first_layer_width <= NARROW_LANES


def unit_types(dtype, slots) -> Units:
    """Each unit's ``(argument types, return type)``, for arrays of ``dtype``.

    ``slots`` is the length of the per-layer tuples. Callers pass exactly
    these types: writeable C-contiguous arrays, the CSR columns int32, the
    other integers int64.
    """
    t = _types(dtype, slots)
    first_layer = (t.i8, t.i8, t.i8, t.i8, t.mat, t.vec, t.mat, t.i8s, t.i4s, t.vec, t.mat,
                   t.i8s, t.mat, t.b1)
    forward = (t.i8, t.i8, t.i8, t.i8, t.mats, t.vecs, t.i8, t.i8, t.mats, t.mats)
    deltas = (t.i8, t.i8, t.i8, t.i8, t.i8, t.mats, t.mat, t.i8s, t.i8, t.i8, t.f, t.mats,
              t.mats, t.mats, t.vec, t.i8s, t.u8s)
    gradient = (t.i8, t.i8, t.i8, t.i8, t.i8, t.i8s, t.i4s, t.vec, t.mat, t.i8s, t.mats, t.mats,
                t.mats, t.vecs, t.i8s, t.i8s, t.i4s, t.vec, t.i8, t.u8s, t.mat, t.u8s, t.i8s,
                t.i8s, t.b1)
    update = (t.i8, t.i8, t.i8, t.mats, t.vecs, t.mats, t.vecs, t.f, t.i8s, t.u8s, t.i8s, t.i8s,
              t.u8s, t.mat)
    row_update = (t.i8, t.mats, t.vecs, t.mats, t.mats, t.f, t.vec, t.i4s, t.vec, t.i8, t.i8,
                  t.b1)
    phases = {"first_layer_block": (first_layer, types.none),
              "forward_block": (forward, types.none), "deltas_block": (deltas, types.none),
              "gradient_block": (gradient, types.none), "update_block": (update, types.none),
              "gradient_update_row": (row_update, types.boolean)}
    return Units(**phases)


def forward_rows_types(dtype, slots) -> tuple:
    """The argument types `forward_rows` is called with from Python."""
    t = _types(dtype, slots)
    units = unit_types(dtype, slots)
    first_layer = _function_type(*units.first_layer_block)
    forward = _function_type(*units.forward_block)
    return (first_layer, forward, t.i8, t.i8, t.i8, t.i8, t.mats, t.vecs, t.mat, t.i8s, t.i4s,
            t.vec, t.i8s, t.i8, t.i8, t.mats, t.mats, t.b1)


def train_steps_types(dtype, slots) -> tuple:
    """The argument types `train_steps` is called with from Python (lr as a Python float)."""
    t = _types(dtype, slots)
    units = tuple(_function_type(*unit) for unit in unit_types(dtype, slots))
    return units + (t.i8, t.i8, t.i8, t.i8s, t.b1, t.i8, t.mats, t.vecs, t.mat, t.i8s, t.i4s,
                    t.vec, t.mat, t.mat, t.i8s, t.i8, types.float64, t.i8, t.i8, t.mats, t.mats,
                    t.mats, t.mats, t.vecs, t.i8s, t.vec, t.i8s, t.u8s, t.i8s, t.i4s, t.vec,
                    t.u8s, t.mat, t.u8s, t.i8s, t.i8s, t.u8s)


_Types = namedtuple("_Types", "f mat vec mats vecs i8 b1 i8s i4s u8s")


def _types(dtype, slots) -> _Types:
    f = numba.from_dtype(np.dtype(dtype))
    mat, vec = f[:, ::1], f[::1]
    return _Types(f, mat, vec, types.UniTuple(mat, slots), types.UniTuple(vec, slots),
                  types.int64, types.boolean, types.int64[::1], types.int32[::1],
                  types.uint8[::1])


def _function_type(argument_types, return_type):
    return types.FunctionType(return_type(*argument_types))


# --- what a call runs, and stand-ins for the units it does not -----------------------------

def units_called(batch_size, n_rows) -> frozenset:
    """The names of the units `train_steps` calls for these arguments.

    ``n_rows`` is the length of the order; None means a run of many rows
    (more than one batch, none of the batches a single row unless
    ``batch_size`` is 1).
    """
    if n_rows is None:
        single, several = batch_size == 1, batch_size > 1
    else:
        single = n_rows > 0 and (batch_size == 1 or n_rows % batch_size == 1)
        several = batch_size > 1 and n_rows > 1
    called = {"first_layer_block", "forward_block", "deltas_block"}
    if several:
        called |= {"gradient_block", "update_block"}
    if single:
        called.add("gradient_update_row")
    return frozenset(called)


# The stand-ins: a run passes these where `units_called` leaves a unit out, so
# it does not wait for that unit to compile (a batch-1 run never calls the
# batch phases: 4-5 s of compiling). Each takes its
# unit's exact signature and does nothing: `units_called` follows
# `train_steps`'s own branches, and the parity tests train with the stand-ins
# a run passes, batch size by batch size, so a stand-in that was called would
# show as a parameter never updated.

@jit(first_class=True)
def gradient_block_unused(t, n_blocks, rows, start, n_layers, indptr, indices, values, xb,
                          order, acts, deltas, grad_w, grad_b, bounds, col_start, csc_rows,
                          csc_values, tile_slot, sorted_slots, narrow_grad, touched,
                          touched_list, n_touched, skip_zeros):
    """Stands in for `gradient_block` where every batch is a single row."""


@jit(first_class=True)
def update_block_unused(t, n_blocks, n_layers, weights, biases, grad_w, grad_b, lr, bounds,
                        touched, touched_list, n_touched, new_weights_finite, narrow_grad):
    """Stands in for `update_block` where every batch is a single row."""


@jit(first_class=True)
def gradient_update_row_unused(n_layers, weights, biases, acts, deltas, lr, x_row, indices,
                               values, p0, p1, sparse):
    """Stands in for `gradient_update_row` where no batch is a single row."""
    return False


#: The stand-in of each unit a run may not call.
STAND_INS = {"gradient_block": gradient_block_unused, "update_block": update_block_unused,
             "gradient_update_row": gradient_update_row_unused}


@functools.lru_cache(maxsize=None)
def engine_unit(name, dtype_name, slots, *, stand_in=False, narrow=False):
    """Unit ``name`` compiled (or loaded from the disk cache) for the dtype, as a function value.

    With ``stand_in``, its stand-in (`STAND_INS`) instead; with ``narrow``,
    its variant for a narrow first layer (`NARROW_UNITS`).
    """
    arguments, _ = getattr(unit_types(dtype_name, slots), name)
    if stand_in:
        function = STAND_INS[name]
    elif narrow:
        function = NARROW_UNITS[name]
    else:
        function = getattr(UNIT_FUNCTIONS, name)
    return first_class_function(function, arguments)


def engine_units(dtype, slots, first_layer_width, called=frozenset(Units._fields)) -> Units:
    """The units for ``dtype``, ``slots``-long layer tuples and a first layer of this
    many units, compiled on first use.

    Units not in ``called`` (see `units_called`) are their stand-ins.
    """
    name = np.dtype(dtype).name
    narrow = is_narrow(first_layer_width)
    return Units(*(engine_unit(unit, name, slots, stand_in=unit not in called,
                               narrow=narrow and unit in NARROW_UNITS)
                   for unit in Units._fields))
