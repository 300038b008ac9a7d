"""How many threads the kernels use: Numba's thread count and the BLAS pool, set together.

The numba backend's training threads (as many as Numba's thread count, read
with ``numba.get_num_threads``) and a multi-threaded BLAS running at the same time
fight over the same cores (on a 2-core machine that oversubscription made an
epoch 60x slower), and OpenBLAS threads keep spinning for a while after each
call. So by default BLAS is pinned to one thread while Numba gets ``n``. The
NumPy backend's only parallel code is BLAS: give it ``blas=n`` instead.
"""

from __future__ import annotations

from contextlib import contextmanager

import numba
from threadpoolctl import threadpool_limits


def available_threads() -> int:
    """Most threads Numba can use in this process (its pool size, fixed at start-up)."""
    return numba.config.NUMBA_NUM_THREADS


def _check(n) -> int:
    n = int(n)
    if not 1 <= n <= available_threads():
        raise ValueError(f"threads must be between 1 and {available_threads()}, got {n}")
    return n


_blas_limit = None


def configure_threads(n: int, blas: int = 1) -> None:
    """From now on: ``n`` Numba threads and ``blas`` BLAS threads (for the whole process)."""
    global _blas_limit
    n = _check(n)
    numba.set_num_threads(n)
    if _blas_limit is not None:
        _blas_limit.restore_original_limits()
    _blas_limit = threadpool_limits(limits=_check(blas), user_api="blas")


@contextmanager
def limit_threads(n: int, blas: int = 1):
    """Within the block: ``n`` Numba threads and ``blas`` BLAS threads.

    Both pools get their previous sizes back on exit.
    """
    n = _check(n)
    previous = numba.get_num_threads()
    with threadpool_limits(limits=_check(blas), user_api="blas"):
        numba.set_num_threads(n)
        try:
            yield n
        finally:
            numba.set_num_threads(previous)
