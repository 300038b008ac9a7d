"""The benchmark harness behind ``fastnn bench``: epoch times, side by side.

In one process and one sitting it times a training epoch of the same network
on the same data for each implementation — fastnn's ``numba`` and ``numpy``
backends and, when ``torch`` is importable, PyTorch (`fastnn.peers`) — and
measures the machine's dense float32 GEMM throughput, so each configuration
can be put as effective GFLOP/s and a fraction of that peak.

Fairness rules, all enforced here:

* Every implementation of a configuration starts each round from the same
  initial weights and visits the rows in the same order; the order is drawn
  (and, for PyTorch, split into index tensors) before the clock starts.
* Only the epoch is timed: no data loading, shuffling, parameter reset,
  compilation, input preparation or scoring. Warm-up runs (JIT compilation,
  first-call set-up) and each backend's one-time ``prepare_inputs`` of the
  training set (done once per run, as ``fit`` does once per training run)
  are timed separately and reported, never mixed in.
* Rounds are interleaved — round 1 of every implementation, then round 2 —
  with a short pause between implementations so that one's spinning thread
  pool does not steal the next one's cores; min and median are over rounds.
* All implementations get the same thread count.

This module measures and returns plain records (JSON-ready dicts);
`format_report` turns them into text and `fastnn.cli` prints it.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

import kernels
from kernels.common import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, allocate_workspace

from . import peers
from .data import scale_pixels
from .network import Network

#: Version of the JSON layout written by ``fastnn bench --json``.
SCHEMA_VERSION = 1

IMPLS = ("numba", "numpy", "torch")

#: Pause between two implementations' timed epochs: OpenBLAS and OpenMP
#: workers keep spinning for a while after their last task.
SETTLE_SECONDS = 0.15

#: Rows of the untimed warm-up run of each (implementation, configuration)
#: (at least one batch).
WARMUP_ROWS = 512

#: Environment variables that change which BLAS kernels run; recorded with every run.
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class BenchError(RuntimeError):
    """A benchmark could not be run as asked (e.g. a run diverged)."""


@dataclass(frozen=True)
class BenchConfig:
    """One timed configuration: a network, a batch size and a learning rate.

    ``batch`` is a positive int or ``"full"`` (every row in one step). The
    learning rate only has to keep training finite; it does not change the work.
    """

    sizes: tuple
    batch: object
    lr: float
    hidden: str = "relu"

    @property
    def network(self) -> str:
        return "-".join(map(str, self.sizes))

    def batch_rows(self, n_rows: int) -> int:
        return n_rows if self.batch == "full" else min(int(self.batch), n_rows)


#: The issue's configurations: 784-128-64-10 at batch 1, 64, 256 and full
#: batch, and the 784-10-10 full-batch network.
CONFIGS = (
    BenchConfig((784, 128, 64, 10), 1, 0.01),
    BenchConfig((784, 128, 64, 10), 64, 0.1),
    BenchConfig((784, 128, 64, 10), 256, 0.1),
    BenchConfig((784, 128, 64, 10), "full", 0.1),
    BenchConfig((784, 10, 10), "full", 0.1),
)

#: The accuracy check: one epoch of this configuration per implementation.
ACCURACY_CONFIG = BenchConfig((784, 128, 64, 10), 64, 0.1)


@dataclass
class Settings:
    """What `run` measures and how long it takes.

    threads : threads for every implementation (Numba pool, BLAS, PyTorch).
    repeat : timed rounds per (implementation, configuration).
    impls : implementations to time; unavailable ones are skipped with a note.
    rows : epochs cover the first ``rows`` training rows (None: all of them).
    extrapolate_rows : at batch 1, time numpy and torch on this many samples
        and scale the time to the epoch (0: always time whole epochs).
    gemm_size, gemm_repeat : the square float32 ``np.matmul`` of the peak.
    timing, accuracy : run the timed comparison; run the accuracy check.
    tolerance : largest allowed spread of the implementations' test
        accuracies (a fraction: 0.005 is half a percentage point).
    settle : seconds of pause between two implementations' timed epochs.
    """

    threads: int
    repeat: int = 5
    impls: tuple = IMPLS
    configs: tuple = CONFIGS
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


def default_threads() -> int:
    """Every thread Numba can use in this process (its pool size)."""
    from .threads import available_threads

    return available_threads()


def quick_settings(threads: int, **overrides) -> Settings:
    """A short run: epochs of 6,000 rows, one round, a smaller GEMM, shorter pauses."""
    settings = Settings(threads=threads, repeat=1, rows=6000, extrapolate_rows=600,
                        gemm_size=1024, gemm_repeat=3, quick=True, settle=0.02)
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    return settings


# --- arithmetic of the comparison ---------------------------------------------------------

def dense_flops(sizes, n_samples: int) -> int:
    """Dense multiply-add FLOPs of one epoch of forward + backward passes.

    Per sample and layer k -> m: 2km forward, 2km for the weight gradient and
    2km for the input gradient, which the first layer does not need. Biases,
    activations, the loss and the update are left out (they are O(m), not O(km)).
    For 784-128-64-10 and 60,000 samples this is 27.3 GFLOP.
    """
    per_sample = 0
    for i, (k, m) in enumerate(zip(sizes[:-1], sizes[1:])):
        per_sample += (4 if i == 0 else 6) * k * m
    return per_sample * int(n_samples)


def gemm_peak(size: int, repeat: int, threads: int) -> dict:
    """Dense float32 GEMM throughput: the best of ``repeat`` ``np.matmul`` of size^3."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    c = np.empty((size, size), np.float32)
    times = []
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=c)  # page in, wake the pool
        for _ in range(repeat):
            started = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - started)
    flop = 2 * size ** 3
    return {"size": size, "threads": threads, "repeat": repeat, "times_s": times,
            "min_s": min(times), "median_s": statistics.median(times),
            "gflops": flop / min(times) / 1e9, "gflops_median": flop / statistics.median(times) / 1e9}


def combine_peaks(*runs) -> dict:
    """One peak from several `gemm_peak` runs: the best time of all, the median of all."""
    times = [t for r in runs for t in r["times_s"]]
    flop = 2 * runs[0]["size"] ** 3
    return {"size": runs[0]["size"], "threads": runs[0]["threads"], "matmuls": len(times),
            "gflops": flop / min(times) / 1e9,
            "gflops_median": flop / statistics.median(times) / 1e9,
            "runs": list(runs)}


# --- the machine and the libraries ---------------------------------------------------------

def environment(threads: int) -> dict:
    """CPU, BLAS, library versions and the BLAS-related environment variables.

    Built from `fastnn.info` (what ``fastnn info`` shows), plus PyTorch's
    build when it is importable and the variables that steer OpenBLAS.
    """
    from . import info

    return {
        "cpu": info.cpu(),
        "threads": threads,
        "thread_counts": info.threads(),
        "platform": platform.platform(),
        "versions": info.versions(),
        "torch": peers.torch_info() if peers.torch_available() else None,
        "blas": info.blas(),
        "blas_env": {name: os.environ.get(name) for name in BLAS_ENV},
        "numba_threading_layer": info.threading_layer()["active"],
    }


def blas_summary(env: dict) -> str:
    """One line naming NumPy's BLAS, its version, the kernel it picked and its settings."""
    # SciPy (loaded by Numba) and PyTorch bring BLAS libraries of their own;
    # np.matmul, the peak and the numpy backend use NumPy's.
    numpy_blas = [p for p in env["blas"] if "numpy" in (p["filepath"] or "")] or \
        [p for p in env["blas"] if "torch" not in (p["filepath"] or "")]
    core = env["blas_env"].get("OPENBLAS_CORETYPE") or "unset"
    l2 = env["blas_env"].get("OPENBLAS_L2_SIZE") or "unset"
    setting = f"OPENBLAS_CORETYPE {core}, OPENBLAS_L2_SIZE {l2}"
    if not numpy_blas:
        return f"NumPy BLAS: not detected; {setting}"
    p = numpy_blas[0]
    return (f"NumPy BLAS: {p['internal_api']} {p['version']} "
            f"({os.path.basename(p['filepath'] or '?')}), kernel {p['architecture']}; {setting}")


# --- the implementations, behind one small interface ------------------------------------

class _Fastnn:
    """A fastnn backend: ``train_epoch`` over the whole training set."""

    def __init__(self, name, config: BenchConfig, x, y, inputs=None):
        self.name = name
        self.kern = kernels.get_backend(name)
        self.config = config
        self.x, self.y = x, y
        # x as the backend's train_epoch takes it; `prepare_inputs` below makes it once per run.
        self.inputs = self.kern.prepare_inputs(x) if inputs is None else inputs
        self.hidden = HIDDEN_ACTIVATIONS[config.hidden]
        self.output = OUTPUT_ACTIVATIONS["softmax"]
        self.weights = self.biases = None
        self._workspaces = {}

    def threads(self, n):
        from .threads import limit_threads

        # Numba threads, BLAS pinned to one (fastnn.threads explains why); the
        # NumPy backend's only parallel code is BLAS, so it gets the n threads.
        return limit_threads(n, blas=1) if self.name == "numba" else limit_threads(n, blas=n)

    def load(self, weights, biases):
        self.weights = tuple(w.copy() for w in weights)
        self.biases = tuple(b.copy() for b in biases)

    def plan(self, order, batch):
        rows = min(batch, order.shape[0])
        if rows not in self._workspaces:
            self._workspaces[rows] = allocate_workspace(self.config.sizes, rows, self.x.dtype)
        return order, batch, -(-order.shape[0] // batch), self._workspaces[rows]

    def run(self, plan, lr):
        order, batch, expected, ws = plan
        _, _, steps = self.kern.train_epoch(self.weights, self.biases, self.inputs, self.y,
                                            order, batch, lr, self.hidden, self.output, ws)
        return steps == expected

    def parameters(self):
        return list(self.weights), list(self.biases)


class _Torch:
    """The PyTorch peer (`fastnn.peers.TorchMLP`) behind the same interface."""

    name = "torch"

    def __init__(self, config: BenchConfig, x, labels):
        self.mlp = peers.TorchMLP(config.sizes, config.hidden, x, labels)

    @contextmanager
    def threads(self, n):
        import torch

        from .threads import limit_threads

        previous = torch.get_num_threads()
        with limit_threads(n, blas=n):
            torch.set_num_threads(n)
            try:
                yield n
            finally:
                torch.set_num_threads(previous)

    def load(self, weights, biases):
        self.mlp.set_parameters(weights, biases)

    def plan(self, order, batch):
        return self.mlp.batches(order, batch)

    def run(self, plan, lr):
        self.mlp.train_epoch(plan, float(lr))
        return True

    def parameters(self):
        return self.mlp.parameters()


def _finite(params) -> bool:
    return all(np.isfinite(p).all() for group in params for p in group)


def _timed(runner, plan, lr) -> float:
    """Seconds of one ``runner.run``, with the garbage collector off (as timeit does)."""
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        completed = runner.run(plan, lr)
        seconds = time.perf_counter() - started
    finally:
        if gc_was_on:
            gc.enable()
    if not completed:
        raise BenchError(f"{runner.name} diverged (non-finite loss) during a timed epoch")
    return seconds


# --- the run -----------------------------------------------------------------------------

@dataclass
class Data:
    """Training and test arrays of one run, and where they came from."""

    x: np.ndarray        # (n, 784) float32 in [0, 1]
    labels: np.ndarray   # (n,) int64
    x_test: np.ndarray
    labels_test: np.ndarray
    source: str          # "mnist" or "sample"
    origin: str

    @classmethod
    def from_mnist(cls, data) -> "Data":
        """Every training image and the test set of a `fastnn.mnist.MnistData`, as float32."""
        return cls(scale_pixels(data.train_images, np.float32),
                   data.train_labels.astype(np.int64),
                   scale_pixels(data.test_images, np.float32),
                   data.test_labels.astype(np.int64), data.source, data.origin)


def _make_runner(impl, config, data, y, prepared=None):
    """The runner of ``impl``; ``prepared`` maps fastnn backends to their prepared data.x."""
    if impl == "torch":
        return _Torch(config, data.x, data.labels)
    return _Fastnn(impl, config, data.x, y, (prepared or {}).get(impl))


def available_impls(requested) -> tuple:
    """``(usable, notes)``: the requested implementations that can run, and one note per skip."""
    usable, notes = [], []
    for impl in requested:
        if impl == "torch" and not peers.torch_available():
            notes.append(f"torch: skipped: {peers.TORCH_MISSING}.")
        else:
            usable.append(impl)
    return tuple(usable), notes


def _warm_up(impls, progress) -> dict:
    """Compile / import everything once, outside any timing; returns seconds per implementation."""
    warm = {}
    for impl in impls:
        started = time.perf_counter()
        if impl == "torch":
            import torch  # noqa: F401  (the import is part of PyTorch's start-up cost)
            warm[impl] = {"seconds": time.perf_counter() - started, "what": "import torch"}
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
        if impl == "torch":
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

    ``prepared`` holds the fastnn backends' inputs from `prepare_inputs`
    (made here, untimed, for any backend it lacks).
    """
    n = data.x.shape[0]
    batch = config.batch_rows(n)
    y = np.eye(config.sizes[-1], dtype=np.float32)[data.labels]
    init = Network(config.sizes, hidden=config.hidden, seed=settings.seed)
    order = np.random.default_rng(settings.seed).permutation(n).astype(np.int64)
    lr = np.float32(config.lr)
    label = f"{config.network} batch {config.batch}"

    runners, plans, warm_plans, timed_rows, warm_s = {}, {}, {}, {}, {}
    for impl in impls:
        runner = runners[impl] = _make_runner(impl, config, data, y, prepared)
        extrapolate = (impl != "numba" and batch == 1
                       and 0 < settings.extrapolate_rows < n)
        timed_rows[impl] = settings.extrapolate_rows if extrapolate else n
        plans[impl] = runner.plan(order[:timed_rows[impl]], batch)
        warm_plans[impl] = runner.plan(warmup_order(order[:timed_rows[impl]], batch), batch)
        runner.load(init.weights, init.biases)
        with runner.threads(settings.threads):
            warm_s[impl] = _timed(runner, warm_plans[impl], lr)
        time.sleep(settings.settle)

    times = {impl: [] for impl in impls}
    for r in range(settings.repeat):
        # Rotate who goes first, so no implementation always follows the same one.
        for impl in impls[r % len(impls):] + impls[:r % len(impls)]:
            runner = runners[impl]
            runner.load(init.weights, init.biases)
            with runner.threads(settings.threads):
                seconds = _timed(runner, plans[impl], lr)
            if not _finite(runner.parameters()):
                raise BenchError(f"{impl} diverged on {label}: lower its learning rate")
            times[impl].append(seconds * n / timed_rows[impl])
            progress(f"{label}: round {r + 1}/{settings.repeat} {impl} "
                     f"{times[impl][-1]:.4f}s")
            time.sleep(settings.settle)

    gflop = dense_flops(config.sizes, n) / 1e9
    records = []
    for impl in impls:
        records.append({
            "impl": impl,
            "layers": list(config.sizes),
            "hidden": config.hidden,
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
            "gflop_per_epoch": gflop,
            "dataset": data.source,
        })
    return records


def _derive(records, peak_gflops) -> None:
    """Add GFLOP/s, the fraction of the GEMM peak and numba's speedup to each record."""
    by_config = {}
    for rec in records:
        by_config.setdefault((tuple(rec["layers"]), rec["batch_size"]), {})[rec["impl"]] = rec
    for rec in records:
        rec["gflops"] = rec["gflop_per_epoch"] / rec["min_s"]
        rec["gflops_median"] = rec["gflop_per_epoch"] / rec["median_s"]
        rec["peak_fraction"] = rec["gflops"] / peak_gflops if peak_gflops else None
        numba_rec = by_config[(tuple(rec["layers"]), rec["batch_size"])].get("numba")
        if numba_rec is None:
            rec["numba_speedup_min"] = rec["numba_speedup_median"] = None
        else:
            rec["numba_speedup_min"] = rec["min_s"] / numba_rec["min_s"]
            rec["numba_speedup_median"] = rec["median_s"] / numba_rec["median_s"]


def check_accuracy(impls, data, settings, progress, config=ACCURACY_CONFIG,
                   prepared=None) -> dict:
    """Train each implementation one epoch from the same weights and order; score on the test set."""
    n = data.x.shape[0]
    batch = config.batch_rows(n)
    y = np.eye(config.sizes[-1], dtype=np.float32)[data.labels]
    init = Network(config.sizes, hidden=config.hidden, seed=settings.seed)
    order = np.random.default_rng(settings.seed).permutation(n).astype(np.int64)
    scores = {}
    for impl in impls:
        runner = _make_runner(impl, config, data, y, prepared)
        runner.load(init.weights, init.biases)
        plan = runner.plan(order, batch)
        with runner.threads(settings.threads):
            if not runner.run(plan, np.float32(config.lr)):
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


def run(data: Data, settings: Settings, progress=None) -> dict:
    """Run the benchmark and return its result (a JSON-ready dict); see the README."""
    from .threads import available_threads

    progress = progress or (lambda message: None)
    if not 1 <= settings.threads <= available_threads():
        raise ValueError(f"threads must be between 1 and {available_threads()}, "
                         f"got {settings.threads}")
    if settings.repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {settings.repeat}")
    unknown = [impl for impl in settings.impls if impl not in IMPLS]
    if unknown:
        raise ValueError(f"Unknown implementation(s) {unknown}: choose from {', '.join(IMPLS)}.")
    available = int(data.x.shape[0])
    if settings.rows is not None:
        rows = min(settings.rows, data.x.shape[0])
        data = Data(data.x[:rows], data.labels[:rows], data.x_test, data.labels_test,
                    data.source, data.origin)
    impls, notes = available_impls(settings.impls)
    notes = list(settings.notes) + notes

    load_before = _load_average()
    result = {"schema_version": SCHEMA_VERSION, "dataset": data.source, "origin": data.origin,
              "n_train": int(data.x.shape[0]), "n_train_available": available,
              "n_test": int(data.x_test.shape[0]),
              "quick": settings.quick, "threads": settings.threads, "repeat": settings.repeat,
              "seed": settings.seed, "impls": list(impls), "notes": notes}
    progress(f"GEMM peak: {settings.gemm_size}x{settings.gemm_size} float32 np.matmul, "
             f"{settings.threads} thread(s)")
    gemm_first = gemm_peak(settings.gemm_size, settings.gemm_repeat, settings.threads)
    result["warmup"] = _warm_up(impls, progress)
    prepared, result["prepare"] = prepare_inputs(impls, data.x, progress)

    records = []
    if settings.timing:
        for config in settings.configs:
            records.extend(time_config(config, impls, data, settings, progress, prepared))
    result["accuracy"] = (check_accuracy(impls, data, settings, progress, prepared=prepared)
                          if settings.accuracy else None)
    # The peak is measured at both ends of the run and the better one kept: a
    # neighbour's load during one of them would otherwise flatter every ratio.
    progress("GEMM peak, again")
    gemm_last = gemm_peak(settings.gemm_size, settings.gemm_repeat, settings.threads)
    result["gemm"] = combine_peaks(gemm_first, gemm_last)
    _derive(records, result["gemm"]["gflops"])
    result["records"] = records
    result["environment"] = environment(settings.threads)
    result["load_average"] = {"start": load_before, "end": _load_average()}
    return result


def _load_average():
    """The 1-minute load average (None where the OS has none): other work on the cores."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def plot_records(result: dict) -> tuple:
    """``(records, title)`` for `fastnn.plots.plot_epoch_times`: the batch-size sweep.

    The plot has one axis of batch sizes, so it shows the network timed at the
    most batch sizes (784-128-64-10 by default); ``batch_size`` is ``"full"``
    for a full-batch record.
    """
    counts = {}
    for rec in result["records"]:
        counts[tuple(rec["layers"])] = counts.get(tuple(rec["layers"]), 0) + 1
    if not counts:
        return [], ""
    network = max(counts, key=counts.get)
    records = [{"impl": rec["impl"], "median_s": rec["median_s"],
                "batch_size": "full" if rec["full_batch"] else rec["batch_size"]}
               for rec in result["records"] if tuple(rec["layers"]) == network]
    data = "full MNIST" if result["dataset"] == "mnist" else "bundled sample"
    title = (f"{'-'.join(map(str, network))} epoch time ({data}, {result['n_train']:,} rows, "
             f"{result['threads']} thread(s))")
    return records, title


# --- text -------------------------------------------------------------------------------

def _seconds(value: float) -> str:
    return f"{value:.4f}" if value < 10 else f"{value:.2f}"


def format_report(result: dict) -> str:
    """The result as text: header, one table row per record, footnotes, accuracy."""
    env = result["environment"]
    lines = []
    train = f"{result['n_train']:,}"
    if result.get("n_train_available", result["n_train"]) > result["n_train"]:
        train = f"the first {train} of {result['n_train_available']:,}"
    if result["dataset"] == "mnist":
        data = f"full MNIST ({train} training / {result['n_test']:,} test images)"
    else:
        data = (f"the bundled SAMPLE, not full MNIST ({train} training / "
                f"{result['n_test']:,} test images): times are not comparable with full-MNIST epochs")
    if result["quick"]:
        data += "; --quick"
    lines.append(f"data: {data}")
    torch = env.get("torch")
    versions = env["versions"]
    cpu = env["cpu"]
    simd = [f for f in cpu["simd"] if f in ("avx2", "fma", "avx512f", "avx512_bf16")]
    lines.append(f"machine: {cpu['model']} ({cpu['llvm_name']}; {', '.join(simd) or 'no AVX'}), "
                 f"{env['thread_counts']['cpu_count']} logical CPUs; {result['threads']} "
                 f"thread(s) for every implementation")
    lines.append(f"versions: fastnn {versions['fastnn']}, Python {versions['python']}, NumPy "
                 f"{versions['numpy']}, Numba {versions['numba']} (threading layer "
                 f"{env['numba_threading_layer']})"
                 + (f", PyTorch {torch['version']} ({torch.get('cpu_capability', '?')})"
                    if torch else ""))
    lines.append(blas_summary(env))
    gemm = result["gemm"]
    each = ", ".join(f"{r['gflops']:.1f}" for r in gemm["runs"])
    lines.append(f"GEMM peak: {gemm['gflops']:.1f} GFLOP/s, the best of {gemm['matmuls']} "
                 f"{gemm['size']}^3 float32 np.matmul on {gemm['threads']} thread(s) "
                 f"(best at the start and at the end of the run: {each}; median of all "
                 f"{gemm['gflops_median']:.1f})")
    warm = ", ".join(
        f"{impl} {w['seconds']:.2f}s ({w['what']}"
        + (f": {w['compiled']} compiled, {w['loaded_from_cache']} from cache" if "compiled" in w
           else "") + ")"
        for impl, w in result["warmup"].items())
    lines.append(f"warm-up, not in the timings: {warm}")
    prepare = result.get("prepare")
    if prepare:
        each = ", ".join(
            f"{impl} {p['seconds']:.3f}s ("
            + ("input unchanged" if p["nonzeros"] is None
               else f"{p['nonzeros']:,} nonzero inputs found") + ")"
            for impl, p in prepare.items())
        lines.append(f"prepare_inputs, once per run, not in the timings: {each}")
    load = result.get("load_average") or {}
    if load.get("start") is not None and load.get("end") is not None:
        busy = max(load["start"], load["end"]) > 0.5 * env["thread_counts"]["cpu_count"]
        lines.append(f"load average (1 min): {load['start']:.2f} at the start, {load['end']:.2f} "
                     f"at the end" + ("; other processes were competing for the cores, so "
                                      "threaded timings may be inflated" if busy else ""))
    for note in result["notes"]:
        lines.append(f"note: {note}")

    records = result["records"]
    if records:
        lines.append("")
        lines.append(f"seconds per epoch over {result['repeat']} round(s); numba x = that "
                     "implementation's time / numba's (from min, from median); GFLOP/s = dense "
                     "forward+backward FLOPs / min time")
        header = (f"{'network':<14} {'batch':>6} {'impl':<6} {'min s':>9} {'median s':>9} "
                  f"{'numba x min':>11} {'numba x med':>11} {'GFLOP/s':>8} {'% peak':>7}")
        lines.append(header)
        lines.append("-" * len(header))
        previous = None
        for rec in records:
            key = (tuple(rec["layers"]), rec["batch_size"])
            if previous is not None and key != previous:
                lines.append("")
            previous = key
            batch = "full" if rec["full_batch"] else str(rec["batch_size"])
            mark = "*" if rec["extrapolated"] else " "
            speed_min = ("-" if rec["numba_speedup_min"] is None
                         else f"{rec['numba_speedup_min']:.2f}")
            speed_med = ("-" if rec["numba_speedup_median"] is None
                         else f"{rec['numba_speedup_median']:.2f}")
            peak = "-" if rec["peak_fraction"] is None else f"{rec['peak_fraction']:.1%}"
            lines.append(
                f"{'-'.join(map(str, rec['layers'])):<14} {batch:>6} {rec['impl']:<6} "
                f"{_seconds(rec['min_s']) + mark:>9} {_seconds(rec['median_s']) + mark:>9} "
                f"{speed_min:>11} {speed_med:>11} {rec['gflops']:>8.1f} {peak:>7}")
        extrapolated = [r for r in records if r["extrapolated"]]
        if extrapolated:
            r = extrapolated[0]
            lines.append(f"* extrapolated: timed on the first {r['timed_samples']:,} samples of "
                         f"the epoch's order and scaled to {r['n_samples']:,} "
                         "(per-sample cost is constant at batch 1)")
    accuracy = result["accuracy"]
    if accuracy:
        lines.append("")
        scores = "  ".join(f"{impl} {acc:.2%}" for impl, acc in accuracy["test_accuracy"].items())
        verdict = "agree" if accuracy["agree"] else "DISAGREE"
        lines.append(
            f"accuracy check ({'-'.join(map(str, accuracy['layers']))} {accuracy['hidden']}, "
            f"batch {accuracy['batch_size']}, lr {accuracy['lr']:g}, 1 epoch from the same weights "
            f"and order, {accuracy['n_test']:,} test images): {scores}; spread "
            f"{accuracy['spread'] * 100:.2f} points (tolerance {accuracy['tolerance'] * 100:.2f}): "
            f"{verdict}")
    return "\n".join(lines)
