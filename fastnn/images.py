"""Turn a picture of a digit into an MNIST-style 28x28 input, the way MNIST was made.

LeCun et al. size-normalised each digit to fit a 20x20 box, keeping its
aspect ratio and anti-aliasing it to grey levels, then centred it in a 28x28
field by its centre of mass. `to_mnist` does the same to any greyscale or
colour array, after two steps a photo needs and MNIST did not: it inverts a
light background (MNIST digits are light on black) and subtracts the
background level. Everything here is a pure function over NumPy arrays;
only `read_image` needs Pillow (the ``images`` extra).

Accepted pixel values: unsigned integers (uint8 0-255, uint16 0-65535) or
floats in [0, 1]. Arrays are (h, w) grey, or (h, w, c) with c = 1 (grey),
2 (grey + alpha), 3 (RGB) or 4 (RGBA).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from .extras import require

SIZE = 28  #: side of an MNIST image
BOX = 20  #: side of the box the digit is scaled to fit
#: Where MNIST puts the centre of mass, in (row, column) pixel indices
#: (measured on the training set: 14.0 +- 0.3 in both directions).
CENTRE = (14.0, 14.0)
#: Ink below this fraction of the darkest stroke is background noise (paper texture).
NOISE = 0.15
#: File types `read_inputs` understands.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Largest image `read_image` decodes, in pixels: a 50-megapixel phone photo. Larger
#: ones are refused before decoding, which would take up to 4 bytes a pixel.
MAX_PIXELS = 50_000_000
#: Images are shrunk to at most this many pixels a side as they are read: the digit
#: ends up 20 pixels tall, and float64 arithmetic on the full size would take GBs.
WORK_SIDE = 1024
# What Pillow raises on a damaged or unsupported file: OSError (UnidentifiedImageError
# among them) mostly, but ValueError for some bad headers, SyntaxError for a broken
# PNG chunk, EOFError when frames run out early.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)
# ITU-R 601-2 luma, as Pillow's "L" mode uses.
_LUMA = np.array([0.299, 0.587, 0.114])


def to_unit(pixels) -> np.ndarray:
    """Pixel values as float64 in [0, 1]: integers are divided by their type's maximum.

    Floats must already lie in [0, 1]; anything else raises `ValueError`.
    """
    a = np.asarray(pixels)
    if a.dtype == np.bool_:
        return a.astype(np.float64)
    if np.issubdtype(a.dtype, np.unsignedinteger):
        return a.astype(np.float64) / np.iinfo(a.dtype).max
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError("pixel values contain NaN or infinity")
        slack = 1e-6  # rounding in the caller's own scaling is not an error
        if a.size and (a.min() < -slack or a.max() > 1 + slack):
            raise ValueError(f"float pixel values must lie in [0, 1], got {a.min():g} to "
                             f"{a.max():g} (divide 0-255 values by 255, or save them as uint8)")
        return np.clip(a, 0, 1)
    raise ValueError(f"pixel dtype {a.dtype} is not supported: use uint8 (0-255) or "
                     "float (0-1)")


def to_gray(image) -> np.ndarray:
    """A (h, w) float64 grey image in [0, 1] from grey, grey+alpha, RGB or RGBA pixels.

    Transparent pixels count as background: the image is composited over
    white when the opaque strokes are dark, over black when they are light.
    """
    a = to_unit(image)
    if a.ndim == 3 and a.shape[2] in (1, 2, 3, 4):
        colour, alpha = (a[..., :-1], a[..., -1]) if a.shape[2] in (2, 4) else (a, None)
        gray = colour[..., 0] if colour.shape[2] == 1 else colour @ _LUMA
        if alpha is not None and alpha.min() < 1:
            weight = alpha.sum()
            strokes = (gray * alpha).sum() / weight if weight > 0 else 0.0
            backdrop = 1.0 if strokes < 0.5 else 0.0
            gray = alpha * gray + (1 - alpha) * backdrop
        return gray
    if a.ndim != 2:
        raise ValueError(f"an image must be (h, w) or (h, w, channels), got shape {a.shape}")
    return a


def resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights that resize one axis with an anti-aliased linear filter.

    A triangle filter, widened by the shrink factor when shrinking, so each
    output pixel averages every input pixel it covers (Pillow's BILINEAR).
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    distance = np.abs((np.arange(n_in) + 0.5)[None, :] - centres[:, None])
    weights = np.clip(1 - distance / support, 0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def resize(image: np.ndarray, shape: tuple) -> np.ndarray:
    """Resize a (h, w) float image to ``shape`` = (rows, columns) with `resample_matrix`."""
    rows = resample_matrix(image.shape[0], shape[0])
    cols = resample_matrix(image.shape[1], shape[1])
    return rows @ image @ cols.T


def centre_of_mass(image: np.ndarray) -> tuple:
    """(row, column) of the intensity-weighted centre, in pixel indices."""
    total = image.sum()
    rows = (image.sum(axis=1) * np.arange(image.shape[0])).sum() / total
    cols = (image.sum(axis=0) * np.arange(image.shape[1])).sum() / total
    return float(rows), float(cols)


def border(image: np.ndarray) -> np.ndarray:
    """The pixels of the image's outer ring (a few pixels wide on large images)."""
    h, w = image.shape
    k = max(1, min(h, w) // 20)
    return np.concatenate([image[:k].ravel(), image[-k:].ravel(),
                           image[k:-k, :k].ravel(), image[k:-k, -k:].ravel()])


def ink(image) -> np.ndarray:
    """Light-on-dark ink (h, w) in [0, 1]: grey, inverted if the border is light, background gone.

    Raises `ValueError` when nothing stands out from the background.
    """
    gray = to_gray(image)
    background = float(np.median(border(gray)))
    if background > 0.5:
        gray, background = 1 - gray, 1 - background
    strokes = np.clip(gray - background, 0, None)
    peak = strokes.max()
    if peak < 0.05:
        raise ValueError("no digit found: the image is blank (nothing differs from its border)")
    strokes /= peak
    strokes[strokes < NOISE] = 0
    return strokes


def to_mnist(image) -> np.ndarray:
    """An MNIST-style (28, 28) float32 image in [0, 1] from a picture of one digit.

    Steps: `ink` (grey, dark background, background removed), crop to the
    bounding box of the ink, scale to fit a 20x20 box keeping the aspect
    ratio, place in 28x28 with the centre of mass at `CENTRE`, stretch so the
    brightest pixel is 1. An MNIST digit comes back nearly unchanged.
    """
    strokes = ink(image)
    rows = np.flatnonzero(strokes.any(axis=1))
    cols = np.flatnonzero(strokes.any(axis=0))
    crop = strokes[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    digit = resize(crop, shape)
    r, c = centre_of_mass(digit)
    top = int(np.clip(round(CENTRE[0] - r), 0, SIZE - shape[0]))
    left = int(np.clip(round(CENTRE[1] - c), 0, SIZE - shape[1]))
    out = np.zeros((SIZE, SIZE))
    out[top:top + shape[0], left:left + shape[1]] = digit
    return (out / out.max()).astype(np.float32)


def check_shape(shape: tuple) -> None:
    """Raise `ValueError` unless ``shape`` is one image (28, 28) or (784,), or a stack of them."""
    if shape in ((SIZE, SIZE), (SIZE * SIZE,)):
        return
    if len(shape) == 3 and shape[1:] == (SIZE, SIZE) or len(shape) == 2 and shape[1] == SIZE * SIZE:
        if shape[0] == 0:
            raise ValueError("the array holds no images (its first dimension is 0)")
        return
    raise ValueError(f"an array must be one image (28, 28) or (784,), or a stack (n, 28, 28) "
                     f"or (n, 784); got shape {shape}")


def split_array(array) -> list:
    """The images in an array loaded from .npy: a list of (28, 28) arrays (dtype kept).

    Accepts the shapes `check_shape` accepts.
    """
    a = np.asarray(array)
    check_shape(a.shape)
    return list(a.reshape(-1, SIZE, SIZE))


class _TooLarge(ValueError):
    """An image over `MAX_PIXELS`."""


def read_image(path) -> np.ndarray:
    """Pixels of an image file as uint8, (h, w) grey or (h, w, 4) RGBA if it has transparency.

    Needs Pillow (``pip install "fastnn[images]"``). EXIF rotation is applied.
    Images over `MAX_PIXELS` are refused before they are decoded, and images
    larger than `WORK_SIDE` are shrunk (by averaging) as they are read, so
    memory stays bounded. Anything Pillow cannot decode raises `ValueError`.
    """
    pil = require("PIL.Image", "images", f"reading {Path(path).name}")
    ops = require("PIL.ImageOps", "images", f"reading {Path(path).name}")
    too_large = "fastnn predict reads images of up to {:.0f} megapixels: scale it down, or crop " \
                "it to the digit".format(MAX_PIXELS / 1e6)
    try:
        with warnings.catch_warnings():
            # Pillow's warnings about damaged metadata would only add noise to the one line
            # that reports a failure; its warning about a huge image becomes a refusal.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", pil.DecompressionBombWarning)
            with pil.open(path) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise _TooLarge(f"{path}: the image is {width}x{height} pixels "
                                    f"({width * height / 1e6:.0f} megapixels); {too_large}")
                opened.draft(opened.mode, (WORK_SIDE, WORK_SIDE))  # JPEG: decode at 1/2..1/8
                picture = ops.exif_transpose(opened)
                transparent = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
                picture = picture.convert("RGBA" if transparent else "L")
                factor = math.ceil(max(picture.size) / WORK_SIDE)
                return np.asarray(picture.reduce(factor) if factor > 1 else picture)
    except _TooLarge:
        raise
    except (pil.DecompressionBombWarning, pil.DecompressionBombError) as err:
        # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that.
        limit = pil.MAX_IMAGE_PIXELS * (2 if isinstance(err, pil.DecompressionBombError) else 1)
        raise ValueError(f"{path}: the image is more than {limit / 1e6:.0f} megapixels (Pillow "
                         f"refuses it as a possible decompression bomb); {too_large}") from None
    except _DECODE_ERRORS as err:
        raise ValueError(f"{path}: not a readable image ({err})") from None


def read_inputs(path) -> list:
    """The images in one file, as a list of pixel arrays: one per image (.npy stacks give n).

    ``.npy`` files are loaded without pickle and checked by `split_array`;
    other suffixes in `IMAGE_SUFFIXES` are read with `read_image`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            with open(path, "rb") as file:
                if file.read(6) != b"\x93NUMPY":
                    raise ValueError(f"{path}: not a readable .npy file (no NumPy header)")
            try:  # the shape, from the header alone: a wrong one is not worth reading
                shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            except ValueError:
                shape = None  # np.load below says what is wrong (Python objects, truncation...)
            if shape is not None:
                check_shape(shape)
            return split_array(np.load(path, allow_pickle=False))
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: not a readable .npy file ({err})") from None
        except ValueError as err:
            message = str(err)
            raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}"
                             ) from None
    if suffix in IMAGE_SUFFIXES:
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        return [read_image(path)]
    raise ValueError(f"{path}: unknown file type {suffix or '(none)'}; use .npy or an image "
                     f"({', '.join(IMAGE_SUFFIXES)})")


def prepare(pixels, *, preprocess: bool = True) -> np.ndarray:
    """One network input row (784,) float32 in [0, 1] from a digit's pixels.

    ``preprocess=False`` takes a (28, 28) image as already MNIST-formatted and
    only scales its values.
    """
    if preprocess:
        return to_mnist(pixels).ravel()
    a = to_unit(pixels)
    if a.shape != (SIZE, SIZE):
        raise ValueError(f"without preprocessing an image must be 28x28 grey, got {a.shape}")
    return a.astype(np.float32).ravel()


def top_classes(probabilities: np.ndarray, classes, k: int = 3) -> list:
    """The ``k`` most probable (class, probability) pairs of one row, best first."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(classes[i]), float(probabilities[i])) for i in order]


def classify_files(net, paths, *, top: int = 3, preprocess: bool = True,
                   backend: str | None = None) -> list:
    """Predict every image in ``paths`` with ``net``: one dict per image.

    Each dict holds ``file``, ``index`` (the position in a .npy stack, None
    for a single image), ``predicted`` (the most probable digit) and ``top``:
    up to ``top`` ``{"digit", "probability"}`` pairs, best first (a binary
    model has two digits).
    """
    names, rows = [], []
    for path in paths:
        found = read_inputs(path)
        for i, pixels in enumerate(found):
            try:
                rows.append(prepare(pixels, preprocess=preprocess))
            except ValueError as err:
                where = f"{path}[{i}]" if len(found) > 1 else str(path)
                raise ValueError(f"{where}: {err}") from None
            names.append((str(path), i if len(found) > 1 else None))
    probabilities = net.predict_proba(np.stack(rows), backend)
    results = []
    for (name, index), row in zip(names, probabilities):
        ranked = top_classes(row, net.classes, top)
        results.append({"file": name, "index": index, "predicted": ranked[0][0],
                        "top": [{"digit": d, "probability": p} for d, p in ranked]})
    return results
