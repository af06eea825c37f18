"""One registration of the plugin, whichever ways pytest is told to load it.

pytest registers a plugin under the name it was loaded by: the installed ``pytest11`` entry
point under ``nnrecipe``; ``-p pytest_nnrecipe.plugin``, ``PYTEST_PLUGINS=pytest_nnrecipe.plugin``
and a conftest's ``pytest_plugins`` under the module name. Two of them at once (an installed
copy, and the module named for a checkout or a CI script) would register the one module under
two names, which pluggy refuses: "Plugin already registered under a different name", and
pytest stops before it starts.

So once the module is registered under one of the names, :func:`hold_other_name` takes the
other with a :class:`Placeholder` that has no hooks. pytest skips a name that is taken, both
when it loads the entry points (``load_setuptools_entrypoints``) and when it imports a plugin
by name (``import_plugin``), so the module is registered once and its hooks run once.
Standard library only: the plugin imports this at load time.
"""

from __future__ import annotations

import sys
from typing import Any

#: The ``pytest11`` entry point's name (pyproject.toml), also the name ``-p no:`` takes.
ENTRY_POINT = "nnrecipe"
#: The plugin module, as ``-p``, ``PYTEST_PLUGINS`` and ``pytest_plugins`` name it.
MODULE = "pytest_nnrecipe.plugin"


class Placeholder:
    """Holds a name of the plugin that it is not registered under; no hooks."""

    def __init__(self, loaded_as: str | None) -> None:
        self.loaded_as = loaded_as

    def __repr__(self) -> str:
        return f"<pytest-nnrecipe, already loaded as {self.loaded_as!r}>"


def hold_other_name(plugin: object, manager: Any) -> None:
    """When ``plugin`` is the plugin module, take its other name (``pytest_plugin_registered``)."""
    if plugin is not sys.modules.get(MODULE):
        return
    name = manager.get_name(plugin)
    for other in (ENTRY_POINT, MODULE):
        if other != name and manager.get_plugin(other) is None and not manager.is_blocked(other):
            manager.register(Placeholder(name), other)
