"""Model files of `Network`s: `save_model`, `load_model`, and checkpoints to resume.

A model file is an uncompressed ``.npz`` archive holding ``weights_<i>`` and
``biases_<i>`` arrays plus ``meta``: UTF-8 JSON (as a uint8 array) with the
format name and version, the network's configuration, a SHA-256 of the
parameter bytes, and optional training state for checkpoints. Loading uses
``allow_pickle=False`` and checks every field before building a `Network`
(see `fastnn.modelfile`, the format itself).
"""

from __future__ import annotations

from . import modelfile
from .history import History
from .modelfile import FORMAT, VERSION, ModelFileError, save_model
from .network import Network

__all__ = ["FORMAT", "VERSION", "ModelFileError", "load_model", "read_checkpoint",
           "read_model_file", "save_model"]


def read_model_file(path):
    """Validate the file at ``path``; return ``(Network, meta)``."""
    return modelfile.read_model_file(path, Network)


def read_checkpoint(path):
    """Read a resumable checkpoint: ``(Network, meta, History)``.

    A checkpoint is a model file saved with ``training=history.state()``.
    """
    net, meta = read_model_file(path)
    if meta.get("training") is None:
        raise ModelFileError(f"{path} is a model without training state, so it cannot be "
                             "resumed; resume from a file written by 'fastnn train --save'")
    return net, meta, History.from_state(meta["training"])


def load_model(path) -> Network:
    """Read a model written by `save_model`."""
    return read_model_file(path)[0]
