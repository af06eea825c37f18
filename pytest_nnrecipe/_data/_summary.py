"""A compact table of a dataset for a person to read before writing checks.

:func:`describe_data` streams over the data once and reports: size, each field's dtypes and
shapes (every distinct shape, so ragged data shows up), value statistics with NaN/Inf counts,
per-feature statistics (along dim 0 of each sample: features of a vector, channels of an
image), a histogram of a class-label field, exact duplicates, and outliers along both axes:
samples whose mean/std/min/max sit far from the others (robust z-score: distance from the
median in units of 1.4826 x MAD) and features that are constant or far from the other features.

It returns a :class:`DataSummary` (``str(summary)`` is the table) and prints it by default
(``show=True``), so a test that calls it shows the table under ``pytest -s`` and in the
"Captured stdout" section of a failure, and code can still assert on the numbers.
"""

from __future__ import annotations

import array
import collections
import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from .. import _context, _text_pictures
from .._records import SummaryRecord
from .._results import DataSummary, FieldSummary
from . import _balance, _samples
from ._normalization import Moments

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Data

#: Distinct values above which a field is not shown as a class histogram.
MAX_CLASSES = 100
#: Per-feature rows shown.
MAX_FEATURES = 12
#: Outliers listed per axis.
MAX_OUTLIERS = 5
SAMPLE_STATS = ("mean", "std", "min", "max")
#: A per-sample stat with fewer distinct values (binary multi-label targets, one-hot rows) is
#: categorical: no sample is an outlier of it.
MIN_DISTINCT = 5


class _Field:
    """Streaming accumulator of one leaf."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dtypes: collections.Counter[str] = collections.Counter()
        self.shapes: collections.Counter[tuple[int, ...]] = collections.Counter()
        self.total = Moments(1)
        self.features: Moments | None = None
        self.features_ok = True
        self.nan = self.inf = 0
        self.index = array.array("q")
        self.stats = {s: array.array("d") for s in SAMPLE_STATS}
        self.classes: collections.Counter[Any] | None = collections.Counter()
        self.first: dict[bytes, int] = {}
        self.repeats = 0
        self.repeat_pairs: list[tuple[int, int]] = []

    def seen(self, i: int, leaf: Any) -> None:
        """Track repeats of this field alone (e.g. the same image under another label)."""
        j = self.first.setdefault(_samples.fingerprint(leaf), i)
        if j != i:
            self.repeats += 1
            if len(self.repeat_pairs) < 6:
                self.repeat_pairs.append((j, i))

    def add(self, idx: np.ndarray, rows: np.ndarray) -> None:
        """A block of samples of one shape/dtype: ``rows`` is (m, *shape)."""
        m = len(idx)
        shape = tuple(rows.shape[1:])
        self.dtypes[str(rows.dtype)] += m
        self.shapes[shape] += m
        self._classes(rows)
        if not _samples.numeric(rows) or rows.dtype.kind == "c":
            return
        x = rows.astype(np.float64, copy=False).reshape(m, -1)
        finite = np.isfinite(x)
        self.nan += int(np.isnan(x).sum())
        self.inf += int(np.isinf(x).sum())
        if x.shape[1] == 0:
            return
        xf = np.where(finite, x, np.nan)
        with np.errstate(all="ignore"), _quiet():
            stats = {
                "mean": np.nanmean(xf, axis=1), "std": np.nanstd(xf, axis=1),
                "min": np.nanmin(xf, axis=1), "max": np.nanmax(xf, axis=1),
            }  # fmt: skip
        self.index.extend(idx.tolist())
        for s in SAMPLE_STATS:
            self.stats[s].extend(stats[s].tolist())
        clean = x[finite.all(axis=1)]
        self.total.add(clean.reshape(1, -1))
        if len(shape) >= 1 and self.features_ok:
            f = shape[0]
            if self.features is None:
                self.features = Moments(f)
            if len(self.features.mean) != f:
                self.features_ok = False
            elif len(clean):
                feats = clean.reshape(len(clean), f, -1)
                self.features.add(np.moveaxis(feats, 1, 0).reshape(f, -1))

    def _classes(self, rows: np.ndarray) -> None:
        if self.classes is None:
            return
        if rows.ndim != 1 or rows.dtype.kind not in "biuUS":
            self.classes = None
            return
        values, n = np.unique(rows, return_counts=True)
        self.classes.update(dict(zip(values.tolist(), n.tolist(), strict=True)))
        if len(self.classes) > MAX_CLASSES:
            self.classes = None

    def add_other(self, value: Any) -> None:
        """A non-array leaf (str, bytes, None)."""
        self.dtypes[type(value).__name__] += 1
        self.shapes[()] += 1
        if self.classes is not None and isinstance(value, (str, bytes)):
            self.classes[value] += 1
            if len(self.classes) > MAX_CLASSES:
                self.classes = None
        else:
            self.classes = None


def describe_data(
    data: Data,
    *,
    labels: Any = None,
    key: Callable[[Any], Any] | None = None,
    max_samples: int | None = None,
    progress: bool | None = None,
    outlier_z: float = 6.0,
    show: bool = True,
    file: TextIO | None = None,
) -> DataSummary:
    """Summarise ``data`` in one table; print it (``show=True``, to ``file`` or stdout).

    ``labels``: class labels aligned with ``data`` for the histogram; by default a field of
    integer/string scalars (the label of ``(input, label)`` pairs, or 1-d integer data) is
    used. ``outlier_z``: robust z-score above which a sample or feature is listed as an outlier.
    Nothing is changed: not the data, not the global RNGs (``max_samples`` draws its subset
    with a private generator).
    """
    if not outlier_z > 0:
        raise ValueError(f"outlier_z={outlier_z!r} must be a positive number")
    source = _samples.open_data(
        data, name="data", max_samples=max_samples, progress=progress, key=key
    )
    _samples.refuse_empty(source)  # a table of nothing: say so instead
    fields: dict[str, _Field] = {}
    first: dict[bytes, int] = {}
    dups = 0
    pairs: list[tuple[int, int]] = []
    n = 0

    def seen(i: int, d: bytes) -> None:
        nonlocal dups
        j = first.setdefault(d, i)
        if j != i:
            dups += 1
            if len(pairs) < 1000:
                pairs.append((j, i))

    if source.is_array:
        field = fields.setdefault("", _Field(""))
        for idx, rows in source.chunked():
            n += len(idx)
            field.add(idx, rows)
            for i, d in zip(idx.tolist(), _samples.row_fingerprints(rows), strict=True):
                seen(i, d)
    else:
        for i, sample in source:
            n += 1
            seen(i, _samples.fingerprint(sample))
            one = np.asarray([i])
            for path, leaf in _samples.leaves(sample):
                field = fields.setdefault(path, _Field(path))
                if path:
                    field.seen(i, leaf)
                if isinstance(leaf, np.ndarray):
                    field.add(one, leaf[None])
                else:
                    field.add_other(leaf)
    _samples.refuse_empty(source, n)
    label_counts, label_name = _labels(labels, source, fields)
    outliers = _sample_outliers(fields, outlier_z)
    constant = _feature_outliers(fields)
    summary = [_field_summary(f) for f in fields.values()]
    text = _table(source, n, summary, label_counts, label_name, dups, pairs, outliers, constant,
                  outlier_z)  # fmt: skip
    result = DataSummary(
        text, source.kind, n, tuple(summary), label_counts, dups, tuple(pairs), tuple(outliers),
        tuple(constant),
    )  # fmt: skip
    _context.record(SummaryRecord(
        check="describe_data", model=source.kind, passed=True, n_samples=n, n_duplicates=dups,
        outliers=[o[0] for o in outliers[:MAX_OUTLIERS]], label_counts=label_counts,
    ))  # fmt: skip
    if show:
        print(text, file=file if file is not None else sys.stdout)
    return result


def _labels(
    labels: Any, source: _samples.Source, fields: dict[str, _Field]
) -> tuple[dict[Any, int] | None, str]:
    if labels is not None:
        y = _samples.open_data(labels, name="labels")
        if source.indices is not None and y.length == source.length:
            y.indices = source.indices
        counts = _balance.class_counts(y)
        return dict(sorted(counts.items(), key=lambda kv: str(kv[0]))), "labels="
    for path, f in fields.items():
        if f.classes and (path or len(fields) == 1) and not _is_float_field(f):
            return dict(sorted(f.classes.items(), key=lambda kv: str(kv[0]))), path or "values"
    return None, ""


def _is_float_field(f: _Field) -> bool:
    return any(d.startswith("float") for d in f.dtypes)


def _robust_z(v: np.ndarray, floor: float) -> np.ndarray:
    """(v - median) / (1.4826 MAD), the scale floored at ``floor`` (1% of the value range),
    so that a stat most samples share exactly (a clamped max of 1.0) does not make a tiny
    deviation look huge."""
    med = np.median(v)
    scale = max(1.4826 * float(np.median(np.abs(v - med))), floor)
    if scale == 0:
        return np.zeros_like(v)
    return (v - med) / scale


def _sample_outliers(
    fields: dict[str, _Field], z_max: float
) -> list[tuple[int, str, str, float, float]]:
    found: dict[int, tuple[int, str, str, float, float]] = {}
    for path, f in fields.items():
        if len(f.index) < 8:
            continue
        idx = np.frombuffer(f.index, dtype=np.int64)
        lo = np.frombuffer(f.stats["min"], dtype=np.float64)
        hi = np.frombuffer(f.stats["max"], dtype=np.float64)
        with np.errstate(all="ignore"), _quiet():
            span = float(np.nanmax(hi) - np.nanmin(lo)) if len(lo) else 0.0
        span = span if np.isfinite(span) else 0.0
        for stat in SAMPLE_STATS:
            v = np.frombuffer(f.stats[stat], dtype=np.float64)
            ok = np.isfinite(v)
            if ok.sum() < 8 or len(np.unique(v[ok])) < MIN_DISTINCT:
                continue  # a stat with a handful of values (0/1 targets) has categories, not outliers
            z = np.zeros_like(v)
            z[ok] = _robust_z(v[ok], 0.01 * span)
            for k in np.flatnonzero(np.abs(z) > z_max).tolist():
                i = int(idx[k])
                if i not in found or abs(z[k]) > abs(found[i][4]):
                    found[i] = (i, path, stat, float(v[k]), float(z[k]))
    return sorted(found.values(), key=lambda t: -abs(t[4]))


def _feature_outliers(fields: dict[str, _Field]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for path, f in fields.items():
        if f.features is not None and f.features_ok and f.features.n > 1:
            out.extend((path, int(k)) for k in np.flatnonzero(f.features.std == 0).tolist())
    return out


def _field_summary(f: _Field) -> FieldSummary:
    numeric = f.total.n > 0
    feats = f.features if (f.features is not None and f.features_ok and f.features.n) else None
    return FieldSummary(
        f.path, dict(f.dtypes), dict(f.shapes),
        float(f.total.mean[0]) if numeric else float("nan"),
        float(f.total.std[0]) if numeric else float("nan"),
        float(f.total.min[0]) if numeric else float("nan"),
        float(f.total.max[0]) if numeric else float("nan"),
        f.nan, f.inf,
        tuple(feats.mean.tolist()) if feats is not None else None,
        tuple(feats.std.tolist()) if feats is not None else None,
        f.repeats, tuple(f.repeat_pairs),
    )  # fmt: skip


def _table(
    source: _samples.Source,
    n: int,
    fields: list[FieldSummary],
    label_counts: dict[Any, int] | None,
    label_name: str,
    dups: int,
    pairs: list[tuple[int, int]],
    outliers: list[tuple[int, str, str, float, float]],
    constant: list[tuple[str, int]],
    z_max: float,
) -> str:
    lines = [f"describe_data: {source.kind}, {n} samples ({source.read_note()})"]
    lines.append(
        f"  {'field':<8} {'dtype':<9} {'shape':<12} {'mean':>8} {'std':>8} {'min':>8} "
        f"{'max':>8} {'nan':>4} {'inf':>4}"
    )
    for f in fields:
        dtype = "/".join(f.dtypes) if len(f.dtypes) <= 2 else f"{len(f.dtypes)} dtypes"
        if len(f.shapes) == 1:
            shape = str(next(iter(f.shapes)))
        else:
            shape = f"{len(f.shapes)} shapes!"
        lines.append(
            f"  {f.path or '(sample)':<8.8} {dtype:<9.9} {shape:<12.12} {f.mean:>8.3g} "
            f"{f.std:>8.3g} {f.min:>8.3g} {f.max:>8.3g} {f.nan:>4} {f.inf:>4}"
        )
        if len(f.shapes) > 1:
            common = sorted(f.shapes.items(), key=lambda kv: -kv[1])[:4]
            lines.append(
                "    ragged: "
                + ", ".join(f"{s} x{c}" for s, c in common)
                + (" ..." if len(f.shapes) > 4 else "")
            )
    for f in fields:
        if f.feature_mean is None or f.feature_std is None or len(f.feature_mean) < 2:
            continue
        k = len(f.feature_mean)
        lines.append(
            f"  per feature of {f.path or '(sample)'} (dim 0, {k} features"
            + (f", first {MAX_FEATURES}" if k > MAX_FEATURES else "")
            + "):"
        )
        lines.append(f"    {'feature':>7} {'mean':>10} {'std':>10}")
        for j in range(min(k, MAX_FEATURES)):
            lines.append(f"    {j:>7} {f.feature_mean[j]:>10.4g} {f.feature_std[j]:>10.4g}")
    if label_counts:
        lines.append(f"  labels ({label_name}): {len(label_counts)} classes")
        lines.extend(
            "    " + row for row in _text_pictures.bars(label_counts, width=30).splitlines()
        )
    if dups:
        shown = ", ".join(f"({a}, {b})" for a, b in pairs[:6])
        lines.append(
            f"  duplicates: {dups} samples repeat earlier ones: {shown}"
            + (" ..." if dups > 6 else "")
        )
    else:
        lines.append("  duplicates: none")
    label_path = label_name if label_name not in ("labels=", "values") else None
    for f in fields:
        if f.repeats and f.path != label_path and len(fields) > 1:
            shown = ", ".join(f"({a}, {b})" for a, b in f.repeat_pairs)
            lines.append(
                f"    field {f.path} alone: {f.repeats} repeats: {shown}"
                + (" ..." if f.repeats > len(f.repeat_pairs) else "")
            )
    if outliers:
        lines.append(f"  outlier samples (robust z > {z_max:g}): {len(outliers)}")
        for i, path, stat, v, z in outliers[:MAX_OUTLIERS]:
            lines.append(f"    sample {i}{path}: {stat} {v:.4g} (z {z:+.1f})")
    else:
        lines.append(f"  outlier samples (robust z > {z_max:g}): none")
    if constant:
        lines.append(
            "  constant features: "
            + ", ".join(f"{p or '(sample)'}[{k}]" for p, k in constant[:10])
            + (" ..." if len(constant) > 10 else "")
        )
    return "\n".join(lines)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence NumPy's all-NaN-slice RuntimeWarnings (an all-NaN sample is reported as such)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
