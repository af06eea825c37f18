"""Pictures and the recipe report: what the checks saw, as PNG files and as a coverage table.

Loaded by ``pytest_nnrecipe.plugin`` through ``pytest_plugins`` (``-p no:nnrecipe`` turns it off
too). Read in the order pytest calls it: configure, xdist hooks, runtest hooks (the pictures
and the failure section), session end (the report). Its options (``--nn-artifacts-all``,
``--nn-report``) are declared with the others in ``plugin.py`` and read by ``_session``.

- ``--nn-artifacts DIR``: after each test phase that fails, the pictures of its failed checks
  (of all its checks when none of them failed: the test failed on its own assert) go to DIR;
  with ``--nn-artifacts-all`` every check call gets its pictures, failing or not.
- Every failing test gets one ``nnrecipe`` report section: seed, device, reproduce command,
  the Hypothesis seed of a ``@given`` test, then per check its verdict, method, mode,
  optimizer and the paths of its pictures.
- At the end of each test its check calls join the session's records as small JSON entries
  (:func:`pytest_nnrecipe._recipe_coverage.to_json`), and the records themselves (batches, matrices,
  curves) are let go: pytest keeps every item, and with it its context, to the end.
- ``--nn-report``: the recipe coverage table (:mod:`pytest_nnrecipe._recipe_coverage`) at the end of
  the session. Each xdist worker sends its check entries as JSON in ``workeroutput``; the
  controller merges them in ``pytest_testnodedown``, so ``-n 2`` counts what a serial run does.

Cheap to load: pytest, the standard library and the torch-free modules only; matplotlib is
imported by :mod:`pytest_nnrecipe._png` when the first picture is drawn.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_nnrecipe import _context, _recipe_coverage, _session
from pytest_nnrecipe._records import CheckRecord
from pytest_nnrecipe._session import RUN_CONTEXT, SETTINGS

#: The ``workeroutput`` key under which a worker sends its :class:`SessionRecords` as JSON.
WORKEROUTPUT_KEY = "nnrecipe_records"
#: At most this many check calls of one test get pictures: the last ones (a Hypothesis test
#: calls its check once per example; the last failing call is the shrunk example's replay).
MAX_DRAWN_CALLS = 4
#: Facts of a check call shown in the failure section, in this order.
SECTION_FACTS = ("method", "mode", "optimizer", "steps", "target", "total_steps", "min_fraction")


@dataclasses.dataclass
class SessionRecords:
    """What this process saw: check entries for the report, pictures written, and why not."""

    entries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    pictures: int = 0
    property_tests: int = 0
    #: Why PNG pictures could not be drawn (matplotlib missing), said once at the end.
    unavailable: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    def merge_json(self, text: str) -> None:
        data = json.loads(text)
        self.entries += data.get("entries", [])
        self.pictures += int(data.get("pictures", 0))
        self.property_tests += int(data.get("property_tests", 0))
        self.unavailable = self.unavailable or data.get("unavailable")


@dataclasses.dataclass
class _TestPictures:
    """Per test: the check calls already drawn (by index) and the pictures of each."""

    drawn: set[int] = dataclasses.field(default_factory=set)
    paths: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    problem: str | None = None


RECORDS = pytest.StashKey[SessionRecords]()
_TEST_PICTURES = pytest.StashKey[_TestPictures]()
#: Whether the test's call phase expected its failing checks (passed, or xfailed).
_EXPECTED = pytest.StashKey[bool]()

# --- configure ----------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    _session.settings(config)  # --nn-artifacts-all without --nn-artifacts stops the run here
    config.stash[RECORDS] = SessionRecords()
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "nnrecipe-report-xdist")


# --- xdist hooks (registered only when pytest-xdist is installed) -------------------------


class XdistHooks:
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """The controller adds what a finished worker saw (nothing if it crashed early)."""
        text = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        if text:
            node.config.stash[RECORDS].merge_json(text)


# --- runtest hooks ------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Pictures of the test's checks; a failing phase's report gets the ``nnrecipe`` section;
    at teardown the test's check calls join the session's records."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    ctx = item.stash.get(RUN_CONTEXT, None)
    if ctx is None:
        return
    config = item.config
    settings = config.stash[SETTINGS]
    drawn = item.stash.setdefault(_TEST_PICTURES, _TestPictures())
    if settings.artifacts_dir and (report.failed or settings.artifacts_all):
        _draw(config, ctx, drawn, settings.artifacts_dir, every=settings.artifacts_all)
    if report.failed:
        section = failure_section(ctx, drawn, config, config.stash[RECORDS].unavailable)
        report.sections.append(("nnrecipe", section))
    records = config.stash[RECORDS]
    if report.when == "call":
        # checks that failed in a test that passed (around pytest.raises) or xfailed were
        # expected to: bugs the suite shows it catches
        item.stash[_EXPECTED] = report.passed or hasattr(report, "wasxfail")
    if report.when == "call" and getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
        records.property_tests += 1
    if report.when == "teardown":
        if settings.report:
            expected = item.stash.get(_EXPECTED, False)
            records.entries += [
                _recipe_coverage.to_json(ctx.nodeid or item.nodeid, r, expected=expected)
                for r in ctx.records
            ]
        # pytest keeps every item to the end of the session: let go of the batches, matrices
        # and curves the checks recorded, or a long suite holds all of them in memory.
        ctx.records.clear()
        del item.stash[_TEST_PICTURES]


def _draw(
    config: pytest.Config,
    ctx: _context.RunContext,
    drawn: _TestPictures,
    directory: str,
    *,
    every: bool,
) -> None:
    """Write the pictures of the test's check calls not drawn yet (see the module docstring)."""
    records = ctx.records
    todo = [k for k in range(len(records)) if k not in drawn.drawn]
    if not every:
        failed = [k for k in todo if not records[k].passed]
        todo = failed if any(not r.passed for r in records) else todo
    todo = todo[-MAX_DRAWN_CALLS:]
    session = config.stash[RECORDS]
    if not todo or session.unavailable:
        return
    from pytest_nnrecipe import _png  # the first picture pays for the import

    stem = _png.file_stem(ctx.nodeid or "test")
    for k in todo:
        occurrence = sum(r.check == records[k].check for r in records[: k + 1])
        try:
            paths = _png.write_artifacts(records[k], directory, stem, occurrence=occurrence)
        except _png.PicturesUnavailable as exc:
            session.unavailable = str(exc)
            return
        except Exception as exc:  # a picture must never hide the failure it illustrates
            drawn.problem = f"could not write pictures: {type(exc).__name__}: {exc}"
            warnings.warn(f"pytest-nnrecipe: {drawn.problem}", RuntimeWarning, stacklevel=1)
            return
        drawn.drawn.add(k)
        drawn.paths[k] = paths
        session.pictures += len(paths)


def failure_section(
    ctx: _context.RunContext, drawn: _TestPictures, config: pytest.Config, unavailable: str | None
) -> str:
    """The ``nnrecipe`` section of a failing test: seed, device and how to reproduce it, then
    one line per check and model with its verdict and facts, and the paths of its pictures."""
    lines = [
        f"seed={ctx.seed} (base seed {ctx.base_seed}), device={ctx.device}",
        f"reproduce: {ctx.reproduce}",
    ]
    if ctx.hypothesis_seed is not None:
        lines.append(
            f"hypothesis: examples drawn with hypothesis.seed({ctx.hypothesis_seed}), this "
            "test's nn seed: the same --nn-seed draws them again"
        )
    groups: dict[tuple[str, str], list[int]] = {}
    for k, rec in enumerate(ctx.records):
        groups.setdefault((rec.check, rec.model), []).append(k)
    for (check, model), calls in groups.items():
        failed = [k for k in calls if not ctx.records[k].passed]
        shown = failed[-1] if failed else calls[-1]
        verdict = "FAILED" if failed else "passed"
        if len(calls) > 1:
            verdict = (
                f"{len(calls)} calls, {len(failed)} FAILED"
                if failed
                else f"{len(calls)} calls, passed"
            )
        facts = _facts(ctx.records[shown])
        lines.append(f"{check} on {model}: {verdict}" + (f" ({facts})" if facts else ""))
        paths = [_shown(p, config) for k in calls for p in drawn.paths.get(k, [])]
        lines += [f"  picture: {path}" for path in paths]
    if not config.stash[SETTINGS].artifacts_dir:
        if ctx.records:
            lines.append("pictures: none written (run with --nn-artifacts DIR to get them)")
    elif drawn.problem:
        lines.append(f"pictures: {drawn.problem}")
    elif unavailable and ctx.records:
        lines.append(f"pictures: none written: {unavailable}")
    return "\n".join(lines)


def _facts(record: CheckRecord) -> str:
    facts = record.facts()
    return ", ".join(f"{k}={_short(facts[k])}" for k in SECTION_FACTS if facts.get(k) is not None)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- session end --------------------------------------------------------------------------


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands what it saw to the controller (sent after this hook returns)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[WORKEROUTPUT_KEY] = session.config.stash[RECORDS].to_json()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if getattr(config, "workerinput", None) is not None:
        return  # the controller prints for everyone
    if config.option.collectonly:
        return  # nothing ran: a table of "not covered" steps would be wrong
    records = config.stash[RECORDS]
    settings = config.stash[SETTINGS]
    directory = _shown(settings.artifacts_dir, config) if settings.artifacts_dir else None
    lines: list[str] = []
    if directory and records.unavailable:
        lines.append(f"nnrecipe: no PNG pictures: {records.unavailable}")
    elif directory and records.pictures and not settings.report:  # the report says it
        lines.append(f"nnrecipe: {_n(records.pictures, 'picture')} written to {directory}")
    if settings.report:
        terminalreporter.write_sep("=", "nnrecipe: recipe coverage")
        report = _recipe_coverage.build_report(
            records.entries,
            artifacts_dir=directory,
            artifacts_written=records.pictures,
            property_tests=records.property_tests,
        )
        lines = [*report.splitlines(), *lines]
    elif lines:
        terminalreporter.write_sep("=", "nnrecipe")
    for line in lines:
        terminalreporter.write_line(line)


def _shown(path: str, config: pytest.Config) -> str:
    """``path`` relative to where pytest was started if it lies below it (shorter), else as is."""
    here = config.invocation_params.dir
    return str(Path(path).relative_to(here)) if Path(path).is_relative_to(here) else path


def _n(k: int, noun: str) -> str:
    return f"{k} {noun}{'' if k == 1 else 's'}"
