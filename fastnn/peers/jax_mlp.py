"""The JAX peer: fastnn's network as a jitted SGD step, a whole epoch in one ``lax.scan``.

Written as JAX is meant to be used: the loss is a pure function of the
parameters, ``jax.grad`` differentiates it, and one compiled program runs an
epoch — the full batches, gathered on the device from the epoch's row order,
in one ``jax.lax.scan``, then the ragged last batch (if any) as one more step.
Programs are compiled ahead of time (``jit(...).lower(...).compile()``), so
compilation is timed apart from the epoch. float32 throughout.

Threads: in jaxlib 0.4-0.10 neither ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``
nor ``intra_op_parallelism_threads`` bounds XLA's CPU threads (the thunk
runtime still runs each dot on its intra-op pool). What does is the CPU
affinity when the CPU client is created: its intra-op pool gets one thread
per CPU the process may run on (``sched_getaffinity``). `start_jax` therefore
narrows the affinity to ``threads`` CPUs, creates the client, and widens every
thread's affinity back, so the pool keeps its size but is pinned nowhere.
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np

#: The thread count JAX's CPU client was created with by `start_jax` (None: not yet).
_started_threads = None


def _already_started() -> bool:
    """True when something in this process created JAX's backends before `start_jax`."""
    try:  # not public API: where it is missing, assume JAX has not started
        from jax._src import xla_bridge
        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return False


def start_jax(threads: int):
    """Create JAX's CPU client with an intra-op pool of ``threads`` threads; returns the size.

    The pool is sized once per process: a later call returns the size the
    first one chose, and a call after JAX was started elsewhere returns None
    (the size is then unknown).
    """
    global _started_threads
    import jax

    if _started_threads is not None:
        return _started_threads
    if _already_started() or not hasattr(os, "sched_setaffinity"):
        jax.devices("cpu")
        return None
    allowed = sorted(os.sched_getaffinity(0))
    threads = max(1, min(int(threads), len(allowed)))
    os.sched_setaffinity(0, allowed[:threads])
    try:
        jax.devices("cpu")
    finally:
        # The pool threads inherited the narrow mask; give every thread the
        # original one back (a thread id is a valid target on Linux).
        for task in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(task), allowed)
            except OSError:  # the thread has ended
                pass
    _started_threads = threads
    return threads


def jax_info() -> dict:
    """Versions of jax and jaxlib, and the CPU client's intra-op thread count."""
    import jax
    import jaxlib

    return {"version": jax.__version__, "jaxlib": jaxlib.__version__,
            "threads": _started_threads}


# --- the model, as pure functions --------------------------------------------------------

def _loss(params, xb, yb, hidden, binary):
    """Mean loss of a batch: softmax cross-entropy on class indices, or binary cross-entropy."""
    import jax
    import jax.numpy as jnp

    a = xb
    for w, b in params[:-1]:
        a = hidden(a @ w + b)
    w, b = params[-1]
    z = a @ w + b
    if binary:
        z = z[:, 0]
        return jnp.mean(jax.nn.softplus(z) - z * yb)
    log_probs = jax.nn.log_softmax(z)
    return -jnp.mean(jnp.take_along_axis(log_probs, yb[:, None], axis=1))


def _sgd_step(params, xb, yb, lr, hidden, binary):
    import jax

    grads = jax.grad(_loss)(params, xb, yb, hidden, binary)
    return jax.tree.map(lambda p, g: p - lr * g, params, grads)


def _epoch(params, x, y, batches, tail, lr, hidden, binary):
    """SGD over ``batches`` (steps, batch) of row indices in one scan, then ``tail`` (r,)."""
    import jax

    step = partial(_sgd_step, lr=lr, hidden=hidden, binary=binary)

    def body(p, rows):
        return step(p, x[rows], y[rows]), None

    params, _ = jax.lax.scan(body, params, batches)
    if tail.shape[0]:  # a static shape: the remainder step exists only when needed
        params = step(params, x[tail], y[tail])
    return params


def _whole(params, x, y, lr, hidden, binary):
    """One full-batch step over every row in place (no gather)."""
    return _sgd_step(params, x, y, lr, hidden, binary)


class JaxMLP:
    """fastnn's network in JAX, over inputs held on the CPU device.

    Parameters
    ----------
    sizes : layer sizes ``(n_in, hidden..., n_out)``; ``n_out == 1`` is a
        binary network (sigmoid output, binary cross-entropy).
    hidden : ``"relu"`` or ``"sigmoid"``.
    x : (N, n_in) float32 training inputs (copied to the device once).
    labels : (N,) output-class indices in ``0 .. n_out-1`` (0 or 1 when binary).

    Parameters use fastnn's layout (weights ``(k, m)`` for ``x @ w``).
    """

    name = "jax"

    def __init__(self, sizes, hidden, x, labels):
        import jax
        import jax.numpy as jnp

        if x.dtype != np.float32:
            raise ValueError(f"the JAX peer runs float32, got {x.dtype}")
        self._jax = jax
        binary = sizes[-1] == 1
        activation = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}[hidden]
        self.x = jnp.asarray(x)
        self.y = jnp.asarray(labels, dtype=jnp.float32 if binary else jnp.int32)
        self._epoch = jax.jit(partial(_epoch, hidden=activation, binary=binary))
        self._whole = jax.jit(partial(_whole, hidden=activation, binary=binary))
        self._compiled = {}  # shapes -> (compiled program, seconds its compilation took)
        self.params = None
        #: Seconds it took to compile the program of the last `plan` (whenever that was).
        self.compile_seconds = None

    def set_parameters(self, weights, biases) -> None:
        """Put fastnn-layout parameters on the device (copies)."""
        jnp = self._jax.numpy
        self.params = [(jnp.array(w), jnp.array(b)) for w, b in zip(weights, biases)]

    def parameters(self):
        """``(weights, biases)`` as NumPy arrays in fastnn's layout (copies)."""
        return ([np.array(w) for w, _ in self.params], [np.array(b) for _, b in self.params])

    def plan(self, order, batch_size: int, lr: float):
        """The compiled epoch over ``order`` and its arguments, made before timing.

        Full batches become one (steps, batch) int32 index array and the
        remainder a (r,) one; one batch holding every row reads the inputs in
        place, as `TorchMLP.batches` does. Compiles the program for these
        shapes unless an earlier plan did; `compile_seconds` says how long that took.
        """
        import time

        jnp = self._jax.numpy
        order = np.asarray(order, dtype=np.int32)
        lr = jnp.float32(lr)
        if batch_size >= order.shape[0] == self.x.shape[0]:
            function, data = self._whole, (self.x, self.y, lr)
        else:
            n_full = order.shape[0] // batch_size * batch_size
            batches = jnp.asarray(order[:n_full].reshape(-1, batch_size))
            tail = jnp.asarray(order[n_full:])
            function, data = self._epoch, (self.x, self.y, batches, tail, lr)
        key = (function is self._whole,) + tuple(a.shape for a in data)
        if key not in self._compiled:
            started = time.perf_counter()
            program = function.lower(self.params, *data).compile()
            self._compiled[key] = program, time.perf_counter() - started
        program, self.compile_seconds = self._compiled[key]
        return program, data

    def train_epoch(self, plan) -> None:
        """Run a `plan`'s epoch from the current parameters and wait for it to finish."""
        compiled, data = plan
        self.params = self._jax.block_until_ready(compiled(self.params, *data))
