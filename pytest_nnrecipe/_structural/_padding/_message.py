"""The failure message: the headline pair, the evidence lines, the dependency picture."""

from __future__ import annotations

import numpy as np
import torch

from ... import _text_pictures
from .. import _verdict
from ._case import Case
from ._leaks import Found

#: Leaking pairs listed in the message.
SHOWN = 6


def _unit_text(unit: tuple[int, int | None], pooled: bool) -> str:
    s, p = unit
    return f"pooled output of sample {s}" if pooled else f"output of sample {s} at position {p}"


def headline(found: Found) -> str:
    (s, p), unit, _strength = found.pairs[0]
    return (
        f"{_unit_text(unit, found.pooled)} depends on the content of padded position {p} of "
        f"sample {s}."
    )


def evidence(case: Case, found: Found) -> list[str]:
    padded = ~case.real.numpy()
    n_leak = int(found.leaks.sum())
    per_sample = {s: np.nonzero(found.leaks[s])[0].tolist() for s in range(found.leaks.shape[0])}
    listed = "; ".join(f"sample {s}: {ps}" for s, ps in per_sample.items() if ps)
    scale = (
        "gradient size relative to a typical real dependency"
        if found.method.startswith("grad")
        else "change relative to the output's largest magnitude"
    )
    worst = ", ".join(
        f"(sample {s}, position {p}) -> {_unit_text(unit, found.pooled)} ({size:.2g})"
        for (s, p), unit, size in found.pairs[:SHOWN]
    )
    lines = [
        f"Leaking padded positions: {_verdict.percent(n_leak, int(padded.sum()))} reach a real "
        f"output ({len(found.pairs)} (padded position, output) pairs)",
        f"Where: {listed}",
        f"Worst ({scale}): {worst}",
    ]
    if found.noise is not None:
        lines.append(found.noise.text())
    side = _sides(case.real)
    units = "pooled outputs" if found.pooled else "outputs at real positions"
    lines.append(
        f"Covered: every padded position of {padded.shape[0]} samples ({side} padding) "
        f"against every sample's {units}; content resampled: {', '.join(case.resampled())}"
    )
    return lines


def _sides(real: torch.Tensor) -> str:
    """``right``, ``left`` or ``mixed``: where the padding of each sample is."""
    steps = real.shape[1]
    pos = torch.arange(steps)
    count = real.sum(1, keepdim=True)
    right = bool((real == (pos < count)).all())
    left = bool((real == (pos >= steps - count)).all())
    return "right" if right else "left" if left else "mixed"


def picture(case: Case, found: Found) -> str:
    real = case.real.numpy()
    return _text_pictures.dependency_matrix(
        real | found.leaks,
        real,
        rows="outputs of sample",
        cols="input position",
        inconclusive=found.inconclusive,
    )
