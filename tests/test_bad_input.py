"""Every bad input gets one clear line naming the problem, and the right exit code.

The CLI table runs each case through ``python -m fastnn`` in its own process,
as a user would (all cases are started up front, a few at a time, so the table
costs a few seconds). Exit codes: 2 for a usage error (a bad flag or value),
1 for a bad file or a failed run; never a traceback.
"""

import gzip
import os
import re
import struct
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from fastnn import presets
from fastnn.cli import main
from fastnn.data import check_digits, parse_digits
from fastnn.modelio import save_model
from fastnn.network import Network
from fastnn.train import fit

# --- files to feed the CLI -----------------------------------------------------------------

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def mnist_dir(folder: Path, breaker=None) -> Path:
    """Small valid MNIST look-alikes, gzipped, then ``breaker(folder)`` spoils one of them."""
    rng = np.random.default_rng(0)
    arrays = {
        MNIST_NAMES[0]: rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        MNIST_NAMES[1]: (np.arange(40) % 10).astype(np.uint8),
        MNIST_NAMES[2]: rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        MNIST_NAMES[3]: (np.arange(20) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True)
    for name, array in arrays.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    if breaker is not None:
        breaker(folder)
    return folder


def truncate(folder):
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])


def html_page(folder):
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(
        b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n")


def wrong_magic(folder):
    images = np.zeros((20, 28, 28), np.uint8)
    content = bytearray(idx_bytes(images))
    content[2] = 0x0D  # float32 instead of unsigned byte
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(content)))


def short_labels(folder):
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(19, np.uint8))))


def declared_too_many(folder):
    content = idx_bytes(np.zeros(20, np.uint8))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(content[:-5]))


def corrupt_gzip(folder):
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b" + bytes(range(200)))


def empty_file(folder):
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")


def model_files(folder: Path) -> None:
    """Good and bad model files for ``evaluate`` and ``--resume``."""
    net = Network([784, 8, 10], seed=1)
    save_model(folder / "good.npz", net)
    good = (folder / "good.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(good[:len(good) // 2])
    (folder / "text.npz").write_text("these are not the weights you are looking for\n")
    (folder / "empty.npz").write_bytes(b"")
    np.savez(folder / "foreign.npz", w=np.zeros(3))
    np.savez(folder / "pickled.npz", meta=np.array([{"format": "fastnn-model"}], dtype=object))
    with zipfile.ZipFile(folder / "good.npz") as source, \
            zipfile.ZipFile(folder / "tampered.npz", "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "weights_0.npy":
                data = data[:-4] + np.float32(0.5).tobytes()
            target.writestr(item, data)
    save_model(folder / "pair.npz", Network([784, 4, 1], classes=(3, 7)))
    (folder / "a-directory.npz").mkdir()


# --- the table ---------------------------------------------------------------------------------

QUICK = ["--data", "sample", "--backend", "numpy", "--layers", "8", "--epochs", "1"]
FAKE = ["--data", "mnist", "--backend", "numpy", "--layers", "8", "--epochs", "1",
        "--batch-size", "4", "--data-dir"]
USAGE, FAILURE = 2, 1

# (id, args, exit code, text the last stderr line must contain). {d} is the case's folder.
CASES = [
    # learning rate, epochs, batch size
    ("lr-zero", ["train", "--lr", "0"], USAGE, "argument --lr: '0' must be a positive, finite number"),
    ("lr-negative", ["train", "--lr=-0.1"], USAGE, "'-0.1' must be a positive, finite number"),
    ("lr-nan", ["train", "--lr", "nan"], USAGE, "'nan' must be a positive, finite number"),
    ("lr-inf", ["train", "--lr", "inf"], USAGE, "'inf' must be a positive, finite number"),
    ("lr-text", ["train", "--lr", "fast"], USAGE, "argument --lr: 'fast' is not a number"),
    ("epochs-zero", ["train", "--epochs", "0"], USAGE, "argument --epochs: '0' must be a positive integer"),
    ("epochs-negative", ["train", "--epochs=-3"], USAGE, "'-3' must be a positive integer"),
    ("epochs-fraction", ["train", "--epochs", "1.5"], USAGE, "argument --epochs: '1.5' is not an integer"),
    ("batch-zero", ["train", "--batch-size", "0"], USAGE, "argument --batch-size: '0' must be at least 1 (or 'full')"),
    ("batch-negative", ["train", "--batch-size=-8"], USAGE, "'-8' must be at least 1"),
    ("batch-word", ["train", "--batch-size", "many"], USAGE, "'many' is not a positive integer or 'full'"),
    ("batch-too-big", ["train", *QUICK, "--batch-size", "99999"], USAGE,
     "batch size 99999 must be between 1 and the number of training rows (9000)"),
    ("pair-batch-too-big", ["train", *QUICK, "--digits", "0,1", "--val-size", "0", "--batch-size", "5000"],
     USAGE, "batch size 5000 must be between 1 and the number of training rows"),
    # layer sizes
    ("layers-empty", ["train", "--layers", ""], USAGE, "argument --layers: '' names no layer sizes; give at least one"),
    ("layers-comma", ["train", "--layers", ","], USAGE, "argument --layers: ',' names no layer sizes"),
    ("layers-hole", ["train", "--layers", "128,,64"], USAGE, "'128,,64' has an empty size"),
    ("layers-negative", ["train", "--layers", "128,-4"], USAGE, "layer sizes '128,-4' must be positive integers"),
    ("layers-zero", ["train", "--layers", "0"], USAGE, "layer sizes '0' must be positive integers"),
    ("layers-text", ["train", "--layers", "wide"], USAGE, "'wide' is not a list of sizes like 128,64"),
    # digits
    ("digits-repeat", ["train", "--digits", "3,3"], USAGE, "digits (3, 3) repeat a digit"),
    ("digits-range", ["train", "--digits", "1,12"], USAGE, "digits (1, 12) must lie in 0-9"),
    ("digits-negative", ["train", "--digits=-1,2"], USAGE, "digits (-1, 2) must lie in 0-9"),
    ("digits-three", ["train", "--digits", "0,1,2"], USAGE, "digits (0, 1, 2) must be a pair"),
    ("digits-text", ["train", "--digits", "one,two"], USAGE, "digits 'one,two' are not a pair like '0,1'"),
    # names
    ("preset", ["train", "--preset", "huge"], USAGE, "argument --preset: invalid choice: 'huge'"),
    ("backend", ["train", "--backend", "cuda"], USAGE, "argument --backend: invalid choice: 'cuda'"),
    ("dtype", ["train", "--dtype", "float16"], USAGE, "argument --dtype: invalid choice: 'float16'"),
    ("activation", ["train", "--hidden", "tanh"], USAGE, "argument --hidden: invalid choice: 'tanh'"),
    ("init", ["train", "--init", "xavier"], USAGE, "argument --init: invalid choice: 'xavier'"),
    ("data-source", ["train", "--data", "cifar"], USAGE, "argument --data: invalid choice: 'cifar'"),
    ("command", ["fly"], USAGE, "invalid choice: 'fly'"),
    ("flag", ["train", "--turbo"], USAGE, "unrecognized arguments: --turbo"),
    # other values
    ("seed-negative", ["train", "--seed=-1"], USAGE, "argument --seed: '-1' must be an integer >= 0"),
    ("val-negative", ["train", "--val-size=-0.1"], USAGE,
     "argument --val-size: validation size -0.1 must be a fraction in (0, 1) or a count >= 0"),
    ("val-fraction-count", ["train", "--val-size", "2.5"], USAGE,
     "argument --val-size: validation size 2.5 is a fraction, and a fraction must lie in (0, 1)"),
    ("val-one-point-zero", ["train", "--val-size", "1.0"], USAGE,
     "argument --val-size: validation size 1.0 is a fraction, and a fraction must lie in (0, 1); "
     "for a count of rows give an integer (1)"),
    ("val-exponent", ["train", "--val-size", "1e3"], USAGE,
     "validation size 1000.0 is a fraction, and a fraction must lie in (0, 1); for a count of "
     "rows give an integer (1000)"),
    ("val-text", ["train", "--val-size", "some"], USAGE,
     "argument --val-size: 'some' is not a fraction or a count"),
    ("val-everything", ["train", *QUICK, "--val-size", "10000"], USAGE,
     "validation size 10000 leaves no training data (10000 rows in the task)"),
    ("samples-seed", ["samples", "--out", "x.png", "--seed=-2"], USAGE,
     "argument --seed: '-2' must be an integer >= 0"),
    # output paths are checked before training, not after it
    ("save-no-dir", ["train", *QUICK, "--save", "{d}/nowhere/m.npz"], USAGE,
     "--save {d}/nowhere/m.npz: directory {d}/nowhere does not exist"),
    ("save-is-dir", ["train", *QUICK, "--save", "{d}"], USAGE, "--save {d} is a directory"),
    ("metrics-no-dir", ["train", *QUICK, "--metrics-json", "{d}/nowhere/m.json"], USAGE,
     "--metrics-json {d}/nowhere/m.json: directory {d}/nowhere does not exist"),
    # data files (a --data-dir is final: the broken file is reported, not skipped)
    ("data-truncated-gzip", ["train", *FAKE, "{d}/truncated"], FAILURE,
     "{d}/truncated/train-images-idx3-ubyte.gz: is a truncated gzip file"),
    ("data-html-page", ["train", *FAKE, "{d}/html"], FAILURE,
     "{d}/html/train-labels-idx1-ubyte.gz: is an HTML/XML page, not an IDX file"),
    ("data-wrong-magic", ["train", *FAKE, "{d}/magic"], FAILURE,
     "{d}/magic/t10k-images-idx3-ubyte.gz:"),
    ("data-count-mismatch", ["train", *FAKE, "{d}/short"], FAILURE,
     "holds 20 images but {d}/short/t10k-labels-idx1-ubyte.gz holds 19 labels"),
    ("data-declared-too-many", ["train", *FAKE, "{d}/declared"], FAILURE,
     "{d}/declared/t10k-labels-idx1-ubyte.gz: is truncated: its header declares 20 labels"),
    ("data-corrupt-gzip", ["train", *FAKE, "{d}/corrupt"], FAILURE,
     "{d}/corrupt/train-labels-idx1-ubyte.gz: is a corrupt gzip file"),
    ("data-empty-file", ["train", *FAKE, "{d}/empty"], FAILURE,
     "{d}/empty/t10k-labels-idx1-ubyte.gz: the file is empty"),
    ("data-missing", ["train", "--data", "mnist", "--no-download", "--data-dir", "{d}/nothing"],
     FAILURE, "{d}/nothing"),
    # a folder the user names must hold MNIST: no quiet fallback to the sample
    ("data-dir-missing", ["train", *QUICK[2:], "-q", "--data-dir", "{d}/no-such-dir"], USAGE,
     "fastnn: error: --data-dir {d}/no-such-dir does not exist; point it at the folder that holds "
     "the MNIST files (train-images-idx3-ubyte, "),
    ("data-dir-relative", ["train", *QUICK[2:], "--data-dir", "no-such-dir"], USAGE,
     "--data-dir no-such-dir ({d}/no-such-dir) does not exist; point it at the folder"),
    ("data-dir-is-a-file", ["train", *QUICK[2:], "--data-dir", "{d}/models/good.npz"], USAGE,
     "--data-dir {d}/models/good.npz is a file, not a folder; point it at the folder"),
    ("data-dir-partial", ["train", *QUICK[2:], "-q", "--data-dir", "{d}/partial"], FAILURE,
     "fastnn: error: --data-dir {d}/partial holds train-images-idx3-ubyte.gz, "
     "train-labels-idx1-ubyte.gz and t10k-images-idx3-ubyte.gz but not t10k-labels-idx1-ubyte[.gz]; "
     "put the missing files there"),
    ("data-dir-empty", ["evaluate", "{d}/models/good.npz", "--data-dir", "{d}/nothing"], FAILURE,
     "--data-dir {d}/nothing holds no MNIST files (it is empty); put the missing files there"),
    ("env-data-dir-missing", ["train", *QUICK[2:]], USAGE,
     "$FASTNN_DATA_DIR {d}/nowhere does not exist; point it at the folder that holds the MNIST "
     "files"),
    ("env-data-dir-partial", ["samples", "--out", "{d}/s.png"], FAILURE,
     "$FASTNN_DATA_DIR {d}/partial holds train-images-idx3-ubyte.gz, "),
    ("evaluate-broken-data", ["evaluate", "{d}/models/good.npz", "--data", "mnist",
                              "--data-dir", "{d}/html"], FAILURE, "is an HTML/XML page"),
    # model files
    ("model-missing", ["evaluate", "{d}/models/missing.npz"], FAILURE,
     "model file {d}/models/missing.npz does not exist"),
    ("model-directory", ["evaluate", "{d}/models/a-directory.npz"], FAILURE,
     "{d}/models/a-directory.npz is a directory, not a model file"),
    ("model-truncated", ["evaluate", "{d}/models/truncated.npz", "--data", "sample"], FAILURE,
     "{d}/models/truncated.npz is not a fastnn model file: it is not an .npz archive (or it is truncated)"),
    ("model-text", ["evaluate", "{d}/models/text.npz", "--data", "sample"], FAILURE,
     "is not a fastnn model file: it is not an .npz archive"),
    ("model-empty", ["evaluate", "{d}/models/empty.npz", "--data", "sample"], FAILURE,
     "is not a fastnn model file"),
    ("model-foreign", ["evaluate", "{d}/models/foreign.npz", "--data", "sample"], FAILURE,
     "{d}/models/foreign.npz is not a fastnn model file: it has no 'meta' entry"),
    ("model-pickled", ["evaluate", "{d}/models/pickled.npz", "--data", "sample"], FAILURE,
     "it holds pickled objects, which fastnn never loads"),
    ("model-tampered", ["evaluate", "{d}/models/tampered.npz", "--data", "sample"], FAILURE,
     "parameter checksum mismatch"),
    ("resume-truncated", ["train", "--resume", "{d}/models/truncated.npz"], FAILURE,
     "is not a fastnn model file"),
    ("resume-plain-model", ["train", "--resume", "{d}/models/good.npz"], FAILURE,
     "is a model without training state, so it cannot be resumed"),
    # the environment
    ("env-backend", ["train", *QUICK[:2]], USAGE,
     "Unknown backend 'cuda' (from $FASTNN_BACKEND): choose one of numpy, numba."),
]
ENV = {"env-backend": {"FASTNN_BACKEND": "cuda"},
       "env-data-dir-missing": {"FASTNN_DATA_DIR": "{d}/nowhere"},
       "env-data-dir-partial": {"FASTNN_DATA_DIR": "{d}/partial"}}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run every case in its own ``python -m fastnn`` process, two or three at a time."""
    folder = tmp_path_factory.mktemp("bad")
    for name, breaker in [("truncated", truncate), ("html", html_page), ("magic", wrong_magic),
                          ("short", short_labels), ("declared", declared_too_many),
                          ("corrupt", corrupt_gzip), ("empty", empty_file)]:
        mnist_dir(folder / name, breaker)
    (folder / "nothing").mkdir()
    mnist_dir(folder / "partial", lambda f: (f / "t10k-labels-idx1-ubyte.gz").unlink())
    (folder / "models").mkdir()
    model_files(folder / "models")

    def run(case):
        name, args = case[0], [arg.format(d=folder) for arg in case[1]]
        extra = {key: value.format(d=folder) for key, value in ENV.get(name, {}).items()}
        # The module's fixture runs before conftest's private cache: isolate here too.
        env = {**os.environ, "FASTNN_BACKEND": "numpy", "FASTNN_CACHE_DIR": str(folder / "cache"),
               "FASTNN_MNIST_MIRRORS": "http://127.0.0.1:9/", **extra}
        result = subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                                text=True, cwd=folder, env=env, timeout=120)
        return name, result

    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = dict(pool.map(run, CASES))
    return folder, outcomes


@pytest.mark.parametrize("name,args,code,message", CASES, ids=[case[0] for case in CASES])
def test_bad_input_through_the_cli(results, name, args, code, message):
    folder, outcomes = results
    result = outcomes[name]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "no message at all"
    last = lines[-1]
    # fastnn's own errors, or argparse's (which name the subcommand).
    assert re.match(r"fastnn( (train|evaluate|predict|samples|bench))?: error: \S", last), last
    assert message.format(d=folder) in last
    assert result.stdout == ""
    if code == FAILURE:
        # Not a usage error: no usage text, just the one line (after the training header).
        assert not any(line.startswith("usage:") for line in lines)


def test_bad_files_are_left_where_they_were_and_nothing_is_added(results):
    folder, _ = results
    assert sorted(p.name for p in (folder / "truncated").iterdir()) == sorted(
        f"{name}.gz" for name in MNIST_NAMES)
    assert not list(folder.glob("*.npz")) and not list(folder.glob("**/*.tmp"))


def test_in_process_main_gives_the_same_codes(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--layers", ","])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "fastnn train: error: argument --layers: ',' names no layer sizes; give at least one, "
        "like 128 or 128,64")
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", str(tmp_path / "none.npz")])
    assert stop.value.code == 1
    assert capsys.readouterr().err == f"fastnn: error: model file {tmp_path / 'none.npz'} does not exist\n"


@pytest.mark.parametrize("net,message", [
    (Network([10, 4, 10]), "{path} takes 10 inputs, but MNIST images have 784 pixels: it is not "
                           "a model of MNIST digits"),
    (Network([784, 4, 5]), "{path} predicts the classes (0, 1, 2, 3, 4); fastnn evaluates models "
                           "of all ten digits or of a digit pair"),
])
def test_evaluating_a_model_that_is_not_of_mnist_digits_is_one_line(tmp_path, capsys, net,
                                                                    message):
    path = tmp_path / "other.npz"
    save_model(path, net)
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", str(path), "--data", "sample"])
    assert stop.value.code == 1
    assert capsys.readouterr().err == f"fastnn: error: {message.format(path=path)}\n"


# --- the API ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((50, 784)).astype(np.float32), rng.integers(0, 10, 50)


def bad_fit(data, **changes):
    x, labels = data
    options = dict(x=x, labels=labels, epochs=1, batch_size=10, lr=0.1, backend="numpy")
    options.update(changes)
    fit(Network([784, 8, 10]), options.pop("x"), options.pop("labels"), **options)


def with_value(x, row, col, value):
    x = x.copy()
    x[row, col] = value
    return x


API_CASES = [
    ("780-features", lambda d: dict(x=d[0][:, :780]), r"^X has 780 features, expected \(n, 784\)$"),
    ("3-d", lambda d: dict(x=d[0].reshape(50, 28, 28)), r"^X has shape \(50, 28, 28\), expected \(n, 784\)$"),
    ("no-rows", lambda d: dict(x=d[0][:0], labels=d[1][:0]), r"^X has no rows$"),
    ("text", lambda d: dict(x=np.full((50, 784), "a")), r"^X has dtype <U1, expected real numbers$"),
    ("complex", lambda d: dict(x=d[0] + 1j), r"^X has dtype complex\d+, expected real numbers$"),
    ("nan", lambda d: dict(x=with_value(d[0], 3, 5, np.nan)),
     r"^X contains 1 NaN or infinite value\(s\); clean the input first$"),
    ("inf", lambda d: dict(x=with_value(d[0], 0, 0, -np.inf)), r"^X contains 1 NaN or infinite"),
    ("label-count", lambda d: dict(labels=d[1][:49]), r"^labels has shape \(49,\), expected \(50,\) to match X$"),
    ("label-2d", lambda d: dict(labels=d[1][:, None]), r"^labels has shape \(50, 1\), expected \(50,\)"),
    ("label-range", lambda d: dict(labels=np.r_[d[1][:49], 10]),
     r"^labels contain \[10\], which are not among this network's classes \(0, 1, 2, 3, 4, 5, 6, 7, 8, 9\)$"),
    ("label-negative", lambda d: dict(labels=np.r_[-1, d[1][1:]]), r"^labels contain \[-1\]"),
    ("label-fraction", lambda d: dict(labels=d[1] + 0.5), r"^labels must be integer class labels, got dtype float64$"),
    ("label-nan", lambda d: dict(labels=np.r_[np.nan, d[1][1:]]), r"^labels must be integer class labels"),
    ("lr-zero", lambda d: dict(lr=0), r"^learning rate 0 must be a positive, finite number$"),
    ("lr-negative", lambda d: dict(lr=-1.0), r"^learning rate -1.0 must be a positive"),
    ("lr-nan", lambda d: dict(lr=float("nan")), r"^learning rate nan must be a positive, finite"),
    ("lr-inf", lambda d: dict(lr=float("inf")), r"^learning rate inf must be a positive, finite"),
    ("lr-text", lambda d: dict(lr="0.1"), r"^learning rate '0.1' must be a positive"),
    ("seed-negative", lambda d: dict(seed=-1), r"^seed -1 must be an integer >= 0$"),
    ("seed-fraction", lambda d: dict(seed=0.5), r"^seed 0.5 must be an integer >= 0$"),
    ("validation-not-a-pair", lambda d: dict(validation=d[0]),
     r"^validation must be a pair \(X_val, labels_val\), not ndarray$"),
    ("epochs-zero", lambda d: dict(epochs=0), r"^epochs 0 must be a positive integer$"),
    ("epochs-fraction", lambda d: dict(epochs=2.5), r"^epochs 2.5 must be a positive integer$"),
    ("epochs-bool", lambda d: dict(epochs=True), r"^epochs True must be a positive integer$"),
    ("batch-zero", lambda d: dict(batch_size=0), r"^batch size 0 must be between 1 and the number of training rows \(50\)$"),
    ("batch-too-big", lambda d: dict(batch_size=51), r"^batch size 51 must be between 1 and the number"),
    ("batch-text", lambda d: dict(batch_size="half"), r"^batch size 'half' must be a positive integer or 'full'$"),
    ("backend", lambda d: dict(backend="cuda"), r"^Unknown backend 'cuda': choose one of numpy, numba\.$"),
    ("validation-features", lambda d: dict(validation=(d[0][:5, :700], d[1][:5])),
     r"^validation X has 700 features, expected \(n, 784\)$"),
    ("validation-labels", lambda d: dict(validation=(d[0][:5], d[1][:4])),
     r"^validation labels has shape \(4,\), expected \(5,\) to match X$"),
]


@pytest.mark.parametrize("name,change,pattern", API_CASES, ids=[case[0] for case in API_CASES])
def test_bad_input_through_the_api(data, name, change, pattern):
    with pytest.raises(ValueError, match=pattern):
        bad_fit(data, **change(data))


def test_numpy_scalars_are_valid_hyperparameters(data):
    x, labels = data
    fit(Network([784, 4, 10]), x, labels, epochs=np.int64(1), lr=np.float32(0.1),
        batch_size=np.int32(10), seed=np.uint32(3), backend="numpy")


@pytest.mark.parametrize("make,pattern", [
    (lambda: Network([]), r"layer sizes \(\) must be at least two positive integers"),
    (lambda: Network([784]), r"layer sizes \(784,\) must be at least two"),
    (lambda: Network([784, 0, 10]), r"layer sizes \(784, 0, 10\) must be at least two positive"),
    (lambda: Network([784, 10], hidden="tanh"), r"Unknown hidden activation 'tanh': choose one of sigmoid, relu\."),
    (lambda: Network([784, 10], dtype="float16"), r"Unknown dtype 'float16': choose one of float32, float64\."),
    (lambda: Network([784, 10], init="xavier"), r"Unknown init 'xavier': choose one of auto, he, lecun\."),
    (lambda: Network([784, 1], classes=(3, 3)), r"1 output unit\(s\) need 2 distinct class labels, got \(3, 3\)"),
    (lambda: presets.resolve("huge", {}), r"Unknown preset 'huge': choose one of binary01, "),
    (lambda: check_digits((4, 4)), r"digits \(4, 4\) repeat a digit"),
    (lambda: check_digits((0, 10)), r"digits \(0, 10\) must lie in 0-9"),
    (lambda: parse_digits("7"), r"digits \(7,\) must be a pair"),
    (lambda: Network([784, 10]).predict(np.zeros((2, 780))), r"X has 780 features, expected \(n, 784\)"),
    (lambda: Network([784, 10]).score(np.zeros((2, 784)), [1, 99]), r"labels contain \[99\]"),
])
def test_bad_construction_and_prediction(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_a_closed_stdout_ends_quietly_with_141(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "fastnn", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()  # like `fastnn presets | head -0`: the reader is gone before we write
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert err == b""
