"""Act the moment a library is first imported: a ``sys.meta_path`` finder installed for a while.

:class:`ImportWatch` watches a few top-level module names (``torch``, ``numpy``). While it is
installed, the first import of one of them runs as usual, found by the finders that would
have found it anyway, and its callback runs right after the module's code has run (with the
module fully initialised), before the ``import`` statement returns. Everything else passes
through at the cost of one dict lookup: submodules (``torch.nn``), modules already imported
(``importlib.reload``), and any other name.

How: the finder asks the finders after it for the spec, and hands the import system a copy of
that spec whose loader wraps the real one. The wrapper's ``exec_module`` runs the real one,
puts the real loader back on the module (``__spec__.loader``, ``__loader__``: nothing of the
wrapper outlives the import) and then calls the callback. Anything else asked of the wrapper
(``get_resource_reader``, ``get_source``, ...) goes to the real loader. A lazy import
(``importlib.util.LazyLoader``) runs the callback when the module is first used, if the watch
is still installed then. A finder that only knows the legacy ``find_module`` makes the watch
step aside, so the import system behaves exactly as without it.

Standard library only: the plugin imports this at load time.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from types import ModuleType
from typing import Any

#: ``callback(name, module)``, run right after the first import of a watched ``name``.
Callback = Callable[[str, ModuleType], None]


class ImportWatch:
    """A ``sys.meta_path`` finder that calls ``callback(name, module)`` when a module of
    ``names`` is first imported while the watch is installed (see the module docstring)."""

    __slots__ = ("_callback", "_names", "installed")

    def __init__(self, names: Collection[str], callback: Callback) -> None:
        self._names = frozenset(names)
        self._callback = callback
        self.installed = False

    def install(self) -> None:
        """Put the watch first on ``sys.meta_path``."""
        sys.meta_path.insert(0, self)
        self.installed = True

    def remove(self) -> None:
        """Take the watch off ``sys.meta_path`` (a lazy import it wrapped stays quiet)."""
        self.installed = False
        with contextlib.suppress(ValueError):  # someone else took it out already
            sys.meta_path.remove(self)

    @contextlib.contextmanager
    def installed_for(self) -> Iterator[ImportWatch]:
        """Install the watch for the block, then remove it."""
        self.install()
        try:
            yield self
        finally:
            self.remove()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> Any:
        if fullname not in self._names or path is not None or fullname in sys.modules:
            return None  # the fast path: every other import, submodules, reloads
        spec = _spec_from_the_other_finders(fullname, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None  # not found, a namespace package, or a legacy loader: not ours to run
        spec = copy.copy(spec)  # the finder's own spec object stays as it was
        spec.loader = _WatchedLoader(spec.loader, self, fullname)
        return spec

    def imported(self, name: str, module: ModuleType) -> None:
        if self.installed:
            self._callback(name, module)


class _WatchedLoader:
    """The real loader, and a callback after ``exec_module``."""

    def __init__(self, loader: Any, watch: ImportWatch, name: str) -> None:
        self._loader = loader
        self._watch = watch
        self._name = name

    def create_module(self, spec: Any) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        try:
            self._loader.exec_module(module)
        finally:
            self._unwrap(module)
        self._watch.imported(self._name, module)

    def _unwrap(self, module: ModuleType) -> None:
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self._loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _spec_from_the_other_finders(fullname: str, target: ModuleType | None) -> Any:
    """The spec the import system would find without any watch, or ``None`` (also when a
    legacy finder comes first: then the import system must search as it always does)."""
    for finder in list(sys.meta_path):
        if isinstance(finder, ImportWatch):
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            return None
        spec = find_spec(fullname, None, target)
        if spec is not None:
            return spec
    return None
