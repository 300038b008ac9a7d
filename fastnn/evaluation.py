"""Scoring a saved model on the MNIST test set: accuracy, per class, confusion matrix."""

from __future__ import annotations

import numpy as np

from . import metrics
from .data import N_PIXELS, check_digits, make_task
from .mnist import MnistData
from .modelio import ModelFileError
from .network import Network


def check_mnist_model(net: Network, path) -> None:
    """Raise `ModelFileError` in one line if ``net`` (read from ``path``) cannot classify MNIST."""
    if net.sizes[0] != N_PIXELS:
        raise ModelFileError(f"{path} takes {net.sizes[0]} inputs, but MNIST images have "
                             f"{N_PIXELS} pixels: it is not a model of MNIST digits")
    try:
        check_digits(net.classes)
    except ValueError:
        raise ModelFileError(f"{path} predicts the classes {net.classes}; fastnn evaluates "
                             "models of all ten digits or of a digit pair") from None


def evaluate(net: Network, data: MnistData, backend: str | None = None) -> dict:
    """``net``'s scores on the test images of its classes in ``data``.

    Returns ``dataset``, ``n_test``, ``accuracy``, ``per_class`` ({class:
    accuracy}), ``classes`` and ``confusion_matrix`` (rows: true class,
    columns: predicted; an int64 array).
    """
    task = make_task(data, net.classes, val_size=0, dtype=net.dtype)
    predicted = net.predict(task.x_test, backend)
    truth = task.labels_test
    matrix = metrics.confusion_matrix(truth, predicted, net.classes)
    return {"dataset": task.source, "n_test": int(truth.size),
            "accuracy": float(np.mean(predicted == truth)),
            "per_class": dict(zip(net.classes, metrics.per_class_accuracy(matrix).tolist())),
            "classes": list(net.classes), "confusion_matrix": matrix}
