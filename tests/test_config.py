"""RunConfig: a training run described once, resolved in one place, stored and read back."""

import dataclasses

import pytest

from fastnn import ConfigError, RunConfig, presets
from fastnn.data import ALL_DIGITS
from fastnn.workflow import run

QUICK = dict(data="sample", backend="numpy", layers=(8,), epochs=2, seed=2, val_size=0.2)


def test_the_defaults_are_those_of_fastnn_train():
    config = RunConfig()
    assert (config.digits, config.layers, config.hidden, config.batch_size, config.lr,
            config.epochs) == (ALL_DIGITS, (128, 64), "relu", 64, 0.1, 10)
    assert (config.seed, config.val_size, config.dtype, config.data) == (0, 0.1, "float32", "auto")
    assert config.init == "he"  # "auto" is resolved: he for ReLU
    assert config.backend in ("numba", "numpy")  # the default backend, resolved


def test_a_preset_is_applied_then_the_settings_given_and_none_means_not_given():
    config = RunConfig.resolve("binary12", epochs=5, lr=None)
    tutorial = presets.PRESETS["binary12"]
    assert config.preset == "binary12"
    assert (config.digits, config.layers, config.hidden) == ((1, 2), (196,), "sigmoid")
    assert (config.batch_size, config.lr, config.epochs, config.init) == ("full", tutorial["lr"],
                                                                         5, "lecun")


def test_per_sample_sgd_defaults_to_a_smaller_learning_rate():
    assert RunConfig(batch_size=1).lr == presets.PER_SAMPLE_LR == 0.01
    assert RunConfig.resolve(batch_size=1).lr == 0.01
    assert RunConfig.resolve(batch_size=1, lr=0.3).lr == 0.3
    assert RunConfig.resolve("sgd").lr == presets.PRESETS["sgd"]["lr"]
    assert RunConfig(batch_size="full").lr == RunConfig(batch_size=2).lr == 0.1


def test_it_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().lr = 1.0


@pytest.mark.parametrize("settings,message", [
    ({"lr": 0}, "learning rate 0 must be a positive, finite number"),
    ({"epochs": 0}, "epochs 0 must be a positive integer"),
    ({"digits": (3, 3)}, "repeat a digit"),
    ({"digits": "5,x"}, "not a pair"),
    ({"layers": (16, 0)}, "must be one or more positive integers"),
    ({"batch_size": 0}, "batch size 0 must be a positive integer or 'full'"),
    ({"val_size": 1.0}, "a fraction must lie in (0, 1)"),
    ({"hidden": "tanh"}, "Unknown hidden activation 'tanh'"),
    ({"backend": "cuda"}, "Unknown backend 'cuda'"),
    ({"data": "cifar"}, "Unknown data source 'cifar'"),
    ({"checkpoint_every": -1}, "checkpoint_every -1 must be a finite number of seconds >= 0"),
])
def test_a_setting_out_of_range_is_a_config_error(settings, message):
    with pytest.raises(ConfigError) as caught:
        RunConfig(**settings)
    assert message in str(caught.value)


def test_an_unknown_preset_or_setting_is_refused():
    with pytest.raises(ConfigError, match="Unknown preset 'deep'"):
        RunConfig.resolve("deep")
    with pytest.raises(TypeError, match="unknown run settings: learning_rate"):
        RunConfig.resolve(learning_rate=0.1)


def test_the_record_round_trips():
    config = RunConfig.resolve("binary01", epochs=3, seed=7, val_size=500, dtype="float64",
                               backend="numpy", data="sample")
    record = config.record()
    assert record["layers"] == [784, 128, 64, 1] and record["output"] == "sigmoid"
    assert RunConfig.from_record(record) == config


def test_resuming_takes_the_checkpoint_configuration_and_only_epochs_may_grow(tmp_path):
    path = str(tmp_path / "ck.npz")
    run(RunConfig(**QUICK, save=path))
    resumed = RunConfig.resolve(resume=path, epochs=3, lr=0.1, checkpoint_every=0)
    assert (resumed.layers, resumed.seed, resumed.val_size, resumed.epochs) == ((8,), 2, 0.2, 3)
    assert (resumed.data, resumed.backend, resumed.save, resumed.checkpoint_every) == \
        ("sample", "numpy", path, 0)
    with pytest.raises(ConfigError, match=r"--lr 0\.5 contradicts the checkpoint .* with --lr "
                                          r"0\.1; with --resume only --epochs may change"):
        RunConfig.resolve(resume=path, lr=0.5)
    with pytest.raises(ConfigError, match="has already completed 2 of 2 epochs"):
        RunConfig.resolve(resume=path)
