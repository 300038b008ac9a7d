"""Reading full MNIST from its four gzipped IDX files, validated (about 0.3 s expected).

The test suite checks what is read, never how fast; this times it.
"""

from __future__ import annotations

from fastnn import mnist


def test_load_full_mnist(benchmark, mnist_dir):
    benchmark.group = "load full MNIST"
    data = benchmark.pedantic(mnist.load, args=("mnist", mnist_dir), kwargs={"download": False},
                              rounds=5, warmup_rounds=1)
    assert data.train_images.shape == (60_000, 784)
