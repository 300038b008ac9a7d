"""Threads that meet: the barrier between the phases of a threaded training step.

A threaded epoch runs `numba_engine.train_steps` on every thread at once,
each thread (a *worker*) taking its share of every step's blocks; between
the phases all of them wait at `wait_for_all` until the last has arrived.
One barrier costs ~150 ns with two threads where a ``prange`` region costs
2.1 us to enter and leave (both measured on the README's machine), and it
needs none of Numba's parallel lowering, which cost the engine's region
2.2-3.3 s of compiling.

Numba has no atomic operations, so the three the barrier needs are written
here as LLVM instructions (`atomic_add`, `atomic_load`, `atomic_store`), on
the int64 array the workers share (`new_sync`).
"""

from __future__ import annotations

import sys

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit

#: Slots of the shared array: how many workers have arrived at the barrier,
#: and how many times it has opened. Eight int64 apart, so that the two sit
#: on different cache lines.
ARRIVED, OPENED = 0, 8

#: Looks at the barrier this many times before giving the core away between
#: looks: a worker whose partner was descheduled (another process wanted the
#: core) then lets it run, instead of spinning through its time slice.
SPINS_BEFORE_YIELDING = 2000

#: The C function that gives the rest of the thread's time slice away.
_YIELD_FUNCTION = "SwitchToThread" if sys.platform == "win32" else "sched_yield"


def new_sync() -> np.ndarray:
    """The array a run's workers share for `wait_for_all`: int64, zeros."""
    return np.zeros(2 * OPENED, np.int64)


def _element_pointer(context, builder, array_type, array, index):
    array = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, array, [index])


@intrinsic
def atomic_add(typingctx, array, index, value):
    """``array[index] += value`` as one atomic step; returns the value before."""
    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", pointer, args[2], "seq_cst")
    return types.int64(types.int64[::1], types.int64, types.int64), codegen


@intrinsic
def atomic_load(typingctx, array, index):
    """``array[index]``, read from memory each time (another thread may write it)."""
    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(pointer, "seq_cst", 8)
    return types.int64(types.int64[::1], types.int64), codegen


@intrinsic
def atomic_store(typingctx, array, index, value):
    """``array[index] = value``, seen by every other thread's next `atomic_load`."""
    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        builder.store_atomic(args[2], pointer, "seq_cst", 8)
        return context.get_dummy_value()
    return types.none(types.int64[::1], types.int64, types.int64), codegen


@intrinsic
def yield_cpu(typingctx):
    """Give the rest of this thread's time slice to another thread (``sched_yield``)."""
    def codegen(context, builder, signature, args):
        function_type = ir.FunctionType(ir.IntType(32), [])
        function = cgutils.get_or_insert_function(builder.module, function_type,
                                                  _YIELD_FUNCTION)
        builder.call(function, [])
        return context.get_dummy_value()
    return types.none(), codegen


@jit(internal=True)
def wait_for_all(sync, n_workers):
    """Return once all ``n_workers`` workers sharing ``sync`` have called this.

    What a worker wrote before the call, every worker sees after it. The last
    to arrive resets the count and opens the barrier; the others watch it
    open. Every worker must call it the same number of times.
    """
    if n_workers == 1:
        return
    opened = atomic_load(sync, OPENED)
    if atomic_add(sync, ARRIVED, 1) == n_workers - 1:
        atomic_store(sync, ARRIVED, 0)
        atomic_add(sync, OPENED, 1)
        return
    spins = 0
    while atomic_load(sync, OPENED) == opened:
        spins += 1
        if spins >= SPINS_BEFORE_YIELDING:
            yield_cpu()
