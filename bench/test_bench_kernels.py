"""Single kernels of each backend on MNIST-shaped float32 arrays, one group per kernel.

Shapes are those of a batch of 64 through 784-128-64-10: the first layer's
input is 64 real MNIST rows (about 80% zeros), later layers dense.
"""

from __future__ import annotations

import numpy as np
import pytest

BATCH = 64


@pytest.fixture(scope="module")
def arrays(train_set):
    x, _ = train_set
    rng = np.random.default_rng(0)

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return {
        "x": np.ascontiguousarray(x[:BATCH]),
        "w1": normal(784, 128) * np.float32(0.05), "b1": normal(128),
        "w2": normal(128, 64) * np.float32(0.1),
        "z1": normal(BATCH, 128), "z2": normal(BATCH, 64), "z3": normal(BATCH, 10),
        "delta1": normal(BATCH, 128), "delta2": normal(BATCH, 64),
    }


def _out(*shape):
    return np.empty(shape, np.float32)


# name: (kernel, arguments built from the `arrays` fixture)
CASES = {
    "affine_forward 64x784 @ 784x128": (
        "affine_forward", lambda a: (a["x"], a["w1"], a["b1"], _out(BATCH, 128))),
    "affine_backward_params 784x64 @ 64x128": (
        "affine_backward_params", lambda a: (a["x"], a["delta1"], _out(784, 128), _out(128))),
    "affine_backward_input 64x64 @ 64x128": (
        "affine_backward_input", lambda a: (a["delta2"], a["w2"], _out(BATCH, 128))),
    "sigmoid 64x128": ("sigmoid", lambda a: (a["z1"], _out(BATCH, 128))),
    "relu 64x128": ("relu", lambda a: (a["z1"], _out(BATCH, 128))),
    "sigmoid_backward 64x128": (
        "sigmoid_backward", lambda a: (np.abs(a["z1"]) % 1, a["delta1"], _out(BATCH, 128))),
    "relu_backward 64x128": ("relu_backward", lambda a: (a["z1"], a["delta1"], _out(BATCH, 128))),
    "softmax 64x10": ("softmax", lambda a: (a["z3"], _out(BATCH, 10))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_kernel(benchmark, record, backend, arrays, case):
    name, make_args = CASES[case]
    benchmark.group = f"kernel: {case}"
    benchmark.pedantic(getattr(backend, name), args=make_args(arrays),
                       rounds=200, iterations=5, warmup_rounds=5)
    record(benchmark)
