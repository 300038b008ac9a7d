"""Two fastnn processes started together, on a cold data cache and a cold JIT cache.

The download test is real: a local HTTP server on 127.0.0.1 serves small, valid
fake MNIST files, and holds back the first file until both processes have asked
for it, so that they download at once whatever their start-up times. Each
process is told the fakes' md5 sums through a one-line wrapper around
`fastnn.cli.main`. The JIT test compiles every Numba kernel twice at the same
time into one empty NUMBA_CACHE_DIR; it takes minutes on two cores, so it runs
only when FASTNN_SLOW_TESTS=1.
"""

import gzip
import hashlib
import http.server
import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import kernels

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Runs the CLI after pointing fastnn.mnist.MD5 at the fakes' checksums, with a read
# timeout longer than SlowServer ever holds a file back.
WRAPPER = ("import json, sys; from fastnn import mnist, mnist_download; "
           "mnist.MD5.update(json.loads(sys.argv[1])); "
           "mnist_download.TIMEOUT = (5, 600); "
           "from fastnn.cli import main; sys.exit(main(sys.argv[2:]))")


def fake_bodies(n_train=60, n_test=20, seed=0) -> dict:
    """{"<name>.gz": gzipped IDX bytes} of random images and labels cycling 0..9."""
    rng = np.random.default_rng(seed)
    arrays = {
        MNIST_NAMES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        MNIST_NAMES[1]: (np.arange(n_train) % 10).astype(np.uint8),
        MNIST_NAMES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        MNIST_NAMES[3]: (np.arange(n_test) % 10).astype(np.uint8),
    }
    bodies = {}
    for name, array in arrays.items():
        header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        bodies[f"{name}.gz"] = gzip.compress(header + array.tobytes(), mtime=0)
    return bodies


def md5s(bodies: dict) -> dict:
    return {name: hashlib.md5(body).hexdigest() for name, body in bodies.items()}


class SlowServer:
    """Serves ``files[name]`` at ``/name`` in small pieces with pauses; logs every request.

    With ``together=name``, the first two requests for ``name`` are answered only once
    both have arrived (or after five minutes, for the test to report the missing one).
    """

    def __init__(self, files: dict, seconds_per_file: float = 0.6, together: str | None = None):
        self.files, self.requests = dict(files), []
        self.together, self.meeting = together, threading.Barrier(2, timeout=300)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path == f"/{server.together}" and server.requests.count(self.path) <= 2:
                    try:
                        server.meeting.wait()
                    except threading.BrokenBarrierError:
                        pass  # the other process never asked: the test says so
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                pieces = 6
                for i in range(pieces):
                    self.wfile.write(body[len(body) * i // pieces:len(body) * (i + 1) // pieces])
                    self.wfile.flush()
                    time.sleep(seconds_per_file / pieces)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def fastnn_env(cache: Path, mirrors: str, **extra) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("FASTNN_DATA_DIR", "FASTNN_TEST_MNIST_DIR", "http_proxy", "HTTP_PROXY")}
    env.update(FASTNN_CACHE_DIR=str(cache), FASTNN_MNIST_MIRRORS=mirrors,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **extra)
    return env


def start_together(commands, env, cwd):
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=cwd) for command in commands]
    return [(proc,) + proc.communicate(timeout=900) for proc in procs]


TRAIN_FAKE = ["train", "--data", "mnist", "--backend", "numpy", "--layers", "8", "--epochs", "1",
              "--batch-size", "4"]


def test_two_processes_download_into_one_empty_cache_and_both_succeed(tmp_path):
    bodies = fake_bodies()
    cache = tmp_path / "cache"
    first = f"{MNIST_NAMES[0]}.gz"
    with SlowServer(bodies, seconds_per_file=0.3, together=first) as server:
        command = [sys.executable, "-c", WRAPPER, json.dumps(md5s(bodies)), *TRAIN_FAKE]
        outcomes = start_together([command, command], fastnn_env(cache, server.url), tmp_path)
    for proc, out, err in outcomes:
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert out.startswith("test accuracy")
    # Both really downloaded at the same time: the first file, held back until both had
    # asked, was asked for twice, and no file more often.
    assert server.requests.count(f"/{MNIST_NAMES[0]}.gz") == 2
    assert set(server.requests) == {f"/{name}" for name in bodies}
    assert max(server.requests.count(f"/{name}") for name in bodies) == 2
    # The cache holds the four files, whole, and nothing else (no temporary files).
    assert sorted(p.name for p in cache.iterdir()) == sorted(bodies)
    for name, body in bodies.items():
        assert (cache / name).read_bytes() == body
    # A third process finds everything in the cache and downloads nothing.
    with SlowServer({}) as empty:
        again = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(md5s(bodies)),
                                *TRAIN_FAKE], capture_output=True, text=True, timeout=300,
                               env=fastnn_env(cache, empty.url), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert empty.requests == []


def test_two_processes_saving_to_one_path_leave_one_whole_model(tmp_path):
    env = fastnn_env(tmp_path / "cache", "http://127.0.0.1:9/")
    commands = [[sys.executable, "-m", "fastnn", "train", "--data", "sample", "--backend", "numpy",
                 "--layers", "8", "--epochs", "3", "--seed", str(seed), "--save", "m.npz",
                 "--checkpoint-every", "0", "-q"] for seed in (1, 2)]
    outcomes = start_together(commands, env, tmp_path)
    for proc, out, err in outcomes:
        assert proc.returncode == 0, err
    # Each save is a rename of a whole file: the last one wins, nothing is half-written.
    from fastnn.modelio import read_checkpoint
    _, meta, history = read_checkpoint(tmp_path / "m.npz")
    assert meta["config"]["seed"] in (1, 2) and len(history.epochs) == 3
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["m.npz"]


@pytest.mark.parametrize("problem,expected", [
    ("checksum", "checksum mismatch (md5 {got}, expected {want}): a corrupt or changed file"),
    ("html", "served an HTML/XML page instead of the file"),
])
def test_a_bad_download_is_one_line_exit_1_and_leaves_nothing_in_the_cache(tmp_path, problem,
                                                                          expected):
    bodies = fake_bodies()
    sums = md5s(bodies)
    bad = "train-labels-idx1-ubyte.gz"
    if problem == "checksum":
        bodies[bad] = bodies[bad][:-1] + bytes([bodies[bad][-1] ^ 1])
    else:
        bodies[bad] = b"<!DOCTYPE html><html><body>Please log in</body></html>\n" * 4
    cache = tmp_path / "cache"
    with SlowServer(bodies, seconds_per_file=0) as server:
        result = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(sums), *TRAIN_FAKE],
                                capture_output=True, text=True, timeout=300,
                                env=fastnn_env(cache, server.url), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastnn: error: ")
    message = expected.format(got=hashlib.md5(bodies[bad]).hexdigest(), want=sums[bad])
    assert f"{server.url}{bad}" in lines[0] and message in lines[0]
    assert bad not in {p.name for p in cache.iterdir()}
    assert not [p for p in cache.iterdir() if not p.name.endswith(".gz")]  # no partial files


@pytest.mark.skipif(os.environ.get("FASTNN_SLOW_TESTS") != "1",
                    reason="compiles every Numba kernel twice (minutes); set FASTNN_SLOW_TESTS=1")
def test_two_processes_on_a_cold_jit_cache_both_succeed_and_leave_a_usable_cache(tmp_path):
    jit_cache = tmp_path / "numba-cache"
    jit_cache.mkdir()
    env = fastnn_env(tmp_path / "data-cache", "http://127.0.0.1:9/",
                     NUMBA_CACHE_DIR=str(jit_cache))
    command = [sys.executable, "-m", "fastnn", "train", "--data", "sample", "--backend", "numba",
               "--layers", "16", "--epochs", "1", "-q"]
    source = Path(kernels.__file__).with_name("numba_backend.py")
    stamp = source.stat().st_mtime_ns
    outcomes = start_together([command, command], env, tmp_path)
    for proc, out, err in outcomes:
        assert proc.returncode == 0, err
        assert out.startswith("test accuracy")
    if source.stat().st_mtime_ns != stamp:
        pytest.skip(f"{source} changed during the test, so its cache entries are stale")
    # The cache they wrote side by side is whole: a third process compiles nothing.
    probe = subprocess.run([sys.executable, "-c", "from kernels import numba_backend as nb; "
                            "info = nb.warmup(first_layer_width=16); "
                            "print(info.compiled, info.loaded)"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert probe.returncode == 0, probe.stderr
    compiled, loaded = map(int, probe.stdout.split())
    assert compiled == 0 and loaded > 0
