"""The benchmark's configurations, C1-C7, each a network, a batch size and a task."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    """One timed configuration: a network, a batch size, a learning rate and its digits.

    ``batch`` is a positive int or ``"full"`` (every row in one step).
    ``digits`` restricts the training rows to those digits (``(0, 1)`` for
    the binary 0-vs-1 task of a 784-...-1 network); None keeps all ten. The
    learning rate only has to keep training finite; it does not change the work.
    """

    sizes: tuple
    batch: object
    lr: float
    hidden: str = "relu"
    digits: tuple | None = None
    name: str = ""

    @property
    def network(self) -> str:
        return "-".join(map(str, self.sizes))

    @property
    def label(self) -> str:
        """E.g. ``C1 784-128-64-10 sigmoid batch 64``."""
        task = "" if self.digits is None else f" digits {'-vs-'.join(map(str, self.digits))}"
        return (f"{self.name} {self.network} {self.hidden}{task} batch {self.batch}").strip()

    def batch_rows(self, n_rows: int) -> int:
        return n_rows if self.batch == "full" else min(int(self.batch), n_rows)


def _named(name, *args, **kwargs) -> BenchConfig:
    return BenchConfig(*args, name=name, **kwargs)


#: The named configurations; ``fastnn bench`` runs all of them unless told ``--config``.
CONFIGS = {
    "C1": _named("C1", (784, 128, 64, 10), 64, 0.5, "sigmoid"),
    "C2": _named("C2", (784, 128, 64, 10), 1, 0.05, "sigmoid"),
    "C3": _named("C3", (784, 10, 10), "full", 0.5, "relu"),
    "C4": _named("C4", (784, 128, 64, 1), "full", 0.5, "sigmoid", digits=(0, 1)),
    "C5": _named("C5", (784, 128, 64, 10), 256, 0.5, "sigmoid"),
    "C6": _named("C6", (784, 512, 256, 10), 64, 0.05, "relu"),
    "C7": _named("C7", (784, 1024, 1024, 10), 256, 0.05, "relu"),
}

#: The accuracy check: one epoch of this configuration per implementation.
ACCURACY_CONFIG = BenchConfig((784, 128, 64, 10), 64, 0.1, name="accuracy")


def select_configs(names) -> tuple:
    """The configurations called ``names`` (case-insensitive), in the order given.

    Raises ValueError naming the choices for an unknown name.
    """
    picked = []
    for name in names:
        key = name.strip().upper()
        if key not in CONFIGS:
            raise ValueError(f"Unknown configuration {name!r}: choose from "
                             f"{', '.join(CONFIGS)}.")
        picked.append(CONFIGS[key])
    return tuple(dict.fromkeys(picked))
