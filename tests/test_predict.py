"""`fastnn predict` and the MNIST-style preprocessing of `fastnn.images`."""

import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from fastnn import images
from fastnn.cli import main
from fastnn.data import make_task
from fastnn.network import Network


@pytest.fixture(scope="session")
def trained(tmp_path_factory, sample_data):
    """A 784-64-10 model trained on the sample (numpy backend, about a second), saved."""
    task = make_task(sample_data, val_size=0, seed=0)
    net = Network([784, 64, 10], seed=0)
    net.fit(task.x_train, task.labels_train, epochs=5, batch_size=32, lr=0.1, backend="numpy")
    path = tmp_path_factory.mktemp("predict") / "digits.npz"
    net.save(path)
    return net, path


@pytest.fixture(scope="session")
def test_digits(trained, sample_data):
    """One test image per digit that the model gets right with confidence, as uint8 (28, 28)."""
    net, _ = trained
    x = sample_data.test_images
    probs = net.predict_proba(x / 255)
    chosen = {}
    for row in np.argsort(-probs.max(axis=1)):
        label = int(sample_data.test_labels[row])
        if label not in chosen and net.classes[probs[row].argmax()] == label:
            chosen[label] = x[row].reshape(28, 28)
        if len(chosen) == 10:
            break
    return [(label, chosen[label]) for label in range(10)]


def photo_like(digit, *, scale=4, shape=(150, 190), at=(12, 70), paper=215, ink=40, seed=0):
    """Dark ink on light, noisy paper: the digit enlarged and placed off-centre, as RGB."""
    big = np.kron(digit / 255, np.ones((scale, scale)))
    canvas = np.full(shape, float(paper))
    rows, cols = big.shape
    canvas[at[0]:at[0] + rows, at[1]:at[1] + cols] -= big * (paper - ink)
    canvas += np.random.default_rng(seed).normal(0, 4, shape)
    gray = np.clip(canvas, 0, 255).astype(np.uint8)
    return np.stack([gray, gray, np.clip(gray.astype(int) + 10, 0, 255).astype(np.uint8)],
                    axis=-1)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "fastnn", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FASTNN_BACKEND": "numpy"})


# --- preprocessing, without Pillow ---------------------------------------------------------

def test_an_mnist_digit_comes_back_nearly_unchanged(sample_data):
    digits = sample_data.test_images[:300].reshape(-1, 28, 28)
    diffs = [np.abs(images.to_mnist(d) - d / 255).mean() for d in digits]
    assert np.median(diffs) < 0.01 and np.mean(diffs) < 0.02


def test_the_digit_fits_a_20_pixel_box_keeping_its_aspect_and_is_centred_by_mass():
    bar = np.zeros((100, 60), np.uint8)
    bar[10:90, 25:45] = 255  # 80 tall, 20 wide, off-centre
    out = images.to_mnist(bar)
    assert out.shape == (28, 28) and out.dtype == np.float32
    rows = np.flatnonzero(out.max(axis=1) > 0.5)
    cols = np.flatnonzero(out.max(axis=0) > 0.5)
    assert rows.size == 20 and cols.size == 5  # 80x20 scaled by 1/4
    assert out.max() == pytest.approx(1.0)
    r, c = images.centre_of_mass(out)
    assert abs(r - 14) <= 0.5 and abs(c - 14) <= 0.5


def test_a_light_background_is_inverted_and_a_dark_one_is_not(sample_data):
    digit = sample_data.test_images[0].reshape(28, 28)
    reference = images.to_mnist(digit)
    assert np.allclose(images.to_mnist(255 - digit), reference, atol=0.02)
    assert np.allclose(images.to_mnist((255 - digit) / 255.0), reference, atol=0.02)
    # transparent background, opaque dark strokes: the alpha channel marks the digit
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = digit
    assert np.allclose(images.to_mnist(rgba), reference, atol=0.02)


def test_a_small_digit_in_a_corner_is_moved_to_the_centre_and_enlarged(sample_data):
    digit = sample_data.test_images[3].reshape(28, 28)
    small = images.resize(digit / 255, (14, 14))
    corner = np.zeros((28, 28))
    corner[:14, 14:] = small
    out = images.to_mnist(corner)
    r, c = images.centre_of_mass(out)
    assert abs(r - 14) <= 0.5 and abs(c - 14) <= 0.5
    assert np.flatnonzero(out.max(axis=0) > 0.2).size > 10


def test_resampling_preserves_constant_images_and_averages_when_shrinking():
    assert np.allclose(images.resize(np.full((90, 37), 0.3), (20, 8)), 0.3)
    assert np.allclose(images.resample_matrix(40, 20).sum(axis=1), 1)
    checker = np.indices((40, 40)).sum(axis=0) % 2
    halved = images.resize(checker.astype(float), (20, 20))
    assert np.allclose(halved[1:-1, 1:-1], 0.5)  # the filter is cut short at the edges
    assert np.allclose(halved, 0.5, atol=0.02)


def test_float_pixels_may_overshoot_by_rounding_only():
    scaled = (np.arange(784, dtype=np.float64).reshape(28, 28) % 256) / 255 * (1 + 1e-9)
    assert images.to_unit(scaled).max() == 1.0
    with pytest.raises(ValueError, match="must lie in"):
        images.to_unit(np.full((2, 2), 1.001))


@pytest.mark.parametrize("bad,message", [
    (np.zeros((28, 28), np.uint8), "no digit found"),
    (np.full((28, 28), 1.5), "must lie in [0, 1]"),
    (np.full((28, 28), np.nan), "NaN"),
    (np.zeros((28, 28), np.int64), "not supported"),
    (np.zeros((4, 28, 28, 3), np.uint8), "must be (h, w)"),
])
def test_unusable_pixels_are_refused_with_a_reason(bad, message):
    with pytest.raises(ValueError) as err:
        images.to_mnist(bad)
    assert message in str(err.value)


@pytest.mark.parametrize("shape,count", [((28, 28), 1), ((784,), 1), ((5, 28, 28), 5),
                                         ((3, 784), 3)])
def test_npy_arrays_hold_one_image_or_a_stack(shape, count):
    parts = images.split_array(np.zeros(shape, np.uint8))
    assert len(parts) == count and all(p.shape == (28, 28) for p in parts)


@pytest.mark.parametrize("shape", [(27, 28), (2, 783), (0, 784), (2, 2, 28, 28)])
def test_other_array_shapes_are_refused(shape):
    with pytest.raises(ValueError):
        images.split_array(np.zeros(shape, np.uint8))


# --- the command --------------------------------------------------------------------------

def test_npy_stacks_and_single_arrays_are_classified(trained, test_digits, tmp_path, capsys):
    _, model = trained
    labels = [label for label, _ in test_digits]
    stack = np.stack([digit for _, digit in test_digits])  # (10, 28, 28) uint8
    np.save(tmp_path / "stack.npy", stack)
    np.save(tmp_path / "flat.npy", stack.reshape(10, 784).astype(np.float32) / 255)
    np.save(tmp_path / "seven.npy", stack[7].astype(np.float64) / 255)
    assert main(["predict", str(model), str(tmp_path / "stack.npy"), str(tmp_path / "flat.npy"),
                 str(tmp_path / "seven.npy"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    predictions = report["predictions"]
    assert [p["predicted"] for p in predictions] == labels + labels + [7]
    assert [p["index"] for p in predictions] == list(range(10)) * 2 + [None]
    for p in predictions:
        top = [t["probability"] for t in p["top"]]
        assert len(top) == 3 and top == sorted(top, reverse=True) and sum(top) <= 1 + 1e-6
        assert p["top"][0]["digit"] == p["predicted"]

    assert main(["predict", str(model), str(tmp_path / "seven.npy")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'seven.npy'}: 7 (") and line.count("%") == 3


def test_photo_like_images_are_classified(trained, test_digits, tmp_path):
    pil = pytest.importorskip("PIL.Image")
    _, model = trained
    files, expected = [], []
    for label, digit in test_digits:
        # dark on light noisy paper, enlarged, off-centre: inverted, cropped, centred
        photo = tmp_path / f"photo{label}.png"
        pil.fromarray(photo_like(digit, seed=label)).save(photo)
        # light on black, a corner of a larger canvas, as JPEG
        corner = np.zeros((60, 60), np.uint8)
        corner[2:30, 31:59] = digit
        jpeg = tmp_path / f"corner{label}.jpg"
        pil.fromarray(corner).save(jpeg, quality=90)
        files += [photo, jpeg]
        expected += [label, label]
    result = run_cli("predict", model, *files, "--json")
    assert result.returncode == 0, result.stderr
    predicted = [p["predicted"] for p in json.loads(result.stdout)["predictions"]]
    assert predicted == expected


def test_a_binary_model_reports_its_two_digits(tmp_path, sample_data, test_digits, capsys):
    task = make_task(sample_data, (3, 8), val_size=0)
    net = Network([784, 16, 1], classes=(3, 8), hidden="sigmoid", seed=0)
    net.fit(task.x_train, task.labels_train, epochs=20, batch_size="full", lr=1.0,
            backend="numpy")
    net.save(tmp_path / "pair.npz")
    np.save(tmp_path / "eight.npy", test_digits[8][1])
    assert main(["predict", str(tmp_path / "pair.npz"), str(tmp_path / "eight.npy"),
                 "--json"]) == 0
    (prediction,) = json.loads(capsys.readouterr().out)["predictions"]
    assert [t["digit"] for t in prediction["top"]] == [8, 3]
    assert sum(t["probability"] for t in prediction["top"]) == pytest.approx(1)


def test_no_preprocess_feeds_arrays_as_they_are(trained, tmp_path, capsys):
    net, model = trained
    noise = np.random.default_rng(1).random((28, 28)).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise)
    assert main(["predict", str(model), str(tmp_path / "noise.npy"), "--no-preprocess",
                 "--json", "--top", "10", "--backend", "numpy"]) == 0
    top = json.loads(capsys.readouterr().out)["predictions"][0]["top"]
    expected = net.predict_proba(noise.ravel(), "numpy")[0]
    assert {t["digit"]: t["probability"] for t in top} == pytest.approx(
        dict(enumerate(expected.tolist())))


@pytest.mark.parametrize("name,content,message", [
    ("blank.npy", np.zeros((28, 28), np.uint8), "blank.npy: no digit found"),
    ("wide.npy", np.zeros((28, 30), np.uint8), "got shape (28, 30)"),
    ("scaled.npy", np.full((28, 28), 200.0), "must lie in [0, 1]"),
    ("notes.txt", None, "unknown file type .txt"),
    ("missing.png", None, "missing.png: no such file"),
    ("broken.png", b"not a png", "not a readable image"),
    ("broken.npy", b"not an array", "not a readable .npy file"),
])
def test_bad_inputs_give_one_line_and_exit_code_1(trained, tmp_path, name, content, message):
    _, model = trained
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif content is not None:
        path.write_bytes(content)
    elif name.endswith(".txt"):
        path.write_text("7")
    result = run_cli("predict", model, path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


def test_npy_works_without_pillow_and_images_say_how_to_get_it(trained, tmp_path):
    _, model = trained
    np.save(tmp_path / "one.npy", np.eye(28, dtype=np.uint8) * 255)
    (tmp_path / "one.png").write_bytes(b"\x89PNG")
    script = ("import sys; sys.modules['PIL'] = None; from fastnn.cli import main; "
              "sys.exit(main(sys.argv[1:]))")
    common = [sys.executable, "-c", script, "predict", str(model)]
    ok = subprocess.run([*common, str(tmp_path / "one.npy")], capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0 and ok.stdout.startswith(str(tmp_path / "one.npy"))
    missing = subprocess.run([*common, str(tmp_path / "one.png")], capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert 'pip install "fastnn[images]"' in missing.stderr.strip().splitlines()[-1]


# --- images too large, or damaged: one line, exit 1, bounded memory -------------------------

def png_header(width, height):
    """The first bytes of a greyscale PNG of ``width`` x ``height``: enough for its size to be read."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.mark.parametrize("width,height,size", [
    # Pillow refuses to open it as a possible "decompression bomb"
    (20000, 20000, "more than 179 megapixels (Pillow refuses it as a possible decompression bomb)"),
    # Pillow warns, and would decode it
    (12000, 8000, "more than 89 megapixels (Pillow refuses it as a possible decompression bomb)"),
    (9000, 6000, "9000x6000 pixels (54 megapixels)"),  # Pillow would decode it without a word
])
def test_an_image_too_large_to_decode_is_refused_in_one_line(trained, tmp_path, capsys, width,
                                                             height, size):
    pytest.importorskip("PIL.Image")
    _, model = trained
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(width, height))
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(model), str(path)])
    assert stop.value.code == 1
    assert capsys.readouterr().err == (
        f"fastnn: error: {path}: the image is {size}; fastnn predict reads images of up to 50 "
        "megapixels: scale it down, or crop it to the digit\n")


# Reports the peak memory (MiB) of a `fastnn` command on stderr's last line.
# The peak is this process's own: VmHWM of /proc/self/status, not ru_maxrss, which
# Linux carries over from the parent (here pytest, hundreds of MB) across fork and exec.
PEAK = ("import re, resource, sys\nfrom fastnn.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
        "except SystemExit as stop:\n    code = stop.code\n"
        "try:\n    status = open('/proc/self/status').read()\n"
        "    peak = int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) // 1024\n"
        "except OSError:\n    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
        "print(peak, file=sys.stderr)\n"
        "sys.exit(code)")


def peak_memory(*args):
    result = subprocess.run([sys.executable, "-c", PEAK, *map(str, args)], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "FASTNN_BACKEND": "numpy"})
    *lines, peak = result.stderr.strip().splitlines()
    return result.returncode, result.stdout, lines, int(peak)


def test_a_large_photo_is_read_in_bounded_memory_and_still_classified(trained, test_digits,
                                                                      tmp_path):
    pil = pytest.importorskip("PIL.Image")
    _, model = trained
    label, digit = test_digits[4]
    photo = np.full((4000, 6000), 230, np.uint8)  # 24 megapixels of light paper
    photo[600:3400, 1500:4300] -= (np.kron(digit, np.ones((100, 100), np.uint8)) * 0.8).astype(
        np.uint8)
    pil.fromarray(photo).save(tmp_path / "big.png", compress_level=1)
    pil.fromarray(photo[600:3400:100, 1500:4300:100]).save(tmp_path / "small.png")  # baseline
    code, _, _, baseline = peak_memory("predict", model, tmp_path / "small.png")
    assert code == 0
    code, out, err, peak = peak_memory("predict", model, tmp_path / "big.png", "--json")
    assert code == 0, err
    assert json.loads(out)["predictions"][0]["predicted"] == label
    # Decoding takes 24 MB; working on it in float64 at full size would take several 100 MB.
    assert peak - baseline < 100, (peak, baseline)


def test_a_huge_npy_array_is_refused_without_reading_it(trained, tmp_path):
    _, model = trained
    path = tmp_path / "huge.npy"
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(
            file, {"descr": "|u1", "fortran_order": False, "shape": (30000, 30000)})
        file.truncate(file.tell() + 30000 * 30000)  # 900 MB of zeros that take no disk space
    code, _, err, peak = peak_memory("predict", model, path)
    assert code == 1
    assert err[-1] == (f"fastnn: error: {path}: an array must be one image (28, 28) or (784,), "
                       "or a stack (n, 28, 28) or (n, 784); got shape (30000, 30000)")
    assert peak < 600, peak


def damaged(kind):
    """Image files that Pillow opens but cannot decode, each failing in its own way."""
    pil = pytest.importorskip("PIL.Image")
    pixels = (np.arange(40 * 30) % 256).astype(np.uint8).reshape(40, 30)
    buffer = io.BytesIO()
    pil.fromarray(pixels).save(buffer, "BMP" if kind == "palette.bmp" else "PNG")
    data = bytearray(buffer.getvalue())
    if kind == "short-ihdr.png":  # the header chunk claims 4 bytes, not 13: ValueError
        data[8:12] = struct.pack(">I", 4)
    elif kind == "short-idat.png":  # the image data claims 8 bytes: SyntaxError, at decoding
        at = data.index(b"IDAT") - 4
        data[at:at + 4] = struct.pack(">I", 8)
    elif kind == "palette.bmp":  # 300 palette colours in an 8-bit image: ValueError
        data[46:50] = struct.pack("<I", 300)
    return bytes(data)


@pytest.mark.parametrize("kind", ["short-ihdr.png", "short-idat.png", "palette.bmp"])
def test_a_damaged_image_is_named_in_one_line(trained, tmp_path, capsys, kind):
    _, model = trained
    path = tmp_path / kind
    path.write_bytes(damaged(kind))
    with pytest.raises(SystemExit) as stop:
        main(["predict", str(model), str(path)])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fastnn: error: {path}: not a readable image (") and err.count("\n") == 1


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_every_truncation_of_an_image_is_read_or_named(test_digits, tmp_path, fmt):
    pil = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    pil.fromarray(np.kron(255 - test_digits[3][1], np.ones((2, 2), np.uint8))).save(buffer, fmt)
    whole = buffer.getvalue()
    path = tmp_path / f"digit.{fmt.lower()}"
    for end in range(0, len(whole), max(1, len(whole) // 150)):
        path.write_bytes(whole[:end])
        try:
            images.read_inputs(path)
        except ValueError as err:
            assert str(err).startswith(f"{path}: "), str(err)
