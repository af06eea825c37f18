"""Per-test seeds: the same whatever the order or worker, pinned by a marker, seeded before each
test and restored after it, printed with every failure as a command that reproduces it."""

from __future__ import annotations

import random
import shutil

import numpy  # imported here: the in-process runs below use it, and it cannot be imported twice
import pytest
import torch  # ... nor can torch, which an in-process run of another test module may import

from pytest_nnrecipe import _rng

SEEDS_TEST = """
import random
import shutil
import numpy
import pytest

def _write(request, nn_seed):
    values = f"{nn_seed} {random.random()!r} {numpy.random.random()!r}"
    (request.config.rootpath / "seeds" / request.node.name).write_text(values)

def test_one(request, nn_seed):
    _write(request, nn_seed)

def test_two(request, nn_seed):
    _write(request, nn_seed)

@pytest.mark.parametrize("n", [1, 2])
def test_param(request, nn_seed, n):
    _write(request, nn_seed)

@pytest.mark.nn_seed(1234)
def test_pinned(request, nn_seed):
    _write(request, nn_seed)
"""

REVERSING_CONFTEST = """
def pytest_collection_modifyitems(items):
    items.reverse()
"""


def _seeds_of_a_run(pytester: pytest.Pytester, *args: str) -> dict[str, tuple[int, float, float]]:
    seeds = pytester.path / "seeds"
    seeds.mkdir(exist_ok=True)
    for old in seeds.iterdir():
        old.unlink()
    pytester.runpytest(*args).assert_outcomes(passed=5)
    out = {}
    for path in seeds.iterdir():
        seed, py, np = path.read_text().split()
        out[path.name] = (int(seed), float(py), float(np))
    return out


def test_each_test_gets_the_same_seed_in_any_order_and_on_any_worker(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_seeds=SEEDS_TEST)
    serial = _seeds_of_a_run(pytester)
    parallel = _seeds_of_a_run(pytester, "-n", "2")
    other_base = _seeds_of_a_run(pytester, "--nn-seed=1")
    pytester.makeconftest(REVERSING_CONFTEST)
    reversed_order = _seeds_of_a_run(pytester)

    assert len(serial) == 5
    assert serial == parallel == reversed_order
    for name, (seed, py, np) in serial.items():
        nodeid = f"test_seeds.py::{name}"
        expected = 1234 if name == "test_pinned" else _rng.derive_seed(0, nodeid)
        assert seed == expected, name
        # random and NumPy were seeded with the test's seed before it ran
        assert py == random.Random(seed).random(), name
        assert np == numpy.random.RandomState(seed).random(), name
    assert len({seed for seed, _, _ in serial.values()}) == 5
    # another base seed gives other seeds, except where a marker pins it
    for name, (seed, _, _) in other_base.items():
        if name == "test_pinned":
            assert seed == 1234
        else:
            assert seed == _rng.derive_seed(1, f"test_seeds.py::{name}") != serial[name][0]


RESTORE_CONFTEST = """
import random
import shutil
import numpy
import pytest
import torch

DRAWS = []

def _draw():
    return (random.random(), numpy.random.random(), torch.rand(1).item())

def _seed():
    random.seed(42)
    numpy.random.seed(42)
    torch.manual_seed(42)

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item):
    _seed()
    reference = _draw()
    _seed()
    yield
    DRAWS.append(_draw() == reference)

def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"RESTORED={DRAWS}")
"""

RESTORE_TEST = """
import random
import shutil
import numpy
import torch

def test_seeded_then_scrambles_everything(nn_seed):
    assert random.random() == random.Random(nn_seed).random()
    assert numpy.random.random() == numpy.random.RandomState(nn_seed).random()
    assert torch.initial_seed() == nn_seed
    random.seed(7)
    numpy.random.seed(7)
    torch.manual_seed(7)
    torch.rand(5)

def test_fails_after_scrambling():
    random.random()
    torch.rand(3)
    raise AssertionError("on purpose")
"""


def test_rng_states_are_restored_after_each_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RESTORE_CONFTEST)
    pytester.makepyfile(RESTORE_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["RESTORED=[[]True, True[]]"])


FAILING_TEST = """
import random
import shutil

def test_passes():
    pass

def test_fails():
    value = random.random()
    raise AssertionError(f"value={value!r}")
"""


def test_a_failure_shows_its_seed_and_a_command_that_reproduces_it(
    pytester: pytest.Pytester, plugin_args: list[str]
) -> None:
    from importlib.metadata import version

    pytester.makepyfile(test_fail=FAILING_TEST)
    result = pytester.runpytest("--nn-seed=3", *plugin_args)
    result.assert_outcomes(passed=1, failed=1)
    seed = _rng.derive_seed(3, "test_fail.py::test_fails")
    value = random.Random(seed).random()
    result.stdout.fnmatch_lines(
        [
            f"nnrecipe: torch {version('torch')}, device cpu, base seed 3 (reproduce: pytest --nn-seed=3)",
            f"E * value={value!r}",
            "*- nnrecipe -*",
            f"seed={seed} (base seed 3), device=cpu",
            "reproduce: pytest test_fail.py::test_fails --nn-seed=3",
        ]
    )
    # ... and the command does reproduce it, alone and with no other test around
    again = pytester.runpytest("test_fail.py::test_fails", "--nn-seed=3")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines([f"E * value={value!r}"])


CONTEXT_TEST = """
import pytest
from pytest_nnrecipe import _context

SEEN = []

@pytest.fixture
def phases(request):
    SEEN.append(("setup", _context.current()))
    yield
    SEEN.append(("teardown", _context.current()))

def test_inside(phases, nn_seed):
    ctx = _context.current()
    SEEN.append(("call", ctx))
    assert ctx.nodeid == "test_ctx.py::test_inside"
    assert ctx.seed == nn_seed and ctx.base_seed == 9 and ctx.device == "cpu"
    assert ctx.reproduce == "pytest test_ctx.py::test_inside --nn-seed=9"

def test_after():
    setup, call, teardown = (ctx for _, ctx in SEEN)
    assert setup is call is teardown is not None
    assert [phase for phase, _ in SEEN] == ["setup", "call", "teardown"]
    assert _context.current().nodeid == "test_ctx.py::test_after"
"""


def test_the_run_context_is_active_from_setup_to_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ctx=CONTEXT_TEST)
    result = pytester.runpytest("--nn-seed=9")
    result.assert_outcomes(passed=2)


def test_the_reproduce_command_works_from_the_directory_pytest_was_started_in(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.mkdir("tests")
    pytester.path.joinpath("tests", "test_fail.py").write_text(FAILING_TEST)
    subdir = pytester.path / "tests"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(subdir)  # the node id stays tests/test_fail.py::..., relative to the ini file
        result = pytester.runpytest_inprocess("--nn-seed=3")
    result.assert_outcomes(passed=1, failed=1)
    seed = _rng.derive_seed(3, "tests/test_fail.py::test_fails")
    value = random.Random(seed).random()
    result.stdout.fnmatch_lines(
        [
            f"seed={seed} (base seed 3), device=cpu",
            "reproduce: pytest test_fail.py::test_fails --nn-seed=3",
        ]
    )
    # ... and pasting it in that directory runs the same test with the same seed
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(subdir)
        again = pytester.runpytest_inprocess("test_fail.py::test_fails", "--nn-seed=3")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines([f"E * value={value!r}"])


IMPORTING_TEST = """
import pytest

@pytest.mark.parametrize("i", range(4))
def test_draw(request, i):
    import numpy
    import torch

    values = f"{torch.rand(1).item()!r} {numpy.random.random()!r}"
    (request.config.rootpath / "draws" / request.node.name).write_text(values)
"""

LEFT_SEEDED_CONFTEST = """
import sys
import pytest
from pytest_nnrecipe import _rng

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item):
    yield
    left_seeded = sys.modules["torch"].initial_seed() == _rng.derive_seed(0, item.nodeid)
    (item.config.rootpath / "draws" / f"{item.name}.after").write_text(str(left_seeded))
"""


def test_a_test_that_imports_torch_and_numpy_draws_the_same_numbers_in_every_run(
    pytester: pytest.Pytester,
) -> None:
    # torch and NumPy are imported by the first test of each fresh process, after the plugin
    # seeded the generators in use: they must be seeded the moment their import finishes.
    pytester.makepyfile(test_draw=IMPORTING_TEST)
    pytester.makeconftest(LEFT_SEEDED_CONFTEST)
    expected = {}
    for i in range(4):
        seed = _rng.derive_seed(0, f"test_draw.py::test_draw[{i}]")
        torch_draw = torch.rand(1, generator=torch.Generator().manual_seed(seed)).item()
        expected[f"test_draw[{i}]"] = f"{torch_draw!r} {numpy.random.RandomState(seed).random()!r}"
    draws = pytester.path / "draws"
    for args in ([], ["-n", "2"]):  # fresh processes: a serial run, and two xdist workers
        draws.mkdir()
        pytester.runpytest_subprocess(*args).assert_outcomes(passed=4)
        got = {p.name: p.read_text() for p in draws.iterdir() if p.suffix != ".after"}
        assert got == expected, args
        # ... and restored afterwards, as the generators that were in use before the test
        assert {p.read_text() for p in draws.glob("*.after")} == {"False"}, args
        shutil.rmtree(draws)


UNCOLLECTED_GIVEN_TEST = """
def test_calls_a_given_function(request):
    from hypothesis import given, strategies as st  # in a fresh process: imported here first

    seen = []

    @given(st.integers(), st.floats(allow_nan=False))
    def draw(n, x):
        seen.append((n, x))

    draw()
    (request.config.rootpath / "examples" / request.node.name).write_text(repr(seen))

def test_another(request):
    test_calls_a_given_function(request)
"""


def _examples_of_a_run(
    pytester: pytest.Pytester, *args: str, fresh: bool = False
) -> dict[str, str]:
    examples = pytester.path / "examples"
    shutil.rmtree(examples, ignore_errors=True)
    examples.mkdir()
    run = pytester.runpytest_subprocess if fresh else pytester.runpytest
    run("-p", "no:cacheprovider", *args).assert_outcomes(passed=2)
    return {p.name: p.read_text() for p in examples.iterdir()}


def test_a_given_function_called_inside_a_test_draws_from_the_test_seed(
    pytester: pytest.Pytester,
) -> None:
    from hypothesis import core

    pytester.makepyfile(test_given=UNCOLLECTED_GIVEN_TEST)
    global_random = core.threadlocal._hypothesis_global_random
    first = _examples_of_a_run(pytester)
    assert core.threadlocal._hypothesis_global_random is global_random  # restored
    assert first == _examples_of_a_run(pytester)  # the same examples in another run
    assert first["test_calls_a_given_function"] != first["test_another"]  # seeds per test
    other = _examples_of_a_run(pytester, "--nn-seed=1")
    assert other["test_another"] != first["test_another"]  # ... from the base seed
    # Fresh processes, serial and on xdist workers. (Hypothesis mixes literal constants of the
    # modules a process has imported into its examples: compare processes that import the same.)
    serial = _examples_of_a_run(pytester, fresh=True)
    assert serial == _examples_of_a_run(pytester, "-n", "2", fresh=True)
