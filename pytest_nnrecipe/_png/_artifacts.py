"""From what a check recorded to PNG files: which pictures apply, and what they are called.

Files are named ``<stem>-<check>-<picture>.png`` where ``stem`` is :func:`file_stem` of the
test's node id. A check called twice in one test gets ``<check>-2``, ``<check>-3``, ...
"""

from __future__ import annotations

import functools
import os
import re
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from . import _canvas, _charts, _grids, _matrix

#: Checks whose matrices and batches run along time, not along the batch.
_TIME_CHECKS = frozenset({"assert_causal"})
#: Checks whose ``counts`` / ``labels`` are class labels.
_CLASS_CHECKS = frozenset({"assert_balanced"})
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Longest readable part of a stem (the checksum keeps long ids unique).
MAX_STEM = 96
#: At most this many tensors of one batch (a tuple/dict of inputs) are drawn.
MAX_BATCH_TENSORS = 4


def file_stem(nodeid: str) -> str:
    """A readable, filesystem-safe, unique file-name stem for a pytest node id.

    ``tests/test_m.py::TestA::test_b[cpu-3]`` -> ``tests.test_m.py--TestA--test_b[cpu-3]``
    becomes ``tests.test_m.py--TestA--test_b-cpu-3-1a2b3c4d``: path separators become ``.``,
    ``::`` becomes ``--``, anything outside ``[A-Za-z0-9._-]`` becomes ``_``, and a CRC32 of
    the full node id keeps ids apart that read the same once made safe or are cut short.
    """
    text = nodeid.replace("\\", "/").removeprefix("./")
    text = text.replace("::", "--").replace("/", ".")
    text = text.replace("[", "-").replace("]", "")
    text = _UNSAFE.sub("_", text).strip("._-") or "test"
    return f"{text[:MAX_STEM].rstrip('._-')}-{zlib.crc32(nodeid.encode()):08x}"


def write_artifacts(
    record: Any,
    directory: str | os.PathLike[str],
    stem: str,
    *,
    occurrence: int = 1,
) -> list[str]:
    """Write every picture that ``record`` (a ``CheckRecord`` or a mapping with ``check``,
    ``model``, ``passed``, ``details``) has data for; return the paths written.

    Raises :class:`PicturesUnavailable` (an ``ImportError``) when a picture applies and
    matplotlib is missing. A picture whose data cannot be drawn is skipped with a warning, so
    one odd tensor never hides the failure it illustrates.
    """
    check, model, passed, details = _fields(record)
    jobs = _jobs(check, model, passed, details)
    if not jobs:
        return []
    _require_matplotlib()
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = _UNSAFE.sub("_", check) + (f"-{occurrence}" if occurrence > 1 else "")
    written = []
    for picture, draw in jobs:
        path = out_dir / f"{stem}-{name}-{picture}.png"
        try:
            written.append(draw(path))
        except _canvas.PicturesUnavailable:
            raise
        except Exception as exc:
            warnings.warn(
                f"pytest-nnrecipe: could not draw the {picture} picture of {check}: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
    return written


def write_test_artifacts(
    nodeid: str,
    records: Iterable[Any],
    directory: str | os.PathLike[str],
    *,
    failed_only: bool = True,
) -> list[str]:
    """All pictures of one test's records (only the failed checks unless ``failed_only`` is
    false), named after ``nodeid``; repeated checks are numbered in call order."""
    stem = file_stem(nodeid)
    seen: dict[str, int] = {}
    written: list[str] = []
    for rec in records:
        check, _, passed, _ = _fields(rec)
        seen[check] = seen.get(check, 0) + 1
        if failed_only and passed:
            continue
        written += write_artifacts(rec, directory, stem, occurrence=seen[check])
    return written


Job = tuple[str, Callable[[Path], str]]


def _jobs(check: str, model: str, passed: bool, d: Mapping[str, Any]) -> list[Job]:
    """(picture name, drawing function) for each picture the details have data for."""
    jobs: list[Job] = []
    verdict = "passed" if passed else "FAILED"
    title = f"{check} on {model}: {verdict}"
    along_time = check in _TIME_CHECKS
    if _present(d, "matrix") and _present(d, "allowed"):
        unit = "step" if along_time else "sample"
        jobs.append(
            (
                "dependencies",
                lambda p: _matrix.dependency_matrix(
                    d["matrix"],
                    d["allowed"],
                    p,
                    inconclusive=d.get("inconclusive"),
                    rows=str(d.get("rows") or f"output {unit}"),
                    cols=str(d.get("cols") or f"input {unit}"),
                    title=_with_facts(title, d),
                ),
            )
        )
    if _present(d, "losses"):
        jobs.append(
            (
                "loss",
                lambda p: _charts.loss_curve(
                    d["losses"],
                    p,
                    target=_float_or_none(d.get("target")),
                    predictions=d.get("predictions"),
                    prediction_steps=d.get("prediction_steps"),
                    targets=d.get("targets"),
                    steps=_int_or_none(d.get("steps")),
                    baseline=d.get("baseline_losses"),
                    title=_with_facts(title, d, own_line=True),
                ),
            )
        )
    if _present(d, "lrs"):
        jobs.append(
            (
                "lr",
                lambda p: _charts.lr_curve(
                    d["lrs"],
                    p,
                    total_steps=_int_or_none(d.get("total_steps")),
                    floor=_float_or_none(d.get("floor")),
                    title=title,
                ),
            )
        )
    counts = _class_counts(check, d)
    if counts:
        jobs.append(
            (
                "classes",
                lambda p: _charts.class_histogram(
                    counts,
                    p,
                    min_share=_float_or_none(d.get("min_share")),
                    under=d.get("under"),
                    title=title,
                ),
            )
        )
    kind = str(d.get("batch_kind") or ("heatmap" if along_time else "auto"))
    for label, tensor in _batch_tensors(d.get("batch")):
        name = "batch" if label is None else f"batch-{_UNSAFE.sub('_', label)}"
        caption = f"{title}\nbatch that entered the model" + (f" ({label})" if label else "")
        jobs.append((name, functools.partial(_grids.batch, tensor, kind=kind, title=caption)))
    weight = d.get("first_layer_weight")
    if weight is None and d.get("model") is not None and not isinstance(d.get("model"), str):
        weight = _grids.first_conv_weight(d["model"])
    if weight is not None:
        jobs.append(
            (
                "first-layer",
                lambda p: _grids.conv_weights(weight, p, title=f"{title}\nfirst-layer weights"),
            )
        )
    return jobs


def _fields(record: Any) -> tuple[str, str, bool, Mapping[str, Any]]:
    if isinstance(record, Mapping):
        get = record.get
    else:

        def get(key: str, default: Any = None) -> Any:
            return getattr(record, key, default)

    details = get("details", None) or {}
    if not isinstance(details, Mapping):
        details = {}
    return (
        str(get("check", "check")),
        str(get("model", "model")),
        bool(get("passed", False)),
        details,
    )


def _present(d: Mapping[str, Any], key: str) -> bool:
    value = d.get(key)
    if value is None:
        return False
    try:
        return len(value) > 0
    except TypeError:
        return True


def _class_counts(check: str, d: Mapping[str, Any]) -> dict[Any, float]:
    """Class -> count: ``class_counts``, or ``counts`` of the balance check, or ``labels``.

    Other checks' ``counts`` (e.g. NaN/Inf counts of the finite-data check) are not classes.
    """
    counts = d.get("class_counts")
    if counts is None and check in _CLASS_CHECKS:
        counts = d.get("counts")
    if isinstance(counts, Mapping) and counts:
        return {k: float(v) for k, v in counts.items()}
    labels = d.get("labels") if check in _CLASS_CHECKS else None
    if labels is None:
        return {}
    import numpy as np

    arr = np.asarray(_canvas.as_array(labels)).reshape(-1)
    if arr.size == 0:
        return {}
    keys, n = np.unique(arr, return_counts=True)
    return {k.item() if hasattr(k, "item") else k: float(c) for k, c in zip(keys, n, strict=True)}


def _batch_tensors(batch: Any) -> list[tuple[str | None, Any]]:
    """The array-like entries of a batch: itself, or those of a tuple/list/dict of inputs."""
    if batch is None:
        return []
    if hasattr(batch, "shape") and hasattr(batch, "dtype"):
        return [(None, batch)]
    items: list[tuple[str | None, Any]]
    if isinstance(batch, Mapping):
        items = [(str(k), v) for k, v in batch.items()]
    elif isinstance(batch, (tuple, list)):
        items = [(str(i), v) for i, v in enumerate(batch)]
    else:
        return []
    return [(k, v) for k, v in items if hasattr(v, "shape") and hasattr(v, "dtype")][
        :MAX_BATCH_TENSORS
    ]


def _with_facts(title: str, d: Mapping[str, Any], *, own_line: bool = False) -> str:
    """``title`` with the method, mode and optimizer the check used (on a line of their own
    when ``own_line``: an optimizer description is long)."""
    facts = [f"{k}={d[k]}" for k in ("method", "mode", "optimizer") if d.get(k) is not None]
    if not facts:
        return title
    return title + (f"\n{', '.join(facts)}" if own_line else f" ({', '.join(facts)})")


def _float_or_none(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise _canvas.PicturesUnavailable(str(exc)) from exc
