"""The pytest plugin: ``--nn-*`` options, ``nn_*`` markers, device and seed fixtures, and one
fixture per public check.

Read top to bottom in the order pytest calls it: options, configure, xdist hooks, header,
collection, runtest hooks, fixtures, helpers. The module is cheap to load: it imports pytest,
the standard library and the torch-free parts of ``pytest_nnrecipe`` only. torch is imported
when a test needs it (a fixture, a check) or at start-up under ``--nn-gpu``, and CUDA is
initialised only by the tests themselves.
"""

from __future__ import annotations

import importlib.metadata
import os
import shlex
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import pytest_nnrecipe
from pytest_nnrecipe import _binding, _context, _devices, _registration, _registry, _rng, _session
from pytest_nnrecipe._hypothesis_plugin import PROFILE
from pytest_nnrecipe._session import RUN_CONTEXT, SEED_RANGE, SETTINGS, Settings

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Hypothesis support (settings profile, per-test seeds); pictures, the failing tests' nnrecipe
#: report section and --nn-report; --nn-model (the recipe on a named factory); -p no:nnrecipe
#: turns them off too.
pytest_plugins = [
    "pytest_nnrecipe._hypothesis_plugin",
    "pytest_nnrecipe._report_plugin",
    "pytest_nnrecipe._model_plugin",
]


# --- registration -------------------------------------------------------------------------


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    """Loaded by module name next to the installed entry point (or the other way round):
    registered once, under the first name (see ``_registration``)."""
    _registration.hold_other_name(plugin, manager)


# --- options ------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Every ``--nn-*`` option and ``nn_*`` ini key, the sub-plugins' too (read by ``_session``
    and by the sub-plugin each belongs to)."""
    group = parser.getgroup("nnrecipe", "neural-network recipe checks (pytest-nnrecipe)")
    group.addoption(
        "--nn-gpu",
        action="store_true",
        default=False,
        help="run on CUDA: nn_device and the check fixtures use the GPU; one GPU per xdist "
        "worker (gwN takes visible device N mod count). Stops at start if no GPU is usable.",
    )
    group.addoption(
        "--nn-seed",
        metavar="N",
        default=None,
        help="base seed (default: ini nn_seed, else 0); each test's seed is derived from it "
        "and the test's node id.",
    )
    parser.addini("nn_seed", "base seed of pytest-nnrecipe (default 0)", default="0")
    group.addoption(
        "--nn-artifacts",
        metavar="DIR",
        default=None,
        help="write pictures of failing checks (dependency matrices, loss curves, batches) "
        "to DIR (default: ini nn_artifacts, else none).",
    )
    parser.addini(
        "nn_artifacts", "directory for pictures of failing checks (relative to the ini file)"
    )
    _flag(
        parser,
        "deterministic",
        "deterministic kernels: torch.use_deterministic_algorithms(True) and "
        "CUBLAS_WORKSPACE_CONFIG=:4096:8",
        ini="deterministic kernels, as --nn-deterministic",
    )
    # pictures and the recipe report (_report_plugin)
    _flag(
        parser,
        "artifacts-all",
        "with --nn-artifacts: pictures of every check call, passing ones too",
        ini="pictures of every check call, as --nn-artifacts-all",
    )
    _flag(
        parser,
        "report",
        "print the recipe coverage table at the end: which checks ran on which models, which "
        "recipe steps no test covers; across xdist workers",
        ini="print the recipe coverage table, as --nn-report",
    )
    # Hypothesis (_hypothesis_plugin)
    group.addoption(
        "--nn-hypothesis-profile",
        metavar="NAME",
        default=None,
        help=f"Hypothesis settings profile for the session: {PROFILE} (default: no deadline, "
        "no too_slow health check, 25 examples), default (Hypothesis' own), or one a "
        "conftest registered (ini: nn_hypothesis_profile).",
    )
    parser.addini(
        "nn_hypothesis_profile",
        f"Hypothesis settings profile, as --nn-hypothesis-profile (default {PROFILE})",
    )
    # the recipe on a named model factory (_model_plugin)
    group.addoption(
        "--nn-model",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="run the whole recipe (one test per step) on the model factory FACTORY of "
        "MODULE (dotted module or path/to/file.py), with the spec declared on it "
        "(@pytest_nnrecipe.specs.declare). Repeatable. Without test paths, only these run.",
    )


def _flag(parser: pytest.Parser, name: str, help: str, *, ini: str) -> None:
    """``--nn-<name>`` (a switch) and its ini key ``nn_<name>`` (a bool)."""
    key = "nn_" + name.replace("-", "_")
    parser.getgroup("nnrecipe").addoption(
        f"--nn-{name}", action="store_true", default=False, help=f"{help} (ini: {key})."
    )
    parser.addini(key, ini, type="bool")


# --- configure ----------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before the sub-plugins: --nn-model imports torch
def pytest_configure(config: pytest.Config) -> None:
    """Markers, the session's settings, and what must be set before torch is imported: the
    cuBLAS workspace for --nn-deterministic and an xdist worker's share of the CPUs."""
    config.addinivalue_line(
        "markers",
        "nn_gpu: the test needs CUDA: it runs with --nn-gpu and is skipped without it. "
        "Example: @pytest.mark.nn_gpu",
    )
    config.addinivalue_line(
        "markers",
        f"nn_seed(n): run the test with seed n ({SEED_RANGE}) instead of the one derived "
        "from the base seed and its node id. Example: @pytest.mark.nn_seed(1234)",
    )
    settings = _session.settings(config)
    if settings.deterministic:
        # Read by cuBLAS when CUDA starts, which is later: in a test, never at load time.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    _cap_worker_threads(config)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "nnrecipe-xdist")


def _cap_worker_threads(config: pytest.Config) -> None:
    """An xdist worker uses its share of the CPUs, unless the user set OMP_NUM_THREADS."""
    if getattr(config, "workerinput", None) is None or "OMP_NUM_THREADS" in os.environ:
        return
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = _devices.threads_per_worker(_cpu_count(), workers)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when torch is imported
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        # imported already, e.g. by a conftest, which may have chosen fewer threads: keep those
        torch.set_num_threads(min(threads, torch.get_num_threads()))


# --- xdist hooks (registered only when pytest-xdist is installed) -------------------------


class XdistHooks:
    def pytest_configure_node(self, node: Any) -> None:
        """Hand the controller's CUDA device count to each worker, which pins its GPU with it
        before anything in the worker touches CUDA."""
        settings = node.config.stash[SETTINGS]
        if settings.gpu:
            node.workerinput[_session.WORKERINPUT_DEVICE_COUNT] = settings.cuda_device_count


# --- header -------------------------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> str:
    settings = config.stash[SETTINGS]
    extras = ", deterministic" if settings.deterministic else ""
    if settings.artifacts_dir:
        extras += f", artifacts in {settings.artifacts_dir}"
    return (
        f"nnrecipe: torch {_torch_version()}, {_device_summary(config, settings)}, "
        f"base seed {settings.base_seed}{extras} (reproduce: pytest{_session.flags(settings)})"
    )


def _device_summary(config: pytest.Config, settings: Settings) -> str:
    if not settings.gpu:
        return "device cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    count = f"{settings.cuda_device_count} visible"
    if visible is not None:
        count += f", CUDA_VISIBLE_DEVICES={visible}"
    workers = getattr(config.option, "numprocesses", None) or 0
    if workers:
        return f"device cuda ({count}; xdist worker gwN on visible device N mod {settings.cuda_device_count})"
    return f"device {settings.device} ({count})"


# --- collection ---------------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash[SETTINGS].gpu:
        return
    skip = pytest.mark.skip(reason="nn_gpu test: needs CUDA, run with --nn-gpu")
    for item in items:
        if item.get_closest_marker("nn_gpu") is not None:
            item.add_marker(skip)


# --- runtest hooks ------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, Any, None]:
    """Around setup, call and teardown: the test's run context, its seeded RNGs, and every
    RNG state restored afterwards."""
    settings = item.config.stash[SETTINGS]
    seed = _test_seed(item, settings.base_seed)
    ctx = _context.RunContext(
        nodeid=item.nodeid,
        seed=seed,
        base_seed=settings.base_seed,
        device=settings.device,
        # the node id as pytest takes it from where it was started (rootdir-relative ids fail
        # from a subdirectory or with --rootdir/-c elsewhere); the seed still comes from the id
        reproduce=f"pytest {shlex.quote(_invocation_relative(item))}{_session.flags(settings)}",
        artifacts_dir=settings.artifacts_dir,
    )
    item.stash[RUN_CONTEXT] = ctx
    with _context.activate(ctx), _rng.seeded(seed):  # also torch/NumPy imported by the test
        yield


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    problem = _marker_problem(item)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    _session.apply_torch_settings(item.config.stash[SETTINGS])


# A failing test's report section (seed, device, reproduce command, checks, pictures) is
# written by pytest_nnrecipe._report_plugin, with the pictures it refers to.


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def nn_device(request: pytest.FixtureRequest) -> torch.device:
    """The test's ``torch.device``: ``cpu``, or with ``--nn-gpu`` this process's CUDA device."""
    return _session.device_for(request.node.stash[RUN_CONTEXT], request.config.stash[SETTINGS])


@pytest.fixture
def nn_seed(request: pytest.FixtureRequest) -> int:
    """The test's seed: from ``@pytest.mark.nn_seed(n)``, else base seed + node id."""
    ctx = request.node.stash[RUN_CONTEXT]
    return ctx.seed if ctx.seed is not None else 0


def _check_fixture(name: str) -> Any:
    """The fixture ``name``: ``pytest_nnrecipe.<name>`` bound to the test's device and seed."""

    def fixture(nn_device: Any, nn_seed: int) -> Callable[..., Any]:
        return _binding.bind(getattr(pytest_nnrecipe, name), nn_device, nn_seed)

    fixture.__name__ = fixture.__qualname__ = name
    fixture.__doc__ = f"``pytest_nnrecipe.{name}`` on the test's device (nn_device) and seed."
    return pytest.fixture(name=name)(fixture)


for _check in _registry.CHECKS.values():
    if _check.fixture:
        globals()[_check.name] = _check_fixture(_check.name)


# --- helpers ------------------------------------------------------------------------------


def _test_seed(item: pytest.Item, base_seed: int) -> int:
    """The seed pinned by a valid ``nn_seed`` marker, else the one derived from the node id."""
    marker = item.get_closest_marker("nn_seed")
    if marker is not None and _marker_problem(item) is None:
        return int(marker.args[0])
    return _rng.derive_seed(base_seed, item.nodeid)


def _marker_problem(item: pytest.Item) -> str | None:
    """What is wrong with the test's ``nn_seed`` / ``nn_gpu`` marker arguments, if anything."""
    seed = item.get_closest_marker("nn_seed")
    if seed is not None:
        value = seed.args[0] if len(seed.args) == 1 else None
        if (
            seed.kwargs
            or not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value < _rng.SEED_MODULUS
        ):
            return (
                f"{item.nodeid}: @pytest.mark.nn_seed(n) takes one seed n, {SEED_RANGE}; "
                f"got nn_seed({_call_args(seed)}). Example: @pytest.mark.nn_seed(1234)"
            )
    gpu = item.get_closest_marker("nn_gpu")
    if gpu is not None and (gpu.args or gpu.kwargs):
        return (
            f"{item.nodeid}: @pytest.mark.nn_gpu takes no arguments; got "
            f"nn_gpu({_call_args(gpu)}). Example: @pytest.mark.nn_gpu"
        )
    return None


def _invocation_relative(item: pytest.Item) -> str:
    """The test's node id with its file path relative to where pytest was started, so the
    printed command can be pasted there (pytest's node ids are rootdir-relative)."""
    path, sep, rest = item.nodeid.partition("::")
    full = item.config.rootpath / path
    try:
        relative = Path(os.path.relpath(full, item.config.invocation_params.dir)).as_posix()
    except ValueError:  # another drive on Windows
        relative = full.as_posix()
    return relative + sep + rest


def _call_args(marker: pytest.Mark) -> str:
    return ", ".join([*map(repr, marker.args), *(f"{k}={v!r}" for k, v in marker.kwargs.items())])


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch")  # without importing torch
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_count() -> int | None:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()
