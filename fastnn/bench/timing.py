"""Measurement: one configuration's epochs, every implementation, interleaved rounds.

Fairness rules, all enforced here:

* Every implementation starts each round from the same initial weights and
  visits the rows in the same order; the order is drawn (and split into
  batches, and for JAX compiled into a program) before the clock starts.
* Only the epoch is timed, with the garbage collector off: no data loading,
  shuffling, parameter reset, compilation or input preparation. An untimed
  warm-up epoch meets every batch shape first.
* Rounds are interleaved — round 1 of every implementation, then round 2 —
  with the first implementation rotating and a short pause between them, so
  that one's spinning thread pool does not steal the next one's cores.
"""

from __future__ import annotations

import gc
import statistics
import time

import numpy as np

from ..network import Network
from .runners import make_runner
from .work import dense_flops, useful_flops

#: Pause between two implementations' timed epochs: OpenBLAS and OpenMP
#: workers keep spinning for a while after their last task.
SETTLE_SECONDS = 0.15

#: Rows of the untimed warm-up run of each (implementation, configuration)
#: (at least one batch).
WARMUP_ROWS = 512


class BenchError(RuntimeError):
    """A benchmark could not be run as asked (e.g. a run diverged)."""


def timed(runner, plan) -> float:
    """Seconds of one ``runner.run``, with the garbage collector off (as timeit does)."""
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        completed = runner.run(plan)
        seconds = time.perf_counter() - started
    finally:
        if gc_was_on:
            gc.enable()
    if not completed:
        raise BenchError(f"{runner.name} diverged (non-finite loss) during a timed epoch")
    return seconds


def finite(params) -> bool:
    """True when every array of ``(weights, biases)`` is finite."""
    return all(np.isfinite(p).all() for group in params for p in group)


def warmup_order(order, batch: int) -> np.ndarray:
    """Rows for an untimed warm-up with every batch shape of the epoch over ``order``.

    The first `WARMUP_ROWS` rows (whole batches, at least one), then the
    ragged last batch if there is one: libraries that set up work per shape
    (oneDNN generates code per matrix shape) then meet no new shape when timed.
    """
    n = order.shape[0]
    full_batches = max(1, min(n // batch, -(-WARMUP_ROWS // batch)))
    head = order[:min(n, full_batches * batch)]
    tail = n % batch
    if tail and head.shape[0] < n:
        return np.concatenate([head, order[n - tail:]])
    return head


def time_config(config, impls, data, settings, progress, prepared=None) -> list:
    """Records of one configuration: every implementation, ``settings.repeat`` rounds.

    ``prepared`` maps a fastnn backend to its ``prepare_inputs`` of these
    training rows (made here, untimed, when missing).
    """
    x, digits = data.training_rows(config.digits)
    n = x.shape[0]
    if n == 0:
        raise BenchError(f"{config.label}: no training rows of digits {config.digits}")
    batch = config.batch_rows(n)
    init = Network(config.sizes, hidden=config.hidden, classes=config.digits,
                   seed=settings.seed)
    labels, targets = init.class_indices(digits, n), init.targets(digits, n)
    order = np.random.default_rng(settings.seed).permutation(n).astype(np.int64)
    label = config.label

    runners, plans, timed_rows, warm_s, compile_s = {}, {}, {}, {}, {}
    for impl in impls:
        runner = runners[impl] = make_runner(impl, config, x, labels, targets,
                                             (prepared or {}).get(impl))
        extrapolate = impl != "numba" and batch == 1 and 0 < settings.extrapolate_rows < n
        timed_rows[impl] = settings.extrapolate_rows if extrapolate else n
        runner.load(init.weights, init.biases)
        with runner.threads(settings.threads):
            warm_plan = runner.plan(warmup_order(order[:timed_rows[impl]], batch), batch,
                                    config.lr)
            warm_s[impl] = timed(runner, warm_plan)
            plans[impl] = runner.plan(order[:timed_rows[impl]], batch, config.lr)
            compile_s[impl] = runner.compile_seconds
        time.sleep(settings.settle)

    times = {impl: [] for impl in impls}
    for r in range(settings.repeat):
        # Rotate who goes first, so no implementation always follows the same one.
        for impl in impls[r % len(impls):] + impls[:r % len(impls)]:
            runner = runners[impl]
            runner.load(init.weights, init.biases)
            with runner.threads(settings.threads):
                seconds = timed(runner, plans[impl])
            if not finite(runner.parameters()):
                raise BenchError(f"{impl} diverged on {label}: lower its learning rate")
            times[impl].append(seconds * n / timed_rows[impl])
            progress(f"{label}: round {r + 1}/{settings.repeat} {impl} "
                     f"{times[impl][-1]:.4f}s")
            time.sleep(settings.settle)

    nonzeros = int(np.count_nonzero(x))
    return [{
        "impl": impl,
        "config": config.name,
        "layers": list(config.sizes),
        "hidden": config.hidden,
        "output": init.output,
        "digits": None if config.digits is None else list(config.digits),
        "batch_size": batch,
        "full_batch": config.batch == "full",
        "lr": config.lr,
        "threads": settings.threads,
        "dtype": "float32",
        "n_samples": n,
        "steps": -(-n // batch),
        "timed_samples": timed_rows[impl],
        "extrapolated": timed_rows[impl] < n,
        "rounds": settings.repeat,
        "times_s": times[impl],
        "min_s": min(times[impl]),
        "median_s": statistics.median(times[impl]),
        "warmup_s": warm_s[impl],
        "compile_s": compile_s[impl],
        "gflop_per_epoch": dense_flops(config.sizes, n) / 1e9,
        "useful_gflop_per_epoch": useful_flops(config.sizes, n, nonzeros) / 1e9,
        "nonzero_input_fraction": nonzeros / x.size,
        "dataset": data.source,
    } for impl in impls]
