"""The machine and the libraries: CPU, GEMM peak, versions, threads, load."""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np

from .. import peers

#: Environment variables that change which BLAS kernels run; recorded with every run.
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")


def default_threads() -> int:
    """Every thread Numba can use in this process (its pool size)."""
    from ..threads import available_threads

    return available_threads()


def gemm_peak(size: int, repeat: int, threads: int) -> dict:
    """Dense float32 GEMM throughput: the best of ``repeat`` ``np.matmul`` of size^3."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    c = np.empty((size, size), np.float32)
    times = []
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=c)  # page in, wake the pool
        for _ in range(repeat):
            started = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - started)
    flop = 2 * size ** 3
    return {"size": size, "threads": threads, "repeat": repeat, "times_s": times,
            "min_s": min(times), "median_s": statistics.median(times),
            "gflops": flop / min(times) / 1e9, "gflops_median": flop / statistics.median(times) / 1e9}


def combine_peaks(*runs) -> dict:
    """One peak from several `gemm_peak` runs: the best time of all, the median of all."""
    times = [t for r in runs for t in r["times_s"]]
    flop = 2 * runs[0]["size"] ** 3
    return {"size": runs[0]["size"], "threads": runs[0]["threads"], "matmuls": len(times),
            "gflops": flop / min(times) / 1e9,
            "gflops_median": flop / statistics.median(times) / 1e9,
            "runs": list(runs)}


def environment(threads: int, impls=()) -> dict:
    """CPU, BLAS, library versions and the BLAS-related environment variables.

    Built from `fastnn.info` (what ``fastnn info`` shows), plus the builds of
    the peers among ``impls``.
    """
    from .. import info

    return {
        "cpu": info.cpu(),
        "threads": threads,
        "thread_counts": info.threads(),
        "platform": platform.platform(),
        "versions": info.versions(),
        "torch": peers.torch_info() if "torch" in impls else None,
        "jax": peers.jax_info() if "jax" in impls else None,
        "blas": info.blas(),
        "blas_env": {name: os.environ.get(name) for name in BLAS_ENV},
        "numba_threading_layer": info.threading_layer()["active"],
    }


def blas_summary(env: dict) -> str:
    """One line naming NumPy's BLAS, its version, the kernel it picked and its settings."""
    # SciPy (loaded by Numba) and PyTorch bring BLAS libraries of their own;
    # np.matmul, the peak and the numpy backend use NumPy's.
    numpy_blas = [p for p in env["blas"] if "numpy" in (p["filepath"] or "")] or \
        [p for p in env["blas"] if "torch" not in (p["filepath"] or "")]
    core = env["blas_env"].get("OPENBLAS_CORETYPE") or "unset"
    l2 = env["blas_env"].get("OPENBLAS_L2_SIZE") or "unset"
    setting = f"OPENBLAS_CORETYPE {core}, OPENBLAS_L2_SIZE {l2}"
    if not numpy_blas:
        return f"NumPy BLAS: not detected; {setting}"
    p = numpy_blas[0]
    return (f"NumPy BLAS: {p['internal_api']} {p['version']} "
            f"({os.path.basename(p['filepath'] or '?')}), kernel {p['architecture']}; {setting}")


def load_average():
    """The 1-minute load average (None where the OS has none): other work on the cores."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
