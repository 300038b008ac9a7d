"""Training configurations as plain data.

``DEFAULT`` is what ``fastnn train`` runs with no preset, at the learning
rate `default_lr` gives its batch size. The named presets
reproduce the five from-scratch tutorials fastnn grew from, including their
initialisation (randn / sqrt(fan_in), fastnn's "lecun"); for full-batch
training one epoch is one gradient-descent iteration.
"""

from __future__ import annotations

DEFAULT = {
    "digits": "all",
    "layers": (128, 64),
    "hidden": "relu",
    "batch_size": 64,
    "epochs": 10,
    "init": "auto",
}

#: The learning rate of a run of batches (two rows or more) without a preset
#: or a rate given: see `default_lr`.
BATCH_LR = 0.1

#: The learning rate of per-sample SGD (batch size 1) when none is given.
#: `BATCH_LR` suits batches of four and more; one image's gradient at 0.1
#: wrecks a ReLU net (the bundled sample, 784-128-64-10 ReLU, 10 epochs:
#: 19.8% test accuracy at 0.1, 96.5% at 0.01, 95.6% at 0.02; batches of 4, 8
#: and 16 at 0.1: 95.4-95.8%).
PER_SAMPLE_LR = 0.01


def default_lr(batch_size) -> float:
    """The learning rate of a run of ``batch_size`` rows per step when none is given."""
    return PER_SAMPLE_LR if batch_size == 1 else BATCH_LR


PRESETS = {
    "binary01": {
        "description": "0 vs 1, 784-128-64-1 ReLU, full batch, lr 0.01, 250 iterations",
        "digits": "0,1", "layers": (128, 64), "hidden": "relu",
        "batch_size": "full", "lr": 0.01, "epochs": 250, "init": "lecun",
    },
    "binary12": {
        "description": "1 vs 2, 784-196-1 sigmoid, full batch, lr 0.1, 1000 iterations",
        "digits": "1,2", "layers": (196,), "hidden": "sigmoid",
        "batch_size": "full", "lr": 0.1, "epochs": 1000, "init": "lecun",
    },
    "relu10": {
        "description": "10 digits, 784-10-10 ReLU, full batch, lr 0.1, 500 iterations",
        "digits": "all", "layers": (10,), "hidden": "relu",
        "batch_size": "full", "lr": 0.1, "epochs": 500, "init": "lecun",
    },
    "sgd": {
        "description": "10 digits, 784-128-64-10 sigmoid, per-sample SGD, lr 0.001, 10 epochs",
        "digits": "all", "layers": (128, 64), "hidden": "sigmoid",
        "batch_size": 1, "lr": 0.001, "epochs": 10, "init": "lecun",
    },
    "minibatch": {
        "description": "10 digits, 784-10-10 sigmoid, batch 64, lr 0.1, 100 epochs",
        "digits": "all", "layers": (10,), "hidden": "sigmoid",
        "batch_size": 64, "lr": 0.1, "epochs": 100, "init": "lecun",
    },
}


def resolve(preset: str | None, overrides: dict) -> dict:
    """The default (or ``preset``) settings with every non-None override applied.

    `DEFAULT` names no learning rate: without a preset or one given,
    `fastnn.config.RunConfig` takes `default_lr` of the batch size.
    """
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}: choose one of {', '.join(PRESETS)}.")
    settings = dict(DEFAULT if preset is None else PRESETS[preset])
    settings.pop("description", None)
    settings.update({key: value for key, value in overrides.items() if value is not None})
    return settings
