"""``fastnn sweep``: a hyperparameter search over `fastnn.run` trials, with Optuna."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time

from .. import mnist
from ..network import DTYPES
from .options import (Failure, UsageError, add_backend_option, add_data_options, digits_arg,
                      note, positive_int_arg, seconds_arg, seed_arg, val_size_arg)

DEFAULT_TRIALS = 20


def add_parsers(commands) -> None:
    from ..sweep.space import DEFAULT_SPACE, PARAMETERS, SPEC_HELP
    from ..sweep.study import DEFAULT_STORAGE, DEFAULT_STUDY, PRUNERS, SAMPLERS

    default_space = " ".join(f"{name}={DEFAULT_SPACE[name]}" for name in PARAMETERS)
    sweep = commands.add_parser(
        "sweep", help="search hyperparameters with Optuna (needs fastnn[sweep])",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="\n\n".join(textwrap.fill(paragraph, 79) for paragraph in (
            "Train many networks, each one 'fastnn train' run (a trial), choosing their "
            "settings with Optuna to maximise the validation accuracy after the last epoch. "
            "Every epoch reports its validation accuracy, and the pruner stops trials that "
            "are doing worse than the others at the same epoch. The study lives in "
            "--storage, so a sweep that was interrupted, or run again with more --trials, "
            "continues where it stopped; several machines given the same --storage URL and "
            "--study share one study.",
            f"Default search space: {default_space}.",
            'Needs Optuna: pip install "fastnn[sweep]".')),
        epilog="examples:\n"
               "  fastnn sweep --trials 30 --jobs 2\n"
               "  fastnn sweep -p lr=0.001..1 -p layers=128/256,128 -p epochs=5..15\n"
               "  fastnn sweep --space space.toml --storage postgresql://user@host/db "
               "--study mnist-1")
    space = sweep.add_argument_group("search space")
    space.add_argument("-p", "--param", action="append", default=[], metavar="NAME=SPEC",
                       help=f"{SPEC_HELP}. Repeatable; parameters not named keep the default")
    space.add_argument("--space", metavar="FILE",
                       help="a TOML file of NAME = SPEC lines (a spec string, a list of "
                            "choices, {low, high, log} or one value); -p flags override it")
    search = sweep.add_argument_group("search")
    search.add_argument("--trials", type=positive_int_arg, default=None, metavar="N",
                        help="finished trials (completed or pruned) the study should have, "
                             "counting those of earlier runs and other machines (default: "
                             f"{DEFAULT_TRIALS}; with --sampler grid, the grid's size)")
    search.add_argument("--timeout", type=seconds_arg, default=None, metavar="SECONDS",
                        help="start no trial after this many seconds (running ones finish)")
    search.add_argument("--sampler", choices=SAMPLERS, default="tpe",
                        help="how trials are chosen: tpe (Bayesian, default), random, or grid "
                             "(every combination of the choices; no ranges)")
    search.add_argument("--pruner", choices=PRUNERS, default="median",
                        help="median (default): stop a trial below the median of earlier trials "
                             "at the same epoch, after 3 trials; halving: successive halving; "
                             "none")
    search.add_argument("--storage", default=DEFAULT_STORAGE, metavar="FILE|URL",
                        help="where the study lives: a journal file (default: "
                             f"{DEFAULT_STORAGE} in the current directory) or a database "
                             "URL such as postgresql://user:password@host/db")
    search.add_argument("--study", default=DEFAULT_STUDY, metavar="NAME",
                        help=f"the study's name in the storage (default: {DEFAULT_STUDY})")
    runs = sweep.add_argument_group("every trial")
    runs.add_argument("--digits", type=digits_arg, default="all",
                      help="'all' for 10 classes, or a pair like 0,1 (default: all)")
    runs.add_argument("--val-size", type=val_size_arg, default=0.1, metavar="N|FRACTION",
                      help="training rows held out for validation, which the sweep maximises "
                           "(default: 0.1)")
    runs.add_argument("--seed", type=seed_arg, default=0,
                      help="seeds every trial's split, weights and shuffling, and the sampler "
                           "(default: 0)")
    runs.add_argument("--dtype", choices=DTYPES, default="float32",
                      help="floating-point type (default: float32)")
    add_backend_option(runs)
    runs.add_argument("--jobs", type=positive_int_arg, default=1, metavar="N",
                      help="worker processes on this machine, each running one trial at a time "
                           "(default: 1)")
    runs.add_argument("--threads", type=positive_int_arg, default=None, metavar="N",
                      help="threads per trial (default: the cores divided by --jobs; threads "
                           "x jobs may not exceed the cores)")
    output = sweep.add_argument_group("output")
    output.add_argument("--json", action="store_true",
                        help="print the whole study as JSON on stdout instead of the table")
    output.add_argument("--plot-dir", metavar="DIR",
                        help="write history.png (optimisation history) and importances.png "
                             "(parameter importances, from 5 completed trials) here")
    output.add_argument("-q", "--quiet", action="store_true",
                        help="no live trial lines or notes; only the result")
    add_data_options(sweep)
    sweep.set_defaults(handler=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..sweep import (SearchSpace, SpaceError, StudyError, StudyMismatch, StudySpec,
                         WorkerPlan, run_sweep, split_cores)
    from ..sweep.report import best_table, study_json, train_command, write_plots
    from ..sweep.study import optuna
    from ..threads import available_threads

    optuna()  # before anything else: without the extra, say how to install it
    try:
        space = SearchSpace.from_specs(args.space, args.param)
        trials = _trials(args, space)
    except SpaceError as err:
        raise UsageError(str(err)) from None
    if args.val_size == 0:
        raise UsageError("--val-size 0 leaves no validation rows, and the sweep maximises the "
                         "validation accuracy; give a fraction like 0.1 or a row count")
    cores = available_threads()
    threads = split_cores(args.jobs, args.threads, cores)
    if args.plot_dir:
        from ..plots import prepare_directory
        from ..extras import require
        require("matplotlib.figure", "sweep", "--plot-dir")
        prepare_directory(args.plot_dir)
    data = mnist.load(args.data, args.data_dir, download=not args.no_download)
    if data.note:
        note(args, data.note)
    fixed = {"digits": list(args.digits), "val_size": args.val_size, "seed": args.seed,
             "dtype": args.dtype, "data": data.source}
    study = StudySpec(args.storage, args.study, space.describe(), fixed, args.sampler,
                      args.pruner)
    settings = {"digits": args.digits, "val_size": args.val_size, "seed": args.seed,
                "dtype": args.dtype, "backend": args.backend, "threads": threads,
                "data": data.source, "data_dir": args.data_dir,
                "download": not args.no_download}
    plan = WorkerPlan(study, settings, trials,
                      deadline=time.time() + args.timeout if args.timeout is not None else None,
                      quiet=args.quiet, seed=args.seed)
    banner = (f"study {args.study!r} in {args.storage}, up to {trials} finished trials; "
              f"{args.jobs} worker{'s' if args.jobs > 1 else ''} x {threads} "
              f"thread{'s' if threads > 1 else ''} per trial on {cores} cores; "
              f"{args.sampler} sampler, {args.pruner} pruner; {space.text()}")
    try:
        outcome = run_sweep(plan, args.jobs, lambda message: note(args, f"sweep: {message}"),
                            banner)
    except StudyMismatch as err:
        raise UsageError(str(err)) from None
    except StudyError as err:
        raise Failure(str(err)) from None

    note(args, f"sweep: {outcome.finished} trial(s) finished in this run")
    shown = {"backend": args.backend, "threads": threads, "data_dir": args.data_dir}
    if args.json:
        print(json.dumps(study_json(outcome.study, args.storage, shown), indent=2))
    else:
        _print_report(outcome.study, shown, best_table, train_command)
    if args.plot_dir:
        paths, notes = write_plots(outcome.study, args.plot_dir)
        for line in notes:
            note(args, f"sweep: {line}")
        note(args, f"sweep: plots: {', '.join(map(str, paths))}")
    if outcome.signal:
        import signal as signals
        print(f"fastnn: sweep interrupted by {signals.Signals(outcome.signal).name}; the trials "
              "that were running are marked failed; run the same command to continue the study",
              file=sys.stderr)
        return 128 + outcome.signal
    return 0


def _trials(args, space) -> int:
    if args.sampler != "grid":
        return args.trials or DEFAULT_TRIALS
    size = space.grid_size()
    if args.trials and args.trials > size:
        note(args, f"sweep: --trials {args.trials} is more than the grid's {size} points; "
                   f"running {size}")
    return min(args.trials or size, size)


def _print_report(study, shown, best_table, train_command) -> None:
    from ..sweep.report import completed
    from ..sweep.study import count

    counts = count(study)
    best = completed(study)
    print(f"study {study.study_name!r}: {counts['finished']} finished trials "
          f"({len(best)} completed, {counts['finished'] - len(best)} pruned), "
          f"{counts['failed']} failed, {counts['running']} running")
    if not best:
        print("no completed trial yet")
        return
    print(best_table(study))
    print("reproduce the best trial:")
    print(f"  {train_command(best[0], study, shown)}")
