"""The --nn-* options and their ini keys, the markers, and the report header."""

from __future__ import annotations

import pytest

CONTEXT_TEST = """
from pytest_nnrecipe import _context

def test_context(nn_seed):
    ctx = _context.current()
    print(f"ARTIFACTS={ctx.artifacts_dir}")
"""


def test_the_help_lists_every_option_and_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "neural-network recipe checks (pytest-nnrecipe):",
            "*--nn-gpu*run on CUDA*",
            "*--nn-seed=N*base seed*",
            "*--nn-artifacts=DIR*",
            "*--nn-deterministic*",
        ]
    )
    result.stdout.fnmatch_lines(["*nn_seed (string)*", "*nn_artifacts (string)*"])
    result.stdout.fnmatch_lines(["*nn_deterministic (bool)*"])


def test_the_markers_are_registered_with_a_signature_and_an_example(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.nn_gpu: the test needs CUDA*--nn-gpu*Example: @pytest.mark.nn_gpu",
            "@pytest.mark.nn_seed(n): run the test with seed n*Example: @pytest.mark.nn_seed(1234)",
        ]
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.nn_seed(3)
        @pytest.mark.nn_gpu
        def test_marked():
            pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(skipped=1)


@pytest.mark.parametrize(
    ("args", "ini", "shown"),
    [
        pytest.param(["--nn-seed", "abc"], None, "--nn-seed='abc'", id="not-a-number"),
        pytest.param(["--nn-seed=-1"], None, "--nn-seed='-1'", id="negative"),
        pytest.param(["--nn-seed=4294967296"], None, "--nn-seed='4294967296'", id="too-big"),
        pytest.param(["--nn-seed=1.5"], None, "--nn-seed='1.5'", id="float"),
        pytest.param([], "nn_seed = seven", "ini nn_seed='seven'", id="ini-not-a-number"),
    ],
)
def test_it_rejects_a_bad_seed_naming_the_flag_and_what_is_accepted(
    pytester: pytest.Pytester, args: list[str], ini: str | None, shown: str
) -> None:
    if ini is not None:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_never_runs(): raise AssertionError('ran')")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: {shown} is not a seed: expected an integer from 0 to 4294967295, e.g. --nn-seed=0*"
        ]
    )


@pytest.mark.parametrize(
    ("args", "ini", "seed"),
    [
        ([], None, 0),
        (["--nn-seed=42"], None, 42),
        ([], "nn_seed = 7", 7),
        (["--nn-seed=5"], "nn_seed = 7", 5),
    ],
    ids=["default", "flag", "ini", "flag-beats-ini"],
)
def test_the_header_shows_torch_device_and_base_seed_as_a_line_to_paste_back(
    pytester: pytest.Pytester, args: list[str], ini: str | None, seed: int
) -> None:
    from importlib.metadata import version

    if ini is not None:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*args)
    result.stdout.fnmatch_lines(
        [
            f"nnrecipe: torch {version('torch')}, device cpu, base seed {seed} "
            f"(reproduce: pytest --nn-seed={seed})"
        ]
    )


@pytest.mark.parametrize("source", ["flag", "ini"])
def test_the_artifacts_directory_reaches_the_run_context(
    pytester: pytest.Pytester, source: str
) -> None:
    if source == "flag":
        args = ["--nn-artifacts", "out/pictures"]
    else:
        pytester.makeini("[pytest]\nnn_artifacts = out/pictures\n")
        args = []
    pytester.makepyfile(CONTEXT_TEST)
    result = pytester.runpytest("-s", *args)
    result.assert_outcomes(passed=1)
    expected = pytester.path / "out" / "pictures"
    result.stdout.fnmatch_lines([f"nnrecipe: *artifacts in {expected} *", f"*ARTIFACTS={expected}"])


@pytest.mark.parametrize("source", ["flag", "ini"])
def test_an_artifacts_directory_under_home_is_expanded(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    home = pytester.path / "home"
    monkeypatch.setenv("HOME", str(home))
    if source == "flag":
        args = ["--nn-artifacts=~/pictures"]  # no shell expands ~ after =
    else:
        pytester.makeini("[pytest]\nnn_artifacts = ~/pictures\n")
        args = []
    pytester.makepyfile(CONTEXT_TEST)
    result = pytester.runpytest("-s", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*ARTIFACTS={home / 'pictures'}"])


def test_without_artifacts_the_run_context_has_none(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CONTEXT_TEST)
    result = pytester.runpytest("-s")
    result.stdout.fnmatch_lines(["*ARTIFACTS=None"])


DETERMINISTIC_TEST = """
import os
import torch

def test_kernels():
    print(f"DETERMINISTIC={torch.are_deterministic_algorithms_enabled()}")
    print(f"CUBLAS={os.environ.get('CUBLAS_WORKSPACE_CONFIG')}")
"""


@pytest.mark.parametrize(
    ("args", "ini", "on"),
    [
        ([], None, False),
        (["--nn-deterministic"], None, True),
        ([], "nn_deterministic = true", True),
    ],
    ids=["off", "flag", "ini"],
)
def test_deterministic_kernels_are_switched_on_before_the_test(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    ini: str | None,
    on: bool,
) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    if ini is not None:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(DETERMINISTIC_TEST)
    # A subprocess: the setting is process-wide and must not leak into this run.
    result = pytester.runpytest_subprocess("-s", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*DETERMINISTIC={on}", f"CUBLAS={':4096:8' if on else None}"])
    if on:
        result.stdout.fnmatch_lines(
            ["nnrecipe: *, deterministic (reproduce: pytest --nn-seed=0 --nn-deterministic)"]
        )


@pytest.mark.parametrize(
    "marker",
    [
        "nn_seed",
        "nn_seed()",
        "nn_seed('7')",
        "nn_seed(1, 2)",
        "nn_seed(-1)",
        "nn_seed(2**32)",
        "nn_seed(True)",
        "nn_seed(1.0)",
        "nn_seed(n=3)",
        "nn_gpu(1)",
        "nn_gpu(reason='x')",
    ],
)
def test_it_rejects_bad_marker_arguments_with_the_signature(
    pytester: pytest.Pytester, marker: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_marked():
            raise AssertionError("must not run")
        """
    )
    result = pytester.runpytest("--nn-seed=0")
    result.assert_outcomes(errors=1)
    name = marker.partition("(")[0]
    signature = "nn_seed(n) takes one seed n" if name == "nn_seed" else "nn_gpu takes no arguments"
    result.stdout.fnmatch_lines(
        [f"*test_marked: @pytest.mark.{signature}*; got {name}(*). Example: @pytest.mark.{name}*"]
    )
    result.stdout.no_fnmatch_line("*must not run*")
