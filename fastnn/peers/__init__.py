"""Peer implementations that `fastnn.bench` compares fastnn against.

PyTorch (`TorchMLP`) and JAX (`JaxMLP`) train fastnn's network — the same
layers, activations, loss, float32 and SGD — the way each library is
normally used. Neither library is needed by fastnn: each is imported only
when its peer is built, and `torch_available` / `jax_available` say whether
it could be, without importing it.
"""

from __future__ import annotations

import importlib.util

from .jax_mlp import JaxMLP, jax_info, start_jax
from .torch_mlp import TorchMLP, torch_info

TORCH_MISSING = "PyTorch is not installed (install PyTorch, CPU build, to include it)"
JAX_MISSING = 'JAX is not installed (pip install "fastnn[peers]" to include it)'


def torch_available() -> bool:
    """True when ``import torch`` would find a package (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def jax_available() -> bool:
    """True when ``import jax`` would find a package (without importing it)."""
    return importlib.util.find_spec("jax") is not None


__all__ = ["JAX_MISSING", "TORCH_MISSING", "JaxMLP", "TorchMLP", "jax_available", "jax_info",
           "start_jax", "torch_available", "torch_info"]
