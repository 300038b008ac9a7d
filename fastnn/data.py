"""From raw MNIST to a learning task: digit selection, scaling and splits.

`fastnn.mnist` finds and reads the files; this module turns its uint8 arrays
into what training consumes: float pixels in [0, 1] (samples as rows),
integer digit labels, a seeded validation split and the official test set.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .mnist import MnistData

ALL_DIGITS = tuple(range(10))
N_PIXELS = 28 * 28


@dataclass(frozen=True)
class Task:
    """A classification task ready to train on.

    ``x_*`` are (n, 784) float arrays in [0, 1]; ``labels_*`` are (n,) int64
    digit labels drawn from ``classes``. ``classes`` lists the digits in
    output order: ``(0, ..., 9)`` for the 10-class task, ``(a, b)`` for the
    pair a-vs-b (``a`` is class 0).
    """

    classes: tuple
    x_train: np.ndarray
    labels_train: np.ndarray
    x_val: np.ndarray
    labels_val: np.ndarray
    x_test: np.ndarray
    labels_test: np.ndarray
    source: str
    origin: str
    #: What it was made from, when `fastnn.workflow.prepare_task` made it
    #: (`fastnn.workflow.task_settings`): runs with the same settings may share it.
    settings: tuple = ()

    @property
    def name(self) -> str:
        if self.classes == ALL_DIGITS:
            return "digits 0-9"
        return f"{self.classes[0]} vs {self.classes[1]}"


def parse_digits(text: str) -> tuple:
    """Parse ``"0,1"`` into a digit pair ``(0, 1)``; ``"all"`` means 0-9."""
    if text.strip().lower() in ("all", "0-9"):
        return ALL_DIGITS
    try:
        digits = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"digits {text!r} are not a pair like '0,1' (or 'all')") from None
    return check_digits(digits)


def check_digits(digits) -> tuple:
    """Validate a task's digits: all ten, or two distinct digits in 0-9."""
    digits = tuple(int(d) for d in digits)
    if digits == ALL_DIGITS:
        return digits
    if len(digits) != 2:
        raise ValueError(f"digits {digits} must be a pair such as 0,1 (or all ten digits)")
    if any(not 0 <= d <= 9 for d in digits):
        raise ValueError(f"digits {digits} must lie in 0-9")
    if digits[0] == digits[1]:
        raise ValueError(f"digits {digits} repeat a digit: a pair needs two different digits")
    return digits


def scale_pixels(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 pixels (n, 784) to ``dtype`` in [0, 1]."""
    out = images.astype(dtype)
    out *= out.dtype.type(1 / 255)
    return out


def check_val_size(val_size):
    """Return ``val_size`` if it is a validation size, as scikit-learn's ``train_test_split`` reads sizes.

    A float is a fraction in (0, 1) (``1.0`` is not "one row"); an integer is a
    count of rows; zero, as either, holds out nothing.
    """
    if isinstance(val_size, (bool, np.bool_)) or not isinstance(val_size, numbers.Real) \
            or not val_size >= 0:
        raise ValueError(f"validation size {val_size!r} must be a fraction in (0, 1) or a "
                         "count >= 0")
    if isinstance(val_size, numbers.Integral) or val_size < 1:
        return val_size
    hint = (f"; for a count of rows give an integer ({int(val_size)})"
            if float(val_size).is_integer() else "")
    raise ValueError(f"validation size {float(val_size)!r} is a fraction, and a fraction must lie "
                     f"in (0, 1){hint}")


def validation_count(val_size, n_train: int) -> int:
    """How many of ``n_train`` rows to hold out (see `check_val_size`).

    A positive fraction holds out at least one row.
    """
    check_val_size(val_size)
    if isinstance(val_size, numbers.Integral):
        count, size = int(val_size), f"{int(val_size)}"
    else:
        count = max(1, round(val_size * n_train)) if val_size > 0 else 0
        size = f"{float(val_size)!r} ({count} rows)"
    if count >= n_train:
        raise ValueError(f"validation size {size} leaves no training data ({n_train} rows in "
                         "the task)")
    return count


def make_task(data: MnistData, digits=ALL_DIGITS, *, val_size=0.1, seed: int = 0,
              dtype=np.float32) -> Task:
    """Select ``digits`` from ``data``, scale pixels and hold out a seeded validation split."""
    digits = check_digits(digits)
    train_rows = np.flatnonzero(np.isin(data.train_labels, digits))
    test_rows = np.flatnonzero(np.isin(data.test_labels, digits))
    n_val = validation_count(val_size, train_rows.size)

    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(train_rows)
    val_rows = np.sort(shuffled[:n_val])
    fit_rows = np.sort(shuffled[n_val:])

    def pick(images, labels, rows):
        return scale_pixels(images[rows], dtype), labels[rows].astype(np.int64)

    x_train, labels_train = pick(data.train_images, data.train_labels, fit_rows)
    x_val, labels_val = pick(data.train_images, data.train_labels, val_rows)
    x_test, labels_test = pick(data.test_images, data.test_labels, test_rows)
    return Task(digits, x_train, labels_train, x_val, labels_val, x_test, labels_test,
                data.source, data.origin)
