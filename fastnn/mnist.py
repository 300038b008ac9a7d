"""Find, download, validate and load MNIST, or fall back to the bundled sample.

Full MNIST is looked for in the ``data_dir`` argument if given, else in
``$FASTNN_DATA_DIR`` if set (a folder the user names is the only place
searched, and an error if it does not hold MNIST), else in the per-user cache
(`cache_dir`). A directory may hold each of the four files gzipped
(``train-images-idx3-ubyte.gz``) or raw (``train-images-idx3-ubyte``),
directly or in torchvision's ``MNIST/raw/``.
Local files are not checksummed (recompressed copies are fine); their content
is validated by `fastnn.idx`. Files missing from the cache are downloaded from
the mirrors in order (`fastnn.mnist_download`), md5-checked, stored atomically
and validated; nothing that fails a check stays in the cache.
`fastnn.mnist_files` knows where the files may lie.

    >>> data = load()                      # full MNIST if possible, else the sample
    >>> data.train_images.shape, data.source
    ((60000, 784), 'mnist')
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from . import idx, mnist_download, mnist_files
from .idx import DataError
from .mnist_files import DATA_DIR_ENV, FILES, DataDirError

__all__ = ["DataError", "DataDirError", "MnistData", "load", "load_sample", "cache_dir",
           "find_local"]

CACHE_DIR_ENV = "FASTNN_CACHE_DIR"
MIRRORS_ENV = "FASTNN_MNIST_MIRRORS"

#: Base URLs tried in order (yann.lecun.com refuses downloads).
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
#: md5 of each .gz as served by the mirrors (torchvision's list). Tests swap in their own.
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: sha256 of each decompressed official file: tells the real MNIST from look-alikes.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SAMPLE_PATH = Path(__file__).resolve().parent / "sample" / "mnist_sample.npz"

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class MnistData:
    """MNIST (or the sample) as uint8 arrays: images (n, 784) C-contiguous, labels (n,) in 0..9.

    ``source`` is ``"mnist"`` or ``"sample"``; ``origin`` the directory the files
    came from, or ``"bundled sample"``; ``note`` one line for the user, or None.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    origin: str
    note: str | None = None

    def __repr__(self) -> str:
        return (f"MnistData(source={self.source!r}, origin={self.origin!r}, "
                f"train={len(self.train_labels):,}, test={len(self.test_labels):,}, "
                f"note={self.note!r})")


def cache_dir() -> Path:
    """Per-user download cache: ``$FASTNN_CACHE_DIR``, else the OS cache (``~/.cache/fastnn``)."""
    env = os.environ.get(CACHE_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    # platformdirs, not pooch.os_cache (the same directory): pooch brings requests, 0.15 s
    # of every start-up, and a run that finds its data needs neither.
    import platformdirs

    return Path(platformdirs.user_cache_dir("fastnn")).expanduser().absolute()


_default_cache = cache_dir  # `load` has a parameter of the same name


def find_local(data_dir=None) -> Path | None:
    """The first of data_dir, ``$FASTNN_DATA_DIR``, cache dir that holds all four files, or None.

    Only presence is checked here; `load` validates the content.
    """
    places = [path for _, _, path in mnist_files.user_places(data_dir)] + [cache_dir()]
    for directory in places:
        if directory is not None and mnist_files.scan(directory)[0] is not None:
            return directory
    return None


def load_sample() -> MnistData:
    """The bundled sample: 10,000 training and 2,000 test images, stratified by class."""
    try:
        with np.load(SAMPLE_PATH) as npz:
            arrays = {key: npz[key] for key in
                      ("train_images", "train_labels", "test_images", "test_labels")}
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"{SAMPLE_PATH}: the bundled MNIST sample is missing or unreadable "
                        f"({err}); reinstall fastnn.") from None
    return MnistData(**arrays, source="sample", origin="bundled sample", note=None)


def load(source: str = "auto", data_dir=None, *, download: bool = True, cache_dir=None,
         mirrors=None) -> MnistData:
    """Load MNIST.

    Parameters
    ----------
    source : {"auto", "mnist", "sample"}
        "mnist": the full set or `DataError`; "sample": the bundled sample;
        "auto": the full set if found or downloadable, else the sample with
        ``note`` saying why.
    data_dir : path, optional
        The folder holding the four MNIST files; default ``$FASTNN_DATA_DIR``,
        else the cache.
    download : bool
        Download missing files into the cache (from ``mirrors``).
    cache_dir : path, optional
        Download cache; default `fastnn.mnist.cache_dir()`.
    mirrors : sequence of str, optional
        Base URLs to try in order; default ``$FASTNN_MNIST_MIRRORS`` (comma-separated),
        else `MIRRORS`.

    A folder named by ``data_dir`` or ``$FASTNN_DATA_DIR`` is the only place
    searched; if it does not hold the four files, `DataDirError` says what it
    holds instead. Files that are found but broken raise `DataError`. Either
    way, whatever ``source`` is: silently training on the sample instead would
    hide the problem. The sample stands in only when no folder was named.
    """
    if source == "sample":
        return load_sample()
    if source not in ("auto", "mnist"):
        raise ValueError(f"Unknown MNIST source {source!r}: choose one of auto, mnist, sample.")
    cache = Path(cache_dir).expanduser().absolute() if cache_dir is not None else _default_cache()
    try:
        return _load_full(data_dir, cache, _mirrors(mirrors), download)
    except _NotFound as missing:
        if source == "mnist":
            raise DataError(missing.error()) from None
        sample = load_sample()
        return replace(sample, note=missing.note(len(sample.train_labels), len(sample.test_labels)))


# --- what was searched ------------------------------------------------------------------------

class _NotFound(Exception):
    """Full MNIST is neither local nor downloadable: what was searched and tried."""

    def __init__(self, looked: list, failures: list, cache: Path, mirrors: list):
        super().__init__()
        self.looked, self.failures, self.cache, self.mirrors = looked, failures, cache, mirrors

    def error(self) -> str:
        tried = "; ".join(f"{url}: {why}" for url, why in self.failures) or "download disabled"
        files = ", ".join(f"{name}.gz" for name in FILES)
        return (f"Full MNIST not found. Looked in: {'; '.join(self.looked)}. "
                f"Download: {tried}. Fix: point --data-dir or ${DATA_DIR_ENV} at a folder "
                f"holding {files} (or the unzipped files), or download those four files from "
                f"{self.mirrors[0] if self.mirrors else MIRRORS[0]} into {self.cache}.")

    def note(self, n_train: int, n_test: int) -> str:
        if self.failures:
            reasons = {}
            for url, why in self.failures:  # one reason per mirror host keeps the line short
                reasons.setdefault(urlsplit(url).netloc or url, why)
            tried = "download failed: " + ", ".join(f"{h} ({w})" for h, w in reasons.items())
        else:
            tried = "download disabled"
        return (f"Full MNIST not found (looked in: {'; '.join(self.looked)}; {tried}); "
                f"using the bundled {n_train:,}/{n_test:,}-image sample. Point --data-dir or "
                f"${DATA_DIR_ENV} at the MNIST files for the full set.")


def _mirrors(mirrors) -> list:
    if mirrors is None:
        env = os.environ.get(MIRRORS_ENV, "").strip()
        mirrors = env.split(",") if env else MIRRORS
    elif isinstance(mirrors, str):
        mirrors = mirrors.split(",")
    return [m.strip() for m in mirrors if m.strip()]


# --- reading --------------------------------------------------------------------------------

def _read(path: Path, name: str) -> tuple:
    """(validated array, sha256 of the decompressed file)."""
    content = idx.read_bytes(path)
    digest = hashlib.sha256(content).hexdigest()
    if "images" in name:
        return idx.parse_images(content, path), digest
    return idx.parse_labels(content, path), digest


def _assemble(arrays: dict, paths: dict, digests: dict, origin: Path,
              note: str | None) -> MnistData:
    for split in ("train", "t10k"):
        images, labels = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        if len(arrays[images]) != len(arrays[labels]):
            raise DataError(f"{paths[images]} holds {len(arrays[images]):,} images but "
                            f"{paths[labels]} holds {len(arrays[labels]):,} labels; replace them "
                            f"with a matching pair of MNIST files.")
    unofficial = [name for name in FILES if digests[name] != SHA256[name]]
    if unofficial:
        warning = (f"{origin} holds valid IDX files that differ from the official MNIST "
                   f"({', '.join(unofficial)}); results will not match published MNIST numbers.")
        note = f"{note} {warning}" if note else warning
    return MnistData(arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"],
                     arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"],
                     source="mnist", origin=str(origin), note=note)


def _load_full(data_dir, cache: Path, mirrors: list, download: bool) -> MnistData:
    looked = []
    for place, given, directory in mnist_files.user_places(data_dir):
        if directory is None:
            looked.append(f"{place} not set")
            continue
        found, finding, bad_path = mnist_files.scan(directory)
        if found is None:  # a named folder is final: never fall back from it
            raise DataDirError(place, given, directory, finding, bad_path)
        arrays, digests = {}, {}
        for name, path in found.items():
            arrays[name], digests[name] = _read(path, name)
        return _assemble(arrays, found, digests, directory, None)

    # The cache is ours: keep what is valid, remove what is not, download the rest.
    arrays, digests, paths, removed = {}, {}, {}, []
    for name in FILES:
        path = mnist_files.locate(cache, name) if cache.is_dir() else None
        if path is None:
            continue
        try:
            arrays[name], digests[name] = _read(path, name)
            paths[name] = path
        except DataError as err:
            _discard(path, err)
            removed.append(f"removed invalid {path.name}: {err.problem}")
    missing = [name for name in FILES if name not in arrays]
    if missing:
        status = ("does not exist" if not cache.exists() else
                  "no MNIST files" if len(missing) == len(FILES) else
                  "missing " + ", ".join(missing))
        looked.append(f"cache {cache} ({'; '.join([*removed, status])})")
        if not download:
            raise _NotFound(looked, [], cache, mirrors)
        if not mirrors:
            raise _NotFound(looked, [("mirrors", f"none given (check ${MIRRORS_ENV})")], cache,
                            mirrors)
    used = []
    for name in missing:
        base, path, (arrays[name], digests[name]) = _download(name, cache, mirrors, looked)
        paths[name] = path
        used.append(urlsplit(base).netloc or base)
        mirrors.remove(base)  # the mirror that just worked is tried first for the next file
        mirrors.insert(0, base)
    note = None
    if missing:
        hosts = ", ".join(dict.fromkeys(used))
        note = f"Downloaded {len(missing)} MNIST file(s) from {hosts} into {cache}."
    return _assemble(arrays, paths, digests, cache, note)


def _discard(path: Path, err: DataError) -> None:
    """Remove an invalid file from the cache; if that is impossible, say so."""
    try:
        path.unlink(missing_ok=True)  # another process may have removed it first
    except OSError:
        raise err from None
    log.info("removed invalid cached file: %s", err)


# --- downloading ----------------------------------------------------------------------------

def _download(name: str, cache: Path, mirrors: list, looked: list) -> tuple:
    """Fetch ``name.gz`` into ``cache`` from the first mirror that serves a valid copy.

    Returns (mirror, path, (array, sha256)); raises `_NotFound` listing every failed URL.
    """
    fname = f"{name}.gz"
    failures = []
    for base in list(mirrors):
        url = base.rstrip("/") + "/" + fname
        log.info("downloading %s", url)
        try:
            path = mnist_download.retrieve(url, MD5[fname], cache)
        except mnist_download.DownloadFailed as failed:
            failures.append((url, failed.reason))
            continue
        try:
            return base, path, _read(path, name)
        except DataError as err:  # the checksum matched but the content is bad: do not keep it
            path.unlink(missing_ok=True)
            failures.append((url, err.problem))
    raise _NotFound(looked, failures, cache, mirrors)
