"""Getting a backend ready to train: thread pools sized, kernels compiled (or loaded)."""

from __future__ import annotations

import os
import threading

import kernels

from . import info
from .config import ConfigError

#: A machine's compile time over the estimate from the measured costs per part
#: (``kernels/numba_compile.py``), when this machine has not compiled before:
#: the costs are CPU seconds, and a run also loads, imports and shares the
#: cores (cold runs on the 2-core AMD EPYC of the README: 1.1-1.3).
TYPICAL_PACE = 1.2


def expected_compile_seconds(estimate: float, dtype: str) -> float:
    """Seconds a compile the backend estimates at ``estimate`` should take here.

    At this machine's pace: the last compile noted here over its own
    estimate, else `TYPICAL_PACE`.
    """
    noted = info.last_compiles().get(dtype) or {}
    if noted.get("estimate", 0) > 0 and noted.get("seconds", 0) > 0:
        return estimate * noted["seconds"] / noted["estimate"]
    return estimate * TYPICAL_PACE


def prepare_backend(backend: str, dtype: str, batch_size: int, *,
                    first_layer_width: int | None = None, threads: int | None = None,
                    note=lambda message: None, training: bool = True) -> float:
    """Size the thread pools and compile (or load) the kernels, telling ``note`` about it.

    ``first_layer_width`` is the number of units of the network's first
    layer (it chooses between variants of the kernels; None: a layer of
    more than 16); ``threads`` defaults to every usable core;
    ``training=False`` prepares the forward pass only (for evaluating and
    predicting). Returns the seconds spent compiling or loading kernels.
    """
    from .threads import available_threads, configure_threads  # numba: only when a run starts

    threads = threads or available_threads()
    if threads > available_threads():
        raise ConfigError(f"--threads {threads}: this process can use at most "
                          f"{available_threads()}")
    # The engine's threads do the work in its compiled loop; a BLAS pool running beside
    # them would fight for the same cores. NumPy's only parallel code is BLAS.
    configure_threads(threads, blas=threads if backend == "numpy" else 1)
    kern = kernels.get_backend(backend)
    which = {"training": training, "first_layer_width": first_layer_width}
    if kern.is_compiled(dtype, batch_size, **which):
        return 0.0
    notice = None
    estimate = kern.compile_estimate(dtype, batch_size, **which)
    if estimate > 0:  # only loading: no notice
        expect = expected_compile_seconds(estimate, dtype)
        what = "kernels" if training else "forward pass"
        notice = threading.Timer(1.0, note, (f"compiling the Numba {what} for {dtype}: "
                                             f"about {max(1, round(expect))}s; once, then "
                                             "cached ...",))
        notice.start()
    try:
        done = kern.warmup(dtype, batch_size, **which)
    finally:
        if notice is not None:
            notice.cancel()
    if done.compiled and estimate > 0:
        info.note_compile(dtype, done.seconds, estimate)
        note(f"compiled {done.compiled} kernel signatures in {done.seconds:.1f}s "
             "(cached for later runs)")
    return done.seconds


def inference_backend(requested: str | None, dtype: str, first_layer_width: int | None = None,
                      note=lambda message: None) -> str:
    """The backend to evaluate or predict with: ``requested``, else the default backend.

    Except that when no backend was asked for (by option or
    ``$FASTNN_BACKEND``) and the numba forward pass is not compiled on this
    machine yet (for ``dtype`` and a first layer of ``first_layer_width``
    units), it is not worth compiling for this: the NumPy backend scores
    the whole test set in milliseconds, against seconds of compiling, and
    gives the same results to float precision. ``note`` is told so.
    """
    if requested is not None or os.environ.get(kernels.BACKEND_ENV_VAR, "").strip():
        return requested or kernels.default_backend()
    backend = kernels.default_backend()
    if backend == "numba" and not kernels.get_backend("numba").is_cached(
            dtype, training=False, first_layer_width=first_layer_width):
        note("the numba forward pass is not compiled on this machine yet: using the numpy "
             "backend (the same results; a first 'fastnn train' or 'fastnn compile' compiles it)")
        return "numpy"
    return backend
