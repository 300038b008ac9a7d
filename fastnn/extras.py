"""Optional dependencies (extras): import them on demand, or say how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says how to install it."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise `MissingExtra` naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise MissingExtra(f"{purpose} needs {top}, which is not installed: "
                           f'pip install "fastnn[{extra}]"') from None
