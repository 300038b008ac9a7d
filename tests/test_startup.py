"""What starting up imports: every ``fastnn`` command pays for it before it works."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def modules_after(statement: str) -> set:
    """The modules a fresh interpreter holds after running ``statement``."""
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True)
    return set(done.stdout.split())


def test_the_numba_backend_loads_scipys_blas_without_the_rest_of_scipy_linalg():
    """``scipy.linalg``'s own ``__init__`` would add 0.2 s to every start."""
    modules = modules_after("import kernels.numba_backend")
    assert "scipy.linalg.cython_blas" in modules
    assert "scipy.linalg" not in modules


def test_a_run_without_progress_bars_does_not_import_tqdm():
    modules = modules_after("import fastnn.cli, fastnn.workflow, fastnn.progress")
    assert "tqdm" not in modules
