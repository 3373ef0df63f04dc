"""Names a package offers that load their module on first use (a module `__getattr__`, PEP
562), so importing the package stays cheap: the CLI's start, and a sync's before its first
request (issue 12)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, modules: dict[str, str]) -> Callable[[str], Any]:
    """`package`'s module `__getattr__`: each name in `modules` comes from
    `<package>.<modules[name]>` when first asked for."""

    def __getattr__(name: str) -> Any:
        if name in modules:
            return getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
        raise AttributeError(name)

    return __getattr__
