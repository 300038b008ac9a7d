"""Affine layers for the numba backend: BLAS for big products, short loops for small ones.

Three kinds of product appear in training, each over a block of rows:

* ``z = a @ w``          the forward pass of a dense layer,
* ``g = d @ w.T``        the gradient at a layer's input (its input's delta),
* ``grad_w += a.T @ d``  a weight gradient, summed over the batch.

`matmul`, `matmul_wt` and `add_matmul_at` compute them. When the product is
big enough for BLAS to pay (`uses_blas`) they call the single-threaded
``sgemm``/``dgemm`` of SciPy's OpenBLAS from compiled code; below that,
plain loops that LLVM vectorises, because a BLAS call costs about a
microsecond of set-up, which is more than a batch-1 layer's work. The
choice is made per tile of rows, not per thread's block, so that the
summation order does not depend on the number of threads.

The first layer reads its input through the nonzero pixels only
(`sparse_affine_row`, or `narrow_affine_row` for at most `NARROW_LANES`
units): a zero input adds nothing to ``x @ w``.

All arrays are C-contiguous float32 or float64, rows as samples, and a
product computes in the dtype it is given.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

import numba.np.linalg
import numpy as np
from numba import types

from ._jit import jit


def _load_cython_blas():
    """Load ``scipy.linalg.cython_blas`` without running ``scipy.linalg/__init__``.

    Numba's gemm helper (below) imports that module on its first call to
    find SciPy's BLAS. The usual import first runs the package's
    ``__init__``, which imports most of SciPy's linear algebra: 0.2 s, a
    fifth of a warm start. The extension module needs nothing of it, so it
    is loaded from its file and registered under its own name, where Numba's
    import (and anyone's later) finds it. Loaded now, at import, so that
    thread limits set before the first product reach its BLAS.
    """
    name = "scipy.linalg.cython_blas"
    if name in sys.modules:
        return
    try:
        scipy_dir = importlib.util.find_spec("scipy").submodule_search_locations[0]
        suffixes = importlib.machinery.EXTENSION_SUFFIXES
        path = next(p for p in (os.path.join(scipy_dir, "linalg", f"cython_blas{suffix}")
                                for suffix in suffixes) if os.path.exists(p))
        loader = importlib.machinery.ExtensionFileLoader(name, path)
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
        loader.exec_module(module)
        sys.modules[name] = module
    except (ImportError, OSError, StopIteration, TypeError, AttributeError):
        importlib.import_module(name)  # the usual way, slower


_load_cython_blas()
numba.np.linalg.ensure_blas()  # refuses a SciPy whose BLAS integers Numba was not built for

#: Multiply-adds from which a product goes to BLAS instead of the loops below.
#: Measured on 2 cores (AMD EPYC, float32): a 32x128 @ 128x64 block (262k)
#: is 2x faster in BLAS; a 1x128 @ 128x64 row (8k) 3x faster in the loops.
BLAS_MIN_WORK = 32768

@jit(internal=True)
def uses_blas(tile_rows, w):
    """Whether a tile of ``tile_rows`` rows times w (k, m) goes to BLAS."""
    return tile_rows * w.shape[0] * w.shape[1] >= BLAS_MIN_WORK


# Numba's own C helper around SciPy's cython_blas ?gemm (column-major, Fortran
# order of arguments, scalars passed by pointer). It takes the GIL only the
# first time, to look the function up, so threads may call it.
_xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char, types.intp, types.intp, types.intp,
    types.voidptr, types.voidptr, types.intp, types.voidptr, types.intp,
    types.voidptr, types.voidptr, types.intp))

_N = np.int8(ord("N"))
_T = np.int8(ord("T"))
_SINGLE = np.int8(ord("s"))
_DOUBLE = np.int8(ord("d"))
# BLAS reads alpha and beta through pointers: alpha is 1, beta 0 or 1, so
# they point into these constants (compiled in as read-only data).
_ONE_ZERO_ONE_F32 = np.array([1, 0, 1], np.float32)
_ONE_ZERO_ONE_F64 = np.array([1, 0, 1], np.float64)


@jit(internal=True)
def _gemm(trans_b, trans_a, m, n, k, b, ldb, a, lda, accumulate, c, ldc):
    """Row-major ``c (n, m) = op(a) @ op(b)`` (``+= `` with ``accumulate``) through BLAS.

    BLAS works in column-major order, where a row-major matrix is its
    transpose, so ``c = op(a) @ op(b)`` is asked of it as ``c.T = op(b).T @
    op(a).T``. ``a``, ``b`` and ``c`` are views whose first element is the
    matrix's; ``lda``, ``ldb`` and ``ldc`` their row strides in elements.
    """
    beta = 2 if accumulate else 1  # where 1 or 0 lies in the constants
    if c.itemsize == 4:
        _xxgemm(_SINGLE, trans_b, trans_a, m, n, k, _ONE_ZERO_ONE_F32.ctypes, b.ctypes, ldb,
                a.ctypes, lda, _ONE_ZERO_ONE_F32[beta:].ctypes, c.ctypes, ldc)
    else:
        _xxgemm(_DOUBLE, trans_b, trans_a, m, n, k, _ONE_ZERO_ONE_F64.ctypes, b.ctypes, ldb,
                a.ctypes, lda, _ONE_ZERO_ONE_F64[beta:].ctypes, c.ctypes, ldc)


@jit(internal=True)
def matmul(a, w, out, lo, hi, blas):
    """``out[lo:hi] = a[lo:hi] @ w`` for a (n, k), w (k, m), out (n, m); BLAS if ``blas``."""
    rows = hi - lo
    k, m = w.shape
    if rows <= 0:
        return
    if blas:
        _gemm(_N, _N, m, rows, k, w, m, a[lo:], k, False, out[lo:], m)
        return
    for r in range(lo, hi):
        a_row = a[r]
        out_row = out[r]
        out_row[:] = 0
        # Four rows of w per pass: out_row is loaded and stored once per four.
        j = 0
        while j + 4 <= k:
            v0, v1, v2, v3 = a_row[j], a_row[j + 1], a_row[j + 2], a_row[j + 3]
            for c in range(m):
                out_row[c] += ((v0 * w[j, c] + v1 * w[j + 1, c])
                               + (v2 * w[j + 2, c] + v3 * w[j + 3, c]))
            j += 4
        for jj in range(j, k):
            v = a_row[jj]
            for c in range(m):
                out_row[c] += v * w[jj, c]


@jit(internal=True)
def matmul_wt(d, w, out, lo, hi, blas):
    """``out[lo:hi] = d[lo:hi] @ w.T`` for d (n, m), w (k, m), out (n, k); BLAS if ``blas``."""
    rows = hi - lo
    k, m = w.shape
    if rows <= 0:
        return
    if blas:
        _gemm(_T, _N, k, rows, m, w, m, d[lo:], m, False, out[lo:], k)
        return
    zero = out.dtype.type(0)
    for r in range(lo, hi):
        d_row = d[r]
        out_row = out[r]
        # One dot product per contiguous row of w, four rows per pass: each
        # element of d_row is loaded once for four, and the four sums' vector
        # loops and final horizontal sums overlap (a batch-1 step's 128x64
        # product: 460-620 against 860-890 ns, in isolation).
        j = 0
        while j + 4 <= k:
            s0, s1, s2, s3 = zero, zero, zero, zero
            for c in range(m):
                dc = d_row[c]
                s0 += w[j, c] * dc
                s1 += w[j + 1, c] * dc
                s2 += w[j + 2, c] * dc
                s3 += w[j + 3, c] * dc
            out_row[j], out_row[j + 1], out_row[j + 2], out_row[j + 3] = s0, s1, s2, s3
            j += 4
        for jj in range(j, k):
            s = zero
            for c in range(m):
                s += w[jj, c] * d_row[c]
            out_row[jj] = s


@jit(internal=True)
def add_matmul_at(a, d, lo, hi, grad, j0, j1, blas):
    """``grad[j0:j1] += a[lo:hi, j0:j1].T @ d[lo:hi]`` for a (n, k), d (n, m), grad (k, m).

    Rows j0..j1 of a weight gradient, summed over the batch rows lo..hi:
    threads that own different j ranges never write the same element.
    BLAS if ``blas``.
    """
    rows = hi - lo
    kb = j1 - j0
    m = d.shape[1]
    k = a.shape[1]
    if rows <= 0 or kb <= 0:
        return
    if blas:
        _gemm(_N, _T, m, kb, rows, d[lo:], m, a[lo:, j0:], k, True, grad[j0:], m)
        return
    for j in range(j0, j1):
        g = grad[j]
        r = lo
        while r + 4 <= hi:  # four rows per pass over g
            v0, v1, v2, v3 = a[r, j], a[r + 1, j], a[r + 2, j], a[r + 3, j]
            for c in range(m):
                g[c] += (v0 * d[r, c] + v1 * d[r + 1, c]) + (v2 * d[r + 2, c] + v3 * d[r + 3, c])
            r += 4
        for rr in range(r, hi):
            v = a[rr, j]
            for c in range(m):
                g[c] += v * d[rr, c]


@jit(internal=True)
def copy_row(src, dst):
    """``dst[:] = src`` for two rows of one length.

    A loop, not slice assignment: Numba's slice assignment checks shapes and
    formats its error message with compiled string code, which cost three
    seconds of every cold start.
    """
    for c in range(dst.shape[0]):
        dst[c] = src[c]


@jit(internal=True)
def add_bias(out, b, lo, hi):
    """``out[lo:hi] += b`` for out (n, m), b (m,)."""
    for r in range(lo, hi):
        out_row = out[r]
        for c in range(b.shape[0]):
            out_row[c] += b[c]


@jit(internal=True)
def add_entries_and_bias(indices, values, p0, p1, w, b, out_row):
    """``out_row += values[p] * w[indices[p]]`` for p in p0..p1, then ``out_row += b``."""
    for p in range(p0, p1):
        j = indices[p]
        v = values[p]
        for c in range(w.shape[1]):
            out_row[c] += v * w[j, c]
    for c in range(w.shape[1]):
        out_row[c] += b[c]


@jit(internal=True)
def sparse_affine_row(indices, values, p0, p1, w, b, out_row):
    """``out_row = x_row @ w + b`` for an input row given by its nonzero entries.

    The row's nonzero (column, value) pairs are ``indices[p0:p1]``,
    ``values[p0:p1]``. Eight rows of w are added per pass over out_row.
    """
    m = w.shape[1]
    out_row[:] = 0
    p = p0
    while p + 8 <= p1:
        # Columns as unsigned: indexing w needs no negative-index wraparound.
        j0, j1 = np.uint64(indices[p]), np.uint64(indices[p + 1])
        j2, j3 = np.uint64(indices[p + 2]), np.uint64(indices[p + 3])
        j4, j5 = np.uint64(indices[p + 4]), np.uint64(indices[p + 5])
        j6, j7 = np.uint64(indices[p + 6]), np.uint64(indices[p + 7])
        v0, v1, v2, v3 = values[p], values[p + 1], values[p + 2], values[p + 3]
        v4, v5, v6, v7 = values[p + 4], values[p + 5], values[p + 6], values[p + 7]
        for c in range(m):
            out_row[c] += (((v0 * w[j0, c] + v1 * w[j1, c]) + (v2 * w[j2, c] + v3 * w[j3, c]))
                           + ((v4 * w[j4, c] + v5 * w[j5, c]) + (v6 * w[j6, c] + v7 * w[j7, c])))
        p += 8
    add_entries_and_bias(indices, values, p, p1, w, b, out_row)


#: First layers of at most this many units take the narrow kernels
#: (`narrow_affine_row`, ``numba_phases.narrow_first_layer_gradient``): sixteen
#: running sums in named variables, two 8-lane registers on AVX2.
NARROW_LANES = 16


@jit(internal=True)
def narrow_rows_end(k, m):
    """Rows j of a C-contiguous (k, m) array whose 16 elements from ``[j, 0]`` lie inside it.

    Those are j < the result: ``j * m + NARROW_LANES <= k * m``.
    """
    return k - (NARROW_LANES + m - 1) // m + 1


@jit(internal=True, reassociate=False)
def narrow_affine_row(indices, values, p0, p1, w, b, out_row, safe_end):
    """`sparse_affine_row` for w (k, m) with m <= `NARROW_LANES`, in registers.

    One running sum per unit, sixteen of them, which LLVM packs into two
    8-lane registers: per nonzero input, one broadcast, two loads, two FMAs
    (2.4x faster than the loop over m on 784-10-10, AMD Zen 3). Each
    entry reads 16 consecutive weights from ``w[j, 0]``, past row j's m
    units into the next rows; the sums of those lanes are dropped. Entries
    whose 16 weights would pass the end of w (columns from ``safe_end =
    narrow_rows_end(k, m)`` on) are added by a plain loop. Positions and
    columns are unsigned so that indexing needs no negative-index wraparound.
    """
    m = w.shape[1]
    zero = out_row.dtype.type(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    s8 = s9 = s10 = s11 = s12 = s13 = s14 = s15 = zero
    p = np.uint64(p0)
    end = np.uint64(p1)
    while p < end and indices[p] < safe_end:  # columns ascend within a row
        j = np.uint64(indices[p])
        v = values[p]
        s0 += v * w[j, 0]
        s1 += v * w[j, 1]
        s2 += v * w[j, 2]
        s3 += v * w[j, 3]
        s4 += v * w[j, 4]
        s5 += v * w[j, 5]
        s6 += v * w[j, 6]
        s7 += v * w[j, 7]
        s8 += v * w[j, 8]
        s9 += v * w[j, 9]
        s10 += v * w[j, 10]
        s11 += v * w[j, 11]
        s12 += v * w[j, 12]
        s13 += v * w[j, 13]
        s14 += v * w[j, 14]
        s15 += v * w[j, 15]
        p += np.uint64(1)
    sums = (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15)
    for c in range(m):
        out_row[c] = sums[c]
    add_entries_and_bias(indices, values, np.int64(p), p1, w, b, out_row)


@jit(internal=True)
def all_finite(v):
    """True when no element of the 1-D v is inf or NaN (``x * 0`` is 0 only for finite x).

    Zero inputs may be skipped only while this holds for the other factor:
    the reference computes ``0 * inf = nan``, and so must we.
    """
    zero = v.dtype.type(0)  # ``v[i] * 0`` with the literal would compute in float64
    s = zero
    for i in range(v.shape[0]):
        s += v[i] * zero
    return s == 0


# --- the public affine kernels (twins of numpy_backend's) -------------------------------

@jit
def affine_forward(x, w, b, out):
    """``out = x @ w + b`` for x (n, k), w (k, m), b (m,), out (n, m)."""
    matmul(x, w, out, 0, x.shape[0], uses_blas(x.shape[0], w))
    add_bias(out, b, 0, x.shape[0])


@jit
def affine_backward_params(x, delta, grad_w, grad_b):
    """Parameter gradients of an affine layer.

    ``grad_w = x.T @ delta`` (k, m) and ``grad_b = delta.sum(0)`` (m,),
    for x (n, k) and delta (n, m), the gradient of the loss at the layer's output.
    """
    grad_w[:] = 0
    add_matmul_at(x, delta, 0, x.shape[0], grad_w, 0, x.shape[1], uses_blas(x.shape[0], grad_w))
    grad_b[:] = 0
    for r in range(delta.shape[0]):
        for c in range(delta.shape[1]):
            grad_b[c] += delta[r, c]


@jit
def affine_backward_input(delta, w, out):
    """Input gradient of an affine layer: ``out = delta @ w.T`` (n, k)."""
    matmul_wt(delta, w, out, 0, delta.shape[0], uses_blas(delta.shape[0], w))
