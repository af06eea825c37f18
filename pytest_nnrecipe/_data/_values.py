"""Corrupted values: NaN, +-Inf, and values outside stated bounds, with indices and counts."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _context, _messages
from .._records import ValuesRecord
from .._results import ValueReport
from . import _samples

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Data

#: Offending samples listed in a failure message (all are counted).
SHOWN = 8


def assert_finite_data(
    data: Data,
    *,
    low: float | None = None,
    high: float | None = None,
    key: Callable[[Any], Any] | None = None,
    max_samples: int | None = None,
    progress: bool | None = None,
    msg: str | None = None,
) -> ValueReport:
    """No NaN or Inf anywhere in ``data``, and every value in ``[low, high]`` when given.

    Checks every numeric leaf of every sample (for ``(image, label)`` pairs that includes the
    label: pass ``key=lambda s: s[0]`` to bound the image only). Failures list the offending
    sample indices, the position of the first bad value in each, and counts per kind.
    """
    __tracebackhide__ = True
    for name, v in (("low", low), ("high", high)):
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v)
        ):
            raise ValueError(f"{name}={v!r} must be a number or None")
    if low is not None and high is not None and low > high:
        raise ValueError(f"low={low!r} is above high={high!r}; pass low <= high")
    source = _samples.open_data(
        data, name="data", max_samples=max_samples, progress=progress, key=key
    )
    _samples.refuse_empty(source)
    counts = {"nan": 0, "+inf": 0, "-inf": 0, "below low": 0, "above high": 0}
    bad_samples = 0
    shown: list[str] = []
    n = n_values = 0
    lo, hi = math.inf, -math.inf

    def visit(i: int, path: str, a: np.ndarray) -> bool:
        nonlocal n_values, lo, hi
        x = _samples.as_float(a)
        if x.dtype.kind == "c":
            x = np.concatenate([x.real.ravel(), x.imag.ravel()])
        n_values += x.size
        with np.errstate(invalid="ignore"):
            kinds = {
                "nan": np.isnan(x),
                "+inf": np.isposinf(x),
                "-inf": np.isneginf(x),
                "below low": x < low if low is not None else None,
                "above high": x > high if high is not None else None,
            }
            finite = x[np.isfinite(x)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
        found = []
        for kind, mask in kinds.items():
            if mask is None:
                continue
            c = int(np.count_nonzero(mask))
            if c:
                counts[kind] += c
                found.append((kind, c, mask))
        if found and len(shown) < SHOWN:
            parts = []
            for kind, c, mask in found:
                pos = tuple(int(p) for p in np.unravel_index(int(np.argmax(mask)), mask.shape))
                value = x[pos] if a.dtype.kind != "c" else x.ravel()[int(np.argmax(mask))]
                at = f" at {pos}" if mask.ndim else ""
                parts.append(f"{c} {kind} (first{at}: {float(value):g})")
            shown.append(f"sample {i}{path}: " + ", ".join(parts))
        return bool(found)

    if source.is_array:
        dtype = getattr(source.data, "dtype", None)
        if isinstance(dtype, np.dtype) and dtype.kind not in "biufc":
            raise ValueError(
                f"data= holds no numeric values ({source.kind}): nothing to check. Pass numeric "
                "data, or key= picking the numeric part of each sample."
            )
        for idx, rows in source.chunked():
            n += len(idx)
            x = _samples.as_float(rows)
            with np.errstate(invalid="ignore"):
                flat = x.reshape(len(idx), -1)
                bad = ~np.isfinite(flat)
                if low is not None:
                    bad |= flat < low
                if high is not None:
                    bad |= flat > high
                rows_bad = bad.any(axis=1) if flat.shape[1] else np.zeros(len(idx), bool)
            finite = x[np.isfinite(x)]
            n_values += x.size
            if finite.size:
                lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
            for k in np.flatnonzero(rows_bad).tolist():
                n_values -= rows[k].size  # visit() counts it again
                bad_samples += visit(int(idx[k]), "", rows[k])
    else:
        for i, sample in source:
            n += 1
            hit = False
            for path, leaf in _samples.leaves(sample):
                if _samples.numeric(leaf):
                    hit |= visit(i, path, leaf)
            bad_samples += hit
    _samples.refuse_empty(source, n)
    if n_values == 0:
        raise ValueError(
            f"data= holds no numeric values in its {n} samples ({source.kind}): nothing to check. "
            "Pass numeric data, or key= picking the numeric part of each sample."
        )
    total_bad = sum(counts.values())
    passed = total_bad == 0
    _context.record(ValuesRecord(
        check="assert_finite_data", model=source.kind, passed=passed, n_samples=n,
        bad_samples=bad_samples, counts={k: v for k, v in counts.items() if v}, low=low,
        high=high, min=lo if math.isfinite(lo) else None, max=hi if math.isfinite(hi) else None,
    ))  # fmt: skip
    if not passed:
        what = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        bounds = f" [low={low}, high={high}]" if low is not None or high is not None else ""
        lines = list(shown)
        if bad_samples > len(shown):
            lines.append(f"... ({bad_samples - len(shown)} more samples)")
        lines.append(
            f"Finite values range over [{lo:g}, {hi:g}]; read {source.read_note()} of "
            f"{source.kind} ({n_values} values)."
        )
        nonfinite = counts["nan"] + counts["+inf"] + counts["-inf"]
        cause = (
            "corrupted files or failed decodes, a division by zero / log of 0 in "
            "preprocessing (e.g. std=0 for a constant feature), or missing values stored as NaN."
            if nonfinite
            else "a wrong scale (0..255 vs 0..1), an unnormalised feature, or corrupted values."
        )
        raise _messages.fail(
            "assert_finite_data",
            f"{bad_samples} of {n} samples hold bad values: {what}{bounds}.",
            msg=msg,
            evidence=lines,
            cause=cause,
        )
    return ValueReport(
        n, n_values, lo if math.isfinite(lo) else math.nan, hi if math.isfinite(hi) else math.nan,
        low, high,
    )  # fmt: skip
