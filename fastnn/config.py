"""The description of a training run: one typed, immutable `RunConfig`.

Presets, the caller's settings and the defaults are merged in one place
(`RunConfig.resolve`); a checkpoint's stored settings come back through the
same door (``resolve(resume=PATH, ...)``). `RunConfig.record` is the
``config`` mapping written to checkpoints and the metrics JSON, and
`RunConfig.from_record` reads it back.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import kernels
from kernels.common import HIDDEN_ACTIVATIONS

from . import presets
from .data import ALL_DIGITS, N_PIXELS, check_digits, check_val_size, parse_digits
from .modelio import ModelFileError, read_checkpoint
from .network import DTYPES, INITS
from .train import check_hyperparameters

DATA_SOURCES = ("auto", "mnist", "sample")
#: Settings that shape the model and its training: stored with the run, and
#: fixed when a checkpoint is resumed (only ``epochs`` may grow).
TRAINING_KEYS = ("preset", "digits", "layers", "hidden", "batch_size", "lr", "init", "seed",
                 "val_size", "dtype")


class ConfigError(ValueError):
    """A setting is not allowed, or contradicts the checkpoint being resumed."""


@dataclass(frozen=True)
class RunConfig:
    """Everything `fastnn.workflow.run` needs to know; the defaults are ``presets.DEFAULT``.

    Model and training: ``preset`` (only recorded; `resolve` applies it),
    ``digits`` (all ten, or a pair), hidden ``layers``, ``hidden`` activation,
    ``init`` ("auto" becomes "he" for ReLU, "lecun" for sigmoid), ``batch_size``
    (an integer or "full"), ``lr`` (default: `presets.default_lr` of the batch
    size), ``epochs``, ``seed`` (split, weights, shuffling), ``val_size`` (a
    fraction or a row count), ``dtype``.

    Execution: ``backend`` (default: `kernels.default_backend`), ``threads``
    (default: every usable core), ``data`` ("auto", "mnist" or "sample"),
    ``data_dir``, ``download``.

    Outputs: ``save`` (checkpoint and model file), ``resume`` (the checkpoint
    this run continues), ``checkpoint_every`` (seconds between checkpoints
    during training), ``metrics_json``, ``plot_dir``.
    """

    preset: str | None = None
    digits: tuple = ALL_DIGITS
    layers: tuple = tuple(presets.DEFAULT["layers"])
    hidden: str = presets.DEFAULT["hidden"]
    init: str = presets.DEFAULT["init"]
    batch_size: int | str = presets.DEFAULT["batch_size"]
    lr: float | None = None
    epochs: int = presets.DEFAULT["epochs"]
    seed: int = 0
    val_size: float | int = 0.1
    dtype: str = "float32"
    backend: str | None = None
    threads: int | None = None
    data: str = "auto"
    data_dir: str | None = None
    download: bool = True
    save: str | None = None
    resume: str | None = None
    checkpoint_every: float = 60.0
    metrics_json: str | None = None
    plot_dir: str | None = None

    def __post_init__(self):
        try:
            self._normalise()
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def _normalise(self) -> None:
        def set_(name, value):
            object.__setattr__(self, name, value)

        if self.preset is not None and self.preset not in presets.PRESETS:
            raise ValueError(f"Unknown preset {self.preset!r}: choose one of "
                             f"{', '.join(presets.PRESETS)}.")
        set_("digits", normal_digits(self.digits))
        set_("layers", check_layers(self.layers))
        if self.hidden not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"Unknown hidden activation {self.hidden!r}: choose one of "
                             f"{', '.join(HIDDEN_ACTIVATIONS)}.")
        if self.init not in INITS:
            raise ValueError(f"Unknown init {self.init!r}: choose one of {', '.join(INITS)}.")
        if self.init == "auto":
            set_("init", "he" if self.hidden == "relu" else "lecun")
        set_("batch_size", check_batch_size(self.batch_size))
        if self.lr is None:
            set_("lr", presets.default_lr(self.batch_size))
        check_hyperparameters(self.epochs, self.lr, self.seed)
        set_("val_size", check_val_size(self.val_size))
        if self.dtype not in DTYPES:
            raise ValueError(f"Unknown dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}.")
        backend = kernels.default_backend() if self.backend is None else self.backend
        if backend not in kernels.BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}: choose one of "
                             f"{', '.join(kernels.BACKENDS)}.")
        set_("backend", backend)
        if self.threads is not None and (isinstance(self.threads, bool)
                                         or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads {self.threads!r} must be a positive integer")
        if self.data not in DATA_SOURCES:
            raise ValueError(f"Unknown data source {self.data!r}: choose one of "
                             f"{', '.join(DATA_SOURCES)}.")
        every = self.checkpoint_every
        if isinstance(every, bool) or not isinstance(every, (int, float)) \
                or not math.isfinite(every) or every < 0:
            raise ValueError(f"checkpoint_every {every!r} must be a finite number of "
                             "seconds >= 0")

    # --- construction ------------------------------------------------------------------

    @classmethod
    def resolve(cls, preset: str | None = None, *, resume=None, **settings) -> "RunConfig":
        """The configuration of a run: ``preset`` (or the default) with ``settings`` applied.

        A setting given as None is not given. With ``resume`` (a checkpoint
        path), the checkpoint's stored configuration is the base instead:
        settings of the model and its training (`TRAINING_KEYS`) may only
        repeat it, ``epochs`` may raise the total, ``backend`` defaults to the
        stored one and ``save`` to ``resume``. Raises `ConfigError`, or
        `fastnn.modelio.ModelFileError` for a checkpoint that cannot be resumed.
        """
        unknown = sorted(set(settings) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown run settings: {', '.join(unknown)}")
        given = {key: value for key, value in settings.items() if value is not None}
        if resume is not None:
            return cls._resuming(resume, preset, given)
        try:
            merged = presets.resolve(preset, given)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        return cls(preset=preset, **merged)

    @classmethod
    def _resuming(cls, path, preset, given: dict) -> "RunConfig":
        _, meta, history = read_checkpoint(path)
        record = meta.get("config") or {}
        needed = ("digits", "layers", "hidden", "init", "batch_size", "lr", "epochs", "seed",
                  "val_size", "dtype")
        missing = [key for key in needed if key not in record]
        if missing:
            raise ModelFileError(f"{path} does not record its training configuration "
                                 f"({', '.join(missing)} missing), so it cannot be resumed")
        stored = cls.from_record(record)
        if preset is not None:
            given["preset"] = preset
        if given.get("init") == "auto":
            given["init"] = stored.init
        for name in TRAINING_KEYS:
            if name not in given:
                continue
            value = getattr(stored, name)
            mine = normal_digits(given[name]) if name == "digits" else given[name]
            mine = tuple(mine) if name == "layers" else mine
            if mine != value:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} {flag_text(given[name])} contradicts the checkpoint "
                                  f"{path}, which was trained with {flag} {flag_text(value)}; "
                                  "with --resume only --epochs may change")
        source = record.get("data")
        data = given.get("data", "auto")
        if source is not None:
            if data not in ("auto", source):
                raise ConfigError(f"--data {data} contradicts the checkpoint {path}, which was "
                                  f"trained on --data {source}")
            data = source
        done = len(history.epochs)
        epochs = given.get("epochs", stored.epochs)
        if epochs <= done:
            raise ConfigError(f"the checkpoint {path} has already completed {done} of "
                              f"{stored.epochs} epochs; give --epochs greater than {done} to "
                              "train further")
        free = {key: value for key, value in given.items() if key not in TRAINING_KEYS}
        free.update(epochs=epochs, data=data, resume=str(path),
                    backend=given.get("backend", record.get("backend")),
                    save=given.get("save", str(path)))
        return replace(stored, **free)

    @classmethod
    def from_record(cls, record: dict, **settings) -> "RunConfig":
        """The configuration a `record` describes, with ``settings`` for what it leaves out."""
        layers = record["layers"]
        stored = {"preset": record.get("preset"), "digits": tuple(record["digits"]),
                  "layers": tuple(layers[1:-1]), "hidden": record["hidden"],
                  "init": record["init"], "batch_size": record["batch_size"],
                  "lr": record["lr"], "epochs": record["epochs"], "seed": record["seed"],
                  "val_size": record["val_size"], "dtype": record["dtype"]}
        for key in ("backend", "data"):
            if record.get(key) is not None:
                stored[key] = record[key]
        return cls(**{**stored, **settings})

    # --- what the run records ----------------------------------------------------------

    @property
    def sizes(self) -> tuple:
        """Layer sizes of the network, input and output included."""
        return (N_PIXELS, *self.layers, 10 if self.digits == ALL_DIGITS else 1)

    def record(self) -> dict:
        """The JSON-able ``config`` stored in checkpoints and the metrics JSON."""
        return {"preset": self.preset, "digits": list(self.digits), "layers": list(self.sizes),
                "hidden": self.hidden,
                "output": "softmax" if self.digits == ALL_DIGITS else "sigmoid",
                "init": self.init, "batch_size": self.batch_size, "lr": self.lr,
                "epochs": self.epochs, "seed": self.seed, "val_size": self.val_size,
                "dtype": self.dtype, "backend": self.backend, "data": self.data}


def normal_digits(digits) -> tuple:
    """``digits`` as a checked tuple: from "all", "3,5" or a sequence of ints."""
    if isinstance(digits, str):
        return parse_digits(digits)
    return check_digits(tuple(digits))


def check_layers(layers) -> tuple:
    """Hidden layer sizes as a tuple of positive ints, or ValueError."""
    sizes = tuple(layers)
    if not sizes or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                            for n in sizes):
        raise ValueError(f"layer sizes {layers!r} must be one or more positive integers")
    return sizes


def check_batch_size(batch_size):
    """A positive int, or "full" (every training row per step)."""
    if batch_size == "full":
        return "full"
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size {batch_size!r} must be a positive integer or 'full'")
    return batch_size


def flag_text(value) -> str:
    """A setting as the command line spells it: ``all``, ``3,5`` or the value."""
    if isinstance(value, (tuple, list)):
        return "all" if tuple(value) == ALL_DIGITS else ",".join(map(str, value))
    return str(value)


def check_output(path, flag: str) -> None:
    """Raise `ConfigError` before training, not after it, if ``path`` cannot be written."""
    if path is None:
        return
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise ConfigError(f"{flag} {path} is a directory; give a file name such as "
                          f"{target / 'model.npz'}")
    if not folder.is_dir():
        raise ConfigError(f"{flag} {path}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{flag} {path}: directory {folder} is not writable")
