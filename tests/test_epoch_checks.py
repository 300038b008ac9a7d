"""Both backends refuse the same bad calls to train_epoch and forward, with the same errors.

Compiled code has no bounds checks: a row index outside the data or a
workspace too small for the batch would corrupt memory there, where NumPy
raises. So both backends check at the Python boundary, through one function.
"""

import numpy as np
import pytest

import kernels
from kernels.common import RELU, SOFTMAX, allocate_workspace

SIZES = (6, 4, 3)


def problem(batch_size=4, n=8):
    rng = np.random.default_rng(0)
    weights = tuple(rng.standard_normal((k, m)) for k, m in zip(SIZES, SIZES[1:]))
    biases = tuple(np.zeros(m) for m in SIZES[1:])
    x = rng.random((n, SIZES[0]))
    y = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], n)]
    return dict(weights=weights, biases=biases, x=x, y=y, order=np.arange(n),
                batch_size=batch_size, lr=0.1, hidden=RELU, output=SOFTMAX,
                ws=allocate_workspace(SIZES, batch_size, np.float64))


BAD_CALLS = {
    "row index past the end": (dict(order=np.array([0, 8])), "row index 8, outside \\[0, 8\\)"),
    "negative row index": (dict(order=np.array([3, -1])), "row index -1, outside"),
    "order of floats": (dict(order=np.array([0.0, 1.0])), "order must be a 1-D array of row"),
    "y with too few rows": ("short_y", "one target row per input row"),
    "y of another dtype": ("float32_y", "float64 array"),
    "workspace for a smaller batch": ("small_ws", "workspace x has shape \\(2, 6\\)"),
    "workspace for another network": ("other_ws", "workspace"),
    "zero batch size": (dict(batch_size=0), "batch_size must be at least 1"),
    "weights that do not chain": ("bad_chain", "do not chain"),
}


def apply(call, change):
    if isinstance(change, dict):
        call.update(change)
    elif change == "short_y":
        call["y"] = call["y"][:-1]
    elif change == "float32_y":
        call["y"] = call["y"].astype(np.float32)
    elif change == "small_ws":
        call["ws"] = allocate_workspace(SIZES, 2, np.float64)
    elif change == "other_ws":
        call["ws"] = allocate_workspace((6, 5, 3), 4, np.float64)
    elif change == "bad_chain":
        call["weights"] = (call["weights"][0], np.zeros((5, 3)))
    return call


@pytest.mark.parametrize("case", BAD_CALLS)
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_train_epoch_refuses(backend, case):
    change, message = BAD_CALLS[case]
    call = apply(problem(), change)
    before = [w.copy() for w in call["weights"]]
    kern = kernels.get_backend(backend)
    with pytest.raises(ValueError, match=message):
        kern.train_epoch(**call)
    for w, old in zip(call["weights"], before):
        np.testing.assert_array_equal(w, old)  # refused before any step


def test_both_backends_give_the_same_message():
    messages = []
    for backend in ("numpy", "numba"):
        with pytest.raises(ValueError) as err:
            kernels.get_backend(backend).train_epoch(**apply(problem(), "small_ws"))
        messages.append(str(err.value))
    assert messages[0] == messages[1]


def test_numba_forward_refuses_buffers_of_the_wrong_shape():
    call = problem()
    zs = [np.zeros((8, 4)), np.zeros((7, 3))]
    acts = [np.zeros((8, 4)), np.zeros((8, 3))]
    with pytest.raises(ValueError, match="layer 1 buffers must have shape \\(8, 3\\)"):
        kernels.get_backend("numba").forward(call["weights"], call["biases"], call["x"],
                                             RELU, SOFTMAX, zs, acts)


def read_only(array):
    array = array.copy()
    array.flags.writeable = False
    return array


def test_numba_trains_on_read_only_inputs_as_on_writeable_ones():
    """Inputs read from a read-only source (a memory-mapped file) train the same."""
    numba_backend = kernels.get_backend("numba")
    plain, frozen = problem(), problem()
    frozen.update(x=read_only(frozen["x"]), y=read_only(frozen["y"]),
                  order=read_only(frozen["order"]))
    assert numba_backend.train_epoch(**frozen) == numba_backend.train_epoch(**plain)
    for w, v in zip(frozen["weights"], plain["weights"]):
        np.testing.assert_array_equal(w, v)


def test_numba_refuses_read_only_parameters_to_update():
    call = problem()
    call["weights"] = (read_only(call["weights"][0]), call["weights"][1])
    with pytest.raises(ValueError, match="must be writeable .* pass a copy"):
        kernels.get_backend("numba").train_epoch(**call)


def test_numba_forward_takes_read_only_weights():
    call = problem()
    frozen = tuple(read_only(w) for w in call["weights"])
    outputs = []
    for weights in (call["weights"], frozen):
        zs = [np.zeros((8, 4)), np.zeros((8, 3))]
        acts = [z.copy() for z in zs]
        kernels.get_backend("numba").forward(weights, call["biases"], call["x"], RELU, SOFTMAX,
                                             zs, acts)
        outputs.append(acts[-1])
    np.testing.assert_array_equal(outputs[0], outputs[1])
