"""Each implementation behind one small interface, so the timing loop treats them alike.

A runner is built for one configuration's training rows and offers:
``threads(n)`` (a context manager), ``load(weights, biases)``, ``plan(order,
batch, lr)`` (everything an epoch needs, made before the clock starts),
``run(plan)`` (one epoch; False if it stopped early) and ``parameters()``.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

import kernels
from kernels.common import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, allocate_workspace

from .. import peers
from ..threads import limit_threads

IMPLS = ("numba", "numpy", "torch", "jax")
PEERS = ("torch", "jax")


class FastnnRunner:
    """A fastnn backend's ``train_epoch`` over the configuration's rows."""

    compile_seconds = None

    def __init__(self, name, config, x, targets, inputs=None):
        self.name = name
        self.kern = kernels.get_backend(name)
        self.config = config
        self.x, self.y = x, targets
        # x as the backend's train_epoch takes it, made once per run unless given.
        self.inputs = self.kern.prepare_inputs(x) if inputs is None else inputs
        self.hidden = HIDDEN_ACTIVATIONS[config.hidden]
        self.output = OUTPUT_ACTIVATIONS["sigmoid" if config.sizes[-1] == 1 else "softmax"]
        self.weights = self.biases = None
        self._workspaces = {}

    def threads(self, n):
        # Numba threads, BLAS pinned to one (fastnn.threads explains why); the
        # NumPy backend's only parallel code is BLAS, so it gets the n threads.
        return limit_threads(n, blas=1) if self.name == "numba" else limit_threads(n, blas=n)

    def load(self, weights, biases):
        self.weights = tuple(w.copy() for w in weights)
        self.biases = tuple(b.copy() for b in biases)

    def plan(self, order, batch, lr):
        rows = min(batch, order.shape[0])
        if rows not in self._workspaces:
            self._workspaces[rows] = allocate_workspace(self.config.sizes, rows, self.x.dtype)
        return order, batch, -(-order.shape[0] // batch), self._workspaces[rows], np.float32(lr)

    def run(self, plan):
        order, batch, expected, ws, lr = plan
        _, _, steps = self.kern.train_epoch(self.weights, self.biases, self.inputs, self.y,
                                            order, batch, lr, self.hidden, self.output, ws)
        return steps == expected

    def parameters(self):
        return list(self.weights), list(self.biases)


class TorchRunner:
    """The PyTorch peer (`fastnn.peers.TorchMLP`)."""

    name = "torch"
    compile_seconds = None

    def __init__(self, config, x, labels):
        self.mlp = peers.TorchMLP(config.sizes, config.hidden, x, labels)

    @contextmanager
    def threads(self, n):
        import torch

        previous = torch.get_num_threads()
        with limit_threads(n, blas=n):
            torch.set_num_threads(n)
            try:
                yield n
            finally:
                torch.set_num_threads(previous)

    def load(self, weights, biases):
        self.mlp.set_parameters(weights, biases)

    def plan(self, order, batch, lr):
        return self.mlp.batches(order, batch), float(lr)

    def run(self, plan):
        self.mlp.train_epoch(*plan)
        return True

    def parameters(self):
        return self.mlp.parameters()


class JaxRunner:
    """The JAX peer (`fastnn.peers.JaxMLP`); its threads are fixed when JAX starts."""

    name = "jax"

    def __init__(self, config, x, labels):
        self.mlp = peers.JaxMLP(config.sizes, config.hidden, x, labels)

    @contextmanager
    def threads(self, n):
        yield peers.start_jax(n)

    @property
    def compile_seconds(self):
        return self.mlp.compile_seconds

    def load(self, weights, biases):
        self.mlp.set_parameters(weights, biases)

    def plan(self, order, batch, lr):
        return self.mlp.plan(order, batch, lr)

    def run(self, plan):
        self.mlp.train_epoch(plan)
        return True

    def parameters(self):
        return self.mlp.parameters()


def make_runner(impl, config, x, labels, targets, inputs=None):
    """The runner of ``impl`` over rows ``x`` with class indices ``labels``.

    ``targets`` are fastnn's (one-hot, or a 0/1 column); ``inputs`` a fastnn
    backend's prepared x, if already made.
    """
    if impl == "torch":
        return TorchRunner(config, x, labels)
    if impl == "jax":
        return JaxRunner(config, x, labels)
    return FastnnRunner(impl, config, x, targets, inputs)


def available_impls(requested) -> tuple:
    """``(usable, notes)``: the requested implementations that can run, and one note per skip."""
    missing = {"torch": (peers.torch_available, peers.TORCH_MISSING),
               "jax": (peers.jax_available, peers.JAX_MISSING)}
    usable, notes = [], []
    for impl in requested:
        if impl in missing and not missing[impl][0]():
            notes.append(f"{impl}: skipped: {missing[impl][1]}.")
        else:
            usable.append(impl)
    return tuple(usable), notes
