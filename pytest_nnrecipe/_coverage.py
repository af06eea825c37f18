"""The recipe report (``--nn-report``): which recipe steps the suite covers, on which models.

What travels: each check call becomes an :class:`Entry` (node id, check, model class name,
verdict and a few small scalars), a JSON-able dict in transit, so pytest-xdist workers can send
their entries to the controller in ``workeroutput`` (no arrays, no tensors). The controller
feeds all entries to :func:`build_report`, which draws the table in 80 columns without colour:

```
Recipe coverage: 5 check calls in 5 tests on 1 model; 1 failed.

recipe step                         tests  verdict
Become one with the data                1  ok
Visualize just before the net           -  not covered (text pictures only)
Verify loss @ init / Init well          2  1 FAILED
...
TinyMLP                                       ran  passed  failed
  assert_init_loss                              2       1       1  FAILED
  not checked on this model: Input-independent baseline; ...

Not covered by any test (how to cover it):
  - Input-independent baseline: assert_beats_input_independent_baseline
```

Standard library only: the plugin imports this module at load time.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

WIDTH = 80

#: Data checks: "become one with the data".
DATA_CHECKS = (
    "assert_no_duplicates",
    "assert_disjoint",
    "assert_consistent_labels",
    "assert_finite_data",
    "assert_balanced",
    "assert_normalized",
    "assert_augmentation_consistent",
    "describe_data",
)
TRAINING_CURVE_CHECKS = (
    "assert_can_overfit",
    "assert_loss_decreases",
    "assert_beats_input_independent_baseline",
)


@dataclasses.dataclass(frozen=True)
class Step:
    """One testable tip of the recipe and the checks that cover it.

    ``how`` says how to cover it when no test does. Steps without checks are covered by the
    session itself (``--nn-artifacts``, Hypothesis tests), see :func:`build_report`.
    """

    name: str
    checks: tuple[str, ...]
    how: str


#: The recipe's testable steps, in the recipe's order.
STEPS: tuple[Step, ...] = (
    Step("Become one with the data", DATA_CHECKS, "data checks, e.g. assert_no_duplicates"),
    Step("Fix random seed", ("assert_deterministic",), "assert_deterministic"),
    Step(
        "Visualize just before the net",
        (),
        "run with --nn-artifacts DIR (pictures of the failing checks; of every check with "
        "--nn-artifacts-all)",
    ),
    Step("Verify loss @ init / Init well", ("assert_init_loss",), "assert_init_loss"),
    Step(
        "Input-independent baseline",
        ("assert_beats_input_independent_baseline",),
        "assert_beats_input_independent_baseline",
    ),
    Step("Overfit one batch", ("assert_can_overfit",), "assert_can_overfit"),
    Step(
        "Verify decreasing training loss",
        ("assert_loss_decreases", "assert_params_update"),
        "assert_loss_decreases, assert_params_update",
    ),
    Step(
        "Visualize prediction dynamics",
        (),
        "a training check run with --nn-artifacts DIR",
    ),
    Step(
        "Use backprop to chart dependencies",
        ("assert_no_batch_mixing", "assert_causal"),
        "assert_no_batch_mixing, assert_causal",
    ),
    Step(
        "Generalize a special case",
        (),
        "Hypothesis tests with pytest_nnrecipe.strategies",
    ),
    Step("Don't trust LR decay defaults", ("assert_lr_schedule",), "assert_lr_schedule"),
)

#: Checks that are not about one model: reported in their own group, not per model.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("data checks", DATA_CHECKS),
    ("learning-rate schedules", ("assert_lr_schedule",)),
)
_GROUPED = frozenset(c for _, checks in GROUPS for c in checks)
_STEP_OF = {check: step.name for step in STEPS for check in step.checks}
#: Steps that concern a model (listed per model when missing); the others are session-wide.
_MODEL_STEPS = tuple(s.name for s in STEPS if s.checks and not set(s.checks) & _GROUPED)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One check call as the report needs it: small, hashable, JSON-able."""

    nodeid: str
    check: str
    model: str
    passed: bool
    #: Small scalars of the record's details, sorted by key.
    facts: tuple[tuple[str, Any], ...] = ()

    @property
    def step(self) -> str | None:
        """The recipe step this check belongs to, or None for a check the report does not know."""
        return _STEP_OF.get(self.check)


def to_json(nodeid: str, record: Any) -> dict[str, Any]:
    """The JSON-able form of one check call: ``{"nodeid", "check", "model", "passed",
    "facts"}``, where ``facts`` keeps only the record details that are small scalars (bool,
    int, finite float, short str, None): method, mode, steps, target, ... Arrays, tensors,
    lists and the batch stay behind.

    ``record`` is a ``_context.CheckRecord``, an :class:`Entry` or a mapping with the same keys.
    """
    if isinstance(record, Entry):
        return {
            "nodeid": record.nodeid,
            "check": record.check,
            "model": record.model,
            "passed": record.passed,
            "facts": dict(record.facts),
        }
    get = record.get if isinstance(record, Mapping) else lambda k, d=None: getattr(record, k, d)
    details = get("details", None) or get("facts", None) or {}
    return {
        "nodeid": str(nodeid),
        "check": str(get("check", "")),
        "model": str(get("model", "")),
        "passed": bool(get("passed", False)),
        "facts": {str(k): v for k, v in dict(details).items() if _small(v)},
    }


def from_json(data: Mapping[str, Any]) -> Entry:
    """The :class:`Entry` of a dict made by :func:`to_json` (after a trip through JSON)."""
    try:
        facts = data.get("facts") or {}
        return Entry(
            nodeid=str(data["nodeid"]),
            check=str(data["check"]),
            model=str(data["model"]),
            passed=bool(data["passed"]),
            facts=tuple(sorted((str(k), v) for k, v in dict(facts).items() if _small(v))),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a check entry: {data!r} ({exc})") from exc


def build_report(
    entries: Iterable[Entry | Mapping[str, Any]],
    *,
    artifacts_dir: str | None = None,
    artifacts_written: int = 0,
    property_tests: int = 0,
    width: int = WIDTH,
) -> str:
    """The coverage table of a session's check calls (from every xdist worker).

    ``artifacts_dir``: the ``--nn-artifacts`` directory, if given, and
    ``artifacts_written``: how many pictures went there; only pictures actually written cover
    "Visualize just before the net" (and, with a training check, "Visualize prediction
    dynamics"): a directory that stayed empty (every check passed, matplotlib missing) does
    not; ``property_tests``: how many Hypothesis-driven tests ran (covers "Generalize a
    special case").
    """
    items = [e if isinstance(e, Entry) else from_json(e) for e in entries]
    tests = {e.nodeid for e in items}
    models = sorted({e.model for e in items if e.check not in _GROUPED})
    failed = sum(not e.passed for e in items)
    lines = [
        f"Recipe coverage: {_n(len(items), 'check call')} in {_n(len(tests), 'test')}"
        f" on {_n(len(models), 'model')}; {failed} failed.",
        "",
    ]
    lines += _steps_table(items, artifacts_dir, artifacts_written, property_tests, width)
    for model in models:
        lines.append("")
        mine = [e for e in items if e.model == model and e.check not in _GROUPED]
        lines += _model_table(model, mine, width)
    for title, checks in GROUPS:
        mine = [e for e in items if e.check in checks]
        if mine:
            lines.append("")
            lines += _model_table(title, mine, width, show_missing=False)
    missing = [
        s
        for s in STEPS
        if not _status(s, items, artifacts_dir, property_tests, artifacts_written)[0]
    ]
    lines.append("")
    if missing:
        lines.append("Not covered by any test (how to cover it):")
        for step in missing:
            lines += _wrap(f"- {step.name}: {step.how}", width, indent="  ")
    else:
        lines.append("Every recipe step is covered.")
    return "\n".join(lines)


def _steps_table(
    items: list[Entry],
    artifacts_dir: str | None,
    written: int,
    property_tests: int,
    width: int,
) -> list[str]:
    name_w = max(len(s.name) for s in STEPS)
    out = [f"{'recipe step':<{name_w}}  tests  verdict"]
    for step in STEPS:
        _, count, verdict = _status(step, items, artifacts_dir, property_tests, written)
        line = f"{step.name:<{name_w}}  {count:>5}  {verdict}"
        out.append(line if len(line) <= width else line[: width - 3] + "...")
    return out


def _status(
    step: Step,
    items: list[Entry],
    artifacts_dir: str | None,
    property_tests: int,
    written: int = 0,
) -> tuple[bool, str, str]:
    """(covered, tests column, verdict column) of ``step``."""
    if step.checks:
        mine = [e for e in items if e.check in step.checks]
        if not mine:
            return False, "-", "not covered"
        bad = {e.nodeid for e in mine if not e.passed}
        return True, str(len({e.nodeid for e in mine})), f"{len(bad)} FAILED" if bad else "ok"
    if step.name == "Visualize just before the net":
        if artifacts_dir is None:
            return False, "-", "not covered (text pictures only)"
        if not written:
            return False, "-", f"no picture written to {artifacts_dir}"
        return True, "all", f"{_n(written, 'picture')} in {artifacts_dir}"
    if step.name == "Visualize prediction dynamics":
        curves = {e.nodeid for e in items if e.check in TRAINING_CURVE_CHECKS}
        if not curves:
            return False, "-", "not covered"
        if artifacts_dir is None:
            return False, str(len(curves)), "text curves only (no --nn-artifacts)"
        if not written:
            return False, str(len(curves)), "text curves only (no picture written)"
        return True, str(len(curves)), "pictures of loss and predictions"
    if step.name == "Generalize a special case":
        if property_tests:
            return True, str(property_tests), "Hypothesis tests ran"
        return False, "-", "not covered"
    return False, "-", "not covered"  # pragma: no cover - every step is handled above


def _model_table(
    model: str, items: list[Entry], width: int, show_missing: bool = True
) -> list[str]:
    counts: dict[str, list[int]] = {}
    for e in items:
        c = counts.setdefault(e.check, [0, 0])
        c[0 if e.passed else 1] += 1
    order = {check: k for k, check in enumerate(_STEP_OF)}
    checks = sorted(counts, key=lambda c: (order.get(c, len(order)), c))
    name_w = max(44, *(len(c) + 2 for c in checks))
    title = model if len(model) <= name_w else model[: name_w - 3] + "..."
    out = [f"{title:<{name_w}}  ran  passed  failed"]
    for check in checks:
        ok, bad = counts[check]
        flag = "  FAILED" if bad else ""
        out.append(f"{'  ' + check:<{name_w}}  {ok + bad:>3}  {ok:>6}  {bad:>6}{flag}")
    if show_missing:
        ran_steps = {_STEP_OF.get(c) for c in counts}
        missing = [s for s in _MODEL_STEPS if s not in ran_steps]
        if missing:
            out += _wrap("not checked on this model: " + "; ".join(missing), width, indent="  ")
    return out


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
    )


def _n(k: int, noun: str) -> str:
    return f"{k} {noun}{'' if k == 1 else 's'}"


def _small(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= 80
