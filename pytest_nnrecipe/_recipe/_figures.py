"""The key figure of each step, for the table: from the check's result when it passed, from
what the check recorded (``_context.record``) when it failed."""

from __future__ import annotations

import math
from typing import Any


def figure(name: str, result: Any, record: Any) -> str:
    """The step's key figure from the check's result (passed) or its record (failed)."""
    d = record.details if record is not None else {}
    if name == "deterministic":
        if result is not None:
            return f"{result.tensors} tensors identical over {result.steps} steps"
        if d.get("part") == "forward":
            return "two forwards differ"
        if d.get("part") == "training":
            return f"runs part at step {d.get('step')}"
    elif name == "init_loss":
        if result is not None:
            blunt = ""
            if getattr(result, "blunt", False):
                blunt = f", blunt below {result.sharp_batch_size} samples"
            return f"init loss {_num(result.loss)} vs {_num(result.expected)} expected{blunt}"
        if d.get("losses") and d.get("target") is not None:
            return f"init loss {_num(d['losses'][0])} vs {_num(d['target'])} expected"
    elif name == "params_update":
        if result is not None:
            n = len(result.checked)
            ignored = f", {len(result.ignored)} ignored" if result.ignored else ""
            spare = len(getattr(result, "redundant", ()))
            if spare:
                return f"{n - spare} of {n} parameters learn, {spare} redundant{ignored}"
            return f"{n} of {n} parameters learn{ignored}"
        if d.get("failing"):
            bad = d["failing"]
            return f"{len(bad)} do not learn: {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}"
    elif name == "loss_decreases":
        losses = result.losses if result is not None else d.get("losses")
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
        elif d.get("losses") and d.get("baseline_losses"):
            from .._training._fit import settle

            real, blind = settle(d["losses"]), settle(d["baseline_losses"])
        else:
            return ""
        return f"loss {_num(real)} vs {_num(blind)} on zeroed inputs"
    elif name == "overfit":
        if result is not None:
            return (
                f"overfit in {result.steps} steps (loss {_num(result.final_loss)} <= "
                f"{_num(result.target_loss)})"
            )
        losses = [v for v in d.get("losses", []) if math.isfinite(v)]
        if losses and d.get("target") is not None:
            return (
                f"best loss {_num(min(losses))} in {d.get('steps', len(losses) - 1)} steps, "
                f"target {_num(d['target'])}"
            )
    elif name in ("batch_mixing", "causal"):
        verb = "mix" if name == "batch_mixing" else "leak"
        if result is not None:
            return f"0 of {result.pairs} pairs {verb}"
        if d.get("matrix") is not None and d.get("allowed") is not None:
            bad = d["matrix"] & ~d["allowed"]
            total = int((~d["allowed"]).sum())
            rows, cols = bad.nonzero()
            what = "sample" if name == "batch_mixing" else "step"
            first = f", e.g. {what} {rows[0]} <- {cols[0]}" if len(rows) else ""
            return f"{int(bad.sum())} of {total} pairs {verb}{first}"
    elif name == "lr_schedule":
        if result is not None:
            return (
                f"lr peak {result.peak:.3g}, {result.final:.3g} at step {len(result.lrs) - 1}; "
                "no early collapse"
            )
        lrs = d.get("lrs")
        if lrs:
            return f"lr peak {max(lrs):.3g}, {lrs[-1]:.3g} at step {len(lrs) - 1}"
    return ""


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
