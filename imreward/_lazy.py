"""Lazy re-exports for package ``__init__`` modules: a name is imported from its module on first
access, so importing a package (or building the CLI) does not import torch and friends."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, list[str]]) -> tuple[list[str], Callable[[str], Any]]:
    """Return ``__all__`` and a module ``__getattr__`` for ``exports`` ({module: [names]})."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module_of[name]), name)

    return sorted(module_of), __getattr__
