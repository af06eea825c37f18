"""The key figure of each step, for the table: from the check's result when it passed, from
what the check recorded (its typed record, ``_records``) when it failed."""

from __future__ import annotations

import math
from typing import Any

from .._records import (
    CheckRecord,
    DependencyRecord,
    DeterminismRecord,
    InputsUsedRecord,
    OptimizerRecord,
    ScheduleRecord,
    TrainingRecord,
)


def figure(name: str, result: Any, record: CheckRecord | None) -> str:
    """The step's key figure from the check's result (passed) or its record (failed); a
    training step whose verdict was borderline says so, with what would make it decisive."""
    text = _figure(name, result, record)
    closeness = getattr(result if result is not None else record, "closeness", None)
    if text and closeness is not None and closeness.borderline:
        decisive = f", {closeness.decisive} to decide" if closeness.decisive else ""
        return f"{text}; borderline{decisive}"
    return text


def _figure(name: str, result: Any, record: CheckRecord | None) -> str:
    if name == "inputs_used":
        if result is not None:
            columns = f" ({result.columns} columns)" if result.columns else ""
            return f"{len(result.inputs)} of {len(result.inputs)} inputs used{columns}"
        if isinstance(record, InputsUsedRecord) and record.unused:
            return f"unused: {record.unused}"
    elif name == "optimizer":
        if result is not None:
            return f"{result.trainable} of {result.trainable} trainable parameters held"
        if isinstance(record, OptimizerRecord):
            wrong = [
                f"{n} {what}"
                for n, what in (
                    (record.missing, "missing"),
                    (record.frozen_held, "frozen held"),
                    (record.stale, "stale"),
                    (record.twice, "held twice"),
                )
                if n
            ]
            return ", ".join(wrong)
    elif name == "deterministic":
        if result is not None:
            return f"{result.tensors} tensors identical over {result.steps} steps"
        if isinstance(record, DeterminismRecord) and record.part == "forward":
            return "two forwards differ"
        if isinstance(record, DeterminismRecord) and record.part == "training":
            return f"runs part at step {record.step}"
    elif name == "init_loss":
        if result is not None:
            blunt = ""
            if getattr(result, "blunt", False):
                blunt = f", blunt below {result.sharp_batch_size} samples"
            bound = ""
            if result.closeness is not None:
                side = "at least" if result.closeness.higher else "at most"
                bound = f" ({side} {_num(result.closeness.threshold)})"
            return (
                f"init loss {_num(result.loss)} vs {_num(result.expected)} expected{bound}{blunt}"
            )
        if isinstance(record, TrainingRecord) and record.losses and record.target is not None:
            return f"init loss {_num(record.losses[0])} vs {_num(record.target)} expected"
    elif name == "params_update":
        if result is not None:
            n = len(result.checked)
            ignored = f", {len(result.ignored)} ignored" if result.ignored else ""
            spare = len(getattr(result, "redundant", ()))
            if spare:
                return f"{n - spare} of {n} parameters learn, {spare} redundant{ignored}"
            return f"{n} of {n} parameters learn{ignored}"
        if isinstance(record, TrainingRecord) and record.failing:
            bad = record.failing
            return f"{len(bad)} do not learn: {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}"
    elif name == "loss_decreases":
        losses = result.losses if result is not None else _losses(record)
        if losses:
            after = list(losses[1:]) or [losses[0]]
            tail = after[-max(1, len(after) // 5) :]
            final = sum(tail) / len(tail)
            change = (final - losses[0]) / abs(losses[0]) if losses[0] else math.nan
            return (
                f"loss {_num(losses[0])} -> {_num(final)} in {len(losses) - 1} steps "
                f"({change:+.0%})"
            )
    elif name == "baseline":
        if result is not None:
            real, blind = result.final, result.baseline_final
        elif isinstance(record, TrainingRecord) and record.losses and record.baseline_losses:
            from .._training._fit import settle

            real, blind = settle(record.losses), settle(record.baseline_losses)
        else:
            return ""
        closeness = getattr(result if result is not None else record, "closeness", None)
        closed = (
            f", {closeness.number(closeness.value)} of the gap closed "
            f"({closeness.number(closeness.threshold)} needed)"
            if closeness is not None
            else ""
        )
        return f"loss {_num(real)} vs {_num(blind)} on zeroed inputs{closed}"
    elif name == "overfit":
        if result is not None:
            return (
                f"overfit in {result.steps} steps (loss {_num(result.final_loss)} <= "
                f"{_num(result.target_loss)})"
            )
        losses = [v for v in _losses(record) if math.isfinite(v)]
        if isinstance(record, TrainingRecord) and losses and record.target is not None:
            return (
                f"best loss {_num(min(losses))} in {record.steps} steps, "
                f"target {_num(record.target)}"
            )
    elif name in ("batch_mixing", "causal"):
        verb = "mix" if name == "batch_mixing" else "leak"
        if result is not None:
            return f"0 of {result.pairs} pairs {verb}"
        if isinstance(record, DependencyRecord):
            bad = record.matrix & ~record.allowed
            total = int((~record.allowed).sum())
            rows, cols = bad.nonzero()
            first = f", e.g. {record.unit} {rows[0]} <- {cols[0]}" if len(rows) else ""
            return f"{int(bad.sum())} of {total} pairs {verb}{first}"
    elif name == "padding":
        if result is not None:
            return f"0 of {result.padded} padded positions leak"
        if isinstance(record, DependencyRecord):
            leaks = record.matrix & ~record.allowed  # (sample, position): padded and leaking
            samples, positions = leaks.nonzero()
            first = f", e.g. sample {samples[0]} position {positions[0]}" if len(samples) else ""
            total = int((~record.allowed).sum())
            return f"{int(leaks.sum())} of {total} padded positions leak{first}"
    elif name == "lr_schedule":
        if result is not None:
            return (
                f"lr peak {result.peak:.3g}, {result.final:.3g} at step {len(result.lrs) - 1}; "
                "no early collapse"
            )
        if isinstance(record, ScheduleRecord) and record.lrs:
            lrs = record.lrs
            return f"lr peak {max(lrs):.3g}, {lrs[-1]:.3g} at step {len(lrs) - 1}"
    return ""


def _losses(record: CheckRecord | None) -> list[float]:
    return list(record.losses) if isinstance(record, TrainingRecord) else []


def _num(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.2f}" if 1 <= abs(value) < 1000 else f"{value:.3g}"


def headline(message: str) -> str:
    first = first_line(message)
    return first.split(" failed: ", 1)[-1]


def first_line(text: str, limit: int = 70) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
