"""Heavy modules imported on first use, so a command that never touches them never pays for
them (pandas costs ~0.4 s at start-up; a cached dataset needs none of it)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["LazyModule", "pd"]


class LazyModule(ModuleType):
    """Stands for module ``name`` and imports it at the first attribute access."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lazy_target"] = None

    def _load(self) -> ModuleType:
        mod = self.__dict__["_lazy_target"]
        if mod is None:
            mod = self.__dict__["_lazy_target"] = importlib.import_module(self.__name__)
        return mod

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._load())


#: ``pandas``, imported when first used
pd: Any = LazyModule("pandas")
