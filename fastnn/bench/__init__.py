"""The benchmark harness behind ``fastnn bench``: epoch times, side by side.

In one process and one sitting it times a training epoch of the same network
on the same data for each implementation — fastnn's ``numba`` and ``numpy``
backends and, when importable, PyTorch and JAX (`fastnn.peers`) — for the
named configurations C1-C7, and measures the machine's dense float32 GEMM
throughput, so each epoch can be put as GFLOP/s and a fraction of that peak,
on dense and on useful work (`fastnn.bench.work`).

Modules, one job each: `configs` (C1-C7), `data` (the arrays), `runners`
(each implementation behind one interface), `timing` (the measurement and
its fairness rules), `work` (FLOP accounting and ratios), `machine` (CPU,
GEMM peak, versions, threads), `report` (text) and `harness` (a whole run).
"""

from .configs import ACCURACY_CONFIG, CONFIGS, BenchConfig, select_configs
from .data import Data
from .harness import SCHEMA_VERSION, Settings, check_accuracy, quick_settings, run
from .machine import default_threads, environment, gemm_peak
from .report import format_report, plot_records
from .runners import IMPLS, PEERS, available_impls, make_runner
from .timing import WARMUP_ROWS, BenchError, time_config, warmup_order
from .work import dense_flops, derive, useful_flops

__all__ = ["ACCURACY_CONFIG", "CONFIGS", "IMPLS", "PEERS", "SCHEMA_VERSION", "WARMUP_ROWS",
           "BenchConfig", "BenchError", "Data", "Settings", "available_impls", "check_accuracy",
           "default_threads", "dense_flops", "derive", "environment", "format_report",
           "gemm_peak", "make_runner", "plot_records", "quick_settings", "run",
           "select_configs", "time_config", "useful_flops", "warmup_order"]
