"""A whole ``fastnn bench`` run: settings, warm-up, the timed configurations, the accuracy check.

The run measures (`fastnn.bench.timing`), probes the machine
(`fastnn.bench.machine`) and returns plain records (a JSON-ready dict) that
`fastnn.bench.report` turns into text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

import kernels

from .. import peers
from ..network import Network
from .configs import ACCURACY_CONFIG, CONFIGS
from .machine import combine_peaks, environment, gemm_peak, load_average
from .runners import IMPLS, available_impls, make_runner
from .timing import SETTLE_SECONDS, BenchError, time_config
from .work import derive

#: Version of the JSON layout written by ``fastnn bench --json``.
SCHEMA_VERSION = 2


@dataclass
class Settings:
    """What `run` measures and how long it takes.

    threads : threads for every implementation (Numba pool, BLAS, PyTorch, XLA).
    repeat : timed rounds per (implementation, configuration).
    impls : implementations to time; unavailable ones are skipped with a note.
    configs : the `BenchConfig` s to time (default: C1-C7).
    rows : epochs cover the first ``rows`` training rows (None: all of them).
    extrapolate_rows : at batch 1, time numpy, torch and jax on this many
        samples and scale the time to the epoch (0: always time whole epochs).
    gemm_size, gemm_repeat : the square float32 ``np.matmul`` of the peak.
    timing, accuracy : run the timed comparison; run the accuracy check.
    tolerance : largest allowed spread of the implementations' test
        accuracies (a fraction: 0.005 is half a percentage point).
    settle : seconds of pause between two implementations' timed epochs.
    """

    threads: int
    repeat: int = 5
    impls: tuple = IMPLS
    configs: tuple = tuple(CONFIGS.values())
    rows: int | None = None
    extrapolate_rows: int = 6000
    gemm_size: int = 2048
    gemm_repeat: int = 7
    seed: int = 0
    timing: bool = True
    accuracy: bool = True
    tolerance: float = 0.005
    quick: bool = False
    settle: float = SETTLE_SECONDS
    notes: list = field(default_factory=list)


def quick_settings(threads: int, **overrides) -> Settings:
    """A short run: epochs of 6,000 rows, one round, a smaller GEMM, shorter pauses."""
    settings = Settings(threads=threads, repeat=1, rows=6000, extrapolate_rows=600,
                        gemm_size=1024, gemm_repeat=3, quick=True, settle=0.02)
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    return settings


def warm_up(impls, threads, progress) -> dict:
    """Compile / import / start everything once, outside any timing; seconds per implementation."""
    warm = {}
    for impl in impls:
        started = time.perf_counter()
        if impl == "torch":
            import torch  # noqa: F401  (the import is part of PyTorch's start-up cost)
            warm[impl] = {"seconds": time.perf_counter() - started, "what": "import torch"}
        elif impl == "jax":
            pool = peers.start_jax(threads)
            warm[impl] = {"seconds": time.perf_counter() - started,
                          "what": f"import jax, CPU client with {pool or '?'} thread(s)",
                          "threads": pool}
        else:
            info = kernels.get_backend(impl).warmup()
            warm[impl] = {"seconds": info.seconds,
                          "what": "JIT compile" if impl == "numba" else "none",
                          "compiled": info.compiled, "loaded_from_cache": info.loaded}
        progress(f"warm-up {impl}: {warm[impl]['seconds']:.2f}s ({warm[impl]['what']})")
    return warm


def prepare_inputs(impls, x, progress) -> tuple:
    """``(prepared, info)``: each fastnn backend's ``prepare_inputs(x)``, made once, and its cost.

    ``prepared`` maps a backend to what its ``train_epoch`` takes as x;
    ``info`` maps it to the seconds taken and, for a sparse form, the number
    of nonzero inputs stored. Done once per run, outside every timing, as
    ``fit`` does once per training run.
    """
    prepared, info = {}, {}
    for impl in impls:
        if impl not in kernels.BACKENDS:
            continue
        kern = kernels.get_backend(impl)
        started = time.perf_counter()
        prepared[impl] = kern.prepare_inputs(x)
        seconds = time.perf_counter() - started
        values = getattr(prepared[impl], "values", None)
        info[impl] = {"seconds": seconds,
                      "nonzeros": None if values is None else int(values.shape[0])}
        progress(f"prepare inputs {impl}: {seconds:.3f}s")
    return prepared, info


def check_accuracy(impls, data, settings, progress, config=ACCURACY_CONFIG,
                   prepared=None) -> dict:
    """Train each implementation one epoch from the same weights and order; score on the test set."""
    n = data.x.shape[0]
    batch = config.batch_rows(n)
    init = Network(config.sizes, hidden=config.hidden, seed=settings.seed)
    labels, targets = init.class_indices(data.labels, n), init.targets(data.labels, n)
    order = np.random.default_rng(settings.seed).permutation(n).astype(np.int64)
    scores = {}
    for impl in impls:
        runner = make_runner(impl, config, data.x, labels, targets, (prepared or {}).get(impl))
        runner.load(init.weights, init.biases)
        with runner.threads(settings.threads):
            if not runner.run(runner.plan(order, batch, config.lr)):
                raise BenchError(f"{impl} diverged in the accuracy check")
        net = Network(config.sizes, hidden=config.hidden, seed=settings.seed)
        net.set_parameters(*runner.parameters())
        scores[impl] = net.score(data.x_test, data.labels_test)
        progress(f"accuracy check: {impl} {scores[impl]:.2%}")
    spread = max(scores.values()) - min(scores.values()) if scores else 0.0
    return {"layers": list(config.sizes), "hidden": config.hidden, "batch_size": batch,
            "lr": config.lr, "epochs": 1, "n_train": n, "n_test": int(data.x_test.shape[0]),
            "test_accuracy": scores, "spread": spread, "tolerance": settings.tolerance,
            "agree": spread <= settings.tolerance}


def _check(settings: Settings) -> None:
    from ..threads import available_threads

    if not 1 <= settings.threads <= available_threads():
        raise ValueError(f"threads must be between 1 and {available_threads()}, "
                         f"got {settings.threads}")
    if settings.repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {settings.repeat}")
    unknown = [impl for impl in settings.impls if impl not in IMPLS]
    if unknown:
        raise ValueError(f"Unknown implementation(s) {unknown}: choose from {', '.join(IMPLS)}.")


def run(data, settings: Settings, progress=None) -> dict:
    """Run the benchmark on a `fastnn.bench.Data`; returns the result (JSON-ready, see README)."""
    progress = progress or (lambda message: None)
    _check(settings)
    available = int(data.x.shape[0])
    if settings.rows is not None:
        data = data.head(settings.rows)
    impls, notes = available_impls(settings.impls)
    notes = list(settings.notes) + notes

    load_before = load_average()
    result = {"schema_version": SCHEMA_VERSION, "dataset": data.source, "origin": data.origin,
              "n_train": int(data.x.shape[0]), "n_train_available": available,
              "n_test": int(data.x_test.shape[0]),
              "quick": settings.quick, "threads": settings.threads, "repeat": settings.repeat,
              "seed": settings.seed, "impls": list(impls), "notes": notes,
              "configs": [c.name for c in settings.configs] if settings.timing else []}
    progress(f"GEMM peak: {settings.gemm_size}x{settings.gemm_size} float32 np.matmul, "
             f"{settings.threads} thread(s)")
    gemm_first = gemm_peak(settings.gemm_size, settings.gemm_repeat, settings.threads)
    result["warmup"] = warm_up(impls, settings.threads, progress)
    if "jax" in result["warmup"]:
        pool = result["warmup"]["jax"]["threads"]
        if pool is None:
            notes.append("jax: JAX was started in this process before the benchmark could size "
                         "its CPU thread pool, so its thread count is unknown.")
        elif pool != settings.threads:
            notes.append(f"jax: its CPU client was started earlier in this process with {pool} "
                         f"thread(s), not {settings.threads}; its times use {pool}.")
    prepared, result["prepare"] = prepare_inputs(impls, data.x, progress)

    records = []
    if settings.timing:
        for config in settings.configs:
            # All-digit configurations share the prepared inputs; a digit subset makes its own.
            records.extend(time_config(config, impls, data, settings, progress,
                                       prepared if config.digits is None else None))
    result["accuracy"] = (check_accuracy(impls, data, settings, progress, prepared=prepared)
                          if settings.accuracy else None)
    # The peak is measured at both ends of the run and the better one kept: a
    # neighbour's load during one of them would otherwise flatter every ratio.
    progress("GEMM peak, again")
    gemm_last = gemm_peak(settings.gemm_size, settings.gemm_repeat, settings.threads)
    result["gemm"] = combine_peaks(gemm_first, gemm_last)
    derive(records, result["gemm"]["gflops"])
    result["records"] = records
    result["environment"] = environment(settings.threads, impls)
    result["load_average"] = {"start": load_before, "end": load_average()}
    return result
