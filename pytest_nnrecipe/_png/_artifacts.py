"""From what a check recorded to PNG files: which pictures apply, and what they are called.

The registry (``_registry.CHECKS``) says which pictures a check's records give; each one is
drawn from the record's attributes when the record has the data for it (a training check that
failed before its first forward has no batch). Files are named
``<stem>-<check>-<picture>.png`` where ``stem`` is :func:`file_stem` of the test's node id. A
check called twice in one test gets ``<check>-2``, ``<check>-3``, ...
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

from .. import _registry
from .._records import (
    BalanceRecord,
    CheckRecord,
    DependencyRecord,
    InvarianceRecord,
    ScheduleRecord,
    TrainingRecord,
)
from . import _canvas, _charts, _grids, _matrix

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
    record: CheckRecord,
    directory: str | os.PathLike[str],
    stem: str,
    *,
    occurrence: int = 1,
) -> list[str]:
    """Write every picture that ``record`` has data for; return the paths written.

    Raises :class:`PicturesUnavailable` (an ``ImportError``) when a picture applies and
    matplotlib is missing. A picture whose data cannot be drawn is skipped with a warning, so
    one odd tensor never hides the failure it illustrates.
    """
    jobs = _jobs(record)
    if not jobs:
        return []
    _require_matplotlib()
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = _UNSAFE.sub("_", record.check) + (f"-{occurrence}" if occurrence > 1 else "")
    written = []
    for picture, draw in jobs:
        path = out_dir / f"{stem}-{name}-{picture}.png"
        try:
            written.append(draw(path))
        except _canvas.PicturesUnavailable:
            raise
        except Exception as exc:
            warnings.warn(
                f"pytest-nnrecipe: could not draw the {picture} picture of {record.check}: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
    return written


def write_test_artifacts(
    nodeid: str,
    records: Iterable[CheckRecord],
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
        seen[rec.check] = seen.get(rec.check, 0) + 1
        if failed_only and rec.passed:
            continue
        written += write_artifacts(rec, directory, stem, occurrence=seen[rec.check])
    return written


Job = tuple[str, Callable[[Path], str]]


def _jobs(record: CheckRecord) -> list[Job]:
    """(picture name, drawing function) for each picture of the check that the record has the
    data for, in the order the registry lists them."""
    check = _registry.CHECKS.get(record.check)
    title = f"{record.check} on {record.model}: {'passed' if record.passed else 'FAILED'}"
    jobs: list[Job] = []
    for picture in check.pictures if check is not None else ():
        if picture == _registry.BATCH_PICTURE:
            jobs += _batch_jobs(record, title)
            continue
        draw = _DRAWERS[picture](record, title)
        if draw is not None:
            jobs.append((picture, draw))
    return jobs


Draw = Callable[[Path], str]


def _dependencies(record: CheckRecord, title: str) -> Draw | None:
    if not isinstance(record, DependencyRecord) or not _present(record.matrix):
        return None
    if not _present(record.allowed):
        return None
    return lambda p: _matrix.dependency_matrix(
        record.matrix,
        record.allowed,
        p,
        inconclusive=record.inconclusive,
        rows=record.labels[0] if record.labels else f"output {record.unit}",
        cols=record.labels[1] if record.labels else f"input {record.unit}",
        title=_with_facts(title, record),
    )


def _loss(record: CheckRecord, title: str) -> Draw | None:
    if not isinstance(record, TrainingRecord) or not _present(record.losses):
        return None
    if record.passing_band is not None and record.target is not None:
        lowest, highest = record.passing_band
        expected = record.target
        return lambda p: _charts.init_loss(
            record.losses[0],
            p,
            expected=expected,
            highest=highest,
            lowest=lowest,
            noise=record.noise_allowance or 0.0,
            title=_with_facts(title, record),
        )
    return lambda p: _charts.loss_curve(
        record.losses,
        p,
        target=record.target,
        predictions=record.predictions,
        prediction_steps=record.prediction_steps,
        targets=record.targets,
        steps=record.steps,
        baseline=record.baseline_losses,
        title=_with_facts(title, record, own_line=True),
    )


def _lr(record: CheckRecord, title: str) -> Draw | None:
    if not isinstance(record, ScheduleRecord) or not _present(record.lrs):
        return None
    return lambda p: _charts.lr_curve(
        record.lrs, p, total_steps=record.total_steps, floor=record.floor, title=title
    )


def _classes(record: CheckRecord, title: str) -> Draw | None:
    if not isinstance(record, BalanceRecord) or not record.counts:
        return None
    counts = {k: float(v) for k, v in record.counts.items()}
    return lambda p: _charts.class_histogram(
        counts, p, min_share=record.min_share, under=record.under, title=title
    )


def _first_layer(record: CheckRecord, title: str) -> Draw | None:
    weight = getattr(record, "first_layer_weight", None)
    if weight is None:
        return None
    return lambda p: _grids.conv_weights(weight, p, title=f"{title}\nfirst-layer weights")


def _difference(record: CheckRecord, title: str) -> Draw | None:
    if not isinstance(record, InvarianceRecord) or not _present(record.difference):
        return None
    return lambda p: _charts.difference_map(
        record.difference, p, threshold=record.threshold, title=_with_facts(title, record)
    )


def _batch_jobs(record: CheckRecord, title: str) -> list[Job]:
    """The batch that entered the model: one picture, or one per tensor of a tuple/dict."""
    layout: dict[str, Any] = {}
    if isinstance(record, DependencyRecord):
        layout = {"batch_dim": record.batch_dim, "time_dim": record.time_dim}
    jobs: list[Job] = []
    for label, tensor in _batch_tensors(getattr(record, "batch", None)):
        name = "batch" if label is None else f"batch-{_UNSAFE.sub('_', label)}"
        caption = f"{title}\nbatch that entered the model" + (f" ({label})" if label else "")
        jobs.append((name, functools.partial(_grids.batch, tensor, title=caption, **layout)))
    return jobs


#: How each picture is drawn from a record (the batch has :func:`_batch_jobs`).
_DRAWERS: dict[str, Callable[[CheckRecord, str], Draw | None]] = {
    _registry.DEPENDENCIES_PICTURE: _dependencies,
    _registry.LOSS_PICTURE: _loss,
    _registry.LR_PICTURE: _lr,
    _registry.CLASSES_PICTURE: _classes,
    _registry.FIRST_LAYER_PICTURE: _first_layer,
    _registry.DIFFERENCE_PICTURE: _difference,
}


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return len(value) > 0
    except TypeError:
        return True


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


def _with_facts(title: str, record: CheckRecord, *, own_line: bool = False) -> str:
    """``title`` with the method, mode and optimizer the check used (on a line of their own
    when ``own_line``: an optimizer description is long)."""
    values = {k: getattr(record, k, None) for k in ("method", "mode", "optimizer")}
    shown = [f"{k}={v}" for k, v in values.items() if v is not None]
    if not shown:
        return title
    return title + (f"\n{', '.join(shown)}" if own_line else f" ({', '.join(shown)})")


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise _canvas.PicturesUnavailable(str(exc)) from exc
