"""The result of a recipe run and how it is told: the table, and the failure that shows every
step's outcome and each failing step's full message."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .. import _messages
from ._steps import STEP_NAMES, STEPS, VERDICTS, StepResult

CHECK = "check_recipe"


@dataclasses.dataclass(frozen=True)
class RecipeResult:
    """Every step's :class:`StepResult`, in the recipe's order, and the table of them.

    ``result["overfit"]`` is the overfit step; ``result["overfit"].result.steps`` what the
    check measured.
    """

    steps: tuple[StepResult, ...]
    model: str
    seconds: float

    def __getitem__(self, name: str) -> StepResult:
        for step in self.steps:
            if step.name == name or step.check == name:
                return step
        raise KeyError(f"{name!r} is not a recipe step; the steps are {list(STEP_NAMES)}.")

    @property
    def passed(self) -> bool:
        return all(s.verdict in ("passed", "skipped") for s in self.steps)

    @property
    def table(self) -> str:
        return render_table(self.steps)

    @property
    def summary(self) -> str:
        counts = {v: sum(s.verdict == v for s in self.steps) for v in VERDICTS}
        parts = [f"{n} {v}" for v, n in counts.items() if n]
        return f"{', '.join(parts)} on {self.model} in {self.seconds:.2f}s"

    def __str__(self) -> str:
        return f"check_recipe: {self.summary}\n{self.table}"


def render_table(steps: Sequence[StepResult]) -> str:
    """One line per step: step, check, verdict, time, key figure (the figure comes last, so
    a long one overflows without breaking the columns)."""
    labels = {s.name: s.label for s in STEPS}
    order = {s.name: i for i, s in enumerate(STEPS, 1)}
    rows = [("step", "check", "verdict", "time", "key figure")]
    digits = len(str(len(STEPS)))  # numbers right-aligned: the labels line up past step 9
    for s in steps:
        seconds = "-" if s.verdict == "skipped" else f"{s.seconds:.2f}s"
        step = f"{order[s.name]:>{digits}} {labels[s.name]}"
        rows.append((step, s.name, s.verdict, seconds, s.figure or "-"))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    return "\n".join(
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    )


def failure(result: RecipeResult, msg: str | None) -> AssertionError:
    bad = [s for s in result.steps if s.verdict in ("failed", "error")]
    names = ", ".join(f"{s.name} ({s.verdict})" for s in bad)
    headline = f"{len(bad)} of {sum(s.verdict != 'skipped' for s in result.steps)} steps did not pass: {names}."
    details = []
    for s in bad:
        details.append(f"--- step {s.name} ({s.check}): {s.verdict} " + "-" * 20)
        details.append(s.message.rstrip())
    error = _messages.fail(
        CHECK,
        headline,
        msg=msg,
        evidence=[f"{result.summary}; each step ran on a fresh model."],
        cause=(
            "see each step's message below; fix the first failing step first: the recipe "
            "builds up from simple to complex, and a wrong loss at init or a model that "
            "cannot fit one batch explains many later failures."
        ),
        picture=result.table + "\n\n" + "\n".join(details),
    )
    first_error = next((s.error for s in bad if s.verdict == "error"), None)
    error.__cause__ = first_error
    return error
