"""The disk cache of compiled kernels goes stale when any kernel module changes.

Numba stamps a cached function with its own source file only, but the engine's
functions carry their callees' code from other modules; fastnn's locator adds
every kernel module to the stamp.
"""

import os
import shutil

from numba.core import caching

import kernels
from kernels import _jit
from kernels.numba_engine import train_steps


def test_kernels_are_cached_with_a_stamp_over_every_kernel_module():
    locator = train_steps._cache._impl.locator
    assert isinstance(locator, _jit._AllKernelSourcesLocator)
    names = [name for name, _, _ in locator.get_source_stamp()[1]]
    assert {"numba_affine.py", "numba_phases.py", "numba_engine.py",
            "numba_elementwise.py"} <= set(names)


def test_the_stamp_changes_when_another_kernel_module_changes(tmp_path, monkeypatch):
    kernels_dir = os.path.dirname(kernels.__file__)
    for name in ("numba_engine.py", "numba_affine.py"):
        shutil.copy2(os.path.join(kernels_dir, name), tmp_path / name)
    monkeypatch.setattr(_jit, "_KERNELS_DIR", tmp_path)
    before = _jit._kernel_sources_stamp()
    assert [name for name, _, _ in before] == ["numba_affine.py", "numba_engine.py"]
    stat = os.stat(tmp_path / "numba_affine.py")
    os.utime(tmp_path / "numba_affine.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert _jit._kernel_sources_stamp() != before


def test_functions_outside_the_kernels_keep_numbas_own_locator(tmp_path):
    assert _jit._AllKernelSourcesLocator.from_function(len, str(tmp_path / "elsewhere.py")) is None
    assert caching.CacheImpl._locator_classes[0] is _jit._AllKernelSourcesLocator


def test_a_warmed_up_dtype_is_cached_for_this_cpu():
    """What `fastnn info`, the compile notice and evaluate's backend choice rely on."""
    import numpy as np

    numba_backend = kernels.get_backend("numba")
    numba_backend.warmup(np.float32)
    assert numba_backend.is_cached(np.float32)
    assert numba_backend.is_cached(np.float32, training=False)
    assert kernels.get_backend("numpy").is_cached(np.float64)


def test_a_half_compiled_training_loop_is_not_cached(tmp_path):
    """A first run stopped halfway leaves some parts cached: then warmup still compiles.

    In a fresh process and cache, the epoch loop and the prediction driver
    are compiled, and none of the phase units they call.
    """
    import subprocess
    import sys
    from pathlib import Path

    code = ("import numpy as np; from kernels import numba_backend as nb, numba_compile; "
            "numba_compile.compile_parts(np.float32, ['train_steps', 'forward_rows']); "
            "print(nb.is_cached(np.float32), nb.is_cached(np.float32, training=False))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(kernels.__file__).resolve().parent.parent,
                          env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert done.stdout.split() == ["False", "False"]
