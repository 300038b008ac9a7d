"""Shared fixtures. Data comes from the bundled sample (always present) unless
a test asks for full MNIST, which it finds through $FASTNN_DATA_DIR."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fastnn import mnist
from fastnn.data import make_task


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache or the network from a test."""
    monkeypatch.setenv(mnist.CACHE_DIR_ENV, str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv(mnist.MIRRORS_ENV, "http://127.0.0.1:9/")


@pytest.fixture(scope="session")
def sample_data():
    return mnist.load_sample()


@pytest.fixture(scope="session")
def digits_task(sample_data):
    """10-class task on the bundled sample: 9,000 train / 1,000 val / 2,000 test."""
    return make_task(sample_data, val_size=0.1, seed=0)


@pytest.fixture(scope="session")
def pair_task(sample_data):
    """The 0-vs-1 task on the bundled sample."""
    return make_task(sample_data, (0, 1), val_size=0.1, seed=0)


@pytest.fixture
def small_xy(digits_task):
    """600 training rows: enough to see learning, small enough to be instant."""
    return digits_task.x_train[:600], digits_task.labels_train[:600]


def same_parameters(a, b) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a.weights + a.biases, b.weights + b.biases))


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load_script(name):
    """``scripts/<name>.py`` imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
