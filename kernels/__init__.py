"""Arithmetic kernels for fastnn, in two twin backends.

``numpy``  the reference: plain NumPy, readable, the specification.
``numba``  the same kernels compiled with Numba, plus a compiled training loop.

Both modules export the same names with the same signatures. This registry is
the only place that knows which backends exist; ``get_backend`` imports one
lazily by name.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

BACKENDS = {
    "numpy": "kernels.numpy_backend",
    "numba": "kernels.numba_backend",
}

#: Environment variable that overrides the default backend.
BACKEND_ENV_VAR = "FASTNN_BACKEND"
_FALLBACK_DEFAULT = "numba"


def default_backend() -> str:
    """The backend used when none is named: ``$FASTNN_BACKEND`` or ``numba``."""
    from_env = os.environ.get(BACKEND_ENV_VAR, "").strip()
    if from_env:
        _check_name(from_env, origin=f" (from ${BACKEND_ENV_VAR})")
    return from_env or _FALLBACK_DEFAULT


def _check_name(name: str, origin: str = "") -> None:
    if name not in BACKENDS:
        choices = ", ".join(BACKENDS)
        raise ValueError(f"Unknown backend {name!r}{origin}: choose one of {choices}.")


def get_backend(name: str | None = None) -> ModuleType:
    """Return the kernel module for ``name`` (default: `default_backend`)."""
    name = default_backend() if name is None else name
    _check_name(name)
    return importlib.import_module(BACKENDS[name])
