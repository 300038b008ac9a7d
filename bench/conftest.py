"""Shared setup for the benchmarks: full MNIST, thread settings, and a ratio table.

Run with ``python -m pytest bench --benchmark-only`` (plain ``pytest`` collects
``tests/`` only). MNIST is read from ``$FASTNN_DATA_DIR``, by default
``../shared/mnist`` beside the repository. Every implementation gets every
core Numba may use, or ``$FASTNN_BENCH_THREADS`` threads; PyTorch and JAX are
timed where importable and skipped otherwise. At the end of a run each
group's numba time is divided by every other implementation's (min and
median): below 1, numba is faster.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from fastnn import bench, mnist, peers
from fastnn.threads import limit_threads
from kernels import get_backend

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("FASTNN_DATA_DIR", REPO.parent / "shared" / "mnist"))
THREADS = int(os.environ.get("FASTNN_BENCH_THREADS", numba.config.NUMBA_NUM_THREADS))
BACKENDS = ["numpy", "numba"]
IMPLS = list(bench.IMPLS)

# (group, implementation) -> (min seconds, median seconds), filled by `record`.
_RESULTS: dict = {}


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder holding full MNIST."""
    return DATA_DIR


@pytest.fixture(scope="session")
def mnist_data():
    """Full MNIST as a `fastnn.bench.Data` (float32 inputs in [0, 1], digit labels)."""
    return bench.Data.from_mnist(mnist.load(source="mnist", data_dir=DATA_DIR, download=False))


@pytest.fixture(scope="session")
def train_set(mnist_data):
    """Full MNIST training set: x (60000, 784) float32 in [0, 1], one-hot y float32."""
    return mnist_data.x, np.eye(10, dtype=np.float32)[mnist_data.labels]


@pytest.fixture(scope="session")
def threads():
    """The thread count every implementation gets."""
    return THREADS


@pytest.fixture(params=IMPLS)
def impl(request):
    """Each implementation's name; PyTorch and JAX are skipped where not importable."""
    usable, notes = bench.available_impls([request.param])
    if not usable:
        pytest.skip(notes[0])
    if request.param == "jax":
        peers.start_jax(THREADS)
    return request.param


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
    params = request.node.callspec.params
    name = params.get("impl") or params["backend"]

    def _record(benchmark):
        benchmark.extra_info.update(thread_info(name))
        meta = getattr(benchmark, "stats", None)
        if meta is None:  # --benchmark-disable
            return
        _RESULTS[(meta.group, name)] = (meta.stats.min, meta.stats.median)
    return _record


def pytest_terminal_summary(terminalreporter):
    groups = sorted({group for group, _ in _RESULTS})
    others = [impl for impl in IMPLS if impl != "numba"]
    rows = [(g, _RESULTS.get((g, "numba")), [_RESULTS.get((g, o)) for o in others])
            for g in groups]
    rows = [row for row in rows if row[1] and any(row[2])]
    if not rows:
        return
    write = terminalreporter.write_line
    terminalreporter.section("numba time / other time, from min and from median "
                             "(below 1: numba is faster; 0.25 = a quarter of the time)")
    width = max(len(g) for g, _, _ in rows)
    write(f"{'group':<{width}}  {'numba min':>10} {'numba med':>10}"
          + "".join(f"  {'/' + o + ' min':>10} {'/' + o + ' med':>10}" for o in others))
    for group, (nb_min, nb_med), timings in rows:
        cells = "".join(f"  {'-':>10} {'-':>10}" if t is None
                        else f"  {nb_min / t[0]:>10.2f} {nb_med / t[1]:>10.2f}" for t in timings)
        write(f"{group:<{width}}  {_time(nb_min):>10} {_time(nb_med):>10}{cells}")


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.0f} ns"
