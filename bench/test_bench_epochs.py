"""Epoch time of every implementation on full MNIST, float32, one group per configuration C1-C7.

Each group holds the numba, numpy, PyTorch and JAX timings of the same
configuration (`fastnn.bench.CONFIGS`), run through the same runners as
``fastnn bench``, so one run prints them side by side and conftest.py prints
numba's time over each of the others. Every round starts from the same
initial parameters (reset outside the timing) and must complete every step,
so a diverging run cannot look fast. Inputs are prepared and JAX programs
compiled before the clock starts; their seconds go into extra_info.

The NumPy backend and PyTorch need ~15-30 s for a batch-1 epoch, so the
batch-1 group (C2) times EVERY implementation on the first 6,000 samples of
the shuffled order; its name says so.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from fastnn.bench import CONFIGS, make_runner
from fastnn.network import Network
from kernels import get_backend

ROUNDS = 5
BATCH1_SAMPLES = 6000


def _group(config) -> str:
    subset = f" (first {BATCH1_SAMPLES} samples)" if config.batch == 1 else ""
    return f"{config.label}{subset}"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_epoch(benchmark, record, impl, threads, mnist_data, prepared_inputs, name):
    config = CONFIGS[name]
    x, digits = mnist_data.training_rows(config.digits)
    n = x.shape[0]
    batch = config.batch_rows(n)
    init = Network(config.sizes, hidden=config.hidden, classes=config.digits, seed=0)
    order = np.random.default_rng(1).permutation(n)
    if batch == 1:
        order = order[:BATCH1_SAMPLES]
    inputs, prepare_seconds = None, None
    if impl in ("numba", "numpy") and config.digits is None:
        inputs, prepare_seconds = prepared_inputs(get_backend(impl))
    started = time.perf_counter()
    runner = make_runner(impl, config, x, init.class_indices(digits, n), init.targets(digits, n),
                         inputs)
    results = []
    with runner.threads(threads):
        runner.load(init.weights, init.biases)
        plan = runner.plan(order, batch, config.lr)
        set_up = time.perf_counter() - started

        def setup():
            runner.load(init.weights, init.biases)

        def epoch():
            results.append(runner.run(plan))

        benchmark.group = _group(config)
        benchmark.extra_info.update(samples=len(order), batch_size=batch, dtype="float32",
                                    prepare_inputs_s=prepare_seconds, set_up_s=set_up,
                                    compile_s=runner.compile_seconds)
        benchmark.pedantic(epoch, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    record(benchmark)
    assert all(results), "an epoch stopped early on a non-finite loss"
    assert all(np.isfinite(p).all() for group in runner.parameters() for p in group)
