"""``fastnn train`` and ``fastnn presets``: flags to a `RunConfig`, `fastnn.workflow.run`, a summary."""

from __future__ import annotations

import argparse
import sys

from .. import presets
from ..config import RunConfig
from ..interrupts import stop_signal
from ..network import DTYPES, INITS
from ..progress import ConsoleEvents
from ..workflow import RunResult, run
from .options import (add_backend_option, add_data_options, batch_size_arg, digits_arg,
                      layers_arg, learning_rate_arg, positive_int_arg, seconds_arg, seed_arg,
                      val_size_arg)

#: The flags of `fastnn train` that are settings of the run (`RunConfig` fields).
RUN_SETTINGS = ("digits", "layers", "hidden", "batch_size", "lr", "epochs", "init", "seed",
                "val_size", "dtype", "backend", "threads", "data", "data_dir", "save",
                "checkpoint_every", "metrics_json", "plot_dir")


def add_train_parser(commands) -> None:
    train = commands.add_parser(
        "train", help="train a network and report its test accuracy",
        description="Train a network on MNIST (10 digits, or a digit pair with --digits) and "
                    "report per-epoch metrics and the test accuracy. Flags given with --preset "
                    "override the preset. Ctrl-C or SIGTERM stops training cleanly: with --save, "
                    "the last completed epoch is saved as a checkpoint, and 'train --resume "
                    "CHECKPOINT' continues it to the same result as an uninterrupted run.")
    default = presets.DEFAULT
    model = train.add_argument_group("model and training")
    model.add_argument("--preset", choices=tuple(presets.PRESETS),
                       help="start from a tutorial configuration (see 'fastnn presets')")
    model.add_argument("--digits", type=digits_arg, default=None,
                       help=f"'all' for 10 classes, or a pair like 0,1 (default: {default['digits']})")
    model.add_argument("--layers", type=layers_arg, default=None, metavar="SIZES",
                       help="hidden layer sizes, comma-separated (default: "
                            f"{','.join(map(str, default['layers']))})")
    model.add_argument("--hidden", choices=("relu", "sigmoid"), default=None,
                       help=f"hidden activation (default: {default['hidden']})")
    model.add_argument("--batch-size", type=batch_size_arg, default=None, metavar="N|full",
                       help="1: per-sample SGD, N: mini-batch, 'full': full-batch gradient "
                            f"descent (default: {default['batch_size']})")
    model.add_argument("--lr", type=learning_rate_arg, default=None,
                       help=f"learning rate (default: {presets.BATCH_LR}; "
                            f"{presets.PER_SAMPLE_LR} with --batch-size 1)")
    model.add_argument("--epochs", type=positive_int_arg, default=None,
                       help="passes over the training data; with --batch-size full, "
                            f"iterations (default: {default['epochs']}; with --resume, the "
                            "checkpoint's planned total, which --epochs may raise)")
    model.add_argument("--init", choices=INITS, default=None,
                       help="weight initialisation: 'he' std sqrt(2/fan_in), 'lecun' std "
                            "sqrt(1/fan_in), 'auto' he for ReLU and lecun for sigmoid "
                            "(default: auto; the presets use lecun, as the tutorials did)")
    model.add_argument("--seed", type=seed_arg, default=None,
                       help="seeds the split, the initial weights and the shuffling (default: 0)")
    model.add_argument("--val-size", type=val_size_arg, default=None, metavar="N|FRACTION",
                       help="training rows held out for validation: a fraction in (0, 1) "
                            "such as 0.1, or a whole number of rows such as 5000; 0 for none "
                            "(default: 0.1)")
    run = train.add_argument_group("execution")
    add_backend_option(run)
    run.add_argument("--threads", type=positive_int_arg, default=None, metavar="N",
                     help="threads for training: Numba's pool with the numba backend, the "
                          "BLAS pool with numpy (default: every core this process may use)")
    run.add_argument("--dtype", choices=DTYPES, default=None, help="floating-point type (default: float32)")
    output = train.add_argument_group("output")
    output.add_argument("--save", metavar="PATH",
                        help="write the trained model here (.npz); it holds the training state, "
                             "so 'train --resume PATH' can extend it, and an interrupted run "
                             "saves its last completed epoch here")
    output.add_argument("--resume", metavar="CHECKPOINT",
                        help="continue the run saved in CHECKPOINT (by --save, after a finished "
                             "or an interrupted run) up to --epochs in total, with the "
                             "checkpoint's configuration and data; model and training flags "
                             "may only repeat the stored values (a contradiction is an error). "
                             "Saves back to CHECKPOINT unless --save names another file")
    output.add_argument("--checkpoint-every", type=seconds_arg, default=60.0, metavar="SECONDS",
                        help="with --save, also write the checkpoint after any epoch that ends "
                             "this long after the last write, so that even a killed run keeps "
                             "its progress (default: 60; 0: after every epoch)")
    output.add_argument("--metrics-json", metavar="PATH",
                        help="write the run's metrics as JSON (see README)")
    output.add_argument("--plot-dir", metavar="DIR",
                        help="write PNG plots here (created if needed): curves.png (loss and "
                             "accuracy per epoch), misclassified.png (test digits with true "
                             "and predicted labels), confusion.png (the confusion matrix); "
                             "needs matplotlib: pip install \"fastnn[plots]\"")
    output.add_argument("-q", "--quiet", action="store_true",
                        help="print only the final summary (no progress bars or epoch lines)")
    add_data_options(train)
    train.set_defaults(handler=cmd_train)




def add_presets_parser(commands) -> None:
    listing = commands.add_parser("presets", help="list the training presets",
                                  description="List the training presets.")
    listing.set_defaults(handler=cmd_presets)


def run_config(args: argparse.Namespace) -> RunConfig:
    """The run the flags describe (with --resume, the checkpoint's run)."""
    settings = {name: getattr(args, name) for name in RUN_SETTINGS}
    return RunConfig.resolve(args.preset, resume=args.resume, download=not args.no_download,
                             **settings)


def cmd_train(args: argparse.Namespace) -> int:
    result = run(run_config(args), ConsoleEvents(quiet=args.quiet))
    if result.status == "interrupted":
        return report_interrupt(result)
    print(summary(result))
    return 0


def report_interrupt(result: RunResult) -> int:
    """Say on stderr where the run stopped and what was kept; return 130 or 143."""
    code, name = stop_signal()
    done, total = len(result.history.epochs), result.config.epochs
    where = f"after epoch {done} of {total}" if done else "before the first epoch completed"
    save = result.config.save
    if not save:
        kept = "nothing saved (give --save PATH to keep a checkpoint)"
    elif result.saved is None:
        kept = "nothing saved"
    else:
        kept = f"checkpoint saved to {save}; continue with: fastnn train --resume {save}"
    print(f"fastnn: interrupted by {name} {where}; {kept}", file=sys.stderr)
    return code


def summary(result: RunResult) -> str:
    """The line ``fastnn train`` ends with: test accuracy, epochs, time, the saved file."""
    task, epochs = result.task, len(result.history.epochs)
    resumed = f" ({len(result.this_run)} in this run)" if result.done_before else ""
    saved = f"; saved {result.saved}" if result.saved else ""
    sample = " of the bundled sample" if task.source == "sample" else ""
    return (f"test accuracy {result.test_accuracy:.2%} ({task.name}, {len(task.x_test):,} test "
            f"images{sample}) after {epochs} epoch{'s' if epochs != 1 else ''}{resumed} in "
            f"{result.train_seconds:.1f}s ({result.total_seconds:.1f}s with compilation and "
            f"validation){saved}")


def cmd_presets(args: argparse.Namespace) -> int:
    for name, preset in presets.PRESETS.items():
        print(f"{name:<10} {preset['description']}")
    return 0
