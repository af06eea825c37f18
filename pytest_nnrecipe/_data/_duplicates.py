"""Duplicates, leakage between splits, and label conflicts: one pass of hashing each.

Every check streams over the data once, keeping only ``fingerprint -> first index`` (about
100 bytes a sample, never the samples), so time and memory are linear in the number of
samples. Exact mode compares dtype, shape and bytes (see :mod:`._samples`).

Tolerance mode (``atol=``): float values are rounded to the nearest multiple of ``atol``
before hashing (integers, strings stay exact). Two samples are reported as near-duplicates
when every value rounds to the same multiple, which guarantees they differ by less than
``atol`` element-wise. It is a grid, not a metric search: a near pair whose values straddle a
rounding boundary (e.g. 0.149 and 0.151 with ``atol=0.1``) can be missed, so treat a pass in
tolerance mode as "no near-duplicates found", and exact mode as a guarantee.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .. import _context, _messages
from .._records import DisjointRecord, DuplicatesRecord, LabelConflictsRecord
from .._results import Duplicates, LabelConflicts, Overlap
from . import _samples

if TYPE_CHECKING:  # pragma: no cover
    from .._types import Data

#: Pairs kept in a result (all are counted).
MAX_PAIRS = 1000
#: Pairs listed in a failure message.
SHOWN = 8


def digests(source: _samples.Source, atol: float | None = None) -> Iterator[tuple[int, bytes]]:
    """``(index, fingerprint)`` of every sample: in bulk for arrays, one by one otherwise."""
    if source.is_array:
        for idx, rows in source.chunked():
            yield from zip(idx.tolist(), _samples.row_fingerprints(rows, atol=atol), strict=True)
    else:
        for i, sample in source:
            yield i, _samples.fingerprint(sample, atol=atol)


def find_duplicates(
    source: _samples.Source, atol: float | None = None
) -> tuple[int, int, int, list[tuple[int, int]]]:
    """(samples read, duplicates, groups, first pairs) of one stream."""
    first: dict[bytes, int] = {}
    n = dups = 0
    groups: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for i, d in digests(source, atol):
        n += 1
        j = first.setdefault(d, i)
        if j != i:
            dups += 1
            groups.add(j)
            if len(pairs) < MAX_PAIRS:
                pairs.append((j, i))
    return n, dups, len(groups), pairs


def assert_no_duplicates(
    data: Data,
    *,
    atol: float | None = None,
    key: Callable[[Any], Any] | None = None,
    max_samples: int | None = None,
    progress: bool | None = None,
    msg: str | None = None,
) -> Duplicates:
    """No sample appears twice in ``data``; failures list (first, duplicate) index pairs.

    ``key`` picks what is compared (e.g. ``key=lambda s: s[0]`` for the input of an
    ``(input, label)`` pair: the same input with two labels is a duplicate then).
    ``atol``: near-duplicates on a rounding grid (see the module docstring).
    """
    __tracebackhide__ = True
    _check_atol(atol)
    source = _samples.open_data(
        data, name="data", max_samples=max_samples, progress=progress, key=key
    )
    _samples.refuse_empty(source)
    n, dups, n_groups, pairs = find_duplicates(source, atol)
    _samples.refuse_empty(source, n)
    passed = dups == 0
    _context.record(DuplicatesRecord(
        check="assert_no_duplicates", model=source.kind, passed=passed, n_samples=n,
        n_duplicates=dups, n_groups=n_groups, pairs=pairs[:SHOWN], atol=atol,
    ))  # fmt: skip
    if not passed:
        what = "near-duplicates" if atol is not None else "duplicates"
        raise _messages.fail(
            "assert_no_duplicates",
            f"{dups} of {n} samples ({dups / n:.1%}) are {what} of earlier samples, "
            f"in {n_groups} group(s).",
            msg=msg,
            evidence=[
                "Duplicate pairs (first index, repeat index): " + _pairs(pairs, dups),
                f"Read: {source.read_note()} of {source.kind}.",
            ],
            cause="the same file listed twice, oversampling or augmented copies written into "
            "the dataset, or a broken index -> file mapping; deduplicate before splitting.",
            facts=_facts(atol),
        )
    return Duplicates(n, 0, 0, (), atol)


def assert_disjoint(
    train: Data,
    test: Data,
    *more: Any,
    names: tuple[str, ...] | None = None,
    atol: float | None = None,
    key: Callable[[Any], Any] | None = None,
    max_samples: int | None = None,
    progress: bool | None = None,
    msg: str | None = None,
) -> Overlap:
    """No sample is shared between splits (leakage); failures list (split, index) pairs.

    Any number of splits: ``assert_disjoint(train, val, test, names=("train", "val", "test"))``.
    Repeats inside one split are not reported here (that is :func:`assert_no_duplicates`).
    """
    __tracebackhide__ = True
    _check_atol(atol)
    splits = (train, test, *more)
    if names is None:
        names = ("train", "test", *(f"split{k}" for k in range(2, len(splits))))
    elif len(names) != len(splits) or len(set(names)) != len(names):
        raise ValueError(f"names={names!r} must give {len(splits)} distinct names, one per split")
    sources = [
        _samples.open_data(split, name=name, max_samples=max_samples, progress=progress, key=key)
        for split, name in zip(splits, names, strict=True)
    ]
    arguments = [_split_argument(s, name) for s, name in enumerate(names)]
    for source, argument in zip(sources, arguments, strict=True):
        _samples.refuse_empty(source, argument=argument)  # before reading any split
    first: dict[bytes, tuple[int, int]] = {}
    shared = 0
    sizes = []
    pairs: list[tuple[tuple[str, int], tuple[str, int]]] = []
    kinds = []
    for s, (source, name) in enumerate(zip(sources, names, strict=True)):
        kinds.append(source.kind)
        n = 0
        for i, d in digests(source, atol):
            n += 1
            seen = first.setdefault(d, (s, i))
            if seen[0] != s:
                shared += 1
                if len(pairs) < MAX_PAIRS:
                    pairs.append(((names[seen[0]], seen[1]), (name, i)))
        _samples.refuse_empty(source, n, argument=arguments[s])
        sizes.append(n)
    passed = shared == 0
    _context.record(DisjointRecord(
        check="assert_disjoint", model=" / ".join(kinds), passed=passed, names=list(names),
        sizes=sizes, n_shared=shared, pairs=pairs[:SHOWN], atol=atol,
    ))  # fmt: skip
    if not passed:
        later = ", ".join(names[1:])
        shown = ", ".join(f"({a} {i}, {b} {j})" for (a, i), (b, j) in pairs[:SHOWN])
        more_text = f", ... ({shared - SHOWN} more)" if shared > SHOWN else ""
        raise _messages.fail(
            "assert_disjoint",
            f"{shared} sample(s) of {later} also appear in an earlier split: leakage "
            f"between {' / '.join(names)}.",
            msg=msg,
            evidence=[
                f"Shared pairs (earlier split index, later split index): {shown}{more_text}",
                "Split sizes read: "
                + ", ".join(f"{a}={b}" for a, b in zip(names, sizes, strict=True)),
            ],
            cause="the dataset was split after duplication/augmentation, or it holds repeats "
            "that a random split spread over both sides; deduplicate first and split by "
            "source (group), not by sample.",
            facts=_facts(atol),
        )
    return Overlap(tuple(names), tuple(sizes), 0, (), atol)


def assert_consistent_labels(
    inputs: Data,
    labels: Data | None = None,
    *,
    atol: float | None = None,
    key: Callable[[Any], Any] | None = None,
    max_samples: int | None = None,
    progress: bool | None = None,
    msg: str | None = None,
) -> LabelConflicts:
    """No input appears with two different labels (a mislabelled duplicate).

    ``labels`` aligned with ``inputs`` (same length), or ``None`` when each sample of
    ``inputs`` is an ``(input, label)`` pair (a dataset of pairs). ``key`` applies to inputs.
    """
    __tracebackhide__ = True
    _check_atol(atol)
    x_src = _samples.open_data(
        inputs, name="inputs", max_samples=max_samples, progress=progress, key=key
    )
    _samples.refuse_empty(x_src)
    if labels is None:
        pairs_iter = _split_pairs(x_src)
        kind = x_src.kind
    else:
        y_src = _samples.open_data(labels, name="labels")
        if x_src.length is not None and y_src.length is not None and x_src.length != y_src.length:
            raise ValueError(
                f"inputs= has {x_src.length} samples but labels= has {y_src.length}; pass "
                "aligned inputs and labels"
            )
        if x_src.indices is not None:
            y_src.indices = x_src.indices
        pairs_iter = _zip_sources(x_src, y_src)
        kind = f"{x_src.kind} / {y_src.kind}"
    first: dict[bytes, tuple[int, bytes]] = {}
    label_text: dict[bytes, str] = {}
    conflicts: list[tuple[int, int, str, str]] = []
    n = n_conflicts = 0
    for i, xd, label in pairs_iter:
        n += 1
        ld = _samples.fingerprint(label)
        if ld not in label_text and len(label_text) < 100_000:
            label_text[ld] = _samples.show(label, 24)
        j, ld0 = first.setdefault(xd, (i, ld))
        if ld0 != ld:
            n_conflicts += 1
            if len(conflicts) < MAX_PAIRS:
                conflicts.append(
                    (j, i, label_text.get(ld0, "?"), label_text.get(ld, _samples.show(label, 24)))
                )
    _samples.refuse_empty(x_src, n)
    passed = n_conflicts == 0
    _context.record(LabelConflictsRecord(
        check="assert_consistent_labels", model=kind, passed=passed, n_samples=n,
        n_conflicts=n_conflicts, conflicts=conflicts[:SHOWN], atol=atol,
    ))  # fmt: skip
    if not passed:
        lines = [
            f"sample {i} is labelled {a}, its duplicate sample {j} is labelled {b}"
            for i, j, a, b in conflicts[:SHOWN]
        ]
        if n_conflicts > SHOWN:
            lines.append(f"... ({n_conflicts - SHOWN} more)")
        raise _messages.fail(
            "assert_consistent_labels",
            f"label conflict: {n_conflicts} sample(s) repeat an earlier input with a "
            f"different label (of {n} samples).",
            msg=msg,
            evidence=lines,
            cause="a mislabelled duplicate (annotation error), a label list misaligned with "
            "the inputs (shuffled one but not the other, off by one), or inputs that lose the "
            "information that sets the label (over-aggressive resizing or cropping).",
            facts=_facts(atol),
        )
    return LabelConflicts(n, 0, (), atol)


def _split_argument(s: int, name: str) -> str:
    """How a message names split ``s``: ``test=``, ``more[0]=``, with its name if it has one."""
    argument = ("train=", "test=")[s] if s < 2 else f"more[{s - 2}]="
    default = ("train", "test")[s] if s < 2 else f"split{s}"
    return argument if name == default else f"{argument} (split {name!r})"


def _split_pairs(source: _samples.Source) -> Iterator[tuple[int, bytes, Any]]:
    for i, sample in source:
        if isinstance(sample, dict):
            raise ValueError(
                f"sample {i} of inputs is a dict with keys {list(sample)}, not an (input, "
                f"label) pair; pass {_samples.key_hint(sample, 'pair')} or labels= separately"
            )
        if not (isinstance(sample, tuple) and len(sample) == 2):
            raise ValueError(
                f"sample {i} of inputs is a {type(sample).__name__}, not an (input, label) "
                "pair; pass labels= separately, or key= that returns (input, label)"
            )
        yield i, _samples.fingerprint(sample[0]), sample[1]


def _zip_sources(
    x_src: _samples.Source, y_src: _samples.Source
) -> Iterator[tuple[int, bytes, Any]]:
    ys = iter(y_src)
    for i, xd in digests(x_src):
        try:
            j, label = next(ys)
        except StopIteration:
            raise ValueError(
                f"labels= ran out at sample {i}: pass as many labels as inputs"
            ) from None
        if i != j:  # pragma: no cover - both follow the same indices
            raise ValueError(f"inputs and labels are misaligned at sample {i}")
        yield i, xd, label
    if next(ys, None) is not None:
        raise ValueError("labels= has more samples than inputs=: pass aligned inputs and labels")


def _pairs(pairs: list[tuple[int, int]], total: int) -> str:
    text = ", ".join(f"({a}, {b})" for a, b in pairs[:SHOWN])
    return text + (f", ... ({total - SHOWN} more)" if total > SHOWN else "")


def _check_atol(atol: float | None) -> None:
    if atol is not None and (
        isinstance(atol, bool) or not isinstance(atol, (int, float)) or not atol > 0
    ):
        raise ValueError(f"atol={atol!r} must be a positive number (or None for exact matching)")


def _facts(atol: float | None) -> dict[str, Any]:
    return {"method": "exact hashing" if atol is None else f"rounding grid atol={atol:g}"}
