"""A fully-connected network: its shape, parameters and predictions.

Training lives in `fastnn.train` and the file format in `fastnn.modelfile`;
the methods `fit`, `save` and `load` here are thin doors to them (neither
module imports this one, so there is no import cycle).
"""

from __future__ import annotations

import numpy as np

import kernels
from kernels.common import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS

from . import modelfile, train

DTYPES = ("float32", "float64")
INITS = ("auto", "he", "lecun")
_PREDICT_ROWS = 8192  # rows per forward pass when predicting, to bound memory


def check_dtype(dtype) -> np.dtype:
    """Return ``dtype`` as a NumPy dtype if it is float32 or float64."""
    try:
        checked = np.dtype(dtype)
    except TypeError:
        checked = None
    if checked is None or checked.name not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}.")
    return checked


class Network:
    """A multilayer perceptron for digit classification.

    Parameters
    ----------
    sizes : layer sizes ``(n_in, hidden..., n_out)``, e.g. ``(784, 128, 64, 10)``.
        ``n_out`` is 1 for a binary task (sigmoid output) or the number of
        classes (softmax output).
    hidden : ``"relu"`` or ``"sigmoid"``, the hidden layers' activation.
    classes : the label of each output class, e.g. ``(1, 2)`` for the pair
        1-vs-2. Default: ``0 .. n_out-1``, or ``(0, 1)`` when ``n_out == 1``.
    dtype : ``"float32"`` (default, fast) or ``"float64"``.
    seed : seeds the initial weights.
    init : ``"he"`` (std sqrt(2/fan_in)), ``"lecun"`` (std sqrt(1/fan_in), the
        tutorials' randn/sqrt(fan_in)) or ``"auto"``: He for ReLU, LeCun for sigmoid.
        Biases start at zero.
    """

    def __init__(self, sizes, *, hidden="relu", classes=None, dtype="float32", seed=0,
                 init="auto"):
        sizes = tuple(sizes)
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
            raise ValueError(f"layer sizes {sizes} must be whole numbers such as (784, 128, 10)")
        self.sizes = tuple(int(s) for s in sizes)
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"layer sizes {self.sizes} must be at least two positive integers")
        if hidden not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"Unknown hidden activation {hidden!r}: choose one of "
                             f"{', '.join(HIDDEN_ACTIVATIONS)}.")
        if init not in INITS:
            raise ValueError(f"Unknown init {init!r}: choose one of {', '.join(INITS)}.")
        self.hidden = hidden
        self.dtype = check_dtype(dtype)
        n_out = self.sizes[-1]
        if classes is None:
            classes = (0, 1) if n_out == 1 else tuple(range(n_out))
        self.classes = tuple(int(c) for c in classes)
        expected = 2 if n_out == 1 else n_out
        if len(self.classes) != expected or len(set(self.classes)) != expected:
            raise ValueError(f"{n_out} output unit(s) need {expected} distinct class labels, "
                             f"got {self.classes}")
        self.output = "sigmoid" if n_out == 1 else "softmax"
        if init == "auto":
            init = "he" if hidden == "relu" else "lecun"
        self.init = init

        rng = np.random.default_rng(seed)
        gain = 2.0 if init == "he" else 1.0
        self.weights = []
        self.biases = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(gain / fan_in)
            self.weights.append(w.astype(self.dtype))
            self.biases.append(np.zeros(fan_out, self.dtype))

    def __repr__(self) -> str:
        shape = "-".join(map(str, self.sizes))
        return (f"Network({shape}, hidden={self.hidden!r}, output={self.output!r}, "
                f"classes={self.classes}, dtype={self.dtype.name!r})")

    # --- validation and encoding -------------------------------------------------

    def check_inputs(self, x, name="X") -> np.ndarray:
        """Return x as a C-contiguous (n, n_in) array of the network's dtype, or raise."""
        x = np.asarray(x)
        if x.ndim == 1 and x.size == self.sizes[0]:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            got = f"{x.shape[1]} features" if x.ndim == 2 else f"shape {x.shape}"
            raise ValueError(f"{name} has {got}, expected (n, {self.sizes[0]})")
        if x.shape[0] == 0:
            raise ValueError(f"{name} has no rows")
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise ValueError(f"{name} has dtype {x.dtype}, expected real numbers")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if not np.isfinite(x).all():
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise ValueError(f"{name} contains {bad} NaN or infinite value(s); clean the input first")
        return x

    def class_indices(self, labels, n_rows: int, name="labels") -> np.ndarray:
        """Map labels (n,) drawn from ``classes`` to output indices 0..len(classes)-1."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != n_rows:
            raise ValueError(f"{name} has shape {labels.shape}, expected ({n_rows},) to match X")
        if not np.issubdtype(labels.dtype, np.integer):
            if not (np.issubdtype(labels.dtype, np.floating)
                    and np.isfinite(labels).all() and (labels == np.round(labels)).all()):
                raise ValueError(f"{name} must be integer class labels, got dtype {labels.dtype}")
            labels = labels.astype(np.int64)
        lookup = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(np.unique(labels).tolist()) - set(lookup))
        if unknown:
            raise ValueError(f"{name} contain {unknown[:5]}, which are not among this network's "
                             f"classes {self.classes}")
        table = np.zeros(max(self.classes) + 1, np.int64)
        for c, i in lookup.items():
            table[c] = i
        return table[labels]

    def targets(self, labels, n_rows: int) -> np.ndarray:
        """Training targets for labels: one-hot (n, n_out), or (n, 1) of 0/1 for binary."""
        index = self.class_indices(labels, n_rows)
        if self.sizes[-1] == 1:
            return index.astype(self.dtype)[:, None]
        return np.eye(self.sizes[-1], dtype=self.dtype)[index]

    # --- prediction ------------------------------------------------------------------

    def output_proba(self, x, backend=None) -> np.ndarray:
        """Raw network outputs (n, n_out) for already checked inputs.

        ``backend`` names the kernels (default: `kernels.default_backend`), as
        in every method here that takes it.
        """
        kern = kernels.get_backend(backend)
        hidden = HIDDEN_ACTIVATIONS[self.hidden]
        output = OUTPUT_ACTIVATIONS[self.output]
        result = np.empty((x.shape[0], self.sizes[-1]), self.dtype)
        for start in range(0, x.shape[0], _PREDICT_ROWS):
            rows = x[start:start + _PREDICT_ROWS]
            zs = [np.empty((rows.shape[0], n), self.dtype) for n in self.sizes[1:]]
            acts = [np.empty_like(z) for z in zs]
            kern.forward(tuple(self.weights), tuple(self.biases), rows, hidden, output, zs, acts)
            result[start:start + rows.shape[0]] = acts[-1]
        return result

    def predict_proba(self, x, backend=None) -> np.ndarray:
        """Class probabilities (n, n_classes), columns in the order of ``classes``."""
        probs = self.output_proba(self.check_inputs(x), backend)
        if self.sizes[-1] == 1:
            return np.hstack([1 - probs, probs])
        return probs

    def predicted_indices(self, x, backend=None) -> np.ndarray:
        """Output-class indices (n,) for inputs already passed through `check_inputs`."""
        probs = self.output_proba(x, backend)
        if self.sizes[-1] == 1:
            return (probs[:, 0] > 0.5).astype(np.int64)  # as argmax of [1 - p, p]
        return probs.argmax(axis=1)

    def predict(self, x, backend=None) -> np.ndarray:
        """Predicted class labels (n,) for inputs x (n, n_in)."""
        return np.asarray(self.classes)[self.predicted_indices(self.check_inputs(x), backend)]

    def score(self, x, labels, backend=None) -> float:
        """Accuracy (a fraction in [0, 1]) of ``predict(x)`` against ``labels``."""
        x = self.check_inputs(x)
        truth = self.class_indices(labels, x.shape[0])
        return float(np.mean(self.predicted_indices(x, backend) == truth))

    # --- doors to training and files ----------------------------------------------------

    def fit(self, x, labels, **options):
        """Train in place; see `fastnn.train.fit` for the options. Returns the history."""
        return train.fit(self, x, labels, **options)

    def save(self, path, **extra) -> None:
        """Write the model to ``path`` (an .npz file, no pickle); see `fastnn.modelio`."""
        modelfile.save_model(path, self, **extra)

    @classmethod
    def load(cls, path) -> "Network":
        """Read a model written by `save`."""
        return modelfile.read_model_file(path, cls)[0]

    def parameters_finite(self) -> bool:
        return all(np.isfinite(p).all() for p in (*self.weights, *self.biases))

    def copy_parameters(self):
        """A snapshot of (weights, biases) that later training does not change."""
        return [w.copy() for w in self.weights], [b.copy() for b in self.biases]

    def set_parameters(self, weights, biases) -> None:
        """Replace the parameters in place (shapes must match)."""
        for mine, new in zip(self.weights + self.biases, list(weights) + list(biases)):
            mine[...] = new
