"""The plugin is cheap to load: it and a torch-free test run never import torch."""

from __future__ import annotations

import sys

import pytest

TORCH_FREE_CONFTEST = """
import sys

def pytest_sessionfinish(session):
    who = getattr(session.config, "workerinput", {}).get("workerid", "main")
    (session.config.rootpath / f"torch-{who}.txt").write_text(str("torch" in sys.modules))
"""

TORCH_FREE_TEST = """
import random
import pytest

def test_seeded(nn_seed):
    assert random.random() == random.Random(nn_seed).random()

@pytest.mark.nn_seed(3)
def test_pinned(nn_seed):
    assert nn_seed == 3

@pytest.mark.nn_gpu
def test_gpu_only():
    pass

@pytest.mark.parametrize("n", range(4))
def test_many(n, nn_seed):
    assert nn_seed >= 0
"""


def test_importing_the_plugin_does_not_import_torch(pytester: pytest.Pytester) -> None:
    result = pytester.run(
        sys.executable,
        "-c",
        "import sys, pytest_nnrecipe.plugin; print('TORCH', 'torch' in sys.modules)",
    )
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["TORCH False"])


def test_a_torch_free_run_never_imports_torch(
    pytester: pytest.Pytester, plugin_args: list[str]
) -> None:
    pytester.makeconftest(TORCH_FREE_CONFTEST)
    pytester.makepyfile(TORCH_FREE_TEST)
    args = ["--nn-seed=11", "--nn-artifacts=out", "--nn-deterministic", "-rs", *plugin_args]
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=6, skipped=1)
    result.stdout.fnmatch_lines(["nnrecipe: torch *, device cpu, base seed 11, deterministic*"])
    reports = {p.name: p.read_text() for p in pytester.path.glob("torch-*.txt")}
    expected = (
        {"torch-gw0.txt", "torch-gw1.txt", "torch-main.txt"}
        if "2" in plugin_args
        else {"torch-main.txt"}
    )
    assert set(reports) == expected
    assert set(reports.values()) == {"False"}, reports


def test_it_works_without_xdist_whose_hooks_it_registers_only_when_present(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_seeded(nn_seed): assert nn_seed >= 0")
    result = pytester.runpytest("-p", "no:xdist", "--nn-seed=2")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["nnrecipe: *base seed 2*"])


def test_it_can_be_switched_off_by_its_entry_point_name(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)  # scripts/gpu-check.sh loads it so
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("-p", "no:nnrecipe")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("nnrecipe:*")
