"""The import watch that seeds torch/NumPy imported inside a test: it acts on the first import of
a watched name, right after the module ran, and changes nothing else about importing.

A made-up package stands in for torch (torch and NumPy are imported in this process already).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.resources
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pytest_nnrecipe._import_hook import ImportWatch

PACKAGE_INIT = """
from . import _core
READY = _core.VALUE  # the last line: a callback must see it
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh package ``nnfake_<test>``: ``_core``, a submodule ``sub`` and a data file."""
    name = "nnfake_" + tmp_path.name.replace("-", "_").lower()
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text(PACKAGE_INIT)
    (root / "_core.py").write_text("VALUE = 42\n")
    (root / "sub.py").write_text("SUB = 'sub'\n")
    (root / "data.txt").write_text("payload")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def _watch(name: str, calls: list[ModuleType]) -> ImportWatch:
    def record(imported: str, module: ModuleType) -> None:
        assert imported == name and module.READY == 42  # fully initialised
        assert sys.modules[name] is module
        calls.append(module)

    return ImportWatch({name}, record)


def test_it_calls_back_once_right_after_the_first_import_and_leaves_the_real_loader(
    package: str,
) -> None:
    calls: list[ModuleType] = []
    meta_path = list(sys.meta_path)
    with _watch(package, calls).installed_for():
        module = importlib.import_module(package)
        assert calls == [module]
        importlib.import_module(package)  # imported already: nothing
        assert calls == [module]
    assert sys.meta_path == meta_path
    plain = importlib.machinery.SourceFileLoader
    assert type(module.__loader__) is plain and type(module.__spec__.loader) is plain
    assert importlib.resources.files(package).joinpath("data.txt").read_text() == "payload"


def test_submodules_reloads_and_availability_checks_pass_through(package: str) -> None:
    calls: list[ModuleType] = []
    with _watch(package, calls).installed_for():
        assert importlib.util.find_spec(package) is not None  # "is it installed?": no import
        assert calls == [] and package not in sys.modules
        sub = importlib.import_module(f"{package}.sub")  # imports the package first
        assert sub.SUB == "sub" and len(calls) == 1
        module = sys.modules[package]
        module.READY = 0
        assert importlib.reload(module).READY == 42
        assert len(calls) == 1  # a reload is not a first import


def test_it_does_nothing_once_removed(package: str) -> None:
    calls: list[ModuleType] = []
    with _watch(package, calls).installed_for():
        pass
    importlib.import_module(package)
    assert calls == []


def test_a_failing_import_fails_as_without_the_watch_and_leaves_nothing(
    package: str, tmp_path: Path
) -> None:
    (tmp_path / package / "_core.py").write_text("raise OSError('no libtorch here')\n")
    calls: list[ModuleType] = []
    with _watch(package, calls).installed_for(), pytest.raises(OSError, match="no libtorch"):
        importlib.import_module(package)
    assert calls == [] and package not in sys.modules


def test_a_lazy_import_calls_back_when_first_used_while_installed(package: str) -> None:
    calls: list[ModuleType] = []
    with _watch(package, calls).installed_for():
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.loader is not None
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        loader.exec_module(module)
        assert calls == []  # not run yet
        assert module.READY == 42
        assert calls == [module]
    assert type(module.__spec__.loader) is importlib.machinery.SourceFileLoader


def test_a_lazy_import_first_used_after_removal_just_works(package: str) -> None:
    calls: list[ModuleType] = []
    with _watch(package, calls).installed_for():
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.loader is not None
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        loader.exec_module(module)
    assert module.READY == 42
    assert calls == []


def test_nested_watches_call_back_the_innermost_only(package: str) -> None:
    outer: list[ModuleType] = []
    inner: list[ModuleType] = []
    with _watch(package, outer).installed_for(), _watch(package, inner).installed_for():
        importlib.import_module(package)
    assert len(inner) == 1 and outer == []


class _LegacyFinder:
    """A finder with no ``find_spec`` (Python < 3.12 still asks it with ``find_module``)."""

    def find_module(self, fullname: str, path: object = None) -> None:
        return None


def test_it_steps_aside_for_a_legacy_finder(package: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "meta_path", [_LegacyFinder(), *sys.meta_path])
    calls: list[ModuleType] = []
    with _watch(package, calls).installed_for():
        assert importlib.import_module(package).READY == 42
    assert calls == []
