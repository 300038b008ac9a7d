"""Thread settings: fastnn.threads, and results that do not depend on the thread count."""

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from fastnn.threads import available_threads, configure_threads, limit_threads
from kernels import numba_backend as comp
from kernels.common import RELU, SIGMOID, SOFTMAX, allocate_workspace


def blas_threads():
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_limit_threads_sets_both_pools_and_restores_them():
    before_numba, before_blas = numba.get_num_threads(), blas_threads()
    with limit_threads(1) as n:
        assert n == 1
        assert numba.get_num_threads() == 1
        assert blas_threads() <= {1}
    assert numba.get_num_threads() == before_numba
    assert blas_threads() == before_blas


def test_limit_threads_can_give_blas_the_threads():
    n = available_threads()
    with limit_threads(1, blas=n):
        assert numba.get_num_threads() == 1
        assert blas_threads() <= {n}


def test_configure_threads_lasts_until_changed():
    before = numba.get_num_threads()
    try:
        configure_threads(1)
        assert numba.get_num_threads() == 1
        assert blas_threads() <= {1}
    finally:
        configure_threads(before, blas=available_threads())
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("n", [0, -1, available_threads() + 1])
def test_impossible_thread_counts_are_refused(n):
    with pytest.raises(ValueError, match="threads"):
        with limit_threads(n):
            pass


def epoch(threads, batch_size, hidden, seed=0):
    """One float32 epoch of a small network with ``threads`` Numba threads."""
    rng = np.random.default_rng(seed)
    sizes = (50, 20, 12, 10)
    x = rng.random((200, sizes[0])).astype(np.float32)
    x[rng.random(x.shape) < 0.7] = 0
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 200)]
    weights = tuple((rng.standard_normal((k, m)) / np.sqrt(k)).astype(np.float32)
                    for k, m in zip(sizes, sizes[1:]))
    biases = tuple(np.zeros(m, np.float32) for m in sizes[1:])
    ws = allocate_workspace(sizes, batch_size, np.float32)
    with limit_threads(threads):
        result = comp.train_epoch(weights, biases, x, y, rng.permutation(200), batch_size, 0.3,
                                  hidden, SOFTMAX, ws)
    return result, weights + biases


@pytest.mark.skipif(available_threads() < 2, reason="needs 2 Numba threads")
@pytest.mark.parametrize("hidden", [SIGMOID, RELU])
@pytest.mark.parametrize("batch_size", [comp.PARALLEL_MIN_BATCH, 64, 200])
def test_results_do_not_depend_on_the_thread_count(batch_size, hidden):
    """Every sum is taken in row order however the work is split: bit-identical results."""
    one_result, one_params = epoch(1, batch_size, hidden)
    two_result, two_params = epoch(2, batch_size, hidden)
    assert two_result == one_result
    for a, b in zip(two_params, one_params):
        np.testing.assert_array_equal(a, b)
