"""``fastnn bench``: the comparison harness of `fastnn.bench`, from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import bench, plots
from ..config import check_output
from .options import (Failure, UsageError, add_data_options, load_data, note,
                      positive_int_arg, seed_arg)


def add_parsers(commands) -> None:
    timing = commands.add_parser(
        "bench", help="time training epochs of numba, numpy, PyTorch and JAX side by side",
        description="Time one training epoch of fastnn's numba and numpy backends and, when "
                    "importable, PyTorch and JAX on the CPU (the same network, float32, "
                    "initial weights, batch order and thread count) for the configurations "
                    "C1-C7 (see README); measure the dense float32 GEMM peak (np.matmul) and "
                    "put each epoch as GFLOP/s and a fraction of it, on dense and on useful "
                    "work; check that all implementations reach the same test accuracy. "
                    "Progress goes to stderr, the report to stdout.")
    timing.add_argument("--quick", action="store_true",
                        help="a short run: epochs over the first 6,000 training rows, one "
                             "round, a 1024^3 GEMM")
    timing.add_argument("--threads", type=positive_int_arg, default=None,
                        help="threads for every implementation (default: all Numba can use)")
    timing.add_argument("--repeat", type=positive_int_arg, default=None, metavar="N",
                        help="timed rounds; min and median are over them (default: 5, "
                             "--quick: 1)")
    timing.add_argument("--impl", action="append", choices=bench.IMPLS, default=None,
                        help="time only this implementation (repeatable; default: all)")
    timing.add_argument("--config", action="append", default=None, metavar="NAME",
                        help="time only this configuration, one of "
                             f"{', '.join(bench.CONFIGS)} (repeatable; default: all)")
    timing.add_argument("--rows", type=positive_int_arg, default=None, metavar="N",
                        help="epochs over the first N training rows (default: all; --quick: "
                             "6000)")
    timing.add_argument("--extrapolate-rows", type=seed_arg, default=None, metavar="N",
                        help="at batch 1, time numpy, torch and jax on N samples and scale to the "
                             "epoch, marked * (default: 6000, --quick: 600; 0: whole epochs)")
    timing.add_argument("--seed", type=seed_arg, default=0,
                        help="seeds the initial weights and the batch order (default: 0)")
    timing.add_argument("--check-accuracy", action="store_true",
                        help="only the accuracy check: one epoch at batch 64 per "
                             "implementation from the same weights and order")
    timing.add_argument("--json", metavar="PATH",
                        help="write every record, the GEMM peak and the machine (see README)")
    timing.add_argument("--plot", metavar="FILE",
                        help="draw epoch time per implementation and batch size to a PNG "
                             "(needs matplotlib)")
    add_data_options(timing)
    timing.set_defaults(handler=cmd_bench)


def _bench_configs(names):
    """The `BenchConfig` s named by ``--config`` (None: the default set)."""
    if not names:
        return None
    try:
        return bench.select_configs(names)
    except ValueError as error:
        raise UsageError(f"--config: {error}") from None


def cmd_bench(args: argparse.Namespace) -> int:
    threads = args.threads or bench.default_threads()
    if threads > bench.default_threads():
        raise UsageError(f"--threads {threads}: this process can use at most "
                         f"{bench.default_threads()} (NUMBA_NUM_THREADS)")
    options = {"threads": threads, "repeat": args.repeat, "rows": args.rows,
               "extrapolate_rows": args.extrapolate_rows, "seed": args.seed,
               "impls": tuple(dict.fromkeys(args.impl)) if args.impl else None,
               "configs": _bench_configs(args.config)}
    if args.quick:
        settings = bench.quick_settings(**options)
    else:
        settings = bench.Settings(**{key: value for key, value in options.items()
                                     if value is not None})
    settings.timing = not args.check_accuracy
    check_output(args.json, "--json")
    check_output(args.plot, "--plot")
    if args.plot:
        plots.check_available("fastnn bench --plot")  # before the run, not after it
    data = bench.Data.from_mnist(load_data(args))
    result = bench.run(data, settings, progress=lambda message: note(args, message))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.plot and result["records"]:
        records, title = bench.plot_records(result)
        plots.plot_epoch_times(records, args.plot, title=title)
    print(bench.format_report(result))
    accuracy = result["accuracy"]
    if accuracy is not None and not accuracy["agree"]:
        raise Failure(f"the implementations' test accuracies differ by "
                      f"{accuracy['spread']:.2%}, more than {accuracy['tolerance']:.2%}")
    return 0
