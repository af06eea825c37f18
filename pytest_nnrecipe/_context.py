"""Where a check runs: the test, its seed and device, and what the checks saw.

The plugin activates a :class:`RunContext` around each test; the checks read it to write the
"Reproduce:" line of their failure messages and record what they measured (a typed record of
:mod:`._records`, for the report and the pictures). Outside pytest there is no context and the
checks say so in fewer words. Standard library only: the plugin imports this module at load
time.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator

from ._records import CheckRecord


@dataclasses.dataclass
class RunContext:
    """The test a check runs in. ``records`` collects what the checks of this test saw."""

    nodeid: str | None = None
    seed: int | None = None
    base_seed: int | None = None
    device: str = "cpu"
    reproduce: str | None = None
    artifacts_dir: str | None = None
    records: list[CheckRecord] = dataclasses.field(default_factory=list)
    #: The seed a ``@given`` test's examples were drawn with (set by the Hypothesis plugin).
    hypothesis_seed: int | None = None


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "pytest_nnrecipe_context", default=None
)


def current() -> RunContext | None:
    """The active context, or ``None`` outside a pytest run of the plugin."""
    return _current.get()


@contextlib.contextmanager
def activate(ctx: RunContext) -> Iterator[RunContext]:
    """Make ``ctx`` the active context for the duration of the block."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def record(rec: CheckRecord) -> None:
    """Remember what a check saw (no-op outside a test)."""
    ctx = _current.get()
    if ctx is not None:
        ctx.records.append(rec)
