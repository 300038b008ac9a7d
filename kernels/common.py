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
    kept : dict                   what a backend keeps from one call to the next
                                  (the numba backend: a full batch's inputs sorted
                                  by column, see its ``train_epoch``)

    A ragged last batch uses the leading rows of each batch buffer.
    """

    x: np.ndarray
    y: np.ndarray
    z: tuple
    a: tuple
    delta: tuple
    grad_w: tuple
    grad_b: tuple
    kept: dict


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
        kept={},
    )


def check_epoch_args(weights, biases, x, y, order, batch_size, ws: Workspace):
    """Check what both backends' ``train_epoch`` take; returns ``(order, batch_size)``.

    Compiled code has no bounds checks, so everything the loop indexes with is
    checked here, once per call, with the same errors for both backends:
    parameter shapes that chain, targets with one row per input row, row
    indices in ``[0, N)``, a positive batch size and a workspace of the
    network's shapes with room for a batch. ``order`` comes back as a
    contiguous int64 array.
    """
    if len(weights) != len(biases) or not weights:
        raise ValueError(f"need one bias per weight matrix, got {len(weights)} weights and "
                         f"{len(biases)} biases")
    if x.ndim != 2 or x.shape[1] != weights[0].shape[0]:
        raise ValueError(f"x has shape {x.shape}, the first layer takes "
                         f"{weights[0].shape[0]} inputs per row")
    for i, (w, b) in enumerate(zip(weights, biases)):
        if w.ndim != 2 or b.shape != (w.shape[1],) or (i and w.shape[0] != weights[i - 1].shape[1]):
            raise ValueError(f"layer {i}: weights {w.shape} and biases {b.shape} do not chain "
                             "with the layers around them")
    n_rows, n_out = x.shape[0], weights[-1].shape[1]
    if not isinstance(y, np.ndarray) or y.shape != (n_rows, n_out) or y.dtype != x.dtype:
        raise ValueError(f"y must be a {x.dtype} array of shape {(n_rows, n_out)} (one target "
                         f"row per input row), got {getattr(y, 'dtype', type(y).__name__)} "
                         f"{getattr(y, 'shape', '')}")
    order = np.asarray(order)
    if order.ndim != 1 or not (np.issubdtype(order.dtype, np.integer) or order.size == 0):
        raise ValueError(f"order must be a 1-D array of row indices, got {order.dtype} "
                         f"of shape {order.shape}")
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.size and (order.min() < 0 or order.max() >= n_rows):
        bad = order[(order < 0) | (order >= n_rows)][0]
        raise ValueError(f"order holds row index {bad}, outside [0, {n_rows})")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    batch_size = int(batch_size)
    rows = min(batch_size, order.shape[0])
    if any(len(part) != len(weights) for part in (ws.z, ws.a, ws.delta, ws.grad_w, ws.grad_b)):
        raise ValueError(f"the workspace is for another number of layers than {len(weights)}: "
                         "allocate it with allocate_workspace")
    if ws.x.ndim != 2 or ws.x.shape[0] < rows or ws.x.shape[1] != x.shape[1] or (
            ws.x.dtype != x.dtype or not ws.x.flags.c_contiguous):
        raise ValueError(f"workspace x has shape {ws.x.shape} ({ws.x.dtype}); this batch "
                         f"needs ({rows}, {x.shape[1]}) {x.dtype}: allocate it with "
                         "allocate_workspace")
    for i, w in enumerate(weights):
        m = w.shape[1]
        for name in ("z", "a", "delta"):
            buf = getattr(ws, name)[i]
            if buf.ndim != 2 or buf.shape[0] < rows or buf.shape[1] != m or buf.dtype != x.dtype:
                raise ValueError(f"workspace {name}[{i}] has shape {buf.shape} ({buf.dtype}); "
                                 f"this network and batch need ({rows}, {m}) {x.dtype}: "
                                 "allocate it with allocate_workspace")
        if ws.grad_w[i].shape != w.shape or ws.grad_b[i].shape != (m,):
            raise ValueError(f"workspace gradients of layer {i} do not match its parameters: "
                             "allocate the workspace with allocate_workspace")
    return order, batch_size
