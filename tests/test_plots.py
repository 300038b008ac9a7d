"""PNG plots: train --plot-dir, samples, the benchmark figure, and the hint without matplotlib."""

import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from fastnn import plots
from fastnn.cli import main
from fastnn.train import EpochRecord

pytest.importorskip("matplotlib")  # the "plots" extra (installed by the "test" extra)

QUICK = ["--data", "sample", "--backend", "numpy", "--layers", "32", "--epochs", "3"]
NO_MATPLOTLIB = ("import sys; sys.modules['matplotlib'] = None; from fastnn.cli import main; "
                 "sys.exit(main(sys.argv[1:]))")


def png_size(path) -> tuple:
    """(width, height) from a PNG's header; fails unless the file is a PNG."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR", f"{path} is no PNG"
    return struct.unpack(">II", header[16:24])


def pixels(path) -> np.ndarray:
    from matplotlib.image import imread

    return imread(path)


def test_train_plot_dir_writes_curves_misclassified_digits_and_confusion(tmp_path, capsys):
    out = tmp_path / "plots" / "run1"  # created, parents too
    assert main(["train", *QUICK, "--plot-dir", str(out)]) == 0
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted(plots.TRAINING_PLOTS.values())
    assert str(out / "curves.png") in err
    assert png_size(out / "curves.png") == (1000, 400)
    assert png_size(out / "confusion.png") == (700, 600)
    # about 10% of the 2,000 test digits are wrong after 3 epochs: the grid shows 40
    assert png_size(out / "misclassified.png") == plots.grid_pixels(40)
    for name in plots.TRAINING_PLOTS.values():
        image = pixels(out / name)
        assert image[..., :3].std() > 0.05, f"{name} looks blank"


def test_a_digit_pair_gets_a_smaller_confusion_matrix(tmp_path):
    assert main(["train", "--preset", "binary01", "--epochs", "5", "--data", "sample",
                 "--backend", "numpy", "-q", "--plot-dir", str(tmp_path)]) == 0
    assert png_size(tmp_path / "confusion.png") == (500, 400)
    assert png_size(tmp_path / "curves.png") == (1000, 400)


def test_samples_draws_the_requested_digits(tmp_path):
    out = tmp_path / "grid.png"
    result = subprocess.run([sys.executable, "-m", "fastnn", "samples", "--out", str(out),
                             "--count", "12", "--digits", "3,5", "--data", "sample",
                             "--split", "test", "--seed", "4"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out} (12 digits)"
    assert png_size(out) == plots.grid_pixels(12) == (440, 445)


def test_pick_samples_honours_digits_count_and_seed(sample_data):
    labels = sample_data.train_labels
    rows = plots.pick_samples(labels, (3, 5), 30, seed=1)
    assert rows.size == 30 and set(labels[rows]) <= {3, 5}
    assert list(labels[rows]) == sorted(labels[rows])
    assert np.array_equal(rows, plots.pick_samples(labels, (3, 5), 30, seed=1))
    assert not np.array_equal(rows, plots.pick_samples(labels, (3, 5), 30, seed=2))
    few = np.array([1, 1, 2])
    assert list(plots.pick_samples(few, (1,), 10)) == [0, 1]
    with pytest.raises(ValueError, match="between 1 and"):
        plots.pick_samples(labels, (3,), plots.MAX_SAMPLES + 1)


@pytest.mark.parametrize("args,message", [
    (["--count", "0"], "must be a positive integer"),
    (["--digits", "3,11"], "must lie in 0-9"),
    (["--count", "500"], "between 1 and 200"),
])
def test_samples_refuses_bad_options(tmp_path, args, message):
    result = subprocess.run([sys.executable, "-m", "fastnn", "samples", "--out",
                             str(tmp_path / "x.png"), "--data", "sample", *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x.png").exists()


def test_the_benchmark_figure_for_a_list_of_records(tmp_path):
    records = [{"impl": impl, "batch_size": size, "median_s": seconds / speed}
               for impl, speed in (("numpy", 1), ("numba", 12))
               for size, seconds in ((1, 30.0), ("full", 0.5), (64, 2.0))]
    path = plots.plot_epoch_times(records, tmp_path / "bench.png", title="2 cores")
    assert path == tmp_path / "bench.png" and png_size(path) == (900, 500)
    with pytest.raises(ValueError, match="lacks median_s"):
        plots.plot_epoch_times([{"impl": "numpy", "batch_size": 1}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no benchmark records"):
        plots.plot_epoch_times([], tmp_path / "x.png")


def test_history_plots_accept_records_without_validation(tmp_path):
    history = [EpochRecord(e, 1 / e, 0.5 + e / 100, None, 0.1) for e in range(1, 301)]
    assert png_size(plots.plot_history(history, tmp_path / "h.png")) == (1000, 400)
    with pytest.raises(ValueError, match="no epochs"):
        plots.plot_history([], tmp_path / "empty.png")


def test_no_misclassified_digits_still_gives_a_picture(tmp_path):
    x = np.zeros((5, 784), np.float32)
    path = plots.plot_misclassified(x, [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], tmp_path / "none.png")
    assert png_size(path) == (600, 200)


def run_without_matplotlib(*args, cwd):
    return subprocess.run([sys.executable, "-c", NO_MATPLOTLIB, *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "FASTNN_BACKEND": "numpy"})


def test_without_matplotlib_train_stops_before_training_with_a_hint(tmp_path):
    result = run_without_matplotlib("train", *QUICK, "--plot-dir", "out", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "epoch" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'fastnn: error: --plot-dir needs matplotlib, which is not installed: '
        'pip install "fastnn[plots]"')
    assert not (tmp_path / "out").exists()
    plain = run_without_matplotlib("train", *QUICK, "--epochs", "1", "-q", cwd=tmp_path)
    assert plain.returncode == 0 and plain.stdout.startswith("test accuracy")


def test_without_matplotlib_samples_gives_the_hint(tmp_path):
    result = run_without_matplotlib("samples", "--out", "s.png", "--data", "sample",
                                    cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert 'pip install "fastnn[plots]"' in result.stderr.strip().splitlines()[-1]


def test_an_unusable_plot_dir_fails_before_training(tmp_path):
    (tmp_path / "taken").write_text("")
    result = subprocess.run([sys.executable, "-m", "fastnn", "train", *QUICK, "--plot-dir",
                             str(tmp_path / "taken")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "epoch" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"fastnn: error: plot directory {tmp_path / 'taken'} is a file, not a directory")


def test_a_grid_of_one_digit_is_still_wide_enough_for_its_title(tmp_path):
    x = np.zeros((3, 784), np.float32)
    path = plots.plot_misclassified(x, [0, 1, 2], [1, 1, 2], tmp_path / "one.png")
    title = "1 of 3 test images misclassified"
    assert png_size(path) == plots.grid_pixels(1, title=title) == (328, 175)
    ink = pixels(path)[:40, :, :3].min(axis=2) < 0.5  # the title's dark pixels
    columns = np.flatnonzero(ink.any(axis=0))
    assert columns.size and columns[0] > 0 and columns[-1] < 327  # not cut at either side
