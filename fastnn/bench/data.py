"""The arrays a benchmark run trains and scores on, and where they came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import scale_pixels


@dataclass
class Data:
    """Training and test arrays of one run.

    x : (n, 784) float32 in [0, 1]; labels : (n,) int64 digits; likewise the
    test set. ``source`` is ``"mnist"`` or ``"sample"``.
    """

    x: np.ndarray
    labels: np.ndarray
    x_test: np.ndarray
    labels_test: np.ndarray
    source: str
    origin: str

    @classmethod
    def from_mnist(cls, data) -> "Data":
        """Every training image and the test set of a `fastnn.mnist.MnistData`, as float32."""
        return cls(scale_pixels(data.train_images, np.float32),
                   data.train_labels.astype(np.int64),
                   scale_pixels(data.test_images, np.float32),
                   data.test_labels.astype(np.int64), data.source, data.origin)

    def head(self, rows: int) -> "Data":
        """The same data with only the first ``rows`` training rows."""
        return Data(self.x[:rows], self.labels[:rows], self.x_test, self.labels_test,
                    self.source, self.origin)

    def training_rows(self, digits=None) -> tuple:
        """``(x, labels)``: the training rows of ``digits`` (None: all), in their order."""
        if digits is None:
            return self.x, self.labels
        keep = np.isin(self.labels, digits)
        return np.ascontiguousarray(self.x[keep]), self.labels[keep]
