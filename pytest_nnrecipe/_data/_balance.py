"""Label imbalance: every class holds at least its share, with the histogram in the message."""

from __future__ import annotations

import collections
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _context, _messages, _text_pictures
from .._records import BalanceRecord
from .._results import Balance
from . import _samples

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Data

#: The one key every NaN label is counted under (NaN != NaN, so each would be its own class).
NAN = float("nan")


def class_counts(
    source: _samples.Source, nan_at: list[int] | None = None
) -> collections.Counter[Any]:
    """Count class labels: each sample a scalar (int, str, 0-d tensor) or a 1-element array.

    NaN labels are counted under :data:`NAN`; their first indices go to ``nan_at`` if given.
    """
    counts: collections.Counter[Any] = collections.Counter()
    if source.is_array:
        for idx, rows in source.chunked():
            if rows.ndim > 1 and rows[0].size != 1:
                raise ValueError(
                    f"labels= has samples of shape {tuple(rows.shape[1:])} (sample {int(idx[0])}); "
                    "class labels must be scalars: pass class indices (e.g. one_hot.argmax(1)), "
                    "or key= picking one label of a multi-label target"
                )
            flat = rows.reshape(len(rows))
            if nan_at is not None and flat.dtype.kind in "fc" and len(nan_at) < _NAN_SHOWN:
                nan_at.extend(idx[np.isnan(flat)][: _NAN_SHOWN - len(nan_at)].tolist())
            values, n = np.unique(flat, return_counts=True)
            for v, c in zip(values.tolist(), n.tolist(), strict=True):
                counts[_key(v)] += c
        return counts
    for i, label in source:
        c = _key(class_of(label, i))
        if c is NAN and nan_at is not None and len(nan_at) < _NAN_SHOWN:
            nan_at.append(i)
        counts[c] += 1
    return counts


_NAN_SHOWN = 8


def _key(c: Any) -> Any:
    return NAN if isinstance(c, float) and c != c else c


def class_of(label: Any, index: int) -> Any:
    if isinstance(label, np.ndarray) and label.size == 1:
        return label.item()
    if isinstance(label, (str, bytes)):
        return label
    raise ValueError(
        f"label of sample {index} is {_samples.show(label)}; class labels must be scalars "
        f"(int, str, 0-d tensor). For (input, label) samples pass "
        f"{_samples.key_hint(label, 'label')}"
    )


def assert_balanced(
    labels: Data,
    *,
    min_share: float | Mapping[Any, float] | None = None,
    classes: int | Iterable[Any] | None = None,
    key: Callable[[Any], Any] | None = None,
    max_samples: int | None = None,
    progress: bool | None = None,
    msg: str | None = None,
) -> Balance:
    """Every class holds at least ``min_share`` of the samples.

    ``labels``: class labels (tensor/array/sequence), or a dataset with ``key=`` picking the
    label (``key=lambda s: s[1]``). ``min_share``: a fraction for every class, a mapping
    class -> fraction, or ``None`` for half a uniform share (``0.5 / n_classes``).
    ``classes``: the classes that must be present (an empty class is then caught too), or
    their number ``n`` for the labels ``0 .. n-1``; by default, the classes seen.
    """
    __tracebackhide__ = True
    source = _samples.open_data(
        labels, name="labels", max_samples=max_samples, progress=progress, key=key
    )
    expected = _expected_classes(classes)
    _samples.refuse_empty(source)
    nan_at: list[int] = []
    counts = class_counts(source, nan_at)
    if NAN in counts:
        n_nan, n_all = counts[NAN], sum(counts.values())
        _context.record(BalanceRecord(
            check="assert_balanced", model=source.kind, passed=False, n_samples=n_all,
            nan_labels=n_nan, counts={str(c): v for c, v in counts.items()}, under=[],
        ))  # fmt: skip
        raise _messages.fail(
            "assert_balanced",
            f"{n_nan} of {n_all} labels are NaN: missing labels, not a class.",
            msg=msg,
            evidence=[
                "NaN labels at samples: "
                + ", ".join(str(i) for i in nan_at)
                + (f", ... ({n_nan - len(nan_at)} more)" if n_nan > len(nan_at) else ""),
                f"Read: {source.read_note()} of {source.kind}.",
            ],
            cause="unannotated samples stored as NaN (a missing value in a CSV/DataFrame "
            "column), or a float label column cast from a join that did not match; drop or "
            "annotate them before training (a NaN target makes the loss NaN).",
        )
    _samples.refuse_empty(source, sum(counts.values()))
    if expected is not None:
        unknown = [c for c in counts if c not in set(expected)]
        for c in expected:
            counts.setdefault(c, 0)
    else:
        unknown = []
    ordered = dict(sorted(counts.items(), key=lambda kv: _sort_key(kv[0])))
    n = sum(ordered.values())
    k = len(ordered)
    shares = _shares(min_share, ordered, k)
    under = [(c, v) for c, v in ordered.items() if v / n < shares[c]]
    passed = not under and not unknown
    one_share = set(shares.values())
    _context.record(BalanceRecord(
        check="assert_balanced", model=source.kind, passed=passed, n_samples=n,
        counts={str(c): v for c, v in ordered.items()}, under=[str(c) for c, _ in under],
        min_share=one_share.pop() if len(one_share) == 1 else None,
    ))  # fmt: skip
    if not passed:
        lines = [
            f"class {c!r}: {v} of {n} samples ({v / n:.2%}), below min_share={shares[c]:.3g} "
            f"({shares[c]:.1%})"
            for c, v in under[:10]
        ]
        if len(under) > 10:
            lines.append(f"... ({len(under) - 10} more classes)")
        if unknown:
            lines.append(f"labels outside classes=: {unknown[:10]!r}")
        big = max(ordered.values())
        small = min(ordered.values())
        ratio = f"{big / small:.0f}:1" if small else "inf (an empty class)"
        lines.append(f"Largest : smallest class = {ratio}; read {source.read_note()}.")
        raise _messages.fail(
            "assert_balanced",
            f"{len(under)} of {k} classes are under-represented"
            + (f"; {len(unknown)} unexpected label(s)" if unknown else "")
            + ".",
            msg=msg,
            evidence=lines,
            cause="a skewed collection or a filter that dropped a class; rebalance (weighted "
            "sampler, class weights in the loss, a bias init at log class priors), or lower "
            "min_share if the imbalance is real and handled.",
            picture=_text_pictures.bars(ordered),
        )
    return Balance(n, dict(ordered), shares)


def _expected_classes(classes: Any) -> list[Any] | None:
    """The classes ``classes=`` names: a count ``n`` (the labels ``0 .. n-1``) or a sequence."""
    if classes is None:
        return None
    count = _count(classes)
    if count is not None:
        if count < 1:
            raise ValueError(
                f"classes={classes!r} must be a positive number of classes (the labels 0 .. "
                "n-1) or the sequence of classes the labels should cover"
            )
        return list(range(count))
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Iterable):
        raise TypeError(
            f"classes={classes!r} must be a number of classes n (the labels 0 .. n-1), e.g. "
            "classes=10, or the sequence of classes, e.g. classes=['cat', 'dog']"
        )
    expected = [_key(class_of(_samples.canonical(c, name="classes"), k))
                for k, c in enumerate(classes)]  # fmt: skip
    if not expected:
        raise ValueError("classes= is empty; pass the classes the labels should cover")
    return expected


def _count(classes: Any) -> int | None:
    """``classes`` as an int if it is one (Python, NumPy or 0-d tensor integer), else None."""
    if isinstance(classes, bool) or getattr(classes, "ndim", 0) != 0:
        return None
    try:
        return operator.index(classes)
    except TypeError:
        return None


def _shares(min_share: Any, counts: Mapping[Any, int], k: int) -> dict[Any, float]:
    if min_share is None:
        return dict.fromkeys(counts, 0.5 / k)
    if isinstance(min_share, Mapping):
        bad = {c: s for c, s in min_share.items() if not 0 <= s <= 1}
        if bad:
            raise ValueError(f"min_share={dict(min_share)!r}: shares must be in [0, 1]")
        return {c: float(min_share.get(c, 0.0)) for c in counts}
    if (
        isinstance(min_share, bool)
        or not isinstance(min_share, (int, float))
        or not 0 <= min_share <= 1
    ):
        raise ValueError(
            f"min_share={min_share!r} must be a fraction in [0, 1] (e.g. 0.05), a mapping "
            "class -> fraction, or None for half a uniform share"
        )
    if min_share * k > 1:
        raise ValueError(
            f"min_share={min_share} for each of {k} classes adds up to {min_share * k:.2f} > 1; "
            f"no labelling can pass: use at most {1 / k:.3g}"
        )
    return dict.fromkeys(counts, float(min_share))


def _sort_key(c: Any) -> tuple[int, Any]:
    return (0, c) if isinstance(c, (int, float)) else (1, str(c))
