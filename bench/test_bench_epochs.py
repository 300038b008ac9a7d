"""Epoch time of each backend on full MNIST, float32, one group per configuration.

Each group holds the numpy and the numba timing of the same configuration, so
one run prints them side by side (and conftest.py prints their ratio). Every
round starts from the same initial parameters (reset outside the timing) and
must complete every step, so a diverging run cannot look fast. The inputs
are prepared (``prepare_inputs``) once per backend, outside the timing; the
seconds it took are stored in extra_info as ``prepare_inputs_s``.

The NumPy backend needs ~15-30 s for a batch-1 epoch, so the batch-1 group
times BOTH backends on the first 6,000 samples of the shuffled order; its
name says so.
"""

from __future__ import annotations

import numpy as np
import pytest

from kernels.common import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, allocate_workspace

# name: (layer sizes, hidden activation, batch size, samples per epoch or None for all, lr)
CONFIGS = {
    "784-128-64-10 relu, batch 1 (first 6000 samples)": ((784, 128, 64, 10), "relu", 1, 6000, 0.01),
    "784-128-64-10 relu, batch 64": ((784, 128, 64, 10), "relu", 64, None, 0.1),
    "784-128-64-10 sigmoid, batch 64": ((784, 128, 64, 10), "sigmoid", 64, None, 1.0),
    "784-128-64-10 relu, batch 256": ((784, 128, 64, 10), "relu", 256, None, 0.2),
    "784-128-64-10 relu, full batch": ((784, 128, 64, 10), "relu", 60000, None, 0.5),
    "784-10-10 sigmoid, full batch": ((784, 10, 10), "sigmoid", 60000, None, 3.0),
}
ROUNDS = 5


def initial_parameters(sizes, hidden, seed=0):
    rng = np.random.default_rng(seed)
    gain = 2.0 if hidden == "relu" else 1.0
    weights = tuple((rng.standard_normal((k, m)) * np.sqrt(gain / k)).astype(np.float32)
                    for k, m in zip(sizes, sizes[1:]))
    biases = tuple(np.zeros(m, np.float32) for m in sizes[1:])
    return weights, biases


@pytest.mark.parametrize("config", list(CONFIGS))
def test_epoch(benchmark, record, backend, train_set, prepared_inputs, config):
    sizes, hidden, batch_size, n_samples, lr = CONFIGS[config]
    x, y = train_set
    inputs, prepare_seconds = prepared_inputs(backend)
    order = np.random.default_rng(1).permutation(len(x))[:n_samples]
    weights0, biases0 = initial_parameters(sizes, hidden)
    ws = allocate_workspace(sizes, min(batch_size, len(order)), np.float32)
    hidden_code, output_code = HIDDEN_ACTIVATIONS[hidden], OUTPUT_ACTIVATIONS["softmax"]
    results = []

    def setup():
        weights = tuple(w.copy() for w in weights0)
        biases = tuple(b.copy() for b in biases0)
        return (weights, biases, inputs, y, order, batch_size, lr, hidden_code, output_code,
                ws), {}

    def epoch(*args):
        results.append(backend.train_epoch(*args))

    benchmark.group = config
    benchmark.extra_info.update(samples=len(order), batch_size=batch_size, dtype="float32",
                                prepare_inputs_s=prepare_seconds)
    benchmark.pedantic(epoch, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    record(benchmark)

    expected_steps = -(-len(order) // batch_size)
    assert all(steps == expected_steps for _, _, steps in results)
    loss_sum, n_correct, _ = results[-1]
    benchmark.extra_info.update(mean_loss=loss_sum / len(order), accuracy=n_correct / len(order))
