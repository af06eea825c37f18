"""The public names: every check and result type of the registry, importable from the package
(lazily: importing it, and its result types, never imports torch), listed in ``__all__`` and
imported for type checkers."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest

import pytest_nnrecipe
from pytest_nnrecipe import _registry


def test_all_lists_every_check_and_result_type_of_the_registry() -> None:
    assert sorted(pytest_nnrecipe.__all__) == sorted(_registry.exports())
    assert "Overfit" in pytest_nnrecipe.__all__ and "assert_can_overfit" in pytest_nnrecipe.__all__


def test_type_checkers_see_every_public_name_from_the_module_the_registry_names() -> None:
    tree = ast.parse(Path(pytest_nnrecipe.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.dump(n))
    imported = {
        alias.name: "." * node.level + (node.module or "")
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == _registry.exports()


@pytest.mark.parametrize("name", sorted(_registry.exports()))
def test_each_public_name_resolves_to_what_its_module_defines(name: str) -> None:
    value = getattr(pytest_nnrecipe, name)
    # By name, not by identity in sys.modules: pytester's in-process runs may unload and
    # re-import the package's modules in this process, leaving two copies of each.
    module = f"pytest_nnrecipe{_registry.exports()[name]}"
    assert value.__module__ == module or value.__module__.startswith(f"{module}.")
    assert value.__name__ == name
    if name.startswith(("assert_", "check_", "describe_")):
        assert callable(value) and inspect.signature(value).parameters
    else:
        assert inspect.isclass(value)


def test_the_result_types_import_without_torch(pytester: pytest.Pytester) -> None:
    result = pytester.run(
        sys.executable,
        "-c",
        "import sys, pytest_nnrecipe as nr; nr.Overfit, nr.BatchMixingResult, nr.DataSummary; "
        "print('TORCH', 'torch' in sys.modules)",
    )
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["TORCH False"])


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'assert_everything'"):
        pytest_nnrecipe.assert_everything  # noqa: B018
