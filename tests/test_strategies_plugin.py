"""The Hypothesis side of the pytest plugin: the settings profile, its option and ini key, and
per-test seeds that make the examples the same on every xdist worker and every run."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In-process pytester runs drop the modules they imported; import the heavy ones here once so
# that the runs below share them (torch imported twice in one process does not work).
import pytest_nnrecipe.strategies  # noqa: F401

COUNT_EXAMPLES = """
    from hypothesis import given, settings, strategies as st

    calls = []

    @given(st.integers())
    def test_count(n):
        calls.append(n)

    def test_report():
        print("profile", settings.get_current_profile_name(), "examples", len(calls),
              "deadline", settings.default.deadline)
        assert 0
"""


def run_counting(
    pytester: pytest.Pytester, *args: str, subprocess: bool = False
) -> pytest.RunResult:
    pytester.makepyfile(test_count=COUNT_EXAMPLES)
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return run("-p", "no:randomly", "-p", "no:cacheprovider", "-W", "ignore", *args)


@pytest.fixture
def keep_profile():
    """In-process runs load profiles; put this session's back afterwards."""
    from hypothesis import settings

    name = settings.get_current_profile_name()
    yield
    settings.load_profile(name)


def test_loading_the_plugin_imports_neither_hypothesis_nor_torch():
    code = (
        "import sys, pytest_nnrecipe.plugin, pytest_nnrecipe._hypothesis_plugin;"
        "print(sorted(m for m in ('hypothesis', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("ci", ["", "true"], ids=["local", "on-ci"])
def test_the_nnrecipe_profile_is_loaded_by_default_when_hypothesis_is_imported(
    pytester, monkeypatch, ci
):
    # On CI machines Hypothesis loads its own "ci" profile; ours still replaces it.
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    result = run_counting(pytester, subprocess=True)
    result.stdout.fnmatch_lines(["*profile nnrecipe examples 25 deadline None*"])


@pytest.mark.parametrize("how", ["PYTEST_PLUGINS", "-p"])
def test_the_profile_loads_when_the_plugin_is_loaded_by_name_without_entry_points(
    pytester, monkeypatch, how
):
    # As from a checkout that is not installed (scripts/gpu-check.sh): no pytest11 entry point
    # (autoload off), and no hypothesis entry point (HYPOTHESIS_NO_PLUGINS: Hypothesis runs none)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("HYPOTHESIS_NO_PLUGINS", "1")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)
    args = ["-p", "pytest_nnrecipe.plugin"]
    if how == "PYTEST_PLUGINS":
        monkeypatch.setenv("PYTEST_PLUGINS", "pytest_nnrecipe.plugin")
        args = []
    result = run_counting(pytester, *args, subprocess=True)
    result.stdout.fnmatch_lines(["*profile nnrecipe examples 25 deadline None*"])


@pytest.mark.parametrize(
    ("ci", "hypothesis_profile"), [("", "default"), ("true", "ci")], ids=["local", "on-ci"]
)
def test_disabling_the_plugin_disables_the_profile_too(
    pytester, monkeypatch, ci, hypothesis_profile
):
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)  # scripts/gpu-check.sh loads it so
    result = run_counting(pytester, "-p", "no:nnrecipe", subprocess=True)
    result.stdout.fnmatch_lines([f"*profile {hypothesis_profile} examples 100 *"])


@pytest.mark.parametrize("how", ["option", "ini"])
def test_the_profile_is_chosen_by_option_or_ini_key(pytester, keep_profile, how):
    pytester.makeconftest(
        "from hypothesis import settings\nsettings.register_profile('tiny', max_examples=3)\n"
    )
    if how == "ini":
        pytester.makeini("[pytest]\nnn_hypothesis_profile = tiny\n")
        result = run_counting(pytester)
    else:
        result = run_counting(pytester, "--nn-hypothesis-profile=tiny")
    result.stdout.fnmatch_lines(["*profile tiny examples 3 *"])


def test_hypothesis_own_profile_option_wins_over_the_default(pytester, keep_profile):
    result = run_counting(pytester, "--hypothesis-profile=default")
    result.stdout.fnmatch_lines(["*profile default examples 100 *"])


def test_an_unknown_profile_is_a_usage_error(pytester, keep_profile):
    result = run_counting(pytester, "--nn-hypothesis-profile=nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--nn-hypothesis-profile='nope': no Hypothesis settings profile*"]
    )


# Plain Hypothesis strategies: the seeding is the plugin's, whatever the strategy, and xdist
# workers that need not import torch start fast.
DRAWS = """
    import os
    from hypothesis import given, seed, strategies as st

    OUT = {out!r}

    def log(name, value):
        with open(os.path.join(OUT, name), "a") as f:
            f.write(repr(value) + "\\n")

    @given(st.tuples(st.integers(2, 8), st.integers(1, 8)))
    def test_a(shape):
        log("a", shape)

    @given(st.lists(st.floats(-10, 10), max_size=4))
    def test_b(values):
        log("b", values)

    @given(st.integers())
    def test_c(n):
        log("c", n)

    @seed(7)
    @given(st.integers())
    def test_pinned(n):
        log("pinned", n)

    @given(st.integers(1, 16))
    def test_fails_for_odd_lengths(length):
        assert length % 2 == 0
"""


def draw_log(
    pytester: pytest.Pytester, *args: str
) -> tuple[dict[str, list[str]], pytest.RunResult]:
    """Run DRAWS in a fresh process and read the log. (Fresh, as a user's run is: Hypothesis
    mixes literal constants of the imported non-test modules into its examples, and this
    test process has imported more of them.)"""
    out = pytester.mkdir(f"draws{len(list(pytester.path.glob('draws*')))}")
    pytester.makepyfile(test_draws=DRAWS.format(out=str(out)))
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "-W", "ignore", *args
    )
    return {p.name: p.read_text().splitlines() for p in sorted(out.iterdir())}, result


def test_the_examples_are_the_same_on_every_worker_and_run_for_the_same_seed(pytester):
    two_workers, result = draw_log(pytester, "-n", "2", "--nn-seed=5")
    result.assert_outcomes(passed=4, failed=1)
    # One nnrecipe section per failing test, the Hypothesis seed in it after the reproduce line.
    result.stdout.fnmatch_lines(
        [
            "*- nnrecipe -*",
            "seed=* (base seed 5), device=cpu",
            "reproduce: pytest test_draws.py::test_fails_for_odd_lengths --nn-seed=5",
            "hypothesis: examples drawn with hypothesis.seed(*), this test's nn seed*",
        ]
    )
    assert sum("- nnrecipe" in line for line in result.stdout.lines) == 1
    result.stdout.no_fnmatch_line("*nnrecipe hypothesis*")
    one_process, result = draw_log(pytester, "--nn-seed=5", "-k", "not fails")
    result.assert_outcomes(passed=4)
    assert two_workers == one_process
    assert sorted(two_workers) == ["a", "b", "c", "pinned"]
    other_seed, _ = draw_log(pytester, "--nn-seed=6", "-k", "not fails")
    assert other_seed["pinned"] == two_workers["pinned"]  # the test's own @seed wins
    for name in ("a", "b", "c"):
        assert other_seed[name] != two_workers[name], name
