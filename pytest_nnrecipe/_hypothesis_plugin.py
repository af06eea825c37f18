"""Hypothesis under the pytest plugin: the ``"nnrecipe"`` settings profile and per-test seeds.

Loaded by ``pytest_nnrecipe.plugin`` through ``pytest_plugins`` (so ``-p no:nnrecipe`` turns it
off too). Like Hypothesis' own pytest plugin it never imports Hypothesis: the hooks act only
once a test module has imported it, and the profile is registered by a ``hypothesis`` entry
point (:func:`_hypothesis_setup_hook`, run when Hypothesis is imported) or when
``pytest_nnrecipe.strategies`` is imported, whichever comes first; where that entry point
cannot run (the plugin loaded by name from an uninstalled checkout), at configure.

- **Profile.** ``--nn-hypothesis-profile NAME`` (ini ``nn_hypothesis_profile``) loads a
  Hypothesis settings profile for the session: ``nnrecipe`` (the default: no deadline, no
  ``too_slow`` health check, 25 examples), ``default`` (Hypothesis' own) or any profile a
  conftest registered. Without the option, ``--hypothesis-profile`` or a profile a conftest
  loaded before the session wins. The profile is loaded before test modules are imported,
  because ``@given`` reads the default settings when it decorates.
- **Seeds.** Each ``@given`` test runs under ``hypothesis.seed(<the test's nn seed>)``, the seed
  the plugin derives from ``--nn-seed`` and the node id: the same examples on every xdist
  worker and in every run with the same ``--nn-seed``, other examples under another base
  seed, and a failure is reproduced by the ``--nn-seed`` its report prints. A seeded test runs
  without the example database (Hypothesis' rule for ``@seed``), which would otherwise replay
  old failures first. A test's own ``@seed``, ``settings(derandomize=True)`` or
  ``--hypothesis-seed`` takes precedence. The seed is kept on the test's ``RunContext``
  (``hypothesis_seed``), and the one ``nnrecipe`` section of a failing test names it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator
from typing import Any

import pluggy

hookimpl = pluggy.HookimplMarker("pytest")  # pytest.hookimpl, without importing pytest here

#: Name of the settings profile for slow tensor code.
PROFILE = "nnrecipe"
#: What the profile changes from Hypothesis' defaults.
PROFILE_SETTINGS: dict[str, Any] = {
    "max_examples": 25,  # a model call per example: fewer, larger steps
    "deadline": None,  # the first call of a model (lazy init, kernels) is slow: no flaky deadline
    "suppress_health_check": ("too_slow", "large_base_example"),
}

_OPTION = "--nn-hypothesis-profile"
_INI = "nn_hypothesis_profile"

#: One entry per configured session (in-process pytester runs nest): the profile it asked
#: for and whether it is loaded yet; the entry point loads it when Hypothesis is imported.
_sessions: list[dict[str, Any]] = []


def register_profile() -> None:
    """Register the ``"nnrecipe"`` profile with Hypothesis (once; imports Hypothesis)."""
    from hypothesis import HealthCheck, settings
    from hypothesis.errors import InvalidArgument

    try:
        settings.get_profile(PROFILE)
    except InvalidArgument:
        options = dict(PROFILE_SETTINGS)
        options["suppress_health_check"] = [
            HealthCheck[n] for n in options["suppress_health_check"]
        ]
        if settings.get_current_profile_name() == "ci":
            # Hypothesis loads its "ci" profile on CI machines (CI=true and the like), and a
            # new profile inherits from the current one. Keep its database=None and
            # print_blob=True, but not derandomize=True: the per-test nn seed already makes
            # the examples reproducible, and varies them with --nn-seed.
            options["derandomize"] = False
        settings.register_profile(PROFILE, **options)
    if _sessions and not _sessions[-1]["loaded"]:
        _sessions[-1]["loaded"] = True
        _load(_sessions[-1]["name"])


def _hypothesis_setup_hook() -> None:
    """Entry point of the ``hypothesis`` group: Hypothesis calls it when it is imported."""
    register_profile()


def _entry_point_runs() -> bool:
    """Whether Hypothesis will call :func:`_hypothesis_setup_hook` on import: not when this
    package is loaded by name from a checkout that is not installed (``-p
    pytest_nnrecipe.plugin``, ``PYTEST_PLUGINS``), nor under ``HYPOTHESIS_NO_PLUGINS``; then
    the profile is loaded at configure, importing Hypothesis there."""
    import importlib.metadata
    import os

    if os.environ.get("HYPOTHESIS_NO_PLUGINS"):
        return False
    hook = f"{__name__}:{_hypothesis_setup_hook.__name__}"
    return any(e.value == hook for e in importlib.metadata.entry_points(group="hypothesis"))


# --- configure ----------------------------------------------------------------------------


def pytest_configure(config: Any) -> None:
    name, explicit = _requested(config)
    if not explicit and (
        config.getoption("hypothesis_profile", None) or _profile_chosen_elsewhere()
    ):
        return  # --hypothesis-profile, or a profile a conftest loaded, wins over our default
    previous = _current_profile()
    loaded = explicit or "hypothesis" in sys.modules or not _entry_point_runs()
    if loaded:
        register_profile()  # imports Hypothesis: asked for, or already paid for
        _load(name, explicit=True)  # a usage error for an unknown name, before any state
    config.stash[_key("previous")] = previous
    _sessions.append({"name": name, "loaded": loaded})


def pytest_unconfigure(config: Any) -> None:
    previous = config.stash.get(_key("previous"), _UNSET)
    if previous is _UNSET:
        return
    _sessions.pop()
    if previous is not None and "hypothesis" in sys.modules:
        from hypothesis import settings

        settings.load_profile(previous)  # an in-process pytester run leaves no trace


def _requested(config: Any) -> tuple[str, bool]:
    name = config.getoption("nn_hypothesis_profile")
    if name:
        return str(name), True
    name = str(config.getini(_INI) or "").strip()
    return (name, True) if name else (PROFILE, False)


def _load(name: str, *, explicit: bool = False) -> None:
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    try:
        settings.load_profile(name)
    except InvalidArgument:
        if not explicit:
            raise
        import pytest

        raise pytest.UsageError(
            f"{_OPTION}={name!r}: no Hypothesis settings profile of that name is registered. "
            f"Use {PROFILE} or default, or register it first with "
            f"hypothesis.settings.register_profile({name!r}, ...) in the root conftest.py."
        ) from None


def _current_profile() -> str | None:
    if "hypothesis" not in sys.modules:
        return None
    from hypothesis import settings

    return settings.get_current_profile_name()


def _profile_chosen_elsewhere() -> bool:
    """A profile other than Hypothesis' automatic ones ("default", and "ci" on CI machines)."""
    current = _current_profile()
    return current is not None and current not in ("default", "ci", PROFILE)


# --- runtest hooks ------------------------------------------------------------------------


@hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_call(item: Any) -> Generator[None, Any, None]:
    """Run a ``@given`` test under ``hypothesis.seed(<the test's nn seed>)``."""
    undo = _seed_given_test(item) if "hypothesis" in sys.modules else None
    try:
        yield
    finally:
        if undo is not None:
            undo()


def _seed_given_test(item: Any) -> Callable[[], None] | None:
    from hypothesis import core, is_hypothesis_test, seed

    from . import _context

    test = getattr(item, "obj", None)
    test = getattr(test, "__func__", test)  # a method's function
    ctx = _context.current()
    if test is None or ctx is None or ctx.seed is None or not is_hypothesis_test(test):
        return None
    settings = getattr(test, "_hypothesis_internal_use_settings", None)
    if (
        getattr(test, "_hypothesis_internal_use_seed", None) is not None  # its own @seed
        or (settings is not None and settings.derandomize)
        or core.global_force_seed is not None  # --hypothesis-seed
    ):
        return None
    seed(ctx.seed)(test)  # also turns the example database off, as @seed does
    ctx.hypothesis_seed = ctx.seed  # the report plugin names it in the failure section

    def undo() -> None:
        test._hypothesis_internal_use_seed = None
        test._hypothesis_internal_use_settings = settings

    return undo


_UNSET = object()
_KEYS: dict[str, Any] = {}


def _key(name: str) -> Any:
    """A ``pytest.StashKey`` made on first use (pytest is not imported at module level)."""
    if name not in _KEYS:
        import pytest

        _KEYS[name] = pytest.StashKey()
    return _KEYS[name]
