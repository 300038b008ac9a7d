"""Shared setup for the benchmarks: full MNIST, thread settings, and a ratio table.

Run with ``python -m pytest bench --benchmark-only`` (plain ``pytest`` collects
``tests/`` only). MNIST is read from ``$FASTNN_DATA_DIR``, by default
``../shared/mnist`` beside the repository. Both backends get every core
Numba may use, or ``$FASTNN_BENCH_THREADS`` threads. At the end of a run the
numpy/numba time ratio of every benchmark group is printed (min and median).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from fastnn import mnist
from fastnn.threads import limit_threads
from kernels import get_backend

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("FASTNN_DATA_DIR", REPO.parent / "shared" / "mnist"))
THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", numba.config.NUMBA_NUM_THREADS))
BACKENDS = ["numpy", "numba"]

# (group, backend) -> (min seconds, median seconds), filled by `record`.
_RESULTS: dict = {}


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder holding full MNIST."""
    return DATA_DIR


@pytest.fixture(scope="session")
def train_set():
    """Full MNIST training set: x (60000, 784) float32 in [0, 1], one-hot y float32."""
    data = mnist.load(source="mnist", data_dir=DATA_DIR, download=False)
    x = data.train_images.astype(np.float32) / np.float32(255)
    y = np.eye(10, dtype=np.float32)[data.train_labels]
    return x, y


@pytest.fixture(scope="session")
def prepared_inputs(train_set):
    """``get(backend) -> (inputs, seconds)``: the backend's ``prepare_inputs`` of the training x.

    Made once per backend and session, outside every timing (``fit`` also
    prepares once per training run); ``seconds`` is what it took.
    """
    cache = {}

    def get(backend):
        if backend.NAME not in cache:
            started = time.perf_counter()
            inputs = backend.prepare_inputs(train_set[0])
            cache[backend.NAME] = (inputs, time.perf_counter() - started)
        return cache[backend.NAME]
    return get


@pytest.fixture(scope="session", autouse=True)
def compiled():
    """JIT compile (or load) the Numba kernels before anything is timed."""
    return get_backend("numba").warmup()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend with `THREADS` threads: Numba's pool for numba, BLAS's for numpy.

    The other pool is pinned to 1 thread, as ``fastnn.threads`` does.
    """
    with limit_threads(THREADS, blas=THREADS if request.param == "numpy" else 1):
        yield get_backend(request.param)


def thread_info(backend_name: str) -> dict:
    """What to store in a benchmark's extra_info about threads and BLAS."""
    blas = [f"{lib['internal_api']} {lib['version']} ({lib['num_threads']} threads, {lib['prefix']})"
            for lib in threadpool_info() if lib["user_api"] == "blas"]
    return {
        "backend": backend_name,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": _threading_layer(),
        "blas": "; ".join(blas),
        "cpu_count": os.cpu_count(),
    }


def _threading_layer() -> str:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return "not started"


@pytest.fixture
def record(request):
    """Call ``record(benchmark)`` after timing: stores thread/BLAS info, adds to the table."""
    def _record(benchmark):
        benchmark.extra_info.update(thread_info(request.node.callspec.params["backend"]))
        meta = getattr(benchmark, "stats", None)
        if meta is None:  # --benchmark-disable
            return
        _RESULTS[(meta.group, request.node.callspec.params["backend"])] = (
            meta.stats.min, meta.stats.median)
    return _record


def pytest_terminal_summary(terminalreporter):
    groups = sorted({group for group, _ in _RESULTS})
    rows = [(g, _RESULTS.get((g, "numpy")), _RESULTS.get((g, "numba"))) for g in groups]
    rows = [(g, np_, nb_) for g, np_, nb_ in rows if np_ and nb_]
    if not rows:
        return
    write = terminalreporter.write_line
    terminalreporter.section("numpy / numba time ratio (higher: numba faster)")
    width = max(len(g) for g, _, _ in rows)
    write(f"{'group':<{width}}  {'numpy min':>10} {'numba min':>10} {'ratio':>7}"
          f"  {'numpy med':>10} {'numba med':>10} {'ratio':>7}")
    for group, (np_min, np_med), (nb_min, nb_med) in rows:
        write(f"{group:<{width}}  {_time(np_min):>10} {_time(nb_min):>10} {np_min / nb_min:>6.2f}x"
              f"  {_time(np_med):>10} {_time(nb_med):>10} {np_med / nb_med:>6.2f}x")


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.0f} ns"
