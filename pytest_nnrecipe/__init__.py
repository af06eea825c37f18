"""pytest-nnrecipe: Karpathy's "A Recipe for Training Neural Networks" as pytest checks.

Every public check is importable from here and usable without pytest; the pytest plugin
(``pytest_nnrecipe.plugin``) also offers each one as a fixture bound to the test's device and
seed. Names are resolved lazily so that importing the package (which pytest does to load the
plugin) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> module that defines it. The plugin makes one fixture per check listed here.
CHECKS: dict[str, str] = {}

__all__ = [*CHECKS]

if TYPE_CHECKING:  # pragma: no cover
    pass


def __getattr__(name: str) -> Any:
    module = CHECKS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_nnrecipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
