"""fastnn.mnist: where MNIST is looked for, how it is downloaded, and what happens when it can't be.

Downloads are real: a local HTTP server on 127.0.0.1 serves small, valid,
fake MNIST files, and `fastnn.mnist.MD5` is pointed at their checksums. No
test touches the real user cache or the internet.
"""

import gzip
import hashlib
import http.server
import json
import os
import socket
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from fastnn import mnist, mnist_download
from fastnn.mnist import DataError, MnistData

# Captured before any test clears the environment: CI sets FASTNN_DATA_DIR to the real files.
REAL_MNIST_DIR = os.environ.get("FASTNN_TEST_MNIST_DIR") or os.environ.get("FASTNN_DATA_DIR")

NAMES = mnist.FILES
GZ = [f"{name}.gz" for name in NAMES]
TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --- fake MNIST -----------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def fake_mnist(n_train: int = 30, n_test: int = 12, seed: int = 0) -> dict:
    """{name: array} for the four files: random 28x28 images, labels cycling 0..9."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }


def write_mnist(folder: Path, arrays: dict, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        content = idx_bytes(array)
        (folder / (f"{name}.gz" if gz else name)).write_bytes(gzip.compress(content) if gz else content)
    return folder


def assert_holds(data: MnistData, arrays: dict):
    np.testing.assert_array_equal(data.train_images, arrays["train-images-idx3-ubyte"].reshape(-1, 784))
    np.testing.assert_array_equal(data.train_labels, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.test_images, arrays["t10k-images-idx3-ubyte"].reshape(-1, 784))
    np.testing.assert_array_equal(data.test_labels, arrays["t10k-labels-idx1-ubyte"])
    assert data.source == "mnist"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the real data dir, cache, mirrors or proxies."""
    for var in (mnist.DATA_DIR_ENV, mnist.MIRRORS_ENV, "FASTNN_TEST_MNIST_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(mnist.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def cached_files(cache: Path) -> set:
    """Everything in the cache dir, temporary files included."""
    return {p.name for p in cache.iterdir()} if cache.exists() else set()


# --- a real HTTP server serving the fakes ---------------------------------------------------

class Server:
    """Serves ``routes[path] = (behaviour, body)``; anything else is a 404. Logs request paths."""

    def __init__(self):
        self.routes, self.requests = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                behaviour, body = server.routes.get(self.path, ("missing", b""))
                if behaviour == "missing":
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                declared = len(body) + 10_000 if behaviour == "dies" else len(body)
                self.send_header("Content-Length", str(declared))
                self.send_header("Content-Type", "text/html" if behaviour == "html" else
                                 "application/octet-stream")
                self.end_headers()
                # "dies": promise more than is sent, then hang up mid-transfer.
                self.wfile.write(body[:len(body) // 2] if behaviour == "dies" else body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def mirror(self, name: str) -> str:
        return f"{self.url}/{name}/"

    def serve(self, mirror: str, files: dict, behaviour: str = "ok"):
        for fname, body in files.items():
            self.routes[f"/{mirror}/{fname}"] = (behaviour, body)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def fakes(monkeypatch):
    """Fake MNIST as arrays and as gz bodies; mnist.MD5 set to the bodies' md5s."""
    arrays = fake_mnist()
    bodies = {f"{name}.gz": gzip.compress(idx_bytes(array)) for name, array in arrays.items()}
    monkeypatch.setattr(mnist, "MD5", {f: hashlib.md5(b).hexdigest() for f, b in bodies.items()})
    return arrays, bodies


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


# --- downloading ----------------------------------------------------------------------------

def test_download_puts_the_four_files_in_the_cache_and_loads_them(server, fakes, cache):
    arrays, bodies = fakes
    server.serve("m1", bodies)
    data = mnist.load("mnist", mirrors=[server.mirror("m1")])
    assert_holds(data, arrays)
    assert cached_files(cache) == set(GZ)
    for fname, body in bodies.items():
        assert (cache / fname).read_bytes() == body
    assert data.origin == str(cache)
    assert data.note.startswith(f"Downloaded 4 MNIST file(s) from 127.0.0.1:")

    # A second load is served from the cache, without a request.
    n_requests = len(server.requests)
    again = mnist.load("mnist", mirrors=[server.mirror("m1")])
    assert_holds(again, arrays)
    assert len(server.requests) == n_requests
    assert "Downloaded" not in again.note  # what remains says the fakes are not official MNIST
    assert "differ from the official MNIST" in again.note


def test_only_missing_files_are_downloaded(server, fakes, cache):
    arrays, bodies = fakes
    server.serve("m1", bodies)
    (cache).mkdir()
    (cache / GZ[0]).write_bytes(bodies[GZ[0]])
    mnist.load("mnist", mirrors=[server.mirror("m1")])
    assert server.requests == [f"/m1/{f}" for f in GZ[1:]]


def test_checksum_mismatch_is_an_error_naming_the_file_and_leaves_nothing(server, fakes, cache):
    arrays, bodies = fakes
    bad = dict(bodies)
    bad[GZ[1]] = gzip.compress(idx_bytes(arrays[NAMES[1]][::-1].copy()))  # valid, but not the one
    server.serve("m1", bad)
    with pytest.raises(DataError) as caught:
        mnist.load("mnist", mirrors=[server.mirror("m1")])
    message = str(caught.value)
    assert f"{server.mirror('m1')}{GZ[1]}: checksum mismatch" in message
    assert f"expected {mnist.MD5[GZ[1]]}" in message
    assert cached_files(cache) == {GZ[0]}  # the good first file stays; no trace of the bad one


def test_a_404_on_the_first_mirror_falls_back_to_the_second(server, fakes, cache):
    arrays, bodies = fakes
    server.serve("m2", bodies)
    data = mnist.load("mnist", mirrors=[server.mirror("m1"), server.mirror("m2")])
    assert_holds(data, arrays)
    # The mirror that worked is tried first for the remaining files.
    assert server.requests == [f"/m1/{GZ[0]}", f"/m2/{GZ[0]}", *(f"/m2/{f}" for f in GZ[1:])]
    assert cached_files(cache) == set(GZ)


def test_mirrors_come_from_the_environment_when_not_given(server, fakes, monkeypatch):
    arrays, bodies = fakes
    server.serve("m2", bodies)
    monkeypatch.setenv(mnist.MIRRORS_ENV, f"{server.mirror('m1')}, {server.mirror('m2')}")
    assert_holds(mnist.load("mnist"), arrays)
    assert server.requests[0] == f"/m1/{GZ[0]}"


def test_all_mirrors_404_is_an_error_listing_each_url(server, fakes, cache):
    mirrors = [server.mirror("m1"), server.mirror("m2")]
    with pytest.raises(DataError) as caught:
        mnist.load("mnist", mirrors=mirrors)
    message = str(caught.value)
    for mirror in mirrors:
        assert f"{mirror}{GZ[0]}: HTTP 404" in message
    assert "\n" not in message
    assert cached_files(cache) == set()  # no file, no temporary file


def test_a_server_dying_mid_transfer_leaves_no_partial_file(server, fakes, cache):
    arrays, bodies = fakes
    server.serve("m1", bodies, behaviour="dies")
    with pytest.raises(DataError, match="connection broken mid-transfer"):
        mnist.load("mnist", mirrors=[server.mirror("m1")])
    assert cached_files(cache) == set()


def test_an_html_page_served_as_the_file_is_named_as_such_and_not_kept(server, fakes, cache):
    page = b"<!DOCTYPE html><html><body>Please log in to continue</body></html>"
    server.serve("m1", {f: page for f in GZ}, behaviour="html")
    with pytest.raises(DataError, match="served an HTML/XML page instead of the file"):
        mnist.load("mnist", mirrors=[server.mirror("m1")])
    assert cached_files(cache) == set()


def test_a_file_that_passes_the_checksum_but_fails_validation_is_removed(server, fakes, cache,
                                                                        monkeypatch):
    arrays, bodies = fakes
    truncated = gzip.compress(idx_bytes(arrays[NAMES[0]])[:-784])
    monkeypatch.setitem(mnist.MD5, GZ[0], hashlib.md5(truncated).hexdigest())
    server.serve("m1", {**bodies, GZ[0]: truncated})
    with pytest.raises(DataError, match=f"{GZ[0]}: is truncated: its header declares 30 images"):
        mnist.load("mnist", mirrors=[server.mirror("m1")])
    assert cached_files(cache) == set()


def test_an_invalid_file_in_the_cache_is_replaced_by_a_fresh_download(server, fakes, cache):
    arrays, bodies = fakes
    write_mnist(cache, arrays)
    (cache / GZ[2]).write_bytes(bodies[GZ[2]][:-50])  # an interrupted copy
    server.serve("m1", bodies)
    assert_holds(mnist.load("mnist", mirrors=[server.mirror("m1")]), arrays)
    assert server.requests == [f"/m1/{GZ[2]}"]
    assert (cache / GZ[2]).read_bytes() == bodies[GZ[2]]


def test_an_invalid_cached_file_is_removed_even_when_offline(fakes, cache):
    arrays, _ = fakes
    write_mnist(cache, arrays)
    (cache / GZ[3]).write_bytes(b"<html>502 Bad Gateway</html>")
    data = mnist.load("auto", mirrors=[closed_port_url()])
    assert data.source == "sample"
    assert f"removed invalid {GZ[3]}: is an HTML/XML page" in data.note
    assert not (cache / GZ[3]).exists()


# --- offline and fallbacks --------------------------------------------------------------------

def test_auto_offline_falls_back_to_the_sample_with_a_one_line_note(cache, monkeypatch):
    attempts = []
    fetch = mnist_download._fetch
    monkeypatch.setattr(mnist_download, "_fetch", lambda *args, **kw: attempts.append(args[0]) or
                        fetch(*args, **kw))
    data = mnist.load("auto", mirrors=[closed_port_url()])
    assert len(attempts) == 1  # offline, it gives up at the first refusal: no retries, no wait
    assert data.source == "sample" and data.origin == "bundled sample"
    assert data.note.startswith("Full MNIST not found (looked in: $FASTNN_DATA_DIR not set; "
                                f"cache {cache} (")
    assert "connection refused" in data.note
    assert "using the bundled 10,000/2,000-image sample" in data.note
    assert "--data-dir or $FASTNN_DATA_DIR" in data.note
    assert "\n" not in data.note


def test_a_host_that_does_not_resolve_is_reported_without_trying_to_download(cache, monkeypatch):
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    attempts = []
    monkeypatch.setattr(mnist_download, "_fetch", lambda *args, **kw: attempts.append(args[0]))
    data = mnist.load("auto", mirrors=["https://mirror.fastnn.invalid/mnist/"])
    assert attempts == []
    assert data.source == "sample"
    assert "mirror.fastnn.invalid (host not found (offline?))" in data.note


def test_behind_a_proxy_the_download_is_tried_whatever_the_local_resolver_says(cache, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", closed_port_url())
    attempts = []
    fetch = mnist_download._fetch
    monkeypatch.setattr(mnist_download, "_fetch", lambda *args, **kw: attempts.append(args[0]) or
                        fetch(*args, **kw))
    data = mnist.load("auto", mirrors=["https://mirror.fastnn.invalid/mnist/"])
    assert attempts == [f"https://mirror.fastnn.invalid/mnist/{GZ[0]}"]
    assert data.source == "sample"


def test_mnist_offline_raises_listing_places_searched_urls_tried_and_the_fix(cache):
    dead = closed_port_url()
    with pytest.raises(DataError) as caught:
        mnist.load("mnist", mirrors=[dead])
    message = str(caught.value)
    assert "Looked in: $FASTNN_DATA_DIR not set; " in message
    assert f"cache {cache} (does not exist)" in message
    assert f"{dead}{GZ[0]}: connection refused" in message
    assert "point --data-dir or $FASTNN_DATA_DIR at a folder" in message
    assert f"from {dead} into {cache}" in message
    assert "\n" not in message


def test_download_false_never_touches_the_network(server, fakes):
    _, bodies = fakes
    server.serve("m1", bodies)
    data = mnist.load("auto", download=False, mirrors=[server.mirror("m1")])
    assert data.source == "sample" and "download disabled" in data.note
    with pytest.raises(DataError, match="Download: download disabled"):
        mnist.load("mnist", download=False, mirrors=[server.mirror("m1")])
    assert server.requests == []


def test_sample_source_is_the_bundled_sample():
    data = mnist.load("sample")
    assert (data.source, data.origin, data.note) == ("sample", "bundled sample", None)


def test_unknown_source_is_a_value_error():
    with pytest.raises(ValueError, match="choose one of auto, mnist, sample"):
        mnist.load("fashion")


# --- local directories ----------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["gz", "raw", "torchvision MNIST/raw"])
def test_a_local_directory_is_read_in_any_common_layout(tmp_path, server, layout):
    arrays = fake_mnist()
    root = tmp_path / "data"
    write_mnist(root / "MNIST" / "raw" if "torchvision" in layout else root, arrays,
                gz=layout != "raw")
    data = mnist.load("mnist", root, mirrors=[server.mirror("m1")])
    assert_holds(data, arrays)
    assert server.requests == []
    assert mnist.find_local(root) == root


def test_local_files_are_not_checksummed_only_validated(tmp_path):
    arrays = fake_mnist()
    folder = write_mnist(tmp_path / "data", arrays)
    # Recompress one file differently: different gz bytes, same content.
    content = idx_bytes(arrays[NAMES[0]])
    (folder / GZ[0]).write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))
    assert_holds(mnist.load("mnist", folder, download=False), arrays)


def test_search_order_is_data_dir_then_env_then_cache(tmp_path, cache, monkeypatch):
    explicit = write_mnist(tmp_path / "explicit", fake_mnist(n_train=10))
    from_env = write_mnist(tmp_path / "env", fake_mnist(n_train=20))
    write_mnist(cache, fake_mnist(n_train=30))
    monkeypatch.setenv(mnist.DATA_DIR_ENV, str(from_env))
    assert len(mnist.load("mnist", explicit, download=False).train_labels) == 10
    with pytest.raises(mnist.DataError, match="empty"):  # an explicit directory is final
        mnist.load("mnist", tmp_path / "empty", download=True)
    assert len(mnist.load("mnist", download=False).train_labels) == 20
    assert mnist.find_local(explicit) == explicit and mnist.find_local() == from_env
    monkeypatch.delenv(mnist.DATA_DIR_ENV)
    data = mnist.load("mnist", download=False)
    assert len(data.train_labels) == 30 and data.origin == str(cache)
    assert mnist.find_local() == cache


# --- a folder the user named is final: no quiet fallback to the sample -----------------------

FILES_HINT = ("train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
              "t10k-labels-idx1-ubyte, each .gz or unzipped")


def named(tmp_path, monkeypatch, how, path):
    """Name ``path`` as the data folder, as the argument or through the environment; load."""
    if how == "env":
        monkeypatch.setenv(mnist.DATA_DIR_ENV, str(path))
        return mnist.load("auto", mirrors=[closed_port_url()])
    return mnist.load("auto", path, mirrors=[closed_port_url()])


@pytest.mark.parametrize("how,place,undo", [
    ("argument", "data_dir", "leave data_dir out"),
    ("env", "$FASTNN_DATA_DIR", "unset $FASTNN_DATA_DIR"),
])
def test_a_named_folder_that_does_not_exist_is_an_error_not_the_sample(tmp_path, monkeypatch,
                                                                       how, place, undo):
    with pytest.raises(mnist.DataDirError) as caught:
        named(tmp_path, monkeypatch, how, tmp_path / "no-such-dir")
    error = caught.value
    assert error.bad_path and error.place == place
    assert str(error) == (f"{place} {tmp_path / 'no-such-dir'} does not exist; point it at the "
                          f"folder that holds the MNIST files ({FILES_HINT}), or {undo} to let "
                          "fastnn find or download MNIST")


def test_a_named_path_that_is_a_file_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "mnist.zip").write_bytes(b"PK")
    with pytest.raises(mnist.DataDirError) as caught:
        named(tmp_path, monkeypatch, "argument", tmp_path / "mnist.zip")
    assert caught.value.bad_path
    assert str(caught.value).startswith(f"data_dir {tmp_path / 'mnist.zip'} is a file, not a "
                                        "folder; point it at the folder that holds")


def test_a_relative_path_is_shown_as_given_and_in_full(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(mnist.DataDirError, match=rf"^data_dir no-such-dir \({tmp_path}/no-such-dir"
                                                 r"\) does not exist; "):
        mnist.load("auto", "no-such-dir")


@pytest.mark.parametrize("how,place,undo", [
    ("argument", "data_dir", "leave data_dir out"),
    ("env", "$FASTNN_DATA_DIR", "unset $FASTNN_DATA_DIR"),
])
def test_a_named_folder_missing_a_file_says_what_it_holds(tmp_path, monkeypatch, how, place,
                                                          undo):
    folder = write_mnist(tmp_path / "partial", fake_mnist())
    (folder / GZ[3]).unlink()
    with pytest.raises(mnist.DataDirError) as caught:
        named(tmp_path, monkeypatch, how, folder)
    error = caught.value
    assert not error.bad_path
    assert str(error) == (f"{place} {folder} holds {GZ[0]}, {GZ[1]} and {GZ[2]} but not "
                          f"{NAMES[3]}[.gz]; put the missing files there ({FILES_HINT}), or "
                          f"{undo} to let fastnn find or download MNIST")


def test_a_named_folder_without_mnist_lists_what_it_holds(tmp_path, monkeypatch):
    folder = tmp_path / "downloads"
    folder.mkdir()
    for name in ("a.txt", "b.png", "c.csv", "d.md", "e.py", "f.zip"):
        (folder / name).write_text("x")
    (folder / "photos").mkdir()
    with pytest.raises(mnist.DataDirError) as caught:
        named(tmp_path, monkeypatch, "argument", folder)
    assert not caught.value.bad_path
    assert str(caught.value).startswith(f"data_dir {folder} holds no MNIST files (it holds a.txt, "
                                        "b.png, c.csv, d.md, e.py and 2 more); put the missing "
                                        "files there")
    (folder / "empty").mkdir()
    with pytest.raises(mnist.DataDirError, match=r"holds no MNIST files \(it is empty\)"):
        named(tmp_path, monkeypatch, "argument", folder / "empty")


def test_the_torchvision_layout_is_reported_where_its_files_are(tmp_path, monkeypatch):
    folder = write_mnist(tmp_path / "data" / "MNIST" / "raw", fake_mnist(), gz=False)
    (folder / NAMES[0]).unlink()
    with pytest.raises(mnist.DataDirError) as caught:
        named(tmp_path, monkeypatch, "argument", tmp_path / "data")
    assert f"holds MNIST/raw/{NAMES[1]}, MNIST/raw/{NAMES[2]} and MNIST/raw/{NAMES[3]} but not " \
           f"{NAMES[0]}[.gz];" in str(caught.value)


def test_the_message_can_name_the_folder_as_a_command_line_flag(tmp_path):
    with pytest.raises(mnist.DataDirError) as caught:
        mnist.load("auto", tmp_path / "gone")
    assert caught.value.message("--data-dir").startswith(
        f"--data-dir {tmp_path / 'gone'} does not exist; point it at the folder")
    assert caught.value.message("--data-dir").endswith("or leave --data-dir out to let fastnn "
                                                       "find or download MNIST")


def test_an_empty_environment_variable_names_nothing(cache, monkeypatch):
    monkeypatch.setenv(mnist.DATA_DIR_ENV, "  ")
    data = mnist.load("auto", mirrors=[closed_port_url()])
    assert data.source == "sample" and "$FASTNN_DATA_DIR not set" in data.note


def test_find_local_is_none_when_nothing_is_there(tmp_path):
    assert mnist.find_local(tmp_path) is None


def test_a_broken_local_file_is_an_error_even_in_auto_mode(tmp_path):
    folder = write_mnist(tmp_path / "data", fake_mnist())
    (folder / GZ[1]).write_bytes(gzip.compress(idx_bytes(np.array([1, 2, 11], np.uint8))))
    with pytest.raises(DataError) as caught:
        mnist.load("auto", folder)
    assert str(caught.value) == (f"{folder / GZ[1]}: label 11 at position 2 is outside 0..9; "
                                 "delete it and run again to re-download it, or replace it with "
                                 "a good copy.")


def test_images_and_labels_must_agree_in_number(tmp_path):
    arrays = fake_mnist()
    arrays["t10k-labels-idx1-ubyte"] = arrays["t10k-labels-idx1-ubyte"][:-1].copy()
    folder = write_mnist(tmp_path / "data", arrays)
    with pytest.raises(DataError, match="holds 12 images but .* holds 11 labels"):
        mnist.load("mnist", folder)


def test_loaded_arrays_have_the_documented_layout(tmp_path):
    data = mnist.load("mnist", write_mnist(tmp_path / "d", fake_mnist()))
    for images in (data.train_images, data.test_images):
        assert images.dtype == np.uint8 and images.ndim == 2 and images.shape[1] == 784
        assert images.flags.c_contiguous
    for labels in (data.train_labels, data.test_labels):
        assert labels.dtype == np.uint8 and labels.ndim == 1


# --- the cache directory ----------------------------------------------------------------------

def test_cache_dir_comes_from_fastnn_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert mnist.cache_dir() == tmp_path / "mine"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG is the Linux convention")
def test_cache_dir_defaults_to_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv(mnist.CACHE_DIR_ENV)
    assert mnist.cache_dir() == tmp_path / "xdg" / "fastnn"


def test_cache_dir_argument_overrides_the_default(tmp_path, server, fakes):
    arrays, bodies = fakes
    server.serve("m1", bodies)
    elsewhere = tmp_path / "elsewhere"
    mnist.load("mnist", cache_dir=elsewhere, mirrors=[server.mirror("m1")])
    assert cached_files(elsewhere) == set(GZ)


# --- the bundled sample -----------------------------------------------------------------------

def largest_remainder(counts, total):
    quota = np.array(counts) * total / sum(counts)
    alloc = np.floor(quota).astype(int)
    alloc[np.argsort(-(quota - alloc), kind="stable")[:total - alloc.sum()]] += 1
    return alloc.tolist()


def test_sample_is_10000_and_2000_images_stratified_by_class_frequency():
    data = mnist.load_sample()
    assert data.train_images.shape == (10_000, 784) and data.test_images.shape == (2_000, 784)
    assert data.train_images.dtype == np.uint8 and data.train_images.flags.c_contiguous
    train_counts = np.bincount(data.train_labels, minlength=10).tolist()
    test_counts = np.bincount(data.test_labels, minlength=10).tolist()
    assert train_counts == largest_remainder(TRAIN_CLASS_COUNTS, 10_000)
    assert test_counts == largest_remainder(TEST_CLASS_COUNTS, 2_000)
    with np.load(mnist.SAMPLE_PATH) as npz:
        meta = json.loads(str(npz["meta"]))
    assert (meta["train_counts"], meta["test_counts"]) == (train_counts, test_counts)
    assert meta["source_sha256"] == mnist.SHA256
    assert isinstance(meta["seed"], int)


def test_sample_file_is_small():
    assert mnist.SAMPLE_PATH.stat().st_size <= 2_500_000


# --- the real MNIST (CI points FASTNN_DATA_DIR at it) ------------------------------------------

def _has_mnist(folder) -> bool:
    return bool(folder) and all((Path(folder) / name).is_file() or (Path(folder) / f"{name}.gz").is_file()
                                for name in NAMES)


needs_real_mnist = pytest.mark.skipif(
    not _has_mnist(REAL_MNIST_DIR),
    reason="set FASTNN_TEST_MNIST_DIR or FASTNN_DATA_DIR to a folder with the MNIST files")


@needs_real_mnist
def test_the_real_mnist_is_the_official_data():
    # How fast it loads is measured in bench/test_bench_data.py, not here.
    data = mnist.load("mnist", REAL_MNIST_DIR, download=False)
    assert data.train_images.shape == (60_000, 784) and data.test_images.shape == (10_000, 784)
    assert np.bincount(data.train_labels).tolist() == TRAIN_CLASS_COUNTS
    assert np.bincount(data.test_labels).tolist() == TEST_CLASS_COUNTS
    assert data.note is None  # every decompressed sha256 matched the official one


@needs_real_mnist
def test_sample_rows_are_the_official_rows_they_claim_to_be():
    full = mnist.load("mnist", REAL_MNIST_DIR, download=False)
    sample = mnist.load_sample()
    with np.load(mnist.SAMPLE_PATH) as npz:
        train_index, test_index = npz["train_index"], npz["test_index"]
    assert np.all(np.diff(train_index.astype(int)) > 0) and np.all(np.diff(test_index.astype(int)) > 0)
    np.testing.assert_array_equal(sample.train_images, full.train_images[train_index])
    np.testing.assert_array_equal(sample.train_labels, full.train_labels[train_index])
    np.testing.assert_array_equal(sample.test_images, full.test_images[test_index])
    np.testing.assert_array_equal(sample.test_labels, full.test_labels[test_index])
