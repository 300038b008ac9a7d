"""PNG figures of training runs, datasets and benchmarks (needs the ``plots`` extra).

Figures are drawn with matplotlib's object API on the Agg canvas, so no
window opens and pyplot's global backend is never touched. Every function
takes plain data, writes one PNG of a fixed, documented pixel size (no
"tight" cropping) and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .extras import require

DPI = 100
#: Inches per digit in a grid (width, height): room for a two-line title.
CELL = (1.1, 1.35)
#: File names that `write_training_plots` uses in its directory.
TRAINING_PLOTS = {"curves": "curves.png", "misclassified": "misclassified.png",
                  "confusion": "confusion.png"}
#: Most digits `pick_samples` draws (20 rows of 10 stay legible).
MAX_SAMPLES = 200


def check_available(purpose: str = "plotting") -> None:
    """Raise `fastnn.extras.MissingExtra` (with the pip command) unless matplotlib imports."""
    require("matplotlib", "plots", purpose)
    require("matplotlib.figure", "plots", purpose)


def prepare_directory(directory) -> Path:
    """Create ``directory`` (and its parents) for plots, or raise `ValueError` saying why not."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"plot directory {directory} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the plot directory {directory}: "
                         f"{err.strerror or err}") from None
    return directory


def _figure(width: float, height: float):
    figure = require("matplotlib.figure", "plots", "plotting")
    return figure.Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig, path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _records(history) -> list:
    """Epoch records as dicts, from a `History`, its ``as_dicts()`` or a list of `EpochRecord`."""
    if hasattr(history, "as_dicts"):
        return history.as_dicts()
    return [r if isinstance(r, dict) else vars(r) for r in history]


def plot_history(history, path) -> Path:
    """Loss and accuracy (train, validation) per epoch: a 1000x400-pixel PNG."""
    records = _records(history)
    if not records:
        raise ValueError("there are no epochs to plot")
    epochs = [r["epoch"] for r in records]
    marker = "o" if len(epochs) <= 30 else None
    fig = _figure(10, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [r["loss"] for r in records], marker=marker, color="C0")
    loss_ax.set(title="training loss", xlabel="epoch", ylabel="loss (mean over the epoch)")
    acc_ax.plot(epochs, [100 * r["train_accuracy"] for r in records], marker=marker,
                label="train (during the epoch)")
    val = [r["val_accuracy"] for r in records]
    if any(v is not None for v in val):
        acc_ax.plot(epochs, [math.nan if v is None else 100 * v for v in val], marker=marker,
                    label="validation (after the epoch)")
    acc_ax.set(title="accuracy", xlabel="epoch", ylabel="accuracy (%)")
    acc_ax.legend(loc="lower right")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def grid_shape(count: int, max_columns: int = 10) -> tuple:
    """(rows, columns) of a digit grid holding ``count`` images."""
    columns = min(max_columns, max(1, math.ceil(math.sqrt(count))))
    return math.ceil(count / columns), columns


def grid_pixels(count: int, max_columns: int = 10, title: str = "") -> tuple:
    """(width, height) in pixels of `plot_digit_grid`'s PNG for ``count`` images.

    Wide enough for the title too (about 0.09 inch per character at 11 points).
    """
    rows, columns = grid_shape(count, max_columns)
    width = max(columns * CELL[0], 0.09 * len(title) + 0.4 if title else 0)
    return round(width * DPI), round((rows * CELL[1] + 0.4) * DPI)


def plot_digit_grid(images, titles: Sequence[str], path, *, title: str = "",
                    max_columns: int = 10) -> Path:
    """Digits in a grid, each with its title; `grid_pixels` gives the PNG's size.

    ``images`` is (n, 784) or (n, 28, 28), uint8 0-255 or float 0-1, light
    digits on black (as MNIST stores them); they are drawn dark on light.
    """
    images = np.asarray(images)
    count = images.shape[0]
    if count == 0:
        raise ValueError("there are no images to draw")
    if len(titles) != count:
        raise ValueError(f"{count} images need {count} titles, got {len(titles)}")
    images = images.reshape(count, 28, 28)
    vmax = 255 if images.dtype == np.uint8 else 1.0
    rows, columns = grid_shape(count, max_columns)
    width, height = grid_pixels(count, max_columns, title)
    fig = _figure(width / DPI, height / DPI)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i < count:
            ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_title(titles[i], fontsize=9, pad=3)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def pick_samples(labels, digits: Sequence[int], count: int, *, seed: int = 0) -> np.ndarray:
    """Row indices of ``count`` images (fewer if fewer exist) whose labels are in ``digits``.

    Chosen at random with ``seed``, then ordered by label (and row) so a grid reads in order.
    """
    if not 1 <= count <= MAX_SAMPLES:
        raise ValueError(f"count {count} must be between 1 and {MAX_SAMPLES}")
    labels = np.asarray(labels)
    rows = np.flatnonzero(np.isin(labels, digits))
    if rows.size == 0:
        raise ValueError(f"there are no images of digits {tuple(digits)}")
    chosen = np.random.default_rng(seed).choice(rows, size=min(count, rows.size), replace=False)
    return chosen[np.lexsort((chosen, labels[chosen]))]


def plot_misclassified(images, truth, predicted, path, *, limit: int = 40) -> Path:
    """The first ``limit`` misclassified images, titled with the true and predicted digit."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    wrong = np.flatnonzero(truth != predicted)
    shown = wrong[:limit]
    header = (f"{wrong.size:,} of {truth.size:,} test images misclassified"
              + (f" (first {shown.size} shown)" if wrong.size > shown.size else ""))
    if shown.size == 0:
        fig = _figure(6, 2)
        fig.text(0.5, 0.5, header, ha="center", va="center", fontsize=12)
        return _save(fig, path)
    titles = [f"true {truth[i]}\npredicted {predicted[i]}" for i in shown]
    return plot_digit_grid(np.asarray(images)[shown], titles, path, title=header)


def plot_confusion(matrix, classes: Sequence[int], path) -> Path:
    """The confusion matrix as a heat map of row fractions, annotated with counts.

    700x600 pixels for 10 classes; 500x400 for a digit pair.
    """
    matrix = np.asarray(matrix)
    k = len(classes)
    fig = _figure(7, 6) if k > 2 else _figure(5, 4)
    ax = fig.subplots()
    counts = matrix.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.where(counts > 0, matrix / np.maximum(counts, 1), 0.0)
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            ax.text(j, i, f"{value:,}", ha="center", va="center", fontsize=8 if k > 2 else 11,
                    color="white" if fractions[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), [str(c) for c in classes])
    ax.set_yticks(range(k), [str(c) for c in classes])
    ax.set(xlabel="predicted digit", ylabel="true digit",
           title=f"confusion matrix ({int(matrix.sum()):,} test images)")
    fig.colorbar(image, ax=ax, label="fraction of the true digit's images")
    return _save(fig, path)


def plot_epoch_times(records: Iterable[dict], path, *, title: str = "") -> Path:
    """Epoch time per implementation and batch size: a 900x500-pixel PNG.

    ``records`` are dicts ``{"impl": str, "batch_size": int or "full",
    "median_s": float}``, one per measurement (e.g. from a benchmark run).
    One line per implementation; batch sizes on a categorical axis in
    increasing order ("full" last); seconds on a log scale, since the
    implementations differ by orders of magnitude.
    """
    records = list(records)
    if not records:
        raise ValueError("there are no benchmark records to plot")
    for record in records:
        missing = {"impl", "batch_size", "median_s"} - set(record)
        if missing:
            raise ValueError(f"benchmark record {record} lacks {', '.join(sorted(missing))}")
        if not record["median_s"] > 0:
            raise ValueError(f"benchmark record {record} needs a positive median_s")

    def order(size):
        return (1, 0) if size == "full" else (0, int(size))

    sizes = sorted({r["batch_size"] for r in records}, key=order)
    position = {size: i for i, size in enumerate(sizes)}
    impls = list(dict.fromkeys(r["impl"] for r in records))
    fig = _figure(9, 5)
    ax = fig.subplots()
    for n, impl in enumerate(impls):
        mine = sorted((r for r in records if r["impl"] == impl),
                      key=lambda r: order(r["batch_size"]))
        xs, ys = [position[r["batch_size"]] for r in mine], [r["median_s"] for r in mine]
        ax.plot(xs, ys, marker="o", label=impl, color=f"C{n % 10}")
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.3g}s", (x, y), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=8, color=f"C{n % 10}")
    ax.set_yscale("log")
    ax.margins(x=0.08, y=0.15)
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set(xlabel="batch size", ylabel="median epoch time (s, log scale)",
           title=title or "epoch time per implementation and batch size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(title="implementation", loc="best")
    return _save(fig, path)


def write_training_plots(directory, history, net, x_test, labels_test) -> list:
    """Write `TRAINING_PLOTS` for a trained ``net`` to ``directory`` (created if needed).

    The loss and accuracy curves of ``history``, the misclassified test
    images and the confusion matrix on ``(x_test, labels_test)``. Returns the
    paths written.
    """
    from .metrics import confusion_matrix

    directory = prepare_directory(directory)
    predicted = net.predict(x_test)
    matrix = confusion_matrix(labels_test, predicted, net.classes)
    return [
        plot_history(history, directory / TRAINING_PLOTS["curves"]),
        plot_misclassified(x_test, labels_test, predicted,
                           directory / TRAINING_PLOTS["misclassified"]),
        plot_confusion(matrix, net.classes, directory / TRAINING_PLOTS["confusion"]),
    ]
