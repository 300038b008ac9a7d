"""What this machine and installation offer fastnn: versions, CPU, threads, BLAS, caches.

`gather` returns plain JSON-able data (the ``fastnn info`` command prints
it). Nothing here compiles code or changes a setting; asking Numba for its
thread count starts its (idle) thread pool, which is what settles the
threading layer.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from pathlib import Path

#: SIMD extensions worth reporting, oldest first, as /proc/cpuinfo names them.
SIMD_FLAGS = ("sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f",
              "avx512dq", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile",
              "neon", "asimd", "sve")
# LLVM spells a few of them differently (its host features work on every OS).
_LLVM_NAMES = {"pni": "sse3", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "avx512vnni": "avx512_vnni",
               "avx512bf16": "avx512_bf16", "amx-tile": "amx_tile", "sve": "sve"}
#: Numba's threading layers in the order its "default" setting tries them.
THREADING_LAYERS = (("tbb", "tbbpool"), ("omp", "omppool"), ("workqueue", "workqueue"))


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except (ImportError, AttributeError):
        return None


def versions() -> dict:
    """Versions of Python, fastnn and the libraries it runs on (None if not installed)."""
    from . import __version__

    found = {"fastnn": __version__, "python": platform.python_version()}
    for name in ("numpy", "numba", "llvmlite", "scipy", "threadpoolctl", "tqdm",
                 "matplotlib", "PIL", "optuna"):
        found["pillow" if name == "PIL" else name] = _version(name)
    return found


def _cpuinfo(path: str = "/proc/cpuinfo") -> dict:
    """The first processor's fields from /proc/cpuinfo ({} where there is none)."""
    fields = {}
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def simd_features(flags) -> list:
    """The `SIMD_FLAGS` among ``flags`` (names as in /proc/cpuinfo), in that order."""
    flags = set(flags)
    return [flag for flag in SIMD_FLAGS if flag in flags]


def cpu(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
    """CPU model, LLVM's name for it, and its SIMD extensions.

    The flags come from /proc/cpuinfo on Linux, else from LLVM's view of the
    host (what Numba compiles for).
    """
    fields = _cpuinfo(cpuinfo_path)
    model = (fields.get("model name") or fields.get("Model") or fields.get("Hardware")
             or platform.processor() or None)
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    flags = [_LLVM_NAMES.get(flag, flag) for flag in flags]  # /proc/cpuinfo says pni for sse3
    source = "/proc/cpuinfo"
    llvm_name = None
    try:
        import llvmlite.binding as llvm

        llvm_name = llvm.get_host_cpu_name()
        if not flags:
            features = llvm.get_host_cpu_features()
            flags = [_LLVM_NAMES.get(name, name) for name, on in features.items() if on]
            source = "llvm"
    except (ImportError, RuntimeError):
        pass
    import numba

    return {
        "model": model,
        "machine": platform.machine(),
        "llvm_name": llvm_name,
        # NUMBA_CPU_NAME makes cached machine code portable (e.g. "generic").
        "numba_target": numba.config.CPU_NAME or "host",
        "simd": simd_features(flags),
        "simd_source": source if flags else None,
    }


def threads() -> dict:
    """Thread counts: logical CPUs, CPUs this process may use, Numba's pool, BLAS pools."""
    import numba
    from threadpoolctl import threadpool_info

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    blas = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    try:
        current = numba.get_num_threads()
    except ValueError:  # no threading layer can load: see `threading_layer`
        current = None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "numba_max": numba.config.NUMBA_NUM_THREADS,
        "numba_current": current,
        "blas": blas[0]["num_threads"] if blas else None,
    }


def blas() -> list:
    """The BLAS libraries loaded in this process (threadpoolctl's records)."""
    from threadpoolctl import threadpool_info

    keys = ("internal_api", "version", "num_threads", "threading_layer", "architecture",
            "filepath")
    return [{key: pool.get(key) for key in keys}
            for pool in threadpool_info() if pool.get("user_api") == "blas"]


def threading_layer() -> dict:
    """Numba's threading layer: as configured, which layers can load, which one runs.

    ``numba.threading_layer()`` answers only once the thread pool has started
    (a parallel function ran, or the thread count was asked), so this starts
    the pool first. If no layer can load, ``active`` is None and ``error``
    says why (training on the numba backend would then fail the same way).
    """
    import numba

    configured = numba.config.THREADING_LAYER
    available = []
    for name, module in THREADING_LAYERS:
        try:
            importlib.import_module(f"numba.np.ufunc.{module}")
            available.append(name)
        except ImportError:  # e.g. tbb: libtbb missing
            continue
    error = None
    try:
        numba.get_num_threads()  # starts the pool: picks the layer
        active = numba.threading_layer()
    except ValueError as err:
        active, error = None, str(err).splitlines()[0]
    return {"configured": configured, "available": available, "active": active,
            "error": error}


def jit_cache_dir() -> tuple:
    """``(directory, origin)``: where Numba keeps the compiled kernels of fastnn between runs.

    With ``NUMBA_CACHE_DIR`` set, there; otherwise in ``__pycache__`` next to
    the kernels' source, or (if that is not writable) in Numba's per-user
    cache directory.
    """
    import numba
    import kernels

    configured = numba.config.CACHE_DIR
    if configured:
        return Path(configured).expanduser(), "NUMBA_CACHE_DIR"
    source_dir = Path(kernels.__file__).resolve().parent
    where = source_dir / "__pycache__"
    if os.access(where if where.exists() else source_dir, os.W_OK):
        return where, "next to the kernels"
    from numba.misc.appdirs import AppDirs

    return (Path(AppDirs(appname="numba", appauthor=False).user_cache_dir),
            "Numba's user cache (the kernels' directory is read-only)")


def jit_cache() -> dict:
    """The JIT cache (`jit_cache_dir`) and what it holds.

    ``epoch_loop_dtypes`` lists the dtypes whose training loop is cached
    fresh (compiled from the current source) for this CPU, for a first layer
    wider than ``NARROW_LANES`` (16) units; ``narrow_epoch_loop_dtypes`` for
    a first layer of at most that many, which runs other variants of two
    kernels.
    """
    import kernels

    where, origin = jit_cache_dir()
    entries = list(where.rglob("numba_*.nbi")) if where.is_dir() else []
    numba_backend = kernels.get_backend("numba")
    dtypes = ("float32", "float64")
    loop_dtypes = [dtype for dtype in dtypes if numba_backend.is_cached(dtype)]
    narrow_dtypes = [dtype for dtype in dtypes if numba_backend.is_cached(
        dtype, first_layer_width=numba_backend.NARROW_LANES)]
    return {"dir": str(where), "origin": origin, "cached_kernels": len(entries),
            "epoch_loop_cached": bool(loop_dtypes or narrow_dtypes),
            "epoch_loop_dtypes": loop_dtypes, "narrow_epoch_loop_dtypes": narrow_dtypes,
            "last_compiles": last_compiles(where)}


#: File in the JIT cache directory where fastnn notes how long compiling took.
COMPILE_LOG = "fastnn-compile-times.json"


def last_compiles(where=None) -> dict:
    """``{dtype: {"seconds", "estimate", "numba"}}`` of the last compile per dtype noted here."""
    where = jit_cache_dir()[0] if where is None else Path(where)
    try:
        noted = json.loads((where / COMPILE_LOG).read_text())
    except (OSError, ValueError):
        return {}
    return noted if isinstance(noted, dict) else {}


def note_compile(dtype: str, seconds: float, estimate: float) -> None:
    """Remember in the cache dir that compiling ``dtype``'s kernels took ``seconds``.

    ``estimate`` is what the backend estimated from its measured costs: the
    ratio of the two is this machine's pace, for the next notice.

    Best effort: a cache dir that cannot be written loses only this note.
    """
    import numba

    where = jit_cache_dir()[0]
    noted = last_compiles(where)
    noted[dtype] = {"seconds": round(seconds, 1), "estimate": round(estimate, 2),
                    "numba": numba.__version__}
    try:
        where.mkdir(parents=True, exist_ok=True)
        temporary = where / f"{COMPILE_LOG}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(noted, indent=1) + "\n")
        os.replace(temporary, where / COMPILE_LOG)
    except OSError:
        pass


def data() -> dict:
    """The download cache and where full MNIST was found locally (None: not found)."""
    from . import mnist

    found = mnist.find_local()
    return {"cache_dir": str(mnist.cache_dir()), "mnist_dir": str(found) if found else None,
            "data_dir_env": os.environ.get(mnist.DATA_DIR_ENV) or None}


def gather() -> dict:
    """Everything above, as one JSON-able dict."""
    import kernels

    return {
        "versions": versions(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "cpu": cpu(),
        "threads": threads(),
        "blas": blas(),
        "numba_threading_layer": threading_layer(),
        "jit_cache": jit_cache(),
        "default_backend": kernels.default_backend(),
        "data": data(),
    }
