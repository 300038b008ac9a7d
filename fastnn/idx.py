"""Read MNIST's IDX files (gzipped or raw) into NumPy arrays, validating everything.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the elements in C order. MNIST uses type
``0x08`` (unsigned byte): images are ``00 00 08 03`` with dims (n, 28, 28),
labels ``00 00 08 01`` with dims (n,).

Whether a file is gzipped is decided by its first two bytes (``1f 8b``), never
by its name. Anything wrong with a file raises `DataError` with one line that
names the file, says what is wrong and what to do about it.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DataError", "read_bytes", "parse_images", "parse_labels", "read_images",
           "read_labels", "looks_like_html"]

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
IMAGES_NDIM = 3
LABELS_NDIM = 1
_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
               0x0D: "float32", 0x0E: "float64"}
_FIX = "delete it and run again to re-download it, or replace it with a good copy"
_CHUNK = 1 << 16  # compressed bytes fed to zlib per call: keeps each output piece cache-sized


class DataError(Exception):
    """A data file is missing, unreadable or not what it should be (one-line message).

    ``problem`` is the bare finding ("is truncated: ..."), for callers that
    report it in a message of their own.
    """

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem if problem is not None else message


def _fail(path, problem: str, fix: str = _FIX) -> DataError:
    return DataError(f"{path}: {problem}; {fix}.", problem)


def looks_like_html(head: bytes) -> bool:
    """True if ``head`` (a file's first bytes) starts like an HTML or XML page."""
    start = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype", b"<html", b"<head", b"<?xml", b"<!--"))


def read_bytes(path) -> np.ndarray:
    """The file's content as a writable 1-D uint8 array, gunzipped if it is gzip.

    Gzip is decompressed straight into one growing buffer (sized from the gzip
    trailer), so the result is writable without a second 47 MB copy.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = np.empty(size, dtype=np.uint8)
            got = f.readinto(memoryview(raw))
    except OSError as err:
        raise _fail(path, f"cannot be read ({err.strerror or err})",
                    "check the path and its permissions") from None
    raw = raw[:got]
    if got == 0:
        raise _fail(path, "the file is empty")
    if raw[:2].tobytes() == GZIP_MAGIC:
        return _gunzip(path, memoryview(raw))
    return raw


def _gunzip(path: Path, data: memoryview) -> np.ndarray:
    # The trailer's ISIZE is the uncompressed size mod 2**32 of the last member:
    # exact for MNIST, only a first guess in general (the buffer grows if needed).
    # 1032 is deflate's largest possible expansion ratio.
    hint = int.from_bytes(data[-4:], "little") if len(data) >= 18 else 0
    out = np.empty(max(64, min(hint, 1032 * len(data))), dtype=np.uint8)
    filled = 0
    pos = 0
    inflater = zlib.decompressobj(wbits=31)  # 31: expect a gzip header and trailer
    try:
        while pos < len(data):
            end = min(pos + _CHUNK, len(data))
            piece = inflater.decompress(data[pos:end])
            pos = end
            if inflater.eof:
                # Stream ended inside this chunk: rewind to the first unused byte.
                pos -= len(inflater.unused_data)
            if len(piece) > len(out) - filled:
                out = np.resize(out, max(2 * len(out), filled + len(piece)))
            out[filled:filled + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            filled += len(piece)
            if inflater.eof:
                if pos >= len(data):
                    break
                if bytes(data[pos:pos + 2]) != GZIP_MAGIC:
                    raise _fail(path, f"has {len(data) - pos} bytes of garbage after the gzip data")
                inflater = zlib.decompressobj(wbits=31)  # a further gzip member follows
    except zlib.error as err:
        raise _fail(path, f"is a corrupt gzip file ({err})") from None
    if not inflater.eof:
        raise _fail(path, "is a truncated gzip file (it ends mid-stream, e.g. an "
                          "interrupted download)")
    return out[:filled]


def _header(path, buf: np.ndarray, ndim: int, kind: str) -> tuple:
    """Check the magic number; return (dims, header length)."""
    head = buf[:4].tobytes()
    if looks_like_html(buf[:512].tobytes()):
        raise _fail(path, "is an HTML/XML page, not an IDX file (probably an error page "
                          "saved instead of the data)")
    if len(head) < 4:
        raise _fail(path, f"is too short ({len(buf)} bytes) to be an IDX file")
    if head[:2] != b"\x00\x00":
        raise _fail(path, f"is not an IDX file (it starts with bytes {head.hex(' ')}, "
                          f"expected 00 00 08 0{ndim})")
    if head[2] != UBYTE:
        name = _TYPE_NAMES.get(head[2], "unknown")
        raise _fail(path, f"holds IDX elements of type 0x{head[2]:02X} ({name}), "
                          f"expected 0x08 (unsigned byte)")
    if head[3] != ndim:
        other = {IMAGES_NDIM: "images", LABELS_NDIM: "labels"}.get(head[3], f"{head[3]}-D data")
        raise _fail(path, f"holds {other} (magic 0x{int.from_bytes(head, 'big'):08X}) where "
                          f"{kind} were expected (magic 0x{0x800 + ndim:08X}); check the file name")
    length = 4 + 4 * ndim
    if len(buf) < length:
        raise _fail(path, f"is truncated inside its {length}-byte IDX header")
    dims = tuple(int(d) for d in buf[4:length].view(">u4"))
    return dims, length


def _body(path, buf: np.ndarray, dims: tuple, length: int, what: str) -> np.ndarray:
    """The elements after the header, checked against the declared dims."""
    expected = math.prod(dims)
    actual = len(buf) - length
    if actual < expected:
        raise _fail(path, f"is truncated: its header declares {what} ({expected:,} bytes) "
                          f"but only {actual:,} bytes follow")
    if actual > expected:
        raise _fail(path, f"has {actual - expected:,} unexpected extra bytes after the "
                          f"{what} its header declares")
    return buf[length:]


def parse_images(buf: np.ndarray, path, rows: int = 28, cols: int = 28) -> np.ndarray:
    """IDX image content (from `read_bytes`) as an (n, rows*cols) uint8 array.

    ``path`` is used only in error messages. The result is a view of ``buf``.
    """
    dims, length = _header(path, buf, IMAGES_NDIM, "images")
    n, r, c = dims
    if (r, c) != (rows, cols):
        raise _fail(path, f"holds {r}x{c} images, expected {rows}x{cols}",
                    "it is not MNIST: point fastnn at the MNIST files")
    body = _body(path, buf, dims, length, f"{n:,} images of {r}x{c}")
    return body.reshape(n, r * c)


def parse_labels(buf: np.ndarray, path, n_classes: int = 10) -> np.ndarray:
    """IDX label content (from `read_bytes`) as an (n,) uint8 array of values < n_classes."""
    dims, length = _header(path, buf, LABELS_NDIM, "labels")
    labels = _body(path, buf, dims, length, f"{dims[0]:,} labels")
    if labels.size and labels.max() >= n_classes:
        bad = int(np.argmax(labels >= n_classes))
        raise _fail(path, f"label {labels[bad]} at position {bad} is outside 0..{n_classes - 1}")
    return labels


def read_images(path, rows: int = 28, cols: int = 28) -> np.ndarray:
    """Read an IDX image file (gzipped or raw) as an (n, rows*cols) uint8 array."""
    return parse_images(read_bytes(path), path, rows, cols)


def read_labels(path, n_classes: int = 10) -> np.ndarray:
    """Read an IDX label file (gzipped or raw) as an (n,) uint8 array."""
    return parse_labels(read_bytes(path), path, n_classes)
