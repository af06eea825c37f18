"""The layout rules of issue 14, read from the source: the plugin modules share state only
through ``_session``, no module imports another module's private names, and the structural
driver's functions take at most six parameters (more go in a small dataclass)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_nnrecipe

PACKAGE = Path(pytest_nnrecipe.__file__).parent
PLUGINS = ("plugin", "_hypothesis_plugin", "_model_plugin", "_report_plugin")
#: The public checks keep the keyword-only signatures of the API (shared/API.md).
PUBLIC = {
    "assert_no_batch_mixing",
    "assert_causal",
    "assert_padding_ignored",
    "assert_inputs_used",
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, str]]:
    """``(absolute module, name)`` of every ``from ... import name`` in ``path``."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out.extend((module, alias.name) for alias in node.names)
    return out


def _is_module(module: str, name: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."), name)
    return path.with_suffix(".py").exists() or path.is_dir()


@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugin_modules_import_no_other_plugin_module_but_the_hypothesis_profile_name(
    plugin: str,
) -> None:
    others = {f"pytest_nnrecipe.{p}" for p in PLUGINS if p != plugin}
    reached = [
        (module, name)
        for module, name in _imports(PACKAGE / f"{plugin}.py")
        if module in others or (module == "pytest_nnrecipe" and name in PLUGINS)
    ]
    # plugin.py declares every --nn-* option, the Hypothesis profile's name among them
    allowed = [("pytest_nnrecipe._hypothesis_plugin", "PROFILE")] if plugin == "plugin" else []
    assert reached == allowed


def test_no_module_imports_another_modules_private_names() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}: {module}.{name}"
        for path in _modules()
        # strategies/ shares its argument checks between its own modules (its own issue)
        if "strategies" not in path.parts
        for module, name in _imports(path)
        if name.startswith("_") and not _is_module(module, name)
    ]
    assert found == []


def test_the_structural_functions_take_at_most_six_parameters() -> None:
    found = []
    for path in sorted((PACKAGE / "_structural").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                names = [n for n in names if n not in ("self", "cls")]
                if len(names) > 6 and node.name not in PUBLIC:
                    found.append(f"{path.name}:{node.lineno} {node.name}({', '.join(names)})")
    assert found == []
