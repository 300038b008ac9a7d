"""fastnn.idx: reading MNIST's IDX files, and refusing every kind of bad file clearly.

Each test writes its own tiny IDX files; headers are packed here by hand with
struct (big-endian), independently of the reader under test.
"""

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastnn import idx
from fastnn.mnist import DataError

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
LABELS = np.array([3, 0, 9, 1, 7], dtype=np.uint8)


def idx_bytes(array: np.ndarray, type_byte: int = 0x08, ndim: int | None = None) -> bytes:
    """An IDX file: 00 00 <type> <ndim>, big-endian uint32 dims, then the elements."""
    ndim = array.ndim if ndim is None else ndim
    return (bytes([0, 0, type_byte, ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.tobytes())


def write(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


# --- good files -----------------------------------------------------------------------------

def test_reads_raw_images_as_rows_of_784_and_labels(tmp_path):
    images = idx.read_images(write(tmp_path, "imgs", idx_bytes(IMAGES)))
    labels = idx.read_labels(write(tmp_path, "lbls", idx_bytes(LABELS)))
    assert images.shape == (5, 784) and images.dtype == np.uint8
    assert images.flags.c_contiguous and images.flags.writeable
    np.testing.assert_array_equal(images, IMAGES.reshape(5, 784))
    np.testing.assert_array_equal(labels, LABELS)
    assert labels.dtype == np.uint8 and labels.flags.writeable


def test_gzip_is_recognised_by_its_magic_bytes_not_by_the_file_name(tmp_path):
    gz_named_plainly = write(tmp_path, "train-images-idx3-ubyte", gzip.compress(idx_bytes(IMAGES)))
    raw_named_gz = write(tmp_path, "train-labels-idx1-ubyte.gz", idx_bytes(LABELS))
    np.testing.assert_array_equal(idx.read_images(gz_named_plainly), IMAGES.reshape(5, 784))
    np.testing.assert_array_equal(idx.read_labels(raw_named_gz), LABELS)


def test_gzip_with_several_members_is_read_whole(tmp_path):
    # 300 random images gzip to ~240 kB: members and the reader's chunks cross each other.
    many = RNG.integers(0, 256, size=(300, 28, 28), dtype=np.uint8)
    content = idx_bytes(many)
    members = b"".join(gzip.compress(content[a:b]) for a, b in
                       [(0, 1000), (1000, 150_000), (150_000, len(content))])
    images = idx.read_images(write(tmp_path, "imgs.gz", members))
    np.testing.assert_array_equal(images, many.reshape(300, 784))


def test_zero_images_is_a_valid_empty_file(tmp_path):
    empty = np.zeros((0, 28, 28), dtype=np.uint8)
    assert idx.read_images(write(tmp_path, "imgs", idx_bytes(empty))).shape == (0, 784)


def test_other_image_sizes_can_be_asked_for(tmp_path):
    small = RNG.integers(0, 256, size=(2, 4, 3), dtype=np.uint8)
    assert idx.read_images(write(tmp_path, "imgs", idx_bytes(small)), rows=4, cols=3).shape == (2, 12)


# --- bad files: each is a DataError whose one line names the file, the fault and the fix ------

GOOD_IMAGES = idx_bytes(IMAGES)
GOOD_LABELS = idx_bytes(LABELS)
HTML = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n"

BAD_FILES = {
    # case: (reader, file content, fragment the message must contain)
    "truncated images": ("images", GOOD_IMAGES[:-100], "is truncated: its header declares 5 images of 28x28 (3,920 bytes) but only 3,820 bytes follow"),
    "truncated labels": ("labels", GOOD_LABELS[:-1], "is truncated"),
    "truncated header": ("images", GOOD_IMAGES[:10], "truncated inside its 16-byte IDX header"),
    "extra bytes": ("images", GOOD_IMAGES + b"\x00" * 7, "has 7 unexpected extra bytes"),
    "not IDX at all": ("images", b"PK\x03\x04 a zip file", "is not an IDX file (it starts with bytes 50 4b 03 04"),
    "too short": ("labels", b"\x00\x00", "is too short (2 bytes)"),
    "empty": ("labels", b"", "the file is empty"),
    "labels given as images": ("images", GOOD_LABELS, "holds labels (magic 0x00000801) where images were expected"),
    "images given as labels": ("labels", GOOD_IMAGES, "holds images (magic 0x00000803) where labels were expected"),
    "float32 elements": ("images", idx_bytes(IMAGES.astype(">f4"), type_byte=0x0D), "type 0x0D (float32), expected 0x08 (unsigned byte)"),
    "32x32 images": ("images", idx_bytes(np.zeros((2, 32, 32), np.uint8)), "holds 32x32 images, expected 28x28"),
    "label out of range": ("labels", idx_bytes(np.array([1, 2, 3, 10, 4], np.uint8)), "label 10 at position 3 is outside 0..9"),
    "html page": ("images", HTML, "is an HTML/XML page, not an IDX file"),
    "gzipped html page": ("images", gzip.compress(HTML), "is an HTML/XML page"),
    "xml error page": ("labels", b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', "HTML/XML page"),
    "corrupt gzip": ("images", gzip.compress(GOOD_IMAGES)[:30] + b"\xff" * 20 + gzip.compress(GOOD_IMAGES)[50:], "is a corrupt gzip file"),
    "gzip crc mismatch": ("images", gzip.compress(GOOD_IMAGES)[:-8] + b"\x00" * 8, "is a corrupt gzip file"),
    "truncated gzip": ("images", gzip.compress(GOOD_IMAGES)[:-20], "is a truncated gzip file"),
    "gzip then garbage": ("labels", gzip.compress(GOOD_LABELS) + b"junk", "has 4 bytes of garbage after the gzip data"),
}


def read(kind, path):
    return idx.read_images(path) if kind == "images" else idx.read_labels(path)


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_raises_one_actionable_line_naming_the_file(tmp_path, case):
    kind, content, fragment = BAD_FILES[case]
    path = write(tmp_path, "t10k-data", content)
    with pytest.raises(DataError) as caught:
        read(kind, path)
    message = str(caught.value)
    assert fragment in message
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert "delete it" in message or "point fastnn at the MNIST files" in message


def test_data_error_is_the_one_class_shared_with_fastnn_mnist():
    assert idx.DataError is DataError


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot be read"):
        idx.read_labels(tmp_path / "nope.gz")


def test_html_detection_ignores_leading_whitespace_and_case():
    assert idx.looks_like_html(b"\n  <HTML><body>Access denied")
    assert idx.looks_like_html(b"\xef\xbb\xbf<!doctype html>")
    assert not idx.looks_like_html(GOOD_IMAGES[:512])
    assert not idx.looks_like_html(gzip.compress(GOOD_IMAGES)[:512])


# --- properties -----------------------------------------------------------------------------

image_arrays = st.integers(0, 6).flatmap(
    lambda n: st.binary(min_size=n * 784, max_size=n * 784).map(
        lambda b: np.frombuffer(b, np.uint8).reshape(n, 28, 28)))
label_arrays = st.lists(st.integers(0, 9), max_size=50).map(lambda v: np.array(v, np.uint8))


@settings(max_examples=40, deadline=None)
@given(images=image_arrays, labels=label_arrays, gz=st.booleans())
def test_any_valid_file_round_trips(tmp_path_factory, images, labels, gz):
    folder = tmp_path_factory.mktemp("rt")
    pack = gzip.compress if gz else (lambda b: b)
    got_images = idx.read_images(write(folder, "i", pack(idx_bytes(images))))
    got_labels = idx.read_labels(write(folder, "l", pack(idx_bytes(labels))))
    np.testing.assert_array_equal(got_images, images.reshape(len(images), 784))
    np.testing.assert_array_equal(got_labels, labels)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), gz=st.booleans())
def test_any_truncation_or_byte_flip_is_either_caught_or_harmless(tmp_path_factory, data, gz):
    """Damage never escapes as anything but DataError, and never yields wrongly shaped data."""
    content = gzip.compress(GOOD_IMAGES) if gz else GOOD_IMAGES
    damaged = bytearray(content)
    if data.draw(st.booleans(), label="truncate"):
        damaged = damaged[:data.draw(st.integers(0, len(content) - 1), label="keep")]
    else:
        at = data.draw(st.integers(0, len(content) - 1), label="at")
        damaged[at] ^= data.draw(st.integers(1, 255), label="xor")
    path = write(tmp_path_factory.mktemp("dmg"), "imgs", bytes(damaged))
    try:
        images = idx.read_images(path)
    except DataError:
        return
    assert images.shape == (5, 784)
    changed = (images != IMAGES.reshape(5, 784)).sum()
    if gz:
        # The CRC covers the payload, not the header's flags, time, XFL and OS bytes:
        # damage that passes left the pixels exactly as they were.
        assert changed == 0
    else:
        # A flipped pixel byte in a raw file can pass: one value changed.
        assert changed == 1
