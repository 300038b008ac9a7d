"""Getting a backend ready to train: thread pools sized, kernels compiled (or loaded)."""

from __future__ import annotations

import os
import threading

import kernels

from . import info
from .config import ConfigError

#: Seconds the numba kernels of one dtype take to compile from an empty cache:
#: a cold `fastnn train` took 11.5-12.9 s in all (a warm one 1.9-2.1 s) on a
#: 2-core AMD EPYC (Zen 3) in a slow stretch of a shared machine, with
#: `scripts/bench_cold_start.py`. The notice says the last time this machine
#: took, once known.
TYPICAL_COMPILE_SECONDS = 11

#: The same for the forward pass alone, all that `evaluate` and `predict`
#: compile with ``--backend numba``: a cold `fastnn evaluate --backend numba`
#: took 6.8 s in all (warm: 1.3-1.7 s) on that machine.
TYPICAL_FORWARD_COMPILE_SECONDS = 5


def prepare_backend(backend: str, dtype: str, batch_size: int, *, threads: int | None = None,
                    note=lambda message: None, training: bool = True) -> float:
    """Size the thread pools and compile (or load) the kernels, telling ``note`` about it.

    ``threads`` defaults to every usable core; ``training=False`` prepares the
    forward pass only (for evaluating and predicting). Returns the seconds
    spent compiling or loading kernels.
    """
    from .threads import available_threads, configure_threads  # numba: only when a run starts

    threads = threads or available_threads()
    if threads > available_threads():
        raise ConfigError(f"--threads {threads}: this process can use at most "
                          f"{available_threads()}")
    # Numba's threads do the work in its compiled loop; a BLAS pool running beside
    # them would fight for the same cores. NumPy's only parallel code is BLAS.
    configure_threads(threads, blas=threads if backend == "numpy" else 1)
    kern = kernels.get_backend(backend)
    if kern.is_compiled(dtype, batch_size, training=training):
        return 0.0
    notice = None
    if not kern.is_cached(dtype, batch_size, training=training):  # only loading: no notice
        noted = info.last_compiles().get(dtype) if training else None
        typical = TYPICAL_COMPILE_SECONDS if training else TYPICAL_FORWARD_COMPILE_SECONDS
        expect = (f"about {noted['seconds']:.0f}s, as last time" if noted else
                  f"about {typical}s on 2 cores")
        what = "kernels" if training else "forward pass"
        notice = threading.Timer(1.0, note, (f"compiling the Numba {what} for {dtype}: "
                                             f"{expect}; once, then cached ...",))
        notice.start()
    try:
        done = kern.warmup(dtype, batch_size, training=training)
    finally:
        if notice is not None:
            notice.cancel()
    if done.compiled and training:
        info.note_compile(dtype, done.seconds)
        note(f"compiled {done.compiled} kernel signatures in {done.seconds:.1f}s "
             "(cached for later runs)")
    return done.seconds


def inference_backend(requested: str | None, dtype: str, note=lambda message: None) -> str:
    """The backend to evaluate or predict with: ``requested``, else the default backend.

    Except that when no backend was asked for (by option or
    ``$FASTNN_BACKEND``) and the numba forward pass is not compiled on this
    machine yet (for ``dtype``), it is not worth compiling for this: the NumPy backend scores
    the whole test set in milliseconds, against seconds of compiling, and
    gives the same results to float precision. ``note`` is told so.
    """
    if requested is not None or os.environ.get(kernels.BACKEND_ENV_VAR, "").strip():
        return requested or kernels.default_backend()
    backend = kernels.default_backend()
    if backend == "numba" and not kernels.get_backend("numba").is_cached(dtype, training=False):
        note("the numba forward pass is not compiled on this machine yet: using the numpy "
             "backend (the same results; a first 'fastnn train' or 'fastnn compile' compiles it)")
        return "numpy"
    return backend
