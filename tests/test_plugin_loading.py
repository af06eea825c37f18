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


REGISTERED_ONCE_TEST = """
import sys

def test_registered_once(request, nn_seed):
    module = sys.modules["pytest_nnrecipe.plugin"]
    plugins = request.config.pluginmanager.list_name_plugin()
    assert [name for name, plugin in plugins if plugin is module] == [WHERE]
"""


def _registered_once(pytester: pytest.Pytester, where: str) -> None:
    pytester.makepyfile(
        test_once=REGISTERED_ONCE_TEST.replace("WHERE", repr(where)),
    )


def _assert_registered_once(result: pytest.RunResult) -> None:
    result.assert_outcomes(passed=1)
    assert result.stdout.str().count("nnrecipe: torch") == 1, result.stdout.str()


def test_it_loads_once_by_module_name_next_to_the_installed_entry_point(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `-p` imports and registers the module under its name before pytest loads the entry
    # points, which register it under `nnrecipe`: the second registration must be skipped.
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)
    _registered_once(pytester, "pytest_nnrecipe.plugin")
    _assert_registered_once(pytester.runpytest_subprocess("-p", "pytest_nnrecipe.plugin"))


@pytest.mark.parametrize("way", ["PYTEST_PLUGINS", "conftest pytest_plugins"])
def test_it_loads_once_when_named_after_the_entry_point_loaded_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    # The entry point registers it under `nnrecipe` first; naming the module afterwards must
    # not register it a second time.
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)
    if way == "PYTEST_PLUGINS":
        monkeypatch.setenv("PYTEST_PLUGINS", "pytest_nnrecipe.plugin")
    else:
        pytester.makeconftest("pytest_plugins = ['pytest_nnrecipe.plugin']")
    _registered_once(pytester, "nnrecipe")
    _assert_registered_once(pytester.runpytest())
