"""Names a package exports, imported from their own modules on first use (PEP 562).

A package whose ``__init__`` imports every module costs each command that needs one of them the
import of all; with ``def __getattr__(name): return lazy_attribute(__name__, MODULES, name)``
it costs only what is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any


def lazy_attribute(package: str, modules: Mapping[str, str], name: str) -> Any:
    """``name`` of ``package``, from the module ``modules`` names for it, imported now."""
    if name not in modules:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(import_module(modules[name]), name)
