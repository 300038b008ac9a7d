"""Same seed, same data, same thread count: the very same weights, bit for bit.

For every training mode and both backends, in one process and across
processes. (The numba backend cuts work into one block per thread of Numba's
pool, whatever ``--threads`` says, so the thread count in use does not
change results either; ``tests/test_threads.py`` checks that.)
"""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastnn.network import Network
from fastnn.train import fit

MODES = {"batch-1": 1, "mini-batch-ragged": 48, "threaded-mini-batch": 64, "full-batch": "full"}


def train(x, labels, backend, batch_size, hidden):
    net = Network([784, 24, 10], hidden=hidden, seed=5)
    fit(net, x, labels, epochs=2, batch_size=batch_size, lr=0.05, seed=7, backend=backend)
    return net


def fingerprint(net) -> str:
    digest = hashlib.sha256()
    for p in net.weights + net.biases:
        digest.update(np.ascontiguousarray(p).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("hidden", ["sigmoid", "relu"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_two_runs_in_one_process_give_identical_weights(small_xy, backend, mode, hidden):
    x, labels = small_xy
    first = train(x, labels, backend, MODES[mode], hidden)
    # Something else between the two runs, as in a long session.
    train(x[:100], labels[:100], backend, 3, "relu" if hidden == "sigmoid" else "sigmoid")
    second = train(x, labels, backend, MODES[mode], hidden)
    assert fingerprint(first) == fingerprint(second)


@pytest.mark.parametrize("mode", ["mini-batch-ragged", "full-batch"])
def test_the_callers_blas_thread_count_does_not_change_the_weights(small_xy, mode):
    """The engine's products run BLAS on one thread whatever the process set."""
    x, labels = small_xy
    first = train(x, labels, "numba", MODES[mode], "sigmoid")
    with threadpool_limits(limits=1, user_api="blas"):
        single = train(x, labels, "numba", MODES[mode], "sigmoid")
    with threadpool_limits(limits=2, user_api="blas"):
        double = train(x, labels, "numba", MODES[mode], "sigmoid")
    assert fingerprint(first) == fingerprint(single) == fingerprint(double)


SCRIPT = """
import json, sys
from fastnn import mnist
from fastnn.data import make_task
from tests.test_reproducible import fingerprint, train
task = make_task(mnist.load_sample(), val_size=0.1, seed=0)
x, labels = task.x_train[:600], task.labels_train[:600]
out = {}
for mode, batch in json.loads(sys.argv[1]).items():
    out[mode] = fingerprint(train(x, labels, "numba", batch, "sigmoid"))
print(json.dumps(out))
"""


def test_another_process_gives_identical_weights(small_xy, tmp_path):
    x, labels = small_xy
    here = {mode: fingerprint(train(x, labels, "numba", batch, "sigmoid"))
            for mode, batch in MODES.items()}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(MODES)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == here


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_does_not_depend_on_where_its_rows_lie(dtype):
    """Outputs right after the logits in memory, or far from them: the same bits.

    LLVM guards a vectorised loop that stores to one array and reads another
    with a run-time overlap check, and falls back to a scalar loop when the
    two are close; a sum taken in such a loop then came out in another order.
    """
    from kernels import numba_backend

    rng = np.random.default_rng(3)
    z = (rng.standard_normal((64, 10)) * 10).astype(dtype)
    far = np.empty_like(z)
    numba_backend.softmax(z, far)
    for gap in range(0, 24):  # the outputs start ``gap`` elements after each row of logits
        buffer = np.empty(64 * (20 + gap) + 10, dtype)
        rows = buffer[:64 * (20 + gap)].reshape(64, 20 + gap)
        logits, near = rows[:, :10], rows[:, 10 + gap:20 + gap]
        logits[:] = z
        for r in range(64):  # one row at a time: each output row right after its logits
            numba_backend.softmax(logits[r:r + 1], near[r:r + 1])
        np.testing.assert_array_equal(near, far, err_msg=f"outputs {gap} elements after")


@pytest.mark.parametrize("batch_size", [48, 64, 600])
def test_a_step_depends_on_its_batchs_rows_not_on_their_order(small_xy, batch_size):
    """The numba engine visits a batch's rows in storage order (sequential reads).

    So shuffling the rows within each batch changes nothing, bit for bit; and
    a full batch gives the same step whatever order it is handed in.
    """
    from kernels import numba_backend as nb
    from kernels.common import RELU, SOFTMAX, allocate_workspace

    x, labels = small_xy  # 600 rows
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[labels]
    rng = np.random.default_rng(11)
    order = rng.permutation(len(x))
    within = order.copy()
    for start in range(0, len(x), batch_size):
        within[start:start + batch_size] = rng.permutation(within[start:start + batch_size])
    assert not np.array_equal(order, within)
    results = []
    for visit in (order, within):
        net = Network([784, 24, 10], hidden="relu", seed=5)
        weights, biases = tuple(net.weights), tuple(net.biases)
        ws = allocate_workspace(net.sizes, batch_size, np.float32)
        nb.train_epoch(weights, biases, nb.prepare_inputs(x), y, visit, batch_size, 0.05, RELU,
                       SOFTMAX, ws)
        results.append(fingerprint(net))
    assert results[0] == results[1]
