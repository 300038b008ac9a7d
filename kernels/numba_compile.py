"""Compiling the engine: the parts a run needs, on first use, in two processes when cold.

A *part* is one compiled function of the engine, named after it: a unit of
``numba_engine.py`` (``forward_block`` ...), a unit's variant for a narrow
first layer (``narrow_first_layer_block``, ``narrow_gradient_block``), a
unit's stand-in (``gradient_block_unused`` ...), the drivers ``train_steps`` and
``forward_rows``, and ``prepare_inputs``. Each compiles on its own, for the
signature ``numba_engine`` writes out, and is cached on disk; which parts a
run needs is the backend's call (``numba_backend.warmup``), how they get
compiled is this module's.

Compiling is single-threaded, and one part takes up to 4 s of CPU. When
parts are missing from the disk cache and the machine has two cores or
more, a second process compiles about half of them into the cache while
this one compiles the rest, then this one loads them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ._jit import compile_stats
from ._jit import is_cached as _is_cached
from .common import WarmupInfo
from .numba_engine import (LAYER_SLOTS, NARROW_UNITS, STAND_INS, UNIT_FUNCTIONS, Units,
                           engine_unit, forward_rows, forward_rows_types, is_narrow, train_steps,
                           train_steps_types)
from .numba_inputs import count_nonzeros, gather_nonzeros, prepare_inputs

#: Every part: each unit, each narrow variant, each stand-in, the two drivers, the
#: inputs' preparation.
ALL_PARTS = (*Units._fields, *(f"narrow_{name}" for name in NARROW_UNITS),
             *(f"{name}_unused" for name in STAND_INS), "train_steps", "forward_rows",
             "prepare_inputs")

#: Seconds of CPU each part takes to compile from an empty cache (float32, AMD
#: EPYC Zen 3: each part alone in a fresh process and cache, two rounds on a
#: slow stretch of a noisy shared machine, less the 0.25 s a process's first
#: compile costs on top, scaled by 0.75 to its usual speed; float64 costs
#: about the same; ``python scripts/compile_costs.py`` measures them). The
#: first layer's and the gradient's units, and their narrow variants, were
#: measured after they split in two, against the units before on the same
#: minutes, and scaled by those ratios. Only their ratios matter: they split
#: the parts between processes.
COMPILE_SECONDS = {"deltas_block": 1.6, "train_steps": 1.6, "gradient_block": 1.8,
                   "narrow_gradient_block": 1.6, "narrow_first_layer_block": 1.5,
                   "first_layer_block": 1.4, "forward_block": 1.4, "update_block": 0.55,
                   "gradient_update_row": 0.4, "prepare_inputs": 0.35, "forward_rows": 0.3}

#: A stand-in's compile: its signature's typing, an empty body.
STAND_IN_SECONDS = 0.2

#: What a second process spends starting Python and importing the kernels
#: before it compiles anything (0.7-0.95 s measured on the same slow stretch).
HELPER_START_SECONDS = 0.6

#: The compiled functions behind each part, as ``_jit.is_cached`` checks them.
_PART_FUNCTIONS = {**dict(zip(Units._fields, ((f,) for f in UNIT_FUNCTIONS))),
                   **{f"narrow_{name}": (f,) for name, f in NARROW_UNITS.items()},
                   **{f"{name}_unused": (f,) for name, f in STAND_INS.items()},
                   "train_steps": (train_steps,), "forward_rows": (forward_rows,),
                   "prepare_inputs": (count_nonzeros, gather_nonzeros)}

_loaded = set()  # (dtype name, part) compiled or loaded in this process


def training_parts(units, first_layer_width) -> tuple:
    """The parts of a training run that calls ``units`` (a set of unit names).

    The units (their narrow variants for a narrow first layer of
    ``first_layer_width`` units), the stand-ins of the others, both drivers
    (the forward pass scores validation data) and the inputs' preparation.
    """
    return (*(_unit_part(name, first_layer_width) if name in units else f"{name}_unused"
              for name in Units._fields), "train_steps", "forward_rows", "prepare_inputs")


def forward_parts(first_layer_width) -> tuple:
    """What evaluating and predicting need: the forward pass alone."""
    return (_unit_part("first_layer_block", first_layer_width), "forward_block", "forward_rows",
            "prepare_inputs")


def _unit_part(name, first_layer_width) -> str:
    """The part that serves as unit ``name`` for a first layer of this many units."""
    return f"narrow_{name}" if name in NARROW_UNITS and is_narrow(first_layer_width) else name


def is_loaded(dtype, parts) -> bool:
    """Whether every part is compiled or loaded in this process, for ``dtype``."""
    name = np.dtype(dtype).name
    return all((name, part) in _loaded for part in parts)


def is_cached(dtype, parts) -> bool:
    """Whether the disk cache holds every part for ``dtype``, compiled for this CPU.

    From the kernels' current source; a look at the cache's indexes, nothing
    is loaded. (A first run stopped halfway leaves some parts cached and not
    others.)
    """
    name = np.dtype(dtype).name
    return all(_is_cached(function, name) for part in parts for function in _PART_FUNCTIONS[part])


def load_or_compile(dtype, parts) -> WarmupInfo:
    """Load ``parts`` for ``dtype`` from the disk cache, compiling those it lacks.

    Those it lacks are split between this process and a second one when the
    machine has two cores or more (`split_parts`). Parts already in this
    process are free.
    """
    dtype = np.dtype(dtype)
    compiled_before, loaded_before = compile_stats()
    t0 = time.perf_counter()
    missing = [part for part in parts if (dtype.name, part) not in _loaded]
    elsewhere = _split_here(_uncached(dtype, missing))[1]
    helper = _compile_elsewhere(dtype, elsewhere) if elsewhere else None
    try:
        compile_parts(dtype, [part for part in missing if helper is None or part not in elsewhere])
        if helper is not None:
            helper.wait()
    finally:
        if helper is not None and helper.poll() is None:  # interrupted: stop it too
            helper.kill()
            helper.wait()
    compile_parts(dtype, elsewhere)  # loads what the helper compiled, or compiles what it did not
    seconds = time.perf_counter() - t0
    compiled_after, loaded_after = compile_stats()
    return WarmupInfo(seconds, compiled_after - compiled_before, loaded_after - loaded_before)


def estimate_seconds(dtype, parts) -> float:
    """Wall seconds `load_or_compile` would spend compiling ``parts``, at `COMPILE_SECONDS`.

    Parts in this process or the disk cache cost nothing; the others are
    split as `load_or_compile` splits them. A machine of another speed
    takes proportionally longer or shorter.
    """
    name = np.dtype(dtype).name
    here, elsewhere = _split_here(_uncached(dtype, [part for part in parts
                                                    if (name, part) not in _loaded]))
    if not elsewhere:
        return _cost(here)
    return max(_cost(here), HELPER_START_SECONDS + _cost(elsewhere))


def _uncached(dtype, parts) -> list:
    """The ``parts`` the disk cache lacks for ``dtype``."""
    return [part for part in parts if not is_cached(dtype, (part,))]


def _split_here(parts) -> tuple:
    """`split_parts` on a machine of two cores or more; on one, everything here."""
    return split_parts(parts) if _usable_cpus() > 1 else (tuple(parts), ())


def _cost(parts) -> float:
    return sum(COMPILE_SECONDS.get(part, STAND_IN_SECONDS) for part in parts)


def split_parts(parts) -> tuple:
    """``(here, elsewhere)``: ``parts`` split so that two processes finish together.

    Biggest first, each to the process with less to do; the second process
    starts `HELPER_START_SECONDS` behind. ``elsewhere`` is empty when a
    second process would save less than that.
    """
    here, elsewhere = [], []
    load_here, load_elsewhere = 0.0, HELPER_START_SECONDS
    for part in sorted(parts, key=lambda part: _cost((part,)), reverse=True):
        if load_here <= load_elsewhere:
            here.append(part)
            load_here += _cost((part,))
        else:
            elsewhere.append(part)
            load_elsewhere += _cost((part,))
    if _cost(parts) - max(load_here, load_elsewhere) < HELPER_START_SECONDS:
        return tuple(parts), ()
    return tuple(here), tuple(elsewhere)


def compile_parts(dtype, parts):
    """Compile (or load from the disk cache) ``parts`` for ``dtype``, in this process."""
    dtype = np.dtype(dtype)
    with _few_collections():
        for part in parts:
            _compile_part(dtype, part)


def _compile_part(dtype, part):
    """Compile (or load) one part for ``dtype`` (a NumPy dtype)."""
    if part in Units._fields:
        engine_unit(part, dtype.name, LAYER_SLOTS)
    elif part.startswith("narrow_") and part[len("narrow_"):] in NARROW_UNITS:
        engine_unit(part[len("narrow_"):], dtype.name, LAYER_SLOTS, narrow=True)
    elif part.endswith("_unused") and part[:-len("_unused")] in STAND_INS:
        engine_unit(part[:-len("_unused")], dtype.name, LAYER_SLOTS, stand_in=True)
    elif part == "forward_rows":
        forward_rows.compile(forward_rows_types(dtype.name, LAYER_SLOTS))
    elif part == "train_steps":
        train_steps.compile(train_steps_types(dtype.name, LAYER_SLOTS))
    elif part == "prepare_inputs":
        prepare_inputs(np.zeros((1, 1), dtype))
    else:
        raise ValueError(f"no compiled part named {part!r}")
    _loaded.add((dtype.name, part))


@contextlib.contextmanager
def _few_collections():
    """Python's cyclic garbage collector run rarely, for the duration of a compile.

    Numba's compiler allocates millions of short-lived objects: at the
    default threshold (a collection per 700 net allocations) the collector
    ran ~935 times in a float32 training compile and took 1.3-1.7 s of its
    CPU; with 50,000, ~125 times and 0.5-0.6 s (measured on the README's
    machine). The threshold is put back afterwards.
    """
    saved = gc.get_threshold()
    gc.set_threshold(max(saved[0], 50_000), *saved[1:])
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _compile_elsewhere(dtype, parts):
    """Start a process that compiles (or loads) ``parts`` for ``dtype``; or None.

    It writes to the same disk cache, from which this process then loads
    them. It imports these kernels, from this file's directory, whatever the
    working directory holds.
    """
    package_parent = str(Path(__file__).resolve().parent.parent)
    code = (f"import sys; sys.path.insert(0, {package_parent!r}); import numpy as np; "
            "from kernels import numba_compile; "
            f"numba_compile.compile_parts(np.dtype('{dtype.name}'), {list(parts)!r})")
    try:
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None  # then this process compiles them, as it would anyway
