"""The barrier where the engine's threads meet between the phases of a step."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kernels._jit import jit
from kernels.numba_sync import ARRIVED, OPENED, atomic_add, atomic_load, new_sync, wait_for_all


@jit
def _count_in_rounds(sync, arrivals, n_workers, rounds, wrong):
    """Each round: count this worker in, wait, check that every worker was counted, wait."""
    for done in range(rounds):
        atomic_add(arrivals, 0, 1)
        wait_for_all(sync, n_workers)
        if atomic_load(arrivals, 0) != n_workers * (done + 1):
            wrong[0] += 1
        wait_for_all(sync, n_workers)
    return 0


@pytest.mark.parametrize("n_workers", [1, 2, 3])  # 3: more threads than this machine's cores
def test_no_worker_passes_the_barrier_before_every_worker_has_arrived(n_workers):
    sync, arrivals = new_sync(), np.zeros(1, np.int64)
    wrong = [np.zeros(1, np.int64) for _ in range(n_workers)]
    rounds = 2000
    with ThreadPoolExecutor(n_workers) as pool:
        runs = [pool.submit(_count_in_rounds, sync, arrivals, n_workers, rounds, wrong[w])
                for w in range(n_workers)]
        for run in runs:
            run.result(timeout=60)
    assert arrivals[0] == n_workers * rounds
    assert sum(int(w[0]) for w in wrong) == 0
    assert sync[ARRIVED] == 0  # ready for the next run
    assert sync[OPENED] == (2 * rounds if n_workers > 1 else 0)  # one worker never waits


def test_the_barrier_can_be_used_again_by_another_run():
    sync = new_sync()
    for _ in range(2):
        arrivals, wrong = np.zeros(1, np.int64), [np.zeros(1, np.int64) for _ in range(2)]
        with ThreadPoolExecutor(2) as pool:
            runs = [pool.submit(_count_in_rounds, sync, arrivals, 2, 10, wrong[w])
                    for w in range(2)]
            for run in runs:
                run.result(timeout=60)
        assert arrivals[0] == 20 and wrong[0][0] == wrong[1][0] == 0
