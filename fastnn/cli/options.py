"""What the commands share: argument types, common options, errors, notes, data."""

from __future__ import annotations

import argparse
import math
import sys

import kernels

from .. import mnist
from ..config import DATA_SOURCES
from ..data import ALL_DIGITS, check_val_size, parse_digits


class UsageError(Exception):
    """A value the user gave is not allowed (exit code 2)."""


class Failure(Exception):
    """The command could not do its job (exit code 1)."""


# --- argument types -----------------------------------------------------------------

def layers_arg(text: str) -> tuple:
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


def converted(text: str, convert, kind: str):
    """``convert(text)``, or the argparse error "'text' is not <kind>"."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None


def batch_size_arg(text: str):
    if text == "full":
        return "full"
    value = converted(text, int, "a positive integer or 'full'")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1 (or 'full')")
    return value


def positive_int_arg(text: str) -> int:
    value = converted(text, int, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def learning_rate_arg(text: str) -> float:
    value = converted(text, float, "a number")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive, finite number")
    return value


def val_size_arg(text: str):
    """An integer is a count of rows, anything else a fraction (as in scikit-learn)."""
    try:
        value = int(text)
    except ValueError:
        value = converted(text, float, "a fraction or a count")
    try:
        return check_val_size(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def seconds_arg(text: str) -> float:
    value = converted(text, float, "a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds >= 0")
    return value


def seed_arg(text: str) -> int:
    value = converted(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 0")
    return value


def digit_set_arg(text: str) -> tuple:
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


def digits_arg(text: str) -> tuple:
    try:
        return parse_digits(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# --- options several commands take -------------------------------------------------------

def add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data-dir", metavar="DIR",
                       help="directory holding the four MNIST IDX files (.gz or raw); "
                            "default: $FASTNN_DATA_DIR, then the cache "
                            "(downloaded there when missing)")
    group.add_argument("--data", choices=DATA_SOURCES, default="auto",
                       help="'mnist': the full set or fail; 'sample': the bundled 10,000/2,000 "
                            "sample; 'auto' (default): full MNIST if it can be found or "
                            "downloaded, else the sample")
    group.add_argument("--no-download", action="store_true",
                       help="never download; use only local files")


def add_backend_option(parser, inference: bool = False) -> None:
    """``--backend``; for evaluating and predicting (``inference``) the default says more."""
    default = f"${kernels.BACKEND_ENV_VAR}, else numba"
    if inference:
        default += (", or numpy while numba's forward pass is not compiled on this machine "
                    "(the same results, without seconds of compiling)")
    parser.add_argument("--backend", choices=tuple(kernels.BACKENDS), default=None,
                        help=f"kernel backend (default: {default})")

# --- helpers of the commands -------------------------------------------------------------

def note(args, message: str) -> None:
    """Print ``message`` to stderr, unless the command was asked to be quiet."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def load_data(args) -> mnist.MnistData:
    """The dataset the data options name; its fallback note goes to stderr."""
    data = mnist.load(args.data, args.data_dir, download=not args.no_download)
    if data.note:
        note(args, data.note)
    return data
