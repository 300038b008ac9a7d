"""Scores beyond plain accuracy: the confusion matrix and its text rendering."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(truth, predicted, classes: Sequence[int]) -> np.ndarray:
    """Counts (k, k) int64: ``matrix[i, j]`` = images of ``classes[i]`` predicted as ``classes[j]``.

    Rows are true classes and sum to each class's image count; labels outside
    ``classes`` raise `ValueError`.
    """
    classes = [int(c) for c in classes]
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape or truth.ndim != 1:
        raise ValueError(f"truth {truth.shape} and predictions {predicted.shape} must be two "
                         "1-D arrays of the same length")
    lookup = np.full(max(classes) + 1, -1, np.int64)
    lookup[classes] = np.arange(len(classes))
    indices = []
    for name, labels in (("true labels", truth), ("predictions", predicted)):
        inside = (labels >= 0) & (labels < lookup.size)
        index = np.where(inside, lookup[np.where(inside, labels, 0)], -1)
        if (index < 0).any():
            raise ValueError(f"{name} contain {sorted(set(labels[index < 0].tolist()))[:5]}, "
                             f"which are not among the classes {tuple(classes)}")
        indices.append(index)
    k = len(classes)
    return np.bincount(indices[0] * k + indices[1], minlength=k * k).reshape(k, k)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each true class (k,): the diagonal over the row sums (NaN for an empty row)."""
    counts = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(matrix) / counts


def format_confusion(matrix: np.ndarray, classes: Sequence[int]) -> str:
    """The confusion matrix as a fixed-width table, with each row's count and accuracy.

    Zeros print as ``.`` so that the errors stand out from the empty cells.
    """
    width = max(4, len(f"{int(matrix.max()):,}") + 1)
    counts = matrix.sum(axis=1)
    recall = per_class_accuracy(matrix)
    count_width = max(len("images"), len(f"{int(counts.max()):,}"))
    header = (f"{'true':>5} " + "".join(f"{c:>{width}}" for c in classes)
              + f"  | {'images':>{count_width}}  accuracy")
    lines = [f"{'':5} {'predicted':^{width * len(classes)}}", header, "-" * len(header)]
    for label, row, count, acc in zip(classes, matrix, counts, recall):
        cells = "".join(f"{f'{int(v):,}' if v else '.':>{width}}" for v in row)
        score = "     -" if np.isnan(acc) else f"{acc:8.2%}"
        lines.append(f"{label:>5} {cells}  | {int(count):>{count_width},}  {score}")
    return "\n".join(line.rstrip() for line in lines)
