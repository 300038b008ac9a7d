"""Parity tolerances: how close the Numba backend must be to the NumPy reference.

One place for every ``(rtol, atol)`` used by tests/test_parity.py and
tests/test_threads.py. The two backends compute the same formulas but sum in
different orders (BLAS blocks and pairwise sums against sequential, SIMD-
reassociated loops), and the Numba one may fuse a multiply-add into one FMA,
so results differ by rounding only.

float64: machine epsilon is 2.2e-16; a sum of a few dozen terms of order 1
  differs by a few ulps, hence 1e-12. An epoch of a few steps feeds those
  differences through later steps, so allow 1e-10.
float32: epsilon is 1.2e-7; sums of up to ~100 terms in a different order
  differ by ~1e-6 relative, hence 1e-5. Over a few training steps the
  differences compound (and a loss is a sum over a batch), hence 1e-4.
"""

import numpy as np

KERNEL = {
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12),
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6),
}

EPOCH = {
    np.dtype(np.float64): dict(rtol=1e-10, atol=1e-10),
    np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5),
}


def kernel_tol(dtype) -> dict:
    """Tolerance for one kernel call on arrays of ``dtype``."""
    return KERNEL[np.dtype(dtype)]


def epoch_tol(dtype) -> dict:
    """Tolerance for parameters and losses after a few training steps."""
    return EPOCH[np.dtype(dtype)]
