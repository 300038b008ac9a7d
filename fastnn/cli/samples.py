"""``fastnn samples``: a grid of dataset digits drawn to a PNG."""

from __future__ import annotations

import argparse

from .. import plots
from ..config import check_output
from ..data import ALL_DIGITS
from .options import add_data_options, digit_set_arg, load_data, positive_int_arg, seed_arg


def add_parsers(commands) -> None:
    samples = commands.add_parser(
        "samples", help="draw a grid of dataset digits to a PNG file",
        description="Draw randomly chosen digits of the dataset, labelled, in a grid "
                    "(needs matplotlib: pip install \"fastnn[plots]\").")
    samples.add_argument("--out", metavar="FILE", required=True, help="PNG file to write")
    samples.add_argument("--count", type=positive_int_arg, default=40, metavar="N",
                         help=f"how many digits (default: 40, at most {plots.MAX_SAMPLES})")
    samples.add_argument("--digits", type=digit_set_arg, default=ALL_DIGITS,
                         help="which digits, comma-separated like 3,5,8, or 'all' (default)")
    samples.add_argument("--split", choices=("train", "test"), default="train",
                         help="draw from the training or the test images (default: train)")
    samples.add_argument("--seed", type=seed_arg, default=0,
                         help="chooses which images are drawn (default: 0)")
    add_data_options(samples)
    samples.set_defaults(handler=cmd_samples)



def cmd_samples(args: argparse.Namespace) -> int:
    plots.check_available("fastnn samples")
    check_output(args.out, "--out")
    data = load_data(args)
    pixels, labels = ((data.train_images, data.train_labels) if args.split == "train"
                      else (data.test_images, data.test_labels))
    rows = plots.pick_samples(labels, args.digits, args.count, seed=args.seed)
    source = "full MNIST" if data.source == "mnist" else "bundled sample"
    path = plots.plot_digit_grid(pixels[rows], [str(label) for label in labels[rows]], args.out,
                                 title=f"{rows.size} {args.split} digits ({source})")
    print(f"wrote {path} ({rows.size} digits)")
    return 0
