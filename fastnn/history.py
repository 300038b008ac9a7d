"""The record of a training run: one `EpochRecord` per epoch, gathered in a `History`.

A `History` is what `fastnn.train.fit` returns and what a checkpoint stores
(`History.state`, `History.from_state`) to resume the run exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class EpochRecord:
    """Metrics of one epoch.

    ``loss`` and ``train_accuracy`` are averaged over the epoch's batches as
    they were seen, each measured before that batch's update (as Keras does).
    ``seconds`` is the wall time of the epoch's training steps, without the
    validation pass.
    """

    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float | None
    seconds: float


@dataclass
class History:
    """What `fit` did: one record per epoch, plus the run's settings."""

    backend: str
    batch_size: int
    lr: float
    epochs: list = field(default_factory=list)
    compile_seconds: float = 0.0
    #: State of the shuffling generator after the last completed epoch;
    #: with the parameters, it is all a resumed run needs.
    rng_state: dict | None = None

    def as_dicts(self) -> list:
        return [asdict(record) for record in self.epochs]

    def state(self) -> dict:
        """The JSON-able training state a checkpoint stores; see `from_state`."""
        return {"backend": self.backend, "batch_size": self.batch_size, "lr": self.lr,
                "epochs": self.as_dicts(), "rng_state": self.rng_state}

    @classmethod
    def from_state(cls, state) -> "History":
        """Rebuild a `History` from `state`; raises ValueError naming what is wrong."""
        if not isinstance(state, dict):
            raise ValueError(f"training state must be a mapping, not {type(state).__name__}")
        missing = [key for key in ("backend", "batch_size", "lr", "epochs", "rng_state")
                   if key not in state]
        if missing:
            raise ValueError(f"training state lacks {', '.join(missing)}")
        records = state["epochs"]
        if not isinstance(records, list):
            raise ValueError("training state 'epochs' must be a list of epoch records")
        epochs = []
        for number, record in enumerate(records, start=1):
            try:
                epochs.append(EpochRecord(**record))
            except TypeError:
                raise ValueError(f"training state epoch record {number} is malformed: "
                                 f"{record!r}") from None
            if epochs[-1].epoch != number:
                raise ValueError(f"training state epoch records are not numbered 1, 2, ...: "
                                 f"record {number} says epoch {epochs[-1].epoch!r}")
        history = cls(state["backend"], state["batch_size"], state["lr"], epochs,
                      rng_state=state["rng_state"])
        check_rng_state(history.rng_state)
        return history


def check_rng_state(rng_state) -> None:
    """Raise ValueError unless ``rng_state`` is a state of NumPy's default generator."""
    try:
        np.random.default_rng().bit_generator.state = rng_state
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"the shuffling state is not a valid state of NumPy's PCG64 "
                         f"generator ({err})") from None
