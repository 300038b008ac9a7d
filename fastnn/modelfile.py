"""The model file format: versioned, written atomically, validated on read, never pickled.

A model file is an uncompressed ``.npz`` archive holding ``weights_<i>`` and
``biases_<i>`` arrays plus ``meta``: UTF-8 JSON (as a uint8 array) with the
format name and version, the network's configuration, a SHA-256 of the
parameter bytes, and optional training state for checkpoints. Loading uses
``allow_pickle=False`` and checks every field before building the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile
from pathlib import Path

import numpy as np

from .history import History

FORMAT = "fastnn-model"
VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, foreign, damaged or inconsistent."""


def _parameter_digest(arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _create_beside(path: Path):
    """A new, uniquely named temporary file in ``path``'s folder: (open binary file, its path).

    It is created with mode 0666 less the umask, as ``open()`` creates files: the
    kernel applies the umask, so the process-wide umask is never read or set
    (which would race with other threads).
    """
    directory = path.parent if str(path.parent) else Path(".")
    for _ in range(100):
        tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return os.fdopen(fd, "wb"), tmp
    raise FileExistsError(f"cannot create a temporary file beside {path}: every name tried exists")


def save_model(path, net, *, training: dict | None = None,
               config: dict | None = None) -> Path:
    """Write ``net`` to ``path`` atomically and return the path.

    The file is written beside its destination under a temporary name,
    flushed to disk, then renamed over it: a crash or a full disk leaves the
    old file (or none), never half a model. ``training`` (JSON-able: epoch
    counter, history, RNG state) makes the file a resumable checkpoint;
    ``config`` records the settings that produced the model.
    """
    if not net.parameters_finite():
        raise ModelFileError("refusing to save a model whose parameters are NaN or infinite")
    path = Path(path)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "sizes": list(net.sizes),
        "hidden": net.hidden,
        "output": net.output,
        "classes": list(net.classes),
        "dtype": net.dtype.name,
        "sha256": _parameter_digest([*net.weights, *net.biases]),
        "config": config or {},
        "training": training,
    }
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"weights_{i}"] = w
        arrays[f"biases_{i}"] = b

    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ModelFileError(f"cannot save the model to {path}: directory {directory} does not exist")
    file, tmp_name = _create_beside(path)
    try:
        with file as tmp:
            np.savez(tmp, **arrays)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        tmp_name.unlink(missing_ok=True)
        raise
    return path


def read_model_file(path, build):
    """Validate the file at ``path``; return ``(network, meta)``.

    ``build`` makes the (untrained) network the file describes, as
    ``build(sizes, hidden=, classes=, dtype=)`` (`fastnn.network.Network`
    does); its parameters are then replaced by the stored ones.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a model file")
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    not_ours = f"{path} is not a fastnn model file"
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{not_ours}: it is not an .npz archive (or it is truncated)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {name: archive[name] for name in archive.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ModelFileError(f"{not_ours}: it holds pickled objects, which fastnn never "
                                 "loads") from None
        raise ModelFileError(f"{path} is damaged: {err}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ModelFileError(f"{path} is truncated or damaged: {err}") from None
    if "meta" not in contents:
        raise ModelFileError(f"{not_ours}: it has no 'meta' entry")
    try:
        meta = json.loads(contents["meta"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{not_ours}: its 'meta' entry is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{not_ours}: its 'meta' entry does not name the {FORMAT} format")
    if meta.get("version") != VERSION:
        raise ModelFileError(
            f"{path} has model format version {meta.get('version')!r}; this fastnn reads "
            f"version {VERSION}. Use the fastnn release that wrote it, or retrain.")
    try:
        net = build(meta["sizes"], hidden=meta["hidden"], classes=meta["classes"],
                    dtype=meta["dtype"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path} has an invalid configuration: {err}") from None

    params = []
    for kind, targets in (("weights", net.weights), ("biases", net.biases)):
        for i, target in enumerate(targets):
            name = f"{kind}_{i}"
            array = contents.get(name)
            if array is None:
                raise ModelFileError(f"{path} is missing {name}")
            if array.shape != target.shape or array.dtype != target.dtype:
                raise ModelFileError(
                    f"{path}: {name} has shape {array.shape} and dtype {array.dtype}, expected "
                    f"{target.shape} {target.dtype} from the stored configuration")
            params.append(array)
    if _parameter_digest(params) != meta.get("sha256"):
        raise ModelFileError(f"{path}: parameter checksum mismatch; the file was modified or damaged")
    net.set_parameters(params[:len(net.weights)], params[len(net.weights):])
    if not net.parameters_finite():
        raise ModelFileError(f"{path} holds NaN or infinite parameters")
    if meta.get("training") is not None:
        try:
            History.from_state(meta["training"])
        except ValueError as err:
            raise ModelFileError(f"{path} has a damaged training state: {err}") from None
    if not isinstance(meta.get("config", {}), dict):
        raise ModelFileError(f"{path} has an invalid configuration: 'config' is not a mapping")
    return net, meta
