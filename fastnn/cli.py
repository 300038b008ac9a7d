"""The ``fastnn`` command line: parses flags, calls the API, prints.

Exit codes: 0 success, 1 failure (bad data or model file, divergence),
2 usage error (a bad flag or value), 130/143 interrupted (SIGINT/SIGTERM),
141 stdout closed early (a broken pipe).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

import kernels

from . import __version__, mnist, presets
from . import bench, images, info, metrics, plots, progress
from ._extras import MissingExtra
from .data import ALL_DIGITS, N_PIXELS, check_digits, check_val_size, make_task, parse_digits
from .modelio import ModelFileError, load_model, read_checkpoint, save_model
from .network import DTYPES, INITS, Network
from .threads import available_threads, configure_threads
from .train import TrainingDiverged, TrainingInterrupted, fit

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # as if killed by SIGPIPE, like other command-line tools


class UsageError(Exception):
    """A value the user gave is not allowed (exit code 2)."""


class Failure(Exception):
    """The command could not do its job (exit code 1)."""


# --- argument types -----------------------------------------------------------------

def _layers(text: str) -> tuple:
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise argparse.ArgumentTypeError(f"{text!r} names no layer sizes; give at least one, "
                                         "like 128 or 128,64")
    if not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty size; give sizes like 128,64")
    try:
        sizes = tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of sizes like 128,64") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes {text!r} must be positive integers")
    return sizes


def _parsed(text: str, convert, kind: str):
    """``convert(text)``, or the argparse error "'text' is not <kind>"."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None


def _batch_size(text: str):
    if text == "full":
        return "full"
    value = _parsed(text, int, "a positive integer or 'full'")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1 (or 'full')")
    return value


def _positive_int(text: str) -> int:
    value = _parsed(text, int, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def _learning_rate(text: str) -> float:
    value = _parsed(text, float, "a number")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive, finite number")
    return value


def _val_size(text: str):
    """An integer is a count of rows, anything else a fraction (as in scikit-learn)."""
    try:
        value = int(text)
    except ValueError:
        value = _parsed(text, float, "a fraction or a count")
    try:
        return check_val_size(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _seconds(text: str) -> float:
    value = _parsed(text, float, "a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds >= 0")
    return value


def _seed(text: str) -> int:
    value = _parsed(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 0")
    return value


def _digit_set(text: str) -> tuple:
    """Any digits, comma-separated (``3,5,8``), or ``all``."""
    if text.strip().lower() in ("all", "0-9"):
        return ALL_DIGITS
    try:
        digits = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of digits like 3,5,8 "
                                         "(or 'all')") from None
    if not digits or not all(0 <= d <= 9 for d in digits):
        raise argparse.ArgumentTypeError(f"digits {text!r} must lie in 0-9")
    return tuple(digits)


def _digits(text: str) -> tuple:
    try:
        return parse_digits(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# --- parser -------------------------------------------------------------------------------

def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data-dir", metavar="DIR",
                       help="directory holding the four MNIST IDX files (.gz or raw); "
                            "default: $FASTNN_DATA_DIR, then the cache "
                            "(downloaded there when missing)")
    group.add_argument("--data", choices=("auto", "mnist", "sample"), default="auto",
                       help="'mnist': the full set or fail; 'sample': the bundled 10,000/2,000 "
                            "sample; 'auto' (default): full MNIST if it can be found or "
                            "downloaded, else the sample")
    group.add_argument("--no-download", action="store_true",
                       help="never download; use only local files")


def _add_backend_option(parser) -> None:
    parser.add_argument("--backend", choices=tuple(kernels.BACKENDS), default=None,
                        help=f"kernel backend (default: ${kernels.BACKEND_ENV_VAR}, else numba)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="Train fully-connected networks on MNIST, fast, on the CPU.",
        epilog="Run 'fastnn COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    model.add_argument("--digits", type=_digits, default=None,
                       help=f"'all' for 10 classes, or a pair like 0,1 (default: {default['digits']})")
    model.add_argument("--layers", type=_layers, default=None, metavar="SIZES",
                       help="hidden layer sizes, comma-separated (default: "
                            f"{','.join(map(str, default['layers']))})")
    model.add_argument("--hidden", choices=("relu", "sigmoid"), default=None,
                       help=f"hidden activation (default: {default['hidden']})")
    model.add_argument("--batch-size", type=_batch_size, default=None, metavar="N|full",
                       help="1: per-sample SGD, N: mini-batch, 'full': full-batch gradient "
                            f"descent (default: {default['batch_size']})")
    model.add_argument("--lr", type=_learning_rate, default=None,
                       help=f"learning rate (default: {default['lr']})")
    model.add_argument("--epochs", type=_positive_int, default=None,
                       help="passes over the training data; with --batch-size full, "
                            f"iterations (default: {default['epochs']}; with --resume, the "
                            "checkpoint's planned total, which --epochs may raise)")
    model.add_argument("--init", choices=INITS, default=None,
                       help="weight initialisation: 'he' std sqrt(2/fan_in), 'lecun' std "
                            "sqrt(1/fan_in), 'auto' he for ReLU and lecun for sigmoid "
                            "(default: auto; the presets use lecun, as the tutorials did)")
    model.add_argument("--seed", type=_seed, default=None,
                       help="seeds the split, the initial weights and the shuffling (default: 0)")
    model.add_argument("--val-size", type=_val_size, default=None, metavar="N|FRACTION",
                       help="training rows held out for validation: a fraction in (0, 1) "
                            "such as 0.1, or a whole number of rows such as 5000; 0 for none "
                            "(default: 0.1)")
    run = train.add_argument_group("execution")
    _add_backend_option(run)
    run.add_argument("--threads", type=_positive_int, default=None, metavar="N",
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
    output.add_argument("--checkpoint-every", type=_seconds, default=60.0, metavar="SECONDS",
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
    _add_data_options(train)
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser(
        "evaluate", help="report a saved model's accuracy on the test set",
        description="Report a saved model's test accuracy, overall and per class, and its "
                    "confusion matrix (rows: true digit, columns: predicted digit).")
    evaluate.add_argument("model", metavar="MODEL", help="model file written by 'train --save'")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_backend_option(evaluate)
    _add_data_options(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser(
        "predict", help="classify digit images (PNG, JPEG...) or .npy arrays",
        description="Print the most probable digits of each input with their probabilities. "
                    "Images (PNG, JPEG, ...; needs Pillow: pip install \"fastnn[images]\") "
                    "and .npy arrays are turned into MNIST-style inputs as MNIST was made: "
                    "greyscale, light digit on black (inverted when the border is light), "
                    "cropped to the digit, scaled to fit 20x20 keeping the aspect ratio, and "
                    "centred in 28x28 by its centre of mass. A .npy file holds one image "
                    "(28, 28) or (784,), or a stack (n, 28, 28) or (n, 784), as uint8 0-255 "
                    "or float 0-1.")
    predict.add_argument("model", metavar="MODEL", help="model file written by 'train --save'")
    predict.add_argument("files", metavar="FILE", nargs="+", help="images or .npy arrays")
    predict.add_argument("--top", type=_positive_int, default=3, metavar="N",
                         help="how many classes to show per input (default: 3; binary "
                              "models have 2)")
    predict.add_argument("--no-preprocess", action="store_true",
                         help="take 28x28 inputs as already MNIST-formatted (light digit on "
                              "black, centred): only scale the values to 0-1")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_backend_option(predict)
    predict.set_defaults(handler=cmd_predict)

    samples = commands.add_parser(
        "samples", help="draw a grid of dataset digits to a PNG file",
        description="Draw randomly chosen digits of the dataset, labelled, in a grid "
                    "(needs matplotlib: pip install \"fastnn[plots]\").")
    samples.add_argument("--out", metavar="FILE", required=True, help="PNG file to write")
    samples.add_argument("--count", type=_positive_int, default=40, metavar="N",
                         help=f"how many digits (default: 40, at most {plots.MAX_SAMPLES})")
    samples.add_argument("--digits", type=_digit_set, default=ALL_DIGITS,
                         help="which digits, comma-separated like 3,5,8, or 'all' (default)")
    samples.add_argument("--split", choices=("train", "test"), default="train",
                         help="draw from the training or the test images (default: train)")
    samples.add_argument("--seed", type=_seed, default=0,
                         help="chooses which images are drawn (default: 0)")
    _add_data_options(samples)
    samples.set_defaults(handler=cmd_samples)

    about = commands.add_parser(
        "info", help="show versions, CPU features, threads, BLAS and caches",
        description="Show what fastnn runs on: versions, CPU model and SIMD features, thread "
                    "counts, the BLAS library, Numba's threading layer, the JIT and data "
                    "caches, and whether full MNIST is available locally.")
    about.add_argument("--json", action="store_true", help="print JSON instead of text")
    about.set_defaults(handler=cmd_info)

    ahead = commands.add_parser(
        "compile", help="compile every Numba kernel now (for images and shared installs)",
        description="Compile, or load from Numba's cache, every kernel of the numba backend "
                    "for float32 and float64, one thread and threaded, so that no later run "
                    "on this machine waits for the compiler. Training compiles only what it "
                    "uses, on first use; run this when building a container image, before "
                    "timing, or on a shared install whose users should not each pay the "
                    "first-run compile. The cache is tied to this CPU and Numba version.")
    ahead.set_defaults(handler=cmd_compile)

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
    timing.add_argument("--threads", type=_positive_int, default=None,
                        help="threads for every implementation (default: all Numba can use)")
    timing.add_argument("--repeat", type=_positive_int, default=None, metavar="N",
                        help="timed rounds; min and median are over them (default: 5, "
                             "--quick: 1)")
    timing.add_argument("--impl", action="append", choices=bench.IMPLS, default=None,
                        help="time only this implementation (repeatable; default: all)")
    timing.add_argument("--config", action="append", default=None, metavar="NAME",
                        help="time only this configuration, one of "
                             f"{', '.join(bench.CONFIGS)} (repeatable; default: all)")
    timing.add_argument("--rows", type=_positive_int, default=None, metavar="N",
                        help="epochs over the first N training rows (default: all; --quick: "
                             "6000)")
    timing.add_argument("--extrapolate-rows", type=_seed, default=None, metavar="N",
                        help="at batch 1, time numpy, torch and jax on N samples and scale to the "
                             "epoch, marked * (default: 6000, --quick: 600; 0: whole epochs)")
    timing.add_argument("--seed", type=_seed, default=0,
                        help="seeds the initial weights and the batch order (default: 0)")
    timing.add_argument("--check-accuracy", action="store_true",
                        help="only the accuracy check: one epoch at batch 64 per "
                             "implementation from the same weights and order")
    timing.add_argument("--json", metavar="PATH",
                        help="write every record, the GEMM peak and the machine (see README)")
    timing.add_argument("--plot", metavar="FILE",
                        help="draw epoch time per implementation and batch size to a PNG "
                             "(needs matplotlib)")
    _add_data_options(timing)
    timing.set_defaults(handler=cmd_bench)

    listing = commands.add_parser("presets", help="list the training presets",
                                  description="List the training presets.")
    listing.set_defaults(handler=cmd_presets)
    return parser


# --- commands ----------------------------------------------------------------------------

def _note(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def _load_data(args) -> mnist.MnistData:
    try:
        data = mnist.load(args.data, args.data_dir, download=not args.no_download)
    except mnist.DataDirError as err:
        message = err.message("--data-dir" if err.place == "data_dir" else err.place)
        raise (UsageError if err.bad_path else Failure)(message) from None
    if data.note:
        _note(args, data.note)
    return data


# --- checkpoints and interrupts ----------------------------------------------------------

#: The signal that stopped the run; SIGINT unless a handler below saw another.
_STOP = {"signal": signal.SIGINT}


def _raise_interrupt(signum, frame):
    """SIGINT and SIGTERM both become KeyboardInterrupt, which `fit` turns into a clean stop."""
    _STOP["signal"] = signum
    raise KeyboardInterrupt


class _InterruptsRaised:
    """While active, SIGTERM (and SIGINT) raise KeyboardInterrupt in the main thread.

    A signal the parent process set to be ignored stays ignored.
    """

    def __enter__(self):
        _STOP["signal"] = signal.SIGINT
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
                    self.previous[signum] = signal.signal(signum, _raise_interrupt)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _stop_signal() -> tuple:
    """(exit code, name) of the signal that stopped the run: 130 SIGINT, 143 SIGTERM."""
    signum = _STOP["signal"]
    return 128 + signum, signal.Signals(signum).name


def _save_undisturbed(path, net, **fields) -> None:
    """Save atomically; a second Ctrl-C or SIGTERM meanwhile cannot cut the save short."""
    ignored = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            ignored[signum] = signal.signal(signum, signal.SIG_IGN)
    try:
        save_model(path, net, **fields)
    finally:
        for signum, handler in ignored.items():
            signal.signal(signum, handler)


def _check_output(path, flag: str) -> None:
    """Fail before training, not after it, if ``path`` cannot be written."""
    if path is None:
        return
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"{flag} {path} is a directory; give a file name such as "
                         f"{target / 'model.npz'}")
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{flag} {path}: directory {folder} is not writable")


def _flag_text(value) -> str:
    if isinstance(value, (tuple, list)):
        return "all" if tuple(value) == ALL_DIGITS else ",".join(map(str, value))
    return str(value)


def _restore_config(args):
    """Take the configuration from the checkpoint named by --resume; return (net, history).

    Model and training flags the user gave must equal the stored values; only
    ``--epochs`` may change (raise the total). Data and execution flags are free.
    """
    stored_net, meta, history = read_checkpoint(args.resume)
    config = meta.get("config") or {}
    needed = ("digits", "layers", "hidden", "init", "batch_size", "lr", "epochs", "seed",
              "val_size", "dtype")
    missing = [key for key in needed if key not in config]
    if missing:
        raise ModelFileError(f"{args.resume} does not record its training configuration "
                             f"({', '.join(missing)} missing), so it cannot be resumed")
    stored = {"preset": config.get("preset"), "digits": tuple(config["digits"]),
              "layers": tuple(config["layers"][1:-1]), "hidden": config["hidden"],
              "batch_size": config["batch_size"], "lr": config["lr"], "init": config["init"],
              "seed": config["seed"], "val_size": config["val_size"], "dtype": config["dtype"]}
    if args.init == "auto":
        args.init = "he" if stored["hidden"] == "relu" else "lecun"
    for name, value in stored.items():
        given = getattr(args, name)
        if given is not None and given != value:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} {_flag_text(given)} contradicts the checkpoint "
                             f"{args.resume}, which was trained with {flag} "
                             f"{_flag_text(value)}; with --resume only --epochs may change")
        setattr(args, name, value)
    source = config.get("data")
    if source is not None:
        if args.data not in ("auto", source):
            raise UsageError(f"--data {args.data} contradicts the checkpoint {args.resume}, "
                             f"which was trained on --data {source}")
        args.data = source
    done = len(history.epochs)
    if args.epochs is None:
        args.epochs = config["epochs"]
    if args.epochs <= done:
        raise UsageError(f"the checkpoint {args.resume} has already completed {done} of "
                         f"{config['epochs']} epochs; give --epochs greater than {done} to "
                         "train further")
    args.backend = args.backend or config.get("backend")
    args.save = args.save or args.resume
    return stored_net, history


class _Checkpoints:
    """Writes the --save checkpoint during training, at most every --checkpoint-every seconds."""

    def __init__(self, args, net, config, then=None):
        self.args, self.net, self.config, self.then = args, net, config, then
        self.last_write = time.monotonic()
        self.saved_epoch = None  # the epoch of the last checkpoint written by this run

    def on_epoch_end(self, record, history) -> None:
        if self.then is not None:
            self.then(record, history)
        due = time.monotonic() - self.last_write >= self.args.checkpoint_every
        # The last epoch is saved by the normal end of the run, with its test score known.
        if self.args.save and due and record.epoch < self.config["epochs"]:
            _save_undisturbed(self.args.save, self.net, training=history.state(),
                              config=self.config)
            self.last_write = time.monotonic()
            self.saved_epoch = record.epoch


def _interrupted(args, net, history, config) -> int:
    """Save the last completed epoch (with --save), print one line, return 130 or 143."""
    code, name = _stop_signal()
    done, total = len(history.epochs), config["epochs"]
    where = f"after epoch {done} of {total}" if done else "before the first epoch completed"
    if not args.save:
        kept = "nothing saved (give --save PATH to keep a checkpoint)"
    elif not done:
        kept = "nothing saved"
    else:
        _save_undisturbed(args.save, net, training=history.state(), config=config)
        kept = f"checkpoint saved to {args.save}; continue with: fastnn train --resume {args.save}"
    print(f"fastnn: interrupted by {name} {where}; {kept}", file=sys.stderr)
    return code


#: Seconds the numba kernels of one dtype take to compile from an empty cache,
#: measured on a 2-core AMD EPYC (process CPU time of `fastnn compile`'s share
#: for one dtype); the notice says the last time this machine took, once known.
TYPICAL_COMPILE_SECONDS = 40


def _prepare_backend(args, backend: str, dtype: str, batch_size: int) -> float:
    """Size the thread pools, and compile (or load) the kernels with a word to the user.

    Returns the seconds spent compiling or loading kernels.
    """
    threads = args.threads or available_threads()
    if threads > available_threads():
        raise UsageError(f"--threads {threads}: this process can use at most "
                         f"{available_threads()}")
    # Numba's threads do the work in its compiled loop; a BLAS pool running beside
    # them would fight for the same cores. NumPy's only parallel code is BLAS.
    configure_threads(threads, blas=threads if backend == "numpy" else 1)
    kern = kernels.get_backend(backend)
    if kern.is_compiled(dtype, batch_size):
        return 0.0
    noted = info.last_compiles().get(dtype)
    expect = (f"about {noted['seconds']:.0f}s, as last time" if noted
              else f"about {TYPICAL_COMPILE_SECONDS}s on 2 cores")
    notice = threading.Timer(1.0, _note, (args, f"compiling the Numba kernels for {dtype}: "
                                                f"{expect}; once, then cached ..."))
    notice.start()
    try:
        done = kern.warmup(dtype, batch_size)
    finally:
        notice.cancel()
    if done.compiled:
        info.note_compile(dtype, done.seconds)
        _note(args, f"compiled {done.compiled} kernel signatures in {done.seconds:.1f}s "
                    "(cached for later runs)")
    return done.seconds


def cmd_train(args) -> int:
    checkpoint = _restore_config(args) if args.resume else None
    args.seed = 0 if args.seed is None else args.seed
    args.val_size = 0.1 if args.val_size is None else args.val_size
    args.dtype = args.dtype or "float32"
    _check_output(args.save, "--save")
    _check_output(args.metrics_json, "--metrics-json")
    if args.plot_dir:  # before training, not after it
        plots.check_available("--plot-dir")
        plots.prepare_directory(args.plot_dir)
    overrides = {"digits": args.digits, "layers": args.layers, "hidden": args.hidden,
                 "batch_size": args.batch_size, "lr": args.lr, "epochs": args.epochs,
                 "init": args.init}
    settings = presets.resolve(args.preset, overrides)
    digits = settings["digits"]
    digits = parse_digits(digits) if isinstance(digits, str) else tuple(digits)
    try:
        backend = args.backend or kernels.default_backend()
    except ValueError as err:  # a bad $FASTNN_BACKEND
        raise UsageError(str(err)) from None

    data = _load_data(args)
    try:
        task = make_task(data, digits, val_size=args.val_size, seed=args.seed, dtype=args.dtype)
    except ValueError as err:
        raise UsageError(str(err)) from None
    n_out = 10 if digits == ALL_DIGITS else 1
    sizes = (task.x_train.shape[1], *settings["layers"], n_out)
    net = Network(sizes, hidden=settings["hidden"], classes=digits, dtype=args.dtype,
                  seed=args.seed, init=settings["init"])
    resume = None
    if checkpoint is not None:
        stored_net, resume = checkpoint
        shape = lambda n: (n.sizes, n.classes, n.hidden, n.dtype)  # noqa: E731
        if shape(stored_net) != shape(net):
            raise ModelFileError(f"{args.resume}: its network {stored_net.sizes} does not match "
                                 f"its stored configuration and data {net.sizes}")
        net.set_parameters(stored_net.weights, stored_net.biases)
        _note(args, f"resuming {args.resume} after epoch {len(resume.epochs)} of "
                    f"{settings['epochs']}")
    config = {"preset": args.preset, "digits": list(digits), "layers": list(sizes),
              "hidden": settings["hidden"], "output": net.output, "init": net.init,
              "batch_size": settings["batch_size"], "lr": settings["lr"],
              "epochs": settings["epochs"], "seed": args.seed, "val_size": args.val_size,
              "dtype": args.dtype, "backend": backend, "data": task.source}
    _note(args, f"training {'-'.join(map(str, sizes))} ({settings['hidden']}, {net.output}) on "
                f"{task.name}: {len(task.x_train):,} train / {len(task.x_val):,} val / "
                f"{len(task.x_test):,} test images from {'full MNIST' if task.source == 'mnist' else 'the bundled sample'}; "
                f"backend {backend}, {args.dtype}")

    started = time.perf_counter()
    batch_rows = (len(task.x_train) if settings["batch_size"] in (None, "full")
                  else int(settings["batch_size"]))
    compile_seconds = _prepare_backend(args, backend, args.dtype, batch_rows)
    validation = (task.x_val, task.labels_val) if len(task.x_val) else None
    reporter = progress.TrainingProgress(settings["epochs"], len(task.x_train),
                                         settings["batch_size"], quiet=args.quiet,
                                         done_epochs=len(resume.epochs) if resume else 0)
    checkpoints = _Checkpoints(args, net, config, then=reporter.on_epoch_end)
    try:
        with reporter:
            history = fit(net, task.x_train, task.labels_train, epochs=settings["epochs"],
                          batch_size=settings["batch_size"], lr=settings["lr"], backend=backend,
                          seed=args.seed, validation=validation,
                          on_epoch_end=checkpoints.on_epoch_end, on_progress=reporter.on_progress,
                          resume=resume)
    except ValueError as err:
        raise UsageError(str(err)) from None
    except TrainingInterrupted as stop:
        return _interrupted(args, net, stop.history, config)
    except TrainingDiverged as err:
        if not args.save:
            kept = ""
        elif checkpoints.saved_epoch is not None:
            kept = (f" {args.save} holds the checkpoint of epoch {checkpoints.saved_epoch}, "
                    "saved before the divergence.")
        elif args.resume:
            kept = f" {args.save} was left as it was."
        else:
            kept = " No model was saved."
        raise Failure(f"{err}{kept}") from None
    total_seconds = time.perf_counter() - started
    if args.save:  # first: a signal from now on must not cost the trained model
        _save_undisturbed(args.save, net, training=history.state(), config=config)
    test_accuracy = net.score(task.x_test, task.labels_test)

    if args.metrics_json:
        metrics = {
            "fastnn_version": __version__,
            "backend": backend,
            "dtype": args.dtype,
            "dataset": task.source,
            "data": {"origin": task.origin, "task": task.name, "n_train": len(task.x_train),
                     "n_val": len(task.x_val), "n_test": len(task.x_test)},
            "config": config,
            "epochs": history.as_dicts(),
            "test_accuracy": test_accuracy,
            "compile_seconds": compile_seconds + history.compile_seconds,
            "train_seconds": sum(record.seconds for record in history.epochs),
            "total_seconds": total_seconds,
        }
        Path(args.metrics_json).write_text(json.dumps(metrics, indent=2) + "\n")
    if args.plot_dir:
        written = plots.write_training_plots(args.plot_dir, history, net, task.x_test,
                                             task.labels_test)
        _note(args, f"plots: {', '.join(str(path) for path in written)}")
    this_run = history.epochs[len(resume.epochs):] if resume else history.epochs
    train_seconds = sum(record.seconds for record in this_run)
    resumed = f" ({len(this_run)} in this run)" if resume else ""
    saved = f"; saved {args.save}" if args.save else ""
    sample = " of the bundled sample" if task.source == "sample" else ""
    print(f"test accuracy {test_accuracy:.2%} ({task.name}, {len(task.x_test):,} test images"
          f"{sample}) after "
          f"{len(history.epochs)} epoch{'s' if len(history.epochs) != 1 else ''}{resumed} in {train_seconds:.1f}s ({total_seconds:.1f}s "
          f"with compilation and validation){saved}")
    return 0


def _check_mnist_model(net, path) -> None:
    """Fail in one line if ``net`` cannot classify MNIST digits."""
    if net.sizes[0] != N_PIXELS:
        raise Failure(f"{path} takes {net.sizes[0]} inputs, but MNIST images have {N_PIXELS} "
                      "pixels: it is not a model of MNIST digits")
    try:
        check_digits(net.classes)
    except ValueError:
        raise Failure(f"{path} predicts the classes {net.classes}; fastnn evaluates models of "
                      "all ten digits or of a digit pair") from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    net = load_model(args.model)
    _check_mnist_model(net, args.model)
    data = _load_data(args)
    task = make_task(data, net.classes, val_size=0, dtype=net.dtype)
    predicted = net.predict(task.x_test, args.backend or kernels.default_backend())
    truth = task.labels_test
    matrix = metrics.confusion_matrix(truth, predicted, net.classes)
    per_class = dict(zip(net.classes, metrics.per_class_accuracy(matrix).tolist()))
    accuracy = float(np.mean(predicted == truth))
    if args.json:
        print(json.dumps({"model": str(args.model), "dataset": task.source,
                          "n_test": int(truth.size), "accuracy": accuracy,
                          "per_class": {str(c): a for c, a in per_class.items()},
                          "classes": list(net.classes),
                          "confusion_matrix": matrix.tolist()}, indent=2))
        return 0
    print(f"{args.model}: test accuracy {accuracy:.2%} on {truth.size:,} images "
          f"({'full MNIST' if task.source == 'mnist' else 'bundled sample'})\n")
    print(metrics.format_confusion(matrix, net.classes))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    net = load_model(args.model)
    results = images.classify_files(net, args.files, top=args.top,
                                    preprocess=not args.no_preprocess,
                                    backend=args.backend or kernels.default_backend())
    if args.json:
        print(json.dumps({"model": str(args.model), "classes": list(net.classes),
                          "predictions": results}, indent=2))
        return 0
    for result in results:
        name = result["file"] if result["index"] is None else f"{result['file']}[{result['index']}]"
        ranked = ", ".join(f"{top['digit']} ({top['probability']:.1%})" for top in result["top"])
        print(f"{name}: {ranked}")
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    plots.check_available("fastnn samples")
    _check_output(args.out, "--out")
    data = _load_data(args)
    pixels, labels = ((data.train_images, data.train_labels) if args.split == "train"
                      else (data.test_images, data.test_labels))
    rows = plots.pick_samples(labels, args.digits, args.count, seed=args.seed)
    source = "full MNIST" if data.source == "mnist" else "bundled sample"
    path = plots.plot_digit_grid(pixels[rows], [str(label) for label in labels[rows]], args.out,
                                 title=f"{rows.size} {args.split} digits ({source})")
    print(f"wrote {path} ({rows.size} digits)")
    return 0


def _info_lines(report: dict) -> list[tuple[str, str | None]]:
    """(label, value) pairs for `cmd_info`; the first is the heading (value None)."""
    versions = dict(report["versions"])
    head = f"fastnn {versions.pop('fastnn')} on Python {versions.pop('python')}"
    optional = {"matplotlib": "plots", "pillow": "images"}
    extras = []
    for name, extra in optional.items():
        version = versions.pop(name, None)
        extras.append(f"{name} {version}" if version
                      else f'{name} missing (pip install "fastnn[{extra}]")')
    cpu, threads, layer = report["cpu"], report["threads"], report["numba_threading_layer"]
    blas = "; ".join(f"{pool['internal_api']} {pool['version']} ({pool['threading_layer']}, "
                     f"{pool['architecture']}) {pool['filepath']}" for pool in report["blas"])
    active = layer["active"] or f"none: {layer['error']}"
    cache, data = report["jit_cache"], report["data"]
    return [
        (head, None),
        ("platform", report["platform"]),
        ("libraries", ", ".join(f"{k} {v}" for k, v in versions.items() if v)),
        ("optional", ", ".join(extras)),
        ("cpu", f"{cpu['model'] or 'unknown'} ({cpu['machine']}; LLVM name "
                f"{cpu['llvm_name'] or 'unknown'}; Numba compiles for {cpu['numba_target']})"),
        ("simd", " ".join(cpu["simd"]) or "none reported"),
        ("threads", f"{threads['cpu_count']} logical CPUs, {threads['usable_cpus']} usable; "
                    f"Numba {threads['numba_current']} (at most {threads['numba_max']}); "
                    f"BLAS {threads['blas']}"),
        ("blas", blas or "none loaded"),
        ("numba layer", f"{active} (configured: {layer['configured']}; available: "
                        f"{', '.join(layer['available']) or 'none'})"),
        ("jit cache", f"{cache['dir']} ({cache['origin']}; {cache['cached_kernels']} cached "
                      "kernel indexes)"),
        ("compiled", _compiled_line(cache)),
        ("backend", f"{report['default_backend']} by default"),
        ("data cache", data["cache_dir"]),
        ("full MNIST", data["mnist_dir"] or "not found locally (train downloads it into the "
                                            "cache; --data sample always works)"),
    ]


def _compiled_line(cache: dict) -> str:
    """Whether the training loop is in the JIT cache, and how long compiling took here."""
    state = ("training loop cached" if cache["epoch_loop_cached"]
             else "nothing cached yet: the first numba run compiles (or run `fastnn compile`)")
    times = ", ".join(f"{dtype} {noted['seconds']:.0f}s" for dtype, noted
                      in sorted(cache["last_compiles"].items()))
    return f"{state}; last compile: {times}" if times else state


def cmd_info(args: argparse.Namespace) -> int:
    report = info.gather()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key, value in _info_lines(report):
        print(key if value is None else f"  {key:<12} {value}")
    return 0


def cmd_compile(args) -> int:
    kern = kernels.get_backend("numba")
    _note(args, "compiling every Numba kernel for float32 and float64 (minutes when nothing "
                "is cached) ...")
    done = kern.compile_all()
    print(f"{done.compiled} kernel signatures compiled, {done.loaded} loaded from the cache, "
          f"in {done.seconds:.1f}s")
    return 0


def _bench_configs(names):
    """The `BenchConfig` s named by ``--config`` (None: the default set)."""
    if not names:
        return None
    try:
        return bench.select_configs(names)
    except ValueError as error:
        raise UsageError(f"--config: {error}") from None


def cmd_bench(args) -> int:
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
    _check_output(args.json, "--json")
    _check_output(args.plot, "--plot")
    if args.plot:
        plots.check_available("fastnn bench --plot")  # before the run, not after it
    data = bench.Data.from_mnist(_load_data(args))
    result = bench.run(data, settings, progress=lambda message: _note(args, message))
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


def cmd_presets(args) -> int:
    for name, preset in presets.PRESETS.items():
        print(f"{name:<10} {preset['description']}")
    return 0


# --- entry point -------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with _InterruptsRaised():
        try:
            code = args.handler(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
        except UsageError as err:
            parser.exit(EXIT_USAGE, f"fastnn: error: {err}\n")
        except MissingExtra as err:
            parser.exit(EXIT_FAILURE, f"fastnn: error: {err}\n")
        except BrokenPipeError:
            # The reader went away (``fastnn evaluate m.npz | head -1``): stop quietly, and
            # keep Python from failing again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
        except (mnist.DataError, ModelFileError, TrainingDiverged, Failure, ValueError,
                OSError) as err:
            parser.exit(EXIT_FAILURE, f"fastnn: error: {err}\n")
        except MemoryError as err:
            parser.exit(EXIT_FAILURE, f"fastnn: error: out of memory: {err}\n")
        except KeyboardInterrupt:
            code, name = _stop_signal()
            parser.exit(code, f"fastnn: interrupted by {name}\n")


if __name__ == "__main__":
    sys.exit(main())
