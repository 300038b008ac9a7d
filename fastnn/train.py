"""Training policy: epochs, seeded shuffling, batching, history, stopping.

`fit` never does arithmetic itself: each epoch it hands the backend's
``train_epoch`` a shuffled row order and lets the kernels do the rest.
"""

from __future__ import annotations

import math
import numbers
import time
from typing import TYPE_CHECKING

import numpy as np

import kernels
from kernels.common import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, SOFTMAX, allocate_workspace

from . import presets
from .history import EpochRecord, History, check_rng_state

if TYPE_CHECKING:  # for annotations only: `Network.fit` imports this module
    from .network import Network

#: Rows handed to the backend per call. Between calls Python can report
#: progress and react to Ctrl-C; at this size the call overhead is invisible.
ROWS_PER_CALL = 8192
#: Training has blown up when the mean loss of the batches of one call is this
#: many times `reference_loss`: the loss of a network that guesses (ln 10 for
#: ten digits, ln 2 for a pair), or the loss training started from if higher.
#: Healthy runs, the presets among them, stay well below it (tests/test_divergence.py).
EXPLOSION_FACTOR = 10
_REFERENCE_ROWS = 1024  # rows whose loss measures where training starts from


def check_resume(resume: History, epochs: int) -> None:
    """Check that ``resume`` can be continued up to ``epochs`` epochs."""
    check_rng_state(resume.rng_state)
    done = len(resume.epochs)
    if done >= epochs:
        raise ValueError(f"the run to resume has already completed {done} epoch(s); "
                         f"ask for more than {done} epochs to continue it")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or exploded while finite (see `EXPLOSION_FACTOR`).

    The network is back at the parameters it had when epoch ``epoch`` began:
    the end of epoch ``epoch - 1``, or where `fit` started. ``reason`` says what
    happened and where; by default, a non-finite loss at ``epoch``, ``batch``.
    """

    def __init__(self, epoch: int, batch: int, lr: float, history: History, reason=None):
        self.epoch, self.batch, self.history = epoch, batch, history
        if reason is None:
            reason = f"the loss became NaN or infinite at epoch {epoch}, batch {batch}"
        restored = (f"from the end of epoch {epoch - 1}" if epoch > 1
                    else "from before the first epoch")
        super().__init__(f"training diverged: {reason}. The parameters {restored} were "
                         f"restored. Try a smaller learning rate than {lr:g}.")


class TrainingInterrupted(KeyboardInterrupt):
    """Training was interrupted; the network holds the last completed epoch's parameters."""

    def __init__(self, history: History):
        self.history = history
        done = len(history.epochs)
        super().__init__(f"training interrupted after {done} completed epoch(s)")


def resolve_batch_size(batch_size, n_rows: int) -> int:
    """``"full"`` or ``None`` means every row; otherwise 1 <= batch_size <= n_rows."""
    if batch_size is None or batch_size == "full":
        return n_rows
    if isinstance(batch_size, str) and batch_size.strip().isdigit():
        batch_size = int(batch_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch size {batch_size!r} must be a positive integer or 'full'")
    if not 1 <= batch_size <= n_rows:
        raise ValueError(
            f"batch size {batch_size} must be between 1 and the number of training rows ({n_rows})"
        )
    return int(batch_size)


def check_hyperparameters(epochs, lr, seed=0) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs {epochs!r} must be a positive integer")
    # numbers.Real: NumPy scalars such as np.float32(0.1) are learning rates too.
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning rate {lr!r} must be a positive, finite number")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed {seed!r} must be an integer >= 0")


def guessing_loss(net: Network) -> float:
    """The loss per sample of a network that gives every class the same probability."""
    return math.log(max(2, net.sizes[-1]))


def reference_loss(net: Network, x, y) -> float:
    """The larger of `guessing_loss` and ``net``'s mean loss on the first rows of ``x``.

    ``y`` are the targets (`Network.targets`) of ``x``.
    """
    guessing = guessing_loss(net)
    ref = kernels.get_backend("numpy")
    rows, targets = x[:_REFERENCE_ROWS], y[:_REFERENCE_ROWS]
    zs = [np.empty((rows.shape[0], n), net.dtype) for n in net.sizes[1:]]
    acts = [np.empty_like(z) for z in zs]
    output = OUTPUT_ACTIVATIONS[net.output]
    loss = ref.softmax_cross_entropy if output == SOFTMAX else ref.sigmoid_cross_entropy
    with np.errstate(over="ignore", invalid="ignore"):
        ref.forward(tuple(net.weights), tuple(net.biases), rows, HIDDEN_ACTIVATIONS[net.hidden],
                    output, zs, acts)
        start = float(loss(zs[-1], targets)) / rows.shape[0]
    return max(guessing, start) if math.isfinite(start) else guessing


def _explosion(loss: float, rows: int, reference: float, guessing: bool, batches: tuple,
               epoch: int) -> str | None:
    """Why the loss of ``rows`` rows over ``batches`` (first, last) is an explosion, or None."""
    mean = loss / rows
    if mean <= EXPLOSION_FACTOR * reference:
        return None
    first, last = batches
    where = f"batch {first}" if first == last else f"batches {first}-{last}"
    basis = "of guessing" if guessing else "training started from"
    return (f"the loss exploded to {mean:.3g} per sample in {where} of epoch {epoch}, over "
            f"{EXPLOSION_FACTOR} times the loss {basis} ({reference:.2g})")


def fit(net: Network, x, labels, *, epochs: int = 10, batch_size=64, lr: float | None = None,
        backend: str | None = None, seed: int = 0, validation=None,
        on_epoch_end=None, on_progress=None, resume: History | None = None) -> History:
    """Train ``net`` in place with gradient descent.

    Parameters
    ----------
    x : (n, n_in) inputs; labels : (n,) class labels drawn from ``net.classes``.
    epochs : passes over the data (for full-batch training, one step each).
    batch_size : rows per step: 1 (per-sample SGD), k (mini-batch) or
        ``"full"`` (full-batch gradient descent).
    lr : learning rate (default: 0.1, at batch size 1 0.01: see
        `fastnn.presets.default_lr`). backend : ``"numpy"`` or ``"numba"`` (default:
        `kernels.default_backend`). seed : seeds the shuffling.
    validation : optional ``(x_val, labels_val)`` scored after every epoch.
    on_epoch_end : called as ``on_epoch_end(record, history)`` after each epoch.
    on_progress : called as ``on_progress(rows_done, rows_total, loss_sum,
        n_correct)`` during an epoch, every few thousand rows.
    resume : the `History` of an earlier run of this network (from a
        checkpoint): training continues after its last epoch with its
        shuffling state, so the result equals an uninterrupted run.

    Returns the `History`. Raises `TrainingDiverged` when the loss becomes
    non-finite or explodes (`EXPLOSION_FACTOR`), with ``net`` back at the start
    of that epoch, and `TrainingInterrupted` on Ctrl-C, with ``net`` at the end
    of the last completed epoch.
    """
    if lr is None:
        lr = presets.default_lr(batch_size)
    check_hyperparameters(epochs, lr, seed)
    x = net.check_inputs(x)
    y = net.targets(labels, x.shape[0])
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError("validation must be a pair (X_val, labels_val), not "
                             f"{type(validation).__name__}")
        # Checked and encoded once here, not again after every epoch.
        x_val = net.check_inputs(validation[0], "validation X")
        val_truth = net.class_indices(validation[1], x_val.shape[0], "validation labels")
    n = x.shape[0]
    batch = resolve_batch_size(batch_size, n)
    kern = kernels.get_backend(backend)
    hidden = HIDDEN_ACTIVATIONS[net.hidden]
    output = OUTPUT_ACTIVATIONS[net.output]
    lr_typed = net.dtype.type(lr)

    reference = reference_loss(net, x, y)
    guessing = reference == guessing_loss(net)  # else the loss training starts from

    rng = np.random.default_rng(seed)
    history = History(kern.NAME, batch, float(lr))
    if resume is not None:
        check_resume(resume, epochs)
        history.epochs = list(resume.epochs)
        rng.bit_generator.state = resume.rng_state
    history.rng_state = rng.bit_generator.state

    # An interrupt may land anywhere below. `history` only ever describes
    # completed epochs: an epoch is committed once its record is appended; until
    # then `saved` holds the parameters to fall back to.
    in_flight = saved = None
    try:
        history.compile_seconds = kern.warmup(net.dtype, batch,
                                              first_layer_width=net.sizes[1]).seconds
        ws = allocate_workspace(net.sizes, batch, net.dtype)
        inputs = kern.prepare_inputs(x)
        rows_per_call = max(1, ROWS_PER_CALL // batch) * batch
        first_epoch = len(history.epochs) + 1
        for epoch in range(first_epoch, epochs + 1):
            saved = net.copy_parameters()
            in_flight = epoch
            order = rng.permutation(n)
            loss_sum, n_correct, steps = 0.0, 0, 0
            started = time.perf_counter()
            for start in range(0, n, rows_per_call):
                chunk = order[start:start + rows_per_call]
                # Overflow on the way to a non-finite loss is reported below as
                # divergence; NumPy's warnings about it would only be noise.
                with np.errstate(over="ignore", invalid="ignore"):
                    loss, correct, done = kern.train_epoch(
                        tuple(net.weights), tuple(net.biases), inputs, y, chunk, batch, lr_typed,
                        hidden, output, ws)
                first_step = steps + 1
                loss_sum, n_correct, steps = loss_sum + loss, n_correct + correct, steps + done
                if done < -(-chunk.shape[0] // batch) or not math.isfinite(loss_sum):
                    net.set_parameters(*saved)
                    raise TrainingDiverged(epoch, steps + 1, lr, history)
                exploded = _explosion(loss, chunk.shape[0], reference, guessing,
                                      (first_step, steps), epoch)
                if exploded:
                    net.set_parameters(*saved)
                    raise TrainingDiverged(epoch, steps, lr, history, exploded)
                if on_progress is not None:
                    on_progress(start + chunk.shape[0], n, loss_sum, n_correct)
            seconds = time.perf_counter() - started
            val_accuracy = None
            if validation is not None:
                val_accuracy = float(np.mean(net.predicted_indices(x_val, kern.NAME)
                                                   == val_truth))
            record = EpochRecord(epoch, loss_sum / n, n_correct / n, val_accuracy, seconds)
            history.epochs.append(record)
            history.rng_state = rng.bit_generator.state
            in_flight = None
            if on_epoch_end is not None:
                on_epoch_end(record, history)
    except KeyboardInterrupt:
        if in_flight is not None:
            if len(history.epochs) >= in_flight:
                # Interrupted between committing the record and the RNG state;
                # the generator has not been used since the epoch's permutation.
                history.rng_state = rng.bit_generator.state
            else:
                net.set_parameters(*saved)
        raise TrainingInterrupted(history) from None
    return history
