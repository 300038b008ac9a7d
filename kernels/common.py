"""What both backends share: activation codes and the training workspace.

Kernels take activations as small integer codes rather than strings so that
the compiled backend can branch on them in nopython code.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

SIGMOID = 0
RELU = 1
SOFTMAX = 2

HIDDEN_ACTIVATIONS = {"sigmoid": SIGMOID, "relu": RELU}
OUTPUT_ACTIVATIONS = {"sigmoid": SIGMOID, "softmax": SOFTMAX}


class WarmupInfo(NamedTuple):
    """What `warmup` did: wall time, and signatures compiled vs loaded from the disk cache."""

    seconds: float
    compiled: int
    loaded: int

    @property
    def from_cache(self) -> bool:
        """True when nothing had to be compiled (a later process, warm disk cache)."""
        return self.compiled == 0


class PreparedInputs(NamedTuple):
    """The training inputs in the form the numba backend's `train_epoch` reads.

    Built once per data set by ``numba_backend.prepare_inputs`` (the inputs do
    not change while training), so that no epoch has to look for the nonzero
    pixels of its rows again. Row ``i``'s nonzero entries, in ascending column
    order, are ``indices[indptr[i]:indptr[i + 1]]`` with values
    ``values[indptr[i]:indptr[i + 1]]`` (the CSR layout); every other entry of
    the row is zero (or -0.0).

    x : (N, n_in)        the dense inputs, C-contiguous; read where zeros may
                         not be skipped (an inf/NaN weight or delta, where the
                         reference computes ``0 * inf = nan``)
    indptr : (N + 1,)    int64 start of each row in indices/values
    indices : (nnz,)     int32 column of each nonzero entry
    values : (nnz,)      its value, in x's dtype
    """

    x: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray


class Workspace(NamedTuple):
    """Buffers for one training loop, allocated once per shape.

    For a network with layer sizes ``sizes = (n_in, h1, ..., n_out)`` and
    ``L = len(sizes) - 1`` layers, every tuple below has ``L`` entries and
    entry ``i`` belongs to layer ``i``:

    x : (batch, n_in)             gathered input rows of the current batch
    y : (batch, n_out)            gathered targets of the current batch
    z : (batch, sizes[i+1])       pre-activations
    a : (batch, sizes[i+1])       activations (the last one holds probabilities)
    delta : (batch, sizes[i+1])   gradient of the loss with respect to ``z[i]``
    grad_w : (sizes[i], sizes[i+1])
    grad_b : (sizes[i+1],)

    A ragged last batch uses the leading rows of each batch buffer.
    """

    x: np.ndarray
    y: np.ndarray
    z: tuple
    a: tuple
    delta: tuple
    grad_w: tuple
    grad_b: tuple


def allocate_workspace(sizes, batch_size: int, dtype) -> Workspace:
    """Allocate the buffers `train_epoch` needs for ``sizes`` and ``batch_size``."""
    dtype = np.dtype(dtype)
    outs = sizes[1:]
    return Workspace(
        x=np.zeros((batch_size, sizes[0]), dtype),
        y=np.zeros((batch_size, sizes[-1]), dtype),
        z=tuple(np.zeros((batch_size, n), dtype) for n in outs),
        a=tuple(np.zeros((batch_size, n), dtype) for n in outs),
        delta=tuple(np.zeros((batch_size, n), dtype) for n in outs),
        grad_w=tuple(np.zeros((m, n), dtype) for m, n in zip(sizes[:-1], outs)),
        grad_b=tuple(np.zeros(n, dtype) for n in outs),
    )
