"""The ``fastnn`` command line: parses flags, calls the library, prints.

One module per command group (`train`, `models`, `samples`, `machine`,
`bench`, `sweep`); each adds its subcommands to the parser and handles them. Errors
become exit codes here: 0 success, 1 failure (bad data or model file,
divergence), 2 usage error (a bad flag or value), 130/143 interrupted
(SIGINT/SIGTERM), 141 stdout closed early (a broken pipe).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

from .. import __version__, mnist
from ..extras import MissingExtra
from ..config import ConfigError
from ..interrupts import signals_interrupt, stop_signal
from ..modelio import ModelFileError
from ..train import TrainingDiverged
from . import bench, machine, models, samples, sweep, train
from .options import Failure, UsageError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # as if killed by SIGPIPE, like other command-line tools

#: Adds each command's parser, in the order ``fastnn --help`` lists them.
COMMANDS = (train.add_train_parser, models.add_parsers, samples.add_parsers,
            machine.add_parsers, bench.add_parsers, sweep.add_parsers, train.add_presets_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="Train fully-connected networks on MNIST, fast, on the CPU.",
        epilog="Run 'fastnn COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with signals_interrupt():
        try:
            code = args.handler(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
        except (UsageError, ConfigError) as err:
            parser.exit(EXIT_USAGE, f"fastnn: error: {err}\n")
        except mnist.DataDirError as err:
            message = err.message("--data-dir" if err.place == "data_dir" else err.place)
            parser.exit(EXIT_USAGE if err.bad_path else EXIT_FAILURE, f"fastnn: error: {message}\n")
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
            code, name = stop_signal()
            parser.exit(code, f"fastnn: interrupted by {name}\n")


def run(argv=None) -> int:
    """The ``fastnn`` program: `main`, then a quick exit.

    At exit Python's garbage collector walks every object left, and a run
    that loaded Numba's compiler leaves millions: 0.4-0.5 s of the process's
    wall time (measured with a warm cache, on the 2-core machine of the
    README), after the command's work is done. Moved to the permanent
    generation (``gc.freeze``), they are not walked; the memory goes back
    to the system with the process, as it would anyway.
    `main` itself leaves the collector alone: the tests call it in-process.
    """
    try:
        return main(argv)
    finally:
        gc.freeze()
