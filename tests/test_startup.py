"""What starting up imports: every ``fastnn`` command pays for it before it works."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def modules_after(statement: str) -> set:
    """The modules a fresh interpreter holds after running ``statement``."""
    return set(run_fresh(f"import sys; {statement}; print(' '.join(sys.modules))").split())


def run_fresh(code: str) -> str:
    """What a fresh interpreter running ``code`` prints."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout


def test_the_numba_backend_loads_scipys_blas_without_the_rest_of_scipy_linalg():
    """``scipy.linalg``'s own ``__init__`` would add 0.2 s to every start."""
    modules = modules_after("import kernels.numba_backend")
    assert "scipy.linalg.cython_blas" in modules
    assert "scipy.linalg" not in modules


def test_a_run_without_progress_bars_does_not_import_tqdm():
    modules = modules_after("import fastnn.cli, fastnn.workflow, fastnn.progress")
    assert "tqdm" not in modules


def test_finding_the_cache_directory_does_not_import_the_downloader():
    """pooch brings requests: 0.15 s of a start-up that finds its data on disk."""
    modules = modules_after("from fastnn import mnist; mnist.cache_dir()")
    assert "pooch" not in modules and "requests" not in modules


def test_the_forward_pass_from_a_warm_disk_cache_skips_numbas_compiler_set_up():
    """Numba's cache loader first imports every feature it could compile (0.2 s).

    The engine's forward pass, loaded from the disk cache in a fresh process,
    gives the NumPy reference's probabilities without it.
    """
    forward = ("import numpy as np; from kernels import _jit, numba_backend; "
               "from fastnn.network import Network; "
               "net = Network([784, 32, 10], seed=1); "
               "x = np.random.default_rng(2).random((50, 784), dtype=np.float32); "
               "x[x < 0.8] = 0; "
               "numba_backend.warmup(np.float32, training=False); "
               "p = net.output_proba(x, backend='numba'); "
               "q = net.output_proba(x, backend='numpy'); "
               "assert np.allclose(p, q, rtol=1e-5, atol=1e-6), abs(p - q).max(); "
               "print('compiled', _jit.compile_stats()[0])")
    run_fresh(forward)  # the disk cache holds the forward pass after this
    compiled, modules = run_fresh(f"import sys; {forward}; print(*sys.modules)").split("\n", 1)
    assert compiled == "compiled 0"
    assert "numba.np.arraymath" not in modules.split()
