"""The README's "Python API" example runs as written.

`EXAMPLE` is the text of that example; `test_the_readme_example_runs` runs
the first ```python block under the heading "## Python API" in README.md
itself, so the README cannot drift from working code.
"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
HEADING = "## Python API"

EXAMPLE = '''\
import numpy as np

import fastnn
from fastnn.images import to_mnist

# Data: full MNIST with fastnn.load_mnist() (found locally or downloaded),
# or the bundled 10,000/2,000 sample, which is always there.
data = fastnn.load_mnist("sample")
task = fastnn.make_task(data, val_size=0.1, seed=0)  # x: (n, 784) float32 in [0, 1]
print(task.x_train.shape, task.labels_train[:5])

# A 784-128-64-10 network: ReLU hidden layers, softmax output.
net = fastnn.Network([784, 128, 64, 10], hidden="relu", seed=0)


def report(record, history):
    print(f"epoch {record.epoch}: loss {record.loss:.3f}, "
          f"val {record.val_accuracy:.2%}, {record.seconds:.2f}s")


history = net.fit(task.x_train, task.labels_train, epochs=3, batch_size=64, lr=0.1,
                  validation=(task.x_val, task.labels_val), on_epoch_end=report)
accuracy = net.score(task.x_test, task.labels_test)
print(f"test accuracy {accuracy:.2%}")
assert accuracy > 0.9 and len(history.epochs) == 3

# Predictions: labels (n,), or class probabilities (n, 10) whose rows sum to 1.
probabilities = net.predict_proba(task.x_test[:5])
print(net.predict(task.x_test[:5]), task.labels_test[:5], probabilities.sum(axis=1))

# Model files: .npz, written atomically, loaded without pickle.
net.save("digits.npz")
same = fastnn.Network.load("digits.npz")
assert np.array_equal(same.predict(task.x_test), net.predict(task.x_test))

# Any picture of a digit, MNIST-style: here a test digit drawn dark on light.
picture = 255 - data.test_images[0].reshape(28, 28)
print("picture:", net.predict(to_mnist(picture).ravel())[0], "true:", data.test_labels[0])

# A digit pair: one sigmoid output; full-batch gradient descent.
pair = fastnn.make_task(data, (3, 8))
binary = fastnn.Network([784, 32, 1], hidden="sigmoid", classes=(3, 8), seed=0)
binary.fit(pair.x_train, pair.labels_train, epochs=50, batch_size="full", lr=1.0)
print(f"3 vs 8: {binary.score(pair.x_test, pair.labels_test):.2%}")
'''


def readme_example(text: str) -> str | None:
    """The first ```python block of the README's "## Python API" section; None without one."""
    lines = text.splitlines()
    if HEADING not in (line.rstrip() for line in lines):
        return None
    start = [line.rstrip() for line in lines].index(HEADING) + 1
    section, fenced = [], False
    for line in lines[start:]:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,2} ", line):  # the next section (not a comment)
            break
        section.append(line)
    block = re.search(r"^```python\n(.*?)^```", "\n".join(section) + "\n", re.S | re.M)
    assert block, f"README.md's {HEADING!r} section has no ```python block"
    return block.group(1)


def run(code: str, folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)  # the example writes digits.npz into the current directory
    exec(compile(code, "<example>", "exec"), {"__name__": "__example__"})
    assert (folder / "digits.npz").is_file()


def test_the_example_runs(tmp_path, monkeypatch, capsys):
    run(EXAMPLE, tmp_path, monkeypatch)
    out = capsys.readouterr().out
    assert "test accuracy" in out and "3 vs 8:" in out


def test_the_readme_example_runs(tmp_path, monkeypatch):
    code = readme_example(README.read_text(encoding="utf-8")) if README.is_file() else None
    if code is None:
        pytest.skip(f"README.md has no {HEADING!r} heading yet")
    run(code, tmp_path, monkeypatch)


def test_the_extraction_takes_the_first_python_block_of_the_section():
    text = ("# fastnn\n```python\nnot this\n```\n## Python API\nprose\n```bash\nnor this\n"
            "```\n```python\n# a comment\nx = 1\n```\n```python\ny = 2\n```\n## Next\n")
    assert readme_example(text) == "# a comment\nx = 1\n"
    pasted = f"# fastnn\n## Python API\n\nProse.\n\n```python\n{EXAMPLE}```\n\n## Layout\n"
    assert readme_example(pasted) == EXAMPLE
    assert readme_example("# fastnn\n## Install\n") is None
    with pytest.raises(AssertionError, match="no ```python block"):
        readme_example("## Python API\ntext only\n## Next\n```python\nz = 3\n```\n")
