"""Every example suite in examples/ runs green through pytest, so the docs cannot drift
(pytest's ``copy_example``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SUITES = sorted(EXAMPLES.glob("test_*.py"))
HELPERS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("test_"))


@pytest.mark.parametrize("suite", SUITES, ids=[p.name for p in SUITES])
def test_the_example_suite_passes(pytester: pytest.Pytester, suite: Path) -> None:
    for path in [*HELPERS, suite]:  # model modules and conftest.py next to the suite
        shutil.copy(path, pytester.path / path.name)
    # A subprocess: torch's submodules (optimisers, dynamo) cannot be imported twice in one
    # process, and an in-process run forgets the modules it imported.
    result = pytester.runpytest_subprocess(suite.name, "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes.get("passed", 0) > 0, f"{suite.name} ran no test"
    assert result.ret == pytest.ExitCode.OK
